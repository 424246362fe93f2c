"""WeNet-style checkpoints: round trip, WeNet variants, clear one-line errors."""
from __future__ import annotations

import numpy as np
import pytest

from workload_helpers import run_ort, run_torch, torch

from workload.checkpoint import load_checkpoint, load_model, save_checkpoint
from workload.data import make_inputs
from workload.errors import CheckpointError, WorkloadError
from workload.export import export
from workload.model import build_model
from workload.model_config import ModelConfig


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_model_config):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-seed3.pt", tiny_model_config, seed=3)


def _same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_gives_the_same_weights_and_outputs(ckpt, tiny_model_config):
    loaded = load_model(tiny_model_config, seed=0, checkpoint=ckpt)       # seed 0 weights replaced
    original = build_model(tiny_model_config, seed=3)
    assert _same_state(loaded, original)
    assert not _same_state(loaded, build_model(tiny_model_config, seed=0))
    for kind in ("encoder", "decoder"):
        feeds = make_inputs(kind, 2, 50, 1, tiny_model_config)
        for a, b in zip(run_torch(loaded, kind, feeds), run_torch(original, kind, feeds)):
            np.testing.assert_array_equal(a, b)


def test_export_from_checkpoint(ckpt, tiny_model_config, tmp_path):
    path = export("decoder", tmp_path / "decoder.onnx", config=tiny_model_config, checkpoint=ckpt)
    feeds = make_inputs("decoder", 2, 50, 2, tiny_model_config)
    got, want = run_ort(path, feeds), run_torch(build_model(tiny_model_config, seed=3), "decoder", feeds)
    np.testing.assert_allclose(got[0], want[0], atol=1e-4, rtol=0)


def test_wenet_checkpoint_variants_load(tmp_path, tiny_model_config):
    """{"model": ...}, DDP's module. prefix, concat_linear leftovers, a U2++ bidirectional decoder."""
    cfg = tiny_model_config
    want = build_model(cfg, seed=5)
    state = {}
    for k, v in want.state_dict().items():
        if k.startswith("decoder."):
            state["module.decoder.left_decoder." + k[len("decoder."):]] = v
            state["module.decoder.right_decoder." + k[len("decoder."):]] = torch.zeros_like(v)
        else:
            state["module." + k] = v
    d = cfg.d_model
    state["module.encoder.encoders.0.concat_linear.weight"] = torch.zeros(d, 2 * d)
    state["module.decoder.left_decoder.decoders.0.concat_linear1.bias"] = torch.zeros(d)
    torch.save({"model": state, "epoch": 7}, str(tmp_path / "wenet.pt"))
    got = load_model(cfg, checkpoint=tmp_path / "wenet.pt")
    assert _same_state(got, want)


def _error(model, path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_and_unexpected_keys(tmp_path, tiny_model_config):
    model = build_model(tiny_model_config)
    state = build_model(tiny_model_config).state_dict()
    del state["encoder.after_norm.weight"]
    torch.save(state, str(tmp_path / "missing.pt"))
    assert "1 missing key(s): encoder.after_norm.weight" in _error(model, tmp_path / "missing.pt")
    state = build_model(tiny_model_config).state_dict()
    state["encoder.encoders.9.norm_ff.weight"] = torch.ones(3)
    torch.save(state, str(tmp_path / "extra.pt"))
    assert "1 unexpected key(s): encoder.encoders.9.norm_ff.weight" in _error(model, tmp_path / "extra.pt")


def test_wrong_shapes(tmp_path, tiny_model_config):
    wider = ModelConfig(**{**tiny_model_config.__dict__, "encoder_ffn": 96})
    torch.save(build_model(wider).state_dict(), str(tmp_path / "wider.pt"))
    message = _error(build_model(tiny_model_config), tmp_path / "wider.pt")
    assert "wrong shape" in message and "feed_forward" in message


def test_unreadable_files(tmp_path, tiny_model_config):
    model = build_model(tiny_model_config)
    assert "does not exist" in _error(model, tmp_path / "nope.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    assert "cannot be read" in _error(model, tmp_path / "garbage.pt")
    torch.save([1, 2], str(tmp_path / "list.pt"))
    assert "not a state_dict" in _error(model, tmp_path / "list.pt")
    assert issubclass(CheckpointError, WorkloadError)
