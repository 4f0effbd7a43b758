"""Lowering time and SCS time on two D = 64 models (the foundation issue's measurements).

* QOT, 3 qubits per side: ``min Tr[H X]`` over couplings of two random 8 x 8 marginals
  (``D = 64``, two ``partial_trace`` constraints, random Hermitian cost).
* Tomography, 6 qubits: ``Tr X = 1`` and 128 Pauli expectations of a random state
  (``D = 64``, 129 scalar constraints; :func:`cvxqreg.problems.tomography`).

For each: time of :func:`cvxqreg.lower`, time of :func:`cvxqreg.solve_exact` (SCS at the default
tight tolerances, CVXPY compilation included) on the lowered problem, the same model solved
directly by ``problem.solve(solver="SCS")`` with the same tolerances, and the value difference.

Usage:  python benchmarks/lowering_and_scs.py [--out benchmarks/results/lowering_and_scs.md]
"""

from __future__ import annotations

import argparse
import platform
import time

import cvxpy as cp
import numpy as np

import cvxqreg
from cvxqreg.solvers.exact import DEFAULT_SETTINGS


def qot_model(n=8, seed=0):
    rng = np.random.default_rng(seed)

    def state(k):
        G = rng.normal(size=(k, k)) + 1j * rng.normal(size=(k, k))
        r = G @ G.conj().T
        return r / np.trace(r).real

    H = rng.normal(size=(n * n, n * n)) + 1j * rng.normal(size=(n * n, n * n))
    H = (H + H.conj().T) / 2
    X = cp.Variable((n * n, n * n), hermitian=True)
    cons = [
        X >> 0,
        cp.partial_trace(X, [n, n], axis=1) == state(n),
        cp.partial_trace(X, [n, n], axis=0) == state(n),
    ]
    return cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    models = {
        "QOT 3+3 qubits (D=64)": lambda: qot_model(),
        "tomography QT3 6 qubits, 128 Pauli rows (D=64)": lambda: (
            cvxqreg.problems.tomography("QT3", n_qubits=6, n_measurements=128).problem
        ),
    }
    lines = [
        "# Lowering and SCS times\n",
        "Command: `python benchmarks/lowering_and_scs.py`  ",
        f"Machine: {platform.machine()}, 2 cores; cvxpy {cp.__version__}; SCS settings "
        f"{DEFAULT_SETTINGS['SCS']}\n",
        "| model | rows kept | structure | lower [s] | solve_exact [s] | SCS direct [s] "
        "| value | abs(value - direct) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, make in models.items():
        prob = make()
        t0 = time.perf_counter()
        lp = cvxqreg.lower(prob)
        t_lower = time.perf_counter() - t0
        res = cvxqreg.solve_exact(lp)
        prob2 = make()
        t0 = time.perf_counter()
        direct = prob2.solve(solver=cp.SCS, **DEFAULT_SETTINGS["SCS"])
        t_direct = time.perf_counter() - t0
        lines.append(
            f"| {name} | {lp.n_rows} | {type(lp.A).__name__}: {lp.A.describe()[:60]} | "
            f"{t_lower:.2f} | {res.time:.2f} ({res.status}) | {t_direct:.2f} | "
            f"{res.value:.8f} | {abs(res.value - direct):.1e} |"
        )
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
