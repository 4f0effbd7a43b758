"""Newton-CG on the dual, with Hessian-vector products from the Daleckii-Krein formula.

At small eps the dual's curvature spans many orders of magnitude and L-BFGS needs thousands of
iterations. A Newton step solves ``-Hess D(alpha) p = grad D(alpha)`` by conjugate gradients,
each CG iteration costing four matrix products on the eigenbasis already computed (MATH.md
section 5), then takes the step with the line search of :mod:`cvxqreg.solvers.lbfgs`. The CG
tolerance follows the usual forcing sequence ``min(0.5, sqrt(||g||)) ||g||`` (superlinear local
convergence); CG stops early on non-positive curvature.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..results import Status
from .dual import DualOracle
from .lbfgs import _line_search
from .optimize import LbfgsOutcome, RunRecord, stop_reason

__all__ = ["newton_cg_maximize"]


def _cg(apply_M: Callable, b: np.ndarray, rtol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Conjugate gradients for ``M p = b`` with ``M`` positive semidefinite; stops early on
    non-positive curvature (returning the last iterate, or ``b`` if none)."""
    x = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    stop = (rtol * np.sqrt(rr)) ** 2
    for k in range(max_iter):
        Mp = apply_M(p)
        pMp = float(p @ Mp)
        if not pMp > 0:
            return (x if k else b.copy()), k
        a = rr / pMp
        x += a * p
        r -= a * Mp
        rr_new = float(r @ r)
        if rr_new <= stop:
            return x, k + 1
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, max_iter


def newton_cg_maximize(
    oracle: DualOracle,
    x0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    stop_above: float | None = None,
    cg_max_iter: int = 250,
) -> LbfgsOutcome:
    """Maximize ``D_eps`` from ``x0`` by Newton-CG (same contract as the L-BFGS drivers)."""
    t0 = time.perf_counter()
    last = {}

    def neg(x):
        ev = oracle.evaluate(x, want_state=False)
        last["x"], last["ev"] = x, ev
        return -ev.value, -ev.grad

    x = np.asarray(x0, dtype=np.float64).copy()
    f, g = neg(x)
    ev = last["ev"]
    history = RunRecord(t0, callback)
    cg_total = 0

    k = 0
    gn = history.record(0, -f, g)
    while True:
        stop = stop_reason(
            -f, gn, k, tol, max_iter, time.perf_counter() - t0, time_limit, stop_above
        )
        if stop is not None:
            status, msg = stop
            break
        M = oracle.hessian_operator(ev)
        p, n_cg = _cg(M, -g, min(0.5, np.sqrt(gn)), min(cg_max_iter, 2 * x.size + 10))
        cg_total += n_cg
        dphi0 = float(g @ p)
        if not dphi0 < 0:
            p, dphi0 = -g, -float(g @ g)
        step = _line_search(neg, x, f, p, dphi0, 1.0)
        if step is None:  # far from the optimum the Newton model can be poor: gradient step
            p = -g
            step = _line_search(neg, x, f, p, -gn * gn, 1.0 / gn)
        if step is None:
            status = Status.STALLED
            msg = (
                f"line search failed at ||grad||_2 = {gn:.3e} >= tol = {tol:.1e}: no further "
                "progress in float64"
            )
            break
        t, f, g = step
        x = x + t * p
        ev = last["ev"] if np.array_equal(last["x"], x) else oracle.evaluate(x, want_state=False)
        k += 1
        gn = history.record(k, -f, g)
    out = history.outcome(x, status, msg + f" ({cg_total} CG products)", k)
    return out
