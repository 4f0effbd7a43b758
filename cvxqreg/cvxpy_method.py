"""``problem.solve(method="cvxqreg", eps=...)``, and writing results back into CVXPY problems.

Registered with :meth:`cvxpy.Problem.register_solve` when :mod:`cvxqreg` is imported. As after any
CVXPY solve, ``problem.solve(method="cvxqreg", eps=1e-3)`` returns ``problem.value`` and sets the
variable's ``.value``, ``problem.status``, ``problem.value``, the constraints' ``dual_value`` and
``problem.solver_stats``; the full :class:`~cvxqreg.results.RegularizedResult` (regularized optimum
``F_eps``, dual value, certified bound, status, history) is ``problem.cvxqreg_result``.

This module is the edge between cvxqreg's results and CVXPY's objects: :func:`write_back` is the
one function that writes into a ``cvxpy.Problem``, used by this method, by
:func:`cvxqreg.solve` and by :func:`cvxqreg.solve_exact` when they are given a ``cvxpy.Problem``
(given a :class:`~cvxqreg.problem.LoweredProblem`, nothing is written).

``problem.value`` is the model's own objective at the returned state, ``Tr[H X_eps]`` (so
``problem.value == problem.objective.value`` as CVXPY users expect). CVXPY's status follows
:data:`CVXPY_STATUS`: a solve stopped by ``max_iter`` or a time limit is ``"user_limit"``, one that
stalled in float64 near the tolerance (``||grad|| <= max(1e3 tol, sqrt(tol))``) or stopped at the
float64 floor ``"optimal_inaccurate"`` (with CVXPY's "Solution may be inaccurate" warning) and
farther away ``"solver_error"`` (no values written, and ``cvxpy.error.SolverError`` raised as
CVXPY's own solve does; ``problem.cvxqreg_result`` keeps the last iterate);
an infeasibility certificate, or data no state satisfies (inconsistent right-hand sides), gives
``"infeasible"`` with ``problem.value = +inf`` (``-inf`` for a ``Maximize``), as CVXPY reports;
a recession direction of an SDP without a fixed trace gives ``"unbounded"`` with ``-inf``
(``+inf`` for a ``Maximize``).

Keywords: ``eps`` (required), every option of :class:`~cvxqreg.DualSolver` (``regularizer``,
``tol``, ``max_iter``, ``verbose``, ...), ``warm_start=True`` (start from the dual vector of this
problem's last cvxqreg solve, ``problem.cvxqreg_result.alpha``, when its size still fits; off by
default, unlike CVXPY's own ``solve``, so that a solve does not depend on the one before) and
``alpha0``/``eps0`` (an explicit warm start, as in :func:`cvxqreg.solve`), and
``solver=`` (only ``"cvxqreg"``: the conic solvers are reached by ``problem.solve(solver=...)``
or :func:`cvxqreg.solve_exact`). Any other keyword raises ``InvalidInputError("unknown option
'x' ... (did you mean ...?); valid options: ...")``.
"""

from __future__ import annotations

__all__ = ["CVXPY_STATUS", "cvxpy_status", "register", "solve_method", "write_back"]

METHOD_NAME = "cvxqreg"

#: cvxqreg status -> CVXPY status
CVXPY_STATUS = {
    "converged": "optimal",
    "stalled": "optimal_inaccurate",
    "precision_limit": "optimal_inaccurate",
    "max_iter": "user_limit",
    "time_limit": "user_limit",
    "infeasible": "infeasible",
    "unbounded": "unbounded",
    "failed": "solver_error",
}

#: keywords of the method itself (beside the DualSolver options)
METHOD_KEYWORDS = ("eps", "warm_start", "alpha0", "eps0", "solver")


def cvxpy_status(result) -> str:
    """CVXPY's status string for a :class:`~cvxqreg.results.RegularizedResult` or
    :class:`~cvxqreg.results.ExactResult` (the latter keeps the conic solver's own status)."""
    from .results import ExactResult

    if isinstance(result, ExactResult):
        return str(result.status)
    status = CVXPY_STATUS[result.status]
    tol = result.tol
    if status == "optimal_inaccurate" and not result.grad_norm <= max(1e3 * tol, tol**0.5):
        status = "solver_error"  # stalled far from feasibility: no solution to report
    return status


def write_back(problem, recovery, result) -> None:
    """Set ``problem``'s state from ``result`` as a CVXPY solve would.

    Sets the variable's value, ``problem.status``/``value``, the equality and PSD constraints'
    ``dual_value`` (:class:`~cvxqreg.lowering.Recovery`), ``problem.solver_stats``,
    ``problem.compilation_time`` (the lowering's time) and ``problem.cvxqreg_result``.
    ``recovery=None`` (the data could not be lowered because no state satisfies them) records
    status ``"infeasible"`` with no values.
    """
    import cvxpy.settings as s

    from .lowering.recovery import record_without_solution, value_without_solution

    status = cvxpy_status(result)
    if recovery is None:
        value = value_without_solution(status, result.sense) if status in s.INF_OR_UNB else None
        record_without_solution(problem, status, value)
    elif status in s.SOLUTION_PRESENT and result.X is not None:
        value = result.energy if hasattr(result, "energy") else result.value
        recovery.unpack(result.X, result.alpha, value, status)
    elif status in s.INF_OR_UNB:
        recovery.unpack(None, None, None, status)
    else:  # no solution: a CVXPY status is recorded as it is, anything else as solver_error
        known = status in s.ERROR or status in s.SOLUTION_PRESENT
        recovery.unpack(None, None, None, status if known else s.SOLVER_ERROR)
    problem._solver_stats = _solver_stats(result, recovery)
    problem._compilation_time = problem._solver_stats.setup_time  # the lowering, not a stale one
    problem.cvxqreg_result = result


