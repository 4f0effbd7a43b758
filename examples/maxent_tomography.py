"""Maximum-entropy tomography: reconstruct a state from Pauli expectations.

The tomography problem of [CGMPP, section 6.1] asks for a state ``X >= 0``, ``Tr X = 1`` with
prescribed Pauli expectations ``Tr[P_i X] = q_i`` (:func:`cvxqreg.problems.tomography`; the data
come from a known state ``rho``). The cost is ``H = 0``, so the exact SDP has *every* consistent
state as an optimum and SCS returns one of them; the regularized problem picks a distinguished one:

* von Neumann, ``phi(x) = x log x``: the state of maximum entropy consistent with the data (a Gibbs
  state ``exp(sum_i beta_i P_i) / Z``: Jaynes' principle);
* quadratic, ``phi(x) = x^2 / 2``: the consistent state of minimum purity ``Tr X^2`` (closest to
  ``I / D`` in Frobenius norm; often rank deficient).

Remark 6.2 of [CGMPP]: with ``H = 0`` the value of eps does not change the optimal state, only the
scale of the dual vector, because ``D_eps(alpha) = eps D_1(alpha / eps)``. The script checks this
numerically: it solves at every eps of ``--eps`` and prints, per regularizer, the largest trace
distance ``||X_eps - X_1||_1`` and the largest ``|alpha_eps / eps - alpha_1|_inf`` (``X_1``,
``alpha_1``: the solve at the first eps). Both are tiny: at most of the order of the solver
tolerance (``||grad|| < 1e-6``), and at the level of rounding with Newton-CG, whose
iterates are invariant under the rescaling ``alpha -> alpha / eps``. The exception is data that
determine a pure state (``--kind QT2`` with enough strings): no positive definite state is
feasible, the dual maximizer does not exist (the hypothesis of Theorem 2.5 fails), and ``da`` can
be large while the states still agree.

What it prints:

1. a header naming the generating state, the number of qubits and the eps values;
2. one row per number ``M`` of measured Pauli strings: the fidelity
   ``F(rho, X) = (Tr |sqrt(rho) sqrt(X)|)^2`` of the von Neumann, quadratic and SCS reconstructions
   with the true state, the von Neumann entropy ``S`` of the max-entropy reconstruction and of the
   true state (``S(vN) >= S(true)`` always: the true state is consistent with the data), the purity
   ``Tr X^2`` of the quadratic reconstruction and of the true state (``P(quad) <= P(true)``), and
   the two Remark 6.2 differences (``dX vN``, ``dX quad``: max trace distance across eps;
   ``da vN``, ``da quad``: max difference of the rescaled duals);
3. if any solve did not converge, a line ``not converged (M, status): ...``;
4. ``Remark 6.2: max ||X_eps - X_eps'||_1 over all rows = ...``.

With all ``4^n - 1`` Pauli strings measured the state is determined and every fidelity is 1.
``main`` returns a list of dicts, one per row, with the same quantities.

Run ``python examples/maxent_tomography.py`` (3 qubits) or ``--small`` (2 qubits).
"""

from __future__ import annotations

import argparse

import numpy as np

import cvxqreg
from cvxqreg import problems

EPS = (1.0, 1e-1, 1e-2, 1e-3)


def fidelity(rho: np.ndarray, sigma: np.ndarray) -> float:
    """Uhlmann fidelity ``(Tr sqrt(sqrt(rho) sigma sqrt(rho)))^2`` (1 for equal states)."""
    w, U = np.linalg.eigh(rho)
    root = (U * np.sqrt(np.clip(w, 0.0, None))) @ U.conj().T
    inner = np.linalg.eigvalsh(root @ sigma @ root)
    return float(np.sum(np.sqrt(np.clip(inner, 0.0, None))) ** 2)


def entropy(rho: np.ndarray) -> float:
    """Von Neumann entropy ``-Tr rho log rho`` (natural log)."""
    w = np.linalg.eigvalsh(rho)
    w = w[w > 1e-15]
    return max(0.0, float(-np.sum(w * np.log(w))))  # 0.0, not -0.0, for a pure state


