#!/usr/bin/env bash
# Build encoder.plan and decoder.plan in the repository root.
#
#   bash build.sh [--baseline] [--models encoder,decoder | --workload SPEC.yaml] [--plugins-only]
#
# For each model: configs/<model>.yaml (the frozen best config, from
# `python -m search freeze`) when it exists, with configs/<model>.timing.cache if
# present and $WORK/data/calibration-<model>.npz when the config uses INT8;
# otherwise the naive baseline (plain FP32, one profile over every test shape).
# The ONNX models are exported into $WORK/onnx first when missing.
#
# A model of your own: WORKLOAD=my-model.yaml bash build.sh (or --workload my-model.yaml) builds
# $OUT_DIR/<name>.plan from the workload spec (README "Tune your own ONNX model"): CONFIG_DIR/<name>.yaml
# when frozen (`python -m search freeze --workload my-model.yaml`), else the baseline; the ONNX is
# the spec's (made with the spec's export command when missing), calibration from its cases folder.
#
# Environment:
#   PYTHON        Python with TensorRT + cuda-python (default python3); on the GPU host:
#                 . /root/rig/env.sh && PYTHON=python3.10 bash build.sh
#   TORCH_PYTHON  Python with PyTorch for the export (default $PYTHON)
#   WORK          work folder (default work)
#   CONFIG_DIR    frozen configs (default configs)
#   OUT_DIR       where the plans go (default: the repository root)
#   WORKLOAD      a workload spec YAML to build instead of the WeNet models (same as --workload)
#
#   BUILD_PLUGINS auto (default): compile our plugin library (plugins/src, through
#                 plugins/build_plugins.sh, which reads NVCC, TRT_INCLUDE, TRT_LIB, CUDA_ARCH)
#                 when nvcc and the TensorRT headers are found, else skip it with one line;
#                 on: the library is required (not found is an error); off: never build it
#   PLUGINS       more plugin libraries ("a.so b.so") to load for the builds
#
# Plugins: the library is written as $OUT_DIR/libwenet_trt_plugins.so, next to the plans (the
# contest harness loads every *.so in its working directory), and loaded for every build; a
# config's plugin rewrites of our op types (wenet_*_plugin) need it. GPU host:
#   . /root/rig/env.sh && TRT_INCLUDE=... TRT_LIB=$SP/tensorrt PYTHON=python3.10 bash build.sh
# `bash build.sh --plugins-only` builds just the library.
set -euo pipefail

CALLER_DIR=$(pwd)
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
TORCH_PYTHON=${TORCH_PYTHON:-$PYTHON}
WORK=${WORK:-work}
CONFIG_DIR=${CONFIG_DIR:-configs}
OUT_DIR=${OUT_DIR:-.}
PLUGINS=${PLUGINS:-}
BUILD_PLUGINS=${BUILD_PLUGINS:-auto}
WORKLOAD=${WORKLOAD:-}
PLUGINS_ONLY=0
BASELINE=0
MODELS="encoder decoder"
MODELS_GIVEN=0

