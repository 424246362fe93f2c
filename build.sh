#!/usr/bin/env bash
# Build encoder.plan and decoder.plan in the repository root.
#
#   bash build.sh [--baseline] [--models encoder,decoder]
#
# For each model: configs/<model>.yaml (the frozen best config, from
# `python -m search freeze`) when it exists, with configs/<model>.timing.cache if
# present and $WORK/data/calibration-<model>.npz when the config uses INT8;
# otherwise the naive baseline (plain FP32, one profile over every test shape).
# The ONNX models are exported into $WORK/onnx first when missing.
#
# Environment:
#   PYTHON        Python with TensorRT + cuda-python (default python3); on the GPU host:
#                 . /root/rig/env.sh && PYTHON=python3.10 bash build.sh
#   TORCH_PYTHON  Python with PyTorch for the export (default $PYTHON)
#   WORK          work folder (default work)
#   CONFIG_DIR    frozen configs (default configs)
#   OUT_DIR       where the plans go (default: the repository root)
#
# Plugins: build.sh compiles and copies no plugin library. A user-supplied one
# (e.g. a LayerNorm or attention plugin .so) goes into the repository root (the
# contest harness loads every *.so in its working directory) and is passed to the
# build with PLUGINS="a.so b.so".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
TORCH_PYTHON=${TORCH_PYTHON:-$PYTHON}
WORK=${WORK:-work}
CONFIG_DIR=${CONFIG_DIR:-configs}
OUT_DIR=${OUT_DIR:-.}
PLUGINS=${PLUGINS:-}
BASELINE=0
MODELS="encoder decoder"

die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) BASELINE=1 ;;
    --models)
      [ $# -ge 2 ] || die "--models needs a value (encoder,decoder)"
      MODELS=$(echo "$2" | tr ',' ' ')
      shift ;;
    --models=*) MODELS=$(echo "${1#--models=}" | tr ',' ' ') ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
for m in $MODELS; do
  case "$m" in encoder|decoder) ;; *) die "unknown model $m (encoder, decoder)" ;; esac
done
[ -n "$MODELS" ] || die "--models names no model"

command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON not found; set PYTHON to a Python with TensorRT"
if ! "$PYTHON" -c "import tensorrt" >/dev/null 2>&1; then
  die "$PYTHON cannot import tensorrt; set PYTHON to a Python with TensorRT and cuda-python (GPU host: . /root/rig/env.sh && PYTHON=python3.10 bash build.sh)"
fi

plugin_args=()
for so in $PLUGINS; do
  [ -f "$so" ] || die "plugin library $so does not exist"
  plugin_args+=("$so")
done

for m in $MODELS; do
  if [ ! -f "$WORK/onnx/$m.onnx" ]; then
    echo "== exporting ONNX models into $WORK/onnx ($TORCH_PYTHON)"
    "$TORCH_PYTHON" -m workload export --out "$WORK/onnx" || die "export failed (TORCH_PYTHON=$TORCH_PYTHON needs PyTorch)"
    break
  fi
done

mkdir -p "$WORK" "$OUT_DIR"
for m in $MODELS; do
  args=(--onnx "$WORK/onnx/$m.onnx" --out "$OUT_DIR/$m.plan" --work-dir "$WORK" --log "$WORK/build-$m.log")
  if [ "$BASELINE" = 0 ] && [ -f "$CONFIG_DIR/$m.yaml" ]; then
    echo "== $m: building the frozen config $CONFIG_DIR/$m.yaml"
    args+=(--config "$CONFIG_DIR/$m.yaml")
    if [ -f "$CONFIG_DIR/$m.timing.cache" ]; then
      # A copy: the frozen cache stays as frozen; the build adds to its copy only.
      cp "$CONFIG_DIR/$m.timing.cache" "$WORK/build-$m.timing.cache"
      args+=(--timing-cache "$WORK/build-$m.timing.cache")
    fi
    if [ -f "$WORK/data/calibration-$m.npz" ]; then
      args+=(--calibration "$WORK/data/calibration-$m.npz")   # used only when the config has int8
    fi
  else
    echo "== $m: building the naive baseline"
    args+=(--baseline --model "$m" --timing-cache "$WORK/build-$m-baseline.timing.cache")
  fi
  if [ ${#plugin_args[@]} -gt 0 ]; then
    args+=(--plugins "${plugin_args[@]}")
  fi
  "$PYTHON" -m engine build "${args[@]}"
done
echo "== done: $(for m in $MODELS; do printf '%s ' "$OUT_DIR/$m.plan"; done)"
