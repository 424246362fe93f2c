"""One declaration of the options (search/options.py): every field gets its flag, and every
TrialOptions field reaches the trial worker's request unchanged, tune -> objective -> runner -> worker."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

import pytest

from search.cli import build_parser, main
from search.errors import SearchError
from search.options import (SpaceOptions, StudyOptions, TrialOptions, TuneOptions, add_arguments, from_args,
                            from_json, opt, option_fields, to_dict, to_json)
from search.request import read_request

FAKE_WORKER = Path(__file__).with_name("fake_trial_worker.py")
# Free-form string options whose valid values depend on the world; every other kind is derived below.
EXAMPLES = {"grid": "1x16,4x64"}


def non_default_argv(f: dataclasses.Field, tmp_path: Path) -> list[str]:
    """Command-line tokens that set field `f` to a value other than its default."""
    flag, kw = f.metadata["flag"], f.metadata["argparse"]
    if kw.get("action") in ("store_true", "store_false"):
        return [flag]
    if kw.get("action") == "append":
        item = tmp_path / f"{f.name}.so"          # existing files: path options are checked (an ELF header)
        item.write_bytes(b"\x7fELF" + b"\0" * 60)
        return [flag, str(item)]
    if "choices" in kw:
        return [flag, next(c for c in kw["choices"] if c != f.default)]
    if kw.get("type") in (int, float):
        return [flag, str((f.default or 0) + 2)]
    return [flag, EXAMPLES[f.name]]


def test_every_option_field_has_its_flag_on_tune():
    tune = build_parser()._subparsers._group_actions[0].choices["tune"]
    dests = {a.dest for a in tune._actions}
    for cls in (StudyOptions, TrialOptions, SpaceOptions, TuneOptions):
        flagged = {f.name for f in option_fields(cls)}
        assert flagged <= dests, (cls.__name__, flagged - dests)
    # every TrialOptions field is an option (the worker gets each); tactic_sources and the
    # space's harness/max_batch are not flags (set by code, from the trial options)
    assert {f.name for f in dataclasses.fields(TrialOptions)} == {f.name for f in option_fields(TrialOptions)}
    unflagged = {f.name for f in dataclasses.fields(SpaceOptions)} - {f.name for f in option_fields(SpaceOptions)}
    assert unflagged == {"tactic_sources", "harness", "max_batch"}


def test_every_trial_option_reaches_the_worker_unchanged(work, tmp_path, capsys):
    argv = [tok for f in dataclasses.fields(TrialOptions) for tok in non_default_argv(f, tmp_path)]
    expected = from_args(TrialOptions, build_parser().parse_args(["tune", *argv]))
    for f in dataclasses.fields(TrialOptions):           # the test sets every field, none left at its default
        assert getattr(expected, f.name) != getattr(TrialOptions(), f.name), f.name

    worker = shlex.join([sys.executable, str(FAKE_WORKER), "--fake-mode", "ok"])
    assert main(["tune", "--work-dir", str(work), "--model", "encoder", "--trials", "1", "--no-progress",
                 "--worker-command", worker, *argv]) == 0
    (trial_dir,) = (work / "trials" / f"wenet-encoder-{expected.harness}").iterdir()
    assert read_request(trial_dir / "request.json").trial == expected          # what the runner wrote
    result = json.loads((trial_dir / "result.json").read_text())               # what the worker read
    assert result["trial_options"] == to_dict(expected)
    assert result["harness"] == expected.harness


def test_a_new_field_needs_no_other_edit():
    """Flag, parsing, default and JSON come from the field alone."""
    extended = dataclasses.make_dataclass(
        "Extended", [("new_knob", int, opt(7, "--new-knob", "a knob (default: %(default)s)", type=int))],
        bases=(TrialOptions,), frozen=True)
    p = argparse.ArgumentParser()
    add_arguments(p, extended)
    assert "(default: 7)" in p.format_help()
    got = from_args(extended, p.parse_args(["--new-knob", "9", "--runs", "3"]))
    assert (got.new_knob, got.runs, got.harness) == (9, 3, "serving")
    assert from_args(extended, p.parse_args([])).new_knob == 7
    assert from_json(extended, to_json(got)) == got


def test_flag_values_are_parsed_by_their_field():
    p = argparse.ArgumentParser()
    add_arguments(p, TuneOptions)
    opts = from_args(TuneOptions, p.parse_args(["--model", "decoder", "--gpus", "0,1", "--worker-command",
                                                "python w.py", "--no-progress", "--plugin-lib", "a.so",
                                                "--plugin-lib", "b.so", "--work-dir", "w"]))
    assert opts.study.models == ("decoder",) and opts.gpus == ("0", "1") and opts.progress is False
    assert opts.worker_command == ("python", "w.py") and opts.trial.plugin_libs == ("a.so", "b.so")
    assert opts.study.storage == "sqlite:///w/study.db" and opts.data_dir == "w/data"
    with pytest.raises(SearchError, match="unknown option"):
        from_json(TrialOptions, '{"mode": "robust"}')        # the old option is gone