def _solver_stats(result, recovery):
    """CVXPY's ``SolverStats`` for a cvxqreg result."""
    from cvxpy.problems.problem import SolverStats

    from .results import ExactResult

    setup = None if recovery is None else recovery.timings.get("total")
    if isinstance(result, ExactResult):
        name = result.solver  # the conic solver's name, as after problem.solve(solver=...)
        extra = {
            "solved_by": "cvxqreg.solve_exact",
            "status": result.status,
            "accuracy": result.accuracy,
            "primal_residual": result.primal_residual,
            "dual_residual": result.dual_residual,
            "gap": result.gap,
        }
    else:
        name = METHOD_NAME
        extra = {
            "status": result.status,
            "message": result.message,
            "eps": result.eps,
            "regularizer": result.regularizer,
            "value": result.value,
            "dual_value": result.dual_value,
            "grad_norm": result.grad_norm,
            "certified_bound": result.certified_bound,
            "n_evals": result.n_evals,
            "backend": result.backend,
            **result.extras,
        }
    return SolverStats(
        solver_name=name,
        solve_time=float(result.time),
        setup_time=None if setup is None else float(setup),
        num_iters=None if result.iterations is None else int(result.iterations),
        extra_stats=extra,
    )


def solve_method(
    problem,
    eps: float | None = None,
    *,
    warm_start: bool = False,
    alpha0=None,
    eps0: float | None = None,
    **options,
):
    """The function CVXPY calls for ``problem.solve(method="cvxqreg", ...)``; returns
    ``problem.value``.

    ``eps`` is required; ``eps=0`` is rejected with a pointer to :func:`cvxqreg.solve_exact`.
    The other keywords are those of :class:`~cvxqreg.DualSolver`, plus ``warm_start``,
    ``solver`` (see the module docstring) and an explicit warm start ``alpha0`` (computed at
    ``eps0``), as in :func:`cvxqreg.solve`.
    """
    from .errors import InvalidInputError
    from .solvers.regularized import DualSolver, solve_with

    solver = options.pop("solver", None)
    if solver is not None and str(solver).lower() != METHOD_NAME:
        raise InvalidInputError(
            f"method='cvxqreg' solves the entropy-regularized problem with its own dual solver; "
            f"solver={solver!r} is not used by it. For the exact SDP use "
            f"problem.solve(solver={solver!r}) or cvxqreg.solve_exact(problem, {solver!r})"
        )
    where = "problem.solve(method='cvxqreg')"
    dual = DualSolver.from_options(options, where=where, also=METHOD_KEYWORDS)
    if eps is None:
        raise InvalidInputError(
            "problem.solve(method='cvxqreg') needs eps=..., e.g. eps=1e-3; for the exact SDP "
            "use problem.solve(solver='SCS') or cvxqreg.solve_exact(problem)"
        )
    from .results import RegularizedResult

    last = getattr(problem, "cvxqreg_result", None)
    warm = last if warm_start and isinstance(last, RegularizedResult) else None
    result = solve_with(dual, problem, eps, alpha0=alpha0, eps0=eps0, warm_from=warm)
    _warn_or_raise(problem.status, result)
    return problem.value


def _warn_or_raise(status: str, result) -> None:
    """What CVXPY's own solve does after recording a status: warn on an inaccurate one, raise
    ``cvxpy.error.SolverError`` on a failure (the status, the cleared values and
    ``problem.cvxqreg_result`` are recorded first, so the last iterate can be inspected)."""
    import warnings

    import cvxpy.settings as s
    from cvxpy.error import SolverError

    if status in s.ERROR:
        raise SolverError(
            f"cvxqreg failed ({result.status}): {result.message}. problem.cvxqreg_result holds "
            "the last iterate; try a larger eps, a looser tol or verbose=True"
        )
    if status in s.INACCURATE:
        warnings.warn(
            f"Solution may be inaccurate: cvxqreg stopped with status {result.status!r} "
            f"(||grad|| = {result.grad_norm:.1e}, tol {result.tol:.1e}). Try a looser tol or a "
            "larger eps, or solve with verbose=True for more information.",
            UserWarning,
            stacklevel=4,
        )


def register() -> None:
    """Register the method with CVXPY (idempotent)."""
    import cvxpy as cp

    cp.Problem.register_solve(METHOD_NAME, solve_method)
