"""Which input dimensions may be padded, and how outputs are trimmed back: one PadSpec per workload.

The runtime serves a shape from a larger optimization profile (a static bucket, or
a fixed-batch profile) by padding the inputs up to it and trimming the outputs
back. Padding batch rows is exact for the WeNet models (rows are independent;
BatchNorm runs on its running statistics); padding frames is exact only where every
layer masks the padded frames, which `prove_frame_padding` checks in onnxruntime.

    spec = PAD_SPECS["encoder"]
    padded = pad_feeds(spec, feeds, {"speech": (4, 256, 80), "speech_lengths": (4,)})
    outputs = trim_outputs(spec, run(padded), true_input_shapes)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, MutableMapping

import numpy as np

from workload.errors import WorkloadError

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class PadSpec:
    """How one model's tensors may be padded.

    batch_axes: every input and output that has a batch axis (rows are independent).
    frame_axes: inputs whose frames axis may be padded with zeros.
    output_frames: the true length of each output's frames axis, from the true input
        shapes: {output: (axis, length)}; outputs not named keep their frames axis.
    """
    batch_axes: Mapping[str, int]
    frame_axes: Mapping[str, int] = field(default_factory=dict)
    output_frames: Callable[[Shapes], Mapping[str, tuple[int, int]]] = lambda shapes: {}

    def paddable_axes(self, name: str) -> set[int]:
        axes = set()
        if name in self.batch_axes:
            axes.add(self.batch_axes[name])
        if name in self.frame_axes:
            axes.add(self.frame_axes[name])
        return axes


def pad_spec_of(spec) -> PadSpec:
    """The PadSpec a workload spec implies: every `batch` dimension is a batch axis, every input
    dimension that depends on `length` a frames axis, and an output dimension that depends on it
    is trimmed back to its value at the true length (read from an input dimension that is
    `length` itself; without one, outputs keep their frames axis)."""
    batch_axes, frame_axes, trims = {}, {}, {}
    for tensor in spec.inputs:
        for axis, dim in enumerate(tensor.dims):
            if dim.kind == "batch":
                batch_axes[tensor.name] = axis
            elif dim.kind == "length" and tensor.name not in frame_axes:
                frame_axes[tensor.name] = axis
    source = next(((t.name, a) for t in spec.inputs for a, d in enumerate(t.dims) if d.is_plain_length), None)
    for out in spec.outputs:
        dims = out.dims if out.dims is not None else ()
        axes = [a for a, d in enumerate(dims) if d.kind == "batch"]
        if axes or out.dims is None:
            batch_axes[out.name] = axes[0] if axes else 0
        for axis, dim in enumerate(dims):
            if dim.kind == "length" and source is not None and out.name not in trims:
                trims[out.name] = (axis, dim)

    def output_frames(shapes: Shapes) -> dict[str, tuple[int, int]]:
        if not trims or source is None or source[0] not in shapes:
            return {}
        length = shapes[source[0]][source[1]]
        return {name: (axis, dim.value(1, length)) for name, (axis, dim) in trims.items()}

    return PadSpec(batch_axes=batch_axes, frame_axes=frame_axes, output_frames=output_frames)


class _PadSpecs(MutableMapping):
    """PAD_SPECS[model]: the PadSpec of a registered workload (pad_spec_of its spec), cached;
    an entry set here (tests: a graph of their own) wins over the registry."""

    def __init__(self) -> None:
        self._set: dict[str, PadSpec] = {}
        self._derived: dict[tuple[str, int], PadSpec] = {}

    def __getitem__(self, model: str) -> PadSpec:
        if model in self._set:
            return self._set[model]
        from workload.registry import get, known
        if not known(model):
            raise KeyError(model)
        spec = get(model)
        key = (model, id(spec))
        if key not in self._derived:
            self._derived[key] = pad_spec_of(spec)
        return self._derived[key]

    def __setitem__(self, model: str, value: PadSpec) -> None:
        self._set[model] = value

    def __delitem__(self, model: str) -> None:
        del self._set[model]

    def __iter__(self):
        from workload.registry import names
        return iter(dict.fromkeys([*names(), *self._set]))

    def __len__(self) -> int:
        return len(list(iter(self)))


# The WeNet specs give encoder: batch axis 0 everywhere, frames speech[1], encoder_out trimmed to
# T' = encoder_out_len(T); decoder: frames encoder_out[1] (T'), outputs without a frames axis.
PAD_SPECS: MutableMapping[str, PadSpec] = _PadSpecs()


def pad_feeds(spec: PadSpec, feeds: Mapping[str, np.ndarray], target: Shapes) -> dict[str, np.ndarray]:
    """Each feed padded up to `target`: extra batch rows repeat the last row (a valid utterance
    whose length stays in range), extra frames are zeros. WorkloadError if an axis would shrink
    or is not paddable."""
    out = {}
    for name, arr in feeds.items():
        want = tuple(target[name])
        if tuple(arr.shape) == want:
            out[name] = arr
            continue
        if len(want) != arr.ndim:
            raise WorkloadError(f"{name}: cannot pad shape {list(arr.shape)} to rank-{len(want)} {list(want)}")
        allowed = spec.paddable_axes(name)
        for axis, (have, need) in enumerate(zip(arr.shape, want)):
            if need < have or (need > have and axis not in allowed):
                raise WorkloadError(f"{name}: cannot pad axis {axis} from {have} to {need}")
        if name in spec.batch_axes and want[spec.batch_axes[name]] > arr.shape[spec.batch_axes[name]]:
            axis = spec.batch_axes[name]
            extra = want[axis] - arr.shape[axis]
            last = np.take(arr, [arr.shape[axis] - 1], axis=axis)
            arr = np.concatenate([arr, np.repeat(last, extra, axis=axis)], axis=axis)
        widths = [(0, need - have) for have, need in zip(arr.shape, want)]
        if any(w for _, w in widths):
            arr = np.pad(arr, widths)
        out[name] = np.ascontiguousarray(arr)
    return out


def trim_outputs(spec: PadSpec, outputs: Mapping[str, np.ndarray], true_inputs: Shapes) -> dict[str, np.ndarray]:
    """Outputs of a padded run cut back to what the unpadded inputs would have given."""
    batch = None
    for name, axis in spec.batch_axes.items():
        if name in true_inputs:
            batch = true_inputs[name][axis]
            break
    frames = spec.output_frames(true_inputs)
    out = {}
    for name, arr in outputs.items():
        index = [slice(None)] * arr.ndim
        if batch is not None and name in spec.batch_axes:
            index[spec.batch_axes[name]] = slice(0, batch)
        if name in frames:
            axis, length = frames[name]
            index[axis] = slice(0, length)
        out[name] = np.ascontiguousarray(arr[tuple(index)])
    return out


# --- proof that padding frames changes nothing (onnxruntime, CPU) ---------------------------
@dataclass
class PaddingProof:
    exact: bool
    max_abs_diff: dict[str, float]
    shapes: list[str]

    def to_dict(self) -> dict:
        return {"exact": self.exact, "max_abs_diff": self.max_abs_diff, "shapes": self.shapes}


def prove_frame_padding(onnx_path: str | Path, model: str, feeds: Mapping[str, np.ndarray],
                        pad_frames: int, tolerance: float = 1e-4) -> PaddingProof:
    """Run the ONNX on `feeds` and on the feeds with `pad_frames` extra zero frames (and one
    extra batch row); exact iff every trimmed output matches within `tolerance` (float32
    reassociation noise of onnxruntime only). The ONNX is the graph the engine is built from."""
    import onnxruntime as ort

    spec = PAD_SPECS[model]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    true_shapes = {k: v.shape for k, v in feeds.items()}
    target = {}
    for name, shape in true_shapes.items():
        want = list(shape)
        if name in spec.batch_axes:
            want[spec.batch_axes[name]] += 1
        if name in spec.frame_axes:
            want[spec.frame_axes[name]] += pad_frames
        target[name] = tuple(want)
    plain = dict(zip(names, session.run(names, feeds)))
    padded = trim_outputs(spec, dict(zip(names, session.run(names, pad_feeds(spec, feeds, target)))), true_shapes)
    diffs = {}
    for name in names:
        a, b = plain[name], padded[name]
        if a.shape != b.shape:
            diffs[name] = float("inf")
            continue
        diffs[name] = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
    label = lambda shapes: ",".join(f"{k}{list(v)}" for k, v in shapes.items())   # noqa: E731
    return PaddingProof(exact=all(d <= tolerance for d in diffs.values()), max_abs_diff=diffs,
                        shapes=[label(true_shapes), label(target)])
