import pytest

from engine.config import BuildConfig, ConfigError, baseline
from engine.layer_groups import GROUPS, group_kind, layer_group


def test_yaml_round_trip(tmp_path):
    cfg = BuildConfig("decoder", passes=["fold_constants"], fp16=True,
                      layer_precision={"softmax": "fp32", "block2.feed_forward": "fp16"},
                      tactic_sources=["CUBLAS", "CUBLAS_LT"], opt_shape=(4, 64), opt_level=2)
    path = cfg.save(tmp_path / "c.yaml")
    assert BuildConfig.load(path) == cfg


def test_baseline_is_plain_fp32():
    cfg = baseline("encoder")
    assert not cfg.fp16 and not cfg.int8 and not cfg.tf32 and not cfg.passes


@pytest.mark.parametrize("data,match", [
    ({"model": "joiner"}, "model"),
    ({"model": "encoder", "layer_precision": {"norm": "bf8"}}, "layer_precision"),
    ({"model": "encoder", "tactic_sources": ["CUDA"]}, "tactic_sources"),
    ({"model": "encoder", "opt_level": 7}, "opt_level"),
    ({"model": "encoder", "opt_shape": [128, 16]}, "opt_shape"),
    ({"model": "encoder", "workspace": 1}, "unknown config field"),
    ({"passes": []}, "model"),
])
def test_bad_configs_name_the_field(data, match):
    with pytest.raises(ConfigError, match=match):
        BuildConfig.from_dict(data)


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        BuildConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [encoder\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        BuildConfig.load(bad)


@pytest.mark.parametrize("model,name,by_block,group", [
    ("encoder", "/encoder/encoders.3/feed_forward_macaron/w_1/MatMul", False, "feed_forward"),
    ("encoder", "/encoder/encoders.3/feed_forward/w_1/MatMul", True, "block3.feed_forward"),
    ("encoder", "/encoder/encoders.11/self_attn/Softmax", True, "block11.softmax"),
    ("encoder", "/encoder/encoders.0/self_attn/linear_pos/MatMul", False, "attention"),
    ("encoder", "/encoder/encoders.0/conv_module/depthwise_conv/Conv", False, "conv_module"),
    ("encoder", "/encoder/encoders.0/norm_mha/ReduceMean", False, "norm"),
    ("encoder", "/encoder/embed/conv/conv.0/Conv", False, "subsampling"),
    ("encoder", "/encoder/Shape_3", False, None),
    ("decoder", "/decoder/decoders.1/src_attn/linear_k/MatMul", False, "cross_attention"),
    ("decoder", "/decoder/decoders.1/self_attn/MatMul_1", False, "self_attention"),
    ("decoder", "/decoder/output_layer/MatMul", False, "output"),
])
def test_layer_groups(model, name, by_block, group):
    assert layer_group(model, name, by_block) == group
    if group:
        assert group_kind(group) in GROUPS[model]
