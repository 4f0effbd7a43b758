"""Eigendecomposition of a block-diagonal Hermitian matrix, one block at a time.

For ``W = diag(W_1, ..., W_k)`` (blocks of sizes ``n_1, ..., n_k`` on the diagonal, zero
elsewhere), ``W = U diag(lam) U^*`` with ``U = diag(U_1, ..., U_k)`` and ``lam`` the union of the
blocks' spectra, so ``k`` decompositions of size ``n_j`` replace one of size ``D = sum n_j``:
``sum n_j^3`` flops instead of ``D^3`` (``k^2`` times fewer for equal blocks). The eigenvalues
are returned in ascending order, as ``eigh`` returns them, with ``U``'s columns permuted to match
(docs/theory.md, 'Several PSD variables: block-diagonal lowering').
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["block_eigh", "block_slices"]


def block_slices(sizes: Sequence[int]) -> list[slice]:
    """``[slice(0, n_1), slice(n_1, n_1 + n_2), ...]``."""
    out, start = [], 0
    for n in sizes:
        out.append(slice(start, start + int(n)))
        start += int(n)
    return out


def block_eigh(backend, W, sizes: Sequence[int] | None):
    """``(lam, U)`` of the Hermitian ``W`` through :meth:`Backend.eigh` of each diagonal block
    (``sizes``; ``None`` or a single block: one plain ``eigh``). Only the diagonal blocks of ``W``
    are read: the caller guarantees that ``W`` is block diagonal."""
    if sizes is None or len(sizes) < 2:
        return backend.eigh(W)
    xp = backend.xp
    lams, Us = [], []
    for sl in block_slices(sizes):
        lam, U = backend.eigh(xp.ascontiguousarray(W[sl, sl]))
        lams.append(lam)
        Us.append(U)
    lam = xp.concatenate(lams)
    order = xp.argsort(lam)
    U = xp.zeros(W.shape, dtype=Us[0].dtype)
    for sl, Ub in zip(block_slices(sizes), Us, strict=True):
        U[sl, sl] = Ub
    return lam[order], U[:, order]
