"""Plugin-library loading and discovery (CPU); registry listing needs TensorRT (GPU test file)."""
from __future__ import annotations

import ctypes.util
import importlib.util
from pathlib import Path

import pytest

from plugins.library import PluginLibraryError, discover_plugin_libraries, load_plugin_libraries, \
    loaded_libraries, missing_creators


def _a_real_shared_library() -> Path:
    name = ctypes.util.find_library("m") or "libm.so.6"
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib/aarch64-linux-gnu",
              "/usr/lib/aarch64-linux-gnu", "/lib", "/usr/lib"):
        p = Path(d) / name
        if p.is_file():
            return p
    pytest.skip("no libm found to load")


def test_missing_library(tmp_path):
    with pytest.raises(PluginLibraryError, match="does not exist"):
        load_plugin_libraries([tmp_path / "libnope.so"])


def test_not_a_shared_object(tmp_path):
    fake = tmp_path / "libfake.so"
    fake.write_text("this is not an ELF file")
    with pytest.raises(PluginLibraryError, match="not a shared object"):
        load_plugin_libraries([fake])


def test_broken_shared_object(tmp_path):
    broken = tmp_path / "libbroken.so"
    broken.write_bytes(b"\x7fELF" + b"\x00" * 60)   # ELF magic, garbage header
    with pytest.raises(PluginLibraryError, match="cannot load plugin library .*libbroken.so"):
        load_plugin_libraries([broken])


def test_loads_a_real_library_once(tmp_path):
    lib = _a_real_shared_library()
    link = tmp_path / "libplugin_alias.so"
    link.symlink_to(lib)
    first = load_plugin_libraries([link])
    again = load_plugin_libraries([lib])
    assert first == again == [lib.resolve()]
    assert lib.resolve() in loaded_libraries()


def test_discover(tmp_path):
    for name in ("b.so", "a.so", "notes.txt", "c.so.1"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.so").write_text("x")
    assert discover_plugin_libraries(tmp_path) == [tmp_path / "a.so", tmp_path / "b.so"]
    assert discover_plugin_libraries(tmp_path / "sub") == [tmp_path / "sub" / "d.so"]
    with pytest.raises(PluginLibraryError, match="does not exist"):
        discover_plugin_libraries(tmp_path / "missing")


def test_missing_creators():
    have = [("CustomSkipLayerNormPluginDynamic", "1"), ("CustomSkipLayerNormPluginDynamic", "2")]
    assert missing_creators([("CustomSkipLayerNormPluginDynamic", "1"), ("LayerNorm", "1")], have) == \
        [("LayerNorm", "1")]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_is_imported_lazily():
    import plugins.library as lib  # imports without TensorRT
    with pytest.raises(ImportError):
        lib.plugin_creators()
    with pytest.raises(ImportError):
        lib.init_builtin_plugins()
