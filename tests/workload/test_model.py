"""The PyTorch model: WeNet checkpoint keys, dimensions, seeded weights, masking semantics."""
from __future__ import annotations

import re

import numpy as np
import pytest

from workload_helpers import run_torch, torch

from workload.data import make_inputs
from workload.errors import WorkloadError
from workload.model import build_model
from workload.model_config import ModelConfigError, ModelConfig

# WeNet's ASRModel keys (conformer encoder, transformer decoder), block index -> {i}.
WENET_KEY_PATTERNS = {
    "encoder.global_cmvn.mean", "encoder.global_cmvn.istd",
    *(f"encoder.embed.conv.{j}.{p}" for j in (0, 2) for p in ("weight", "bias")),
    "encoder.embed.out.0.weight", "encoder.embed.out.0.bias",
    *(f"encoder.encoders.{{i}}.self_attn.{m}.{p}" for m in ("linear_q", "linear_k", "linear_v", "linear_out")
      for p in ("weight", "bias")),
    "encoder.encoders.{i}.self_attn.linear_pos.weight",
    "encoder.encoders.{i}.self_attn.pos_bias_u", "encoder.encoders.{i}.self_attn.pos_bias_v",
    *(f"encoder.encoders.{{i}}.{m}.{w}.{p}" for m in ("feed_forward", "feed_forward_macaron")
      for w in ("w_1", "w_2") for p in ("weight", "bias")),
    *(f"encoder.encoders.{{i}}.conv_module.{m}.{p}" for m in ("pointwise_conv1", "depthwise_conv", "pointwise_conv2")
      for p in ("weight", "bias")),
    *(f"encoder.encoders.{{i}}.conv_module.norm.{p}" for p in
      ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
    *(f"encoder.encoders.{{i}}.{n}.{p}" for n in ("norm_ff", "norm_mha", "norm_ff_macaron", "norm_conv", "norm_final")
      for p in ("weight", "bias")),
    "encoder.after_norm.weight", "encoder.after_norm.bias",
    "ctc.ctc_lo.weight", "ctc.ctc_lo.bias",
    "decoder.embed.0.weight",
    *(f"decoder.decoders.{{i}}.{a}.{m}.{p}" for a in ("self_attn", "src_attn")
      for m in ("linear_q", "linear_k", "linear_v", "linear_out") for p in ("weight", "bias")),
    *(f"decoder.decoders.{{i}}.feed_forward.{w}.{p}" for w in ("w_1", "w_2") for p in ("weight", "bias")),
    *(f"decoder.decoders.{{i}}.norm{k}.{p}" for k in (1, 2, 3) for p in ("weight", "bias")),
    "decoder.after_norm.weight", "decoder.after_norm.bias",
    "decoder.output_layer.weight", "decoder.output_layer.bias",
}


@pytest.fixture(scope="module")
def aishell_model():
    return build_model(ModelConfig.aishell(), seed=0)  # init only, no forward pass


def test_state_dict_keys_are_wenets(aishell_model):
    keys = set(aishell_model.state_dict())
    patterns = {re.sub(r"\.(encoders|decoders)\.\d+\.", r".\1.{i}.", k) for k in keys}
    assert patterns == WENET_KEY_PATTERNS
    assert {k for k in keys if k.startswith("encoder.encoders.") and k.endswith("linear_q.weight")} == \
        {f"encoder.encoders.{i}.self_attn.linear_q.weight" for i in range(12)}
    assert "decoder.decoders.5.norm3.bias" in keys and "decoder.decoders.6.norm3.bias" not in keys


def test_aishell_dimensions(aishell_model):
    sd = aishell_model.state_dict()
    assert sd["encoder.embed.conv.0.weight"].shape == (256, 1, 3, 3)
    assert sd["encoder.embed.out.0.weight"].shape == (256, 256 * 19)
    assert sd["encoder.encoders.0.feed_forward.w_1.weight"].shape == (2048, 256)
    assert sd["encoder.encoders.0.conv_module.pointwise_conv1.weight"].shape == (512, 256, 1)
    assert sd["encoder.encoders.0.conv_module.depthwise_conv.weight"].shape == (256, 1, 15)
    assert sd["encoder.encoders.0.self_attn.pos_bias_u"].shape == (4, 64)
    assert sd["encoder.global_cmvn.mean"].shape == (80,)
    assert sd["decoder.embed.0.weight"].shape == (4233, 256)
    assert sd["decoder.decoders.0.feed_forward.w_1.weight"].shape == (2048, 256)
    assert sd["decoder.output_layer.weight"].shape == (4233, 256)
    assert sd["ctc.ctc_lo.weight"].shape == (4233, 256)
    assert not aishell_model.training


def test_weights_fixed_by_seed_and_global_rng_untouched(tiny_model_config):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(tiny_model_config, seed=1).state_dict()
    assert torch.equal(torch.rand(3), expected_next)
    b = build_model(tiny_model_config, seed=1).state_dict()
    c = build_model(tiny_model_config, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.encoders.0.self_attn.linear_q.weight"],
                           c["encoder.encoders.0.self_attn.linear_q.weight"])


def test_norm_parameters_and_statistics_are_not_defaults(tiny_model_config):
    sd = build_model(tiny_model_config).state_dict()
    bn = "encoder.encoders.0.conv_module.norm."
    assert not torch.allclose(sd[bn + "running_mean"], torch.zeros_like(sd[bn + "running_mean"]))
    assert not torch.allclose(sd[bn + "running_var"], torch.ones_like(sd[bn + "running_var"]))
    assert not torch.allclose(sd["encoder.encoders.0.norm_mha.weight"], torch.ones(tiny_model_config.d_model))
    assert not torch.allclose(sd["decoder.after_norm.bias"], torch.zeros(tiny_model_config.d_model))
    mean, istd = sd["encoder.global_cmvn.mean"], sd["encoder.global_cmvn.istd"]
    assert mean.min() > 5 and mean.std() > 0.5 and 0.2 < istd.min() and istd.max() < 1 and istd.std() > 0.01


def test_tiny_keeps_the_structure(tiny_model_config):
    cfg = tiny_model_config
    assert cfg.subsampled_bins == 19 and cfg.feature_dim == 80
    assert cfg.encoder_blocks >= 2 and cfg.decoder_blocks >= 1 and cfg.heads > 1
    assert (cfg.beam, cfg.hyp_len) == (10, 64) and cfg.sos == cfg.eos == cfg.vocab - 1


@pytest.mark.parametrize("kwargs", [dict(d_model=66), dict(cnn_kernel=8), dict(vocab=2), dict(feature_dim=6),
                                    dict(encoder_blocks=0)])
def test_inconsistent_config_is_rejected(kwargs):
    with pytest.raises(ModelConfigError):
        ModelConfig(**kwargs)
    assert issubclass(ModelConfigError, WorkloadError)


def test_encoder_zero_length_row_is_finite_and_rows_are_independent(tiny_model_config):
    """Empty rows give no NaN (fully masked attention -> zeros) and rows of a batch do not mix."""
    cfg = tiny_model_config
    model = build_model(cfg)
    feeds = make_inputs("encoder", 3, 80, 4, cfg)
    feeds["speech_lengths"] = np.array([80, 40, 0], np.int32)
    out, lens = run_torch(model, "encoder", feeds)
    assert np.isfinite(out).all()
    # Mask lengths: ceil(ceil(L/2)/2) capped at T' (10 for 40 frames, one more than the conv arithmetic).
    assert lens.tolist() == [19, 10, 0]
    alone = {"speech": feeds["speech"][1:2].copy(), "speech_lengths": np.array([40], np.int32)}
    out_alone, _ = run_torch(model, "encoder", alone)
    np.testing.assert_allclose(out[1], out_alone[0], atol=1e-4)


@pytest.mark.parametrize("ctc", ["random", "zero"])
def test_rescoring_matches_per_hypothesis_reference(tiny_model_config, ctc):
    """decoder_out / best_index of the batched wrapper equal an unbatched, unpadded computation.

    With zero CTC scores the attention score alone picks the best, so counting a padded
    position or a wrong beam row changes best_index.
    """
    cfg = tiny_model_config
    model = build_model(cfg, seed=3)
    feeds = make_inputs("decoder", 4, 60, 9, cfg)
    if ctc == "zero":
        feeds["ctc_score"][:] = 0.0
    decoder_out, best = run_torch(model, "decoder", feeds)
    assert decoder_out.shape == (4, cfg.beam, cfg.hyp_len - 1, cfg.vocab)
    scores = np.zeros((4, cfg.beam))
    with torch.no_grad():
        for b in range(4):
            t = int(feeds["encoder_out_lens"][b])
            memory = torch.from_numpy(feeds["encoder_out"][b:b + 1, :t])
            for k in range(cfg.beam):
                n = int(feeds["hyps_lens_sos"][b, k])
                hyp = torch.from_numpy(feeds["hyps_pad_sos_eos"][b, k, :n + 1]).long()
                logits = model.decoder(memory, torch.ones(1, 1, t, dtype=torch.bool), hyp[None, :n],
                                       torch.tensor([n]))
                logp = torch.log_softmax(logits[0], -1).numpy()
                np.testing.assert_allclose(decoder_out[b, k, :n], logp, atol=1e-4)
                scores[b, k] = logp[np.arange(n), hyp[1:].numpy()].sum() + 0.5 * feeds["ctc_score"][b, k]
    assert best.dtype == np.int32
    assert best.tolist() == np.argmax(scores, axis=1).tolist()
