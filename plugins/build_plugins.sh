#!/usr/bin/env bash
# Compile our TensorRT plugin library (plugins/src/*.cu) into $OUT/libwenet_trt_plugins.so.
#
#   bash plugins/build_plugins.sh           # build
#   bash plugins/build_plugins.sh --check   # only say which nvcc and headers would be used
#
# Environment (an explicit value that is wrong exits 2 with one line):
#   NVCC         nvcc to use (default: nvcc on PATH, /usr/local/cuda/bin/nvcc, then the one of
#                the `nvidia-cuda-nvcc` wheel in python3's site-packages)
#   TRT_INCLUDE  folder holding NvInfer.h (default: the first of .gpu/tensorrt-include,
#                ../shared/third_party/tensorrt-*/include, /usr/include/x86_64-linux-gnu,
#                /usr/local/tensorrt/include that has it)
#   TRT_LIB      folder holding libnvinfer.so.<major> to link against (optional; GPU host:
#                $SP/tensorrt). Without it the library still records libnvinfer.so.<major> as a
#                dependency (through a link-time stub), so TensorRT's symbols resolve against the
#                libnvinfer the process already has, or the one on LD_LIBRARY_PATH, even when the
#                harness loads us with RTLD_LOCAL.
#   CUDA_ARCH    SM version(s), space or comma separated (default 90: H100/H200)
#   OUT          folder for the library (default work/plugins)
#
# Exit status: 0 built (or --check found everything), 3 cannot build here (no nvcc or no
# headers found; one line saying which), 2 bad explicit input, 1 compile or link error.
# The CUDA runtime is linked statically (nvcc's default), so the library needs no libcudart of
# a particular version at run time, only a driver for nvcc's CUDA (13.x: driver >= 580; the H200
# host has 580.159); kernels run on the stream TensorRT passes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
LIB_NAME=libwenet_trt_plugins.so
CHECK=0
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

bad() { echo "error: $*" >&2; exit 2; }
skip() { echo "skip: $*"; exit 3; }
has_headers() { [ -f "$1/NvInfer.h" ] && [ -f "$1/NvInferVersion.h" ]; }

# --- explicit inputs first: a wrong value is an error even where nothing could be built ---
if [ -n "${NVCC:-}" ]; then
  command -v "$NVCC" >/dev/null 2>&1 || bad "NVCC=$NVCC is not an executable"
  NVCC=$(command -v "$NVCC")
fi
if [ -n "${TRT_INCLUDE:-}" ]; then
  has_headers "$TRT_INCLUDE" || bad "TRT_INCLUDE=$TRT_INCLUDE has no NvInfer.h and NvInferVersion.h"
fi
gencode=()
for arch in $(echo "${CUDA_ARCH:-90}" | tr ',' ' '); do
  [[ "$arch" =~ ^[0-9]{2,3}[af]?$ ]] || bad "CUDA_ARCH=${CUDA_ARCH} is not a list of SM versions like 90 or 80,90"
  gencode+=("-gencode=arch=compute_$arch,code=[sm_$arch,compute_$arch]")
