"""Linearly dependent rows and the consistency of their right-hand sides.

If ``sum_i w_i Q_i = 0`` then every feasible ``X`` has ``sum_i w_i q_i = 0`` ([CGMPP]
Proposition 2.3): Hermitian matrix equalities repeat themselves (``Im`` of a diagonal entry is
identically zero, ``Re``/``Im`` of ``(j, k)`` and ``(k, j)`` agree up to sign) and the two marginals
of a coupling both fix its trace. The dual needs an independent set of rows; a dependent row is
dropped only after its right-hand side has been checked against the rows it depends on.

Method. Rows are normalized to unit norm (``q`` with them). Rows that share no column are
orthogonal, so the rows split into connected components of the row/column incidence graph and
each component is analysed alone: the components of partial traces and Pauli strings are tiny.
In a component, unpivoted Householder QR of the rows (as columns) gives ``|r_ii|``, an upper bound
on the distance of row ``i`` from the span of the rows before it; rows with ``|r_ii| <= 1e-10``
are flagged, the others kept (earlier rows are preferred). A least-squares fit of the flagged rows
on the kept ones confirms each flag (a flag whose residual is not small is kept after all) and
gives the weights ``w`` for the check ``|q_d - w^T q_S| <= 1e-8 (1 + |q_d| + |w|^T |q_S|)``.
Components too large for a dense ``k x c`` matrix use the Gram matrix ``G = M M^T`` instead (same
dependencies, squared conditioning: distances below about ``1e-5`` count as dependent there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ..errors import InfeasibleDataError

__all__ = ["Dependence", "independent_rows"]

#: rows with norm below this (relative to the largest row) are identically zero
ZERO_RTOL = 1e-13
#: distance (unit rows) below which a row counts as dependent on the rows before it
RANK_TOL = 1e-10
#: residual (unit rows) below which a flagged row is confirmed as dependent
CONFIRM_TOL = 1e-8
#: relative tolerance of the right-hand side check
RHS_RTOL = 1e-8
#: largest dense ``k x c`` component matrix (entries); above it the Gram matrix is used
DENSE_LIMIT = 25_000_000


@dataclasses.dataclass(frozen=True)
class Dependence:
    """Result of :func:`independent_rows`.

    Attributes
    ----------
    keep : ndarray of bool
        The rows kept (an independent set spanning all rows).
    zero : ndarray of int
        Rows that are identically zero (right-hand side zero within tolerance).
    dependent : ndarray of int
        Nonzero rows dropped as combinations of kept rows (right-hand sides consistent).
    """

    keep: np.ndarray
    zero: np.ndarray
    dependent: np.ndarray


def independent_rows(
    rows: sp.csr_matrix, q: np.ndarray, describe: Callable[[int], tuple[int, str, str]]
) -> Dependence:
    """Find an independent subset of ``rows`` and check the right-hand sides of the others.

    Parameters
    ----------
    rows : scipy.sparse.csr_matrix, shape (m, n)
        The rows ``Q_i`` (any real layout).
    q : ndarray, shape (m,)
        Right-hand sides.
    describe : callable
        ``describe(i) -> (constraint_index, constraint_label, row_name)`` naming row ``i``.

    Raises
    ------
    InfeasibleDataError
        When an identically zero row has a nonzero right-hand side, or a dependent row's
        right-hand side disagrees with the rows it depends on; the message names the constraints.
    """
    rows = sp.csr_matrix(rows)
    q = np.asarray(q, dtype=np.float64)
    m = rows.shape[0]
    if rows.nnz:  # drop the unused columns (SciPy's products allocate the full width, 2 D^2)
        _, cols = np.unique(rows.indices, return_inverse=True)
        rows = sp.csr_matrix((rows.data, cols.ravel(), rows.indptr), shape=(m, int(cols.max()) + 1))
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    big = norms.max() if m else 0.0
    zero = norms <= ZERO_RTOL * big if big > 0 else np.ones(m, dtype=bool)
    for i in np.flatnonzero(zero):
        if abs(q[i]) > RHS_RTOL * (1.0 + abs(q[i])):
            _, label, part = describe(i)
            raise InfeasibleDataError(
                f"row {part} of constraint {label} is identically zero on Hermitian X (for "
                "instance the imaginary part of a diagonal entry of a Hermitian expression) but "
                f"requires {q[i]:.6g}; no Hermitian X satisfies it. Make the right-hand side "
                "Hermitian (real diagonal, conjugate-symmetric off-diagonal entries)."
            )
    keep = ~zero
    nz = np.flatnonzero(keep)
    Rn = sp.diags(1.0 / norms[nz]) @ rows[nz]
    qn = q[nz] / norms[nz]
    order, sizes = _components(Rn)
    Rp = Rn[order]  # rows grouped by component: each component is a contiguous slice
    starts = np.concatenate([[0], np.cumsum(sizes)])
    dependent = list(_pairs(Rp, qn, order, starts, sizes, nz, norms, describe))
    for c in np.flatnonzero(sizes > 2):
        lo, hi = starts[c], starts[c + 1]
        comp = order[lo:hi]
        sub = Rp[lo:hi]
        _, cols = np.unique(sub.indices, return_inverse=True)
        ncol = int(cols.max()) + 1 if sub.nnz else 0
        sub = sp.csr_matrix((sub.data, cols, sub.indptr), shape=(hi - lo, ncol))
        if (hi - lo) * ncol <= DENSE_LIMIT:
            A = sub.T.toarray()
        else:
            A = (sub @ sub.T).toarray()
        dep, W, S = _dependent_columns(A)
        if dep.size == 0:
            continue
        _check_rhs(comp, dep, S, W, qn, nz, norms, describe)
        dependent.extend(nz[comp[dep]])
    dependent = np.array(sorted(dependent), dtype=np.int64)
    keep[dependent] = False
    return Dependence(keep=keep, zero=np.flatnonzero(zero), dependent=dependent)


def _components(R: sp.csr_matrix):
    """Connected components of the row/column incidence graph of ``R``.

    Returns ``(order, sizes)``: the rows grouped by component (increasing within each, so
    earlier rows are preferred when a component is analysed) and the component sizes.
    """
    m = R.shape[0]
    used, cols = np.unique(R.indices, return_inverse=True)
    P = sp.csr_matrix((np.ones(R.nnz), cols.ravel(), R.indptr), shape=(m, used.size))
    graph = sp.bmat([[None, P], [P.T, None]], format="csr")
    _, labels = connected_components(graph, directed=False)
    row_labels = labels[:m]
    order = np.argsort(row_labels, kind="stable")
    sizes = np.diff(np.flatnonzero(np.diff(np.r_[-1, row_labels[order], -2])))
    return order, sizes


def _pairs(Rp, qn, order, starts, sizes, nz, norms, describe):
    """Components of two rows ``(a, b)``, ``a < b``, vectorized: ``b`` depends on ``a`` when
    ``||R_b - (R_a . R_b) R_a|| <= RANK_TOL`` (unit rows); yields the dependent rows."""
    two = np.flatnonzero(sizes == 2)
    if two.size == 0:
        return
    ia, ib = starts[two], starts[two] + 1
    Ra, Rb = Rp[ia], Rp[ib]
    dot = np.asarray(Ra.multiply(Rb).sum(axis=1)).ravel()
    diff = Rb - sp.diags(dot) @ Ra
    dist = np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())
    dep = np.flatnonzero(dist <= RANK_TOL)
    # the right-hand side test of _check_rhs for all pairs at once; _check_rhs raises on the first
    # pair that fails it (with its message)
    qa, qb = qn[order[ia[dep]]], qn[order[ib[dep]]]
    w = dot[dep]
    bad = np.abs(qb - w * qa) > RHS_RTOL * (1.0 + np.abs(qb) + np.abs(w) * np.abs(qa))
    for k in dep[bad]:
        comp = order[[ia[k], ib[k]]]
        _check_rhs(
            comp, np.array([1]), np.array([0]), np.array([[dot[k]]]), qn, nz, norms, describe
        )
    yield from nz[order[ib[dep]]]


def _dependent_columns(A: np.ndarray):
    """Columns of ``A`` that depend on earlier ones.

    Returns ``(dep, W, S)``: dependent column positions, least-squares weights
    ``A[:, dep] ~ A[:, S] @ W`` and the kept positions ``S``.
    """
    k = A.shape[1]
    R = sla.qr(A, mode="r", check_finite=False)[0]
    diag = np.zeros(k)
    t = min(R.shape)
    diag[:t] = np.abs(np.diagonal(R)[:t])
    flagged = diag <= RANK_TOL
    while True:
        dep, S = np.flatnonzero(flagged), np.flatnonzero(~flagged)
        if dep.size == 0:
            return dep, np.zeros((0, 0)), S
        W = sla.lstsq(A[:, S], A[:, dep], check_finite=False)[0]
        resid = np.linalg.norm(A[:, dep] - A[:, S] @ W, axis=0)
        worst = int(np.argmax(resid))
        if resid[worst] <= CONFIRM_TOL:
            return dep, W, S
        flagged[dep[worst]] = False  # its small r_ii was an underestimate: keep it


def _check_rhs(comp, dep, S, W, qn, nz, norms, describe) -> None:
    """Raise unless each dependent row's (normalized) right-hand side is the combination
    ``W^T q_S`` of the kept rows' right-hand sides."""
    pred = W.T @ qn[comp[S]]
    mag = np.abs(W).T @ np.abs(qn[comp[S]])
    for j, d in enumerate(dep):
        qd = qn[comp[d]]
        if abs(qd - pred[j]) <= RHS_RTOL * (1.0 + abs(qd) + mag[j]):
            continue
        row = nz[comp[d]]
        involved = [row] + [nz[comp[S[i]]] for i in np.flatnonzero(np.abs(W[:, j]) > 1e-10)]
        seen, names = set(), []
        for r in involved:
            cidx, label, _ = describe(r)
            if cidx not in seen:
                seen.add(cidx)
                names.append(label)
        _, label, part = describe(row)
        raise InfeasibleDataError(
            f"inconsistent equality constraints: row {part} of {label} is a linear combination "
            f"of other constraint rows, which imply the value {pred[j] * norms[row]:.10g}, but "
            f"it requires {qd * norms[row]:.10g} (Proposition 2.3: linearly dependent rows need "
            f"consistent right-hand sides). Constraints involved: {'; '.join(names)}. Fix the "
            "data (e.g. give both marginals of a coupling the same trace) or drop the redundant "
            "constraint."
        )
