"""Workloads: the spec of any ONNX model the tuner takes, and the contest's WeNet models.

spec.py          Workload: one YAML spec (ONNX, inputs and dims, outputs and thresholds, grid, ...)
spec_parts.py    the spec's sections and their strict parsers; dims.py: dimensions; groups.py: layer groups
registry.py      the known workloads: the shipped specs (specs/*.yaml) and loaded files, by name

shapes.py        dimensions, test grid, profile bounds (numpy-free contract)
model_config.py  ModelConfig (aishell / tiny), default CMVN stats (no torch)
model.py         the PyTorch encoder/decoder with WeNet's module names (torch)
checkpoint.py    WeNet-style state_dict load/save (torch)
wrappers.py      the exported signatures: EncoderWrapper, DecoderWrapper (torch)
export.py        torch.onnx export, contest (opset 13) or modern (opset 17) style (torch)
data.py          make_inputs / load_calibration (numpy only), generate (torch)
__main__.py      `python -m workload {export,data,checkpoint}`
"""
