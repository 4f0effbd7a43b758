"""Your own regularizer: the Fermi-Dirac entropy as a :class:`cvxqreg.regularizers.Custom`.

A regularizer is a convex ``phi`` on ``[0, inf)`` together with its Legendre transform
``psi(t) = sup_x (t x - phi(x))`` and the derivatives ``psi'`` (the primal eigenvalue recovered from
a dual eigenvalue) and ``psi''`` (for Newton-CG and the normalizing shift).
This script builds the Fermi-Dirac (binary) entropy

    phi(x) = x log x + (1 - x) log(1 - x)   on [0, 1]   (+inf for x > 1),
    psi(t) = log(1 + e^t),   psi'(t) = 1 / (1 + e^-t),   psi''(t) = psi'(t) (1 - psi'(t)),

whose optimal states ``psi'((A*(alpha) - H) / eps)`` are Fermi-Dirac occupations: every eigenvalue
lies in ``(0, 1)``, as for the one-body density matrix of free fermions.

What it does and prints:

1. Fenchel-Young checks: the largest ``t x - phi(x) - psi(t)`` over 100000 random pairs
   ``x in [0, 1]``, ``t in [-30, 30]`` (must be ``<= 0``: ``phi(x) + psi(t) >= t x``), the largest
   ``|phi(x) + psi(t) - t x|`` at ``x = psi'(t)`` on a grid of ``t`` (the equality case, ~1e-15),
   and the largest central finite-difference errors of ``psi'`` and ``psi''`` (~1e-9);
2. one regularized solve of the two-point transport problem ``a = 1, b = 2`` (exact value
   ``(a - b)^2 = 1``) with the custom regularizer, next to von Neumann at the same eps: the
   results' ``summary()``;
3. a sweep over eps (``cvxqreg.sweep`` with ``[fermi_dirac, "von_neumann"]``): the table,
   showing ``F_eps -> F_0`` for the new regularizer too.

``main`` returns ``{"fenchel_young": {...}, "solve": RegularizedResult, "sweep": SweepResult}``.

Run ``python examples/custom_regularizer.py`` or ``--small`` (two eps values).
"""

from __future__ import annotations

import argparse

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import array_module as _xp  # NumPy, or CuPy on a GPU backend
from cvxqreg.regularizers import Custom

EPS = (1.0, 1e-1, 1e-2, 1e-3)


def fd_phi(x):
    """``x log x + (1 - x) log(1 - x)`` on ``[0, 1]`` (0 log 0 = 0), ``+inf`` above 1."""
    xp = _xp(x)
    inside = (x > 0) & (x < 1)
    y = xp.where(inside, x, 0.5)
    val = y * xp.log(y) + (1 - y) * xp.log1p(-y)
    return xp.where(inside, val, xp.where((x == 0) | (x == 1), 0.0, xp.inf))


def fd_psi(t):
    """``log(1 + e^t)``, computed without overflow."""
    return _xp(t).logaddexp(0.0, t)


def fd_dpsi(t):
    """``1 / (1 + e^-t)``, the logistic function (no overflow for either sign)."""
    xp = _xp(t)
    e = xp.exp(-xp.abs(t))
    return xp.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def fd_d2psi(t):
    """``psi'(t) (1 - psi'(t))``."""
    s = fd_dpsi(t)
    return s * (1.0 - s)


FERMI_DIRAC = Custom(
    phi_fn=fd_phi, psi_fn=fd_psi, dpsi_fn=fd_dpsi, d2psi_fn=fd_d2psi, label="fermi_dirac"
)


def check_fenchel_young(reg, seed: int = 0) -> dict:
    """Numerical checks of the conjugate pair (see the module docstring, item 1)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-30.0, 30.0, 2001)
    x = reg.dpsi(t)
    equality = float(np.max(np.abs(reg.phi(x) + reg.psi(t) - t * x)))
    xs = rng.uniform(0.0, 1.0, 100_000)
    ts = rng.uniform(-30.0, 30.0, 100_000)
    violation = float(np.max(ts * xs - reg.phi(xs) - reg.psi(ts)))  # <= 0 by Fenchel-Young
    h = 1e-6
    dpsi_err = float(np.max(np.abs((reg.psi(t + h) - reg.psi(t - h)) / (2 * h) - reg.dpsi(t))))
    d2psi_err = float(np.max(np.abs((reg.dpsi(t + h) - reg.dpsi(t - h)) / (2 * h) - reg.d2psi(t))))
    return {
        "equality": equality,
        "violation": violation,
        "dpsi_error": dpsi_err,
        "d2psi_error": d2psi_err,
    }


def main(argv=None) -> dict:
    """Check the pair, solve with it and sweep it; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eps", type=float, nargs="+", default=None)
    ap.add_argument("--small", action="store_true", help="two eps values")
    args = ap.parse_args(argv)
    eps_values = args.eps or ([1e-1, 1e-2] if args.small else list(EPS))

    fy = check_fenchel_young(FERMI_DIRAC)
    print("Fermi-Dirac pair: phi(x) = x log x + (1-x) log(1-x), psi(t) = log(1 + e^t)")
    print(
        "  Fenchel-Young on 100000 random pairs: max (t x - phi(x) - psi(t)) = "
        f"{fy['violation']:.1e} (must be <= 0)"
    )
    print(f"  equality at x = psi'(t): max |phi(x) + psi(t) - t x| = {fy['equality']:.1e}")
    print(
        f"  finite differences: psi' error {fy['dpsi_error']:.1e}, psi'' error "
        f"{fy['d2psi_error']:.1e}"
    )

    inst = problems.two_point(1.0, 2.0)
    lowered = cvxqreg.lower(inst.problem)
    eps = min(eps_values)
    print(f"\nTwo-point transport a = 1, b = 2 (F_0 = {inst.reference_value:g}) at eps = {eps:g}:")
    res = cvxqreg.solve(lowered, eps, FERMI_DIRAC, backend="numpy")
    print(res.summary())
    print(cvxqreg.solve(lowered, eps, "von_neumann", backend="numpy").summary())

    print("\nSweep:")
    table = cvxqreg.sweep(
        lowered, eps=eps_values, regularizers=[FERMI_DIRAC, "von_neumann"], backend="numpy"
    )
    print(table)
    return {"fenchel_young": fy, "solve": res, "sweep": table}


if __name__ == "__main__":
    main()