done
[ ${#gencode[@]} -gt 0 ] || bad "CUDA_ARCH names no SM version"
if [ -n "${TRT_LIB:-}" ]; then
  [ -d "$TRT_LIB" ] && ls "$TRT_LIB"/libnvinfer.so.* >/dev/null 2>&1 || bad "TRT_LIB=$TRT_LIB has no libnvinfer.so.*"
fi

# --- discovery: nothing found is a skip (exit 3), not an error ---
if [ -z "${NVCC:-}" ]; then
  NVCC=$(command -v nvcc 2>/dev/null || true)
  if [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ]; then NVCC=/usr/local/cuda/bin/nvcc; fi
  if [ -z "$NVCC" ]; then
    # pip's nvidia-cuda-nvcc (CUDA 13) lays a whole toolkit out under nvidia/cu13/
    NVCC=$(python3 - 2>/dev/null <<'PY' || true
import glob, os, site, sys
for d in site.getsitepackages() + [site.getusersitepackages()]:
    for nvcc in sorted(glob.glob(os.path.join(d, "nvidia", "cu*", "bin", "nvcc"))):
        if os.access(nvcc, os.X_OK):
            print(nvcc); sys.exit(0)
PY
)
  fi
  [ -n "$NVCC" ] || skip "no nvcc found (set NVCC; plugins/README.md says how to install one with pip)"
fi
if [ -z "${TRT_INCLUDE:-}" ]; then
  for d in "$root/.gpu/tensorrt-include" "$root"/../shared/third_party/tensorrt-*/include \
           /usr/include/x86_64-linux-gnu /usr/local/tensorrt/include; do
    if has_headers "$d"; then TRT_INCLUDE=$(cd "$d" && pwd); break; fi
  done
  [ -n "${TRT_INCLUDE:-}" ] || skip "no TensorRT headers found (set TRT_INCLUDE to the folder with NvInfer.h)"
fi
TRT_MAJOR=$(awk '/#define NV_TENSORRT_MAJOR/ { print $3 }' "$TRT_INCLUDE/NvInferVersion.h")
[ -n "$TRT_MAJOR" ] || bad "$TRT_INCLUDE/NvInferVersion.h defines no NV_TENSORRT_MAJOR"
if [ -n "${TRT_LIB:-}" ] && [ ! -e "$TRT_LIB/libnvinfer.so.$TRT_MAJOR" ]; then
  bad "TRT_LIB=$TRT_LIB has no libnvinfer.so.$TRT_MAJOR (the headers are TensorRT $TRT_MAJOR)"
fi

OUT=${OUT:-$root/work/plugins}
version=$("$NVCC" --version 2>/dev/null | awk -F', ' '/release/ { print $2 }' || true)
if [ "$CHECK" = 1 ]; then
  echo "nvcc: $NVCC (${version:-unknown version})"
  echo "TensorRT headers: $TRT_INCLUDE (major $TRT_MAJOR)"
  echo "TensorRT library: ${TRT_LIB:-none (link-time stub for libnvinfer.so.$TRT_MAJOR)}"
  echo "output: $OUT/$LIB_NAME"
  exit 0
fi

mkdir -p "$OUT" || bad "cannot create OUT=$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The pip toolkit keeps libcudart_static.a in lib/, where nvcc.profile does not look.
nvcc_root=$(dirname "$(dirname "$NVCC")")
libdirs=()
for d in "$nvcc_root/lib64" "$nvcc_root/lib"; do [ -d "$d" ] && libdirs+=("-L$d"); done

# -Wno-deprecated-declarations: TensorRT 8.6 marks IPluginV2 deprecated in its own headers;
# --diag-suppress=997: IPluginV2DynamicExt hides the pre-dynamic-shape overloads on purpose.
flags=(-std=c++17 -O3 "${gencode[@]}" -Xcompiler -fPIC -Xcompiler -Wno-deprecated-declarations --diag-suppress=997
       -I "$TRT_INCLUDE" -I "$here/src")
objs=()
for src in "$here"/src/*.cu; do
  obj="$tmp/$(basename "${src%.cu}").o"
  "$NVCC" "${flags[@]}" -c "$src" -o "$obj" || { echo "error: nvcc failed on ${src#$root/}" >&2; exit 1; }
  objs+=("$obj")
done

if [ -n "${TRT_LIB:-}" ]; then
  nvinfer=(-L "$TRT_LIB" "-l:libnvinfer.so.$TRT_MAJOR")
else
  # A stub carrying only libnvinfer's soname and getPluginRegistry: linking against it records
  # DT_NEEDED libnvinfer.so.<major>, which the real library satisfies at load time. Never shipped.
  echo 'extern "C" void* getPluginRegistry() { return nullptr; }' > "$tmp/stub.cpp"
  "$NVCC" -shared -cudart none -Xcompiler -fPIC -Xlinker "-soname=libnvinfer.so.$TRT_MAJOR" "$tmp/stub.cpp" \
    -o "$tmp/libnvinfer.so.$TRT_MAJOR" || { echo "error: cannot build the libnvinfer link stub" >&2; exit 1; }
  nvinfer=(-L "$tmp" "-l:libnvinfer.so.$TRT_MAJOR")
fi
"$NVCC" -shared "${gencode[@]}" "${libdirs[@]}" "${objs[@]}" -Xlinker --no-as-needed "${nvinfer[@]}" \
  -o "$OUT/.$LIB_NAME.tmp" || { rm -f "$OUT/.$LIB_NAME.tmp"; echo "error: linking $LIB_NAME failed" >&2; exit 1; }
mv -f "$OUT/.$LIB_NAME.tmp" "$OUT/$LIB_NAME"   # renamed into place: never a half-written library
echo "built $OUT/$LIB_NAME (nvcc ${version:-?}, sm ${CUDA_ARCH:-90}, TensorRT $TRT_MAJOR headers $TRT_INCLUDE)"
