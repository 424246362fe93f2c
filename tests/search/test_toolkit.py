"""search.toolkit: the TensorRT version and GPU model in a timing cache's name, found without TensorRT or CUDA."""
from __future__ import annotations

import subprocess

import pytest

from search import toolkit


@pytest.fixture(autouse=True)
def fresh():
    toolkit.tensorrt_version.cache_clear()
    toolkit.gpu_name.cache_clear()
    yield
    toolkit.tensorrt_version.cache_clear()
    toolkit.gpu_name.cache_clear()


@pytest.mark.parametrize("name,slug", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"),
                                       ("Tesla T4", "t4"), ("NVIDIA GeForce RTX 4090", "rtx-4090"),
                                       ("unknown", "unknown"), ("", "unknown")])
def test_gpu_slug(name, slug):
    assert toolkit.gpu_slug(name) == slug


def test_gpu_name_from_nvidia_smi_and_unknown_without_it(monkeypatch):
    seen = []

    def smi(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="NVIDIA H200\n", stderr="")
    monkeypatch.setattr(toolkit.subprocess, "run", smi)
    assert toolkit.gpu_name("1") == "NVIDIA H200" and seen[0][-2:] == ["-i", "1"]

    def missing(cmd, **kw):
        raise FileNotFoundError("nvidia-smi")
    monkeypatch.setattr(toolkit.subprocess, "run", missing)
    assert toolkit.gpu_name("2") == "unknown"


def test_tensorrt_version_from_whichever_distribution_installs_it(monkeypatch):
    def version(dist):
        if dist == "tensorrt-cu12":
            return "10.13.0"
        raise toolkit.importlib.metadata.PackageNotFoundError(dist)
    monkeypatch.setattr(toolkit.importlib.metadata, "version", version)
    assert toolkit.tensorrt_version() == "10.13.0"


def _keyed(monkeypatch, key: str) -> None:
    monkeypatch.setattr(toolkit, "toolkit_key", lambda gpu: key)


def test_the_cache_name_carries_tensorrt_and_gpu_and_the_gpu_id_with_several(monkeypatch, tmp_path):
    _keyed(monkeypatch, "trt10.13.0-b200")
    assert toolkit.timing_cache_file(tmp_path, "decoder", "contest", "0", False).name == \
        "timing-decoder-contest-trt10.13.0-b200.cache"
    assert toolkit.timing_cache_file(tmp_path, "decoder", "serving", "3", True).name == \
        "timing-decoder-serving-trt10.13.0-b200-gpu3.cache"


def test_an_unkeyed_cache_seeds_the_keyed_one_only_on_the_rig_it_came_from(monkeypatch, tmp_path, capsys):
    (tmp_path / "timing-decoder-contest.cache").write_bytes(b"rig cache")
    _keyed(monkeypatch, "trt10.13.0-h200")                  # another TensorRT: starts empty
    other = toolkit.timing_cache_file(tmp_path, "decoder", "contest", "0", False)
    assert not other.exists()
    _keyed(monkeypatch, toolkit.LEGACY_TOOLKIT)
    path = toolkit.timing_cache_file(tmp_path, "decoder", "contest", "0", False)
    assert path.read_bytes() == b"rig cache" and "starts from timing-decoder-contest.cache" in capsys.readouterr().err
    path.write_bytes(b"grown since")                       # once only: the keyed cache is the one that grows
    assert toolkit.timing_cache_file(tmp_path, "decoder", "contest", "0", False).read_bytes() == b"grown since"


def test_tensorrt_version_of_a_module_without_pip_metadata(monkeypatch, tmp_path):
    pkg = tmp_path / "tensorrt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('import ctypes\n__version__ = "8.6.0"\n')

    def none(dist):
        raise toolkit.importlib.metadata.PackageNotFoundError(dist)
    monkeypatch.setattr(toolkit.importlib.metadata, "version", none)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert toolkit.tensorrt_version() == "8.6.0"


@pytest.mark.parametrize("flags,family", [({}, "fp32"), ({"tf32": True}, "tf32"), ({"fp16": True}, "fp16"),
                                          ({"fp16": True, "tf32": True}, "fp16-tf32"),
                                          ({"int8": True, "fp16": True}, "int8-fp16"),
                                          ({"layer_precision": {"feed_forward": "int8"}}, "int8")])
def test_precision_family(flags, family):
    from engine.config import BuildConfig

    assert toolkit.precision_family(BuildConfig("decoder", **flags)) == family


def test_a_family_cache_starts_from_the_runs_cache_once(tmp_path):
    from engine.config import BuildConfig

    base = tmp_path / "timing-decoder-contest-trt8.6.0-h200.cache"
    assert toolkit.family_cache(base, BuildConfig("decoder")) == tmp_path / "timing-decoder-contest-trt8.6.0-h200-fp32.cache"
    assert not list(tmp_path.iterdir())                    # nothing to start from: TensorRT starts it empty
    base.write_bytes(b"every family")
    fp16 = toolkit.family_cache(base, BuildConfig("decoder", fp16=True))
    assert fp16.name.endswith("-h200-fp16.cache") and fp16.read_bytes() == b"every family"
    fp16.write_bytes(b"fp16 grown")
    assert toolkit.family_cache(base, BuildConfig("decoder", fp16=True)).read_bytes() == b"fp16 grown"
