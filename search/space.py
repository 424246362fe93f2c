"""The search space: which BuildConfig fields the tuner varies, and how.

Declarative: `SearchSpace._dimensions()` lists `Dim`s. A Dim is one Optuna
parameter: its choices, the condition under which it exists (a function of the
parameters sampled before it, which is how Optuna's conditional parameters
work), how its value writes into the BuildConfig fields (`sample`) and how a
config reads back to the value (`to_params`, for `study.enqueue_trial`).
Adding a dimension means adding one Dim there.

Choice sets are fixed per parameter name (Optuna refuses a categorical
parameter whose choices change within a study), so options that would change
them change parameter *names* instead: per-group precision is
`prec.fp16.<group>` when only FP16 is on, `prec.int8.<group>` /
`prec.fp16+int8.<group>` with INT8; the profile layout is `layout.contest`
(single only: the organisers' harness runs profile 0, extra profiles would be
build time for nothing) or `layout.serving` (single, per_batch, buckets).

Profiles (engine/profiles.py): batch_buckets exists for per_batch and buckets,
frame_buckets for buckets, contest_profile (keep profile 0) for the serving
harness only. opt_shape is profile 0's opt shape ("max": the largest shape); for
per_batch its frames are every batch profile's opt frames.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import optuna

from engine.config import CALIBRATORS, TACTIC_SOURCES, BuildConfig
from engine.layer_groups import GROUPS
from workload import registry

from search.errors import SpaceError
from search.grid import shape_label
from search.options import GRANULARITIES, HARNESS_NAMES, SpaceOptions


# Fixed choice sets (changing one would break resuming an existing study).
WORKSPACES_MIB = (1024, 4096, 16384)
AUX_STREAMS = (None, 0, 1, 2)
MAX_OPT_SHAPE = "max"                                    # BuildConfig.opt_shape None: max_batch x max length
AUTO = "auto"                                            # group not pinned: TensorRT chooses
LAYOUT_CHOICES = {"contest": ("single",), "serving": ("single", "per_batch", "buckets")}
# The opt shapes and the batch / length bucket choices are the workload spec's (`grid`, `search`):
# for WeNet batch buckets 1,4,16 / 1,2,4,8,16 / 2,4,16 ("2,4,16": TensorRT 8.6 computes the decoder
# wrongly on a profile whose batch is fixed at 1, bench/results/diag-decoder-batch1-h200.json).
# trt.PreviewFeature names with a dimension each; one this TensorRT lacks is reported as
# ignored by the builder (engine/settings.py), so the tuple is fixed.
PREVIEW_FEATURES = ("FASTER_DYNAMIC_SHAPES_0805",)
PREVIEW_CHOICES = ("default", "on", "off")


def _always(params: Mapping[str, Any]) -> bool:
    return True


def _set(field: str) -> Callable[[dict, Any], None]:
    return lambda fields, value: fields.__setitem__(field, value)


def _get(field: str) -> Callable[[BuildConfig], Any]:
    return lambda config: getattr(config, field)


def _add_if_on(field: str, item: str) -> Callable[[dict, Any], None]:
    """Writer of an on/off dimension that adds `item` to a list field."""
    def write(fields: dict, on: bool) -> None:
        if on:
            fields[field].append(item)
    return write


def _pin_group(group: str) -> Callable[[dict, Any], None]:
    def write(fields: dict, precision: str) -> None:
        if precision != AUTO:
            fields["layer_precision"][group] = precision
    return write


@dataclass(frozen=True)
class Dim:
    """One Optuna parameter. `choices` is a tuple (categorical) or a range (integer)."""
    name: str
    choices: tuple | range
    write: Callable[[dict, Any], None]          # value -> BuildConfig fields
    read: Callable[[BuildConfig], Any]          # BuildConfig -> value
    when: Callable[[Mapping[str, Any]], bool] = _always

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if isinstance(self.choices, range):
            return trial.suggest_int(self.name, self.choices.start, self.choices.stop - 1)
        return trial.suggest_categorical(self.name, self.choices)

    def allows(self, value: Any) -> bool:
        if isinstance(self.choices, range):
            return isinstance(value, int) and not isinstance(value, bool) and value in self.choices
        return any(value is c or (type(value) is type(c) and value == c) for c in self.choices)


def block_count(onnx_path: Path, model: str, wanted: int | None = None) -> int:
    """`wanted` (--num-blocks), or the blocks of an export counted from its node names and the workload's
    block regex (WeNet: `/encoders.11/`); more blocks than the export has would be groups that match no
    layer: an error."""
    from engine.prepare import source_node_names
    from workload.groups import GroupMatcher

    spec = registry.get(model).layer_groups
    if not spec.block:
        raise SpaceError(f"workload {model} has no layer_groups.block regex: --group-granularity block "
                         "needs one (or use kind)")
    counted = GroupMatcher(spec, {}).count_blocks(source_node_names(onnx_path, model))
    if wanted is not None and wanted > counted:
        raise SpaceError(f"--num-blocks {wanted}: {onnx_path} has {counted} blocks (the groups of the others "
                         "would match no layer)")
    if wanted is None and not counted:
        raise SpaceError(f"{onnx_path}: no node name matches the block regex {spec.block!r}; pass --num-blocks")
    return counted if wanted is None else wanted


def space_groups(model: str, granularity: str = "kind", num_blocks: int | None = None) -> tuple[str, ...]:
    """Layer groups that get a precision dimension.

    "block": `block{i}.{kind}` for every block and kind, plus the plain kinds for
    the layers outside every block (subsampling, embedding, output, after_norm).
    """
    if not registry.known(model):
        raise SpaceError(f"unknown model {model!r}; expected one of {', '.join(registry.names())}")
    kinds = GROUPS[model]
    if granularity == "kind":
        return kinds
    if granularity == "block":
        if not num_blocks or num_blocks < 1:
            raise SpaceError("group granularity 'block' needs the number of blocks (num_blocks >= 1)")
        return tuple(f"block{i}.{k}" for i in range(num_blocks) for k in kinds) + kinds
    raise SpaceError(f"group granularity {granularity!r} is not one of {', '.join(GRANULARITIES)}")


def _precision_mode(params: Mapping[str, Any]) -> str:
    """'' (plain FP32), 'fp16', 'int8' or 'fp16+int8': which per-group dims exist."""
    return "+".join(flag for flag in ("fp16", "int8") if params.get(flag))


def _pinned(params: Mapping[str, Any]) -> bool:
    return any(k.startswith("prec.") and v != AUTO for k, v in params.items())


def _shape_from_label(label: str) -> tuple[int, int] | None:
    if label == MAX_OPT_SHAPE:
        return None
    b, t = label.split("x")
    return int(b), int(t)


def opt_shape_choices(model: str) -> tuple[str, ...]:
    """"max", then every judged shape of the workload's grid but the largest (max batch x max length)."""
    spec = registry.get(model)
    return (MAX_OPT_SHAPE,) + tuple(shape_label(s) for s in spec.grid.judged
                                    if s != (spec.batch.max, spec.length.max))


