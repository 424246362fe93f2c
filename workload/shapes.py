"""The WeNet models' dimensions, test-shape grid and profile bounds.

The numbers the WeNet export and data generator use; the shipped specs
(workload/specs/wenet-*.yaml) state the same for the tuner (tests/workload/test_spec.py
holds them equal). `input_shapes` / `profile_shapes` answer for any registered workload.
"""
from __future__ import annotations

FEATURE_DIM = 80          # fbank features per frame
D_MODEL = 256             # encoder/decoder width
BEAM = 10                 # hypotheses per utterance (attention rescoring)
HYP_LEN = 64              # hyps_pad_sos_eos is fixed to [B, 10, 64] (contest seed)
VOCAB_SIZE = 4233         # AISHELL-1 character vocabulary of the contest model
SOS = EOS = VOCAB_SIZE - 1

# The organisers' final harness skips every case with batch > 16: the judged grid is
# batch {1, 4, 16} x length {16, 64, 256, 1024} (README "Test grid"). Batch 64, the
# reference build's profile maximum, is kept as an optional stress grid.
BATCHES = (1, 4, 16)
STRESS_BATCHES = (64,)
LENGTHS = (16, 64, 256, 1024)
GRID = tuple((b, t) for b in BATCHES for t in LENGTHS)              # the objective's shapes
STRESS_GRID = tuple((b, t) for b in STRESS_BATCHES for t in LENGTHS)
ALL_SHAPES = GRID + STRESS_GRID

MIN_BATCH, MAX_BATCH = min(BATCHES), max(BATCHES)
STRESS_MAX_BATCH = max(STRESS_BATCHES)
MIN_LEN, MAX_LEN = min(LENGTHS), max(LENGTHS)

MODELS = ("encoder", "decoder")    # the shipped WeNet workloads (workload/specs/); others: workload.registry


def encoder_out_len(frames: int) -> int:
    """Frames after the Conv2d x4 subsampling (two 3x3 convolutions, stride 2)."""
    return ((frames - 1) // 2 - 1) // 2


def input_shapes(model: str, batch: int, frames: int) -> dict[str, tuple[int, ...]]:
    """The shape of every input of `model` (a registered workload) for a test case of `batch` x `frames`."""
    from workload.registry import get
    return get(model).input_shapes(batch, frames)


def profile_shapes(model: str, opt: tuple[int, int] | None = None, *,
                   batch: tuple[int, int] | None = None,
                   frames: tuple[int, int] | None = None) -> dict[str, tuple[tuple, tuple, tuple]]:
    """min/opt/max shape of every input for one optimization profile (Workload.profile_shapes).

    `batch` and `frames` are (min, max) ranges (default: the workload's); `opt` is (batch,
    frames), default the largest shape of the ranges, as the contest's reference build did.
    """
    from workload.registry import get
    return get(model).profile_shapes(opt, batch=batch, frames=frames)
