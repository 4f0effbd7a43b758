"""Noisy tomography: measured expectations outside the state space, and what the solvers report.

Part 1 is Example 6.1 of [CGMPP]. On one qubit, a state ``(I + a_x X + a_y Y + a_z Z) / 2`` has
``Tr[X rho] = a_x`` and ``Tr[Z rho] = a_z`` with ``a_x^2 + a_y^2 + a_z^2 <= 1``, so the data
``(q_X, q_Z) = r (0.8, 0.6)`` admit a state only for ``r <= 1``; at ``r = 1`` the only one is pure
(the boundary of the Bloch ball) and the slightest increase of ``r`` empties the feasible set.
For each ``r`` the script builds the CVXPY model (``H = 0``, ``Tr X = 1`` and the two
expectations) and solves it

* exactly with SCS (:func:`cvxqreg.solve_exact`): SCS returns a certificate of primal
  infeasibility, reported as status ``"infeasible"`` (the CVXPY problem's ``status`` is set
  likewise);
* regularized (:func:`cvxqreg.solve`, von Neumann and quadratic): status ``"infeasible"`` with the
  message ``the dual value ... exceeds ..., an upper bound on the primal objective of every
  feasible state: the constraints are infeasible``.

Why the regularized solver can say so: by weak duality ``D_eps(alpha) <= F_eps`` for every
``alpha``, and over *all* unit-trace states ``F_eps <= lambda_max(H) + eps (phi(1) + (D - 1)
phi(0))`` (0 for von Neumann with ``H = 0``, ``eps / 2`` for the quadratic regularizer). A dual
value above that bound is a certificate that no feasible state exists; for infeasible data the
dual is unbounded above, so the dual ascent reaches such a value within a few iterations. The state
returned with that status is the last iterate, not a fit of the data. On the boundary (``r = 1``)
the data are feasible but Theorem 2.5's hypothesis (a positive definite feasible state) fails:
a von Neumann state ``psi'(W / eps)`` is a Gibbs state, always of full rank, so it reaches the
pure state only in the limit ``|alpha| / eps -> infinity``: the dual supremum is not attained, and
the solver stops at an ``alpha`` whose state has a residual below ``tol`` and a small positive
``lambda_min(X)``, of the order of ``tol``.

Part 2 repeats the experiment with simulated shot noise: all 15 Pauli expectations of a pure
2-qubit cat state (QT2), each estimated from ``shots`` measurements (binomial, fixed seed). A
pure state lies on the boundary of the state space, so noisy estimates usually fall outside it.
Shrinking the data towards the maximally mixed state, ``q -> s q`` (the expectations of the
depolarized state ``s rho + (1 - s) I / 4``), restores feasibility once ``s`` absorbs the noise.

What it prints:

1. a table with one row per ``r``: ``r``, ``q_X^2 + q_Z^2`` (``<= 1`` for a state), SCS's status,
   the CVXPY problem's status after the SCS solve, then the von Neumann status, dual value
   ``D_eps`` and smallest eigenvalue of the returned state, and the quadratic status and
   ``D_eps``;
2. the full message of the first infeasible von Neumann solve;
3. a table with one row per ``(shots, s)``: SCS's status, the regularized status and ``||grad||``.

``main`` returns ``{"example_6_1": [...], "shot_noise": [...], "message": str}``.

Run ``python examples/noisy_tomography.py`` or ``--small`` (fewer rows).
"""

from __future__ import annotations

import argparse

import cvxpy as cp
import numpy as np

import cvxqreg
from cvxqreg import problems

PAULI_X = np.array([[0.0, 1.0], [1.0, 0.0]])
PAULI_Z = np.array([[1.0, 0.0], [0.0, -1.0]])
RADII = (0.6, 0.99, 1.0, 1.01, 1.1, 1.5)


def bloch_model(q_x: float, q_z: float) -> cp.Problem:
    """``min 0`` over qubit states with ``Tr[X rho] = q_x``, ``Tr[Z rho] = q_z``."""
    X = cp.Variable((2, 2), hermitian=True, name="X")
    constraints = [
        X >> 0,
        cp.trace(X) == 1,
        cp.real(cp.trace(PAULI_X @ X)) == q_x,
        cp.real(cp.trace(PAULI_Z @ X)) == q_z,
    ]
    return cp.Problem(cp.Minimize(0), constraints)


