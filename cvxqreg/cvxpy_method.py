"""``problem.solve(method="cvxqreg", eps=...)``: the regularized solver as a CVXPY solve method.

Registered with :meth:`cvxpy.Problem.register_solve` when :mod:`cvxqreg` is imported. After the
solve, the variable's ``.value``, ``problem.value`` (``F_eps`` in the user's sign convention) and
the constraints' ``dual_value`` are set as after any CVXPY solve; the full
:class:`~cvxqreg.results.RegularizedResult` is returned and also stored as
``problem.cvxqreg_result``.
"""

from __future__ import annotations

__all__ = ["register", "solve_method"]

METHOD_NAME = "cvxqreg"


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
        lowered.recovery.unpack(
            result.X,
            result.alpha,
            result.value,
            "optimal" if result.converged else "optimal_inaccurate",
        )
    problem.cvxqreg_result = result
    return result


def register() -> None:
    """Register the method with CVXPY (idempotent)."""
    import cvxpy as cp

    cp.Problem.register_solve(METHOD_NAME, solve_method)
