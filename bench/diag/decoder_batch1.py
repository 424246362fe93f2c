"""Why the decoder is Bad on a batch-1-fixed optimization profile (layouts-h200.json: per_batch and
buckets decoders miss at every 1xT case, a0 ~4, while the dynamic profile is Good at batch 1).

    python3.10 bench/diag/decoder_batch1.py --work WORK --json OUT.json

Builds the decoder with one profile, batch fixed at 1 (frames dynamic), FP32 and TF32 off, runs the
1xT test cases, and splits |TensorRT - PyTorch| of decoder_out by whether the hypothesis position
is inside hyps_lens_sos (a real token) or past it (padding the score ignores), and compares
best_index. Then the same with batch fixed at 2, to see whether "batch 1" or "fixed batch" matters.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import base_record, ensure_repo_on_path, write_json  # noqa: E402

ensure_repo_on_path()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/diag/decoder_batch1.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="work")
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    import numpy as np

    from engine.build import build_engine
    from engine.config import BuildConfig
    from engine.harness import HARNESSES
    from engine.runtime import TrtRunner
    from engine.cuda_runtime import gpu_name
    from engine.evaluation import case_path, load_case
    from workload.padding import PAD_SPECS

    work = Path(args.work)
    record = {**base_record(gpu_name()), "kind": "diag-decoder-batch1", "rows": []}
    for bucket in (1, 2):
        cfg = BuildConfig("decoder", layout="per_batch", batch_buckets=[bucket], max_batch=bucket,
                          contest_profile=False)
        plan = work / "diag" / f"decoder-b{bucket}.plan"
        report = build_engine(work / "onnx" / "decoder.onnx", cfg, plan, timing_cache=work / "timing-decoder.cache",
                              progress=False, layer_info=False)
        with TrtRunner(plan, harness=HARNESSES["serving"].with_options(cuda_graphs=False),
                       pad=PAD_SPECS["decoder"]) as runner:
            for frames in (16, 256, 1024):
                feeds, ref = load_case(case_path(work / "data", "decoder", 1, frames), "decoder", runner.input_names)
                out = runner.infer(feeds)
                diff = np.abs(out["decoder_out"].astype(np.float64) - ref["decoder_out"].astype(np.float64))
                lens = feeds["hyps_lens_sos"]                               # [1, 10]
                pos = np.arange(diff.shape[2])[None, None, :]
                inside = pos < lens[:, :, None]                             # [1, 10, 63]
                per_pos = diff.max(axis=3)                                  # [1, 10, 63]
                row = {"bucket": bucket, "frames": frames, "build_s": report.build_s,
                       "max_diff_inside": float(per_pos[inside].max()) if inside.any() else None,
                       "max_diff_past_len": float(per_pos[~inside].max()) if (~inside).any() else None,
                       "positions_over_1e-3": int((per_pos > 1e-3).sum()),
                       "best_index_equal": bool(np.array_equal(out["best_index"], ref["best_index"])),
                       "hyps_lens_sos": lens.tolist()}
                worst = np.unravel_index(np.argmax(per_pos), per_pos.shape)
                row["worst_at"] = {"hyp": int(worst[1]), "pos": int(worst[2]), "len": int(lens[0, worst[1]])}
                record["rows"].append(row)
                print(json.dumps(row), flush=True)
                write_json(Path(args.json), record)
    record["finished"] = True
    write_json(Path(args.json), record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
