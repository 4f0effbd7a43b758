"""Expectations of Pauli strings.

A Pauli string on ``n`` qubits (``D = 2^n``; qubit 0 is the leftmost tensor factor, the most
significant bit of a basis index) is ``P = i^{|x & z|} X^x Z^z`` with bit masks ``x, z``. It is a
phased permutation:

    P[r, r ^ x] = i^{|x & z|} (-1)^{|z & (r ^ x)|},   all other entries 0,

so ``Tr[P X] = sum_r P[r, r^x] X[r^x, r]`` reads D entries of ``X``. The rows are
``A(X)_k = c_k Re Tr[P_k X]`` with real coefficients ``c_k``. Both ``apply`` and ``adjoint`` are
sparse matrix-vector products with these ``K D`` entries (O(K D) for K strings).

For Newton-CG's Pauli preconditioner (:mod:`cvxqreg.solvers.pauli_preconditioner`) the operator
also gives all ``4^n`` expectations ``Tr[Y P]`` of a Hermitian ``Y`` at once
(:meth:`Pauli.expectation_table`, a Walsh-Hadamard transform of the ``D`` diagonals ``Y[c, c ^ x]``)
and from them the ``m x m`` matrix ``c_k c_l Re Tr[Y P_k P_l]`` (:meth:`Pauli.jordan_matrix`): a
product of two strings is a phased string, ``P_k P_l = i^{|x_k & z_k| + |x_l & z_l| - |x & z|}
(-1)^{|z_k & x_l|} P(x, z)`` with ``x = x_k ^ x_l``, ``z = z_k ^ z_l``, and the phase is real
(``+-1``) exactly when the two strings commute.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from ..backend import Backend
from ..errors import InvalidInputError
from .base import ConstraintOperator, _resolve

__all__ = ["Pauli", "bit_parity", "pauli_label_to_masks", "pauli_masks_to_label"]


def pauli_label_to_masks(label: str) -> tuple[int, int]:
    """``"XZIY"`` -> ``(x_mask, z_mask)`` with qubit 0 as the most significant bit."""
    n = len(label)
    x = z = 0
    for j, ch in enumerate(label.upper()):
        bit = 1 << (n - 1 - j)
        if ch == "X":
            x |= bit
        elif ch == "Z":
            z |= bit
        elif ch == "Y":
            x |= bit
            z |= bit
        elif ch != "I":
            raise InvalidInputError(
                f"Pauli label {label!r} has invalid character {ch!r}; use I, X, Y, Z"
            )
    return x, z


def pauli_masks_to_label(x: int, z: int, n_qubits: int) -> str:
    """Inverse of :func:`pauli_label_to_masks`."""
    out = []
    for j in range(n_qubits):
        bit = 1 << (n_qubits - 1 - j)
        out.append(
            {(0, 0): "I", (1, 0): "X", (0, 1): "Z", (1, 1): "Y"}[(bool(x & bit), bool(z & bit))]
        )
    return "".join(out)


def bit_parity(a) -> np.ndarray:
    """``|a| mod 2``, the parity of the number of set bits, of non-negative integers (elementwise).

    The entries of a Pauli string carry the sign ``(-1)^{|z & c|} = 1 - 2 bit_parity(z & c)``.
    Returns an int64 array of 0 and 1 (XOR-folding the 64 bits: six vectorized steps).
    """
    a = np.array(a, dtype=np.int64, copy=True)
    for shift in (32, 16, 8, 4, 2, 1):
        a ^= a >> shift
    return a & 1


def _popcount(a) -> np.ndarray:
    a = a.astype(np.uint64)
    c = np.zeros(a.shape, dtype=np.int64)
    while np.any(a):
        c += (a & np.uint64(1)).astype(np.int64)
        a = a >> np.uint64(1)
    return c


class Pauli(ConstraintOperator):
    """Rows ``c_k Re Tr[P_k X]`` for Pauli strings ``P_k``.

    Parameters
    ----------
    strings : sequence of str or of (x_mask, z_mask)
        The Pauli strings, as labels such as ``"XIZY"`` or as bit-mask pairs.
    n_qubits : int
        Number of qubits (``D = 2^n``). Inferred from labels when omitted.
    coefficients : sequence of float, optional
        Real factors ``c_k`` (default 1).
    """

    structure = "pauli"

    def __init__(
        self,
        strings: Sequence,
        n_qubits: int | None = None,
        coefficients: Sequence[float] | None = None,
        *,
        backend: Backend | str | None = None,
    ):
        strings = list(strings)
        if not strings:
            raise InvalidInputError("Pauli needs at least one string")
        if isinstance(strings[0], str):
            lengths = {len(s) for s in strings}
            if len(lengths) != 1:
                raise InvalidInputError(f"Pauli labels have different lengths {sorted(lengths)}")
            n_lab = lengths.pop()
            if n_qubits is not None and n_qubits != n_lab:
                raise InvalidInputError(f"labels have {n_lab} qubits but n_qubits={n_qubits}")
            n_qubits = n_lab
            masks = [pauli_label_to_masks(s) for s in strings]
        else:
            if n_qubits is None:
                raise InvalidInputError("n_qubits is required when strings are given as masks")
            masks = [(x, z) for x, z in strings]
            if not all(isinstance(v, (int, np.integer)) for mz in masks for v in mz):
                raise InvalidInputError("Pauli masks must be integers (x_mask, z_mask)")
            masks = [(int(x), int(z)) for x, z in masks]
        D = 1 << int(n_qubits)
        if any(not (0 <= x < D and 0 <= z < D) for x, z in masks):
            raise InvalidInputError(f"Pauli masks out of range for {n_qubits} qubits")
        c = np.ones(len(masks)) if coefficients is None else np.asarray(coefficients, float)
        if c.shape != (len(masks),) or not np.all(np.isfinite(c)):
            raise InvalidInputError("coefficients must be finite, one per Pauli string")
        self.n_qubits, self.dim, self.n_rows = int(n_qubits), D, len(masks)
        self.masks = tuple(masks)
        self.coefficients = c
        self.backend = _resolve(backend)

        x = np.array([m[0] for m in masks], dtype=np.int64)
        z = np.array([m[1] for m in masks], dtype=np.int64)
        r = np.arange(D, dtype=np.int64)
        cols = r[None, :] ^ x[:, None]  # (K, D): column of the nonzero in row r
        ny = _popcount(x & z)
        sign = 1 - 2 * bit_parity(z[:, None] & cols)
        phase = (1j**ny)[:, None] * sign  # P[r, cols[k, r]]
        # apply: Tr[P X] = sum_r P[r, c] X[c, r]; flat index of X[c, r] is c*D + r
        gather = (cols * D + r[None, :]).reshape(-1)
        weights = (c[:, None] * phase).astype(np.complex128).reshape(-1)
        # adjoint: sum_k a_k c_k P_k; entry (r, r ^ x_k) of string k is at flat r*D + (r ^ x_k)
        scatter = (r[None, :] * D + cols).reshape(-1)
        # both maps as sparse matrices of these K D entries, on the backend: SciPy's (or
        # cuSPARSE's) matrix-vector product was 1.8x (apply) and 3.1x (adjoint) faster than
        # gathering with take and scattering with bincount at D = 512, K = 1025, one thread
        # (benchmarks/results/pauli_products.md); equal positions of several strings are summed
        import scipy.sparse as sp

        # each row's matrix c_k P_k as a phased permutation (row r holds its one nonzero in
        # column cols[k, r]): Q_k U = rows of U gathered and scaled (phased_permutation)
        self._cols, self._entries = cols, c[:, None] * phase
        K = len(masks)
        k = np.repeat(np.arange(K), D)
        be = self.backend
        self._adjoint_host = sp.csr_matrix((weights, (scatter, k)), (D * D, K))
        self._apply_csr = be.sparse(sp.csr_matrix((weights, (k, gather)), (K, D * D)))
        self._adjoint_csr = be.sparse(self._adjoint_host)
        # the real parts alone, for real states and real(-reduced) problems: Re Tr[P X] for a
        # real X and Re A*(alpha) for a real alpha read only Re P (half the data, no complex
        # arithmetic; strings with an odd number of Y have none)
        re = sp.csr_matrix((weights.real, (k, gather)), (K, D * D))
        re.eliminate_zeros()
        self._apply_re_csr = be.sparse(re)
        self._adjoint_re_csr = be.sparse(re.T.tocsr())

    def apply(self, X):
        xp = self.backend.xp
        X = xp.asarray(X)
        if not xp.iscomplexobj(X):
            return (self._apply_re_csr @ X.astype(xp.float64, copy=False).reshape(-1)).astype(
                xp.float64, copy=True
            )
        vals = self._apply_csr @ X.astype(xp.complex128, copy=False).reshape(-1)
        return xp.real(vals).astype(xp.float64, copy=True)

    def adjoint(self, alpha):
        xp = self.backend.xp
        a = xp.asarray(alpha, dtype=xp.complex128)
        return (self._adjoint_csr @ a).reshape(self.dim, self.dim)

    def adjoint_real(self, alpha):
        xp = self.backend.xp
        a = xp.asarray(alpha, dtype=xp.float64)
        return (self._adjoint_re_csr @ a).reshape(self.dim, self.dim)

    def phased_permutation(self) -> tuple[np.ndarray, np.ndarray]:
        """``(cols, entries)``, host ``(K, D)`` arrays: row ``r`` of ``Q_k = c_k P_k`` has its one
        nonzero ``entries[k, r]`` in column ``cols[k, r]``, so ``(Q_k U)[r] =
        entries[k, r] U[cols[k, r]]`` (``D^2`` entries gathered instead of ``2 D^3`` flops)."""
        return self._cols, self._entries

    def matrix(self):
        """Sparse rows built directly: row ``k`` holds ``c_k P_k[r, r ^ x_k]`` (2 D nonzeros;
        ``Re Tr[P X] = Re P_rc Re X_rc + Im P_rc Im X_rc`` for Hermitian ``X``)."""
        import scipy.sparse as sp

        K, D = self.n_rows, self.dim
        coo = self._adjoint_host.tocoo()  # (r*D + c, k) -> c_k P_k[r, c]
        flat, rows, w = coo.row.astype(np.int64), coo.col, coo.data
        M = sp.coo_matrix(
            (
                np.concatenate([w.real, w.imag]),
                (np.concatenate([rows, rows]), np.concatenate([2 * flat, 2 * flat + 1])),
            ),
            shape=(K, 2 * D * D),
        ).tocsr()
        M.eliminate_zeros()
        return M

    def to_backend(self, backend):
        be = _resolve(backend)
        if be == self.backend:
            return self
        return Pauli(self.masks, self.n_qubits, self.coefficients, backend=be)

    def expectation_table(self, Y):
        r"""All ``4^n`` expectations ``T[x, z] = Tr[Y P(x, z)]`` of a Hermitian ``D x D`` matrix
        ``Y`` (real, ``(D, D)``, on the backend), ``P(x, z) = i^{|x & z|} X^x Z^z``.

        ``Tr[Y X^x Z^z] = sum_c (-1)^{|z & c|} Y[c, c ^ x]``: for each ``x`` the Walsh-Hadamard
        transform of the diagonal ``c -> Y[c, c ^ x]``, here as two matrix products with the
        Sylvester-Hadamard factors ``H_a (x) H_b = H_D`` (``2 D^2 (a + b)`` flops,
        ``a b = D``); the phase ``i^{|x & z|}`` then takes the real or imaginary part.
        """
        xp = self.backend.xp
        D = self.dim
        consts = self.__dict__.get("_table_consts")
        if consts is None:  # D^2 bytes of phases and two small Hadamard factors, kept
            r = np.arange(D)
            hi = 1 << (self.n_qubits // 2)
            consts = self._table_consts = tuple(
                self.backend.asarray(a)
                for a in (
                    (_popcount(np.bitwise_and.outer(r, r)) % 4).astype(np.int8),  # |x & z| mod 4
                    scipy.linalg.hadamard(hi).astype(np.float64),
                    scipy.linalg.hadamard(D // hi).astype(np.float64),
                )
            )
        ph, Ha, Hb = consts
        r = xp.arange(D)
        Y = xp.asarray(Y)
        V = xp.take_along_axis(Y, r[:, None] ^ r[None, :], axis=1)  # V[c, x] = Y[c, c ^ x]
        re = (ph == 0).astype(xp.float64) - (ph == 2)  # Re i^{|x & z|}
        im = (ph == 3).astype(xp.float64) - (ph == 1)  # its factor on Im Tr[Y X^x Z^z]

        def transform(V):  # sum over c = (c_a, c_b) of (-1)^{|z & c|} V[c, x], as [x, z]
            V3 = V.T.reshape(D, Ha.shape[0], Hb.shape[0])  # [x, c_a, c_b]
            return xp.matmul(Ha, V3 @ Hb).reshape(D, D)

        if xp.iscomplexobj(V):
            return re * transform(xp.ascontiguousarray(V.real)) + im * transform(
                xp.ascontiguousarray(V.imag)
            )
        return re * transform(V)

    def jordan_matrix(self, Y, rows=None) -> np.ndarray:
        r"""``M_kl = c_k c_l Re Tr[Y P_k P_l] = Re Tr[Q_k (Y Q_l + Q_l Y) / 2]`` over the
        strings ``rows`` (default all), ``Q_k = c_k P_k``, for a Hermitian ``Y`` (backend array).

        Read from :meth:`expectation_table`: ``O(D^2 sqrt(D) + m^2)`` instead of the ``m D^3``
        of forming each ``Q_k Y Q_l``. Returns the ``(m, m)`` real matrix on the backend.
        """
        key = None if rows is None else np.asarray(rows, dtype=np.int64).tobytes()
        cached = self.__dict__.get("_jordan_index")
        if cached is None or cached[0] != key:
            sel = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
            x = np.array([mk[0] for mk in self.masks], dtype=np.int64)[sel]
            z = np.array([mk[1] for mk in self.masks], dtype=np.int64)[sel]
            c = self.coefficients[sel]
            xx, zz = np.bitwise_xor.outer(x, x), np.bitwise_xor.outer(z, z)
            a = _popcount(x & z)
            ph = (a[:, None] + a[None, :] - _popcount(xx & zz)) % 4  # 0 or 2 iff they commute
            sign = np.select([ph == 0, ph == 2], [1.0, -1.0], 0.0)
            sign *= 1 - 2 * bit_parity(np.bitwise_and.outer(z, x))
            be = self.backend
            flat = (xx * self.dim + zz).astype(np.int32 if self.dim <= 1 << 15 else np.int64)
            cached = (key, be.asarray(flat), be.asarray(sign * np.outer(c, c)))
            self._jordan_index = cached
        _, flat, weight = cached
        return weight * self.expectation_table(Y).reshape(-1)[flat]

    @property
    def labels(self) -> list[str]:
        """The strings as labels such as ``"XIZY"``."""
        return [pauli_masks_to_label(x, z, self.n_qubits) for x, z in self.masks]

    def describe(self) -> str:
        return f"Pauli({self.n_rows} strings on {self.n_qubits} qubits)"
