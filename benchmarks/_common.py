"""Pieces shared by the benchmark scripts: option parsing, best-of timing and the Markdown report.

The scripts put their own folder on ``sys.path`` before importing this module, so that it is
found both when a script runs (``python benchmarks/x.py``) and when a test loads it from its file.
"""

from __future__ import annotations

import ast
import time


def parse_options(pairs) -> dict:
    """``["name=value", ...]`` -> ``{name: value}``, each value a Python literal where it parses
    as one (``True``, ``1e-2``), else the string."""
    out = {}
    for pair in pairs:
        name, value = pair.split("=", 1)
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[name] = value
    return out


def best_time(fn, repeats: int, warm: bool = False) -> float:
    """The best wall time of ``fn()`` over ``repeats`` calls (after one untimed call with
    ``warm``)."""
    if warm:
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def write_report(lines, out: str | None) -> str:
    """The report ``lines`` joined as one text, written to ``out`` when given; returns the text."""
    text = "\n".join(lines) + "\n"
    if out:
        with open(out, "w") as fh:
            fh.write(text)
    return text
