"""Which graph passes and plugin rewrites a model's search space offers: the candidates and plugins
registries (other packages; imported lazily, optional on a checkout without them), and the plugin
rewrites whose TensorRT creators this process can load."""
from __future__ import annotations

import logging
from typing import Sequence

log = logging.getLogger("search")


def registered_passes(model: str) -> list[str]:
    try:
        import candidates
        return list(candidates.available_passes(model))
    except (ImportError, AttributeError) as exc:
        log.warning("no graph passes in the search space (candidates registry unavailable: %s)", exc)
        return []


def registered_plugins(model: str) -> list[str]:
    try:
        import plugins
        return list(plugins.available_plugins(model))
    except (ImportError, AttributeError) as exc:
        log.warning("no plugins in the search space (plugins registry unavailable: %s)", exc)
        return []


def loadable_plugins(model: str, plugin_libs: Sequence[str] = ()) -> list[str]:
    """The registered plugin rewrites whose TensorRT creators exist once `plugin_libs` are loaded.

    A rewrite without its creator makes an ONNX that TensorRT cannot parse (trials 14-18 of the
    decoder study, run without the plugin library), so it stays out of the space. Where TensorRT
    cannot be asked (a CPU machine, the stand-in worker) every registered rewrite stays.
    """
    names = registered_plugins(model)
    if not names:
        return names
    from engine.backend import get_backend
    from engine.errors import EngineError, first_line

    try:
        backend = get_backend()
        backend.load_plugins(plugin_libs)
        creators = backend.plugin_creators()
    except (ImportError, EngineError) as exc:
        log.info("plugin creators unknown here (%s): every registered plugin rewrite stays in the space",
                 first_line(exc))
        return names
    import plugins
    usable = set(plugins.usable_plugins(creators, model))
    dropped = [n for n in names if n not in usable]
    if dropped:
        log.warning("left out of the %s space, their TensorRT plugin creators are not loaded (--plugin-lib?): %s",
                    model, ", ".join(dropped))
    return [n for n in names if n in usable]
