"""Operation counts of whole Newton-CG solves: Newton iterations, eigendecompositions (oracle
evaluations), Hessian-vector products, and how often the line search shortened the Newton step.

    shortened = #{Newton steps accepted below their first trial step (1, or the secant trial step
    of cvxqreg.solvers.newton._next_trial_step)},   ls evals = oracle evaluations in line searches

``preconditioners`` counts the marginal preconditioners formed and factored (one per
preconditioned Newton step, ``O(n^6 + m^3)`` flops each; see cvxqreg/solvers/preconditioner.py).
``median grad ratio`` is the median of ``||grad_k+1|| / ||grad_k||`` over the iterations (near 0:
superlinear convergence; a constant near 1/2: linear), ``median cos`` that of the cosine between
consecutive Newton directions (near 1: the iterates run along one direction, as towards a dual
optimum at infinity). Operation counts do not depend on machine load, so this script is the
basis for decisions about the Newton driver (step acceptance, Levenberg-Marquardt shift, eps
ladder) on a shared machine. Each row solves one instance with the default solver
(continuation, von Neumann, tol 1e-6) plus the ``--option name=value`` settings given; the CPU
time is reported but is not reliable there.

Usage:  python benchmarks/newton_steps.py [--cases qwd12 ising4 ...] [--option regularization=1e-2]
            [--preconditioner none marginal] [--eps 1e-3] [--out benchmarks/results/newton_steps.md]

``--capped-dense F`` sets :data:`cvxqreg.solvers.newton.CAPPED_DENSE_FACTOR` (0: never switch to
the dense low-rank Hessian after a capped CG solve, as before that rule), one row per value.

``--compare`` runs every case once per option set given (``"tangent_predictor=False,
stage_reduction=None"``; an empty string for the options alone), one row each.

``--semismooth-shift`` sets :data:`cvxqreg.solvers.newton.SEMISMOOTH_SHIFT` (0: off), one row
per value.

``--single-rtol`` sets ``cvxqreg.solvers.dual.SINGLE_PRECISION_RTOL["numpy"]`` (``None``:
double-precision Hessian products throughout), one row per value.

``--preconditioner`` runs every case once per value given (``none``: plain CG, as before the
marginal preconditioner; ``marginal``; ``auto``: the default), one row each, for before/after
comparisons in one table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.operators import PartialTrace, Stacked
from cvxqreg.problem import LoweredProblem
from cvxqreg.solvers import dual, newton
from cvxqreg.solvers.preconditioner import PRECONDITIONERS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import parse_options, write_report  # noqa: E402


def _rand_state(rng, n):
    G = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    r = G @ G.conj().T
    return r / np.trace(r).real


def random_transport(n, seed=0):
    """Quantum transport on C^n (x) C^n: dense complex Hermitian cost, random marginals."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n * n, n * n)) + 1j * rng.normal(size=(n * n, n * n))
    op = Stacked([PartialTrace((n, n), 1), PartialTrace((n, n), 0)])
    q = np.asarray(op.apply(np.kron(_rand_state(rng, n), _rand_state(rng, n))))
    return LoweredProblem((A + A.conj().T) / 2, op, q)


