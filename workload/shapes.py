"""Model dimensions, the test-shape grid and the optimization-profile bounds.

One place for every number that the export, the data generator, the builder and
the evaluator must agree on.
"""
from __future__ import annotations

FEATURE_DIM = 80          # fbank features per frame
D_MODEL = 256             # encoder/decoder width
BEAM = 10                 # hypotheses per utterance (attention rescoring)
HYP_LEN = 64              # hyps_pad_sos_eos is fixed to [B, 10, 64] (contest seed)
VOCAB_SIZE = 4233         # AISHELL-1 character vocabulary of the contest model
SOS = EOS = VOCAB_SIZE - 1

# The judging grid is not in the sources: batch x length, see README "Test grid".
BATCHES = (1, 4, 16, 64)
LENGTHS = (16, 64, 256, 1024)
GRID = tuple((b, t) for b in BATCHES for t in LENGTHS)

MIN_BATCH, MAX_BATCH = min(BATCHES), max(BATCHES)
MIN_LEN, MAX_LEN = min(LENGTHS), max(LENGTHS)

MODELS = ("encoder", "decoder")


def encoder_out_len(frames: int) -> int:
    """Frames after the Conv2d x4 subsampling (two 3x3 convolutions, stride 2)."""
    return ((frames - 1) // 2 - 1) // 2


def profile_shapes(model: str, opt: tuple[int, int] | None = None) -> dict[str, tuple[tuple, tuple, tuple]]:
    """min/opt/max shape of every input for one optimization profile.

    `opt` is (batch, length) in input frames; default is the largest test shape,
    as the contest's reference build did.
    """
    ob, ot = opt if opt is not None else (MAX_BATCH, MAX_LEN)
    if model == "encoder":
        return {
            "speech": ((MIN_BATCH, MIN_LEN, FEATURE_DIM), (ob, ot, FEATURE_DIM), (MAX_BATCH, MAX_LEN, FEATURE_DIM)),
            "speech_lengths": ((MIN_BATCH,), (ob,), (MAX_BATCH,)),
        }
    if model == "decoder":
        lo, mid, hi = encoder_out_len(MIN_LEN), encoder_out_len(ot), encoder_out_len(MAX_LEN)
        return {
            "encoder_out": ((MIN_BATCH, lo, D_MODEL), (ob, mid, D_MODEL), (MAX_BATCH, hi, D_MODEL)),
            "encoder_out_lens": ((MIN_BATCH,), (ob,), (MAX_BATCH,)),
            "hyps_pad_sos_eos": ((MIN_BATCH, BEAM, HYP_LEN), (ob, BEAM, HYP_LEN), (MAX_BATCH, BEAM, HYP_LEN)),
            "hyps_lens_sos": ((MIN_BATCH, BEAM), (ob, BEAM), (MAX_BATCH, BEAM)),
            "ctc_score": ((MIN_BATCH, BEAM), (ob, BEAM), (MAX_BATCH, BEAM)),
        }
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")
