"""The shipped WeNet specs reproduce what the project hard-coded before workload specs.

The expected values are frozen copies of the constants and functions the specs replaced
(scoring.metrics.RULES, engine.layer_groups._KIND_PATTERNS, workload.padding.PAD_SPECS,
workload.shapes.input_shapes, search.space's bucket choices, search.seeds' buckets,
search.precision_strategies' orders and INT8 groups, the harness loop, the study names), so
the test fails when a spec drifts from them.
"""
from __future__ import annotations

import re

import pytest

from workload import registry
from workload.spec import load_spec

# --- today's behaviour, frozen --------------------------------------------------------------
RULES = {   # (name, eps, max_abs, max_rel)
    "encoder": (("encoder_out", 5e-5, 3.5e-2, 2e-3), ("encoder_out_lens", 1e-5, None, 1e-1)),
    "decoder": (("decoder_out", 1e-5, 4e-1, 2e-4), ("best_index", 1e-5, None, 1e-1)),
}
KIND_PATTERNS = {
    "encoder": (("softmax", r"(self_attn|src_attn)/.*Softmax"), ("subsampling", r"/embed/|/global_cmvn/"),
                ("attention", r"/self_attn/"), ("feed_forward", r"/feed_forward(_macaron)?/"),
                ("conv_module", r"/conv_module/"), ("norm", r"/(norm_\w+|after_norm|norm)/|LayerNorm")),
    "decoder": (("softmax", r"(self_attn|src_attn)/.*Softmax"), ("embedding", r"/embed/"),
                ("self_attention", r"/self_attn/"), ("cross_attention", r"/src_attn/"),
                ("feed_forward", r"/feed_forward/"), ("norm", r"/(norm\d|after_norm)/|LayerNorm"),
                ("output", r"/output_layer/|LogSoftmax|/scoring/")),
}
BLOCK = r"/(?:encoders|decoders)\.(\d+)/"
GRID = tuple((b, t) for b in (1, 4, 16) for t in (16, 64, 256, 1024))
STRESS_GRID = tuple((64, t) for t in (16, 64, 256, 1024))
TOPOLOGICAL_KINDS = {
    "encoder": ("subsampling", "norm", "feed_forward", "attention", "softmax", "conv_module"),
    "decoder": ("embedding", "norm", "self_attention", "softmax", "cross_attention", "feed_forward", "output"),
}
INT8_GROUPS = {"encoder": ("feed_forward", "conv_module"), "decoder": ("feed_forward",)}
PRECISION_RULES = (("norms", ("norm",)), ("softmax", ("softmax",)), ("output", ("output",)),
                   ("attention", ("attention", "self_attention", "cross_attention")))
KEEP_FP32 = ("norm", "softmax", "attention", "self_attention", "cross_attention", "output")