CASES = {
    "qwd12": ("QWD n = 12", 1e-2, lambda: cvxqreg.lower(problems.wasserstein(12).problem)),
    "qwd15": ("QWD n = 15", 1e-2, lambda: cvxqreg.lower(problems.wasserstein(15).problem)),
    "qwd19": ("QWD n = 19", 1e-2, lambda: cvxqreg.lower(problems.wasserstein(19).problem)),
    "qwd24": ("QWD n = 24", 1e-2, lambda: cvxqreg.lower(problems.wasserstein(24).problem)),
    "qwd32": ("QWD n = 32", 1e-2, lambda: cvxqreg.lower(problems.wasserstein(32).problem)),
    "ising3": ("IM N = 3", 1e-2, lambda: cvxqreg.lower(problems.ising(3).problem)),
    "ising4": ("IM N = 4", 1e-2, lambda: cvxqreg.lower(problems.ising(4).problem)),
    "ising5": ("IM N = 5", 1e-2, lambda: cvxqreg.lower(problems.ising(5).problem)),
    "rt8": ("random transport n = 8", 1e-2, lambda: random_transport(8)),
    "rt10": ("random transport n = 10", 1e-2, lambda: random_transport(10)),
    "rt12": ("random transport n = 12", 1e-2, lambda: random_transport(12)),
    "rt16": ("random transport n = 16", 1e-2, lambda: random_transport(16)),
    "qt6": ("QT1 n = 6", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT1", 6).problem)),
    "qt7": ("QT1 n = 7", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT1", 7).problem)),
    "qt2_7": ("QT2 n = 7", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT2", 7).problem)),
    "qt2_9": ("QT2 n = 9", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT2", 9).problem)),
    "qt1_9": ("QT1 n = 9", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT1", 9).problem)),
    "qt3_9": ("QT3 n = 9", 1e-2, lambda: cvxqreg.lower(problems.tomography("QT3", 9).problem)),
}


#: the command-line flags that set a module constant of cvxqreg.solvers.newton, one row per value
CONSTANTS = {"--capped-dense": "CAPPED_DENSE_FACTOR", "--semismooth-shift": "SEMISMOOTH_SHIFT"}


class Counts:
    def __init__(self):
        self.evals = self.products = self.steps = self.short = self.ls_evals = self.pre = 0
        self.dense = 0
        self.cosines = []  # cos of the angle between consecutive Newton directions
        self._last = None

    def install(self):
        ev0, hop0 = dual.DualOracle.evaluate, dual.DualOracle.hessian_operator
        lrm0 = dual.DualOracle.low_rank_hessian_matrix
        ls0 = newton.line_search
        pre0 = newton.marginal_preconditioner
        c = self

        def evaluate(self_, *a, **k):
            # eigendecompositions only: an evaluation handed over by DualOracle.prime is not one
            before = self_.n_evals
            out = ev0(self_, *a, **k)
            c.evals += self_.n_evals - before
            return out

        def hessian_operator(self_, *a, **k):
            M = hop0(self_, *a, **k)

            def counted(v):
                c.products += 1
                return M(v)

            return counted

        def line_search(neg, x, f0, d, dphi0, t, *rest):
            before = c.evals
            out = ls0(neg, x, f0, d, dphi0, t, *rest)
            c.ls_evals += c.evals - before
            # a Newton step's search starts at 1 or at the secant's trial step (at most
            # MAX_TRIAL_STEP); the gradient fallback's at 1 / ||grad||
            if out is not None and 1.0 <= t <= newton.MAX_TRIAL_STEP:
                c.steps += 1
                c.short += out[0] < t
                if c._last is not None and c._last.shape == d.shape:
                    norms = np.linalg.norm(d) * np.linalg.norm(c._last)
                    c.cosines.append(float(d @ c._last) / norms if norms > 0 else np.nan)
                c._last = np.array(d)
            return out

        def low_rank_hessian_matrix(self_, *a, **k):
            c.dense += 1
            return lrm0(self_, *a, **k)

        def marginal_preconditioner(*a, **k):
            c.pre += 1
            return pre0(*a, **k)

        self._saved = (ev0, hop0, ls0, pre0, lrm0)
        dual.DualOracle.low_rank_hessian_matrix = low_rank_hessian_matrix
        dual.DualOracle.evaluate = evaluate
        newton.marginal_preconditioner = marginal_preconditioner
        dual.DualOracle.hessian_operator = hessian_operator
        newton.line_search = line_search

    def uninstall(self):
        ev0, hop0, ls0, pre0, lrm0 = self._saved
        dual.DualOracle.low_rank_hessian_matrix = lrm0
        dual.DualOracle.evaluate, dual.DualOracle.hessian_operator = ev0, hop0
        newton.line_search, newton.marginal_preconditioner = ls0, pre0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["qwd12", "ising3", "rt8", "qt6"], choices=CASES)
    ap.add_argument("--option", action="append", default=[], help="DualSolver option name=value")
    ap.add_argument(
        "--preconditioner",
        nargs="+",
        default=["auto"],
        choices=PRECONDITIONERS,
        help="Newton-CG preconditioner(s): one row per case and value",
    )
    for flag, constant in CONSTANTS.items():
        ap.add_argument(
            flag,
            type=float,
            nargs="+",
            default=[getattr(newton, constant)],
            help=f"{constant} value(s): one row per case and value",
        )
    ap.add_argument(
        "--compare",
        nargs="+",
        default=[""],
        metavar="NAME=VALUE,...",
        help="option sets (comma-separated name=value, on top of --option): one row per case "
        "and set, for before/after comparisons in one table",
    )
    ap.add_argument(
        "--single-rtol",
        nargs="+",
        default=[str(dual.SINGLE_PRECISION_RTOL["numpy"])],
        help="SINGLE_PRECISION_RTOL['numpy'] value(s) ('None': double-precision products "
        "throughout): one row per case and value",
    )
    ap.add_argument("--eps", type=float, default=None, help="override every case's eps")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cmd = sys.argv[1:] if argv is None else argv
    opts = parse_options(args.option)
    defaults = {c: getattr(newton, c) for c in CONSTANTS.values()}
    single_default = dual.SINGLE_PRECISION_RTOL["numpy"]
    counts = Counts()
    counts.install()
    rows = []
    try:
        for name in args.cases:
            label, eps, make = CASES[name]
            eps = eps if args.eps is None else args.eps
            runs = [
                (p, f, c, sh, sr)
                for p in args.preconditioner
                for f in args.capped_dense
                for c in args.compare
                for sh in args.semismooth_shift
                for sr in args.single_rtol
            ]
            for pre, factor, extra, shift, single in runs:
                extra_opts = parse_options([kv for kv in extra.split(",") if kv])
                newton.CAPPED_DENSE_FACTOR, newton.SEMISMOOTH_SHIFT = factor, shift
                single = None if single.lower() == "none" else float(single)
                dual.SINGLE_PRECISION_RTOL["numpy"] = single
                prob = make()  # afresh: lazily cached problem data would favour later runs
                # the full-space dual: IM's marginals are singular and would otherwise be
                # solved on their face (benchmarks/results/face.md measures that)
                kw = {"preconditioner": pre, "facial_reduction": False, **opts, **extra_opts}
                solver = cvxqreg.DualSolver(backend="numpy", **kw)
                counts.__init__()
                t0, w0 = time.process_time(), time.perf_counter()
                res = solver(prob, eps)
                cpu, wall = time.process_time() - t0, time.perf_counter() - w0
                c = counts
                gn = np.asarray(res.history.grad_norm, dtype=float)
                rate = np.median(gn[1:] / gn[:-1]) if gn.size > 1 else np.nan
                cos = np.median(c.cosines) if c.cosines else np.nan
                row = (
                    f"| {label} | {prob.dim} | {eps:g} | {solver.preconditioner} | {factor:g} | "
                    f"{res.status} | {res.iterations} | {c.evals} | {c.products} | {c.dense} | "
                    f"{c.pre} | "
                    f"{c.short}/{c.steps} | {c.ls_evals} | {res.dual_value:.12g} | "
                    f"{res.grad_norm:.1e} | {rate:.2f} | {cos:.4f} | {cpu:.2f} | {wall:.2f} | "
                    f"{extra or '-'} | {shift:g} | {single} |"
                )
                print(row, flush=True)
                rows.append(row)
    finally:
        counts.uninstall()
        for constant, value in defaults.items():
            setattr(newton, constant, value)
        dual.SINGLE_PRECISION_RTOL["numpy"] = single_default
    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    env = f"OPENBLAS_NUM_THREADS={threads} " if threads else ""
    head = [
        "# Newton-CG operation counts",
        "",
        f"Command: `{env}python benchmarks/newton_steps.py {shlex.join(cmd)}`",
        f"Options: {opts or 'defaults'}; NumPy {np.__version__}, "
        f"Python {platform.python_version()}.",
        "CPU seconds depend on the machine's load; the operation counts do not.",
        "",
        "| instance | D | eps | preconditioner | capped dense | status | Newton it. | eigh | "
        "Hessian products | dense low-rank Hessians | "
        "preconditioners | shortened steps | line-search evals | dual value | grad norm | "
        "median grad ratio | median cos | CPU [s] | wall [s] | options compared | "
        "semismooth shift | single-precision rtol |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    return write_report(head + rows, args.out)


if __name__ == "__main__":
    main()
