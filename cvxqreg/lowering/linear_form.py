"""Scalar affine forms read directly off the expression tree (the fast path of the extraction).

For Hermitian ``X`` every real-linear scalar functional is complex-linear, because
``conj(X_jk) = X_kj``:

    f(X) = Tr[B X] + c_0,        B in C^{D x D}, c_0 in C,

with ``real(f) = Tr[Herm(B) X] + Re c_0``, ``imag(f) = Tr[Herm(-iB) X] + Im c_0`` and
``conj(f) = Tr[B^H X] + conj(c_0)`` (``Herm(B) = (B + B^H)/2``); the same holds for real symmetric
``X``. :func:`scalar_form` computes ``(B, c_0)`` for the scalar expressions that models are made of
(``trace``, ``real``/``imag``/``conj``, ``sum(multiply(C, X))``, ``X[j, k]``, sums, constant
scalings) in O(nnz(C)) instead of the O(D^2) that CVXPY's canonicalization spends on every use of
``X``; anything else returns ``None`` and goes through CVXPY. The caller validates every form by
evaluating the expression at a random point (:func:`validate_forms`).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.binary_operators import DivExpression, MulExpression, multiply
from cvxpy.atoms.affine.conj import conj
from cvxpy.atoms.affine.imag import imag
from cvxpy.atoms.affine.index import index
from cvxpy.atoms.affine.promote import Promote
from cvxpy.atoms.affine.real import real
from cvxpy.atoms.affine.sum import Sum
from cvxpy.atoms.affine.transpose import transpose
from cvxpy.atoms.affine.unary_operators import NegExpression

from ..hermitian import hermitian_part, row_blocks
from .compat import TRACE_ATOM as _TRACE

__all__ = ["form_rows", "scalar_form", "validate_forms"]


def scalar_form(expr, X):
    """``(B, c_0)`` with ``expr(X) = Tr[B X] + c_0`` on Hermitian ``X``, or ``None``.

    ``B`` is a complex ``D x D`` matrix (CSR, or an ndarray when a dense constant is involved)
    or ``None`` (zero).
    """
    if expr.size != 1:
        return None
    try:
        return _form(expr, X)
    except _NoForm:
        return None


class _NoForm(Exception):
    pass


def _is_const(e) -> bool:
    return not e.variables() and not e.parameters()


def _scalar_value(e) -> complex:
    v = e.value
    v = v.toarray() if sp.issparse(v) else np.asarray(v)
    if v.size != 1:
        raise _NoForm
    return complex(v.reshape(-1)[0])


def _matrix_value(e, D):
    """The ``D x D`` value of a constant: complex CSR when CVXPY holds it sparse, else a complex
    ndarray (a dense cost matrix stays dense)."""
    v = e.value
    M = sp.csr_matrix(v, dtype=np.complex128) if sp.issparse(v) else np.asarray(v, complex)
    if M.shape != (D, D):
        raise _NoForm
    return M


def _dense(B) -> np.ndarray:
    return B.toarray() if sp.issparse(B) else B


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if sp.issparse(a) and sp.issparse(b):
        return (a + b).tocsr()
    return _dense(a) + _dense(b)


def _scale(form, s: complex):
    B, c = form
    return (None if B is None else B * s), c * s


def _form(e, X):
    D = X.shape[0]
    if _is_const(e):
        return None, _scalar_value(e)
    t = type(e)
    if t is AddExpression:
        B, c = None, 0j
        for a in e.args:
            if a.size != 1:
                raise _NoForm
            Ba, ca = _form(a, X)
            B, c = _add(B, Ba), c + ca
        return B, c
    if t is NegExpression:
        return _scale(_form(e.args[0], X), -1.0)
    if t is Promote:
        return _form(e.args[0], X)
    if t in (multiply, MulExpression) and e.args[0].size == 1 and e.args[1].size == 1:
        left, right = e.args
        if _is_const(left):
            return _scale(_form(right, X), _scalar_value(left))
        if _is_const(right):
            return _scale(_form(left, X), _scalar_value(right))
        raise _NoForm
    if t is DivExpression and _is_const(e.args[1]) and e.args[1].size == 1:
        return _scale(_form(e.args[0], X), 1.0 / _scalar_value(e.args[1]))
    if t in (real, imag, conj):
        B, c = _form(e.args[0], X)
        if t is conj:
            return (None if B is None else B.conj().T), c.conjugate()
        if t is imag:
            B = None if B is None else -1j * B
            return _herm(B), complex(c.imag)
        return _herm(B), complex(c.real)
    if t is Sum and getattr(e, "axis", None) is None:
        return _sum_form(e.args[0], X, D)
    if t is _TRACE:
        return _trace_form(e.args[0], X, D)
    if t is index and e.args[0] is X:
        flat = np.arange(D * D).reshape(D, D)[e.key]
        if np.size(flat) != 1:
            raise _NoForm
        j, k = divmod(int(np.asarray(flat).reshape(-1)[0]), D)
        return sp.csr_matrix(([1.0 + 0j], ([k], [j])), shape=(D, D)), 0j  # X_jk = Tr[E_kj X]
    raise _NoForm


def _herm(B):
    if B is None:
        return None
    if not sp.issparse(B):
        return hermitian_part(B)
    return (0.5 * (B + B.conj().T)).tocsr()


def _sum_form(arg, X, D):
    """``sum(multiply(C, X)) = Tr[C^T X]``, ``sum(multiply(C, X^T)) = Tr[C X]``, ``sum(X)``."""
    if arg is X:
        return sp.csr_matrix(np.ones((D, D), dtype=np.complex128)), 0j
    if type(arg) is not multiply:
        raise _NoForm
    left, right = arg.args
    if _is_const(right):
        left, right = right, left
    if not _is_const(left):
        raise _NoForm
    C = _matrix_value(left, D)
    if right is X:
        return (C.T.tocsr() if sp.issparse(C) else C.T), 0j
    if type(right) is transpose and right.args[0] is X:
        if getattr(right, "axes", None) not in (None, (1, 0), [1, 0]):
            raise _NoForm
        return C, 0j
    raise _NoForm


def _trace_form(arg, X, D):
    """``trace(X) = Tr[I X]``, ``trace(C @ X) = trace(X @ C) = Tr[C X]``."""
    if arg is X:
        return sp.identity(D, dtype=np.complex128, format="csr"), 0j
    if type(arg) is MulExpression:
        left, right = arg.args
        if right is X and _is_const(left):
            return _matrix_value(left, D), 0j
        if left is X and _is_const(right):
            return _matrix_value(right, D), 0j
    raise _NoForm


def random_point(X, rng=None) -> np.ndarray:
    """A random positive definite point of ``X``'s kind (real symmetric or Hermitian) in
    ``O(D^2)``: ``G = (R + R^*)/2`` with ``R`` uniform in the centred unit square, shifted by
    ``||G||_F + 1 >= ||G||_2 + 1``."""
    rng = np.random.default_rng(12345) if rng is None else rng
    D = X.shape[0]
    if X.is_complex():
        R = np.empty((D, D), dtype=np.complex128)
        R.real, R.imag = rng.random((D, D)), rng.random((D, D))
        R -= 0.5 + 0.5j
    else:
        R = rng.random((D, D)) - 0.5
    G = hermitian_part(R, math.inf)  # (R is not Hermitian)
    del R
    G[np.diag_indices(D)] += np.linalg.norm(G) + 1.0
    return G


def values_at(X, X0, exprs) -> list[np.ndarray]:
    """The values of ``exprs`` at ``X = X0`` (one assignment; ``X.value`` is restored)."""
    old = X.value
    try:
        if _plain_hermitian(X):  # X0 is of X's kind by construction: CVXPY's check is moot
            X.save_value(X0)
        else:
            X.value = X0
        out = []
        for e in exprs:
            v = e.value
            out.append(np.asarray(v.toarray() if sp.issparse(v) else v, dtype=np.complex128))
        return out
    finally:
        X.save_value(old)


#: the CVXPY leaf attributes every point of :func:`random_point` satisfies
_RANDOM_POINT_ATTRIBUTES = frozenset({"complex", "hermitian", "symmetric", "PSD", "real"})


def _plain_hermitian(X) -> bool:
    """Whether ``X`` (a CVXPY variable) carries no attribute beyond those of
    :func:`random_point`'s points (Hermitian or real symmetric, positive definite). Assigning
    such a point through ``X.value`` makes CVXPY project it onto those attributes and compare:
    three ``D x D`` passes and as many temporaries (about 1 s at ``D = 2500`` on a 2-core
    machine, more than the rest of the lowering's validation)."""
    attrs = getattr(X, "attributes", None)
    if not isinstance(attrs, dict) or getattr(X, "sparse_idx", None) is not None:
        return False
    return all(not v or k in _RANDOM_POINT_ATTRIBUTES for k, v in attrs.items())


def validate_forms(X, items, X0=None, values=None) -> list[bool]:
    """Check ``expr(X0) == Tr[B X0] + c_0`` at a random positive definite ``X0``
    (:func:`random_point`).

    ``items`` is a list of ``(expr, (B, c_0))``; returns one flag per item. ``values`` are the
    expressions' values at ``X0`` when already computed (:func:`values_at`).
    """
    if not items:
        return []
    X0 = random_point(X) if X0 is None else X0
    if values is None:
        values = values_at(X, X0, [e for e, _ in items])
    flags = []
    for val, (_, (B, c0)) in zip(values, items, strict=True):
        want = complex(val.reshape(-1)[0])
        if B is None:
            got, mag = c0, abs(c0)
        elif sp.issparse(B):
            prod = B.multiply(X0.T)
            got = complex(prod.sum()) + c0
            mag = float(abs(prod).sum()) + abs(c0)
        else:  # dense (a cost matrix): by row blocks, without D x D temporaries
            got, mag = c0, abs(c0)
            for b in row_blocks(B.shape[0]):
                prod = B[b] * X0[:, b].T
                got += complex(prod.sum())
                mag += float(np.abs(prod).sum())
        flags.append(abs(want - got) <= 1e-9 * (1.0 + mag))
    return flags


def form_rows(B, D: int, *, real: bool):
    """The ``Re`` and ``Im`` rows (Dense layout) of ``Tr[B X]``: ``Herm(B)`` and ``Herm(-iB)``;
    for real symmetric ``X`` the real symmetric ``sym(Re B)`` and ``sym(Im B)``.

    With ``B = sum v E_rc``: ``Herm(B)`` puts ``v/2`` at ``(r, c)`` and ``conj(v)/2`` at ``(c, r)``,
    and ``Herm(-iB)`` puts ``-iv/2`` and ``conj(-iv)/2 = i conj(v)/2`` there.
    """
    shape = (1, 2 * D * D)
    if B is None:
        return sp.csr_matrix(shape), sp.csr_matrix(shape)
    B = sp.coo_matrix(B)
    r, c = B.row.astype(np.int64), B.col.astype(np.int64)
    v = np.asarray(B.data, dtype=np.complex128)
    a, b = 2 * (r * D + c), 2 * (c * D + r)  # real slots of (r, c) and (c, r)
    h = 0.5
    if real:
        re_cols, re_vals = np.r_[a, b], h * np.r_[v.real, v.real]
        im_cols, im_vals = np.r_[a, b], h * np.r_[v.imag, v.imag]
    else:
        re_cols = np.r_[a, a + 1, b, b + 1]
        re_vals = h * np.r_[v.real, v.imag, v.real, -v.imag]
        im_cols = re_cols
        im_vals = h * np.r_[v.imag, -v.real, v.imag, v.real]
    out = []
    for cols, vals in ((re_cols, re_vals), (im_cols, im_vals)):
        row = sp.csr_matrix((vals, (np.zeros(cols.size, dtype=np.int64), cols)), shape=shape)
        row.sum_duplicates()
        row.eliminate_zeros()
        out.append(row)
    return out


# ------------------------------------------------------------------ matrix-valued sandwich forms
#: largest number of nonzeros a sandwich form may produce before the CVXPY path is preferred
_MAX_SANDWICH_NNZ = 50_000_000


def sandwich_form(expr, X):
    """``(terms, C)`` with ``expr(X) = sum_t c_t L_t X R_t + C`` for a matrix-valued ``expr``, or
    ``None``.

    ``terms`` is a list of ``(c_t, L_t, R_t)`` (complex scalar, CSR or ``None`` for the identity);
    ``C`` a complex ndarray of ``expr``'s shape. Recognizes sums, negation, scalar constant
    scalings and divisions, constant left/right matrix products and CVXPY's wrap atoms: what
    ``cp.partial_trace`` builds (a sum of ``(e_j^T (x) I) X (e_j (x) I)`` sandwiches), so that
    partial-trace constraints skip CVXPY's ``O(D^2)``-per-term canonicalization. Then
    ``vec_F(expr) = sum_t c_t (R_t^T (x) L_t) vec_F(X) + vec_F(C)`` (:func:`sandwich_rows`).
    """
    if len(expr.shape) != 2 or expr.size == 1:
        return None
    try:
        terms, C = _sandwich(expr, X)
    except _NoForm:
        return None
    D = X.shape[0]
    nnz = sum((D if L is None else L.nnz) * (D if R is None else R.nnz) for _, L, R in terms)
    if nnz > _MAX_SANDWICH_NNZ:
        return None
    return terms, C


def _const_matrix(e):
    v = e.value
    if sp.issparse(v):
        return sp.csr_matrix(v, dtype=np.complex128)
    v = np.asarray(v, dtype=np.complex128)
    if v.ndim != 2:
        raise _NoForm
    return sp.csr_matrix(v)


def _scalar_const(e) -> complex | None:
    """The value of a constant scalar, or of a constant scalar promoted to a matrix; else None."""
    if not _is_const(e):
        return None
    if e.size == 1:
        return _scalar_value(e)
    if type(e) is Promote and e.args[0].size == 1:
        return _scalar_value(e.args[0])
    return None


def _sandwich(e, X):
    from cvxpy.atoms.affine.wraps import Wrap

    shape = e.shape
    if _is_const(e):
        v = e.value
        v = v.toarray() if sp.issparse(v) else np.asarray(v)
        return [], np.broadcast_to(np.asarray(v, dtype=np.complex128), shape).copy()
    if e is X:
        return [(1.0 + 0j, None, None)], np.zeros(shape, dtype=np.complex128)
    t = type(e)
    if t is AddExpression:
        terms, C = [], np.zeros(shape, dtype=np.complex128)
        for a in e.args:
            if a.shape != shape and not (_is_const(a) and a.size == 1):
                raise _NoForm  # a broadcast variable term
            ta, Ca = _sandwich(a, X) if a.shape == shape else ([], _sandwich(a, X)[1])
            terms += ta
            C = C + Ca
        return terms, C
    if t is NegExpression:
        terms, C = _sandwich(e.args[0], X)
        return [(-c, L, R) for c, L, R in terms], -C
    if isinstance(e, Wrap):
        return _sandwich(e.args[0], X)
    if t in (multiply, MulExpression, DivExpression) and _scalar_const(e.args[1]) is not None:
        s = _scalar_const(e.args[1])
        s = 1.0 / s if t is DivExpression else s
        terms, C = _sandwich(e.args[0], X)
        return [(c * s, L, R) for c, L, R in terms], C * s
    if t in (multiply, MulExpression) and _scalar_const(e.args[0]) is not None:
        s = _scalar_const(e.args[0])
        terms, C = _sandwich(e.args[1], X)
        return [(c * s, L, R) for c, L, R in terms], C * s
    if t is MulExpression:
        left, right = e.args
        if _is_const(left) and len(right.shape) == 2:
            M = _const_matrix(left)
            terms, C = _sandwich(right, X)
            return [(c, M if L is None else (M @ L).tocsr(), R) for c, L, R in terms], M @ C
        if _is_const(right) and len(left.shape) == 2:
            M = _const_matrix(right)
            terms, C = _sandwich(left, X)
            return [(c, L, M if R is None else (R @ M).tocsr()) for c, L, R in terms], (M.T @ C.T).T
    raise _NoForm


def sandwich_rows(terms, D: int, *, real: bool):
    """Coefficients of ``vec_F(sum_t c_t L_t X R_t)`` on ``[vec_F Re X; vec_F Im X]``: the ``Re``
    and ``Im`` parts, each a CSR matrix with one row per entry (``[Re G, -Im G]`` and
    ``[Im G, Re G]`` for ``G = sum_t c_t R_t^T (x) L_t``; for real ``X`` only the ``vec_F Re X``
    columns). Feed them to :func:`cvxqreg.lowering.extract.hermitian_rows`."""
    eye = sp.identity(D, dtype=np.complex128, format="csr")
    G = None
    for c, L, R in terms:
        L = eye if L is None else L
        R = eye if R is None else R
        K = sp.kron(R.T, L, format="csr") * c
        G = K if G is None else G + K
    Gr, Gi = G.real.tocsr(), G.imag.tocsr()
    if real:
        return Gr, Gi
    return sp.hstack([Gr, -Gi], format="csr"), sp.hstack([Gi, Gr], format="csr")


def validate_sandwich(X0, value, G_re, G_im, C) -> bool:
    """Check ``vec_F(expr(X0)) == G vec_F(X0) + vec_F(C)`` (real and imaginary parts), with
    ``value`` the expression's value at the random point ``X0`` (:func:`values_at`). Each
    nonzero of ``G`` reads its entry of ``X0`` directly (``O(nnz G)``, not ``O(D^2)``)."""
    want = np.asarray(value, dtype=np.complex128).reshape(-1, order="F")
    c = C.reshape(-1, order="F")
    re, re_mag = _rows_at(G_re, X0)
    im, im_mag = _rows_at(G_im, X0)
    got = (re + c.real) + 1j * (im + c.imag)
    mag = re_mag + im_mag + np.abs(c)
    return bool(want.shape == got.shape and np.all(np.abs(want - got) <= 1e-9 * (1.0 + mag)))


def _rows_at(G, X0) -> tuple[np.ndarray, np.ndarray]:
    """``(G x, |G| |x|)`` for ``x = [vec_F Re X0; vec_F Im X0]`` (the columns of ``G`` beyond
    ``vec_F Re X0`` read ``Im X0``), gathering for each nonzero of ``G`` the one entry it reads."""
    G = sp.csr_matrix(G)
    D = X0.shape[0]
    nn = D * D
    cols = G.indices.astype(np.int64)
    p = cols % nn  # vec_F position (row p % D, column p // D) of Re X (cols < nn) or Im X
    vals = X0[p % D, p // D]
    prod = G.data * np.where(cols < nn, vals.real, vals.imag)
    rows = np.repeat(np.arange(G.shape[0]), np.diff(G.indptr))
    return (
        np.bincount(rows, weights=prod, minlength=G.shape[0]),
        np.bincount(rows, weights=np.abs(prod), minlength=G.shape[0]),
    )