def encoder_out_len(frames: int) -> int:
    return ((frames - 1) // 2 - 1) // 2


def old_input_shapes(model: str, batch: int, frames: int) -> dict:
    if model == "encoder":
        return {"speech": (batch, frames, 80), "speech_lengths": (batch,)}
    return {"encoder_out": (batch, encoder_out_len(frames), 256), "encoder_out_lens": (batch,),
            "hyps_pad_sos_eos": (batch, 10, 64), "hyps_lens_sos": (batch, 10), "ctc_score": (batch, 10)}


OLD_BATCH_AXES = {"encoder": {"speech": 0, "speech_lengths": 0, "encoder_out": 0, "encoder_out_lens": 0},
                  "decoder": {n: 0 for n in ("encoder_out", "encoder_out_lens", "hyps_pad_sos_eos",
                                             "hyps_lens_sos", "ctc_score", "decoder_out", "best_index")}}
OLD_FRAME_AXES = {"encoder": {"speech": 1}, "decoder": {"encoder_out": 1}}


@pytest.fixture(params=["encoder", "decoder"])
def model(request):
    return request.param


def test_the_shipped_specs_are_registered_under_the_old_names():
    assert set(registry.shipped_names()) == {"encoder", "decoder"}
    assert registry.resolve("wenet-encoder") is registry.get("encoder") is registry.resolve("encoder")
    assert registry.resolve(registry.SPEC_DIR / "wenet-decoder.yaml") is registry.get("decoder")


def test_shapes_and_profiles_match(model):
    spec = registry.get(model)
    for b in (1, 2, 4, 16, 64):
        for t in (16, 17, 67, 64, 255, 256, 1024):
            assert spec.input_shapes(b, t) == old_input_shapes(model, b, t)
    assert (spec.batch.min, spec.batch.max, spec.max_batch_limit) == (1, 16, 64)
    assert (spec.length.min, spec.length.max) == (16, 1024)
    lo, hi = old_input_shapes(model, 1, 16), old_input_shapes(model, 16, 1024)
    mid = old_input_shapes(model, 4, 256)
    assert spec.profile_shapes((4, 256)) == {n: (lo[n], mid[n], hi[n]) for n in lo}
    assert spec.profile_shapes() == {n: (lo[n], hi[n], hi[n]) for n in lo}       # opt: the largest shape


def test_grid_loop_and_study_names_match(model):
    spec = registry.get(model)
    assert spec.grid.judged == GRID and spec.grid.stress == STRESS_GRID and spec.grid.full == GRID + STRESS_GRID
    assert spec.contest_loop == (10, 30)
    assert [spec.study_name(h) for h in ("contest", "serving")] == [f"wenet-{model}-contest", f"wenet-{model}-serving"]
    assert spec.onnx_path("w").as_posix() == f"w/onnx/{model}.onnx"
    assert spec.cases_dir("w").as_posix() == "w/data"
    assert spec.export_command("w") == f"python3 -m workload export --out w/onnx --models {model}"


def test_metrics_and_thresholds_match(model):
    spec = registry.get(model)
    assert tuple((o.name, o.eps, o.max_abs, o.max_rel) for o in spec.outputs) == RULES[model]
    assert all(o.metric == "check" for o in spec.outputs)
    # the encoder's reference lengths are the contest's [B, 1, T'] mask, summed over axis 2
    assert [o.reference_sum_axis for o in spec.outputs] == ([None, 2] if model == "encoder" else [None, None])


def test_layer_groups_match(model):
    spec = registry.get(model)
    assert spec.layer_groups.patterns == KIND_PATTERNS[model] and spec.layer_groups.block == BLOCK
    assert registry.group_names(model) == tuple(k for k, _ in KIND_PATTERNS[model])
    m = registry.matcher(model)
    scope = "encoder/encoders" if model == "encoder" else "decoder/decoders"
    for name in (f"/{scope}.3/feed_forward/w_1/MatMul", f"/{scope}.11/self_attn/Softmax",
                 f"/{scope}.0/src_attn/linear_q/MatMul", "/encoder/embed/conv/conv.0/Conv",
                 f"/{scope}.2/norm1/ReduceMean", "/decoder/output_layer/MatMul", "/decoder/LogSoftmax",
                 "Shape_12", "/encoder/after_norm/Add_1"):
        old = next((k for k, p in KIND_PATTERNS[model] if re.search(p, name)), None)
        assert m.group_of(name) == old
        block = re.search(BLOCK, name)
        assert m.group_of(name, by_block=True) == (f"block{block.group(1)}.{old}" if old and block else old)


def test_padding_axes_match(model):
    from workload.padding import pad_spec_of

    pad = pad_spec_of(registry.get(model))
    assert dict(pad.batch_axes) == OLD_BATCH_AXES[model] and dict(pad.frame_axes) == OLD_FRAME_AXES[model]
    shapes = old_input_shapes(model, 3, 200)
    want = {"encoder_out": (1, encoder_out_len(200))} if model == "encoder" else {}
    assert dict(pad.output_frames(shapes)) == want


def test_search_choices_and_precision_names_match(model):
    spec = registry.get(model)
    assert spec.search.batch_buckets == ((1, 4, 16), (1, 2, 4, 8, 16), (2, 4, 16))
    assert spec.search.length_buckets == ((64, 256, 1024), (16, 64, 256, 1024), (256, 1024))
    assert spec.search.seed_batch_buckets == ((2, 4, 16) if model == "decoder" else (1, 4, 16))
    assert spec.bucket_defaults == ((1, 4, 16), (64, 256, 1024))
    p = spec.precision
    assert p.graph_order == TOPOLOGICAL_KINDS[model] and p.int8_groups == INT8_GROUPS[model]
    groups = registry.group_names(model)
    assert p.keep_fp32 == tuple(g for g in KEEP_FP32 if g in groups)
    # the cumulative rule sets the old shared table gave over this model's groups
    old = [(n, tuple(k for k in kinds if k in groups)) for n, kinds in PRECISION_RULES]
    assert p.rules == tuple((n, k) for n, k in old if k)


# --- strict loading -----------------------------------------------------------------------------
MINIMAL = """\
name: tiny
onnx: tiny.onnx
batch: {min: 1, max: 8}
length: {min: 8, max: 32}
inputs:
  - {name: x, dtype: float32, dims: [batch, 3, length, length]}
outputs:
  - {name: y, dims: [batch, 10], max_abs: 1e-2, max_rel: 1.0e-3}
grid: {batches: [1, 8], lengths: [8, 32]}
"""


def test_a_minimal_spec_gets_the_defaults(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL)
    spec = load_spec(path)
    assert spec.name == spec.study == "tiny" and spec.onnx_path() == tmp_path / "tiny.onnx"
    assert spec.outputs[0].max_abs == 1e-2              # "1e-2" is a string to YAML 1.1: read as a number
    assert spec.input_shapes(2, 16) == {"x": (2, 3, 16, 16)}
    assert spec.layer_groups.by_op_type and spec.contest_loop == (10, 30)
    assert spec.search.batch_buckets == ((1, 8),) and spec.search.length_buckets == ((8, 32),)
    assert spec.bucket_defaults == ((1, 8), (8, 32)) and spec.cases_dir("w").as_posix() == "w/data"
    assert spec.max_batch_limit == 8 and spec.grid.stress == ()


@pytest.mark.parametrize("edit, message", [
    (("name: tiny", "name: 9lives"), "name: '9lives' must start with a letter"),
    (("onnx: tiny.onnx\n", "onnx: tiny.onnx\ncolour: red\n"), "spec: unknown key(s) ['colour']"),
    (("dtype: float32", "dtype: float64"), "inputs[0].dtype: 'float64' is not one of"),
    (("3, length, length", "3, length // 16 - 1, length"), "inputs[0].dims[2]: 'length // 16 - 1' is -1 at length 8"),
    (("3, length, length", "3, size, length"), "inputs[0].dims[2]: 'size' uses 'size'"),
    (("3, length, length", "3, __import__('os'), length"), "only integers, `length` and"),
    (("3, length, length", "batch, length, length"), "inputs[0].dims: at most one dimension may be batch"),
    ((", max_abs: 1e-2, max_rel: 1.0e-3", ""), "outputs[0]: give max_abs and/or max_rel"),
    (("max_abs: 1e-2", "max_abs: 1e-2, metric: cosine"), "outputs[0].metric: 'cosine' is not one of check, max"),
    (("lengths: [8, 32]", "lengths: [8, 64]"), "grid.lengths[1]: 64 is outside length 8..32"),
    (("batches: [1, 8]", "batches: [8, 1]"), "grid.batches: [8, 1] must be increasing"),
    (("batch: {min: 1, max: 8}", "batch: {min: 4, max: 2}"), "batch: max 2 is below min 4"),
    (("grid: {", "layer_groups: {groups: [{name: conv, pattern: '(['}]}\ngrid: {"),
     "layer_groups.groups[0].pattern: '([' is not a regular expression"),
])
def test_bad_specs_are_one_line_errors(tmp_path, edit, message):
    from workload.errors import WorkloadError

    path = tmp_path / "bad.yaml"
    assert edit[0] in MINIMAL
    path.write_text(MINIMAL.replace(*edit))
    with pytest.raises(WorkloadError) as exc:
        load_spec(path)
    text = str(exc.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text, text


def test_a_missing_or_unparsable_file(tmp_path):
    from workload.errors import WorkloadError

    with pytest.raises(WorkloadError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("name: [unclosed\n")
    with pytest.raises(WorkloadError, match="not valid YAML"):
        load_spec(tmp_path / "x.yaml")


def test_a_name_is_registered_once(tmp_path):
    from workload.errors import WorkloadError

    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL.replace("max_rel: 1.0e-3", "max_rel: 2.0e-3"))
    (tmp_path / "enc.yaml").write_text(MINIMAL.replace("name: tiny", "name: encoder"))
    try:
        first = registry.resolve(tmp_path / "a.yaml")
        assert registry.resolve(tmp_path / "a.yaml") is first and registry.get("tiny") is first
        with pytest.raises(WorkloadError, match="workload name 'tiny' is taken"):
            registry.resolve(tmp_path / "b.yaml")
        with pytest.raises(WorkloadError, match="workload name 'encoder' is taken"):
            registry.resolve(tmp_path / "enc.yaml")
    finally:
        registry.unregister("tiny")
    with pytest.raises(WorkloadError, match="unknown workload 'tiny'; known: "):
        registry.get("tiny")


def test_the_readme_example_is_a_valid_spec_of_the_tested_model():
    """README "Tune your own ONNX model" shows every key; its block must load, and describe the model
    tests/search/test_own_workload.py tunes."""
    import yaml

    from workload.spec import spec_from_dict

    text = (registry.SPEC_DIR.parents[1] / "README.md").read_text()
    section = text.split("## Tune your own ONNX model", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = spec_from_dict(yaml.safe_load(block))
    assert spec.name == "tinycnn" and spec.input_shapes(4, 32) == {"x": (4, 8, 32)}
    assert [(o.name, o.metric) for o in spec.outputs] == [("probs", "check"), ("features", "max")]
    assert spec.cases.generate and spec.grid.stress == ((16, 8), (16, 32)) and spec.contest_loop == (1, 3)
    assert spec.layer_groups.by_op_type and spec.precision.rules == (("reductions", ("ReduceMean",)),
                                                                     ("softmax", ("Softmax",)))
