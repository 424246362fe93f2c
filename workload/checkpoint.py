"""WeNet-style checkpoints: a .pt holding a state_dict (or {"model": state_dict}).

Keys follow WeNet's ASRModel (`encoder.*`, `decoder.*`, `ctc.ctc_lo.*`). Accepted
on top of the exact key set, because real WeNet checkpoints carry them:
- `*.concat_linear*` (WeNet builds these even with concat_after=False; unused);
- `decoder.left_decoder.*` / `decoder.right_decoder.*` of a bidirectional (U2++)
  decoder: the left-to-right one is used, the right-to-left one dropped, as the
  contest's export did with reverse_weight 0.
Anything else missing or unexpected is a CheckpointError with one line.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from workload.errors import CheckpointError
from workload.outputs import check_output_file
from workload.model import AsrModel, build_model
from workload.model_config import ModelConfig

_UNUSED = re.compile(r"\.concat_linear\d?\.|^decoder\.right_decoder\.")


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors come in many types
        raise CheckpointError(f"checkpoint {path} cannot be read: {str(exc).splitlines()[0]}") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} is not a state_dict (a dict of tensors, or {{'model': ...}})")
    return obj


def _normalize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """WeNet variants -> this model's keys (see module docstring)."""
    out = {}
    for key, value in state.items():
        if key.startswith("module."):        # saved from DistributedDataParallel
            key = key[len("module."):]
        if key.startswith("decoder.left_decoder."):
            key = "decoder." + key[len("decoder.left_decoder."):]
        if _UNUSED.search(key):
            continue
        out[key] = value
    return out


def _short(keys: list[str], limit: int = 3) -> str:
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_checkpoint(model: AsrModel, path: str | Path) -> AsrModel:
    """Load a WeNet-style checkpoint into `model` (in place); returns it in eval mode."""
    path = Path(path)
    state = _normalize(_read(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_short(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_short(unexpected)}")
        raise CheckpointError(f"checkpoint {path} does not fit config {model.config.name!r}: " + "; ".join(parts))
    wrong = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"checkpoint {path} does not fit config {model.config.name!r}: {len(wrong)} tensor(s) of the wrong "
            f"shape, e.g. {k} {list(state[k].shape)} (model {list(own[k].shape)})")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.eval()


def load_model(config: ModelConfig | None = None, seed: int = 0, checkpoint: str | Path | None = None) -> AsrModel:
    """The model of `config`: seeded default weights, or those of `checkpoint` when given."""
    model = build_model(config, seed)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def save_checkpoint(path: str | Path, config: ModelConfig | None = None, seed: int = 0) -> Path:
    """Write the seeded model's state_dict as a WeNet-style checkpoint (for round-trip tests)."""
    path = check_output_file(path, "checkpoint file")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_model(config, seed).state_dict(), str(path))
    return path