def trace_distance(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b||_1`` (sum of absolute eigenvalues of the Hermitian difference)."""
    d = a - b
    return float(np.abs(np.linalg.eigvalsh(0.5 * (d + d.conj().T))).sum())


def reconstruct(lowered, regularizer: str, eps_values) -> dict:
    """Solve at every eps; return the first state and the Remark 6.2 differences."""
    results = [cvxqreg.solve(lowered, eps, regularizer, backend="numpy") for eps in eps_values]
    first = results[0]
    return {
        "X": first.X,
        "statuses": tuple(r.status for r in results),
        "dX": max(trace_distance(r.X, first.X) for r in results),
        "dalpha": max(
            float(np.abs(r.alpha / r.eps - first.alpha / first.eps).max()) for r in results
        ),
    }


def run_row(kind: str, n_qubits: int, n_measurements: int, eps_values, seed: int = 0) -> dict:
    """One reconstruction from ``n_measurements`` random Pauli strings."""
    inst = problems.tomography(kind, n_qubits=n_qubits, n_measurements=n_measurements, seed=seed)
    rho = inst.metadata["state"]
    lowered = cvxqreg.lower(inst.problem)
    vn = reconstruct(lowered, "von_neumann", eps_values)
    quad = reconstruct(lowered, "quadratic", eps_values)
    exact = cvxqreg.solve_exact(lowered)
    return {
        "M": n_measurements,
        "structure": lowered.A.describe(),
        "F_vn": fidelity(rho, vn["X"]),
        "F_quad": fidelity(rho, quad["X"]),
        "F_scs": fidelity(rho, exact.X),
        "S_vn": entropy(vn["X"]),
        "S_true": entropy(rho),
        "P_quad": float(np.real(np.trace(quad["X"] @ quad["X"]))),
        "P_true": float(np.real(np.trace(rho @ rho))),
        "dX_vn": vn["dX"],
        "dX_quad": quad["dX"],
        "dalpha_vn": vn["dalpha"],
        "dalpha_quad": quad["dalpha"],
        "statuses": vn["statuses"] + quad["statuses"],
        "scs_status": exact.status,
    }


COLUMNS = [
    ("M", "M", "{}"),
    ("F_vn", "F(vN)", "{:.4f}"),
    ("F_quad", "F(quad)", "{:.4f}"),
    ("F_scs", "F(SCS)", "{:.4f}"),
    ("S_vn", "S(vN)", "{:.4f}"),
    ("S_true", "S(true)", "{:.4f}"),
    ("P_quad", "P(quad)", "{:.4f}"),
    ("P_true", "P(true)", "{:.4f}"),
    ("dX_vn", "dX vN", "{:.1e}"),
    ("dX_quad", "dX quad", "{:.1e}"),
    ("dalpha_vn", "da vN", "{:.1e}"),
    ("dalpha_quad", "da quad", "{:.1e}"),
]


def main(argv=None) -> list[dict]:
    """Reconstruct for each number of measurements and print the table; see the module doc."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", default="QT1", choices=["QT1", "QT2", "QT3"])
    ap.add_argument("--qubits", type=int, default=3)
    ap.add_argument("--measurements", type=int, nargs="+", default=None)
    ap.add_argument("--eps", type=float, nargs="+", default=list(EPS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", action="store_true", help="2 qubits, 3 values of M")
    args = ap.parse_args(argv)
    n = 2 if args.small else args.qubits
    full = 4**n - 1
    if args.measurements:
        Ms = args.measurements
    elif args.small:
        Ms = [3, 6, full]
    else:
        Ms = sorted({max(1, full // 8), full // 4, full // 2, full})

    print(
        f"{args.kind} state on {n} qubits (D = {2**n}); Pauli strings drawn with seed {args.seed}; "
        f"eps = {', '.join(f'{e:g}' for e in args.eps)}"
    )
    rows = [run_row(args.kind, n, M, args.eps, args.seed) for M in Ms]
    head = [h for _, h, _ in COLUMNS]
    body = [[f.format(r[k]) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for b in body:
        print("  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)))
    bad = [(r["M"], s) for r in rows for s in r["statuses"] if s != "converged"]
    if bad:
        print(f"not converged (M, status): {bad}")
    worst = max(max(r["dX_vn"], r["dX_quad"]) for r in rows)
    print(f"Remark 6.2: max ||X_eps - X_eps'||_1 over all rows = {worst:.1e}")
    return rows


if __name__ == "__main__":
    main()
