"""Compositions of constraint operators.

``Stacked([A_1, ..., A_k])`` stacks the rows: ``A(X) = (A_1(X), ..., A_k(X))`` and
``A*(a) = sum_j A_j*(a_j)`` for the matching slices ``a_j`` of ``a``.
``Selected(A, rows)`` keeps a subset of rows: ``A_S(X) = A(X)[S]``, ``A_S*(a) = A*(E_S a)`` with
``E_S`` the zero-padding embedding. Both add O(m) work to their parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..backend import Backend
from ..errors import InvalidInputError
from .base import ConstraintOperator, _resolve

__all__ = ["Selected", "Stacked"]


class Stacked(ConstraintOperator):
    """Row-wise stack of operators on the same ``Herm(D)``."""

    structure = "stacked"

    def __init__(
        self, parts: Sequence[ConstraintOperator], *, backend: Backend | str | None = None
    ):
        parts = list(parts)
        if not parts:
            raise InvalidInputError("Stacked needs at least one operator")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise InvalidInputError(f"stacked operators act on different dimensions {sorted(dims)}")
        self.backend = _resolve(backend if backend is not None else parts[0].backend)
        self.parts = tuple(p.to_backend(self.backend) for p in parts)
        self.dim = dims.pop()
        self.offsets = tuple(int(o) for o in np.cumsum([0] + [p.n_rows for p in self.parts]))
        self.n_rows = self.offsets[-1]

    def split_rows(self, rows=None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per part ``k``, ``(pos, local)``: the positions in ``rows`` (row indices of the
        stack; default all of them) that fall in part ``k``, and their indices within it."""
        rows = np.arange(self.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        out = []
        for k in range(len(self.parts)):
            pos = np.flatnonzero((rows >= self.offsets[k]) & (rows < self.offsets[k + 1]))
            out.append((pos, rows[pos] - self.offsets[k]))
        return out

    def apply(self, X):
        xp = self.backend.xp
        return xp.concatenate([p.apply(X) for p in self.parts])

    @property
    def spectral_native(self) -> bool:
        return all(p.spectral_native for p in self.parts)

    def apply_spectral(self, V):
        """Each part from the factor; ``X = V V^*`` is formed once, only if some part needs it."""
        xp = self.backend.xp
        X = None
        out = []
        for p in self.parts:
            if p.spectral_native:
                out.append(p.apply_spectral(V))
            else:
                if X is None:
                    X = self.backend.outer(V)
                out.append(p.apply(X))
        return xp.concatenate(out)

    def _sum_parts(self, alpha, term):
        """``sum_p term(A_p, alpha_p)`` over the parts and their slices of ``alpha``."""
        xp = self.backend.xp
        alpha = xp.asarray(alpha, dtype=xp.float64)
        out = None
        for p, lo, hi in zip(self.parts, self.offsets[:-1], self.offsets[1:], strict=True):
            t = term(p, alpha[lo:hi])
            out = t if out is None else out + t
        return out

    def adjoint(self, alpha):
        return self._sum_parts(alpha, lambda p, a: p.adjoint(a))

    def adjoint_real(self, alpha):
        return self._sum_parts(alpha, lambda p, a: p.adjoint_real(a))

    def adjoint_times(self, alpha, V, real=False):
        """``sum_p A_p*(alpha_p) V``, each part in its own structure."""
        if real:
            return self._sum_parts(alpha, lambda p, a: p.adjoint_times(a, V, real=True))
        return self._sum_parts(alpha, lambda p, a: p.adjoint_times(a, V))

    def apply_sym_product(self, L, R):
        """Each part from the factors; the ``D x D`` sum is formed once, only if some part
        needs it."""
        xp = self.backend.xp
        S = None
        out = []
        for p in self.parts:
            if p.spectral_native:
                out.append(p.apply_sym_product(L, R))
            else:
                if S is None:
                    M = L @ R.conj().T
                    S = M + M.conj().T
                out.append(p.apply(S))
        return xp.concatenate(out)

    def to_backend(self, backend):
        be = _resolve(backend)
        return self if be == self.backend else Stacked(self.parts, backend=be)

    def matrix(self):
        import scipy.sparse as sp

        return sp.vstack([p.matrix() for p in self.parts], format="csr")

    def describe(self) -> str:
        return "Stacked[" + ", ".join(p.describe() for p in self.parts) + "]"


class Selected(ConstraintOperator):
    """The rows ``rows`` of another operator (used to keep an independent subset)."""

    structure = "selected"

    def __init__(
        self, base: ConstraintOperator, rows: Sequence[int], *, backend: Backend | str | None = None
    ):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= base.n_rows)):
            raise InvalidInputError("Selected rows must be a 1-D list of valid row indices")
        self.backend = _resolve(backend if backend is not None else base.backend)
        self.base = base.to_backend(self.backend)
        self.rows = rows
        self._rows_d = self.backend.asarray(rows)
        self.dim = base.dim
        self.n_rows = int(rows.size)

    def apply(self, X):
        return self.base.apply(X)[self._rows_d]

    @property
    def spectral_native(self) -> bool:
        return self.base.spectral_native

    def apply_spectral(self, V):
        return self.base.apply_spectral(V)[self._rows_d]

    def adjoint(self, alpha):
        return self.base.adjoint(self._embed(alpha))

    def _embed(self, alpha):
        xp = self.backend.xp
        full = xp.zeros(self.base.n_rows, dtype=xp.float64)
        full[self._rows_d] = xp.asarray(alpha, dtype=xp.float64)
        return full

    def adjoint_real(self, alpha):
        return self.base.adjoint_real(self._embed(alpha))

    def adjoint_times(self, alpha, V, real=False):
        a = self._embed(alpha)
        return self.base.adjoint_times(a, V, real=True) if real else self.base.adjoint_times(a, V)

    def apply_sym_product(self, L, R):
        return self.base.apply_sym_product(L, R)[self._rows_d]

    def to_backend(self, backend):
        be = _resolve(backend)
        return self if be == self.backend else Selected(self.base, self.rows, backend=be)

    def matrix(self):
        return self.base.matrix()[self.rows]

    def describe(self) -> str:
        return f"Selected({self.n_rows} of {self.base.n_rows} rows of {self.base.describe()})"
