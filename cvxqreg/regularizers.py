"""Spectral regularizers ``phi`` and their Legendre transforms ``psi = phi*``.

The regularized problem adds ``eps Tr[phi(X)]`` to ``Tr[H X]``; its dual needs

    psi(t)  = sup_{x >= 0} (t x - phi(x)),      psi'(t) = argmax,      psi''(t),

applied to the eigenvalues ``t = lambda / eps`` of ``(A*(alpha) - H) / eps`` (docs/theory.md,
'Regularizers').
Fenchel-Young: ``phi(x) + psi(t) >= t x`` with equality at ``x = psi'(t)``.

Normalization (docs/theory.md, 'Eliminating the normalization multiplier'): when the constraints
fix ``Tr X = tau``, the dual is maximized
over the shift ``u`` of all eigenvalues in closed form or by a scalar monotone solve of

    sum_j psi'(t_j + u) = tau,

which :meth:`Regularizer.normalizing_shift` implements (closed form for von Neumann, exact
sort-based solution for the quadratic regularizer, safeguarded Newton otherwise).

Every function takes and returns arrays of the caller's backend (``xp`` = NumPy or CuPy).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from .backend import array_module as _xp
from .backend import to_host
from .errors import InvalidInputError

__all__ = [
    "Custom",
    "Quadratic",
    "Regularizer",
    "Tsallis",
    "VonNeumann",
    "get_regularizer",
]


@dataclasses.dataclass(frozen=True)
class Regularizer:
    """A convex spectral function ``phi`` on ``[0, inf)`` with conjugate data.

    Subclasses implement :meth:`phi`, :meth:`psi`, :meth:`dpsi` (``psi'``) and, for second-order
    methods, :meth:`d2psi` (``psi''``; see :attr:`has_curvature`). ``name`` identifies the
    regularizer in results and tables.
    """

    name = "abstract"
    #: ``psi''`` jumps (``psi'`` is only piecewise smooth): Newton on the dual is semismooth
    #: and damps its steps once they stop making progress (cvxqreg.solvers.newton)
    semismooth = False
    #: ``psi'' = psi'``: the curvature along the trace direction is the state's own ``A(X)``
    #: (cvxqreg.solvers.dual, ``DualOracle._trace_curvature``)
    curvature_is_state = False
    #: ``c`` when ``psi'' = c`` wherever it is positive and ``psi'`` is constant where it is zero
    #: (``psi' = c max(t - t_0, 0) + b``): the Hessian products and the curvature along the
    #: trace direction may then work on the block without curvature (cvxqreg.solvers.dual,
    #: ``DualOracle._complement_product`` and ``_trace_curvature``); ``None`` otherwise
    support_curvature = None

    # -- the four functions ------------------------------------------------------------
    def phi(self, x):
        """``phi(x)`` for ``x >= 0``."""
        raise NotImplementedError

    def psi(self, t):
        """``psi(t) = phi*(t)``."""
        raise NotImplementedError

    def dpsi(self, t):
        """``psi'(t)``, the primal eigenvalue recovered from the dual eigenvalue ``t``."""
        raise NotImplementedError

    def d2psi(self, t):
        """``psi''(t)`` (used by second-order methods)."""
        raise NotImplementedError(f"regularizer {self.name!r} does not implement psi''")

    @property
    def has_curvature(self) -> bool:
        """Whether ``psi''`` is available: Newton, the Hessian and the divided differences need
        it; L-BFGS and the normalizing shift (bisection without it) do not."""
        return type(self).d2psi is not Regularizer.d2psi

    # -- derived ------------------------------------------------------------------------
    def divided_differences(self, t, s=None):
        """``G_jk = (psi'(t_j) - psi'(s_k)) / (t_j - s_k)``, ``psi''(t_j)`` where ``t_j = s_k``
        (Daleckii-Krein); ``s`` defaults to ``t`` (the square matrix), a subset of the eigenvalues
        gives the rows of the low-rank Hessian products.

        Close pairs (``|t_j - s_k| <= 1e-8 (1 + |t_j|)``) use the mean of ``psi''``.
        """
        xp = _xp(t)
        s = t if s is None else s
        dt = t[:, None] - s[None, :]
        dd = self.dpsi(t)[:, None] - self.dpsi(s)[None, :]
        close = xp.abs(dt) <= 1e-8 * (1.0 + xp.abs(t[:, None]))
        h = 0.5 * (self.d2psi(t)[:, None] + self.d2psi(s)[None, :])
        safe = xp.where(close, 1.0, dt)
        return xp.where(close, h, dd / safe)

    def negligible_cut(self, t_max: float, gap: float) -> float | None:
        """A level ``t_c`` below which the divided differences are negligible.

        For all ``t_j, t_k <= t_c``: ``0 <= G_jk <= e^(-gap) psi''(t_max)`` (``psi''(t_max)`` is
        the diagonal entry of ``G`` at the top eigenvalue), or ``G_jk = 0`` exactly. The low-rank
        Hessian products (docs/theory.md, 'Low-rank Hessian products') drop that block. ``None``
        when no such level is known (the full product is then used).
        """
        return None

    def normalizing_shift(self, t, total: float):
        """The shift ``u`` with ``sum_j psi'(t_j + u) = total`` (``total > 0``).

        Accurate to rounding when ``t`` is centred (``max t = 0``), as the dual oracle passes it:
        then ``t + u`` is small for the entries that carry weight.

        Generic version: bracket, then Newton steps safeguarded by bisection, on the host
        (``O(D)`` per step). Returns a Python float.
        """
        th = np.asarray(to_host(t), dtype=np.float64)
        curved = self.has_curvature

        def g(u):
            return float(np.sum(self.dpsi(th + u))) - total

        top = float(th.max())
        # hi: raise until g(hi) >= 0 ; lo: lower until g(lo) <= 0
        step = 1.0
        hi = -top
        while g(hi) < 0:
            hi += step
            step *= 2.0
            if step > 1e300:
                raise InvalidInputError(f"{self.name}: psi' never reaches the trace {total}")
        lo, step = -top, 1.0
        while g(lo) > 0:
            lo -= step
            step *= 2.0
            if step > 1e300:
                raise InvalidInputError(f"{self.name}: psi' is bounded below by the trace {total}")
        u = 0.5 * (lo + hi)
        for _ in range(200):
            val = g(u)
            if val > 0:
                hi = u
            else:
                lo = u
            deriv = float(np.sum(self.d2psi(th + u))) if curved else 0.0
            u_new = u - val / deriv if deriv > 0 else 0.5 * (lo + hi)
            if not lo < u_new < hi:
                u_new = 0.5 * (lo + hi)
            if abs(u_new - u) <= 4e-16 * max(1.0, abs(u)) or hi - lo <= 4e-16 * max(1.0, abs(u)):
                return u_new
            u = u_new
        return u


@dataclasses.dataclass(frozen=True)
class VonNeumann(Regularizer):
    """Von Neumann entropy ``phi(x) = x log x``; ``psi(t) = psi'(t) = psi''(t) = exp(t - 1)``.

    With the trace fixed to ``tau`` the normalized state is ``tau softmax(t)``: the shift is
    ``u = 1 + log tau - logsumexp(t)`` (no overflow at any ``eps``).
    """

    name = "von_neumann"
    curvature_is_state = True

    def phi(self, x):
        xp = _xp(x)
        safe = xp.where(x > 0, x, 1.0)
        return xp.where(x > 0, x * xp.log(safe), 0.0)

    def psi(self, t):
        return _xp(t).exp(t - 1.0)

    def dpsi(self, t):
        return _xp(t).exp(t - 1.0)

    def d2psi(self, t):
        return _xp(t).exp(t - 1.0)

    def divided_differences(self, t, s=None):
        """The divided difference of ``exp(. - 1)`` without cancellation or overflow:

            G_jk = e^(max(t_j, s_k) - 1) (1 - e^(-d)) / d,   d = |t_j - s_k|,

        with ``-expm1(-d) / d`` in ``(0, 1]`` accurate to rounding for every gap (``d`` is floored
        at ``1e-300``, where ``expm1`` is exact, so ``G_jj = e^(t_j - 1)``), and the exponential
        of the larger argument taken per vector (``D`` exponentials, not ``D^2``)."""
        xp = _xp(t)
        s = t if s is None else s
        d = xp.abs(t[:, None] - s[None, :])
        xp.maximum(d, 1e-300, out=d)
        xp.negative(d, out=d)
        ratio = xp.expm1(d)
        ratio /= d
        ratio *= xp.maximum(xp.exp(t - 1.0)[:, None], xp.exp(s - 1.0)[None, :])
        return ratio

    def negligible_cut(self, t_max: float, gap: float) -> float:
        """``t_max - gap``: ``psi'' = exp(. - 1)`` increases, and a divided difference equals
        ``psi''`` at a point between its two arguments (mean value theorem), so
        ``G_jk <= e^(t_c - 1) = e^(-gap) psi''(t_max)`` below the cut."""
        return float(t_max) - gap

    def normalizing_shift(self, t, total: float):
        xp = _xp(t)
        tmax = xp.max(t)
        lse = tmax + xp.log(xp.sum(xp.exp(t - tmax)))
        return float(1.0 + math.log(total) - lse)


@dataclasses.dataclass(frozen=True)
class Quadratic(Regularizer):
    """Quadratic ``phi(x) = x^2 / 2``; ``psi(t) = max(t, 0)^2 / 2``, ``psi'(t) = max(t, 0)``,
    ``psi''(t) = 1[t > 0]``.

    The normalizing shift solves ``sum_j max(t_j + u, 0) = tau`` exactly (the Euclidean projection
    onto the scaled simplex) by sorting: ``O(D log D)``.
    """

    name = "quadratic"
    semismooth = True
    support_curvature = 1.0

    def phi(self, x):
        return 0.5 * x * x

    def psi(self, t):
        p = _xp(t).maximum(t, 0.0)
        return 0.5 * p * p

    def dpsi(self, t):
        return _xp(t).maximum(t, 0.0)

    def d2psi(self, t):
        return (t > 0).astype(t.dtype)

    def negligible_cut(self, t_max: float, gap: float) -> float:
        """``0``: ``psi' = max(t, 0)`` vanishes on ``t <= 0``, so ``G_jk = 0`` exactly there."""
        return 0.0

    def normalizing_shift(self, t, total: float):
        xp = _xp(t)
        s = xp.sort(t)[::-1]
        k = xp.arange(1, s.size + 1, dtype=s.dtype)
        u_k = (total - xp.cumsum(s)) / k  # shift if the top k entries are the active ones
        active = s + u_k > 0
        kstar = int(xp.max(xp.nonzero(active)[0])) if bool(xp.any(active)) else 0
        return float(u_k[kstar])


@dataclasses.dataclass(frozen=True)
class Tsallis(Regularizer):
    """Tsallis entropy of order ``q > 1``: ``phi(x) = (x^q - x) / (q - 1)``.

    ``psi'(t) = (max((q - 1) t + 1, 0) / q)^(1 / (q - 1))``, ``psi(t) = t x - phi(x)`` at
    ``x = psi'(t)``; as ``q -> 1`` it tends to von Neumann.
    """

    order: float = 2.0

    def __post_init__(self):
        if not (np.isfinite(self.order) and self.order > 1.0):
            raise InvalidInputError(f"Tsallis order must be a finite number > 1, got {self.order}")

    @property
    def name(self) -> str:
        return f"tsallis(q={self.order:g})"

    @property
    def support_curvature(self) -> float | None:
        """``1/2`` at ``q = 2``, where ``psi'(t) = max(t + 1, 0) / 2``; ``None`` otherwise."""
        return 0.5 if self.order == 2.0 else None

    def phi(self, x):
        q = self.order
        return (x**q - x) / (q - 1.0)

    def dpsi(self, t):
        q = self.order
        base = _xp(t).maximum((q - 1.0) * t + 1.0, 0.0) / q
        return base ** (1.0 / (q - 1.0))

    def psi(self, t):
        x = self.dpsi(t)
        return t * x - self.phi(x)

    def negligible_cut(self, t_max: float, gap: float) -> float:
        """The edge ``-1/(q-1)`` of the support of ``psi'`` (``G_jk = 0`` below it exactly); for
        ``q < 2``, where ``psi''(t) = b(t)^((2-q)/(q-1)) / q`` with ``b(t) = ((q-1) t + 1)/q``
        increases, also the level where ``psi''`` is ``e^(-gap) psi''(t_max)`` (mean value
        theorem, as for von Neumann), whichever is higher."""
        q = self.order
        edge = -1.0 / (q - 1.0)
        b_max = ((q - 1.0) * float(t_max) + 1.0) / q
        if q >= 2.0 or b_max <= 0.0:
            return edge
        b_cut = b_max * math.exp(-gap * (q - 1.0) / (2.0 - q))
        return max(edge, (q * b_cut - 1.0) / (q - 1.0))

    def d2psi(self, t):
        q = self.order
        xp = _xp(t)
        base = xp.maximum((q - 1.0) * t + 1.0, 0.0) / q
        expo = 1.0 / (q - 1.0) - 1.0
        safe = xp.where(base > 0, base, 1.0)
        return xp.where(base > 0, safe**expo / q, 0.0)


@dataclasses.dataclass(frozen=True)
class Custom(Regularizer):
    """A user-defined regularizer from its functions.

    Parameters
    ----------
    phi_fn, psi_fn, dpsi_fn : callable
        ``phi(x)``, ``psi(t) = phi*(t)``, ``psi'(t)``, each taking and returning arrays
        (use ``numpy``-compatible operations; they receive CuPy arrays on a GPU).
    d2psi_fn : callable, optional
        ``psi''(t)``; needed only by second-order methods. Without it :attr:`has_curvature` is
        False: :class:`~cvxqreg.DualSolver` uses L-BFGS instead of Newton, the normalizing shift
        is found by bisection, and asking for ``psi''`` (:meth:`d2psi`, the divided differences,
        a Hessian) raises :class:`~cvxqreg.errors.InvalidInputError`.
    label : str
        The name shown in results.
    """

    phi_fn: Callable | None = None
    psi_fn: Callable | None = None
    dpsi_fn: Callable | None = None
    d2psi_fn: Callable | None = None
    label: str = "custom"

    def __post_init__(self):
        for f in ("phi_fn", "psi_fn", "dpsi_fn"):
            if not callable(getattr(self, f)):
                raise InvalidInputError(f"Custom regularizer needs a callable {f[:-3]}")

    @property
    def name(self) -> str:
        return self.label

    def phi(self, x):
        return self.phi_fn(x)

    def psi(self, t):
        return self.psi_fn(t)

    def dpsi(self, t):
        return self.dpsi_fn(t)

    @property
    def has_curvature(self) -> bool:
        return self.d2psi_fn is not None

    def d2psi(self, t):
        if self.d2psi_fn is None:
            raise InvalidInputError(
                f"the Custom regularizer {self.label!r} has no psi'' (d2psi_fn), which "
                "second-order methods (Newton, Hessians) need: pass d2psi_fn, or solve with "
                "optimizer='lbfgs'"
            )
        return self.d2psi_fn(t)


_BY_NAME = {
    "von_neumann": VonNeumann,
    "vn": VonNeumann,
    "entropy": VonNeumann,
    "quadratic": Quadratic,
    "tsallis": Tsallis,
}


def get_regularizer(reg: str | Regularizer, **options) -> Regularizer:
    """Resolve a regularizer by name (``"von_neumann"``, ``"quadratic"``, ``"tsallis"``) or pass
    through a :class:`Regularizer` instance. ``options`` go to the constructor (e.g. ``order=1.5``
    for Tsallis); a name such as ``"tsallis:1.5"`` also sets the order."""
    if isinstance(reg, Regularizer):
        if options:
            raise InvalidInputError("regularizer options apply only to a regularizer given by name")
        return reg
    if not isinstance(reg, str):
        raise InvalidInputError(
            f"regularizer must be a name {sorted(set(_BY_NAME))} or a Regularizer, got {reg!r}"
        )
    key, _, arg = reg.strip().lower().partition(":")
    if key not in _BY_NAME:
        raise InvalidInputError(
            f"unknown regularizer {reg!r}; choose one of 'von_neumann', 'quadratic', 'tsallis' "
            "(e.g. 'tsallis:1.5'), or pass a cvxqreg.regularizers.Custom"
        )
    if arg:
        try:
            options.setdefault("order", float(arg))
        except ValueError:
            raise InvalidInputError(f"cannot read the order in {reg!r}") from None
    try:
        return _BY_NAME[key](**options)
    except TypeError as exc:
        raise InvalidInputError(f"bad options for regularizer {key!r}: {exc}") from None
