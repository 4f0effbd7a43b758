"""Hermitian parts and Hermitian defects of dense matrices, computed in row blocks.

For a square ``B`` the Hermitian part is ``Herm(B) = (B + B^*) / 2`` and its defect is
``max_jk |B_jk - conj(B_kj)|``; ``Herm(B) = B`` exactly when the defect is zero (each entry
``(B_jk + conj(B_kj)) / 2`` is then ``B_jk`` to the last bit).

Lowering and problem validation meet dense cost matrices of size ``D`` in the thousands (QWD
``n = 50``: ``D = 2500``, 100 MB in complex128). Written whole, ``0.5 * (B + B.conj().T)`` and
``abs(B - B.conj().T).max()`` allocate two to three ``D x D`` temporaries each, and on machines
where fresh pages are dear those allocations, not the arithmetic, set the time. Here every pass
works on ``BLOCK_ROWS x D`` slices, and a matrix that is already exactly Hermitian (the usual
case: the lowering hermitizes the cost once) is returned as it is.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["hermitian_defect", "hermitian_part", "row_blocks"]

#: rows per block: 256 x 2500 complex entries are 10 MB
BLOCK_ROWS = 256


def row_blocks(n: int):
    """Slices of ``BLOCK_ROWS`` consecutive indices covering ``range(n)``."""
    for i in range(0, n, BLOCK_ROWS):
        yield slice(i, min(i + BLOCK_ROWS, n))


def hermitian_defect(B: np.ndarray) -> float:
    """``max_jk |B_jk - conj(B_kj)|`` of a square array (``0.0`` for an empty one, ``nan`` where
    an entry is not a number). An exactly Hermitian ``B`` is recognised by comparison alone; the
    moduli of the differences are taken only where it is not."""
    B = np.asarray(B)
    if B.ndim != 2 or B.shape[0] != B.shape[1]:
        raise ValueError(f"a square matrix is needed, got shape {B.shape}")
    if all(np.array_equal(B[b], B[:, b].conj().T) for b in row_blocks(B.shape[0])):
        return 0.0
    out = 0.0
    for b in row_blocks(B.shape[0]):
        d = float(np.max(np.abs(B[b] - B[:, b].conj().T), initial=0.0))
        if math.isnan(d):
            return d
        out = max(out, d)
    return out


def hermitian_part(B: np.ndarray, defect: float | None = None) -> np.ndarray:
    """``(B + B^*) / 2`` of a square array: ``B`` itself when it is exactly Hermitian, else a new
    array filled block by block. ``defect``: :func:`hermitian_defect` of ``B`` where the caller
    has it (``math.inf`` where ``B`` is known not to be Hermitian), so that it is not measured
    again."""
    B = np.asarray(B)
    if defect is None:
        defect = hermitian_defect(B)
    if defect == 0.0:
        return B
    out = np.empty(B.shape, dtype=np.result_type(B.dtype, np.float64))
    for b in row_blocks(B.shape[0]):
        np.add(B[b], B[:, b].conj().T, out=out[b])
        out[b] *= 0.5
    return out
