"""The constraint-operator interface.

A constraint operator is a real-linear map on Hermitian matrices

    A : Herm(D) -> R^m,   A(X)_i = Re Tr[Q_i X],

with Hermitian ``Q_i`` (real symmetric when the variable is real), and its adjoint with respect to
the real Frobenius inner product ``<P, X> = Re Tr[P X]``

    A* : R^m -> Herm(D),  A*(a) = sum_i a_i Q_i.

Subclasses keep the structure of the ``Q_i`` (partial traces, Pauli strings) so that ``apply`` and
``adjoint`` cost O(D^2) rather than O(m D^2). Every operator can also produce its dense form, used
as the reference in tests and by the exact solver.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..backend import Backend, get_backend

__all__ = ["ConstraintOperator"]


class ConstraintOperator(abc.ABC):
    """Abstract real-linear map ``A(X) = (Re Tr[Q_i X])_i`` on Hermitian ``D x D`` matrices.

    Attributes
    ----------
    dim : int
        ``D``, the size of the matrix variable.
    n_rows : int
        ``m``, the number of real constraint rows.
    backend : Backend
        Where the operator's data live; ``apply``/``adjoint`` expect arrays of that backend.
    """

    dim: int
    n_rows: int
    backend: Backend

    #: short name of the structure ("dense", "partial_trace", "pauli", "stacked", ...)
    structure: str = "abstract"

    @abc.abstractmethod
    def apply(self, X: Any) -> Any:
        """``A(X)``: a real vector of length ``n_rows`` (same backend as ``X``)."""

    @abc.abstractmethod
    def adjoint(self, alpha: Any) -> Any:
        """``A*(alpha) = sum_i alpha_i Q_i``: a Hermitian ``D x D`` complex matrix."""

    #: whether :meth:`apply_spectral` is cheaper than forming ``X`` (O(D^3)) and applying
    spectral_native: bool = False

    def apply_spectral(self, V: Any) -> Any:
        """``A(V V^*)`` for a ``D x r`` factor ``V`` (the dual oracle's ``U diag(sqrt(w))``).

        Generic version: form ``X = V V^*`` (one ``D x D x r`` product) and :meth:`apply`.
        Operators with ``spectral_native = True`` never form ``X``.
        """
        return self.apply(self.backend.outer(V))

    def adjoint_real(self, alpha: Any) -> Any:
        """``Re A*(alpha)`` (real symmetric ``D x D``) for a real ``alpha``: all that a real or
        real-reduced problem uses. Generic version: the real part of :meth:`adjoint`; operators
        with complex rows may skip the imaginary parts' arithmetic."""
        return self.adjoint(alpha).real

    def adjoint_times(self, alpha: Any, V: Any, real: bool = False) -> Any:
        """``A*(alpha) V`` for a ``D x r`` matrix ``V`` (the low-rank Hessian products need
        ``U_T^* A*(v) U`` only). Generic version: form ``A*(alpha)`` (``D^2``) and multiply
        (``D^2 r``); structured operators never form the ``D x D`` matrix. ``real``: the caller
        needs only the real part (``V`` real), so ``Re A*(alpha)`` may stand for ``A*(alpha)``;
        the result may still be complex."""
        return (self.adjoint_real(alpha) if real else self.adjoint(alpha)) @ V

    def apply_sym_product(self, L: Any, R: Any) -> Any:
        """``A(L R^* + R L^*)`` for ``D x r`` factors ``L``, ``R``. Generic version: form the
        ``D x D`` sum (``D^2 r``) and :meth:`apply`; structured operators contract the factors
        directly."""
        M = L @ R.conj().T
        return self.apply(M + M.conj().T)

    @abc.abstractmethod
    def to_backend(self, backend: Backend | str) -> ConstraintOperator:
        """A copy of this operator whose data live on ``backend``."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One line saying which structure is used, e.g. ``PartialTrace(dims=(4, 4), axis=1)``."""

    # ------------------------------------------------------------------ derived, generic
    def matrix(self) -> sp.csr_matrix:
        """The rows as a sparse ``(m, 2 D^2)`` real matrix ``M`` acting on ``X.view(float)``.

        For Hermitian ``X``, ``A(X) = M @ X.reshape(-1).view(np.float64)``: each row holds
        ``vec(Q_i)`` with real and imaginary parts interleaved, because
        ``Re Tr[Q X] = <Re Q, Re X> + <Im Q, Im X>``.
        The generic implementation applies the adjoint to the unit vectors (m adjoints).
        """
        host = self.to_backend("numpy")
        rows = []
        e = np.zeros(self.n_rows)
        for i in range(self.n_rows):
            e[i] = 1.0
            Q = np.ascontiguousarray(host.adjoint(e), dtype=np.complex128)
            rows.append(sp.csr_matrix(Q.reshape(-1).view(np.float64)))
            e[i] = 0.0
        if not rows:
            return sp.csr_matrix((0, 2 * self.dim * self.dim))
        return sp.vstack(rows, format="csr")

    def to_dense(self) -> np.ndarray:
        """The matrices ``Q_i`` stacked as a complex ``(m, D, D)`` NumPy array (tests, small D)."""
        M = self.matrix().toarray()
        return np.ascontiguousarray(M).view(np.complex128).reshape(self.n_rows, self.dim, self.dim)

    def gram(self) -> np.ndarray:
        """The Gram matrix ``G_ij = <Q_i, Q_j>`` (``m x m``, real symmetric, on the host)."""
        M = self.matrix()
        return np.asarray((M @ M.T).toarray())

    def __repr__(self) -> str:
        return f"<{self.describe()}: {self.n_rows} rows on Herm({self.dim}), {self.backend.name}>"


def _resolve(backend: Backend | str | None) -> Backend:
    return get_backend("numpy" if backend is None else backend)
