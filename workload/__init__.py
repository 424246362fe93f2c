"""The contest workload: the WeNet conformer models, their ONNX export and test data.

shapes.py        dimensions, test grid, profile bounds (numpy-free contract)
model_config.py  ModelConfig (aishell / tiny), default CMVN stats (no torch)
model.py         the PyTorch encoder/decoder with WeNet's module names (torch)
checkpoint.py    WeNet-style state_dict load/save (torch)
wrappers.py      the exported signatures: EncoderWrapper, DecoderWrapper (torch)
export.py        torch.onnx export, contest (opset 13) or modern (opset 17) style (torch)
data.py          make_inputs / load_calibration (numpy only), generate (torch)
__main__.py      `python -m workload {export,data,checkpoint}`
"""
