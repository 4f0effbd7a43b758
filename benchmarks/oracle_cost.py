"""Cost of one dual evaluation relative to one bare Hermitian eigendecomposition.

    ratio = time(DualOracle.evaluate) / time(eigh(W)),  W = A*(alpha) - H of the same size,

measured in the same run, for each constraint structure (Pauli strings, partial traces, dense Q_i)
and D in {64, 128, 256, 512}. The eigendecomposition is the floor (docs/theory.md, 'The
regularized dual'); the target
is a ratio of at most 1.3 at D >= 256.

Usage:  python benchmarks/oracle_cost.py [--backend numpy|cupy] [--sizes 64 128 256 512]
            [--repeats 7] [--eps 0.1] [--out benchmarks/results/oracle_cost_<backend>.md]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys

import numpy as np

from cvxqreg.backend import blas_threads, get_backend
from cvxqreg.operators import Dense, PartialTrace, Pauli, Stacked
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import get_regularizer
from cvxqreg.solvers.dual import DualOracle


def rand_herm(rng, D):
    A = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    return (A + A.conj().T) / 2


def rand_state(rng, D):
    G = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    r = G @ G.conj().T
    return r / np.trace(r).real


def pauli_problem(rng, D):
    n = int(math.log2(D))
    idx = rng.choice(np.arange(1, D * D), size=min(2 * D, D * D - 1), replace=False)
    masks = [(int(k) // D, int(k) % D) for k in idx]
    op = Stacked([Pauli([(0, 0)], n), Pauli(masks, n)])
    rho = rand_state(rng, D)
    q = np.asarray(op.apply(rho))
    return LoweredProblem(np.zeros((D, D)), op, q)


def pt_problem(rng, D):
    a = 2 ** (int(math.log2(D)) // 2)
    b = D // a
    rho, sigma = rand_state(rng, a), rand_state(rng, b)
    op = Stacked([PartialTrace((a, b), 1), PartialTrace((a, b), 0)])
    q = np.asarray(op.apply(np.kron(rho, sigma)))
    return LoweredProblem(rand_herm(rng, D), op, q)


def dense_problem(rng, D, m=32):
    Qs = np.stack([np.eye(D)] + [rand_herm(rng, D) for _ in range(m - 1)])
    rho = rand_state(rng, D)
    q = np.einsum("ijk,kj->i", Qs, rho).real
    return LoweredProblem(rand_herm(rng, D), Dense(Qs), q)


STRUCTURES = {"pauli": pauli_problem, "partial_trace": pt_problem, "dense(m=32)": dense_problem}


def median_time(fn, be, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = be.timer()
        fn()
        ts.append(be.timer() - t0)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--regularizer", default="von_neumann")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    be = get_backend(args.backend)
    reg = get_regularizer(args.regularizer)
    rng = np.random.default_rng(0)
    rows = []
    for name, make in STRUCTURES.items():
        for D in args.sizes:
            P = make(rng, D)
            oracle = DualOracle(P, args.eps, reg, be)
            alpha = rng.normal(size=P.n_rows) * 0.1
            W = oracle.W(alpha)
            t_eig = median_time(lambda W=W: be.eigh(W), be, args.repeats)
            t_eval = median_time(
                lambda a=alpha, o=oracle: o.evaluate(a, want_state=False), be, args.repeats
            )
            rank = int(be.xp.count_nonzero(oracle.evaluate(alpha).w > 0))
            rows.append((name, D, P.n_rows, t_eig, t_eval, t_eval / t_eig))
            print(
                f"{name:14s} D={D:5d} m={P.n_rows:6d} eigh {t_eig * 1e3:9.2f} ms  "
                f"eval {t_eval * 1e3:9.2f} ms  ratio {t_eval / t_eig:5.2f}  (rank of X {rank})",
                flush=True,
            )
    head = (
        f"# Dual-oracle cost vs one eigendecomposition\n\n"
        f"Command: `python benchmarks/oracle_cost.py {' '.join(sys.argv[1:] if argv is None else argv)}`"  # noqa: E501
        f"  \nMachine: {platform.machine()}, {platform.processor() or platform.system()}, "
        f"backend {be.name} ({be.device}); numpy {np.__version__}; regularizer {reg.name}, "
        f"eps {args.eps:g}; median of {args.repeats} runs; BLAS threads: {blas_threads()}\n\n"
        "| structure | D | m | eigh [ms] | evaluate [ms] | ratio |\n|---|---|---|---|---|---|\n"
    )
    table = "".join(
        f"| {n} | {D} | {m} | {a * 1e3:.2f} | {b * 1e3:.2f} | {r:.2f} |\n"
        for n, D, m, a, b, r in rows
    )
    print()
    print(head + table)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(head + table)


if __name__ == "__main__":
    main()
