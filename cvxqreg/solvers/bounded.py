"""The regularized dual with inequality rows: a bound-constrained concave maximization.

With inequality rows ``A(X)_i <= q_i`` (``i`` in ``I``) the Lagrangian
``Tr[H X] + eps Tr[phi(X)] - <alpha, A(X) - q>`` bounds the primal from below only when
``alpha_i <= 0`` on ``I``, so the regularized dual is

    max_alpha  D_eps(alpha) = <alpha, q> - eps Tr[psi((A*(alpha) - H)/eps)]   s.t.  alpha_I <= 0,

the same oracle (value, gradient ``q - A(X(alpha))``) on a box. SciPy's L-BFGS-B handles the box
(projected search directions, Cauchy point; Byrd, Lu, Nocedal, Zhu 1995). The stopping rule is the
paper's on the *projected* gradient (:meth:`cvxqreg.problem.LoweredProblem.projected_gradient`):
``grad_i`` on equality rows and on inequality rows with ``alpha_i < 0``, ``min(grad_i, 0)`` on
inequality rows at ``alpha_i = 0``. Its norm vanishes exactly at a KKT point: the state
``X(alpha)`` is feasible for the equalities and inequalities and complementary
(``alpha_i (A(X)_i - q_i) = 0``). Every iterate is dual feasible, so ``D_eps(alpha)`` is a lower
bound on ``F_eps`` (weak duality) and the certified bounds keep their meaning.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import scipy.optimize

from ..backend import blas_controller
from ..problem import LoweredProblem
from ..results import Status
from .optimize import LbfgsOutcome, RunRecord, stop_reason

__all__ = ["bounded_lbfgs_maximize"]


def bounded_lbfgs_maximize(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    problem: LoweredProblem,
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
    memory: int = 10,
    callback: Callable[[int, float, float], None] | None = None,
    stop_above: float | None = None,
) -> LbfgsOutcome:
    """Maximize the concave ``f`` (``fun(x) -> (f, grad f)``) over ``x_i <= 0`` on the inequality
    rows of ``problem``; stop when the projected gradient's 2-norm is below ``tol``. Same
    contract as :func:`cvxqreg.solvers.optimize.lbfgs_maximize` (``x0`` is projected first)."""
    t0 = time.perf_counter()
    ub = problem.dual_upper_bounds()
    bounds = scipy.optimize.Bounds(np.full(ub.size, -np.inf), ub)
    cache: dict[str, object] = {}
    history = RunRecord(t0, callback)
    ctl = blas_controller()
    full = {i["prefix"]: i["num_threads"] for i in ctl.info() if i["user_api"] == "blas"}

    def neg(x):
        with ctl.limit(limits=full, user_api="blas"):
            f, g = fun(x)
        cache["x"], cache["f"], cache["g"] = x.copy(), f, np.asarray(g, dtype=np.float64)
        if not (np.isfinite(f) and np.all(np.isfinite(g))):
            return np.inf, np.zeros_like(x)
        return -f, -np.asarray(g, dtype=np.float64)

    def check(k, x):
        if "x" not in cache or not np.array_equal(cache["x"], x):
            neg(x)
        f = cache["f"]
        gn = history.record(k, f, problem.projected_gradient(x, cache["g"]))
        return stop_reason(
            f, gn, k, tol, max_iter, time.perf_counter() - t0, time_limit, stop_above
        )

    x0 = problem.project_dual(np.asarray(x0, dtype=np.float64)).copy()
    state = {"k": 0, "stop": check(0, x0), "x": x0}
    if state["stop"] is not None:
        return history.outcome(x0, *state["stop"], 0)

    def cb(intermediate_result):
        state["k"] += 1
        state["x"] = intermediate_result.x.copy()
        state["stop"] = check(state["k"], state["x"])
        if state["stop"] is not None:
            raise StopIteration

    with ctl.limit(limits=1, user_api="blas"):
        res = scipy.optimize.minimize(
            neg,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            callback=cb,
            options={
                "maxiter": int(max_iter),
                "maxfun": max(15000, 50 * int(max_iter)),
                "maxcor": int(memory),
                "gtol": 0.0,
                "ftol": 0.0,
                "maxls": 40,
            },
        )
    if state["stop"] is not None:
        status, msg = state["stop"]
    else:
        status = Status.STALLED
        msg = (
            f"L-BFGS-B stopped ({res.message}) at ||projected grad||_2 = {history.g[-1]:.3e} "
            f">= tol = {tol:.1e}: no further progress in float64"
        )
    return history.outcome(state["x"], status, msg, state["k"])
