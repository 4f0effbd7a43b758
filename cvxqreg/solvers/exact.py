"""The exact (eps = 0) reference: the SDP solved by a conic solver through CVXPY.

    F_0 = min { Tr[H X] : X >= 0, A(X) = q },     D_0 = max { <alpha, q> : A*(alpha) <= H }.

The lowered problem is rebuilt as a small CVXPY model with one vectorized equality
``M [Re X; Im X] = q`` (``M`` = the operator's row matrix), so the dual vector of that constraint is
``alpha`` in the lowered row convention and ``A*(alpha) <= H`` can be checked directly. Inequality
rows become one vectorized ``M_I [Re X; Im X] <= q_I`` (multipliers ``alpha_I <= 0``).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..problem import LoweredProblem
from ..results import ExactResult

__all__ = ["DEFAULT_SETTINGS", "solve_exact"]

#: Tight default tolerances (SCS's defaults are 1e-4; a reference needs more digits).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
}


def _build(lp: LoweredProblem):
    import cvxpy as cp

    D = lp.dim
    M = lp.A.matrix().tocsr()
    if lp.real:
        X = cp.Variable((D, D), symmetric=True)
        re = cp.reshape(X, (D * D,), order="C")
        Ax = M[:, 0::2] @ re
        obj = cp.sum(cp.multiply(np.real(lp.H), X))
    else:
        X = cp.Variable((D, D), hermitian=True)
        re = cp.reshape(cp.real(X), (D * D,), order="C")
        im = cp.reshape(cp.imag(X), (D * D,), order="C")
        Ax = M[:, 0::2] @ re + M[:, 1::2] @ im
        # Tr[H X] = <Re H, Re X> + <Im H, Im X> for Hermitian H, X
        obj = cp.sum(cp.multiply(lp.H.real, cp.real(X))) + cp.sum(
            cp.multiply(lp.H.imag, cp.imag(X))
        )
    if lp.inequality is None:
        eq = Ax == lp.q
        return cp.Problem(cp.Minimize(obj), [X >> 0, eq]), X, [eq]
    # inequality rows: A(X)_I <= q_I, with CVXPY's dual >= 0 (alpha_I = -dual <= 0)
    E, I = np.flatnonzero(~lp.inequality), np.flatnonzero(lp.inequality)
    cons = [Ax[E] == lp.q[E], Ax[I] <= lp.q[I]]
    return cp.Problem(cp.Minimize(obj), [X >> 0, *cons]), X, [(E, cons[0]), (I, cons[1])]


def solve_exact(
    problem, solver: str = "SCS", *, verbose: bool = False, **solver_options
) -> ExactResult:
    """Solve the exact SDP ``min Tr[H X] s.t. X >= 0, A(X) = q`` with a conic solver.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
        A CVXPY problem is lowered first; its variable, value and constraint duals are then set
        from the solution as after ``problem.solve()``.
    solver : {"SCS", "CLARABEL"}
        SCS (first-order, the reference named by the paper) or Clarabel (interior point,
        needs ``pip install clarabel``).
    verbose : bool
        Print the solver's log.
    **solver_options
        Override :data:`DEFAULT_SETTINGS` (e.g. ``eps_abs=1e-6`` for SCS).

    Returns
    -------
    ExactResult
        ``value`` in the user's sign convention with the offset; ``alpha`` the dual vector;
        ``primal_residual = ||A(X) - q||``; ``dual_residual = max(0, lambda_max(A*(alpha) - H))``.
    """
    import cvxpy as cp

    name = str(solver).upper()
    if name not in DEFAULT_SETTINGS:
        raise InvalidInputError(f"solver must be 'SCS' or 'CLARABEL', got {solver!r}")
    if name not in cp.installed_solvers():
        raise InvalidInputError(
            f"{name} is not installed; pip install {name.lower()} (or use solver='SCS')"
        )
    source = None if isinstance(problem, LoweredProblem) else problem
    if source is None:
        lp = problem
    else:
        from ..lowering import lower

        lp = lower(problem)
    settings = {**DEFAULT_SETTINGS[name], **solver_options}
    prob, X, eq = _build(lp)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": in status
        try:
            prob.solve(solver=name, verbose=verbose, **settings)
        except cp.error.SolverError as exc:
            elapsed = time.perf_counter() - t0
            return _failed(f"solver_error: {exc}", name, settings, elapsed, lp.sense)
    elapsed = time.perf_counter() - t0
    status = prob.status
    stats = prob.solver_stats
    iters = getattr(stats, "num_iters", None)
    if X.value is None or status not in ("optimal", "optimal_inaccurate"):
        res = _failed(status, name, settings, elapsed, lp.sense, iters)
        if source is not None:
            lp.recovery.unpack(None, None, None, status) if lp.recovery is not None else None
        return res
    Xv = np.asarray(X.value)
    # CVXPY's equality dual y enters the Lagrangian as + y^T (A(X) - q) of a minimization, so the
    # multiplier of max <alpha, q> s.t. A*(alpha) <= H is alpha = -y.
    if len(eq) == 1:
        alpha = -np.asarray(eq[0].dual_value, dtype=np.float64).reshape(-1)
    else:
        alpha = np.zeros(lp.n_rows)
        for rows, con in eq:
            alpha[rows] = -np.asarray(con.dual_value, dtype=np.float64).reshape(-1)
    W = lp.A.to_backend("numpy").adjoint(alpha)
    W = (W.real if lp.real else W) - lp.H
    lam_max = float(np.linalg.eigvalsh(0.5 * (W + W.conj().T)).max())
    internal = float(prob.value)
    res = ExactResult(
        status=status,
        value=lp.user_value(internal),
        X=Xv,
        alpha=alpha,
        primal_residual=float(np.linalg.norm(lp.residual(Xv))),
        dual_residual=max(0.0, lam_max),
        min_eigenvalue=float(np.linalg.eigvalsh(Xv).min()),
        iterations=None if iters is None else int(iters),
        time=elapsed,
        solver=name,
        settings=settings,
        dual_value=lp.user_value(float(alpha @ lp.q)),
        sense=lp.sense,
    )
    if source is not None and lp.recovery is not None:
        lp.recovery.unpack(Xv, alpha, res.value, status)
    return res


def _failed(status, name, settings, elapsed, sense, iters=None) -> ExactResult:
    return ExactResult(
        status=status,
        value=float("nan"),
        X=None,
        alpha=None,
        primal_residual=float("nan"),
        dual_residual=float("nan"),
        min_eigenvalue=float("nan"),
        iterations=None if iters is None else int(iters),
        time=elapsed,
        solver=name,
        settings=settings,
        sense=sense,
    )
