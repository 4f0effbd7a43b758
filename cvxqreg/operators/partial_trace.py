"""Marginal (partial-trace) constraints.

For ``X`` on ``C^{d_1} (x) ... (x) C^{d_k}`` and a traced-out subsystem ``j``,

    Y = s Tr_j(X)   (a matrix on the remaining factors, size n = D / d_j),

and the constraint rows are the real and imaginary parts of the entries of ``Y`` in column-major
(Fortran) order, ``[Re vec(Y), Im vec(Y)]`` (only ``Re vec(Y)`` when ``real=True``). With
``Z = R + i I`` built from the multipliers of those rows, ``<a, A(X)> = Re Tr[Z^H Y]``, hence

    A*(a) = s * Herm(Z) (x)_j I_{d_j},   Herm(Z) = (Z + Z^H) / 2,

a Kronecker product placed at position ``j``. Both directions cost O(D^2) with reshapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..backend import Backend
from ..errors import InvalidInputError
from .base import ConstraintOperator, _resolve

__all__ = ["PartialTrace"]


class PartialTrace(ConstraintOperator):
    """Rows of ``s * Tr_axis(X)`` for ``X`` on a tensor product with factor sizes ``dims``.

    Parameters
    ----------
    dims : sequence of int
        Sizes of the tensor factors, ``prod(dims) = D``.
    axis : int
        Index of the subsystem that is traced out.
    scale : float
        Real factor ``s`` multiplying the partial trace.
    real : bool
        Emit only the real parts (for real symmetric variables); otherwise real, then imaginary.
    """

    structure = "partial_trace"

    def __init__(
        self,
        dims: Sequence[int],
        axis: int,
        scale: float = 1.0,
        *,
        real: bool = False,
        backend: Backend | str | None = None,
    ):
        dims = tuple(int(d) for d in dims)
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise InvalidInputError(f"dims must list at least two positive sizes, got {dims}")
        if not -len(dims) <= axis < len(dims):
            raise InvalidInputError(f"axis={axis} is out of range for dims={dims}")
        axis = axis % len(dims)
        if not (np.isfinite(scale) and scale != 0):
            raise InvalidInputError(f"scale must be a finite nonzero number, got {scale!r}")
        self.dims, self.axis, self.scale, self.real = dims, axis, float(scale), bool(real)
        self._a = math.prod(dims[:axis])
        self._d = dims[axis]
        self._b = math.prod(dims[axis + 1 :])
        self.dim = self._a * self._d * self._b
        self.n_out = self._a * self._b
        nn = self.n_out * self.n_out
        self.n_rows = nn if self.real else 2 * nn
        self.backend = _resolve(backend)

    def marginal(self, X):
        """``s Tr_axis(X)`` as an ``n x n`` matrix (O(D^2))."""
        a, d, b = self._a, self._d, self._b
        Y = X.reshape(a, d, b, a, d, b).diagonal(axis1=1, axis2=4).sum(axis=-1)
        return self.scale * Y.reshape(a * b, a * b)

    spectral_native = True

    def apply_spectral(self, V):
        """``A(V V^*)`` without forming ``V V^*``: with ``V`` reshaped to ``(a, d, b, r)``,
        ``Tr_axis(V V^*) = sum_k V_k V_k^*`` for the ``(a b) x r`` slices ``V_k = V[:, k, :, :]``,
        i.e. one product ``C C^*`` of the ``n x (d r)`` matrix ``C = [V_0, ..., V_{d-1}]``:
        ``n^2 d r = D n r`` flops instead of ``D^2 r`` (``n = D / d``)."""
        xp = self.backend.xp
        a, d, b = self._a, self._d, self._b
        r = V.shape[1]
        C = xp.ascontiguousarray(V.reshape(a, d, b, r).transpose(0, 2, 1, 3)).reshape(a * b, d * r)
        y = (self.scale * (C @ C.conj().T)).reshape(-1, order="F")
        if self.real:
            return xp.ascontiguousarray(y.real, dtype=xp.float64)
        return xp.concatenate([y.real, y.imag]).astype(xp.float64, copy=False)

    def apply(self, X):
        xp = self.backend.xp
        y = self.marginal(X).reshape(-1, order="F")
        if self.real:
            return xp.ascontiguousarray(y.real, dtype=xp.float64)
        return xp.concatenate([y.real, y.imag]).astype(xp.float64, copy=False)

    def embed(self, Z):
        """``s * Herm(Z) (x)_axis I``: the adjoint of :meth:`marginal` on an ``n x n`` matrix."""
        xp = self.backend.xp
        a, d, b = self._a, self._d, self._b
        Zh = (Z + Z.conj().T) * (0.5 * self.scale)
        eye = xp.eye(d, dtype=xp.float64)[None, :, None, None, :, None]
        out = Zh.reshape(a, 1, b, a, 1, b) * eye
        return out.reshape(self.dim, self.dim)

    def adjoint(self, alpha):
        xp = self.backend.xp
        n = self.n_out
        alpha = xp.asarray(alpha, dtype=xp.float64)
        if self.real:
            Z = alpha.reshape(n, n, order="F").astype(xp.complex128)
        else:
            nn = n * n
            Z = alpha[:nn].reshape(n, n, order="F") + 1j * alpha[nn:].reshape(n, n, order="F")
        return self.embed(Z)

    def matrix(self):
        """Sparse rows built directly (``4 n^2 d`` nonzeros): ``Re Y_ij`` is
        ``s/2 (Re X_rc + Re X_cr)`` and ``Im Y_ij`` is ``s/2 (Im X_rc - Im X_cr)`` summed over the
        traced index ``k``, with ``r = (i, k)``, ``c = (j, k)`` (Hermitian ``Q`` in the
        interleaved layout of :meth:`ConstraintOperator.matrix`)."""
        import numpy as np
        import scipy.sparse as sp

        d, b = self._d, self._b
        n, D = self.n_out, self.dim
        i = np.arange(n)
        k = np.arange(d)
        # full index of (i, k): i = (i1, i2) with i1 < a, i2 < b  ->  i1*d*b + k*b + i2
        full = (i[:, None] // b) * (d * b) + k[None, :] * b + (i[:, None] % b)  # (n, d)
        r = np.broadcast_to(full[:, None, :], (n, n, d))  # indexed [i, j, k]
        c = np.broadcast_to(full[None, :, :], (n, n, d))
        row = np.broadcast_to((i[:, None] + n * i[None, :])[:, :, None], (n, n, d))  # F-order
        h = 0.5 * self.scale
        rc, cr = (r * D + c).ravel(), (c * D + r).ravel()
        rows = [row.ravel(), row.ravel()]
        cols = [2 * rc, 2 * cr]
        vals = [np.full(rc.size, h), np.full(rc.size, h)]
        if not self.real:
            rows += [row.ravel() + n * n, row.ravel() + n * n]
            cols += [2 * rc + 1, 2 * cr + 1]
            vals += [np.full(rc.size, h), np.full(rc.size, -h)]
        M = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.n_rows, 2 * D * D),
        ).tocsr()
        M.eliminate_zeros()
        return M

    def to_backend(self, backend):
        be = _resolve(backend)
        if be == self.backend:
            return self
        return PartialTrace(self.dims, self.axis, self.scale, real=self.real, backend=be)

    def describe(self) -> str:
        s = "" if self.scale == 1.0 else f", scale={self.scale:g}"
        r = ", real" if self.real else ""
        return f"PartialTrace(dims={self.dims}, axis={self.axis}{s}{r})"
