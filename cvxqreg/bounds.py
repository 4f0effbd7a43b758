"""Bounds on the exact (eps = 0) value from a regularized solve (docs/theory.md, 'Certified
bounds').

Work in minimization form. For a convex ``phi`` with ``phi(0)`` finite and states of fixed trace
``tau`` on ``C^D``, ``Tr[phi(X)]`` lies in

    [phi_min, phi_max] = [D phi(tau / D),  phi(tau) + (D - 1) phi(0)]

(the minimum at the maximally mixed state by Jensen, the maximum at a pure state, since a convex
function on the simplex peaks at a vertex). Comparing the two optimization problems gives

    F_eps - eps phi_max  <=  F_0  <=  F_eps - eps phi_min.

Von Neumann, unit trace: ``F_eps <= F_0 <= F_eps + eps log D``. Quadratic, unit trace:
``F_eps - eps/2 <= F_0 <= F_eps - eps/(2D)``. Because ``D_eps(alpha) <= F_eps`` for every alpha, the
left end computed from the *dual* value is a rigorous lower bound at any iterate. On the right,
any feasible state gives ``F_0 <= Tr[H X]``, and for the regularized optimum
``Tr[H X_eps] = F_eps - eps Tr[phi(X_eps)] <= F_eps - eps phi_min``: the energy is the sharper upper
end, valid as the residual of ``X_eps`` vanishes.
"""

from __future__ import annotations

import numpy as np

from .regularizers import Regularizer

__all__ = ["entropy_range", "regularization_bracket"]


def entropy_range(reg: Regularizer, tau: float, dim: int) -> tuple[float, float]:
    """``(min, max)`` of ``Tr[phi(X)]`` over ``X >= 0`` with ``Tr X = tau`` on ``C^dim``."""
    lo = dim * float(reg.phi(np.array([tau / dim]))[0])
    hi = float(reg.phi(np.array([tau]))[0]) + (dim - 1) * float(reg.phi(np.array([0.0]))[0])
    return lo, hi


def regularization_bracket(
    reg: Regularizer, eps: float, tau: float, dim: int, dual_value: float, energy: float
) -> tuple[float, float]:
    """``(D_eps(alpha) - eps phi_max, Tr[H X])``: a bracket on ``F_0`` (minimization form)."""
    _, hi = entropy_range(reg, tau, dim)
    return dual_value - eps * hi, energy
