"""Deterministic test data: model inputs, the contest's .npz test files and calibration sets.

`make_inputs` and `load_calibration` need only numpy (usable on the GPU host's
Python, which has no torch); `generate` imports torch to compute the reference
outputs.

Files written by `generate` (layout of the contest's test files):
- encoder-{bs}-{sl}.npz: speech f32 [B,T,80], speech_lengths i32 [B], encoder_out f32 [B,T',d],
  encoder_out_lens bool [B,1,T'] (the MASK, as the contest stored it; engines output lengths).
- decoder-{bs}-{sl}.npz: encoder_out (the reference encoder's output of the same case),
  encoder_out_lens i32 [B], hyps_pad_sos_eos i32 [B,10,64], hyps_lens_sos i32 [B,10],
  ctc_score f32 [B,10], decoder_out f32 [B,10,63,V], best_index i32 [B].
- calibration-{encoder,decoder}.npz: CALIBRATION_BATCHES batches, all of shape
  CALIBRATION_SHAPE (so one TensorRT calibration profile fits them), keys `<input>__<i>`
  for i = 0..n-1 (e.g. `speech__0`, `speech_lengths__0`, ...); read with `load_calibration`.
  Drawn from their own random stream (not the test cases'); the decoder's encoder_out is
  the reference encoder's output of the calibration speech.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from workload import shapes
from workload.errors import WorkloadError, first_line
from workload.outputs import check_output_dir
from workload.model_config import ModelConfig, default_cmvn

MIN_FRAMES = 7                      # shortest utterance with one frame after the x4 subsampling
CALIBRATION_BATCHES = 8
CALIBRATION_SHAPE = (16, 256)       # (batch, frames) of every calibration batch
_STREAMS = {"encoder": 1, "decoder": 2, "calibration": 3}


def _rng(stream: str, seed: int, *case: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorkloadError(f"seed {seed!r} must be a non-negative integer")
    return np.random.default_rng([int(seed), _STREAMS[stream], *case])


def encoder_mask_lengths(speech_lengths: np.ndarray, frames: int) -> np.ndarray:
    """encoder_out_lens as the encoder computes it: the padding mask sliced [:-2:2] twice, summed.

    Equals shapes.encoder_out_len(frames) for full-length rows and
    min(ceil(length / 4), T') for shorter ones.
    """
    lengths = np.asarray(speech_lengths).reshape(-1, 1)
    mask = np.arange(frames)[None, :] < lengths
    return mask[:, :-2:2][:, :-2:2].sum(axis=1).astype(np.int32)


def _speech_lengths(rng: np.random.Generator, batch: int, frames: int) -> np.ndarray:
    """Row 0 full length, the others shorter but with at least one frame after subsampling."""
    lengths = np.full(batch, frames, dtype=np.int32)
    if batch > 1:
        lengths[1:] = rng.integers(MIN_FRAMES, max(frames, MIN_FRAMES + 1), size=batch - 1)
    return lengths


def _check_case(model: str, batch: int, frames: int) -> None:
    if model not in shapes.MODELS:
        raise WorkloadError(f"unknown model {model!r}; expected one of {', '.join(shapes.MODELS)}")
    if batch < 1:
        raise WorkloadError(f"batch {batch} must be at least 1")
    if frames < MIN_FRAMES:
        raise WorkloadError(f"frames {frames} must be at least {MIN_FRAMES} (one frame after subsampling)")


def make_inputs(model: str, batch: int, frames: int, seed: int = 0, config: ModelConfig | None = None, *,
                cmvn: tuple[np.ndarray, np.ndarray] | None = None,
                encoder_out: np.ndarray | None = None,
                encoder_out_lens: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Inputs of one case with the contest's names and dtypes; same arguments, same arrays.

    encoder: speech = CMVN mean + N(0,1) / istd on valid frames (zeros on padding, as
    WeNet pads fbank), speech_lengths with row 0 = frames, others in [7, frames).
    decoder: `frames` are input frames; encoder_out [batch, T', d] with T' =
    shapes.encoder_out_len(frames) (N(0,1) unless given), encoder_out_lens the
    encoder's mask lengths of a speech_lengths draw (unless given),
    hyps_pad_sos_eos rows [sos, n tokens in 0..V-2, eos, eos padding...] with n in
    [1, hyp_len-2], hyps_lens_sos = n + 1 in [2, hyp_len-1], ctc_score negative, best first.
    `cmvn` (mean, istd) overrides the config's default statistics (a loaded checkpoint's).
    """
    cfg = config or ModelConfig.aishell()
    _check_case(model, batch, frames)
    rng = _rng(model, seed, batch, frames)
    lengths = _speech_lengths(rng, batch, frames)
    if model == "encoder":
        mean, istd = cmvn if cmvn is not None else default_cmvn(cfg.feature_dim)
        noise = rng.standard_normal((batch, frames, cfg.feature_dim), dtype=np.float32)
        speech = (np.asarray(mean, np.float32) + noise / np.asarray(istd, np.float32)).astype(np.float32)
        speech[np.arange(frames)[None, :] >= lengths[:, None]] = 0.0
        return {"speech": speech, "speech_lengths": lengths}

    t_out = shapes.encoder_out_len(frames)
    if encoder_out is None:
        encoder_out = rng.standard_normal((batch, t_out, cfg.d_model), dtype=np.float32)
    elif encoder_out.shape != (batch, t_out, cfg.d_model):
        raise WorkloadError(f"encoder_out has shape {list(encoder_out.shape)}, expected {[batch, t_out, cfg.d_model]}")
    lens = encoder_mask_lengths(lengths, frames) if encoder_out_lens is None else encoder_out_lens
    # 1 .. hyp_len-2 tokens: sos + tokens + eos always fit the hyp_len row (WeNet always has the eos)
    tokens_n = rng.integers(1, cfg.hyp_len - 1, size=(batch, cfg.beam))
    hyps = np.full((batch, cfg.beam, cfg.hyp_len), cfg.eos, dtype=np.int32)
    hyps[:, :, 0] = cfg.sos
    tokens = rng.integers(0, cfg.vocab - 1, size=(batch, cfg.beam, cfg.hyp_len - 1), dtype=np.int32)
    positions = np.arange(1, cfg.hyp_len)[None, None, :]
    hyps[:, :, 1:] = np.where(positions <= tokens_n[:, :, None], tokens, cfg.eos)
    ctc = -np.sort(rng.uniform(0.1, 30.0, size=(batch, cfg.beam)), axis=1)
    return {
        "encoder_out": np.ascontiguousarray(encoder_out, dtype=np.float32),
        "encoder_out_lens": np.asarray(lens, dtype=np.int32).reshape(batch),
        "hyps_pad_sos_eos": hyps,
        "hyps_lens_sos": (tokens_n + 1).astype(np.int32),
        "ctc_score": ctc.astype(np.float32),
    }


def parse_data_grid(text: str) -> tuple[tuple[int, int], ...]:
    """'1x16,4x64' -> ((1, 16), (4, 64))."""
    cases = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)x(\d+)\s*", part)
        if not m:
            raise WorkloadError(f"bad grid entry {part.strip()!r}; expected BATCHxFRAMES, e.g. 4x64")
        batch, frames = int(m.group(1)), int(m.group(2))
        if batch < 1 or frames < MIN_FRAMES:
            raise WorkloadError(f"bad grid entry {part.strip()!r}: batch >= 1 and frames >= {MIN_FRAMES} needed")
        cases.append((batch, frames))
    return tuple(cases)