def pauli_model(labels, outcomes) -> cp.Problem:
    """``min 0`` over 2-qubit states with the given Pauli expectations."""
    X = cp.Variable((4, 4), hermitian=True, name="X")
    constraints = [X >> 0, cp.trace(X) == 1]
    for label, value in zip(labels, outcomes, strict=True):
        P = problems.pauli_matrix(label)
        constraints.append(cp.real(cp.trace(P @ X)) == float(value))
    return cp.Problem(cp.Minimize(0), constraints)


def example_6_1(radii, eps: float) -> tuple[list[dict], str]:
    """Part 1: the rows of the table and the first infeasible von Neumann message."""
    rows, message = [], ""
    for r in radii:
        problem = bloch_model(0.8 * r, 0.6 * r)
        exact = cvxqreg.solve_exact(problem)
        row = {"r": r, "q2": r * r, "scs": exact.status, "cvxpy": problem.status}
        for reg in ("von_neumann", "quadratic"):
            res = cvxqreg.solve(problem, eps, reg, backend="numpy")
            row[reg] = {
                "status": res.status,
                "dual_value": res.dual_value,
                "lambda_min": float(np.linalg.eigvalsh(res.X)[0]),
                "message": res.message,
            }
            if reg == "von_neumann" and res.status == "infeasible" and not message:
                message = res.message
        rows.append(row)
    return rows, message


def shot_noise(shot_counts, shrinks, eps: float, seed: int) -> list[dict]:
    """Part 2: finite-shot estimates of a pure 2-qubit state, shrunk by ``s``."""
    inst = problems.tomography("QT2", n_qubits=2, n_measurements=15)
    labels, q = inst.metadata["labels"], inst.metadata["outcomes"]
    rng = np.random.default_rng(seed)
    rows = []
    for shots in shot_counts:
        estimate = 2.0 * rng.binomial(shots, (1.0 + q) / 2.0) / shots - 1.0
        for s in shrinks:
            problem = pauli_model(labels, s * estimate)
            exact = cvxqreg.solve_exact(problem)
            res = cvxqreg.solve(problem, eps, "von_neumann", backend="numpy")
            rows.append(
                {
                    "shots": shots,
                    "shrink": s,
                    "scs": exact.status,
                    "status": res.status,
                    "grad_norm": res.grad_norm,
                }
            )
    return rows


def _table(head, body) -> str:
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Run both parts and print the tables; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eps", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="fewer radii and shot counts")
    args = ap.parse_args(argv)
    radii = (0.6, 1.0, 1.1) if args.small else RADII
    shots, shrinks = ((1000,), (1.0, 0.9)) if args.small else ((100, 1000, 10000), (1.0, 0.95, 0.9))

    print(f"Example 6.1 of [CGMPP]: one qubit, (q_X, q_Z) = r (0.8, 0.6), eps = {args.eps:g}")
    rows, message = example_6_1(radii, args.eps)
    head = ["r", "q_X^2+q_Z^2", "SCS", "problem.status", "vN status", "vN D_eps"]
    head += ["vN lambda_min(X)", "quad status", "quad D_eps"]
    body = []
    for row in rows:
        cells = [f"{row['r']:g}", f"{row['q2']:.4f}", row["scs"], str(row["cvxpy"])]
        vn, quad = row["von_neumann"], row["quadratic"]
        cells += [vn["status"], f"{vn['dual_value']:.3e}", f"{vn['lambda_min']:.1e}"]
        cells += [quad["status"], f"{quad['dual_value']:.3e}"]
        body.append(cells)
    print(_table(head, body))
    print(f"\nvon Neumann message when infeasible:\n  {message}")

    print(
        f"\nShot noise: pure 2-qubit cat state, all 15 Pauli strings, data shrunk by s, seed "
        f"{args.seed}"
    )
    noisy = shot_noise(shots, shrinks, args.eps, args.seed)
    body = [
        [str(r["shots"]), f"{r['shrink']:g}", r["scs"], r["status"], f"{r['grad_norm']:.1e}"]
        for r in noisy
    ]
    print(_table(["shots", "s", "SCS", "vN status", "||grad||"], body))
    return {"example_6_1": rows, "shot_noise": noisy, "message": message}


if __name__ == "__main__":
    main()
