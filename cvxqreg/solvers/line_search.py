"""The line search of cvxqreg's L-BFGS and of Newton (:mod:`cvxqreg.solvers.lbfgs`,
:mod:`cvxqreg.solvers.newton`), on ``phi(t) = f(x + t d)`` for the minimized ``f = -D_eps``.

A step is accepted when the weak Wolfe conditions hold or, once function values are within
rounding of each other (``eps_f = 64 u (unit + |f(x)|)``), the approximate Wolfe conditions of Hager
and Zhang (SIAM J. Optim. 16, 2005):

    (2 c1 - 1) phi'(0) >= phi'(t) >= c2 phi'(0),   phi(t) <= phi(0) + eps_f,

with ``c1 = 1e-4``, ``c2 = 0.9``; the derivation is in the docstring of
:mod:`cvxqreg.solvers.lbfgs`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["line_search", "value_rounding"]

_C1, _C2 = 1e-4, 0.9
_MAX_LS = 60
#: units of rounding ``u (unit + |f|)`` within which two values of ``f`` are not told apart
ROUNDING_UNITS = 64


def value_rounding(f: float, unit: float = 1.0) -> float:
    """``eps_f = 64 u (unit + |f|)``: the rounding of a value ``f`` whose natural scale is ``unit``
    (:meth:`cvxqreg.solvers.dual.DualOracle.value_unit`; ``1`` unless the caller knows it). Below
    it, function values no longer rank trial points."""
    return ROUNDING_UNITS * np.finfo(float).eps * (unit + abs(f))


def line_search(neg, x, f0, d, dphi0, t, unit: float = 1.0):
    """Weak Wolfe / approximate Wolfe step along ``d``; ``(t, f, g)`` or ``None``. ``unit``: the
    size below which ``|f|`` counts as zero in the rounding ``eps_f = 64 u (unit + |f(x)|)`` (the
    objective's natural scale; ``1`` unless the caller knows it)."""
    eps_f = value_rounding(f0, unit)
    lo, hi = 0.0, np.inf
    dlo, dhi = dphi0, np.nan
    good = None  # the last step that passed the decrease test
    for _ in range(_MAX_LS):
        f, g = neg(x + t * d)
        dphi = float(g @ d)
        if not (np.isfinite(f) and np.isfinite(dphi)):
            hi, dhi = t, np.nan
        else:
            armijo = f <= f0 + _C1 * t * dphi0
            approx = f <= f0 + eps_f and dphi <= (2 * _C1 - 1) * dphi0
            if not (armijo or approx) or (dphi > 0 and not armijo):
                hi, dhi = t, dphi
            elif dphi < _C2 * dphi0:
                lo, dlo = t, dphi
                good = (t, f, g)
            else:
                return t, f, g
        if np.isinf(hi):
            t = 2.0 * t
            continue
        width = hi - lo
        if width <= 1e-16 * max(1.0, hi):
            return None
        # secant on the directional derivative when it lands well inside the bracket, else
        # bisection (a secant clamped to the edge would shrink the bracket by only 10%)
        t = lo + 0.5 * width
        if np.isfinite(dhi) and dhi != dlo:
            ts = lo - dlo * width / (dhi - dlo)
            if lo + 0.1 * width <= ts <= hi - 0.1 * width:
                t = ts
    # still going down after every doubling (an unbounded dual: infeasible data) - take the
    # longest good step so the caller's checks (e.g. the infeasibility certificate) can run
    return good if np.isinf(hi) else None
