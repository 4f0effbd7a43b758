"""Cost of one Hessian-vector product: the full Daleckii-Krein product against the low-rank one.

    ratio = time(low-rank product, top block of r eigenvalues) / time(full product),

for quantum optimal transport on C^n (x) C^n (partial-trace rows, D = n^2) and Pauli-string rows
(D = 2^k, not spectral-native: the low-rank product forms its D x D result), at several r/D.
The spectrum is synthetic (r eigenvalues within 5 of the top, the rest more than 95 below, in
units of eps), the eigenvectors those of a random iterate; the relative difference between the
two products is reported too. This is the measurement behind
``cvxqreg.solvers.dual.LOW_RANK_MAX_FRACTION`` (the largest r/D at which the low-rank product is
chosen), per backend. The last column: the full product in single precision against the full
one in double (``time(single) / time(double)`` and their relative difference), the measurement
behind ``cvxqreg.solvers.dual.SINGLE_PRECISION_RTOL`` per backend. A second table: the quadratic
regularizer's product from the off-support block (``DualOracle._complement_product``) against
its full product at off-support fractions n/D, the measurement behind taking the complement
below ``LOW_RANK_MAX_FRACTION``.

Usage:  python benchmarks/low_rank_products.py [--backend numpy|cupy] [--sizes 8 16 24 32]
            [--fractions 0.01 0.1 0.3 0.5 0.7 0.9] [--out benchmarks/results/low_rank_products.md]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time

import numpy as np

from cvxqreg.backend import blas_threads, get_backend
from cvxqreg.operators import PartialTrace, Pauli, Stacked
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Quadratic, VonNeumann
from cvxqreg.solvers.dual import DualOracle, Evaluation


def _rand_state(rng, n):
    G = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    r = G @ G.conj().T
    return r / np.trace(r).real


def _rand_herm(rng, D):
    A = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    return (A + A.conj().T) / 2


def transport(rng, n):
    op = Stacked([PartialTrace((n, n), 1), PartialTrace((n, n), 0)])
    q = np.asarray(op.apply(np.kron(_rand_state(rng, n), _rand_state(rng, n))))
    return LoweredProblem(_rand_herm(rng, n * n), op, q)


def pauli(rng, n):
    k = max(2, round(2 * math.log2(n)))  # about the same D as transport(n)
    D = 2**k
    idx = rng.choice(np.arange(1, D * D), size=min(2 * D, D * D - 1), replace=False)
    op = Stacked([Pauli([(0, 0)], k), Pauli([(int(i) // D, int(i) % D) for i in idx], k)])
    q = np.asarray(op.apply(_rand_state(rng, D)))
    return LoweredProblem(_rand_herm(rng, D), op, q)


def median_time(fn, be, repeats=5):
    """Median over ``repeats`` calls: process CPU time on NumPy (robust on a shared machine;
    run with one BLAS thread), the backend's synchronized wall clock on a GPU."""
    clock = time.process_time if be.name == "numpy" else be.timer
    fn()
    ts = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def measure(be, lp, fractions, rng):
    """``(D, t_full, (single ratio, single rel_diff), [(r, ratio, rel_diff)], [(n, ratio,
    rel_diff)])`` on one problem (the last list: the quadratic complement products)."""
    oracle = DualOracle(lp, 1.0, VonNeumann(), be)
    ev0 = oracle.evaluate(np.zeros(lp.n_rows), want_state=False)
    D = lp.dim
    v = rng.normal(size=lp.n_rows)
    full = oracle.hessian_operator(ev0, "full")
    t_full = median_time(lambda: full(v), be)
    single = oracle.hessian_operator(ev0, "full", single=True)
    ref0 = full(v)
    single_diff = float(np.abs(single(v) - ref0).max() / np.abs(ref0).max())
    single_cell = (median_time(lambda: single(v), be) / t_full, single_diff)
    rows = []
    for f in fractions:
        r = max(1, min(D, round(f * D)))
        lam = np.concatenate([np.linspace(-200.0, -100.0, D - r), np.linspace(-5.0, 0.0, r)])
        ev = Evaluation(0.0, None, None, 0.0, be.asarray(lam), ev0.U, None, None)
        low = oracle.hessian_operator(ev, "low_rank")
        assert oracle.last_products == f"low_rank(r={r})"
        ref = oracle.hessian_operator(ev, "full")(v)
        diff = float(np.abs(low(v) - ref).max() / np.abs(ref).max())
        rows.append((r, median_time(lambda low=low: low(v), be) / t_full, diff))
    # quadratic: n eigenvalues off the support (t <= 0), the rest on it
    quad = DualOracle(lp, 1.0, Quadratic(), be)
    q_full = quad.hessian_operator(ev0, "full")
    t_q = median_time(lambda: q_full(v), be)
    comp_rows = []
    for f in fractions:
        n = max(0, min(D, round(f * D)))
        lam = np.concatenate([np.linspace(-50.0, -1.0, n), np.linspace(1.0, 5.0, D - n)])
        ev = Evaluation(0.0, None, None, 0.0, be.asarray(lam), ev0.U, None, None)
        comp = quad._complement_product(ev, n)
        ref = quad._full_product(ev)(v)
        err, scale = np.abs(comp(v) - ref).max(), np.abs(ref).max()
        diff = float(err / scale) if scale > 0 else float(err)  # n = D: both products vanish
        comp_rows.append((n, median_time(lambda comp=comp: comp(v), be) / t_q, diff))
    return D, t_full, single_cell, rows, comp_rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 24, 32])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 0.3, 0.5, 0.7, 0.9])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    be = get_backend(args.backend)
    rng = np.random.default_rng(0)
    lines = [
        "# Hessian-vector products: low-rank against full\n",
        f"Command: `python benchmarks/low_rank_products.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, numpy {np.__version__}, backend {be.name} "
        f"({be.device}); BLAS threads: {blas_threads()}\n",
        "Each cell: time(low-rank) / time(full), median of 5 (process CPU time on NumPy, device "
        "wall time on CuPy); in brackets the relative difference of the two products.\n",
        "| rows | D | full [ms] | "
        + " | ".join(f"r/D = {f:g}" for f in args.fractions)
        + " | single-precision full |",
        "|---|---|---|" + "---|" * (len(args.fractions) + 1),
    ]
    print("\n".join(lines), flush=True)
    comp_lines = [
        "",
        "Quadratic regularizer: time(product from the n off-support columns) / time(full "
        "product), at n/D:\n",
        "| rows | D | " + " | ".join(f"n/D = {f:g}" for f in args.fractions) + " |",
        "|---|---|" + "---|" * len(args.fractions),
    ]
    for name, make in (("partial traces", transport), ("Pauli strings", pauli)):
        for n in args.sizes:
            D, t_full, single, rows, comp = measure(be, make(rng, n), args.fractions, rng)
            cells = [f"{ratio:.2f} ({diff:.0e})" for _, ratio, diff in rows]
            cells.append(f"{single[0]:.2f} ({single[1]:.0e})")
            lines.append(f"| {name} | {D} | {1e3 * t_full:.1f} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
            cells = [f"{ratio:.2f} ({diff:.0e})" for _, ratio, diff in comp]
            comp_lines.append(f"| {name} | {D} | " + " | ".join(cells) + " |")
    lines += comp_lines
    print("\n".join(comp_lines), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
