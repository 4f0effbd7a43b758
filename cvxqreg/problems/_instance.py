"""The :class:`Instance` container and the argument checks shared by the generators.

Every generator builds the same kind of CVXPY model,

    minimize  Re Tr[H X]   subject to   X >> 0,   affine equalities on X,

with one Hermitian variable ``X`` (``cp.Variable((D, D), hermitian=True)``), and returns it together
with the numerical data it was built from. This module depends only on NumPy and CVXPY (and on
:mod:`cvxqreg.errors` for the exception type).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from cvxqreg.errors import InvalidInputError

__all__ = ["Instance"]


@dataclass(frozen=True, eq=False, repr=False)
class Instance:
    r"""A reference SDP over density matrices, as a CVXPY problem plus its data.

    The problem is :math:`\min \{\operatorname{Re}\operatorname{Tr}[H X] : X \succeq 0,\
    \text{affine equalities}\}` over Hermitian :math:`D \times D` matrices ``X``.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"QT1(n_qubits=3, M=16, seed=0)"`` or ``"QWD(n_levels=10)"``.
    problem : cvxpy.Problem
        ``Minimize(real(trace(H @ X)))`` subject to ``X >> 0`` and the equality constraints, written
        as a user would write them (``cp.trace(X) == 1``, ``cp.real(cp.trace(P @ X)) == q``,
        ``cp.partial_trace(X, [n, n], axis=1) == rho``, ...).
    X : cvxpy.Variable
        The ``(D, D)`` variable, declared with ``hermitian=True``.
    H : numpy.ndarray
        The ``(D, D)`` Hermitian cost. Every generator in this package produces a real symmetric
        ``float64`` cost (tomography: ``H = 0``).
    dim : int
        ``D``, the side of ``X``.
    n_constraints : int
        Number of real scalar equality rows. A scalar equality counts 1 (``trace(X) == 1`` counts 1
        although CVXPY also emits its identically-zero imaginary part); a Hermitian ``n x n`` matrix
        equality counts ``n^2`` (``n`` real diagonal entries, ``n(n-1)/2`` real parts and
        ``n(n-1)/2`` imaginary parts above the diagonal), as in [CGMPP, section 6.2] where the two
        marginals of a coupling give ``M = 2 n^2``. Redundant rows are counted (the two marginal
        constraints both fix the trace, so their ``2 n^2`` rows have rank ``2 n^2 - 1``).
    metadata : dict
        Everything the instance was generated from: parameters, the generating state or the
        marginals, observables, and known bounds. Keys are documented per generator.
    reference_value : float or None
        The optimal value of ``problem`` in closed form when it is known, else ``None``.

    Notes
    -----
    The arrays are shared, not copied: treat ``H`` and the arrays in ``metadata`` as read-only.
    """

    name: str
    problem: cp.Problem
    X: cp.Variable
    H: np.ndarray
    dim: int
    n_constraints: int
    metadata: dict[str, Any] = field(default_factory=dict)
    reference_value: float | None = None

    def __repr__(self) -> str:
        ref = "None" if self.reference_value is None else f"{self.reference_value:.12g}"
        return (
            f"Instance(name={self.name!r}, dim={self.dim}, n_constraints={self.n_constraints}, "
            f"reference_value={ref})"
        )


# ----------------------------------------------------------------------------------------------
# argument checks (messages name the argument and say what to pass instead)


def _check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int in ``[low, high]``; bools and non-integral numbers are rejected."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__}); pass e.g. "
            f"{name}={low if low is not None else 1}"
        )
    v = int(value)
    if low is not None and v < low:
        raise InvalidInputError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise InvalidInputError(f"{name} must be <= {high}, got {v}")
    return v


def _check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite Python float in the given (open or closed) interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"{name} must be a real number, got {value!r} ({type(value).__name__})"
        )
    v = float(value)
    if not np.isfinite(v):
        raise InvalidInputError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        op = ">" if low_open else ">="
        raise InvalidInputError(f"{name} must be {op} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        op = "<" if high_open else "<="
        raise InvalidInputError(f"{name} must be {op} {high}, got {v}")
    return v


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Case-insensitive choice among ``choices``; returns the canonical spelling."""
    if isinstance(value, str):
        for c in choices:
            if value.strip().lower() == c.lower():
                return c
    raise InvalidInputError(
        f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
    )


# ----------------------------------------------------------------------------------------------
# model builders shared by the optimal-transport generators


def _qot_problem(
    H: np.ndarray, rho: np.ndarray, sigma: np.ndarray
) -> tuple[cp.Problem, cp.Variable, int]:
    r"""The coupling problem :math:`\min\{\operatorname{Tr}[H X] : X \succeq 0,\
    \operatorname{Tr}_2 X = \rho,\ \operatorname{Tr}_1 X = \sigma\}` on
    :math:`\mathbb{C}^{n_1} \otimes \mathbb{C}^{n_2}`.

    ``Tr_2`` traces out the second factor (``cp.partial_trace(X, [n1, n2], axis=1)``), so the first
    marginal lives on the first factor. Returns ``(problem, X, n_constraints)`` with
    ``n_constraints = n1^2 + n2^2`` (one trace row is redundant).
    """
    n1, n2 = rho.shape[0], sigma.shape[0]
    D = n1 * n2
    X = cp.Variable((D, D), hermitian=True, name="X")
    constraints = [
        X >> 0,
        cp.partial_trace(X, [n1, n2], axis=1) == rho,
        cp.partial_trace(X, [n1, n2], axis=0) == sigma,
    ]
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), constraints)
    return problem, X, n1 * n1 + n2 * n2
