"""A small L-BFGS whose line search keeps working below the resolution of function values.

Near the optimum of ``-D_eps`` at small eps the decrease promised by a step,
``~ ||g||^2 eps``, falls below the rounding of ``D_eps`` itself (``~ 1e-16 |D_eps|``), and an
Armijo test on function values can no longer be decided: SciPy's L-BFGS-B then stops
("relative reduction <= factr*epsmch" or an abnormal line-search termination) before ``||g||``
reaches the paper's tolerance (measured: ``||g|| ~ 2e-6`` on a 9 x 9 transport problem at
eps = 1e-4, tests/test_dual.py). The directional derivative
``g(x + t d) . d`` stays accurate, so this line search accepts a step when either the Wolfe
conditions hold or, once function values are within rounding of each other, the *approximate*
Wolfe conditions of Hager and Zhang (SIAM J. Optim. 16, 2005) hold:

    (2 c1 - 1) phi'(0) >= phi'(t) >= c2 phi'(0),   phi(t) <= phi(0) + eps_f.

Directions come from the standard two-loop recursion with ``memory`` pairs and the
``s.y / y.y`` initial scaling; a pair with ``s.y <= 0`` is skipped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from .line_search import line_search
from .optimize import (
    STAGNATION_PATIENCE,
    RunOutcome,
    RunRecord,
    Stagnation,
    line_search_failed,
    stop_reason,
)

__all__ = ["lbfgs_maximize_hz"]


def _direction(g: np.ndarray, pairs: deque) -> np.ndarray:
    """``-H g`` by the two-loop recursion."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * (s @ q)
        alphas.append(a)
        q -= a * y
    if pairs:
        s, y, _ = pairs[-1]
        q *= (s @ y) / (y @ y)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * (y @ q)
        q += (a - b) * s
    return -q


def lbfgs_maximize_hz(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
    memory: int = 10,
    callback: Callable[[int, float, float], None] | None = None,
    stop_above: float | None = None,
    unit: float = 1.0,
) -> RunOutcome:
    """Maximize a smooth concave ``f`` from ``fun(x) -> (f(x), grad f(x))``; same contract as
    :func:`cvxqreg.solvers.scipy_lbfgs.scipy_lbfgs_maximize`. ``unit``: the size below which
    ``|f|`` counts as zero in the line search's rounding test
    (:meth:`cvxqreg.solvers.dual.DualOracle.value_unit`)."""
    t0 = time.perf_counter()

    def neg(x):
        f, g = fun(x)
        return -f, -np.asarray(g, dtype=np.float64)

    x = np.asarray(x0, dtype=np.float64).copy()
    f, g = neg(x)
    history = RunRecord(t0, callback)
    pairs: deque = deque(maxlen=max(1, int(memory)))

    patience = 10 * STAGNATION_PATIENCE
    stagnation = Stagnation(patience)
    k = 0
    status, msg = None, ""
    gn = history.record(0, -f, g)
    while True:
        stop = stop_reason(
            -f, gn, k, tol, max_iter, time.perf_counter() - t0, time_limit, stop_above
        )
        if stop is None:
            stop = stagnation.check(neg, x, g, gn)
        if stop is not None:
            status, msg = stop
            break

        d = _direction(g, pairs)
        dphi0 = float(g @ d)
        if not dphi0 < 0:  # not a descent direction: restart from steepest descent
            pairs.clear()
            d = -g
            dphi0 = float(g @ d)
        t = 1.0 if pairs else min(1.0, 1.0 / gn)
        step = line_search(neg, x, f, d, dphi0, t, unit)
        if step is None:
            status, msg = line_search_failed(neg, x, g, gn, tol)
            break
        t, f_new, g_new = step
        s = t * d
        y = g_new - g
        sy = float(s @ y)
        if sy > 1e-300 and np.isfinite(sy):
            pairs.append((s, y, 1.0 / sy))
        x = x + s
        f, g = f_new, g_new
        k += 1
        gn = history.record(k, -f, g)
    return history.outcome(x, status, msg, k)