def open_npz(path: str | Path):
    """np.load of an .npz (use as a context manager); a missing, truncated or foreign file is a WorkloadError."""
    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"{path} does not exist")
    try:
        data = np.load(str(path), allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise WorkloadError(f"{path} is not a readable .npz ({first_line(exc)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise WorkloadError(f"{path} is a single .npy array, not an .npz archive")
    return data


def npz_keys(path: str | Path) -> list[str]:
    """The array names of an .npz, read from its directory only (no array is loaded)."""
    with open_npz(path) as data:
        return list(data.files)


def _calibration_index(path: str | Path, keys: Iterable[str]) -> dict[int, dict[str, str]]:
    """batch index -> {input name: key}; every key `<input>__<i>`, the indices 0..n-1."""
    batches: dict[int, dict[str, str]] = {}
    for key in keys:
        name, sep, index = key.rpartition("__")
        if not sep or not index.isdigit():
            raise WorkloadError(f"{path}: key {key!r} is not <input>__<i>")
        batches.setdefault(int(index), {})[name] = key
    if not batches:
        raise WorkloadError(f"{path} holds no calibration batch")
    if sorted(batches) != list(range(len(batches))):
        raise WorkloadError(f"{path}: batch indices {sorted(batches)} are not 0..n-1")
    return batches


def check_calibration(path: str | Path, model: str | None = None) -> None:
    """A calibration-*.npz that load_calibration can read (and, with `model`, has its inputs), without loading it."""
    batches = _calibration_index(path, npz_keys(path))
    if model is not None:
        from workload.registry import get
        wanted = set(get(model).input_names)
        missing = sorted(wanted - set(batches[0]))
        if missing:
            raise WorkloadError(f"{path}: batch 0 lacks {model} input(s) {missing}")


def load_calibration(path: str | Path) -> list[dict[str, np.ndarray]]:
    """The batches of a calibration-*.npz, in order: [{input name: array}, ...]."""
    with open_npz(path) as data:
        index = _calibration_index(path, data.files)
        return [{name: data[key] for name, key in index[i].items()} for i in range(len(index))]


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Uncompressed (decoder_out at bs 64 is 682 MB); written aside, then renamed into place.
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _progress(items: list, enabled: bool):
    if enabled:
        try:
            from tqdm import tqdm
            return tqdm(items, desc="reference data", unit="case")
        except ImportError:
            pass
    return items


class _Reference:
    """PyTorch FP32 reference: the model on a device, TF32 off, deterministic algorithms."""

    def __init__(self, config: ModelConfig, seed: int, checkpoint, device: str):
        import torch

        from workload.checkpoint import load_model
        from workload.wrappers import DecoderWrapper

        if device not in ("cpu", "cuda"):
            raise WorkloadError(f"device {device!r} must be cpu or cuda")
        if device == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            if not torch.cuda.is_available():
                raise WorkloadError("device cuda requested but torch sees no CUDA GPU")
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.torch = torch
        self.device = torch.device(device)
        model = load_model(config, seed, checkpoint)
        self.cmvn = (model.encoder.global_cmvn.mean.numpy().copy(), model.encoder.global_cmvn.istd.numpy().copy())
        self.encoder = model.encoder.to(self.device)
        self.decoder = DecoderWrapper(model.decoder, config.beam, config.ctc_weight).to(self.device).eval()

    def _t(self, a: np.ndarray):
        return self.torch.from_numpy(a).to(self.device)

    def encode(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            out, mask = self.encoder(self._t(feeds["speech"]), self._t(feeds["speech_lengths"]))
            return out.float().cpu().numpy(), mask.cpu().numpy()

    def decode(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with self.torch.inference_mode():
            out, best = self.decoder(*(self._t(feeds[k]) for k in
                                       ("encoder_out", "encoder_out_lens", "hyps_pad_sos_eos",
                                        "hyps_lens_sos", "ctc_score")))
            result = out.cpu().numpy(), best.cpu().numpy().astype(np.int32)
        del out, best
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
        return result


def _case(ref: _Reference, cfg: ModelConfig, batch: int, frames: int, seed: int) -> tuple[dict, dict]:
    """One encoder case and the decoder case built on its reference output."""
    enc = make_inputs("encoder", batch, frames, seed, cfg, cmvn=ref.cmvn)
    encoder_out, mask = ref.encode(enc)
    dec = make_inputs("decoder", batch, frames, seed, cfg, encoder_out=encoder_out,
                      encoder_out_lens=mask.sum(axis=(1, 2)).astype(np.int32))
    return {**enc, "encoder_out": encoder_out, "encoder_out_lens": mask}, dec


def generate(out_dir: str | Path, grid: Iterable[tuple[int, int]] = shapes.GRID, device: str = "cpu",
             seed: int = 0, checkpoint: str | Path | None = None, config: ModelConfig | None = None, *,
             calibration: bool = True, progress: bool = True) -> list[Path]:
    """Write the test files of `grid` (and the calibration sets) with PyTorch FP32 references.

    `seed` fixes the model weights (as export's seed, so `export --seed N` and
    `data --seed N` match) and the data; a checkpoint replaces the weights.
    Returns the written paths. One case at a time, so memory stays at one case.
    """
    cfg = config or ModelConfig.aishell()
    grid = tuple((int(b), int(t)) for b, t in grid)
    for b, t in grid:
        _check_case("encoder", b, t)
    _rng("calibration", seed)                                   # validates seed early
    if device not in ("cpu", "cuda"):
        raise WorkloadError(f"device {device!r} must be cpu or cuda")
    out = check_output_dir(out_dir, "data folder")
    ref = _Reference(cfg, seed, checkpoint, device)            # checks the device and checkpoint first
    out.mkdir(parents=True, exist_ok=True)
    written = []
    steps = [("case", b, t) for b, t in grid] + ([("calibration", 0, 0)] if calibration else [])
    for kind, batch, frames in _progress(steps, progress):
        if kind == "case":
            enc, dec = _case(ref, cfg, batch, frames, seed)
            dec["decoder_out"], dec["best_index"] = ref.decode(dec)
            for model, arrays in (("encoder", enc), ("decoder", dec)):
                path = out / f"{model}-{batch}-{frames}.npz"
                _save(path, arrays)
                written.append(path)
            del enc, dec
        else:
            written += _calibration(ref, cfg, seed, out)
    return written


def _calibration(ref: _Reference, cfg: ModelConfig, seed: int, out: Path) -> list[Path]:
    batch, frames = CALIBRATION_SHAPE
    enc_sets, dec_sets = {}, {}
    for i in range(CALIBRATION_BATCHES):
        # Own seeds: a stream disjoint from the test cases' (which use `seed` itself).
        sub_seed = int(_rng("calibration", seed, i).integers(0, 2**31 - 1))
        enc = make_inputs("encoder", batch, frames, sub_seed, cfg, cmvn=ref.cmvn)
        encoder_out, mask = ref.encode(enc)
        dec = make_inputs("decoder", batch, frames, sub_seed, cfg, encoder_out=encoder_out,
                          encoder_out_lens=mask.sum(axis=(1, 2)).astype(np.int32))
        enc_sets.update({f"{k}__{i}": v for k, v in enc.items()})
        dec_sets.update({f"{k}__{i}": v for k, v in dec.items()})
    paths = [out / "calibration-encoder.npz", out / "calibration-decoder.npz"]
    _save(paths[0], enc_sets)
    _save(paths[1], dec_sets)
    return paths
