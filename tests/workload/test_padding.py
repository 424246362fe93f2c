"""workload.padding: padding feeds up to a profile, trimming outputs back, and the onnxruntime proof."""
from __future__ import annotations

import numpy as np
import pytest

import workload.padding as padding
from workload.errors import WorkloadError
from workload.padding import PAD_SPECS, PadSpec, pad_feeds, prove_frame_padding, trim_outputs
from workload.shapes import BEAM, D_MODEL, HYP_LEN, encoder_out_len

ENC, DEC = PAD_SPECS["encoder"], PAD_SPECS["decoder"]


def speech_feeds(batch: int = 3, frames: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = np.array([frames] + [max(7, frames // (i + 2)) for i in range(batch - 1)], dtype=np.int32)
    speech = rng.standard_normal((batch, frames, 80)).astype(np.float32)
    for i, n in enumerate(lengths):
        speech[i, n:] = 0.0                      # WeNet pads fbank with zeros
    return {"speech": speech, "speech_lengths": lengths}


def test_pad_feeds_repeats_the_last_row_and_zero_pads_frames():
    feeds = speech_feeds(3, 40)
    out = pad_feeds(ENC, feeds, {"speech": (4, 64, 80), "speech_lengths": (4,)})
    s, n = out["speech"], out["speech_lengths"]
    assert s.shape == (4, 64, 80) and s.dtype == np.float32 and s.flags.c_contiguous
    assert n.tolist() == feeds["speech_lengths"].tolist() + [feeds["speech_lengths"][-1]] and n.dtype == np.int32
    np.testing.assert_array_equal(s[:3, :40], feeds["speech"])
    np.testing.assert_array_equal(s[3, :40], feeds["speech"][2])              # a valid utterance, not zeros
    assert not s[:, 40:].any()
    same = pad_feeds(ENC, feeds, {"speech": (3, 40, 80), "speech_lengths": (3,)})
    assert same["speech"] is feeds["speech"]                                   # nothing to pad: no copy


def test_pad_feeds_decoder():
    rng = np.random.default_rng(1)
    feeds = {"encoder_out": rng.standard_normal((2, 24, D_MODEL)).astype(np.float32),
             "encoder_out_lens": np.array([24, 10], np.int32),
             "hyps_pad_sos_eos": rng.integers(0, 100, (2, BEAM, HYP_LEN)).astype(np.int64),
             "hyps_lens_sos": np.full((2, BEAM), 5, np.int32), "ctc_score": -rng.random((2, BEAM)).astype(np.float32)}
    target = {"encoder_out": (4, 32, D_MODEL), "encoder_out_lens": (4,), "hyps_pad_sos_eos": (4, BEAM, HYP_LEN),
              "hyps_lens_sos": (4, BEAM), "ctc_score": (4, BEAM)}
    out = pad_feeds(DEC, feeds, target)
    assert {k: v.shape for k, v in out.items()} == target
    np.testing.assert_array_equal(out["hyps_pad_sos_eos"][2:], np.repeat(feeds["hyps_pad_sos_eos"][1:], 2, axis=0))
    assert not out["encoder_out"][:, 24:].any() and out["encoder_out_lens"].tolist() == [24, 10, 10, 10]
    with pytest.raises(WorkloadError, match="hyps_pad_sos_eos: cannot pad axis 2 from 64 to 65"):
        pad_feeds(DEC, feeds, {**target, "hyps_pad_sos_eos": (4, BEAM, HYP_LEN + 1)})


@pytest.mark.parametrize("target,match", [
    ({"speech": (3, 32, 80), "speech_lengths": (3,)}, "speech: cannot pad axis 1 from 40 to 32"),      # shrink
    ({"speech": (2, 40, 80), "speech_lengths": (2,)}, "cannot pad axis 0 from 3 to 2"),
    ({"speech": (3, 40, 96), "speech_lengths": (3,)}, "speech: cannot pad axis 2 from 80 to 96"),     # features
    ({"speech": (3, 40, 80, 1), "speech_lengths": (3,)}, "cannot pad shape .* to rank-4"),
])
def test_pad_feeds_refuses(target, match):
    with pytest.raises(WorkloadError, match=match):
        pad_feeds(ENC, speech_feeds(3, 40), target)


def test_trim_outputs_gives_back_the_exact_shapes():
    rng = np.random.default_rng(2)
    true = {"speech": (3, 40, 80), "speech_lengths": (3,)}
    padded = {"encoder_out": rng.standard_normal((4, encoder_out_len(64), D_MODEL)).astype(np.float32),
              "encoder_out_lens": np.arange(4, dtype=np.int32)}
    out = trim_outputs(ENC, padded, true)
    assert out["encoder_out"].shape == (3, encoder_out_len(40), D_MODEL) == (3, 9, D_MODEL)
    np.testing.assert_array_equal(out["encoder_out"], padded["encoder_out"][:3, :9])
    assert out["encoder_out_lens"].tolist() == [0, 1, 2] and out["encoder_out"].flags.c_contiguous
    dec = trim_outputs(DEC, {"decoder_out": np.zeros((4, BEAM, HYP_LEN, 7), np.float32),
                             "best_index": np.arange(4, dtype=np.int32)},
                       {"encoder_out": (2, 24, D_MODEL), "encoder_out_lens": (2,)})
    assert dec["decoder_out"].shape == (2, BEAM, HYP_LEN, 7) and dec["best_index"].tolist() == [0, 1]


# --- the proof in onnxruntime ---------------------------------------------------------------
TINY_PAD = PadSpec(batch_axes={"speech": 0, "speech_lengths": 0, "encoder_out": 0, "encoder_out_lens": 0},
                   frame_axes={"speech": 1}, output_frames=lambda s: {"encoder_out": (1, s["speech"][1])})


def _tiny(tmp_path, monkeypatch):
    import onnx

    from engine.tiny_model import tiny_encoder_model
    monkeypatch.setitem(padding.PAD_SPECS, "tiny", TINY_PAD)     # the probe's graph keeps T frames
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_encoder_model(), str(path))
    return path


def test_the_probe_graph_is_exact_under_frame_padding(tmp_path, monkeypatch):
    """It does not mask by length, but no op mixes frames except a 3x3 convolution whose own zero
    padding equals zero frames appended: padding frames changes nothing it returns."""
    from engine.tiny_model import tiny_feeds
    path = _tiny(tmp_path, monkeypatch)
    proof = prove_frame_padding(path, "tiny", tiny_feeds(3, 40), pad_frames=24)
    assert proof.exact and proof.max_abs_diff == {"encoder_out": 0.0, "encoder_out_lens": 0.0}
    assert proof.shapes == ["speech[3, 40, 80],speech_lengths[3]", "speech[4, 64, 80],speech_lengths[4]"]
    assert proof.to_dict()["exact"] is True
    wrong = prove_frame_padding(path, "encoder", tiny_feeds(3, 40), pad_frames=24)   # trims to T' of a WeNet encoder
    assert not wrong.exact and wrong.max_abs_diff["encoder_out"] == float("inf")


def test_a_graph_that_averages_over_frames_is_not_exact(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    from engine.tiny_model import tiny_feeds
    monkeypatch.setitem(padding.PAD_SPECS, "tiny", TINY_PAD)
    nodes = [helper.make_node("ReduceMean", ["speech"], ["mean"], axes=[1], keepdims=1),     # no mask
             helper.make_node("Sub", ["speech", "mean"], ["encoder_out"]),
             helper.make_node("Identity", ["speech_lengths"], ["encoder_out_lens"])]
    graph = helper.make_graph(
        nodes, "mean_over_frames",
        [helper.make_tensor_value_info("speech", TensorProto.FLOAT, ["B", "T", 80]),
         helper.make_tensor_value_info("speech_lengths", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("encoder_out", TensorProto.FLOAT, ["B", "T", 80]),
         helper.make_tensor_value_info("encoder_out_lens", TensorProto.INT32, ["B"])])
    path = tmp_path / "mean.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    proof = prove_frame_padding(path, "tiny", tiny_feeds(3, 40), pad_frames=24)
    assert not proof.exact and proof.max_abs_diff["encoder_out"] > 1e-2
    assert proof.max_abs_diff["encoder_out_lens"] == 0.0                # batch padding alone is harmless
    assert prove_frame_padding(path, "tiny", tiny_feeds(3, 40), pad_frames=0).exact


def test_the_wenet_export(tiny_onnx, tiny_model_config):
    """The tiny WeNet export (contest style). Padding batch rows is exact, and so is padding the
    decoder's frames. Padding the encoder's frames is not: WeNet subsamples the length mask with
    x_mask[:, :, :-2:2] twice, so a row as long as the input gains one valid frame once the input
    is longer (encoder_out_lens + 1, and that frame reaches the attention). Frame buckets for the
    encoder need this proof to pass; today it fails."""
    from workload.data import make_inputs
    enc = make_inputs("encoder", 3, 100, seed=0, config=tiny_model_config)
    assert enc["speech_lengths"][0] == 100                             # row 0 spans the input
    assert prove_frame_padding(tiny_onnx["encoder"], "encoder", enc, pad_frames=0).exact
    proof = prove_frame_padding(tiny_onnx["encoder"], "encoder", enc, pad_frames=28)
    assert not proof.exact and proof.max_abs_diff["encoder_out_lens"] == 1.0
    dec = make_inputs("decoder", 3, 100, seed=0, config=tiny_model_config)
    assert prove_frame_padding(tiny_onnx["decoder"], "decoder", dec, pad_frames=8).exact