die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASELINE=1 ;;
    --plugins-only) PLUGINS_ONLY=1 ;;
    --models)
      [ $# -ge 2 ] || die "--models needs a value (encoder,decoder)"
      MODELS=$(echo "$2" | tr ',' ' '); MODELS_GIVEN=1
      shift ;;
    --models=*) MODELS=$(echo "${1#--models=}" | tr ',' ' '); MODELS_GIVEN=1 ;;
    --workload)
      [ $# -ge 2 ] || die "--workload needs a spec file"
      WORKLOAD=$2
      shift ;;
    --workload=*) WORKLOAD=${1#--workload=} ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
if [ -n "$WORKLOAD" ] && [ "$MODELS_GIVEN" = 1 ]; then
  die "give --models (WeNet) or --workload/WORKLOAD (a spec), not both"
fi
[ -z "$WORKLOAD" ] || MODELS=""
case "$WORKLOAD" in    # a spec path is the caller's, not the repository's
  ""|/*) ;;
  *) if [ -f "$CALLER_DIR/$WORKLOAD" ]; then WORKLOAD="$CALLER_DIR/$WORKLOAD"; fi ;;
esac
for m in $MODELS; do
  case "$m" in encoder|decoder) ;; *) die "unknown model $m (encoder, decoder)" ;; esac
done
[ -n "${MODELS// /}" ] || [ -n "$WORKLOAD" ] || die "--models names no model"
case "$BUILD_PLUGINS" in auto|on|off) ;; *) die "BUILD_PLUGINS=$BUILD_PLUGINS is not auto, on or off" ;; esac

# Our plugin library, before any engine build, so that a frozen config's plugin rewrites can build.
own_lib=""
build_plugins() {
  mkdir -p "$OUT_DIR"
  if [ "$BUILD_PLUGINS" = off ]; then
    echo "== plugins: skipped (BUILD_PLUGINS=off)"
    return
  fi
  local rc=0 msg
  msg=$(OUT="$OUT_DIR" bash plugins/build_plugins.sh) || rc=$?   # its errors go to stderr
  case $rc in
    0) own_lib="$OUT_DIR/libwenet_trt_plugins.so"; echo "== plugins: $msg" ;;
    3) [ "$BUILD_PLUGINS" = on ] && die "BUILD_PLUGINS=on, but ${msg#skip: }"
       echo "== plugins: skipped, ${msg#skip: }" ;;
    2) exit 2 ;;   # a wrong NVCC/TRT_INCLUDE/TRT_LIB/CUDA_ARCH: its one line is on stderr
    *) echo "error: the plugin library did not compile (above); BUILD_PLUGINS=off builds without it" >&2
       exit 1 ;;
  esac
}
if [ "$PLUGINS_ONLY" = 1 ]; then
  build_plugins
  exit 0
fi

command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON not found; set PYTHON to a Python with TensorRT"
if ! "$PYTHON" -c "import tensorrt" >/dev/null 2>&1; then
  die "$PYTHON cannot import tensorrt; set PYTHON to a Python with TensorRT and cuda-python (GPU host: . /root/rig/env.sh && PYTHON=python3.10 bash build.sh)"
fi

for so in $PLUGINS; do
  [ -f "$so" ] || die "plugin library $so does not exist"
done

# A workload spec: its model name, ONNX, export command and cases folder (one line each, checked).
spec_args=()
onnx_of() { echo "$WORK/onnx/$1.onnx"; }
data_of() { echo "$WORK/data"; }
if [ -n "$WORKLOAD" ]; then
  spec_get() { "$PYTHON" -m workload spec --workload "$WORKLOAD" --work-dir "$WORK" --get "$1"; }
  MODELS=$(spec_get name) || exit 2          # a bad spec: its one line is on stderr
  SPEC_ONNX=$(spec_get onnx) && SPEC_EXPORT=$(spec_get export) && SPEC_CASES=$(spec_get cases) || exit 2
  onnx_of() { echo "$SPEC_ONNX"; }
  data_of() { echo "$SPEC_CASES"; }
  spec_args=(--workload "$WORKLOAD")
fi

# The `engine build` arguments of model $1, in the array `args` (without --onnx, --plugins).
model_args() {
  local m=$1
  # the build report beside the plan: evaluate.py reads its config (layout, precision) into its rows
  args=(--out "$OUT_DIR/$m.plan" --work-dir "$WORK" --log "$WORK/build-$m.log" --report "$OUT_DIR/$m.report.json")
  [ ${#spec_args[@]} -eq 0 ] || args+=("${spec_args[@]}")
  if [ "$BASELINE" = 0 ] && [ -f "$CONFIG_DIR/$m.yaml" ]; then
    args+=(--config "$CONFIG_DIR/$m.yaml")
    [ ! -f "$CONFIG_DIR/$m.timing.cache" ] || args+=(--timing-cache "$WORK/build-$m.timing.cache")
    # used only when the config has int8
    [ ! -f "$(data_of "$m")/calibration-$m.npz" ] || args+=(--calibration "$(data_of "$m")/calibration-$m.npz")
  else
    args+=(--baseline --model "$m" --timing-cache "$WORK/build-$m-baseline.timing.cache")
  fi
}

# Before anything is written: each build's config, ONNX (when exported already), data and output
# paths (`engine check`; its one error line is on stderr).
for m in $MODELS; do
  model_args "$m"
  onnx=()
  [ ! -f "$(onnx_of "$m")" ] || onnx=(--onnx "$(onnx_of "$m")")
  "$PYTHON" -m engine check "${args[@]}" "${onnx[@]}" ${PLUGINS:+--plugins $PLUGINS} >/dev/null || exit 2
done

if [ -n "$WORKLOAD" ] && [ ! -f "$SPEC_ONNX" ]; then
  [ -n "$SPEC_EXPORT" ] || die "$SPEC_ONNX does not exist and $WORKLOAD has no export command"
  echo "== exporting $MODELS: $SPEC_EXPORT"
  bash -c "$SPEC_EXPORT" || die "the export command of $WORKLOAD failed: $SPEC_EXPORT"
  [ -f "$SPEC_ONNX" ] || die "the export command of $WORKLOAD did not write $SPEC_ONNX"
fi

build_plugins
plugin_args=()
[ -z "$own_lib" ] || plugin_args+=("$own_lib")
for so in $PLUGINS; do
  plugin_args+=("$so")
done

for m in $MODELS; do
  if [ -z "$WORKLOAD" ] && [ ! -f "$WORK/onnx/$m.onnx" ]; then
    echo "== exporting ONNX models into $WORK/onnx ($TORCH_PYTHON)"
    "$TORCH_PYTHON" -m workload export --out "$WORK/onnx" || die "export failed (TORCH_PYTHON=$TORCH_PYTHON needs PyTorch)"
    break
  fi
done

mkdir -p "$WORK" "$OUT_DIR"
for m in $MODELS; do
  model_args "$m"
  args+=(--onnx "$(onnx_of "$m")")
  if [ "$BASELINE" = 0 ] && [ -f "$CONFIG_DIR/$m.yaml" ]; then
    echo "== $m: building the frozen config $CONFIG_DIR/$m.yaml"
    # A copy: the frozen cache stays as frozen; the build adds to its copy only.
    [ ! -f "$CONFIG_DIR/$m.timing.cache" ] || cp "$CONFIG_DIR/$m.timing.cache" "$WORK/build-$m.timing.cache"
  else
    echo "== $m: building the naive baseline"
  fi
  if [ ${#plugin_args[@]} -gt 0 ]; then
    args+=(--plugins "${plugin_args[@]}")
  fi
  "$PYTHON" -m engine build "${args[@]}"
done
echo "== done: $(for m in $MODELS; do printf '%s ' "$OUT_DIR/$m.plan"; done)"
