"""candidates: ONNX -> ONNX graph passes for the WeNet encoder and decoder, each verified in onnxruntime.

    from candidates import apply_passes, available_passes
    model, sites = apply_passes(onnx.load("encoder.onnx"), ["fold_constants", "layernorm"])
"""
from candidates.framework import (  # noqa: F401
    Pass,
    PassError,
    apply_passes,
    available_passes,
    get_pass,
    register_pass,
)
# Importing the package registers every pass (one module per pass, no central list to keep in sync);
# plugins/ registers its rewrites when it is imported (it depends on candidates/, not the other way).
import candidates.passes  # noqa: F401,E402