def _opt_shape_label(config: BuildConfig) -> str:
    if config.opt_shape is None or tuple(config.opt_shape) == (config.max_batch, config.workload.length.max):
        return MAX_OPT_SHAPE
    return shape_label(config.opt_shape)


def _ints(label: str) -> list[int]:
    return [int(x) for x in label.split(",")]


def _label(values) -> str:
    return ",".join(str(v) for v in values)


def _preview_write(name: str) -> Callable[[dict, Any], None]:
    def write(fields: dict, choice: str) -> None:
        if choice != "default":
            fields["preview_features"][name] = choice == "on"
    return write


def _preview_read(name: str) -> Callable[[BuildConfig], str]:
    def read(config: BuildConfig) -> str:
        if name not in config.preview_features:
            return "default"
        return "on" if config.preview_features[name] else "off"
    return read


class SearchSpace:
    """Samples BuildConfigs for one model; `to_params` inverts `sample`."""

    def __init__(self, model: str, passes: Sequence[str] = (), plugins: Sequence[str] = (),
                 groups: Sequence[str] | None = None, options: SpaceOptions | None = None) -> None:
        self.options = options or SpaceOptions()
        if not registry.known(model):
            raise SpaceError(f"unknown model {model!r}; expected one of {', '.join(registry.names())}")
        self.workload = registry.get(model)
        if self.options.max_batch is None:
            self.options = dataclasses.replace(self.options, max_batch=self.workload.batch.max)
        if not 0 <= self.options.max_opt_level <= 5:
            raise SpaceError(f"max_opt_level {self.options.max_opt_level} is outside 0..5")
        if self.options.harness not in HARNESS_NAMES:
            raise SpaceError(f"harness {self.options.harness!r} is not one of {', '.join(HARNESS_NAMES)}")
        bad = [s for s in self.options.tactic_sources if s not in TACTIC_SOURCES]
        if bad or not self.options.tactic_sources:
            raise SpaceError(f"tactic_sources {list(self.options.tactic_sources)}: need a non-empty subset of "
                             f"{', '.join(TACTIC_SOURCES)}")
        for kind, names in (("pass", passes), ("plugin", plugins)):
            if len(set(names)) != len(names):
                raise SpaceError(f"{kind} names repeat: {list(names)}")
        self.model = model
        self.passes = tuple(passes)
        self.plugins = tuple(plugins)
        self.groups = tuple(groups) if groups is not None else space_groups(
            model, self.options.group_granularity, self.options.num_blocks)
        if self.options.precision_groups is not None:     # a sensitivity sweep's cut: the rest left to TensorRT
            unknown = [g for g in self.options.precision_groups if g not in self.groups]
            if unknown:
                raise SpaceError(f"--precision-groups: {', '.join(unknown)} not a layer group of {model} "
                                 f"({', '.join(self.groups)})")
            self.groups = tuple(g for g in self.groups if g in self.options.precision_groups)
        self.dims = self._dimensions()

    # --- the space -------------------------------------------------------------
    def _dimensions(self) -> list[Dim]:
        o = self.options
        dims: list[Dim] = []
        onoff = (False, True)

        for name in self.passes:
            dims.append(Dim(f"pass.{name}", onoff,
                            write=_add_if_on("passes", name),
                            read=lambda c, n=name: n in c.passes))
        for name in self.plugins:
            dims.append(Dim(f"plugin.{name}", onoff,
                            write=_add_if_on("plugins", name),
                            read=lambda c, n=name: n in c.plugins))

        dims.append(Dim("fp16", onoff, write=_set("fp16"), read=_get("fp16")))
        modes = ["fp16"]
        if o.allow_int8:
            dims.append(Dim("int8", onoff, write=_set("int8"), read=_get("int8")))
            modes += ["int8", "fp16+int8"]

        # Per-group precision exists only when a lower precision is enabled: with plain FP32
        # every layer runs FP32 anyway.
        for mode in modes:
            choices = (AUTO, "fp32") + tuple(p for p in ("fp16", "int8") if p in mode.split("+"))
            for group in self.groups:
                dims.append(Dim(f"prec.{mode}.{group}", choices,
                                write=_pin_group(group),
                                read=lambda c, g=group: c.layer_precision.get(g, AUTO),
                                when=lambda p, m=mode: _precision_mode(p) == m))
        dims.append(Dim("precision_constraints", ("prefer", "obey"),
                        write=_set("precision_constraints"), read=_get("precision_constraints"), when=_pinned))
        if o.allow_int8:
            dims.append(Dim("calibrator", CALIBRATORS, write=_set("calibrator"),
                            read=_get("calibrator"), when=lambda p: bool(p.get("int8"))))

        dims.append(Dim("tf32", onoff, write=_set("tf32"), read=_get("tf32")))

        dims.append(Dim("tactic_sources", ("default", "custom"),
                        write=lambda f, v: f.__setitem__("tactic_sources", None if v == "default" else []),
                        read=lambda c: "default" if c.tactic_sources is None else "custom"))
        for src in o.tactic_sources:
            dims.append(Dim(f"tactic.{src}", onoff,
                            write=_add_if_on("tactic_sources", src),
                            read=lambda c, s=src: s in (c.tactic_sources or ()),
                            when=lambda p: p.get("tactic_sources") == "custom"))

        dims.append(Dim("workspace_mib", WORKSPACES_MIB, write=_set("workspace_mib"), read=_get("workspace_mib")))
        dims.append(Dim("opt_level", range(0, o.max_opt_level + 1),
                        write=_set("opt_level"), read=_get("opt_level")))
        dims.append(Dim("opt_shape", opt_shape_choices(self.model),
                        write=lambda f, v: f.__setitem__("opt_shape", _shape_from_label(v)),
                        read=_opt_shape_label))
        dims.append(Dim("max_aux_streams", AUX_STREAMS, write=_set("max_aux_streams"), read=_get("max_aux_streams")))
        dims += self._layout_dims()
        for name in PREVIEW_FEATURES:
            dims.append(Dim(f"preview.{name}", PREVIEW_CHOICES, write=_preview_write(name), read=_preview_read(name)))
        return dims

    def _layout_dims(self) -> list[Dim]:
        """Profile layout: the choice set (so the parameter name) depends on the harness."""
        o = self.options
        layout = f"layout.{o.harness}"

        def multi(p: Mapping[str, Any]) -> bool:
            return p.get(layout, "single") != "single"

        dims = [Dim(layout, LAYOUT_CHOICES[o.harness], write=_set("layout"), read=_get("layout")),
                Dim("batch_buckets", tuple(_label(b) for b in self.workload.search.batch_buckets),
                    write=lambda f, v: f.__setitem__("batch_buckets", _ints(v)),
                    read=lambda c: _label(c.buckets_of_batch), when=multi),
                Dim("frame_buckets", tuple(_label(b) for b in self.workload.search.length_buckets),
                    write=lambda f, v: f.__setitem__("frame_buckets", _ints(v)),
                    read=lambda c: _label(c.buckets_of_frames), when=lambda p: p.get(layout) == "buckets")]
        if o.harness == "serving":
            # Dropping profile 0 needs buckets that reach max_batch (and, for buckets, the largest length).
            dims.append(Dim("contest_profile", (True, False), write=_set("contest_profile"),
                            read=_get("contest_profile"),
                            when=lambda p: multi(p) and _ints(p["batch_buckets"])[-1] >= o.max_batch))
        return dims

    # --- sampling ----------------------------------------------------------------
    def _defaults(self) -> dict[str, Any]:
        """BuildConfig's own defaults for every field the space does not set (max_batch: the run's)."""
        return BuildConfig(model=self.model, max_batch=self.options.max_batch).to_dict()

    def sample(self, trial: optuna.trial.BaseTrial) -> BuildConfig:
        """Suggest every active dimension and assemble the config.

        Every combination is buildable: a custom tactic-source set with every
        source off means TensorRT's own kernels only (the probe's build.tactics.none).
        """
        fields = self._defaults()
        params: dict[str, Any] = {}
        for dim in self.dims:
            if dim.when(params):
                params[dim.name] = value = dim.suggest(trial)
                dim.write(fields, value)
        return BuildConfig.from_dict(fields)

    def unsuggested(self, fixed: Mapping[str, Any]) -> list[str]:
        """Fixed parameters of an enqueued trial that this space never suggests and that are on.

        Optuna drops them, so the trial would run another config than it was enqueued with
        (an INT8 plan without --allow-int8, a plugin whose creator is not loaded); off ones
        (False, a group left to TensorRT) change nothing.
        """
        names = {d.name for d in self.dims}
        return sorted(k for k, v in fixed.items() if k not in names and v not in (False, None, AUTO))

    def unpinned(self, fixed: Mapping[str, Any]) -> dict[str, Any]:
        """The dimensions a whole config enqueued in a smaller space lacks, each at BuildConfig's default.

        A plan queued without --plugin-lib (or --allow-int8) has no parameter for those plugins (INT8);
        Optuna would let the sampler choose them, and the trial would run a config its plan never named
        under the plan's label. The config it named had them at their defaults, which these parameters pin.
        """
        default = BuildConfig.from_dict(self._defaults())
        params, added = dict(fixed), {}
        for dim in self.dims:
            if dim.name in params or not dim.when(params):
                continue
            value = dim.read(default)
            if not dim.allows(value):
                raise SpaceError(f"{dim.name}: the default {value!r} is outside this space, so an enqueued trial "
                                 "without it cannot be pinned")
            params[dim.name] = added[dim.name] = value
        return added

    def to_params(self, config: BuildConfig) -> dict[str, Any]:
        """The parameters that make `sample` return `config` (for study.enqueue_trial).

        Raises SpaceError naming the field when the space cannot express the config.
        """
        if config.model != self.model:
            raise SpaceError(f"config is for {config.model}, the space for {self.model}")
        params: dict[str, Any] = {}
        for dim in self.dims:
            if dim.when(params):
                value = dim.read(config)
                if not dim.allows(value):
                    raise SpaceError(f"config value {value!r} of {dim.name} is outside the search space")
                params[dim.name] = value
        back = self.sample(optuna.trial.FixedTrial(params))
        a, b = canonical(back), canonical(config)
        if a != b:
            diff = sorted(k for k in a if a[k] != b[k])
            raise SpaceError(f"the search space cannot express field(s) {diff} of this config "
                             f"(unknown pass/plugin/group, a pass order other than {list(self.passes)}, "
                             "or a non-default value of an unsampled field)")
        return params


def canonical(config: BuildConfig) -> dict[str, Any]:
    """Field values compared up to meaning: tactic source order, the default opt shape and buckets."""
    d = config.to_dict()
    if d["tactic_sources"] is not None:
        d["tactic_sources"] = sorted(d["tactic_sources"])
    if d["opt_shape"] is not None:
        d["opt_shape"] = tuple(d["opt_shape"])
        if d["opt_shape"] == (config.max_batch, config.workload.length.max):
            d["opt_shape"] = None
    if config.layout != "single":
        d["batch_buckets"] = config.buckets_of_batch
    if config.layout == "buckets":
        d["frame_buckets"] = config.buckets_of_frames
    return d
