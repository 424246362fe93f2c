"""plugins/build_plugins.sh and build.sh's plugin step; compiling needs nvcc and TensorRT headers, no GPU.

The compile tests skip (saying what is missing) where `build_plugins.sh --check` finds no nvcc or
no headers: `python3 -m pip install nvidia-cuda-nvcc nvidia-cuda-runtime nvidia-cuda-cccl` brings
nvcc, and TRT_INCLUDE (or ../shared/third_party/tensorrt-*/include) the headers. What they check
without a GPU: the library compiles for sm_90 and links, exports both creators, depends on
libnvinfer (not on a libcudart of some version), and its registrars, fields, validation,
serialization and format checks behave (host_check.cpp, against a recording registry).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "plugins" / "build_plugins.sh"
LIB = "libwenet_trt_plugins.so"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(cmd, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600, **kw)


def _toolchain() -> dict[str, str]:
    res = _run(["bash", str(SCRIPT), "--check"])
    if res.returncode == 3:
        pytest.skip(f"cannot compile the plugins here: {res.stdout.strip()}")
    assert res.returncode == 0, res.stderr
    found = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    return {"nvcc": found["nvcc"].split(" (")[0], "include": found["TensorRT headers"].split(" (")[0]}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    _toolchain()
    out = tmp_path_factory.mktemp("plugins")
    res = _run(["bash", str(SCRIPT)], env={"OUT": str(out)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(f"built {out}/{LIB}")
    return out / LIB


def test_library_exports_the_creators_and_needs_libnvinfer(built):
    defined = _run(["nm", "-D", "-C", "--defined-only", str(built)]).stdout
    for creator in ("LayerNormCreator", "LogSoftmaxCreator"):
        for method in ("createPlugin", "deserializePlugin"):
            assert f"wenet_trt::{creator}::{method}" in defined
        assert f"nvinfer1::PluginRegistrar<wenet_trt::{creator}>" in defined   # REGISTER_TENSORRT_PLUGIN
    undefined = _run(["nm", "-D", "--undefined-only", str(built)]).stdout.split()
    assert "getPluginRegistry" in undefined     # resolved against libnvinfer when loaded
    assert not [s for s in undefined if s.startswith("cuda")]   # CUDA runtime linked statically
    needed = [line for line in _run(["readelf", "-d", str(built)]).stdout.splitlines() if "NEEDED" in line]
    assert any("[libnvinfer.so.8]" in line for line in needed)
    assert not any("libcudart" in line for line in needed)
    sections = _run(["readelf", "-S", "-W", str(built)]).stdout
    assert ".nv_fatbin" in sections             # device code is in


def test_host_side_behaviour_against_a_recording_registry(built, tmp_path):
    tc = _toolchain()
    exe = tmp_path / "host_check"
    res = _run([tc["nvcc"], "-std=c++17", "-x", "c++", str(Path(__file__).with_name("host_check.cpp")),
                "-I", tc["include"], "-Xcompiler", "-Wno-deprecated-declarations", "-cudart", "none",
                "-Xlinker", "-export-dynamic", "-ldl", "-o", str(exe)])
    assert res.returncode == 0, res.stderr
    # an empty libnvinfer.so.8 satisfies the library's dependency; host_check defines getPluginRegistry
    (tmp_path / "stub.cpp").write_text("int wenet_host_check_stub;\n")
    res = _run([tc["nvcc"], "-shared", "-cudart", "none", "-Xcompiler", "-fPIC", "-Xlinker", "-soname=libnvinfer.so.8",
                str(tmp_path / "stub.cpp"), "-o", str(tmp_path / "libnvinfer.so.8")])
    assert res.returncode == 0, res.stderr
    res = _run([str(exe), str(built)], env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "creator WenetLayerNorm 1" in res.stdout and "creator WenetLogSoftmax 1" in res.stdout
    assert res.stdout.strip().endswith(" 0 failures")
    # the refusals say why, one line each, naming the plugin
    assert "[WenetLayerNorm] error: cannot create: gamma must have 1..1024 values" in res.stderr
    assert "[WenetLogSoftmax] error:" in res.stderr


def test_build_sh_writes_the_library_next_to_the_plans(tmp_path):
    _toolchain()
    res = _run(["bash", str(ROOT / "build.sh"), "--plugins-only"], env={"OUT_DIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("== plugins: built") and (tmp_path / LIB).is_file()


# --- no compiler needed ---------------------------------------------------------------------
@pytest.mark.parametrize("env,message", [
    ({"NVCC": "/nonexistent/nvcc"}, "NVCC=/nonexistent/nvcc is not an executable"),
    ({"TRT_INCLUDE": "/nonexistent"}, "TRT_INCLUDE=/nonexistent has no NvInfer.h"),
    ({"CUDA_ARCH": "sm_90"}, "CUDA_ARCH=sm_90 is not a list of SM versions"),
    ({"TRT_LIB": "/nonexistent"}, "TRT_LIB=/nonexistent has no libnvinfer.so"),
])
def test_bad_explicit_input_is_one_line_and_status_2(env, message, tmp_path):
    for cmd in (["bash", str(SCRIPT)], ["bash", str(ROOT / "build.sh"), "--plugins-only"]):
        res = _run(cmd, env={**env, "OUT_DIR": str(tmp_path)})
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        assert res.stderr.strip().splitlines() == [res.stderr.strip()] and message in res.stderr


def _hermetic_copy(tmp_path: Path) -> Path:
    """build.sh and plugins/build_plugins.sh alone in a folder: no .gpu/ or ../shared headers beside them."""
    root = tmp_path / "repo"
    (root / "plugins").mkdir(parents=True)
    shutil.copy(ROOT / "build.sh", root / "build.sh")
    shutil.copy(SCRIPT, root / "plugins" / "build_plugins.sh")
    return root


def test_missing_headers_skip_with_one_line(tmp_path):
    if any(Path(d, "NvInfer.h").is_file() for d in ("/usr/include/x86_64-linux-gnu", "/usr/local/tensorrt/include")):
        pytest.skip("this machine has system-wide TensorRT headers")
    root = _hermetic_copy(tmp_path)
    res = _run(["bash", str(root / "plugins" / "build_plugins.sh")], env={"NVCC": "/bin/true"})
    assert res.returncode == 3 and res.stdout.startswith("skip: no TensorRT headers found")
    res = _run(["bash", str(root / "build.sh"), "--plugins-only"], env={"NVCC": "/bin/true", "OUT_DIR": str(tmp_path)})
    assert res.returncode == 0 and res.stdout.strip() == \
        "== plugins: skipped, no TensorRT headers found (set TRT_INCLUDE to the folder with NvInfer.h)"
    assert not (tmp_path / LIB).exists()
    res = _run(["bash", str(root / "build.sh"), "--plugins-only"],
               env={"NVCC": "/bin/true", "OUT_DIR": str(tmp_path), "BUILD_PLUGINS": "on"})
    assert res.returncode == 2 and "BUILD_PLUGINS=on, but no TensorRT headers found" in res.stderr


def test_missing_nvcc_skips(tmp_path):
    if Path("/usr/local/cuda/bin/nvcc").exists():
        pytest.skip("/usr/local/cuda/bin/nvcc exists here (found without PATH)")
    root = _hermetic_copy(tmp_path)
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("dirname", "awk", "tr", "cat", "mkdir"):
        if shutil.which(tool):
            (bare / tool).symlink_to(shutil.which(tool))
    res = _run([shutil.which("bash"), str(root / "plugins" / "build_plugins.sh")], env={"PATH": str(bare)})
    assert res.returncode == 3 and res.stdout.startswith("skip: no nvcc found"), res.stdout + res.stderr


def test_build_plugins_off(tmp_path):
    res = _run(["bash", str(ROOT / "build.sh"), "--plugins-only"], env={"OUT_DIR": str(tmp_path), "BUILD_PLUGINS": "off"})
    assert res.returncode == 0 and res.stdout.strip() == "== plugins: skipped (BUILD_PLUGINS=off)"
    res = _run(["bash", str(ROOT / "build.sh"), "--plugins-only"], env={"BUILD_PLUGINS": "maybe"})
    assert res.returncode == 2 and "BUILD_PLUGINS=maybe is not auto, on or off" in res.stderr
