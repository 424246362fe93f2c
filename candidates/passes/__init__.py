"""Graph passes, one module each; importing this package registers them (in this order)."""
from candidates.passes import (  # noqa: F401
    fold_constants,
    layernorm,
    encoder_lengths,
    attention_mask,
    subsampling_conv,
    ffn_2d_matmul,
    merge_qkv,
    pos_enc_slice,
    static_dims,
    decoder_masks,
    decoder_scoring,
    memory_kv_once,
    bool_slice,
)
