"""Export the tiny 1-D CNN of tinycnn.yaml (README "Tune your own ONNX model") to ONNX.

    python3 examples/tinycnn/export_tinycnn.py --out examples/tinycnn/tinycnn.onnx

Seeded weights, so every export is the same model; batch and time are dynamic axes.
The CPU test tests/search/test_own_workload.py and the GPU host's `own-workload` step both use it.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def export_tinycnn(path: str | Path) -> Path:
    import torch
    nn = torch.nn

    class TinyCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(8, 16, 3, padding=1)
            self.conv2 = nn.Conv1d(16, 16, 3, padding=1)
            self.w = nn.Parameter(torch.randn(16, 10) * 0.3)
            self.b = nn.Parameter(torch.randn(10) * 0.1)

        def forward(self, x):
            h = self.conv1(x)
            h = h * torch.sigmoid(h)
            features = self.conv2(h)
            logits = torch.matmul(features.mean(dim=2), self.w) + self.b
            return torch.softmax(logits, dim=-1), features

    torch.manual_seed(0)
    model = TinyCNN().eval()
    torch.onnx.export(model, (torch.randn(2, 8, 12),), str(path), input_names=["x"],
                      output_names=["probs", "features"], opset_version=17, dynamo=False,
                      dynamic_axes={"x": {0: "B", 2: "T"}, "probs": {0: "B"}, "features": {0: "B", 2: "T"}})
    return Path(path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="ONNX file to write (beside tinycnn.yaml: the spec's `onnx`)")
    print(export_tinycnn(ap.parse_args().out))
