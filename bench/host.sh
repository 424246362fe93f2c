#!/usr/bin/env bash
# Steps of a session on the GPU host (no network; TensorRT from ../shared/gpu's rig).
# Run from the repo root there:  bash bench/host.sh STEP [STEP ...]
# The host's python3 (torch) exports models and data; TensorRT work runs under the
# rig's python3.10. Generated files live in $WORK (kept while the host stays warm);
# results worth keeping are copied to $OUT, which the device tool brings back.
set -uo pipefail
WORK=${WORK:-/root/work}
OUT=${OUT:-/tmp/out}
mkdir -p "$WORK" "$OUT"
export PYTHONUNBUFFERED=1

trt() { (. /root/rig/env.sh && python3.10 "$@"); }

for step in "$@"; do
  echo "=== $step $(date -u +%H:%M:%S)"
  case "$step" in
    nvsmi) nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv ;;
    data)  # ONNX models (contest style) + test grid + calibration data, references on the GPU in FP32
      python3 -m workload export --out "$WORK/onnx" &&
      python3 -m workload data --out "$WORK/data" --device cuda ;;
    probe) trt -m engine probe --json "$OUT/probe.json" ;;
    gputests) trt -m pytest -q -m gpu -x tests 2>&1 | tee "$OUT/gputests.log" ;;
    baseline)
      trt bench/baseline.py --work "$WORK" --out "$OUT" ;;
    torch)
      python3 bench/torch_baselines.py --data "$WORK/data" --out "$OUT/torch-baselines.json" ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
  echo "=== $step done rc=$? $(date -u +%H:%M:%S)"
done
