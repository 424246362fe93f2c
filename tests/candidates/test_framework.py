"""The pass framework: registry, errors, strict mode, opset handling, the CLI."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest
from onnx import TensorProto, helper

from candidates import PassError, apply_passes, available_passes, get_pass, register_pass
from candidates.__main__ import main
from candidates.framework import _REGISTRY, default_opset


def _tiny_layernorm_model(opset: int = 13) -> onnx.ModelProto:
    """x -> decomposed LayerNorm -> y, as the opset-13 exporter writes it."""
    c = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, np.shape(v), np.ravel(v))  # noqa: E731
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["p"]),
        helper.make_node("ReduceMean", ["p"], ["v"], axes=[-1]),
        helper.make_node("Add", ["v", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["s"]),
        helper.make_node("Div", ["d", "s"], ["n"]),
        helper.make_node("Mul", ["n", "gamma"], ["g"]),
        helper.make_node("Add", ["g", "beta"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "ln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", 8])],
        [c("two", 2.0), c("eps", 1e-5), c("gamma", np.linspace(0.5, 1.5, 8)), c("beta", np.linspace(-1, 1, 8))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_available_passes_by_model():
    assert "encoder_lengths" in available_passes("encoder")
    assert "encoder_lengths" not in available_passes("decoder")
    assert "memory_kv_once" in available_passes("decoder")
    assert set(available_passes()) >= set(available_passes("encoder")) | set(available_passes("decoder"))
    with pytest.raises(PassError, match="unknown model"):
        available_passes("joiner")


def test_every_pass_documents_itself():
    for name in available_passes():
        p = get_pass(name)
        assert len(p.doc.split()) > 20, f"{name}: docstring too short to say what and why"


def test_unknown_pass_lists_known_ones():
    with pytest.raises(PassError, match="unknown pass 'nope'.*layernorm"):
        apply_passes(_tiny_layernorm_model(), ["nope"])


def test_pass_for_other_model_is_rejected():
    with pytest.raises(PassError, match="applies to decoder, not encoder"):
        apply_passes(_tiny_layernorm_model(), ["memory_kv_once"], model_name="encoder")


def test_duplicate_pass_is_rejected():
    with pytest.raises(PassError, match="more than once"):
        apply_passes(_tiny_layernorm_model(), ["layernorm", "layernorm"])


def test_no_site_warns_and_reports_zero(caplog):
    model = _tiny_layernorm_model()
    with caplog.at_level(logging.WARNING):
        out, sites = apply_passes(model, ["merge_qkv"])
    assert sites == {"merge_qkv": 0}
    assert "merge_qkv found no site" in caplog.text
    assert out is model  # nothing rewritten: the model comes back as it was
    with pytest.raises(PassError, match="merge_qkv found no site"):
        apply_passes(model, ["merge_qkv"], strict=True)


def test_layernorm_bumps_opset_and_stays_valid():
    model = _tiny_layernorm_model(13)
    out, sites = apply_passes(model, ["layernorm"])
    assert sites == {"layernorm": 1}
    assert default_opset(model) == 13 and default_opset(out) == 17
    onnx.checker.check_model(out)
    assert [n.op_type for n in out.graph.node] == ["LayerNormalization"]
    import onnxruntime as ort
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(out), run(model), atol=1e-5)


def test_opset_bump_refused_when_an_op_changes_meaning():
    # below opset 13 several ops (Split, Squeeze, ReduceSum...) take other inputs: refused, not relabelled
    model = _tiny_layernorm_model(12)
    with pytest.raises(PassError, match="cannot relabel"):
        apply_passes(model, ["layernorm"])


def test_new_nodes_carry_the_scope_of_what_they_replace():
    model = _tiny_layernorm_model()
    for i, node in enumerate(model.graph.node):
        node.name = f"/encoder/encoders.3/norm_ff/{node.op_type}_{i}"
    out, _ = apply_passes(model, ["layernorm"])
    assert [n.name for n in out.graph.node] == ["/encoder/encoders.3/norm_ff/layernorm/LayerNormalization"]


def test_register_pass_requires_docstring_and_unique_name():
    def undocumented(graph):
        return 0
    with pytest.raises(ValueError, match="docstring"):
        register_pass("tmp_undocumented")(undocumented)

    def documented(graph: gs.Graph) -> int:
        """A documented pass."""
        return 0
    try:
        register_pass("tmp_documented", models=("encoder",))(documented)
        def another(graph: gs.Graph) -> int:
            """Another documented pass."""
            return 0
        with pytest.raises(ValueError, match="registered twice"):
            register_pass("tmp_documented")(another)
        with pytest.raises(ValueError, match="unknown model"):
            register_pass("tmp_other", models=("joiner",))(documented)
    finally:
        _REGISTRY.pop("tmp_documented", None)


# --- CLI ---------------------------------------------------------------------------
def test_cli_list(capsys):
    assert main(["list", "--model", "decoder"]) == 0
    out = capsys.readouterr().out
    assert "memory_kv_once" in out and "encoder_lengths" not in out


def test_cli_apply(tmp_path, capsys):
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(_tiny_layernorm_model(), str(src))
    assert main(["apply", str(src), str(dst), "--passes", "fold_constants,layernorm", "--model", "encoder"]) == 0
    assert "layernorm: 1 site(s)" in capsys.readouterr().out
    assert [n.op_type for n in onnx.load(str(dst)).graph.node] == ["LayerNormalization"]


@pytest.mark.parametrize("argv,message", [
    (["apply", "{src}", "{dst}", "--passes", "layernorm,nope"], "unknown pass 'nope'"),
    (["apply", "{src}", "{dst}", "--passes", "memory_kv_once", "--model", "encoder"], "not encoder"),
    (["apply", "{tmp}/missing.onnx", "{dst}", "--passes", "layernorm"], "does not exist"),
    (["apply", "{bad}", "{dst}", "--passes", "layernorm"], "not an ONNX model"),
    (["apply", "{src}", "{dst}", "--passes", "merge_qkv", "--strict"], "found no site"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, argv, message):
    src, bad = tmp_path / "in.onnx", tmp_path / "bad.onnx"
    onnx.save(_tiny_layernorm_model(), str(src))
    bad.write_bytes(b"not a protobuf at all")
    argv = [a.format(src=src, dst=tmp_path / "out.onnx", tmp=tmp_path, bad=bad) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out.onnx").exists()
