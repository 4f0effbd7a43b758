"""The lowered (operator-form) problem.

    minimize  Tr[H X] + c      subject to  X >= 0,  A(X) = q   (A(X)_i <= q_i on inequality rows),

with ``H`` Hermitian (``D x D``), ``A(X) = (Re Tr[Q_i X])_i`` a :class:`ConstraintOperator` with
``m`` rows, and ``q`` in ``R^m``. The user's objective is ``sense * (Tr[H X] + c)``: ``sense = -1``
records that a ``Maximize`` was negated. A problem object holds data and validates them; it does
not solve anything.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla

from .errors import InvalidInputError
from .hermitian import hermitian_defect, hermitian_part
from .operators import ConstraintOperator

__all__ = ["LoweredProblem"]


@dataclasses.dataclass(frozen=True, eq=False)
class LoweredProblem:
    """Operator form ``(H, A, q)`` of a trace-constrained SDP over one Hermitian matrix.

    Parameters
    ----------
    H : ndarray, shape (D, D)
        Hermitian cost (real symmetric when ``real``).
    A : ConstraintOperator
        The constraint map, ``m`` rows on ``Herm(D)``.
    q : ndarray, shape (m,)
        Right-hand side.
    offset : float
        Constant ``c`` of the (minimization) objective.
    sense : {1, -1}
        ``1`` for a ``Minimize``; ``-1`` when the user's ``Maximize`` was negated.
    real : bool
        The variable is real symmetric rather than complex Hermitian.
    row_labels : tuple of str, optional
        A name for each row (e.g. the CVXPY constraint it came from), used in messages.
    recovery : object, optional
        What the lowering needs to map results back to the source model (see
        :mod:`cvxqreg.lowering`); ``None`` for problems built by hand.
    inequality : array_like of bool, shape (m,), optional
        Rows that are inequalities ``A(X)_i <= q_i`` rather than equalities (``None``: none).
        Their multipliers are sign-constrained, ``alpha_i <= 0``: the dual
        ``max <alpha, q> s.t. A*(alpha) <= H, alpha_i <= 0 (i in I)`` is bound-constrained.
    blocks : tuple of int, optional
        Sizes of diagonal blocks when ``X = diag(X_1, ..., X_k)`` gathers several PSD variables:
        ``H`` and every ``Q_i`` are then block diagonal, and so is ``A*(alpha) - H``, which the
        dual oracle decomposes block by block. ``None``: one block.
    """

    H: np.ndarray
    A: ConstraintOperator
    q: np.ndarray
    offset: float = 0.0
    sense: int = 1
    real: bool = False
    row_labels: tuple[str, ...] | None = None
    recovery: Any = dataclasses.field(default=None, repr=False)
    inequality: Any = None
    blocks: tuple | None = None

    def __post_init__(self):
        if not isinstance(self.A, ConstraintOperator):
            raise InvalidInputError(
                f"A must be a ConstraintOperator (e.g. cvxqreg.operators.Dense), got "
                f"{type(self.A).__name__}"
            )
        H = np.asarray(self.H)
        if H.ndim != 2 or H.shape[0] != H.shape[1]:
            raise InvalidInputError(f"H must be a square matrix, got shape {H.shape}")
        if H.shape[0] != self.A.dim:
            raise InvalidInputError(
                f"H is {H.shape[0]}x{H.shape[0]} but the constraints act on "
                f"{self.A.dim}x{self.A.dim}"
                " matrices"
            )
        if not np.all(np.isfinite(H)):
            raise InvalidInputError("H contains NaN or inf")
        if self.real and np.iscomplexobj(H) and np.any(H.imag != 0):
            raise InvalidInputError("H must be real for a real symmetric variable")
        H = np.asarray(H, dtype=np.float64 if self.real else np.complex128)
        err = hermitian_defect(H)
        if err > 0 and err > 1e-10 * max(1.0, np.abs(H).max()):
            raise InvalidInputError(
                f"H is not Hermitian (max |H - H^*| = {err:.3e}); the objective Tr[H X] must be "
                "real on Hermitian X. Use (H + H^*)/2 if the skew part is a mistake."
            )
        H = hermitian_part(H, err)
        if np.may_share_memory(H, self.H):  # the problem owns its data: no caller's array
            H = H.copy()
        q = (
            np.array(self.q, dtype=np.float64).reshape(-1)  # (a copy: the problem owns it)
            if np.ndim(self.q)
            else np.asarray([self.q], dtype=np.float64)
        )
        if q.shape != (self.A.n_rows,):
            raise InvalidInputError(
                f"q has {q.size} entries but the operator has {self.A.n_rows} rows"
            )
        if not np.all(np.isfinite(q)):
            raise InvalidInputError("q contains NaN or inf")
        if not np.isfinite(self.offset):
            raise InvalidInputError("objective offset is NaN or inf")
        if self.sense not in (1, -1):
            raise InvalidInputError(f"sense must be 1 or -1, got {self.sense!r}")
        if self.row_labels is not None and len(self.row_labels) != q.size:
            raise InvalidInputError("row_labels must name every row")
        if self.blocks is not None:
            sizes = tuple(int(b) for b in self.blocks)
            if any(b < 1 for b in sizes) or sum(sizes) != self.A.dim:
                raise InvalidInputError(
                    f"blocks {sizes} must be positive sizes adding up to D = {self.A.dim}"
                )
            object.__setattr__(self, "blocks", sizes if len(sizes) > 1 else None)
        ineq = self.inequality
        if ineq is not None:
            ineq = np.asarray(ineq)
            if ineq.dtype != bool or ineq.shape != q.shape:
                raise InvalidInputError("inequality must be a boolean mask with one entry per row")
            ineq = ineq if ineq.any() else None
        object.__setattr__(self, "inequality", ineq)
        object.__setattr__(self, "H", H)
        object.__setattr__(self, "q", q)
        object.__setattr__(self, "offset", float(self.offset))

    # ------------------------------------------------------------------ derived
    @property
    def dim(self) -> int:
        """``D``, the size of the matrix variable."""
        return self.A.dim

    @property
    def n_rows(self) -> int:
        """``m``, the number of real constraint rows."""
        return self.A.n_rows

    @property
    def has_inequalities(self) -> bool:
        """Some rows are inequalities (their multipliers are sign-constrained)."""
        return self.inequality is not None

    def dual_upper_bounds(self) -> np.ndarray:
        """Upper bounds on ``alpha``: ``0`` on inequality rows, ``+inf`` on equality rows."""
        ub = np.full(self.n_rows, np.inf)
        if self.inequality is not None:
            ub[self.inequality] = 0.0
        return ub

    def project_dual(self, alpha) -> np.ndarray:
        """``alpha`` with its inequality entries clipped to ``<= 0`` (a dual-feasible sign)."""
        alpha = np.asarray(alpha, dtype=np.float64)
        if self.inequality is None:
            return alpha
        out = alpha.copy()
        out[self.inequality] = np.minimum(out[self.inequality], 0.0)
        return out

    def projected_gradient(self, alpha, grad) -> np.ndarray:
        """The projected gradient of the dual (maximization) at ``alpha``: ``grad`` on equality
        rows and on inequality rows with ``alpha_i < 0``; ``min(grad_i, 0)`` on inequality rows at
        the bound ``alpha_i = 0``. Its norm is the KKT residual: primal infeasibility plus the
        complementarity violation of the state, zero exactly at an optimum."""
        grad = np.asarray(grad, dtype=np.float64)
        if self.inequality is None:
            return grad
        alpha = np.asarray(alpha, dtype=np.float64)
        at_bound = self.inequality & (alpha >= 0.0)
        out = grad.copy()
        out[at_bound] = np.minimum(grad[at_bound], 0.0)
        return out

    def user_value(self, internal: float) -> float:
        """Map ``Tr[H X] + c`` (minimization form) to the user's objective value."""
        return self.sense * (internal + self.offset)

    @property
    def trace_direction(self) -> np.ndarray | None:
        """A vector ``c`` with ``A*(c) = I``, or ``None`` when the identity is not in the span.

        Only equality rows enter ``c`` (an inequality does not fix anything). When it exists the
        constraints fix the trace, ``Tr X = <c, q>``, and the dual can be
        maximized along ``c`` in closed form (docs/theory.md,
        'Eliminating the normalization multiplier').
        Found by LSQR on ``min ||A*(c) - I||_F`` using only ``apply``/``adjoint``.
        """
        return self._trace_solution[0]

    @property
    def trace_residual(self) -> float:
        """``||A*(c) - I||_F`` of :attr:`trace_direction` (enters the certified bound's margin)."""
        return self._trace_solution[1]

    @functools.cached_property
    def _trace_solution(self) -> tuple[np.ndarray | None, float]:
        op = self.A.to_backend("numpy")
        D, m = self.dim, self.n_rows
        if m == 0:
            return None, math.inf

        eq = None if self.inequality is None else ~self.inequality

        def rmatvec(v):
            out = op.apply(np.ascontiguousarray(v).view(np.complex128).reshape(D, D))
            return out if eq is None else out * eq

        def matvec(a):
            a = a if eq is None else a * eq
            return (
                np.ascontiguousarray(op.adjoint(a), dtype=np.complex128)
                .reshape(-1)
                .view(np.float64)
            )

        L = spla.LinearOperator((2 * D * D, m), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
        eye = np.eye(D, dtype=np.complex128).reshape(-1).view(np.float64)
        c = spla.lsqr(L, eye, atol=1e-14, btol=1e-14, iter_lim=max(100, 20 * m))[0]
        if eq is not None:
            c = c * eq
        resid = float(np.linalg.norm(matvec(c) - eye))
        if not resid <= 1e-8 * np.sqrt(D):  # also rejects NaN
            return None, resid
        return c, resid

    @functools.cached_property
    def row_stack(self) -> np.ndarray:
        """The rows ``Q_i`` as an ``(m, D, D)`` host array (real when :attr:`real`), built once from
        :meth:`~cvxqreg.operators.ConstraintOperator.matrix`: row ``i`` of that matrix acts on
        ``X.view(float)`` as ``Re Tr[Q_i X]``, so its pairs ``(Re, Im)`` are the entries of
        ``Q_i^T``'s real part and of ``-Im Q_i^T``, i.e. (``Q_i`` Hermitian) of ``Q_i`` itself."""
        D, m = self.dim, self.n_rows
        Qs = self.A.matrix().toarray().view(np.complex128).reshape(m, D, D)
        return np.ascontiguousarray(Qs.real) if self.real else Qs

    @functools.cached_property
    def _cost_spectrum(self) -> np.ndarray:
        return np.linalg.eigvalsh(self.H)

    @property
    def cost_spread(self) -> float:
        """``lambda_max(H) - lambda_min(H)``: the energy scale where eps stops mattering."""
        lam = self._cost_spectrum
        return float(lam[-1] - lam[0]) if lam.size else 0.0

    @property
    def cost_norm(self) -> float:
        """``||H||_2``."""
        lam = self._cost_spectrum
        return float(np.abs(lam).max()) if lam.size else 0.0

    @functools.cached_property
    def cost_frobenius(self) -> float:
        """``||H||_F`` (the bounds' ``|Tr[H Y]| <= ||H||_F ||Y||_F``)."""
        return float(np.linalg.norm(self.H))

    @property
    def cost_max(self) -> float:
        """``lambda_max(H)``."""
        lam = self._cost_spectrum
        return float(lam[-1]) if lam.size else 0.0

    @property
    def trace_value(self) -> float | None:
        """``Tr X`` implied by the constraints (``<c, q>``), or ``None`` if not fixed."""
        c = self.trace_direction
        return None if c is None else float(c @ self.q)

    def residual(self, X: np.ndarray) -> np.ndarray:
        """``A(X) - q`` on the host; on inequality rows only the violation ``max(A(X)_i - q_i,
        0)``."""
        op = self.A.to_backend("numpy")
        r = np.asarray(op.apply(np.asarray(X, dtype=np.complex128))) - self.q
        if self.inequality is not None:
            r[self.inequality] = np.maximum(r[self.inequality], 0.0)
        return r

    def objective(self, X: np.ndarray) -> float:
        """The user's objective ``sense * (Tr[H X] + c)`` at ``X``."""
        return self.user_value(float(np.real(np.vdot(self.H, X))))

    def describe(self) -> str:
        """One line: dimension, rows and the operator structure."""
        kind = "real symmetric" if self.real else "Hermitian"
        ineq = "" if self.inequality is None else f" ({int(self.inequality.sum())} inequalities)"
        return f"D={self.dim} ({kind}), m={self.n_rows} rows{ineq}, A = {self.A.describe()}"
