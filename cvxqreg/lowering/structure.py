"""Structure detection: recognise partial traces and Pauli strings by value.

The extracted rows (Hermitian ``Q_i`` in the :class:`~cvxqreg.operators.Dense` layout) are
compared with the rows of the structured operators, never with the CVXPY expression that produced
them, so any way of writing a partial trace or a Pauli expectation is recognised and a near miss
is not:

(a) a constraint of shape ``(n, n)`` with ``D = n t`` whose rows equal ``s`` times the rows of
    a partial trace over any set of tensor factors (the factor sizes and which ones are traced are
    read off the diagonal rows, so ``Tr_2`` of a two-party state and the middle marginal
    ``Tr_{1,3}`` of a three-party one are both found) within ``1e-12`` relative becomes a
    :class:`~cvxqreg.operators.PartialTrace`;
(b) a row whose ``Q`` is ``c P`` for a Pauli string ``P = i^{|x&z|} X^x Z^z`` (one nonzero per row
    of ``Q``, at ``(r, r ^ x)``, with value ``c i^{|x&z|} (-1)^{|z & (r^x)|}``, ``c`` real) joins a
    run of consecutive such rows that becomes one :class:`~cvxqreg.operators.Pauli`;
(c) every other row joins a run of rows that becomes one :class:`~cvxqreg.operators.Dense`.

Rows that the dependence analysis dropped are left out of (b) and (c); a partial trace keeps all
its rows and the dropped ones are removed by a :class:`~cvxqreg.operators.Selected` wrapper.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..operators import Dense, PartialTrace, Pauli, Selected, Stacked
from ..operators.pauli import bit_parity

__all__ = [
    "Structured",
    "build_operator",
    "match_partial_trace",
    "match_pauli",
    "partial_trace_rows",
]

#: relative tolerance of every by-value structure match
MATCH_RTOL = 1e-12


@dataclasses.dataclass(frozen=True)
class Structured:
    """The operator and how its rows relate to the extracted rows.

    Attributes
    ----------
    operator : ConstraintOperator
        The lowered constraint map.
    row_map : ndarray of int
        ``row_map[k]`` is the extracted (full) row of lowered row ``k`` (increasing).
    block_structure : tuple of str
        For each constraint block, the structures its rows went to (e.g. ``"partial_trace(...)"``,
        ``"pauli"``, ``"dense"``, ``"pauli+dense"``, or ``"dropped"`` when all rows were dependent).
    """

    operator: object
    row_map: np.ndarray
    block_structure: tuple


def partial_trace_rows(dims, axis: int, *, real: bool) -> sp.csr_matrix:
    """Rows of ``Tr_axis(X)`` (scale 1) in the Dense layout: ``PartialTrace(...).matrix()``."""
    return PartialTrace(dims, axis, real=real).matrix()


def match_partial_trace(M: sp.csr_matrix, shape, n_re: int, n_im: int, D: int):
    """A :class:`PartialTrace` whose rows equal ``M`` (one constraint's rows), or ``None``.

    The tensor structure is read off the diagonal rows: row ``Re Y_ii`` of ``s Tr_T(X)`` touches
    the diagonal entries ``X_rr`` at the ``t = D / n`` full indices ``r = base(i) + off(k)``, where
    ``base`` runs over the kept factors and ``off`` over the traced ones. Walking the strides up
    from 1, each run ``s, 2s, ..., (g-1)s`` found in ``off`` (or in ``base``) is one traced (kept)
    group of ``g`` adjacent factors, which gives ``dims`` and the traced ``axis`` for any number of
    parties and any subset of traced factors. The candidate is then compared with ``M`` entry by
    entry (``1e-12`` relative), so a near miss stays dense.
    """
    if len(shape) != 2 or shape[0] != shape[1]:
        return None
    n = int(shape[0])
    if n < 2 or n >= D or D % n:
        return None
    if n_re != n * n or n_im not in (0, n * n):
        return None
    real = n_im == 0
    t = D // n
    scale_ref = abs(M).max() if M.nnz else 0.0
    if scale_ref == 0.0:
        return None
    found = _tensor_split(M, n, t, D)
    if found is None:
        return None
    dims, axis = found
    C = PartialTrace(dims, axis, real=real).matrix()
    if C.nnz != M.nnz:
        return None
    s = float(M.multiply(C).sum() / C.multiply(C).sum())
    if s == 0.0 or abs(M - s * C).max() > MATCH_RTOL * scale_ref:
        return None
    return PartialTrace(dims, axis, s, real=real)


def _tensor_split(M: sp.csr_matrix, n: int, t: int, D: int):
    """``(dims, axis)`` suggested by the diagonal rows of ``M`` (see :func:`match_partial_trace`),
    with adjacent kept (traced) factors merged, or ``None``."""
    diag_rows = np.arange(n) * (n + 1)  # F-order position of (i, i)
    sub = M[diag_rows].tocoo()
    col = sub.col.astype(np.int64)
    on_diag = (col % 2 == 0) & ((col // 2) // D == (col // 2) % D)
    if not np.all(np.bincount(sub.row[on_diag], minlength=n) == t):
        return None
    F = np.empty((n, t), dtype=np.int64)
    order = np.lexsort(((col // 2)[on_diag] // D, sub.row[on_diag]))
    F[:] = ((col // 2)[on_diag] // D)[order].reshape(n, t)
    base, off = F[:, 0] - F[0, 0], F[0] - F[0, 0]
    if F[0, 0] != 0 or not np.array_equal(F, base[:, None] + off[None, :]):
        return None
    sets = {"kept": set(base.tolist()), "traced": set(off.tolist())}
    groups, stride = [], 1
    while stride < D:
        kind = "traced" if stride in sets["traced"] else "kept" if stride in sets["kept"] else None
        if kind is None:
            return None
        g = 1
        while g * stride in sets[kind]:
            g += 1
        if D % (g * stride):
            return None
        groups.append((g, kind))
        stride *= g
    groups.reverse()  # largest stride first: the first tensor factor
    dims = tuple(g for g, _ in groups)
    axis = tuple(j for j, (_, kind) in enumerate(groups) if kind == "traced")
    if len(dims) < 2 or not axis or len(axis) == len(dims):
        return None
    return dims, axis[0] if len(axis) == 1 else axis


def match_pauli(row: sp.csr_matrix, D: int):
    """``(x_mask, z_mask, c)`` when the single row ``row`` is ``c`` times a Pauli string, else
    ``None``. Exact up to ``1e-12`` relative; any other nonzero makes it fail."""
    if D < 2 or D & (D - 1):
        return None
    idx, data = row.indices, row.data
    ent = idx // 2
    uniq, inv = np.unique(ent, return_inverse=True)
    if uniq.size != D:
        return None
    v = np.zeros(D, dtype=np.complex128)
    np.add.at(v, inv, np.where(idx % 2 == 1, 1j, 1.0) * data)
    r, c = uniq // D, uniq % D
    if not np.array_equal(r, np.arange(D)):
        return None
    x = int(c[0])
    if not np.array_equal(c, r ^ x):
        return None
    # u(r) = v(r) / v(x) = (-1)^{|z & (r ^ x)|}: read z from r = x ^ 2^b
    n_q = D.bit_length() - 1
    base = v[x]
    if base == 0:
        return None
    z = 0
    for bit in range(n_q):
        if (v[x ^ (1 << bit)] / base).real < 0:
            z |= 1 << bit
    ny = bin(x & z).count("1")
    coef = base / (1j**ny)
    scale = abs(coef)
    if abs(coef.imag) > MATCH_RTOL * scale:
        return None
    coef = coef.real
    cols = np.arange(D) ^ x
    expected = coef * (1j**ny) * (1 - 2 * bit_parity(z & cols))
    if np.abs(v - expected).max() > MATCH_RTOL * scale:
        return None
    return x, z, coef


def build_operator(rows: sp.csr_matrix, blocks, keep: np.ndarray, D: int) -> Structured:
    """Group the extracted rows into structured operators (see the module docstring)."""
    keep = np.asarray(keep, dtype=bool)
    parts, part_rows, structure = [], [], []
    run_kind, run = None, []  # current run of Pauli ("pauli") or Dense ("dense") rows

    def flush():
        nonlocal run_kind, run
        if run:
            idx = np.array([r for r, _ in run], dtype=np.int64)
            if run_kind == "pauli":
                masks = [(x, z) for _, (x, z, _) in run]
                coefs = [c for _, (_, _, c) in run]
                parts.append(Pauli(masks, D.bit_length() - 1, coefs))
            else:
                parts.append(Dense(rows[idx], dim=D, check_hermitian=False))
            part_rows.append(idx)
        run_kind, run = None, []

    for blk in blocks:
        full = np.arange(blk.start, blk.stop)
        pt = None
        if keep[full].any():
            pt = match_partial_trace(rows[blk.start : blk.stop], blk.shape, blk.n_re, blk.n_im, D)
        if pt is not None:
            flush()
            parts.append(pt)
            part_rows.append(full)
            structure.append(pt.describe())
            continue
        kinds = set()
        for r in full[keep[full]]:
            nnz = rows.indptr[r + 1] - rows.indptr[r]
            p = match_pauli(rows[r], D) if D <= nnz <= 2 * D else None
            kind = "pauli" if p is not None else "dense"
            kinds.add(kind)
            if kind != run_kind:
                flush()
                run_kind = kind
            run.append((r, p))
        structure.append("+".join(sorted(kinds, reverse=True)) if kinds else "dropped")
    flush()

    order = np.concatenate(part_rows) if part_rows else np.zeros(0, dtype=np.int64)
    op = parts[0] if len(parts) == 1 else Stacked(parts)
    selected = np.flatnonzero(keep[order])
    if selected.size != order.size:
        op = Selected(op, selected)
    return Structured(op, order[selected], tuple(structure))
