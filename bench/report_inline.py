"""README's prose outside the generated blocks: inline numbers and the rule against bare measured ones.

An inline number is `<!-- n:KEY -->TEXT<!-- /n -->` on one line: KEY is a key of
bench.report_numbers.NUMBERS, TEXT what it gives (no '<', no line break). GitHub shows only TEXT.
`inline` rewrites every TEXT; `bare_numbers` lists what in the prose looks measured (a number with a
unit: ms, s, %, MiB, GiB, ...; a ratio such as 0.30x; an error value such as 1.9e-6) and is neither
inside an inline number, nor in code (fenced or indented blocks, `code spans`), nor allowed below.
"""
from __future__ import annotations

import math
import re
from typing import Iterator

from bench.report_data import MODELS
from bench.report_numbers import NUMBERS, value
from bench.report_sources import Sources
from scoring.metrics import rules

OPEN = re.compile(r"^<!-- report:([a-z0-9-]+) -->$")
CLOSE = re.compile(r"^<!-- /report:([a-z0-9-]+) -->$")
MARK = re.compile(r"<!-- n:([a-z0-9][a-z0-9._-]*) -->([^<\n]*)<!-- /n -->")
STRAY = re.compile(r"<!--\s*/?\s*n\b")                  # what is left of a marker MARK did not match
CODE_SPAN = re.compile(r"`[^`\n]*`")
TOKEN = re.compile(MARK.pattern + "|" + CODE_SPAN.pattern)      # a marker, or a code span, left to right
LINK_TARGET = re.compile(r"\]\([^)\s]*\)")
COMMENT = re.compile(r"<!--.*?-->")
UNITS = r"(?:ms|us|µs|s|min|h|KiB|MiB|GiB|KB|MB|GB)"
MEASURED = re.compile(
    r"(?<![\w.])~?\d+(?:\.\d+)?(?:\s?" + UNITS + r"(?![\w])|\s?%|x(?![\w]))"    # 12.3 ms, 12%, 0.30x
    r"|(?<![\w.])\d+(?:\.\d+)?[eE]-\d+(?![\w])")                                 # an error value: 1.9e-6

# Not measurements, as they stand in README (each blanked before the scan); keep this short.
ALLOWED = {
    "serving target (0.05x": "issue 9's target for the serving encoder, not a result",
    "contest-harness target (0.33x": "issue 9's target for the contest-harness encoder, not a result",
    "serving target (0.4x": "issue 9's target for the serving decoder, not a result",
}


def thresholds() -> set[float]:
    """The contest's error thresholds (scoring.metrics.rules, from the workload specs): quoted, not measured."""
    return {t for m in MODELS for r in rules(m) for t in (r.max_abs, r.max_rel) if t is not None}


def outside_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line not inside a generated block (the markers themselves excluded)."""
    current = None
    for n, line in enumerate(text.split("\n"), 1):
        if current is None and OPEN.match(line):
            current = OPEN.match(line).group(1)
        elif current is not None and CLOSE.match(line) and CLOSE.match(line).group(1) == current:
            current = None
        elif current is None and not CLOSE.match(line):
            yield n, line


def inline(text: str, src: Sources) -> tuple[str, list[str], list[tuple[int, str, str, str]]]:
    """(README with every inline number rewritten, problems, [(line, KEY, old text, new text)] that changed).

    Unknown or malformed markers are problems and keep their text."""
    lines = text.split("\n")
    problems, changed = [], []
    for n, line in outside_blocks(text):
        def sub(m: re.Match) -> str:
            if m.group(1) is None:
                return m.group(0)
            key, old = m.group(1), m.group(2)
            if key not in NUMBERS:
                problems.append(f"README.md:{n}: unknown inline number n:{key} "
                                "(`python3 -m bench.report --numbers` lists the keys)")
                return m.group(0)
            new = value(src, key)
            if new != old:
                changed.append((n, key, old, new))
            return f"<!-- n:{key} -->{new}<!-- /n -->"
        new_line = TOKEN.sub(sub, line)                    # `code spans` are left as they are
        if STRAY.search(TOKEN.sub("", line)):
            problems.append(f"README.md:{n}: malformed inline number (write <!-- n:KEY -->text<!-- /n --> on "
                            f"one line, KEY in lower case): {line.strip()[:80]!r}")
        lines[n - 1] = new_line
    return "\n".join(lines), problems, changed


def used_keys(text: str) -> set[str]:
    return {m.group(1) for _, line in outside_blocks(text) for m in TOKEN.finditer(line) if m.group(1)}


def prose(text: str) -> Iterator[tuple[int, str]]:
    """Lines outside the generated blocks and outside code: fenced blocks, and indented (4 spaces or a
    tab) blocks after a blank line."""
    fence, indented, prev_blank = None, False, True
    for n, line in outside_blocks(text):
        stripped = line.lstrip()
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if line.startswith(("    ", "\t")) and (prev_blank or indented):
            indented = True
            continue
        indented = indented and not line.strip()
        prev_blank = not line.strip()
        yield n, line


def bare_numbers(text: str) -> list[str]:
    """One problem per measured-looking number in README's prose that is not an inline number."""
    limits = thresholds()
    out = []
    for n, line in prose(text):
        s = COMMENT.sub(" ", LINK_TARGET.sub("]", TOKEN.sub(" ", line)))
        for phrase in ALLOWED:
            s = s.replace(phrase, " ")
        for m in MEASURED.finditer(s):
            num = m.group(0)
            if "e" in num.lower() and any(math.isclose(float(num), t, rel_tol=1e-9) for t in limits):
                continue
            out.append(f"README.md:{n}: measured-looking number {num.strip()!r} outside an inline number "
                       f"(<!-- n:KEY -->{num.strip()}<!-- /n -->, KEY in bench/report_numbers.py): "
                       f"...{s[max(0, m.start() - 30):m.end() + 20].strip()}...")
    return out
