"""README's generated tables and figures, from the committed bench/results/*.json only.

    python3 -m bench.report            # rewrite README's <!-- report:NAME --> blocks and docs/figures/
    python3 -m bench.report --check    # exit 1, one line per problem, if either differs from what it would make
    python3 -m bench.report --numbers  # every inline number's KEY, value and result file

Numbers in README's prose outside the blocks are inline markers, `<!-- n:KEY -->26.14 ms<!-- /n -->`,
whose text the command rewrites from bench/report_numbers.py; `--check` also fails on an unknown KEY
and on a measured-looking number in the prose outside them (bench/report_inline.py).

Figures are PNGs plus a sidecar NAME.json holding exactly the data plotted, and a manifest.json
with each PNG's sha256 and the renderer versions. `--check` compares the README blocks and the
sidecars exactly, every PNG against the manifest's hash, and re-renders the PNGs and compares bytes
only when matplotlib/FreeType/Pillow are the versions that made them: their output is byte-stable
for one set of versions but not across versions, and the data is what a figure must reproduce.
Exit status: 0 fine, 1 check found problems, 2 bad input (one line on stderr).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from bench.report_blocks import blocks
from bench.report_data import ReportInputError, load_sources
from bench.report_inline import CLOSE, OPEN, bare_numbers, inline, used_keys
from bench.report_numbers import NUMBERS, value
from bench.report_specs import all_specs
from bench.report_tables import FIG_DIR

ROOT = Path(__file__).resolve().parents[1]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def rewrite(text: str, made: dict[str, str]) -> tuple[str, list[str], dict[str, tuple[str, str]]]:
    """(README with every block replaced, marker problems, name -> (old content, new content))."""
    out, problems, seen = [], [], {}
    current, old = None, []
    for n, line in enumerate(text.split("\n"), 1):
        o, c = OPEN.match(line), CLOSE.match(line)
        if current is None and o:
            current, old = o.group(1), []
            if current in seen:
                problems.append(f"README.md:{n}: block report:{current} appears twice")
            elif current not in made:
                problems.append(f"README.md:{n}: unknown block report:{current} (known: {', '.join(made)})")
            out.append(line)
        elif current is None and c:
            problems.append(f"README.md:{n}: closing marker of report:{c.group(1)} without its opening one")
            out.append(line)
        elif current is not None and (o or c):
            if c and c.group(1) == current:
                new = made.get(current, "\n".join(old).strip("\n"))
                seen[current] = ("\n".join(old).strip("\n"), new)
                out += [new, line]
                current = None
            else:
                problems.append(f"README.md:{n}: block report:{current} is not closed before this marker")
                out.append(line)
        elif current is None:
            out.append(line)
        else:
            old.append(line)
    if current is not None:
        problems.append(f"README.md: block report:{current} is never closed")
    return "\n".join(out), problems, seen


def first_difference(old: str, new: str) -> str:
    a, b = old.split("\n"), new.split("\n")
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"line {i} is {x[:70]!r}, the results give {y[:70]!r}"
    return f"{len(a)} lines, the results give {len(b)}"


def sidecar(spec: dict) -> str:
    return json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _render_all(specs: dict) -> dict[str, bytes]:
    try:
        from bench.report_figures import render
        return {n: render(s) for n, (s, _) in specs.items() if s}
    except ImportError as e:
        raise ReportInputError(f"the figures need matplotlib ({e}); pip install -r requirements-cpu.txt") from None


def _renderer() -> dict | None:
    try:
        from bench.report_figures import renderer
        return renderer()
    except ImportError:
        return None


def _inputs(root: Path, gpu: str):
    readme = root / "README.md"
    if not readme.is_file():
        raise ReportInputError(f"no README.md at {readme}")
    src = load_sources(root / "bench" / "results", gpu)
    specs = all_specs(src)
    return readme, readme.read_text(encoding="utf-8"), specs, blocks(src, specs), src


def generate(root: Path, gpu: str) -> int:
    readme, text, specs, made, src = _inputs(root, gpu)
    new_text, problems, seen = rewrite(text, made)
    new_text, inline_problems, numbers = inline(new_text, src)
    if problems or inline_problems:
        raise ReportInputError("; ".join(problems + inline_problems))
    pngs = _render_all(specs)
    figdir = root / FIG_DIR
    figdir.mkdir(parents=True, exist_ok=True)
    keep = {"manifest.json"}
    for name, (spec, why) in specs.items():
        if spec is None:
            print(f"skipped figure {name}: {why}")
            continue
        for fname, data in ((f"{name}.png", pngs[name]), (f"{name}.json", sidecar(spec).encode())):
            keep.add(fname)
            if not (figdir / fname).is_file() or (figdir / fname).read_bytes() != data:
                (figdir / fname).write_bytes(data)
                print(f"wrote {FIG_DIR}/{fname}")
    for stale in sorted(p for p in figdir.iterdir() if p.name not in keep):
        stale.unlink()     # the folder is the report's own: anything it did not make now is stale
        print(f"removed stale {FIG_DIR}/{stale.name}")
    manifest = sidecar({"renderer": _renderer(), "png_sha256": {n: sha(b) for n, b in sorted(pngs.items())}})
    if not (figdir / "manifest.json").is_file() or (figdir / "manifest.json").read_text() != manifest:
        (figdir / "manifest.json").write_text(manifest)
    for name in made:
        if name not in seen:
            print(f"note: README.md has no block report:{name}; add the two markers where it belongs")
    changed = [n for n, (old, new) in seen.items() if old != new]
    if new_text != text:
        readme.write_text(new_text, encoding="utf-8")
    print(f"README.md: {len(seen)} generated blocks, {len(changed)} rewritten"
          + (f" ({', '.join(changed)})" if changed else "")
          + f"; {len(numbers)} inline numbers rewritten" + "".join(f"\n  line {n}: n:{k} {o!r} -> {v!r}"
                                                                  for n, k, o, v in numbers))
    for line in bare_numbers(new_text):
        print(f"warning: {line}")      # --check fails on these
    return 0


def _check_figures(root: Path, specs: dict) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    figdir = root / FIG_DIR
    try:
        manifest = json.loads((figdir / "manifest.json").read_text())
        hashes = manifest.get("png_sha256") or {}
    except (OSError, ValueError):
        manifest, hashes = {}, {}
        problems.append(f"{FIG_DIR}/manifest.json is missing or not JSON")
    expected = {"manifest.json"}
    for name, (spec, _) in specs.items():
        if spec is None:
            continue
        expected |= {f"{name}.png", f"{name}.json"}
        side, png = figdir / f"{name}.json", figdir / f"{name}.png"
        if not side.is_file() or side.read_text(encoding="utf-8") != sidecar(spec):
            problems.append(f"{FIG_DIR}/{name}.json: plotted data differs from the results (or is missing)")
        if not png.is_file():
            problems.append(f"{FIG_DIR}/{name}.png is missing")
        elif hashes and sha(png.read_bytes()) != hashes.get(name):
            problems.append(f"{FIG_DIR}/{name}.png does not match the hash the report recorded for it")
    if figdir.is_dir():
        problems += [f"{FIG_DIR}/{p.name}: not made by the report (stale)"
                     for p in sorted(figdir.iterdir()) if p.name not in expected]
    here = _renderer()
    if here is None:
        notes.append("note: matplotlib is not installed: PNGs checked against the manifest's hashes, not re-rendered")
    elif manifest and here != manifest.get("renderer"):
        notes.append(f"note: PNGs were made with {manifest.get('renderer')}, this is {here}: "
                     "checked against the manifest's hashes and their sidecar data, not re-rendered")
    elif manifest:
        for name, data in _render_all(specs).items():
            png = figdir / f"{name}.png"
            if png.is_file() and png.read_bytes() != data:
                problems.append(f"{FIG_DIR}/{name}.png differs from what the report renders now")
    return problems, notes


def check(root: Path, gpu: str) -> int:
    _, text, specs, made, src = _inputs(root, gpu)
    _, problems, seen = rewrite(text, made)
    _, inline_problems, numbers = inline(text, src)
    problems += inline_problems + [f"README.md:{n}: inline number n:{k} is {o!r}, the results give {v!r}"
                                   for n, k, o, v in numbers] + bare_numbers(text)
    for name in made:
        if name not in seen:
            problems.append(f"README.md has no block report:{name}")
        elif seen[name][0] != seen[name][1]:
            problems.append(f"README.md block report:{name} differs from the results: "
                            + first_difference(*seen[name]))
    made_figs = {f"{FIG_DIR}/{n}.png" for n, (s, _) in specs.items() if s}
    problems += [f"README.md shows {p}, which the report does not make" for p in IMAGE.findall(text)
                 if p not in made_figs]
    fig_problems, notes = _check_figures(root, specs)
    problems += fig_problems
    for line in notes:
        print(line)
    for line in problems:
        print(line)
    if problems:
        print("run `python3 -m bench.report` to regenerate (after checking why they differ)", file=sys.stderr)
        return 1
    print(f"report check: {len(seen)} README blocks, {len(used_keys(text))} inline number keys "
          f"and {len(made_figs)} figures match the results")
    return 0


def list_numbers(root: Path, gpu: str) -> int:
    _, text, _, _, src = _inputs(root, gpu)
    used = used_keys(text)
    for key, n in NUMBERS.items():
        print(f"{key} = {value(src, key)!r}  [{', '.join(src.name(f) for f in n.files)}]"
              f"{'' if key in used else '  (not in README)'}\n    {n.what}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bench.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if README or figures are stale")
    p.add_argument("--numbers", action="store_true", help="list every inline number's KEY, value and file")
    p.add_argument("--root", default=str(ROOT), help="repository root holding README.md and bench/results")
    p.add_argument("--gpu", default="h200", help="result files' GPU slug: layouts-<gpu>.json, ...")
    args = p.parse_args(argv)
    try:
        return (list_numbers if args.numbers else check if args.check else generate)(Path(args.root), args.gpu)
    except ReportInputError as e:
        print(f"bench.report: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"bench.report: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        # a result file with a field missing or of the wrong type: say which, not a traceback
        print(f"bench.report: a result file lacks an expected field or value ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
