"""ONNX export of the encoder and decoder with the contest's tensor names.

Legacy TorchScript exporter (dynamo=False), constant folding on, as WeNet's
export_onnx_gpu.py. Styles:
- "contest": opset 13, LayerNorm decomposed into ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add
  like the contest's models;
- "modern": opset 17, LayerNormalization nodes.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

from workload import shapes
from workload.checkpoint import load_model
from workload.data import make_inputs
from workload.errors import WorkloadError
from workload.outputs import check_output_file
from workload.model import AsrModel
from workload.model_config import ModelConfig
from workload.wrappers import (DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS,
                               DecoderWrapper, EncoderWrapper)

STYLES = {"contest": 13, "modern": 17}
# Trace shape: a padded batch of 2 (row 1 shorter), so no size-1 dimension gets specialized.
_TRACE_BATCH, _TRACE_FRAMES = 2, 67

DYNAMIC_AXES = {
    "encoder": {"speech": {0: "B", 1: "T"}, "speech_lengths": {0: "B"},
                "encoder_out": {0: "B", 1: "T_OUT"}, "encoder_out_lens": {0: "B"}},
    # hyps_pad_sos_eos keeps dims 1, 2 fixed at beam x hyp_len (10 x 64), as the contest's engines need.
    "decoder": {"encoder_out": {0: "B", 1: "T"}, "encoder_out_lens": {0: "B"}, "hyps_pad_sos_eos": {0: "B"},
                "hyps_lens_sos": {0: "B"}, "ctc_score": {0: "B"}, "decoder_out": {0: "B"}, "best_index": {0: "B"}},
}


def wrapper(model: AsrModel, model_kind: str) -> torch.nn.Module:
    """The module exported for `model_kind`, in eval mode."""
    if model_kind == "encoder":
        return EncoderWrapper(model.encoder).eval()
    if model_kind == "decoder":
        return DecoderWrapper(model.decoder, model.config.beam, model.config.ctc_weight).eval()
    raise WorkloadError(f"unknown model {model_kind!r}; expected one of {', '.join(shapes.MODELS)}")


def export(model_kind: str, out_path: str | Path, style: str = "contest", config: ModelConfig | None = None,
           checkpoint: str | Path | None = None, seed: int = 0, *, model: AsrModel | None = None) -> Path:
    """Export one model to `out_path` and run onnx.checker on it.

    Weights: `model` if given, else the seeded default weights of `config`
    (aishell by default), replaced by `checkpoint` when given.
    """
    if style not in STYLES:
        raise WorkloadError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    if model is None:
        model = load_model(config, seed, checkpoint)
    module = wrapper(model, model_kind)
    cfg = model.config
    cmvn = (model.encoder.global_cmvn.mean.numpy(), model.encoder.global_cmvn.istd.numpy())
    feeds = make_inputs(model_kind, _TRACE_BATCH, _TRACE_FRAMES, 0, cfg, cmvn=cmvn)
    names_in, names_out = ((ENCODER_INPUTS, ENCODER_OUTPUTS) if model_kind == "encoder"
                           else (DECODER_INPUTS, DECODER_OUTPUTS))
    args = tuple(torch.from_numpy(feeds[n]) for n in names_in)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # tracer and deprecation warnings of the legacy exporter
        torch.onnx.export(module, args, str(out_path), dynamo=False, opset_version=STYLES[style],
                          do_constant_folding=True, input_names=list(names_in), output_names=list(names_out),
                          dynamic_axes=DYNAMIC_AXES[model_kind])
    if model_kind == "decoder":
        # The exporter names the Reshape-derived dims; they are fixed by the contest's
        # [B, beam, hyp_len] hyps, so declare them (readers and engines see [B, 10, 63, V]).
        _declare_output_dims(out_path, "decoder_out", ["B", cfg.beam, cfg.hyp_len - 1, cfg.vocab])
    onnx.checker.check_model(str(out_path))
    return out_path


def _declare_output_dims(path: Path, output: str, dims: list) -> None:
    model = onnx.load(str(path))
    (value,) = [o for o in model.graph.output if o.name == output]
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    onnx.save(model, str(path))


def export_all(out_dir: str | Path, style: str = "contest", models: tuple[str, ...] = shapes.MODELS,
               config: ModelConfig | None = None, checkpoint: str | Path | None = None,
               seed: int = 0) -> dict[str, Path]:
    """Export `models` to out_dir/{model}.onnx from one set of weights."""
    for m in models:
        if m not in shapes.MODELS:
            raise WorkloadError(f"unknown model {m!r}; expected one of {', '.join(shapes.MODELS)}")
    for m in models:
        check_output_file(Path(out_dir) / f"{m}.onnx", f"{m} ONNX file")
    model = load_model(config, seed, checkpoint)
    return {m: export(m, Path(out_dir) / f"{m}.onnx", style, model=model) for m in models}
