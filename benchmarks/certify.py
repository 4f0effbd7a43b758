"""Certified brackets on F_0 (``cvxqreg.certify``) against SCS at its default accuracy.

For each case: ``cvxqreg.certify(problem, rtol)`` with a time budget (the bracket [L, U], its
relative width, the eps reached, the number of solves, the time) and, where SCS can run, SCS
through CVXPY with its default settings (``problem.solve(solver="SCS")``, eps = 1e-4): its time, its
value, its error against the bracket midpoint and whether the value lies inside the bracket.

Cases (``--scale paper``): random bipartite transport (n = 12, D = 144, dense complex cost, Wishart
marginals) and QWD (12 Fock levels, D = 144) with SCS; IM (N = 5, D = 1024) and QWD (32 levels,
D = 1024) without SCS (out of reach), each with ``--time-limit`` seconds. ``--scale medium``: the
same families at D = 64 (D = 256 for the last QWD); ``--scale small`` at D <= 36 in seconds (a
check that the script works, not a measurement).

Usage:  OPENBLAS_NUM_THREADS=1 python benchmarks/certify.py [--scale paper|medium|small]
            [--cases transport144 qwd144 im1024 qwd1024] [--rtol-small-d 1e-4]
            [--rtol-large-d 1e-3] [--time-limit 600] [--no-scs] [--plot bracket.png]
            [--json rows.json] [--out benchmarks/results/certify.md]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import cvxpy as cp
import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads


def transport_model(n: int, seed: int = 0) -> cp.Problem:
    """Random transport on C^n (x) C^n: dense complex Hermitian cost, Wishart marginals (the model
    of ``benchmarks/lowering_and_scs.py``, loaded from there)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent / "lowering_and_scs.py"
    spec = importlib.util.spec_from_file_location("lowering_and_scs", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.qot_model(n, seed)


#: name -> (builders at the paper, medium and small scales, large (no SCS)?)
CASES = {
    "transport144": (
        lambda: ("transport n=12 (D=144)", transport_model(12)),
        lambda: ("transport n=8 (D=64)", transport_model(8)),
        lambda: ("transport n=3 (D=9)", transport_model(3)),
        False,
    ),
    "qwd144": (
        lambda: ("QWD 12 levels (D=144)", problems.wasserstein(12).problem),
        lambda: ("QWD 8 levels (D=64)", problems.wasserstein(8).problem),
        lambda: ("QWD 4 levels (D=16)", problems.wasserstein(4).problem),
        False,
    ),
    "im1024": (
        lambda: ("IM N=5 (D=1024)", problems.ising(5).problem),
        lambda: ("IM N=3 (D=64)", problems.ising(3).problem),
        lambda: ("IM N=1 (D=4)", problems.ising(1).problem),
        True,
    ),
    "qwd1024": (
        lambda: ("QWD 32 levels (D=1024)", problems.wasserstein(32).problem),
        lambda: ("QWD 16 levels (D=256)", problems.wasserstein(16).problem),
        lambda: ("QWD 6 levels (D=36)", problems.wasserstein(6).problem),
        True,
    ),
}
SCALES = ("paper", "medium", "small")


def run_scs(problem: cp.Problem) -> tuple[float, float, str]:
    """SCS through CVXPY at its default settings: (value, seconds, status)."""
    t0 = time.perf_counter()
    try:
        problem.solve(solver=cp.SCS)
    except cp.error.SolverError as exc:  # pragma: no cover - depends on the machine
        return math.nan, time.perf_counter() - t0, f"error: {exc}"
    return float(problem.value), time.perf_counter() - t0, str(problem.status)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", choices=SCALES, default="paper")
    ap.add_argument("--cases", nargs="+", choices=tuple(CASES), default=list(CASES))
    ap.add_argument("--rtol-small-d", type=float, default=1e-4)
    ap.add_argument("--rtol-large-d", type=float, default=1e-3)
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument("--regularizer", default="von_neumann")
    ap.add_argument("--no-scs", action="store_true")
    ap.add_argument(
        "--plot", default=None, help="the bracket of single solves against eps, first case"
    )
    ap.add_argument("--json", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    lines = [
        "# Certified brackets on F_0 against SCS\n",
        f"Command: `python benchmarks/certify.py --scale {args.scale} --cases "
        f"{' '.join(args.cases)} --rtol-small-d {args.rtol_small_d:g} --rtol-large-d "
        f"{args.rtol_large_d:g} --time-limit {args.time_limit:g}"
        f"{' --no-scs' if args.no_scs else ''}`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}, BLAS threads: {blas_threads()}; "
        f"cvxqreg {cvxqreg.__version__}, regularizer {args.regularizer}\n",
        "| case | rtol | status | L | U | rel. width | eps reached | solves | time [s] "
        "| SCS time [s] | SCS value | SCS - midpoint | SCS in bracket | time ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    rows = []
    first_lp = None
    for name in args.cases:
        *builders, large = CASES[name]
        label, problem = builders[SCALES.index(args.scale)]()
        rtol = args.rtol_large_d if large else args.rtol_small_d
        lp = cvxqreg.lower(problem)
        if not rows:
            first_lp = lp
        res = cvxqreg.certify(
            lp, rtol=rtol, regularizer=args.regularizer, time_limit=args.time_limit
        )
        row = {
            "case": label,
            "rtol": rtol,
            "status": res.status,
            "low": res.low,
            "high": res.high,
            "rel_width": res.rel_width,
            "eps": res.eps,
            "solves": len(res.stages),
            "time": res.time,
            "history": res.history,
            "note": res.note,
        }
        scs_cells = ["-"] * 5
        if not large and not args.no_scs:
            v, t, st = run_scs(problem)
            err = v - res.midpoint
            inside = res.low <= v <= res.high
            row.update(scs_value=v, scs_time=t, scs_status=st, scs_error=err, scs_inside=inside)
            scs_cells = [
                f"{t:.1f}",
                f"{v:.10g} ({st})",
                f"{err:+.2e}",
                "yes" if inside else "no",
                f"{res.time / t:.3f}",
            ]
        rows.append(row)
        line = (
            f"| {label} | {rtol:.0e} | {res.status} | {res.low:.10g} | {res.high:.10g} | "
            f"{res.rel_width:.2e} | {res.eps:.1e} | {len(res.stages)} | {res.time:.1f} | "
            + " | ".join(scs_cells)
            + " |"
        )
        lines.append(line)
        print(line, flush=True)
    lines += [
        "",
        "L and U are rigorous: L by weak duality from the dual vector, U the objective at a "
        "feasible state (docs/bounds.md). 'time ratio' is certify's time over SCS's. Timings "
        "depend on the machine's load; say so when quoting them.",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1, default=float)
    if args.plot and rows:
        plot_ladder(first_lp, rows[0], args.plot, args.regularizer)
    return rows


def plot_ladder(lp, row: dict, path: str, regularizer: str) -> None:
    """The certified bracket of single solves at eps = 1, 1e-1, ..., 1e-8 (warm-started), drawn
    as the distance of each end from the midpoint of the tightest bracket (the best ends over
    these solves and ``certify``'s), with SCS's error when measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = [10.0**-k for k in range(9)]
    sw = cvxqreg.sweep(lp, eps=eps, reference=None, regularizers=[regularizer], tol=1e-10)
    lo = np.array([r.bracket_low for r in sw.rows])
    hi = np.array([r.bracket_high for r in sw.rows])
    e = np.array([r.eps for r in sw.rows])
    # the reference: the midpoint of the tightest certified bracket (best L and best U over the
    # single solves and certify's own): both distances below are then at least half its width
    best_lo = max(row["low"], float(np.max(lo)))
    best_hi = min(row["high"], float(np.min(hi)))
    mid = 0.5 * (best_lo + best_hi)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(e, np.maximum(mid - lo, 1e-16), "o-", label="midpoint - L (weak duality)")
    ax.loglog(e, np.maximum(hi - mid, 1e-16), "s-", label="U - midpoint (feasible state)")
    ax.axhline(0.5 * (best_hi - best_lo), color="0.5", ls=":", label="half the tightest width")
    if "scs_value" in row and np.isfinite(row["scs_value"]):
        err = abs(row["scs_value"] - mid)
        ax.axhline(
            err,
            color="C3",
            ls="--",
            label=f"|SCS - midpoint|, SCS default ({row['scs_time']:.1f} s)",
        )
    ax.invert_xaxis()
    ax.set_xlabel("eps (decreasing to the right)")
    ax.set_ylabel("distance from the midpoint of the tightest bracket")
    ax.set_title(f"{row['case']}: the certified bracket as eps -> 0")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
