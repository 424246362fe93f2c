"""Test data: determinism, the contest's layout, reference outputs that the ONNX export reproduces."""
from __future__ import annotations

import numpy as np
import pytest

from workload_helpers import one_torch_thread, run_ort, run_torch

from workload import shapes
from workload.data import (CALIBRATION_BATCHES, CALIBRATION_SHAPE, encoder_mask_lengths, generate,
                           load_calibration, make_inputs, parse_data_grid)
from workload.errors import WorkloadError
from workload.model import build_model
from workload.model_config import ModelConfig, default_cmvn

MODELS = ("encoder", "decoder")


@pytest.mark.parametrize("model_kind", MODELS)
@pytest.mark.parametrize("config", [None, ModelConfig.tiny()], ids=["aishell", "tiny"])
def test_same_seed_same_arrays_other_seed_other_arrays(model_kind, config):
    a = make_inputs(model_kind, 4, 64, 7, config)
    b = make_inputs(model_kind, 4, 64, 7, config)
    c = make_inputs(model_kind, 4, 64, 8, config)
    assert a.keys() == b.keys() == c.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    assert not np.array_equal(a[next(iter(a))], c[next(iter(a))])   # the main input differs too


def test_encoder_inputs():
    cfg = ModelConfig.aishell()
    feeds = make_inputs("encoder", 16, 64, 3)
    speech, lengths = feeds["speech"], feeds["speech_lengths"]
    assert speech.dtype == np.float32 and speech.shape == (16, 64, 80)
    assert lengths.dtype == np.int32 and lengths.shape == (16,)
    assert lengths[0] == 64 and (lengths[1:] < 64).all() and (lengths >= 7).all()
    assert len(set(lengths.tolist())) > 3
    for row, n in zip(speech, lengths):
        assert (row[n:] == 0).all() and (row[:n] != 0).all()
    # CMVN-consistent: normalized valid frames are ~N(0, 1)
    mean, istd = default_cmvn(cfg.feature_dim)
    valid = np.concatenate([(row[:n] - mean) * istd for row, n in zip(speech, lengths)])
    assert abs(valid.mean()) < 0.05 and abs(valid.std() - 1) < 0.05


def test_decoder_inputs():
    cfg = ModelConfig.aishell()
    feeds = make_inputs("decoder", 8, 256, 5)
    t_out = shapes.encoder_out_len(256)
    assert feeds["encoder_out"].shape == (8, t_out, 256) and feeds["encoder_out"].dtype == np.float32
    lens = feeds["encoder_out_lens"]
    assert lens.dtype == np.int32 and lens[0] == t_out and (lens >= 1).all() and (lens <= t_out).all()
    hyps, hl = feeds["hyps_pad_sos_eos"], feeds["hyps_lens_sos"]
    assert hyps.shape == (8, 10, 64) and hyps.dtype == np.int32 and hl.shape == (8, 10) and hl.dtype == np.int32
    assert (hl >= 2).all() and (hl <= 63).all() and len(set(hl.ravel().tolist())) > 10
    assert (hyps[:, :, 0] == cfg.sos).all()
    for row, n in zip(hyps.reshape(-1, 64), hl.ravel()):
        tokens = row[1:n]
        assert len(tokens) == n - 1 and (tokens >= 0).all() and (tokens <= cfg.vocab - 2).all()
        assert (row[n:] == cfg.eos).all() and n < 64       # the eos is always there
    ctc = feeds["ctc_score"]
    assert ctc.shape == (8, 10) and ctc.dtype == np.float32 and (ctc < 0).all()
    assert (np.diff(ctc, axis=1) <= 0).all()          # best hypothesis first


def test_decoder_inputs_accept_a_given_encoder_output():
    cfg = ModelConfig.tiny()
    enc = np.ones((2, shapes.encoder_out_len(40), cfg.d_model), np.float32)
    feeds = make_inputs("decoder", 2, 40, 0, cfg, encoder_out=enc, encoder_out_lens=np.array([9, 4]))
    assert (feeds["encoder_out"] == 1).all() and feeds["encoder_out_lens"].tolist() == [9, 4]
    with pytest.raises(WorkloadError, match="shape"):
        make_inputs("decoder", 2, 41, 0, cfg, encoder_out=enc[:, :3])


@pytest.mark.parametrize("bad", [dict(frames=6), dict(batch=0), dict(model_kind="joiner"), dict(seed=-1)])
def test_make_inputs_rejects_bad_cases(bad):
    args = dict(model_kind="encoder", batch=2, frames=16, seed=0) | bad
    with pytest.raises(WorkloadError):
        make_inputs(args["model_kind"], args["batch"], args["frames"], args["seed"])


