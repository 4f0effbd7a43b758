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

from ..errors import InfeasibleDataError, InvalidInputError
from ..problem import LoweredProblem
from ..results import ExactResult

__all__ = ["DEFAULT_SETTINGS", "DEFAULT_SOLVER", "solve_exact"]

#: The conic solver of :func:`solve_exact` (and of the CLI's and a sweep's reference) by default.
DEFAULT_SOLVER = "SCS"

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
    problem, solver: str = DEFAULT_SOLVER, *, verbose: bool = False, **solver_options
) -> ExactResult:
    """Solve the exact SDP ``min Tr[H X] s.t. X >= 0, A(X) = q`` with a conic solver.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
        A CVXPY problem is lowered first; its variable, value, status, constraint duals and
        ``solver_stats`` are then set from the solution as after ``problem.solve()`` (as
        :func:`cvxqreg.solve` does); a :class:`LoweredProblem` is left as it is.
    solver : {"SCS", "CLARABEL"}
        SCS (first-order, the reference named by the paper) or Clarabel (interior point,
        needs ``pip install clarabel``).
    verbose : bool
        Print what is solved (size, solver, tolerances), the conic solver's own log (its
        iterations as they happen) and the measured accuracy.
    **solver_options
        Override :data:`DEFAULT_SETTINGS` (e.g. ``eps_abs=1e-6`` for SCS; ``eps=1e-6`` sets both
        ``eps_abs`` and ``eps_rel``, as CVXPY does for SCS). An option the solver rejects raises
        :class:`~cvxqreg.errors.InvalidInputError`.

    Returns
    -------
    ExactResult
        ``value`` in the user's sign convention with the offset; ``alpha`` the dual vector;
        ``primal_residual = ||A(X) - q||``; ``dual_residual = max(0, lambda_max(A*(alpha) - H))``;
        ``accuracy`` the largest relative measure, by which ``converged`` judges the solve
        (the solver's status string is reported as it is). Data no state satisfies
        (inconsistent right-hand sides) give status ``"infeasible"``, as a solver's
        infeasibility certificate does.
    """
    import cvxpy as cp

    from ..cvxpy_method import write_back
    from ..lowering import lower_for_solve, sense_of

    name = str(solver).upper()
    if name not in DEFAULT_SETTINGS:
        raise InvalidInputError(f"solver must be 'SCS' or 'CLARABEL', got {solver!r}")
    if name not in cp.installed_solvers():
        raise InvalidInputError(
            f"{name} is not installed; pip install {name.lower()} (or use solver='SCS')"
        )
    try:
        lp, recovery = lower_for_solve(problem)
    except InfeasibleDataError as exc:  # cvxpy.Problem only
        if verbose:
            print(f"cvxqreg: infeasible data: {exc}")
        res = _failed("infeasible", name, {}, 0.0, sense_of(problem))
        write_back(problem, None, res)
        return res
    res = _solve_lowered(lp, name, verbose, solver_options)
    if recovery is not None:
        write_back(problem, recovery, res)
    return res


def _solve_lowered(lp: LoweredProblem, name: str, verbose: bool, solver_options) -> ExactResult:
    import cvxpy as cp

    options = dict(solver_options)
    if name == "SCS" and "eps" in options:  # CVXPY's spelling for SCS: eps_abs = eps_rel = eps
        eps = options.pop("eps")
        options = {"eps_abs": eps, "eps_rel": eps, **options}
    settings = {**DEFAULT_SETTINGS[name], **options}
    if verbose:
        print(
            f"cvxqreg: exact SDP, D={lp.dim} ({'real' if lp.real else 'Hermitian'}), "
            f"m={lp.n_rows} rows, with {name} {settings}"
        )
    prob, X, eq = _build(lp)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate": in status
        try:
            prob.solve(solver=name, verbose=verbose, **settings)
        except cp.error.SolverError as exc:
            elapsed = time.perf_counter() - t0
            return _failed(f"solver_error: {exc}", name, settings, elapsed, lp.sense)
        except TypeError as exc:  # the conic solver rejected an option given to solve_exact
            if not solver_options:
                raise
            raise InvalidInputError(
                f"{name} rejected the options {sorted(solver_options)} of solve_exact: {exc}"
            ) from exc
    elapsed = time.perf_counter() - t0
    status = prob.status
    stats = prob.solver_stats
    iters = getattr(stats, "num_iters", None)
    if X.value is None or status not in ("optimal", "optimal_inaccurate"):
        return _failed(status, name, settings, elapsed, lp.sense, iters)
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
    lam_min = float(np.linalg.eigvalsh(Xv).min())
    primal_residual = float(np.linalg.norm(lp.residual(Xv)))
    dual_internal = float(alpha @ lp.q)
    accuracy = max(
        primal_residual / (1.0 + float(np.linalg.norm(lp.q))),
        max(0.0, lam_max) / (1.0 + float(np.abs(np.linalg.eigvalsh(lp.H)).max())),
        abs(internal - dual_internal) / (1.0 + abs(internal) + abs(dual_internal)),
        max(0.0, -lam_min) / (1.0 + abs(float(np.trace(Xv).real))),
    )
    res = ExactResult(
        status=status,
        value=lp.user_value(internal),
        X=Xv,
        alpha=alpha,
        primal_residual=primal_residual,
        dual_residual=max(0.0, lam_max),
        min_eigenvalue=lam_min,
        iterations=None if iters is None else int(iters),
        time=elapsed,
        solver=name,
        settings=settings,
        dual_value=lp.user_value(dual_internal),
        sense=lp.sense,
        accuracy=accuracy,
    )
    if verbose:
        print(
            f"cvxqreg: exact SDP {status}, measured accuracy {accuracy:.1e} "
            f"(residual {primal_residual:.1e}, dual infeasibility {max(0.0, lam_max):.1e}), "
            f"{elapsed:.2f} s"
        )
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
