"""plugins: rewrites to TensorRT plugin ops (registered in candidates' framework as kind "plugin")
and plugin-library loading. Importing the package registers the rewrites.

    from plugins import apply_plugins, available_plugins
    model, sites = apply_plugins(model, ["skip_layernorm_plugin"])
"""
from plugins.rewrites import (  # noqa: F401
    PLUGIN_DOMAIN,
    apply_plugins,
    available_plugins,
    register_plugin,
    required_creators,
    usable_plugins,
)
from plugins.library import (  # noqa: F401
    PluginLibraryError,
    discover_plugin_libraries,
    init_builtin_plugins,
    load_plugin_libraries,
    missing_creators,
    plugin_creators,
)
from plugins import layernorm_plugin, skip_layernorm, wenet_plugins  # noqa: F401,E402  (registration)
