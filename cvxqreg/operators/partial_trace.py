"""Marginal (partial-trace) constraints.

For ``X`` on ``C^{d_1} (x) ... (x) C^{d_k}`` and a set ``T`` of traced-out subsystems (one or
several, anywhere in the product),

    Y = s Tr_T(X)   (a matrix on the kept factors in their order, size n = D / prod_{j in T} d_j),

and the constraint rows are the real and imaginary parts of the entries of ``Y`` in column-major
(Fortran) order, ``[Re vec(Y), Im vec(Y)]`` (only ``Re vec(Y)`` when ``real=True``). With
``Z = R + i I`` built from the multipliers of those rows, ``<a, A(X)> = Re Tr[Z^H Y]``, hence

    A*(a) = s * Herm(Z) (x)_T I_T,   Herm(Z) = (Z + Z^H) / 2,

the identity on the traced factors placed at their positions. Both directions are reshapes and
one axis permutation, O(D^2). The middle marginal of a three-party state,
``Tr_{1,3}(X)`` on ``C^d (x) C^d (x) C^d``, is ``PartialTrace((d, d, d), axis=(0, 2))``.
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
    axis : int or sequence of int
        Index (or indices) of the subsystem(s) traced out; at least one factor must be kept.
    scale : float
        Real factor ``s`` multiplying the partial trace.
    real : bool
        Emit only the real parts (for real symmetric variables); otherwise real, then imaginary.
    """

    structure = "partial_trace"

    def __init__(
        self,
        dims: Sequence[int],
        axis: int | Sequence[int],
        scale: float = 1.0,
        *,
        real: bool = False,
        backend: Backend | str | None = None,
    ):
        dims = tuple(int(d) for d in dims)
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise InvalidInputError(f"dims must list at least two positive sizes, got {dims}")
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        for ax in axes:
            if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
                raise InvalidInputError(f"axis must be an int or a sequence of ints, got {axis!r}")
            if not -len(dims) <= ax < len(dims):
                raise InvalidInputError(f"axis={axis} is out of range for dims={dims}")
        axes = tuple(sorted({int(ax) % len(dims) for ax in axes}))
        if not axes or len(axes) != len((axis,) if np.ndim(axis) == 0 else tuple(axis)):
            raise InvalidInputError(f"axis={axis} must name distinct subsystems")
        if len(axes) == len(dims):
            raise InvalidInputError(
                f"axis={axis} traces out every factor of dims={dims}; use cp.trace for the "
                "full trace"
            )
        if not (np.isfinite(scale) and scale != 0):
            raise InvalidInputError(f"scale must be a finite nonzero number, got {scale!r}")
        self.dims, self.scale, self.real = dims, float(scale), bool(real)
        self.axes = axes
        self.axis = axes[0] if len(axes) == 1 else axes
        self._kept = tuple(j for j in range(len(dims)) if j not in axes)
        self._t = math.prod(dims[j] for j in axes)
        self.dim = math.prod(dims)
        self.n_out = self.dim // self._t
        # single traced factor: X is (a, d, b, a, d, b) without any permutation
        self._single = len(axes) == 1
        ax0 = axes[0]
        self._a = math.prod(dims[:ax0])
        self._d = dims[ax0]
        self._b = math.prod(dims[ax0 + 1 :])
        nn = self.n_out * self.n_out
        self.n_rows = nn if self.real else 2 * nn
        self.backend = _resolve(backend)

    def row_entries(self, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(imag, i, j)`` for row indices ``rows`` of this operator: row ``i + n j`` reads
        ``s Re Y_ij`` and row ``n^2 + i + n j`` reads ``s Im Y_ij`` (``imag`` is 0 or 1; the
        column-major layout of the module docstring)."""
        n = self.n_out
        imag, local = np.divmod(np.asarray(rows, dtype=np.int64), n * n)
        j, i = np.divmod(local, n)
        return imag, i, j

    def _perm(self):
        """Axis order ``(kept, traced)`` of ``X.reshape(dims)`` (one side of ``X``)."""
        return self._kept + self.axes

    def _split(self, X):
        """``X`` as ``(n, t, n, t)``: kept and traced indices of rows and columns."""
        k = len(self.dims)
        p = self._perm()
        Xt = X.reshape(self.dims + self.dims).transpose(p + tuple(k + j for j in p))
        return Xt.reshape(self.n_out, self._t, self.n_out, self._t)

    def marginal(self, X):
        """``s Tr_axis(X)`` as an ``n x n`` matrix (O(D^2))."""
        if not self._single:
            return self.scale * self._split(X).diagonal(axis1=1, axis2=3).sum(axis=-1)
        a, d, b = self._a, self._d, self._b
        Y = X.reshape(a, d, b, a, d, b).diagonal(axis1=1, axis2=4).sum(axis=-1)
        return self.scale * Y.reshape(a * b, a * b)

    spectral_native = True

    def apply_spectral(self, V):
        """``A(V V^*)`` without forming ``V V^*``: with ``V`` reshaped to ``(a, d, b, r)``,
        ``Tr_axis(V V^*) = sum_k V_k V_k^*`` for the ``(a b) x r`` slices ``V_k = V[:, k, :, :]``,
        i.e. one product ``C C^*`` of the ``n x (d r)`` matrix ``C = [V_0, ..., V_{d-1}]``:
        ``n^2 d r = D n r`` flops instead of ``D^2 r`` (``n = D / d``)."""
        C = self._columns(V)
        return self._pack(self.scale * (C @ C.conj().T))

    def _columns(self, V):
        """``V`` (``D x r``) as the ``n x (t r)`` matrix ``C = [V_0, ..., V_{t-1}]`` of its
        slices over the traced factors (:meth:`apply_spectral`)."""
        xp = self.backend.xp
        r = V.shape[1]
        if self._single:
            Vt = V.reshape(self._a, self._d, self._b, r).transpose(0, 2, 1, 3)
        else:  # kept factors first, then traced ones, then the columns of V
            Vt = V.reshape(self.dims + (r,)).transpose(self._perm() + (len(self.dims),))
        return xp.ascontiguousarray(Vt).reshape(self.n_out, self._t * r)

    def _from_columns(self, C, r):
        """The inverse of :meth:`_columns`."""
        xp = self.backend.xp
        if self._single:
            a, d, b = self._a, self._d, self._b
            out = C.reshape(a, b, d, r).transpose(0, 2, 1, 3)
        else:
            sizes = tuple(self.dims[j] for j in self._perm())
            inv = tuple(int(i) for i in np.argsort(self._perm()))
            out = C.reshape(sizes + (r,)).transpose(inv + (len(self.dims),))
        return xp.ascontiguousarray(out).reshape(self.dim, r)

    def _pack(self, Y):
        """An ``n x n`` marginal as the row vector of :meth:`apply`."""
        xp = self.backend.xp
        y = Y.reshape(-1, order="F")
        if self.real:
            return xp.ascontiguousarray(y.real, dtype=xp.float64)
        return xp.concatenate([y.real, y.imag]).astype(xp.float64, copy=False)

    def adjoint_times(self, alpha, V, real=False):
        """``(s Herm(Z) (x)_axis I) V`` as ``Z`` times the ``n x (t r)`` slices of ``V``:
        ``D n r`` flops, the ``D x D`` matrix never formed."""
        Z = self._unpack(alpha)
        Zh = (Z + Z.conj().T) * (0.5 * self.scale)
        return self._from_columns(Zh @ self._columns(V), V.shape[1])

    def apply_sym_product(self, L, R):
        """``s Tr_axis(L R^* + R L^*)`` as ``C_L C_R^* + C_R C_L^*`` (``D n r`` flops)."""
        M = self._columns(L) @ self._columns(R).conj().T
        return self._pack(self.scale * (M + M.conj().T))

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
        if not self._single:
            n, t, k = self.n_out, self._t, len(self.dims)
            eye = xp.eye(t, dtype=xp.float64)[None, :, None, :]
            out = Zh.reshape(n, 1, n, 1) * eye  # (kept, traced, kept', traced')
            sizes = tuple(self.dims[j] for j in self._perm())
            inv = tuple(int(i) for i in np.argsort(self._perm()))
            out = out.reshape(sizes + sizes).transpose(inv + tuple(k + i for i in inv))
            return xp.ascontiguousarray(out).reshape(self.dim, self.dim)
        eye = xp.eye(d, dtype=xp.float64)[None, :, None, None, :, None]
        out = Zh.reshape(a, 1, b, a, 1, b) * eye
        return out.reshape(self.dim, self.dim)

    def _unpack(self, alpha):
        """The ``n x n`` matrix ``Z`` whose embedding is ``A*(alpha)``."""
        xp = self.backend.xp
        n = self.n_out
        alpha = xp.asarray(alpha, dtype=xp.float64)
        if self.real:
            return alpha.reshape(n, n, order="F").astype(xp.complex128)
        nn = n * n
        return alpha[:nn].reshape(n, n, order="F") + 1j * alpha[nn:].reshape(n, n, order="F")

    def adjoint(self, alpha):
        return self.embed(self._unpack(alpha))

    def matrix(self):
        """Sparse rows built directly (``4 n^2 d`` nonzeros): ``Re Y_ij`` is
        ``s/2 (Re X_rc + Re X_cr)`` and ``Im Y_ij`` is ``s/2 (Im X_rc - Im X_cr)`` summed over the
        traced index ``k``, with ``r = (i, k)``, ``c = (j, k)`` (Hermitian ``Q`` in the
        interleaved layout of :meth:`ConstraintOperator.matrix`)."""
        import numpy as np
        import scipy.sparse as sp

        n, D, d = self.n_out, self.dim, self._t
        i = np.arange(n)
        # full index of (i, k): i runs over the kept factors, k over the traced ones
        full = np.arange(D).reshape(self.dims).transpose(self._perm()).reshape(n, d)
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
        return PartialTrace(self.dims, self.axes, self.scale, real=self.real, backend=be)

    def describe(self) -> str:
        s = "" if self.scale == 1.0 else f", scale={self.scale:g}"
        r = ", real" if self.real else ""
        return f"PartialTrace(dims={self.dims}, axis={self.axis}{s}{r})"
