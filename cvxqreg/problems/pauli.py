r"""Pauli strings: dense and sparse matrices, expectations, random draws.

A Pauli string on ``n`` qubits is :math:`P = \sigma_{l_0} \otimes \sigma_{l_1} \otimes \cdots
\otimes \sigma_{l_{n-1}}` with :math:`\sigma \in \{I, X, Y, Z\}`, written as a label such as
``"XZIY"``. Character ``j`` acts on qubit ``j``, the ``j``-th tensor factor from the left, which is
the most significant bit of a basis index (``np.kron`` order; the same convention as
:mod:`cvxqreg.operators.pauli`). With bit masks ``x`` (X or Y at the qubit) and ``z`` (Z or Y),

.. math::  P = i^{|x \wedge z|} X^{x} Z^{z}, \qquad P\,|r\rangle = i^{|x \wedge z|}
           (-1)^{|r \wedge z|} \, |r \oplus x\rangle,

so ``P`` is a phased permutation: one nonzero per row and column, and
:math:`\operatorname{Tr}[\rho P] = \sum_r i^{|x \wedge z|} (-1)^{|r \wedge z|} \rho_{r, r \oplus x}`
reads ``D = 2^n`` entries of ``rho``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from cvxqreg.errors import InvalidInputError

from ._instance import _check_int

__all__ = [
    "pauli_expectation",
    "pauli_expectations",
    "pauli_matrix",
    "pauli_sparse",
    "random_pauli_labels",
]

_LETTERS = "IXYZ"
#: dense matrices are limited to 13 qubits (a 8192 x 8192 complex matrix is 1 GiB)
_MAX_DENSE_QUBITS = 13
#: labels index into 4^n; int64 holds 4^31 - 1
_MAX_LABEL_QUBITS = 31


def _masks(label: str) -> tuple[int, int, int]:
    """``(n_qubits, x_mask, z_mask)`` of a label; validates it."""
    if not isinstance(label, str):
        raise InvalidInputError(
            f"a Pauli label must be a string such as 'XZIY', got {label!r} ({type(label).__name__})"
        )
    lab = label.upper()
    if not lab or any(ch not in _LETTERS for ch in lab):
        raise InvalidInputError(
            f"Pauli label {label!r} is invalid: use a non-empty string of the letters I, X, Y, Z"
        )
    n = len(lab)
    x = z = 0
    for j, ch in enumerate(lab):
        bit = 1 << (n - 1 - j)
        if ch in "XY":
            x |= bit
        if ch in "ZY":
            z |= bit
    return n, x, z


def _parity(a: np.ndarray) -> np.ndarray:
    """Parity of the number of set bits of non-negative int64 entries.

    The same as :func:`cvxqreg.operators.pauli.bit_parity`, kept here on purpose: the problem
    library imports nothing of the solver it serves as a reference for (a test enforces it)."""
    a = a.copy()
    for s in (32, 16, 8, 4, 2, 1):
        a ^= a >> s
    return a & 1


def _phases(n: int, x: int, z: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, values)`` with ``P[rows[r], r] = values[r]``: ``P|r> = values[r] |rows[r]>``."""
    r = np.arange(1 << n, dtype=np.int64)
    sign = 1 - 2 * _parity(r & z)
    values = (1j ** bin(x & z).count("1")) * sign.astype(np.complex128)
    return r ^ x, values


def pauli_matrix(label: str) -> np.ndarray:
    r"""Dense matrix of a Pauli string :math:`\sigma_{l_0}\otimes\cdots\otimes\sigma_{l_{n-1}}`.

    Parameters
    ----------
    label : str
        Letters from ``I, X, Y, Z`` (case-insensitive), one per qubit, leftmost = first tensor
        factor. At most 13 qubits (the dense matrix has ``4^n`` complex entries).

    Returns
    -------
    numpy.ndarray
        ``(2^n, 2^n)`` complex128, Hermitian and unitary.

    Examples
    --------
    >>> pauli_matrix("XZ").real.astype(int).tolist()
    [[0, 0, 1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, -1, 0, 0]]
    """
    n, x, z = _masks(label)
    if n > _MAX_DENSE_QUBITS:
        raise InvalidInputError(
            f"pauli_matrix builds a dense 2^n x 2^n matrix; label {label[:20]!r}... has {n} "
            f"qubits, the limit is {_MAX_DENSE_QUBITS}; use pauli_sparse or pauli_expectation"
        )
    rows, values = _phases(n, x, z)
    out = np.zeros((1 << n, 1 << n), dtype=np.complex128)
    out[rows, np.arange(1 << n)] = values
    return out


