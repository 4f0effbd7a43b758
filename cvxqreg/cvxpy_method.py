"""``problem.solve(method="cvxqreg", eps=...)``: the regularized solver as a CVXPY solve method.

Registered with :meth:`cvxpy.Problem.register_solve` when :mod:`cvxqreg` is imported. After the
solve, the variable's ``.value``, ``problem.value`` and the constraints' ``dual_value`` are set as
after any CVXPY solve. ``problem.value`` is the model's own objective at the regularized state,
``Tr[H X_eps]`` (so ``problem.value == problem.objective.value`` as CVXPY users expect); the
regularized optimum ``F_eps``, the dual value, the certified bound and the status are in the full
:class:`~cvxqreg.results.RegularizedResult`, which is returned and stored as
``problem.cvxqreg_result``. CVXPY's status follows :data:`CVXPY_STATUS`: a solve stopped by
``max_iter`` or a time limit is ``"user_limit"``, one that stalled in float64 near the tolerance
(``||grad|| <= max(1e3 tol, sqrt(tol))``) or stopped at the float64 floor ``"optimal_inaccurate"``
and farther away
``"solver_error"`` (no values written); an infeasibility certificate gives ``"infeasible"``.
"""

from __future__ import annotations

__all__ = ["register", "solve_method"]

METHOD_NAME = "cvxqreg"

#: cvxqreg status -> CVXPY status
CVXPY_STATUS = {
    "converged": "optimal",
    "stalled": "optimal_inaccurate",
    "precision_limit": "optimal_inaccurate",
    "max_iter": "user_limit",
    "time_limit": "user_limit",
    "infeasible": "infeasible",
    "failed": "solver_error",
}


def solve_method(
    problem,
    eps: float | None = None,
    regularizer="von_neumann",
    backend="auto",
    tol: float = 1e-6,
    max_iter: int = 10000,
    alpha0=None,
    **kwargs,
):
    """The function CVXPY calls for ``problem.solve(method="cvxqreg", ...)``.

    ``eps`` is required; ``eps=0`` is rejected with a pointer to :func:`cvxqreg.solve_exact`.
    Other keyword arguments go to :func:`cvxqreg.solve`.
    """
    from .errors import InvalidInputError
    from .lowering import lower
    from .solvers.regularized import solve

    if eps is None:
        raise InvalidInputError(
            "problem.solve(method='cvxqreg') needs eps=..., e.g. eps=1e-3; for the exact SDP "
            "use problem.solve(solver='SCS') or cvxqreg.solve_exact(problem)"
        )
    lowered = lower(problem)
    result = solve(
        lowered,
        eps,
        regularizer=regularizer,
        backend=backend,
        tol=tol,
        max_iter=max_iter,
        alpha0=alpha0,
        **kwargs,
    )
    if lowered.recovery is not None:
        status = CVXPY_STATUS[result.status]
        if status == "optimal_inaccurate" and not result.grad_norm <= max(1e3 * tol, tol**0.5):
            status = "solver_error"  # stalled far from feasibility: no solution to report
        if status in ("infeasible", "solver_error"):
            lowered.recovery.unpack(None, None, None, status)
        else:
            lowered.recovery.unpack(result.X, result.alpha, result.energy, status)
    problem.cvxqreg_result = result
    return result


def register() -> None:
    """Register the method with CVXPY (idempotent)."""
    import cvxpy as cp

    cp.Problem.register_solve(METHOD_NAME, solve_method)
