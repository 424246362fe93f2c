"""Every entry point refuses bad input the same way: exit status 2, exactly one line on stderr
(`error: ...`), no traceback anywhere, and nothing written.

Each row runs one command as a subprocess in a fresh directory (the working directory, so
defaults like work/ and encoder.plan land there): `search`, `engine`, `candidates`, `plugins` and
`workload` as `python -m`, `evaluate.py` and `build.sh` as scripts. `files` are created
before the run (`@NAME` copies an asset, `@NAME:half` its first half: a truncated file; None
removes one the setup made);
the directory's listing (names, sizes, modification times) must be the same afterwards, so a
rejected command creates no storage, cache, output folder or partial file. `match` is a
piece of the one error line, so each row fails if the command refuses for another reason.

Rows marked `trt` run over the backend test double (tests/engine/with_fake_backend.py), to
reach checks that come after "is TensorRT installed?"; the others run as on this CPU
machine, where a command that needs TensorRT must say so in one line.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
WITH_FAKE_TRT = ROOT / "tests" / "engine" / "with_fake_backend.py"
FAKE_WORKER = ROOT / "tests" / "search" / "fake_trial_worker.py"
FAKE = shlex.join([PY, str(FAKE_WORKER), "--fake-mode", "ok"])
TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Bad:
    id: str
    argv: tuple[str, ...]                         # entry point first: search, engine, ..., build.sh
    match: str                                    # a piece of the error line
    setup: str = ""                               # "", "work" (ONNX + data), "study" (work + a study), "plans"
    files: tuple[tuple[str, str | bytes | None], ...] = ()    # None: remove the file the setup made
    env: tuple[tuple[str, str], ...] = ()
    trt: bool = False                             # under the fake TensorRT


def bad(id, argv, match, setup="", files=None, env=None, trt=False) -> Bad:
    return Bad(id, tuple(shlex.split(argv) if isinstance(argv, str) else argv), match, setup,
               tuple((files or {}).items()), tuple((env or {}).items()), trt)


def cfg(text: str) -> dict[str, str]:
    return {"cfg.yaml": text}


TEXT = "just some notes\n"
FOREIGN_NPZ = "@foreign.npz"
TUNE = ["search", "tune", "--work-dir", "work", "--model", "encoder", "--trials", "1", "--no-progress",
        "--grid", "1x16", "--worker-command", FAKE]
BUILD = "engine build --onnx work/onnx/encoder.onnx --out encoder.plan --work-dir work --no-progress"
CBUILD = BUILD + " --config cfg.yaml"
EVAL = "evaluate.py --models encoder --data work/data --no-progress --no-cwd-plugins"
APPLY = "candidates apply work/onnx/encoder.onnx out.onnx"
PAPPLY = "plugins apply work/onnx/encoder.onnx out.onnx"


def tune(id, extra, match, **kw) -> Bad:
    return bad(id, TUNE + shlex.split(extra), match, kw.pop("setup", "work"), **kw)


CASES = [
    # --- search tune: numbers ------------------------------------------------------------------
    tune("tune-runs-zero", "--runs 0", "--runs 0"),
    tune("tune-runs-negative", "--runs -3", "--runs -3"),
    tune("tune-runs-not-int", "--runs many", "invalid int value: 'many'"),
    tune("tune-warmup-negative", "--warmup -1", "--warmup -1"),
    tune("tune-warmup-float", "--warmup 2.5", "invalid int value: '2.5'"),
    tune("tune-timeout-nan", "--trial-timeout nan", "--trial-timeout nan"),
    tune("tune-timeout-inf", "--trial-timeout inf", "--trial-timeout inf"),
    tune("tune-timeout-zero", "--trial-timeout 0", "--trial-timeout 0"),
    tune("tune-budget-nan", "--time-budget nan", "--time-budget nan"),
    tune("tune-budget-inf", "--time-budget inf", "--time-budget inf"),
    tune("tune-budget-negative", "--time-budget -5", "--time-budget -5"),
    tune("tune-trials-negative", "--trials -2", "--trials -2"),
    tune("tune-cache-nan", "--plan-cache-gib nan", "--plan-cache-gib nan"),
    tune("tune-cache-negative", "--plan-cache-gib -1", "--plan-cache-gib -1"),
    tune("tune-percentile-nan", "--prune-percentile nan", "--prune-percentile nan"),
    tune("tune-percentile-100", "--prune-percentile 100", "--prune-percentile 100"),
    tune("tune-bad-ratio-nan", "--prune-bad-ratio nan", "--prune-bad-ratio nan"),
    tune("tune-bad-ratio-half", "--prune-bad-ratio 0.5", "--prune-bad-ratio 0.5"),
    tune("tune-startup-negative", "--prune-startup-trials -1", "--prune-startup-trials -1"),
    tune("tune-opt-level-negative", "--max-opt-level -1", "--max-opt-level -1"),
    tune("tune-seed-negative", "--seed -1", "--seed -1"),
    tune("tune-num-blocks-zero", "--group-granularity block --num-blocks 0", "num_blocks >= 1"),
    tune("tune-num-blocks-beyond-onnx", "--group-granularity block --num-blocks 9", "block"),
    tune("tune-precision-groups-unknown", "--precision-groups softmax,bogus", "bogus not a layer group of encoder"),
    tune("tune-precision-groups-repeated", "--precision-groups norm,norm", "distinct comma-separated names"),
    # --- search.gpu_share (host.sh runs GPU work beside a study under it) ----------------------------
    bad("gpu-share-no-work-dir", "search.gpu_share -- true", "--work-dir"),
    bad("gpu-share-no-command", "search.gpu_share --work-dir work --", "no command to run"),
    bad("gpu-share-missing-program", "search.gpu_share --work-dir work -- no-such-program-here", "no such program"),
    # --- search tune: names that match nothing -------------------------------------------------
    tune("tune-grid-not-a-shape", "--grid 3x3", "not a test shape"),
    tune("tune-grid-repeats", "--grid 1x16,1x16", "repeats a shape"),
    tune("tune-grid-garbage", "--grid 1xfoo", "not BATCHxLENGTH"),
    tune("tune-gpus-empty", "--gpus ,", "--gpus"),
    tune("tune-harness-unknown", "--harness bogus", "invalid choice: 'bogus'"),
    tune("tune-pruner-unknown", "--pruner sometimes", "invalid choice: 'sometimes'"),
    tune("tune-granularity-unknown", "--group-granularity layer", "invalid choice: 'layer'"),
    tune("tune-model-unknown", "--model joiner", "unknown model 'joiner'"),
    # --- search tune: files every trial would fail on ------------------------------------------
    tune("tune-onnx-truncated", "", "encoder.onnx", files={"work/onnx/encoder.onnx": "@encoder.onnx:half"}),
    tune("tune-onnx-empty", "", "encoder.onnx", files={"work/onnx/encoder.onnx": b""}),
    tune("tune-onnx-foreign", "", "is not the encoder model", files={"work/onnx/encoder.onnx": "@foreign.onnx"}),
    tune("tune-onnx-missing", "--onnx-dir nowhere", "does not exist", setup=""),
    tune("tune-data-missing", "--data nowhere", "nowhere does not exist"),
    tune("tune-data-truncated", "", "encoder-1-16.npz",
         files={"work/data/encoder-1-16.npz": "@data/encoder-1-16.npz:half"}),
    tune("tune-data-foreign", "", "encoder-1-16.npz lacks", files={"work/data/encoder-1-16.npz": FOREIGN_NPZ}),
    tune("tune-data-case-missing", "--grid 64x16", "encoder-64-16.npz"),
    tune("tune-int8-no-calibration", "--allow-int8", "calibration-encoder.npz",
         files={"work/data/calibration-encoder.npz": None}),
    tune("tune-int8-truncated-calibration", "--allow-int8", "calibration-encoder.npz",
         files={"work/data/calibration-encoder.npz": "@data/calibration-encoder.npz:half"}),
    tune("tune-plugin-lib-missing", "--plugin-lib nowhere.so", "nowhere.so does not exist"),
    tune("tune-plugin-lib-not-elf", "--plugin-lib notes.txt", "not a shared object", files={"notes.txt": TEXT}),
    tune("tune-worker-missing", "--worker-command /nonexistent/python", "/nonexistent/python"),
    tune("tune-worker-empty", "--worker-command ''", "--worker-command is empty"),
    bad("tune-real-worker-no-tensorrt", TUNE[:-2], "tensorrt", "work"),
    # --- search tune: where the results go -----------------------------------------------------
    tune("tune-storage-not-url", "--storage 'not a url'", "not a SQLAlchemy URL"),
    tune("tune-storage-dir-is-file", "--storage sqlite:///afile/study.db", "afile",
         files={"afile": TEXT}),
    tune("tune-work-dir-is-file", "--work-dir afile --onnx-dir work/onnx --data work/data", "afile",
         files={"afile": TEXT}),
    tune("tune-study-name-both", "--model both --study-name s", "--study-name needs a single"),

    # --- search: read-only verbs and their outputs ---------------------------------------------
    bad("status-no-database", "search status --work-dir work", "no study database"),
    bad("status-storage-text-file", "search status --storage sqlite:///notes.txt", "notes.txt",
        files={"notes.txt": TEXT}),
    bad("status-harness-unknown", "search status --work-dir work --harness bogus", "invalid choice: 'bogus'",
        "study"),
    bad("best-study-unknown", "search best --work-dir work --model encoder --study-name nosuch", "nosuch",
        "study"),
    bad("export-out-dir-is-file", "search export --work-dir work --out afile/x.json", "afile", "study",
        files={"afile": TEXT}),
    bad("export-out-is-dir", "search export --work-dir work --out somedir", "somedir", "study",
        files={"somedir/keep": TEXT}),
    bad("freeze-out-is-file", "search freeze --work-dir work --out afile", "afile", "study",
        files={"afile": TEXT}),
    bad("plot-out-dir-is-file", "search plot --work-dir work --out afile/best.png", "afile", "study",
        files={"afile": TEXT}),
    bad("pareto-json-dir-is-file", "search pareto --work-dir work --json afile/front.json", "afile", "study",
        files={"afile": TEXT}),
    bad("dashboard-port-negative", "search dashboard --work-dir work --port -1", "--port -1", "study"),
    bad("dashboard-port-too-large", "search dashboard --work-dir work --port 70000", "--port 70000", "study"),
    bad("dashboard-port-zero", "search dashboard --work-dir work --port 0", "--port 0", "study"),
    bad("dashboard-port-not-int", "search dashboard --work-dir work --port http", "invalid int value", "study"),
    bad("dashboard-port-in-use", "search dashboard --work-dir work --port {BUSY_PORT}", "in use", "study"),
    bad("dashboard-host-bad", "search dashboard --work-dir work --host 999.1.1.1", "999.1.1.1", "study"),
    bad("dashboard-artifacts-is-file", "search dashboard --work-dir work --artifacts afile", "afile", "study",
        files={"afile": TEXT}),
    bad("dashboard-no-database", "search dashboard --work-dir work", "no study database"),
    bad("sensitivity-margin-nan", "search sensitivity --work-dir work --margin nan", "--margin nan", "study"),
    bad("sensitivity-margin-negative", "search sensitivity --work-dir work --margin -1", "--margin -1", "study"),
    bad("precision-layout-unknown", "search precision --work-dir work --layout triangle", "triangle", "study"),
    bad("precision-layout-unknown-with-buckets", "search precision --work-dir work --layout 'tiles[1,4,16]'",
        "tiles", "study"),
    # --- search plan: a writer, but not when the request is wrong ------------------------------
    bad("plan-unknown", "search plan --work-dir work --model encoder --plan everything", "everything", "work"),
    bad("plan-base-unknown-seed", "search plan --work-dir work --model encoder --plan ablation --base nosuch",
        "nosuch", "work"),
    bad("plan-base-missing-yaml", "search plan --work-dir work --model encoder --plan ablation --base gone.yaml",
        "gone.yaml", "work"),
    bad("plan-base-bad-yaml", "search plan --work-dir work --model encoder --plan ablation --base cfg.yaml",
        "fp16", "work", files=cfg("model: encoder\nfp16: 'no'\n")),
    bad("plan-base-trial-missing", "search plan --work-dir work --model encoder --plan sensitivity --base trial:99",
        "trial:99", "study"),

    # --- engine build: config fields -----------------------------------------------------------
    bad("cfg-bool-as-string", CBUILD, "fp16: 'no' must be true or false", "work",
        files=cfg("model: encoder\nfp16: 'no'\n")),
    bad("cfg-int-as-string", CBUILD, "workspace_mib: '4096' must be an integer", "work",
        files=cfg("model: encoder\nworkspace_mib: '4096'\n")),
    bad("cfg-list-as-scalar", CBUILD, "passes", "work", files=cfg("model: encoder\npasses: layernorm\n")),
    bad("cfg-unknown-field", CBUILD, "fp61", "work", files=cfg("model: encoder\nfp61: true\n")),
    bad("cfg-workspace-zero", CBUILD, "workspace_mib", "work", files=cfg("model: encoder\nworkspace_mib: 0\n")),
    bad("cfg-workspace-nan", CBUILD, "workspace_mib", "work", files=cfg("model: encoder\nworkspace_mib: .nan\n")),
    bad("cfg-opt-level-7", CBUILD, "opt_level: 7", "work", files=cfg("model: encoder\nopt_level: 7\n")),
    bad("cfg-aux-streams-negative", CBUILD, "max_aux_streams", "work",
        files=cfg("model: encoder\nmax_aux_streams: -1\n")),
    bad("cfg-unknown-pass", CBUILD, "nosuch_pass", "work", files=cfg("model: encoder\npasses: [nosuch_pass]\n")),
    bad("cfg-unknown-plugin", CBUILD, "nosuch_plugin", "work",
        files=cfg("model: encoder\nplugins: [nosuch_plugin]\n")),
    bad("cfg-pass-of-other-model", CBUILD, "memory_kv_once", "work",
        files=cfg("model: encoder\npasses: [memory_kv_once]\n")),
    bad("cfg-group-unknown", CBUILD, "bogus", "work", files=cfg("model: encoder\nlayer_precision: {bogus: fp32}\n")),
    bad("cfg-group-no-layer", CBUILD, "block9.feed_forward", "work",
        files=cfg("model: encoder\nfp16: true\nlayer_precision: {block9.feed_forward: fp32}\n")),
    bad("cfg-precision-unknown", CBUILD, "fp8", "work", files=cfg("model: encoder\nlayer_precision: {norm: fp8}\n")),
    bad("cfg-layout-unknown", CBUILD, "triangle", "work", files=cfg("model: encoder\nlayout: triangle\n")),
    bad("cfg-buckets-decreasing", CBUILD, "batch_buckets", "work",
        files=cfg("model: encoder\nlayout: per_batch\nbatch_buckets: [16, 4]\n")),
    bad("cfg-bucket-zero", CBUILD, "batch_buckets", "work",
        files=cfg("model: encoder\nlayout: per_batch\nbatch_buckets: [0, 4]\n")),
    bad("cfg-bucket-too-large", CBUILD, "batch_buckets", "work",
        files=cfg("model: encoder\nlayout: per_batch\nbatch_buckets: [1, 4, 100]\n")),
    bad("cfg-frame-buckets-on-single", CBUILD, "frame_buckets", "work",
        files=cfg("model: encoder\nframe_buckets: [64]\n")),
    bad("cfg-not-a-mapping", CBUILD, "mapping", "work", files=cfg("- fp16\n- int8\n")),
    bad("cfg-empty", CBUILD, "mapping", "work", files=cfg("")),
    bad("cfg-yaml-syntax", CBUILD, "not valid YAML", "work", files=cfg("fp16: [\n")),
    bad("cfg-opt-shape-scalar", CBUILD, "opt_shape", "work", files=cfg("model: encoder\nopt_shape: 16\n")),
    bad("cfg-preview-not-bool", CBUILD, "preview_features", "work",
        files=cfg("model: encoder\npreview_features: {FASTER_DYNAMIC_SHAPES_0805: 'off'}\n")),
    bad("cfg-model-unknown", CBUILD, "joiner", "work", files=cfg("model: joiner\n")),
    bad("cfg-missing", BUILD + " --config gone.yaml", "gone.yaml", "work"),
    # --- engine build: files ---------------------------------------------------------------------
    bad("build-int8-no-calibration", CBUILD + " --calibration gone.npz", "gone.npz", "work",
        files=cfg("model: encoder\nint8: true\n")),
    bad("build-calibration-truncated", CBUILD + " --calibration calib.npz", "calib.npz", "work",
        files={**cfg("model: encoder\nint8: true\n"), "calib.npz": "@data/calibration-encoder.npz:half"}),
    bad("build-model-mismatch", CBUILD + " --model decoder", "encoder config", "work",
        files=cfg("model: encoder\n")),
    bad("build-onnx-truncated", BUILD + " --baseline --model encoder", "encoder.onnx", "work",
        files={"work/onnx/encoder.onnx": "@encoder.onnx:half"}),
    bad("build-onnx-foreign", BUILD + " --baseline --model encoder", "is not the encoder model", "work",
        files={"work/onnx/encoder.onnx": "@foreign.onnx"}),
    bad("build-onnx-missing", "engine build --baseline --model encoder --onnx gone.onnx --out e.plan", "gone.onnx"),
    bad("build-out-dir-is-file", BUILD.replace("--out encoder.plan", "--out afile/e.plan") + " --baseline "
        "--model encoder", "afile", "work", files={"afile": TEXT}, trt=True),
    bad("build-out-is-dir", BUILD.replace("--out encoder.plan", "--out somedir") + " --baseline --model encoder",
        "somedir", "work", files={"somedir/keep": TEXT}, trt=True),
    bad("build-no-tensorrt", CBUILD, "tensorrt", "work", files=cfg("model: encoder\npasses: [layernorm]\n")),
    bad("build-plugins-missing", BUILD + " --baseline --model encoder --plugins gone.so", "gone.so", "work",
        trt=True),
    bad("build-plugins-not-elf", BUILD + " --baseline --model encoder --plugins notes.txt", "not a shared object",
        "work", files={"notes.txt": TEXT}, trt=True),
    bad("build-work-dir-is-file", CBUILD.replace("--work-dir work", "--work-dir afile"), "afile", "work",
        files={**cfg("model: encoder\npasses: [layernorm]\n"), "afile": TEXT}, trt=True),
    bad("build-timing-cache-is-dir", BUILD + " --baseline --model encoder --timing-cache somedir", "somedir",
        "work", files={"somedir/keep": TEXT}, trt=True),
    # --- engine inspect / probe --------------------------------------------------------------------
    bad("inspect-missing", "engine inspect gone.plan", "gone.plan"),
    bad("inspect-no-tensorrt", "engine inspect encoder.plan", "tensorrt", "plans"),
    bad("inspect-truncated", "engine inspect e.plan", "e.plan", files={"e.plan": "@encoder.plan:half"}, trt=True),
    bad("inspect-foreign", "engine inspect e.plan", "e.plan", files={"e.plan": "@foreign.onnx"}, trt=True),
    bad("inspect-json-dir-is-file", "engine inspect encoder.plan --json afile/l.json", "afile", "plans",
        files={"afile": TEXT}, trt=True),
    bad("probe-no-tensorrt", "engine probe --json probe.json", "tensorrt"),
    bad("engine-no-verb", "engine", "required"),

    # --- candidates ---------------------------------------------------------------------------------
    bad("cand-no-verb", "candidates", "required"),
    bad("cand-unknown-pass", APPLY + " --passes nosuch_pass", "nosuch_pass", "work"),
    bad("cand-empty-passes", APPLY + " --passes ,", "--passes is empty", "work"),
    bad("cand-repeated-pass", APPLY + " --passes layernorm,layernorm", "more than once", "work"),
    bad("cand-pass-of-other-model", APPLY + " --passes memory_kv_once --model encoder", "memory_kv_once", "work"),
    bad("cand-model-unknown", APPLY + " --passes layernorm --model joiner", "invalid choice: 'joiner'", "work"),
    bad("cand-input-missing", "candidates apply gone.onnx out.onnx --passes layernorm", "gone.onnx"),
    bad("cand-input-truncated", "candidates apply in.onnx out.onnx --passes layernorm", "in.onnx",
        files={"in.onnx": "@encoder.onnx:half"}),
    bad("cand-no-site-strict", "candidates apply in.onnx out.onnx --passes layernorm --strict", "no site",
        files={"in.onnx": "@foreign.onnx"}),
    bad("cand-output-dir-is-file", APPLY.replace("out.onnx", "afile/out.onnx") + " --passes layernorm", "afile",
        "work", files={"afile": TEXT}),
    bad("cand-output-is-dir", APPLY.replace("out.onnx", "somedir") + " --passes layernorm", "somedir", "work",
        files={"somedir/keep": TEXT}),
    bad("cand-plugin-rewrite", APPLY + " --passes wenet_layernorm_plugin", "unknown pass 'wenet_layernorm_plugin'",
        "work"),
    # --- plugins: the same CLI over passes and plugin rewrites ------------------------------------------
    bad("plug-no-verb", "plugins", "required"),
    bad("plug-unknown-rewrite", PAPPLY + " --passes nosuch_plugin", "nosuch_plugin", "work"),
    bad("plug-rewrite-of-other-model", PAPPLY + " --passes wenet_log_softmax_plugin --model encoder",
        "wenet_log_softmax_plugin applies to decoder", "work"),
    bad("plug-output-dir-is-file", PAPPLY.replace("out.onnx", "afile/out.onnx") + " --passes layernorm_plugin",
        "afile", "work", files={"afile": TEXT}),

    # --- workload -------------------------------------------------------------------------------------
    bad("wl-no-verb", "workload", "required"),
    bad("wl-export-models-unknown", "workload export --models joiner", "joiner"),
    bad("wl-export-seed-negative", "workload export --seed -1", "--seed -1"),
    bad("wl-export-style-unknown", "workload export --style fancy", "invalid choice: 'fancy'"),
    bad("wl-export-checkpoint-missing", "workload export --checkpoint gone.pt", "gone.pt"),
    bad("wl-export-checkpoint-garbage", "workload export --config tiny --checkpoint ck.pt", "ck.pt",
        files={"ck.pt": TEXT}),
    bad("wl-export-out-is-file", "workload export --config tiny --out afile", "afile", files={"afile": TEXT}),
    bad("wl-data-grid-garbage", "workload data --grid 4by64", "4by64"),
    bad("wl-data-grid-too-short", "workload data --grid 1x2", "1x2"),
    bad("wl-data-out-dir-is-file", "workload data --config tiny --grid 1x16 --out afile/data", "afile",
        files={"afile": TEXT}),
    bad("wl-data-cuda-absent", "workload data --config tiny --grid 1x16 --device cuda", "cuda"),
    bad("wl-checkpoint-out-is-dir", "workload checkpoint --config tiny --out somedir", "somedir",
        files={"somedir/keep": TEXT}),

    # --- evaluate.py --------------------------------------------------------------------------------
    bad("ev-models-unknown", EVAL.replace("--models encoder", "--models joiner"), "joiner", "plans"),
    bad("ev-runs-zero", EVAL + " --runs 0", "runs", "plans"),
    bad("ev-warmup-negative", EVAL + " --warmup -1", "warm", "plans"),
    bad("ev-grid-unknown", EVAL + " --grid 4by64", "4by64", "plans"),
    bad("ev-data-missing", EVAL.replace("work/data", "nowhere"), "nowhere", "plans"),
    bad("ev-plan-missing", EVAL + " --encoder gone.plan", "gone.plan", "plans"),
    bad("ev-npz-truncated", EVAL, "encoder-1-16.npz", "plans",
        files={"work/data/encoder-1-16.npz": "@data/encoder-1-16.npz:half"}),
    bad("ev-npz-foreign", EVAL, "encoder-1-16.npz lacks", "plans", files={"work/data/encoder-1-16.npz": FOREIGN_NPZ}),
    bad("ev-json-dir-is-file", EVAL + " --json afile/r.json", "afile", "plans", files={"afile": TEXT}),
    bad("ev-json-is-dir", EVAL + " --json somedir", "somedir", "plans", files={"somedir/keep": TEXT}),
    bad("ev-no-tensorrt", EVAL, "tensorrt", "plans"),
    bad("ev-plan-truncated", EVAL + " --encoder e.plan", "e.plan", "plans", files={"e.plan": "@encoder.plan:half"},
        trt=True),
    bad("ev-plan-foreign", EVAL + " --encoder e.plan", "e.plan", "plans", files={"e.plan": "@foreign.onnx"},
        trt=True),
    bad("ev-plugins-missing", EVAL + " --plugins gone.so", "gone.so", "plans"),
    bad("ev-no-graphs-contest", EVAL + " --contest --no-cuda-graphs", "--no-cuda-graphs", "plans"),

    # --- build.sh -------------------------------------------------------------------------------------
    bad("bs-unknown-argument", "build.sh --fast", "unknown argument --fast"),
    bad("bs-model-unknown", "build.sh --models joiner", "unknown model joiner"),
    bad("bs-models-empty", "build.sh --models ,", "names no model"),
    bad("bs-models-no-value", "build.sh --models", "--models needs a value"),
    bad("bs-build-plugins-unknown", "build.sh", "BUILD_PLUGINS=sometimes", env={"BUILD_PLUGINS": "sometimes"}),
    bad("bs-python-missing", "build.sh", "not found", env={"PYTHON": "/nonexistent/python3"}),
    bad("bs-no-tensorrt", "build.sh", "cannot import tensorrt"),
    bad("bs-plugins-missing", "build.sh --models encoder", "gone.so", "work", env={"PLUGINS": "gone.so"}, trt=True),
    bad("bs-frozen-config-bad", "build.sh --models encoder", "fp16: 'no'", "work",
        files={"configs/encoder.yaml": "model: encoder\nfp16: 'no'\n"}, trt=True),
    bad("bs-frozen-onnx-truncated", "build.sh --models encoder", "encoder.onnx", "work",
        files={"configs/encoder.yaml": "model: encoder\n", "work/onnx/encoder.onnx": "@encoder.onnx:half"},
        trt=True),
]


# --- assets: made once, copied into the rows' directories ----------------------------------------
def make_assets(a: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    from engine.probe import tiny_encoder_model
    from engine.evaluation import case_keys
    from workload.shapes import ALL_SHAPES, input_shapes

    onnx.save(tiny_encoder_model(), str(a / "encoder.onnx"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    foreign = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")],
                                                  "foreign", [x], [y]))
    onnx.save(foreign, str(a / "foreign.onnx"))
    np.savez(a / "foreign.npz", weights=np.zeros(3))
    data = a / "data"
    data.mkdir()
    for b, t in ALL_SHAPES:
        if b != 64:
            np.savez(data / f"encoder-{b}-{t}.npz", **{k: np.zeros(1, np.float32) for k in case_keys("encoder")})
    np.savez(data / "calibration-encoder.npz",
             **{f"{k}__0": np.zeros(s, np.float32) for k, s in input_shapes("encoder", 1, 16).items()})
    # a small finished study with its artifacts, as `search tune` leaves it
    work = a / "study" / "work"
    shutil.copytree(data, work / "data")
    (work / "onnx").mkdir()
    shutil.copy(a / "encoder.onnx", work / "onnx" / "encoder.onnx")
    res = subprocess.run([PY, "-m", "search", "tune", "--work-dir", str(work), "--model", "encoder", "--trials", "2",
                          "--no-progress", "--grid", "1x16", "--worker-command", FAKE],
                         cwd=a, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # an engine of the fake TensorRT
    (a / "plans").mkdir()
    res = subprocess.run([PY, str(WITH_FAKE_TRT), "-m", "engine", "build", "--baseline", "--model", "encoder",
                          "--onnx", str(a / "encoder.onnx"), "--out", str(a / "plans" / "encoder.plan"),
                          "--work-dir", str(a / "fakework"), "--no-progress", "--no-layer-info"],
                         cwd=a, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    shutil.copy(a / "plans" / "encoder.plan", a / "encoder.plan")
    return a


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    return make_assets(tmp_path_factory.mktemp("assets"))


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def _materialize(case: Bad, assets: Path, d: Path) -> None:
    if case.setup in ("work", "plans"):
        shutil.copytree(assets / "data", d / "work" / "data")
        (d / "work" / "onnx").mkdir()
        shutil.copy(assets / "encoder.onnx", d / "work" / "onnx" / "encoder.onnx")
    if case.setup == "plans":
        shutil.copy(assets / "plans" / "encoder.plan", d / "encoder.plan")
    if case.setup == "study":
        shutil.copytree(assets / "study" / "work", d / "work")
    for rel, content in case.files:
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.unlink()
        elif isinstance(content, str) and content.startswith("@"):
            name, _, part = content[1:].partition(":")
            blob = (assets / name).read_bytes()
            path.write_bytes(blob[:len(blob) // 2] if part == "half" else blob)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _listing(d: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(d)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(d.rglob("*"))}


def _command(case: Bad, d: Path) -> tuple[list[str], dict[str, str]]:
    entry, *rest = case.argv
    env = dict(case.env)
    if entry == "build.sh":
        env.setdefault("WORK", str(d / "work"))
        env.setdefault("CONFIG_DIR", str(d / "configs"))
        env.setdefault("OUT_DIR", str(d / "out"))
        env.setdefault("BUILD_PLUGINS", "off")
        if case.trt:
            env.setdefault("PYTHON", str(d.parent / "python-fake-trt"))
        return ["bash", str(ROOT / "build.sh"), *rest], env
    head = [PY, str(WITH_FAKE_TRT)] if case.trt else [PY]
    if entry == "evaluate.py":
        return [*head, str(ROOT / "evaluate.py"), *rest], env
    return [*head, "-m", entry, *rest], env


@pytest.fixture(scope="module")
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_table_is_large_and_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 80
    assert {c.argv[0] for c in CASES} == {"search", "search.gpu_share", "engine", "candidates", "plugins", "workload",
                                            "evaluate.py", "build.sh"}


def run_case(case: Bad, assets: Path, tmp_path: Path, port: int, timeout: float = TIMEOUT_S):
    """(the finished process, the run directory's listing before, after)."""
    d = tmp_path / "run"
    d.mkdir(parents=True)
    if case.trt and case.argv[0] == "build.sh":
        shim = tmp_path / "python-fake-trt"
        shim.write_text(f"#!/bin/sh\nexec {shlex.quote(PY)} {shlex.quote(str(WITH_FAKE_TRT))} \"$@\"\n")
        shim.chmod(0o755)
    _materialize(case, assets, d)
    before = _listing(d)
    argv, env = _command(case, d)
    argv = [a.replace("{BUSY_PORT}", str(port)) for a in argv]
    res = subprocess.run(argv, cwd=d, env=_env(env), capture_output=True, text=True, timeout=timeout)
    return res, before, _listing(d)


@pytest.fixture(scope="module")
def outcomes(request, assets, busy_port, tmp_path_factory):
    """The rows selected in this session, run two at a time (each a subprocess): id -> run_case's result."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_input" and hasattr(item, "callspec")]
    base = tmp_path_factory.mktemp("rows")

    def one(case: Bad):
        try:
            return run_case(case, assets, base / case.id, busy_port)
        except subprocess.TimeoutExpired as exc:
            return exc
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return dict(zip([c.id for c in selected], pool.map(one, selected)))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Bad, outcomes):
    outcome = outcomes[case.id]
    if isinstance(outcome, subprocess.TimeoutExpired):
        pytest.fail(f"still running after {TIMEOUT_S} s: the input was accepted")
    res, before, after = outcome
    err_lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    assert res.returncode == 2, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert len(err_lines) == 1, res.stderr
    assert err_lines[0].startswith("error: ") and case.match in err_lines[0], err_lines[0]
    assert after == before, "a rejected command wrote files"