def pauli_sparse(label: str) -> sp.csr_array:
    """The Pauli string as a SciPy CSR array with ``2^n`` nonzeros (see :func:`pauli_matrix`)."""
    n, x, z = _masks(label)
    if n > _MAX_LABEL_QUBITS:
        raise InvalidInputError(f"label has {n} qubits; at most {_MAX_LABEL_QUBITS} are supported")
    rows, values = _phases(n, x, z)
    D = 1 << n
    return sp.csr_array((values, (rows, np.arange(D))), shape=(D, D))


def pauli_expectation(rho: np.ndarray, label: str) -> float:
    r""":math:`\operatorname{Tr}[\rho P]` for a Hermitian ``rho``, in O(D) operations.

    Parameters
    ----------
    rho : array_like
        ``(2^n, 2^n)`` matrix; for Hermitian ``rho`` the trace is real and its real part is
        returned.
    label : str
        Pauli label with ``n`` letters.
    """
    return float(pauli_expectations(rho, [label])[0])


def pauli_expectations(rho: np.ndarray, labels: Iterable[str]) -> np.ndarray:
    r"""The vector :math:`(\operatorname{Re}\operatorname{Tr}[\rho P_k])_k`, O(D) per string.

    Parameters
    ----------
    rho : array_like
        ``(D, D)`` matrix with ``D = 2^n``.
    labels : iterable of str
        Pauli labels, each with ``n`` letters.

    Returns
    -------
    numpy.ndarray
        float64 vector, one entry per label.
    """
    rho = np.asarray(rho)
    if rho.ndim != 2 or rho.shape[0] != rho.shape[1]:
        raise InvalidInputError(f"rho must be a square matrix, got shape {rho.shape}")
    D = rho.shape[0]
    labels = list(labels)
    out = np.empty(len(labels))
    cols = np.arange(D)
    for k, label in enumerate(labels):
        n, x, z = _masks(label)
        if (1 << n) != D:
            raise InvalidInputError(
                f"label {label!r} acts on {n} qubits (D = {1 << n}) but rho is {D} x {D}"
            )
        rows, values = _phases(n, x, z)
        # Tr[rho P] = sum_r rho[r, :] P[:, r] = sum_r rho[r, rows[r]] values[r]
        out[k] = np.real(np.sum(rho[cols, rows] * values))
    return out


def random_pauli_labels(
    n_qubits: int,
    n_labels: int,
    seed: int | np.random.Generator | None = 0,
    *,
    include_identity: bool = False,
) -> list[str]:
    r"""Draw ``n_labels`` distinct Pauli strings on ``n_qubits`` qubits uniformly at random.

    The strings are drawn without repetition, uniformly among the :math:`4^n - 1` non-identity
    strings (or all :math:`4^n` with ``include_identity=True``), as in [CGMPP, section 6.1]
    ("randomly pick :math:`Q_i \in \mathcal{Q}_n`", with :math:`Q_0 = I` fixed separately). String
    number ``k`` in ``[0, 4^n)`` has base-4 digits (most significant first = qubit 0) mapped by
    ``0, 1, 2, 3 -> I, X, Y, Z``; the draw is ``numpy.random.default_rng(seed).choice`` without
    replacement, so a fixed integer seed gives the same labels on every platform.

    Parameters
    ----------
    n_qubits : int
        Number of qubits, 1 to 31.
    n_labels : int
        How many strings, ``0 <= n_labels <= 4^n - 1`` (``4^n`` with the identity).
    seed : int, numpy.random.Generator or None
        Seed (non-negative int) or generator; ``None`` draws fresh entropy.
    include_identity : bool
        Allow ``"II...I"`` among the draws.

    Returns
    -------
    list of str
        Labels in the order drawn.
    """
    n = _check_int("n_qubits", n_qubits, low=1, high=_MAX_LABEL_QUBITS)
    population = 4**n if include_identity else 4**n - 1
    m = _check_int("n_labels", n_labels, low=0)
    if m > population:
        raise InvalidInputError(
            f"n_labels={m} exceeds the {population} distinct "
            f"{'' if include_identity else 'non-identity '}Pauli strings on {n} qubits; "
            f"pass n_labels <= {population}"
        )
    rng = _rng(seed)
    idx = rng.choice(population, size=m, replace=False)
    if not include_identity:
        idx = idx + 1
    return [_index_to_label(int(k), n) for k in idx]


def _index_to_label(k: int, n: int) -> str:
    digits = []
    for _ in range(n):
        k, d = divmod(k, 4)
        digits.append(_LETTERS[d])
    return "".join(reversed(digits))


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    s = _check_int("seed", seed, low=0)
    return np.random.default_rng(s)
