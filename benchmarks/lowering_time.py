"""CPU time of ``cvxqreg.lower`` at the paper's sizes, with the share of the dependence analysis.

    t = min over repeats of process_time(cvxqreg.lower(problem))

for QWD (``problems.wasserstein(n)``) and IM (``problems.ising(N)``). CPU time of the process is
reported because wall time on a shared machine is not comparable; the dependence share is timed
the same way around ``cvxqreg.lowering.dependence.independent_rows``.

Usage:  python benchmarks/lowering_time.py [--qwd 30 50] [--ising 5] [--repeat 3]
            [--out benchmarks/results/lowering_time.md]
"""

from __future__ import annotations

import argparse
import sys
import time

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads
from cvxqreg.lowering import dependence, reduction


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qwd", nargs="*", type=int, default=[30, 50])
    ap.add_argument("--ising", nargs="*", type=int, default=[5])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    spent = [0.0]
    inner = dependence.independent_rows

    def timed(*a, **k):
        t = time.process_time()
        try:
            return inner(*a, **k)
        finally:
            spent[0] += time.process_time() - t

    reduction.independent_rows = timed
    cases = [(f"QWD n = {n}", lambda n=n: problems.wasserstein(n).problem) for n in args.qwd]
    cases += [(f"IM N = {n}", lambda n=n: problems.ising(n).problem) for n in args.ising]
    rows = []
    for label, make in cases:
        prob = make()
        best = dep = best_wall = float("inf")
        for _ in range(args.repeat):
            spent[0] = 0.0
            t, w = time.process_time(), time.perf_counter()
            lp = cvxqreg.lower(prob)
            el, wall = time.process_time() - t, time.perf_counter() - w
            if el < best:
                best, dep, best_wall = el, spent[0], wall
        row = f"| {label} | {lp.dim} | {best_wall:.2f} | {best:.2f} | {dep:.2f} |"
        print(row, flush=True)
        rows.append(row)
    cmd = sys.argv[1:] if argv is None else argv
    text = "\n".join(
        [
            "# Lowering at paper scale (CPU time)",
            "",
            f"Command: `python benchmarks/lowering_time.py {' '.join(cmd)}`  ",
            f"BLAS threads: {blas_threads()}; the run with the least CPU time of {args.repeat} "
            "(its wall time beside it); CPU time counts every thread of the process.",
            "",
            "| instance | D | lower: wall [s] | lower: CPU [s] | of which dependence [s] |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return text


if __name__ == "__main__":
    main()
