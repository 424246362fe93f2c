"""Reading bench/results/: one reader per file the report uses, each knowing that file's shape.

`FILES` names every file the report reads (key -> reader); anything else in bench/results/ is
ignored (an older result, a log no block shows). A file is bench/results/<key>-<gpu>.json of the
report's --gpu, unless its entry names the GPU it was measured on (a study that ran on an H100 is
read beside the H200 files). A reader returns the parsed data or raises
ReportInputError with the file's name and what is wrong: one line on stderr, exit status 2.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple


class ReportInputError(Exception):
    """Input the report cannot use: one line on stderr, exit status 2."""


def _json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportInputError(f"{where}: not valid JSON ({e})") from None


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise ReportInputError(f"{where}: {what}")


def record(*lists: str, dicts: tuple[str, ...] = ()) -> Callable[[str, str], dict]:
    """A JSON object whose keys `lists` (where present) are lists of objects and `dicts` objects."""
    def read(text: str, where: str) -> dict:
        data = _json(text, where)
        _need(isinstance(data, dict), where, "expected a JSON object at the top")
        for k in lists:
            v = data.get(k)
            _need(v is None or (isinstance(v, list) and all(isinstance(x, dict) for x in v)),
                  where, f"'{k}' should be a list of objects")
        for k in dicts:
            _need(data.get(k) is None or isinstance(data[k], dict), where, f"'{k}' should be an object")
        return data
    return read


def fronts(text: str, where: str) -> list[dict]:
    """`search pareto --json`: a list of fronts, one per study, each {study, model, points, front: [...]}.
    A single front object, or an object holding them under 'fronts', is read as that list."""
    data = _json(text, where)
    if isinstance(data, dict):
        data = data.get("fronts", [data])
    _need(isinstance(data, list), where, "expected a list of fronts (one per study)")
    for f in data:
        _need(isinstance(f, dict) and isinstance(f.get("front"), list)
              and all(isinstance(p, dict) for p in f["front"]), where,
              "each entry should be an object with a 'front' list of points")
        for p in f["front"]:
            _need(isinstance(p.get("latency_ms"), (int, float)) and isinstance(p.get("worst_ratio"), (int, float)),
                  where, f"a front point lacks a numeric latency_ms or worst_ratio: {str(p)[:100]}")
    return data


def study_export(text: str, where: str) -> dict:
    """`search export`: {studies: [{study, model, harness, trials: [{number, state, ...}]}]}."""
    data = record("studies")(text, where)
    for st in data.get("studies") or []:
        trials = st.get("trials", [])
        _need(isinstance(trials, list) and all(isinstance(t, dict) and isinstance(t.get("number"), int)
                                               and isinstance(t.get("state"), str) for t in trials),
              where, f"study {st.get('study')!r}: 'trials' should be a list of objects with a number and state")
    return data


def evaluate_output(text: str, where: str) -> dict:
    """evaluate.py --json: {models: {model: {plan, cases: [{batch, length, latency_ms, a0, ...}]}}}."""
    data = record(dicts=("models",))(text, where)
    for name, m in (data.get("models") or {}).items():
        _need(isinstance(m, dict) and isinstance(m.get("cases", []), list), where,
              f"models.{name} should be an object with a 'cases' list")
    return data


# "3 failed, 15 passed, 5 skipped in 67.67s (0:01:07)", in -q mode bare, otherwise between '=' rules
PYTEST_SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|error).*? in [\d.]+s.*?)\s*=*$")


def pytest_log(text: str, where: str) -> dict:
    """A pytest run's output: the failed test ids, each failure's failing source line ('>') and first
    error line ('E'), and the summary line."""
    failed, asserts, code, summary = [], {}, {}, None
    current = None
    for line in text.splitlines():
        m = re.match(r"^_{3,} (\S.*?) _{3,}$", line)
        if m:
            current = m.group(1)
        elif line.startswith(">") and current and current not in code:
            code[current] = line[1:].strip()
        elif line.startswith("E   ") and current and current not in asserts:
            asserts[current] = line[4:].strip()
        elif line.startswith("FAILED "):
            failed.append(line[len("FAILED "):].split(" - ")[0])
        elif PYTEST_SUMMARY.match(line.strip()):
            summary = PYTEST_SUMMARY.match(line.strip()).group(1)
    _need(summary is not None, where, "no pytest summary line ('N passed ...') in the log")
    return {"failed": failed, "code": code, "assertions": asserts, "summary": summary}


_ROWS = record("rows", "builds", "errors", "summary", dicts=("layer_profiles", "baselines"))


class FileSpec(NamedTuple):
    suffix: str                               # the file is bench/results/<stem or key>-<gpu><suffix>
    read: Callable[[str, str], Any]
    gpu: str | None = None                    # the GPU slug it was measured on, whatever --gpu says; None: --gpu
    stem: str | None = None                   # the file's name stem where the key differs (one kind, two cards)


# key -> (file name suffix, reader[, GPU slug[, stem]]); the file is bench/results/<stem or key>-<gpu><suffix>,
# <gpu> the report's --gpu unless the entry names the card the file was measured on
FILES: dict[str, FileSpec] = {k: FileSpec(*v) for k, v in {
    "layouts": (".json", _ROWS),
    # the tenth session's full layouts run (FP32 and FP16 of every layout, torch rows merged in) on an H100
    "layouts@h100": (".json", _ROWS, "h100", "layouts"),
    "torch-baselines": (".json", _ROWS),
    # torch.compile max-autotune beside the naive engine and the best ones, one run (torch rows merged in)
    "layouts-torch-compile": (".json", _ROWS),
    "plugins": (".json", _ROWS),
    "precision": (".json", record("rows", "summary")),
    "pareto": (".json", fronts),
    "reproduce": (".json", record("rows", "compare")),
    "reproduce-eval": (".json", evaluate_output),
    "reproduce-plugins": (".json", record("rows", "compare")),     # the plugins bench's best decoder, rebuilt
    "reproduce-plugins-eval": (".json", evaluate_output),
    "reproduce-decoder-contest": (".json", record("rows", "compare")),   # the study's best decoder, rebuilt
    "reproduce-eval-decoder-contest": (".json", evaluate_output),
    "study": (".json", study_export),                       # the older (November) study export
    "study-decoder-contest": (".json", study_export),       # this session's decoder contest study
    "cache-builds": (".json", record("rows")),               # cold vs warm timing cache per layout
    "diag-trt86": (".json", record(dicts=("results",))),
    "diag-decoder-batch1": (".json", record("rows")),
    "probe": (".json", record("results")),
    "plugins-gputests": (".log", pytest_log),
    # the decoder serving study (December), run on an H100, its best trial rebuilt and evaluated under both harnesses
    "study-decoder-serving": (".json", study_export, "h100"),
    "reproduce-decoder-serving": (".json", record("rows", "compare"), "h100"),
    "reproduce-eval-decoder-serving": (".json", evaluate_output, "h100"),
    "reproduce-eval-decoder-serving-contest": (".json", evaluate_output, "h100"),
    # tune --workers-per-gpu: trials per minute with 3 and with 1 tuning process on the H100 (bench/study_throughput.py)
    "workers-ab": (".json", record("studies"), "h100"),
    # the same A/B with room (twelfth session): 2 workers against 1, the runs taking the precision plans in turn
    "workers-ab-2v1": (".json", record("studies"), "h100"),
    # the precision plans on per_batch_tf32 in the decoder serving study (H100): the best engine per precision
    "precision@h100": (".json", record("rows", "summary"), "h100", "precision"),
    "pareto@h100": (".json", fronts, "h100", "pareto"),          # the serving study's front, same session
}.items()}


def file_gpu(key: str, gpu: str) -> str:
    """The GPU slug of key's file: the one its FILES entry names, else the report's `gpu`."""
    return FILES[key].gpu or gpu


def file_name(key: str, gpu: str) -> str:
    return f"{FILES[key].stem or key}-{file_gpu(key, gpu)}{FILES[key].suffix}"


@dataclass
class Sources:
    results: Path
    gpu: str
    data: dict[str, Any]      # key of FILES -> what its reader returned, None where the file is absent

    def name(self, key: str) -> str:
        return f"bench/results/{file_name(key, self.gpu)}"

    def gpu_of(self, key: str) -> str:
        """The GPU slug of key's file (its FILES entry's, else the report's --gpu)."""
        return file_gpu(key, self.gpu)

    def missing(self, key: str) -> str:
        return f"{self.name(key)} is missing"

    def meta(self, key: str) -> tuple[str | None, str | None]:
        """(date, command) of a file where it records them (a list-shaped or log file does not)."""
        d = self.data.get(key)
        if not isinstance(d, dict):
            return None, None
        return d.get("date") or d.get("exported") or d.get("started"), d.get("command")


def load_sources(results: Path, gpu: str) -> Sources:
    if not results.is_dir():
        raise ReportInputError(f"no results folder at {results}")
    data: dict[str, Any] = {}
    for key, spec in FILES.items():
        path = results / file_name(key, gpu)
        if not path.is_file():
            data[key] = None
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ReportInputError(f"{path}: not UTF-8 text ({e})") from None
        data[key] = spec.read(text, str(path))
    if not any(v is not None for k, v in data.items() if FILES[k].gpu is None):   # a pinned file is not this gpu's
        raise ReportInputError(f"no result files for gpu '{gpu}' in {results} (expected e.g. layouts-{gpu}.json)")
    return Sources(results, gpu, data)
