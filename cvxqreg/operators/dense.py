"""General constraints stored as a matrix of rows.

    A(X)_i = Re Tr[Q_i X] = <Re Q_i, Re X> + <Im Q_i, Im X>,

so with ``M`` the ``(m, 2 D^2)`` real matrix whose row ``i`` is ``Q_i`` viewed as interleaved
(real, imaginary) pairs, ``A(X) = M @ view(X)`` and ``A*(a) = view^{-1}(M^T a)``: one matrix-vector
product each. ``M`` is kept sparse when the ``Q_i`` are sparse (traces, single entries) and dense
otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..backend import Backend
from ..errors import InvalidInputError
from .base import ConstraintOperator, _resolve

__all__ = ["Dense"]

#: above this fill fraction the row matrix is stored dense
_DENSE_FILL = 0.15


class Dense(ConstraintOperator):
    """Constraint operator from explicit Hermitian matrices ``Q_i``.

    Parameters
    ----------
    rows : array_like or scipy.sparse matrix
        Either a ``(m, D, D)`` array of Hermitian matrices, or a ``(m, 2 D^2)`` real matrix in the
        interleaved layout described in the module docstring (dense or sparse).
    dim : int, optional
        ``D``; required when ``rows`` is given in the interleaved layout.
    check_hermitian : bool
        Verify that each ``Q_i`` is Hermitian (relative tolerance 1e-10).
    backend : Backend or str, optional
        Where to store the data (default NumPy).
    """

    structure = "dense"

    def __init__(
        self,
        rows: Any,
        dim: int | None = None,
        *,
        check_hermitian: bool = True,
        backend: Backend | str | None = None,
    ):
        if sp.issparse(rows) or (np.ndim(rows) == 2 and dim is not None):
            M = sp.csr_matrix(rows, dtype=np.float64)
            if not np.all(np.isfinite(M.data)):
                raise InvalidInputError("constraint rows contain NaN or inf")
            if dim is None or M.shape[1] != 2 * dim * dim:
                raise InvalidInputError(
                    f"interleaved row matrix must have 2*D^2 columns with dim=D given; got shape "
                    f"{M.shape} and dim={dim}"
                )
        else:
            Q = np.asarray(rows)
            if Q.ndim == 2:
                Q = Q[None]
            if Q.ndim != 3 or Q.shape[1] != Q.shape[2]:
                raise InvalidInputError(
                    f"Dense expects a (m, D, D) stack of matrices, got shape {Q.shape}"
                )
            if not np.all(np.isfinite(Q)):
                raise InvalidInputError("constraint matrices contain NaN or inf")
            dim = Q.shape[1]
            Q = np.ascontiguousarray(Q, dtype=np.complex128)
            M = sp.csr_matrix(Q.reshape(Q.shape[0], -1).view(np.float64))
        self.dim = int(dim)
        self.n_rows = int(M.shape[0])
        M.eliminate_zeros()
        if check_hermitian and self.n_rows:
            _check_rows_hermitian(M, self.dim)
        self._host = M
        self.backend = _resolve(backend)
        fill = M.nnz / max(1, M.shape[0] * M.shape[1])
        self.sparse_storage = fill <= _DENSE_FILL
        self._M = (
            self.backend.sparse(M) if self.sparse_storage else self.backend.asarray(M.toarray())
        )
        self._MT = self._M.T.tocsr() if self.sparse_storage else self._M.T

    def apply(self, X):
        xp = self.backend.xp
        Xc = xp.ascontiguousarray(X, dtype=xp.complex128)
        return self._M @ Xc.reshape(-1).view(xp.float64)

    def adjoint(self, alpha):
        xp = self.backend.xp
        v = self._MT @ xp.asarray(alpha, dtype=xp.float64)
        return xp.ascontiguousarray(v).view(xp.complex128).reshape(self.dim, self.dim)

    def to_backend(self, backend):
        be = _resolve(backend)
        if be == self.backend:
            return self
        return Dense(self._host, self.dim, check_hermitian=False, backend=be)

    def matrix(self):
        return self._host

    def describe(self) -> str:
        kind = "sparse" if self.sparse_storage else "dense"
        return f"Dense({self.n_rows} rows, {kind} storage, nnz={self._host.nnz})"


def _check_rows_hermitian(M: sp.csr_matrix, D: int, rtol: float = 1e-10) -> None:
    """Raise if some row of the interleaved matrix is not a Hermitian ``Q_i``."""
    # view(complex) of the row space: build the transpose-conjugate permutation on the fly
    m = M.shape[0]
    idx = np.arange(D * D).reshape(D, D)
    perm_c = idx.T.reshape(-1)  # entry (j,k) -> (k,j)
    re = M[:, 0::2]
    im = M[:, 1::2]
    dre = re - re[:, perm_c]
    dim_ = im + im[:, perm_c]
    err = np.sqrt(
        np.asarray(dre.multiply(dre).sum(axis=1)).ravel()
        + np.asarray(dim_.multiply(dim_).sum(axis=1)).ravel()
    )
    scale = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    bad = np.flatnonzero(err > rtol * np.maximum(scale, 1e-300))
    if bad.size:
        raise InvalidInputError(
            f"constraint matrix Q_{bad[0]} is not Hermitian (||Q - Q^H|| = {err[bad[0]]:.3e}, "
            f"{bad.size} of {m} rows affected); constraints must be real-valued on Hermitian X"
        )
