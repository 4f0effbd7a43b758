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
bound on ``F_eps`` (weak duality) and the certified bounds keep their meaning (docs/theory.md,
'Inequality constraints and the bound-constrained dual').
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from ..problem import LoweredProblem
from .line_search import value_rounding
from .optimize import RunOutcome, RunRecord, stop_reason
from .scipy_lbfgs import scipy_lbfgs_maximize

__all__ = ["bounded_lbfgs_maximize", "projected_newton_maximize"]


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
) -> RunOutcome:
    """Maximize the concave ``f`` (``fun(x) -> (f, grad f)``) over ``x_i <= 0`` on the inequality
    rows of ``problem``; stop when the projected gradient's 2-norm is below ``tol``. SciPy's
    L-BFGS-B on the box: :func:`cvxqreg.solvers.scipy_lbfgs.scipy_lbfgs_maximize` with
    ``box=problem`` (``x0`` is projected first)."""
    return scipy_lbfgs_maximize(
        fun,
        x0,
        tol=tol,
        max_iter=max_iter,
        time_limit=time_limit,
        memory=memory,
        callback=callback,
        stop_above=stop_above,
        box=problem,
    )


#: sufficient-increase constant of the projected search
_SIGMA = 1e-4
#: step halvings before the projected search gives up
_MAX_HALVINGS = 50


def projected_newton_maximize(
    oracle,
    x0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    stop_above: float | None = None,
    hessian: str = "auto",
    regularization: float = 1e-3,
    cg_max_iter: int = 250,
) -> RunOutcome:
    """Projected Newton (Bertsekas, SIAM J. Control Optim. 20, 1982) on ``alpha_I <= 0``.

    At each iterate the inequality rows near their bound whose gradient pushes against it
    (``alpha_i >= -delta``, ``grad_i > 0``, ``delta = min(1e-3, ||alpha - P(alpha + grad)||)``)
    are held at the bound; on the free rows the step solves the regularized Newton system of
    :mod:`cvxqreg.solvers.newton`, ``(-Hess_FF + mu I) p_F = grad_F``, with the same
    Levenberg-Marquardt shift. The step is searched along the projection arc
    ``P(alpha + t p)``, halving ``t`` until ``D(alpha(t)) >= D(alpha) + sigma grad . (alpha(t) -
    alpha)``, or (once dual values agree to rounding) until the projected gradient shrinks.
    Stopping: the projected gradient's 2-norm below ``tol`` (same statuses as the other drivers).
    """
    from .newton import _cg, _dense_step
    from .optimize import Stagnation, line_search_failed

    t0 = time.perf_counter()
    problem = oracle.problem
    unit = oracle.value_unit()
    ineq = problem.inequality
    cache: dict = {}

    def evaluate(x):
        if "x" in cache and np.array_equal(cache["x"], x):
            return cache["ev"]
        ev = oracle.evaluate(x, want_state=False)
        cache["x"], cache["ev"] = x.copy(), ev
        return ev

    def floor_check_fun(x_base):
        """``-value`` and ``-projected gradient`` with the bound set of ``x_base`` held fixed, for
        the float64-floor check: perturbing a multiplier at its bound by a rounding-level amount
        must not switch its gradient entry on or off."""
        at_bound = problem.inequality & (x_base >= 0.0)

        def fun(xs):
            e = oracle.evaluate(xs, want_state=False)
            g = e.grad.copy()
            g[at_bound] = np.minimum(g[at_bound], 0.0)
            return -e.value, -g

        return fun

    if hessian not in ("auto", "dense", "cg"):
        raise ValueError(f"hessian must be 'auto', 'dense' or 'cg', got {hessian!r}")
    dense = hessian == "dense" or (hessian == "auto" and oracle.dense_hessian_fits())
    energy_scale = oracle.energy_scale()
    x = problem.project_dual(np.asarray(x0, dtype=np.float64)).copy()
    ev = evaluate(x)
    history = RunRecord(t0, callback)
    stagnation = Stagnation(20)
    k, n_solves, t_first = 0, 0, 1.0
    pg = problem.projected_gradient(x, ev.grad)
    gn = history.record(0, ev.value, pg)
    while True:
        stop = stop_reason(
            ev.value, gn, k, tol, max_iter, time.perf_counter() - t0, time_limit, stop_above
        )
        if stop is None:
            stop = stagnation.check(floor_check_fun(x), x, -pg, gn)
        if stop is not None:
            status, msg = stop
            break
        g = ev.grad
        width = float(np.linalg.norm(x - problem.project_dual(x + g)))
        delta = min(1e-3, width)
        held = ineq & (x >= -delta) & (g > 0)
        free = ~held
        mu = regularization * gn / energy_scale
        p = np.zeros_like(x)
        p[held] = -x[held]  # onto the bound
        if dense:
            Hm = oracle.hessian_matrix(ev)
            p[free] = _dense_step(Hm[np.ix_(free, free)], g[free], mu)
        else:
            M = oracle.hessian_operator(ev)
            idx = np.flatnonzero(free)

            def apply_ff(v, M=M, idx=idx, mu=mu, m=x.size):
                full = np.zeros(m)
                full[idx] = v
                return M(full)[idx] + mu * v

            rtol = min(0.5, np.sqrt(gn))
            p[free], _ = _cg(apply_ff, g[free], rtol, min(cg_max_iter, 2 * idx.size + 10))
        n_solves += 1
        if not float(g[free] @ p[free]) > 0:  # not an ascent direction: projected gradient
            p = g.copy()
        step = _projected_search(evaluate, problem, x, ev, p, pg, gn, t_first, unit)
        if step is None and not np.array_equal(p, g):
            q = g.copy() / max(gn, 1.0)
            step = _projected_search(evaluate, problem, x, ev, q, pg, gn, 1.0, unit)
        if step is None:
            status, msg = line_search_failed(floor_check_fun(x), x, -pg, gn, tol)
            break
        x, ev, t_used = step
        t_first = min(1.0, 4.0 * t_used)  # far from the optimum Newton steps are cut back
        pg = problem.projected_gradient(x, ev.grad)
        k += 1
        gn = history.record(k, ev.value, pg)
    out = history.outcome(x, status, f"{msg} ({n_solves} projected Newton solves)", k)
    return dataclasses.replace(out, evaluation=evaluate(x))


def _projected_search(evaluate, problem, x, ev, p, pg, gn, t=1.0, unit=1.0):
    """Halve ``t`` along ``P(x + t p)`` until sufficient increase (or, within the rounding of
    the dual value, :func:`~cvxqreg.solvers.line_search.value_rounding`, a smaller projected
    gradient), starting from ``t``; ``(x_new, ev_new, t)`` or ``None``."""
    f0 = ev.value
    eps_f = value_rounding(f0, unit)
    for _ in range(_MAX_HALVINGS):
        xt = problem.project_dual(x + t * p)
        if np.array_equal(xt, x):
            return None
        evt = evaluate(xt)
        if np.isfinite(evt.value):
            gain = float(ev.grad @ (xt - x))
            if evt.value >= f0 + _SIGMA * gain and gain > 0:
                return xt, evt, t
            if evt.value >= f0 - eps_f:
                pgt = np.linalg.norm(problem.projected_gradient(xt, evt.grad))
                if pgt < gn:
                    return xt, evt, t
        t *= 0.5
    return None
