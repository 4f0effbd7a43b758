"""Ising marginals: quantum transport between the reduced states of an Ising eigenvector.

The IM instance of [CGMPP, section 6.2] (:func:`cvxqreg.problems.ising`): the open
transverse-field Ising chain ``H = -sum_i Z_i Z_{i+1} - h sum_i X_i`` on ``2N`` qubits is the cost,
and the marginals are the reduced states ``rho = Tr_2 |psi_k><psi_k|``, ``sigma = Tr_1
|psi_k><psi_k|`` of its ``k``-th eigenvector over the ``N | N`` split:

    F_0 = min { Tr[H pi] : pi >= 0, Tr_2 pi = rho, Tr_1 pi = sigma }.

The eigenvector itself is a feasible coupling and ``H >= lambda_0``, so ``lambda_0 <= F_0 <=
lambda_k``; for the ground state (``k = 0``) both ends coincide and ``F_0 = lambda_0`` exactly.
The lowering recognises both marginal constraints as partial traces and drops the dependent rows
(both marginals fix the trace), which ``lowered.describe()`` shows.

For the ground and the first excited level the script solves the exact SDP with SCS and the
regularized problems over an eps ladder with :func:`cvxqreg.sweep` (von Neumann and
quadratic, warm-started from the previous eps).

What it prints: a line naming the chain and the split, then per level

1. the instance, ``lowered.describe()`` (dimension, independent rows, operator structure);
2. ``lambda_0``, ``lambda_k``, the SCS value ``F_0`` and the check ``lambda_0 <= F_0 <= lambda_k``;
3. the sweep table (``str(SweepResult)``): status, ``F_eps``, ``Tr[HX]``, the certified lower bound
   on ``F_0``, ``|F_eps - F_0|``, ``|Tr[HX] - F_0|``, ``||X - X_0||_1``, ``||grad||``, iterations
   and time for every regularizer and eps.

``main`` returns ``{level: {"F_0", "lambda_0", "lambda_k", "describe", "sweep"}}`` with the
``cvxqreg.SweepResult`` under ``"sweep"``.

Run ``python examples/ising_marginals.py`` (``N = 2``: ``D = 16``, about ten seconds) or
``--small`` (``N = 1``: ``D = 4``).
"""

from __future__ import annotations

import argparse

import cvxqreg
from cvxqreg import problems

EPS = (1.0, 1e-1, 1e-2, 1e-3)


def run_level(n_per_side: int, h: float, level: str, eps_values) -> dict:
    """Lower, solve exactly and sweep one level; prints its section of the report."""
    inst = problems.ising(n_per_side, h=h, level=level)
    lowered = cvxqreg.lower(inst.problem)
    meta = inst.metadata
    exact = cvxqreg.solve_exact(lowered)
    table = cvxqreg.sweep(
        lowered,
        eps=eps_values,
        regularizers=["von_neumann", "quadratic"],
        reference=exact,
        backend="numpy",
    )
    lam0, lamk = meta["lower_bound"], meta["feasible_value"]
    ok = lam0 - 1e-6 <= exact.value <= lamk + 1e-6
    print(f"\n== {inst.name}")
    print(f"lowered: {lowered.describe()}")
    print(
        f"lambda_0 = {lam0:.10f}   lambda_k = {lamk:.10f}   F_0 (SCS, {exact.status}) = "
        f"{exact.value:.10f}   lambda_0 <= F_0 <= lambda_k: {ok}"
    )
    print(table)
    return {
        "F_0": exact.value,
        "lambda_0": lam0,
        "lambda_k": lamk,
        "describe": lowered.describe(),
        "sweep": table,
    }


def main(argv=None) -> dict:
    """Run both levels and print the report; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-per-side", type=int, default=2, help="qubits per side N (D = 4^N)")
    ap.add_argument("--h", type=float, default=0.5, help="transverse field")
    ap.add_argument("--eps", type=float, nargs="+", default=list(EPS))
    ap.add_argument("--small", action="store_true", help="N = 1 (D = 4)")
    args = ap.parse_args(argv)
    n = 1 if args.small else args.n_per_side
    print(f"Ising chain on {2 * n} qubits, h = {args.h:g}, split {n} | {n}")
    return {level: run_level(n, args.h, level, args.eps) for level in ("ground", "first_excited")}


if __name__ == "__main__":
    main()