def test_encoder_mask_lengths_are_what_the_encoder_outputs(tiny_model_config):
    frames = 48
    lengths = np.array([48, 47, 46, 45, 44, 41, 40, 39, 13, 12, 11, 10, 9, 8, 7, 6, 1, 0, 100], np.int32)
    feeds = make_inputs("encoder", len(lengths), frames, 0, tiny_model_config)
    feeds["speech_lengths"] = lengths
    _, got = run_torch(build_model(tiny_model_config), "encoder", feeds)
    want = encoder_mask_lengths(lengths, frames)
    np.testing.assert_array_equal(got, want)
    assert want[0] == shapes.encoder_out_len(frames)
    np.testing.assert_array_equal(want, np.minimum((lengths + 3) // 4, shapes.encoder_out_len(frames)))


def test_parse_data_grid():
    assert parse_data_grid("1x16, 4x64") == ((1, 16), (4, 64))
    for bad in ("4y3", "1x16,", "0x16", "4x6", "x", ""):
        with pytest.raises(WorkloadError):
            parse_data_grid(bad)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, tiny_model_config):
    out = tmp_path_factory.mktemp("data")
    with one_torch_thread():
        written = generate(out, grid=[(1, 16), (3, 64)], seed=0, config=tiny_model_config, progress=False)
    return out, written


def test_generate_writes_the_contest_layout(generated, tiny_model_config):
    out, written = generated
    cfg = tiny_model_config
    names = sorted(p.name for p in written)
    assert names == sorted(["encoder-1-16.npz", "decoder-1-16.npz", "encoder-3-64.npz", "decoder-3-64.npz",
                            "calibration-encoder.npz", "calibration-decoder.npz"])
    assert not list(out.glob("*.part"))
    enc, dec = np.load(out / "encoder-3-64.npz"), np.load(out / "decoder-3-64.npz")
    t_out = shapes.encoder_out_len(64)
    assert enc.files == ["speech", "speech_lengths", "encoder_out", "encoder_out_lens"]
    assert enc["encoder_out"].shape == (3, t_out, cfg.d_model) and enc["encoder_out"].dtype == np.float32
    mask = enc["encoder_out_lens"]
    assert mask.dtype == np.bool_ and mask.shape == (3, 1, t_out)
    np.testing.assert_array_equal(mask.sum(axis=(1, 2)), encoder_mask_lengths(enc["speech_lengths"], 64))
    assert dec.files == ["encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score",
                         "decoder_out", "best_index"]
    np.testing.assert_array_equal(dec["encoder_out"], enc["encoder_out"])
    np.testing.assert_array_equal(dec["encoder_out_lens"], mask.sum(axis=(1, 2)))
    assert dec["encoder_out_lens"].dtype == np.int32 and dec["best_index"].dtype == np.int32
    assert dec["decoder_out"].shape == (3, 10, 63, cfg.vocab)
    # the speech is make_inputs' (so a test can rebuild any case without the files)
    again = make_inputs("encoder", 3, 64, 0, cfg)
    np.testing.assert_array_equal(enc["speech"], again["speech"])


def test_generated_references_match_the_onnx_export(generated, tiny_onnx):
    out, _ = generated
    for case in ("1-16", "3-64"):
        enc = np.load(out / f"encoder-{case}.npz")
        got = run_ort(tiny_onnx["encoder"], {k: enc[k] for k in ("speech", "speech_lengths")})
        np.testing.assert_allclose(got[0], enc["encoder_out"], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got[1], enc["encoder_out_lens"].sum(axis=(1, 2)))
        dec = np.load(out / f"decoder-{case}.npz")
        got = run_ort(tiny_onnx["decoder"], {k: dec[k] for k in dec.files[:5]})
        np.testing.assert_allclose(got[0], dec["decoder_out"], atol=1e-4, rtol=0)
        np.testing.assert_array_equal(got[1], dec["best_index"])


def test_generate_is_deterministic(generated, tmp_path, tiny_model_config):
    # (same settings, same arrays: a different torch thread count may change the last bits)
    out, _ = generated
    generate(tmp_path, grid=[(3, 64)], seed=0, config=tiny_model_config, calibration=False, progress=False)
    for name in ("encoder-3-64.npz", "decoder-3-64.npz"):
        a, b = np.load(out / name), np.load(tmp_path / name)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])


def test_calibration_sets(generated, tiny_model_config):
    out, _ = generated
    enc = load_calibration(out / "calibration-encoder.npz")
    dec = load_calibration(out / "calibration-decoder.npz")
    assert len(enc) == len(dec) == CALIBRATION_BATCHES
    batch, frames = CALIBRATION_SHAPE
    for e, d in zip(enc, dec):
        assert set(e) == {"speech", "speech_lengths"} and e["speech"].shape == (batch, frames, 80)
        assert set(d) == {"encoder_out", "encoder_out_lens", "hyps_pad_sos_eos", "hyps_lens_sos", "ctc_score"}
        assert d["encoder_out"].shape == (batch, shapes.encoder_out_len(frames), tiny_model_config.d_model)
        np.testing.assert_array_equal(d["encoder_out_lens"], encoder_mask_lengths(e["speech_lengths"], frames))
    assert not np.array_equal(enc[0]["speech"], enc[1]["speech"])
    # its own random stream: not the test cases' data at that shape
    case = make_inputs("encoder", batch, frames, 0, tiny_model_config)
    assert not any(np.array_equal(case["speech"], e["speech"]) for e in enc)


def test_load_calibration_rejects_other_layouts(tmp_path):
    np.savez(tmp_path / "bad.npz", speech=np.zeros(2))
    with pytest.raises(WorkloadError, match="<input>__<i>"):
        load_calibration(tmp_path / "bad.npz")
    np.savez(tmp_path / "gap.npz", speech__0=np.zeros(2), speech__2=np.zeros(2))
    with pytest.raises(WorkloadError, match="0..n-1"):
        load_calibration(tmp_path / "gap.npz")


def test_generate_rejects_bad_input(tmp_path, tiny_model_config):
    with pytest.raises(WorkloadError, match="frames"):
        generate(tmp_path, grid=[(1, 5)], config=tiny_model_config, progress=False)
    with pytest.raises(WorkloadError, match="device"):
        generate(tmp_path, grid=[(1, 16)], device="tpu", config=tiny_model_config, progress=False)
    assert not list(tmp_path.iterdir())
