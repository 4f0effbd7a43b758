"""Value-preserving rewrites that make CVXPY's coefficient extraction cheap.

``cp.partial_trace(X, dims, axis)`` is the sum ``sum_j A_j X B_j`` of ``d`` sandwiches with sparse
constants ``A_j, B_j``. CVXPY's canonicalization materializes the ``D^2``-sized map of ``X``
once per term, O(d D^2) work. Since

    vec_F(sum_j A_j E B_j) = (sum_j B_j^T (x) A_j) vec_F(E) = K vec_F(E),

a sum of two or more sandwiches around the same expression ``E`` is replaced by
``reshape(K @ vec_F(E))`` with the sparse ``K`` (``nnz(K) <= sum_j nnz(A_j) nnz(B_j)``), which CVXPY
canonicalizes with one product. Likewise ``trace(C @ E) = sum(multiply(C^T, E))`` avoids the
``D^3``-entry map of ``C @ E`` for a dense ``C``; complex constants are split into real and
imaginary parts (see :func:`_split_complex_constant`); and ``real``/``conj``/``imag`` of a real
expression become the expression/the expression/zero (CVXPY cannot canonicalize ``cp.real`` of a
real expression when no complex leaf triggers ``Complex2Real``). Only constants (after
parameters are evaluated) are folded, so the rewritten tree has the same value for every ``X``.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.atoms.affine.add_expr import AddExpression
from cvxpy.atoms.affine.binary_operators import MulExpression, multiply
from cvxpy.atoms.affine.conj import conj
from cvxpy.atoms.affine.imag import imag
from cvxpy.atoms.affine.real import real
from cvxpy.atoms.affine.sum import Sum
from cvxpy.atoms.affine.transpose import transpose
from cvxpy.expressions.constants import Constant

from .compat import TRACE_ATOM as _TRACE

__all__ = ["rewrite_expression"]

#: fold a group when nnz(K) stays below this multiple of the size of the sandwiched expression
_NNZ_BUDGET = 4


def rewrite_expression(expr):
    """Return ``expr`` with complex constants split and sums of constant sandwiches (and
    ``trace(C @ E)``) folded."""
    if not expr.args:
        return _split_complex_constant(expr)
    args = [rewrite_expression(a) for a in expr.args]
    if any(n is not o for n, o in zip(args, expr.args, strict=True)):
        expr = expr.copy(args)
    if isinstance(expr, (real, conj)) and expr.args[0].is_real():
        return expr.args[0]
    if isinstance(expr, imag) and expr.args[0].is_real():
        return Constant(np.zeros(expr.shape))
    if isinstance(expr, AddExpression):
        return _fold_sum(expr)
    if isinstance(expr, _TRACE):
        return _fold_trace(expr)
    if isinstance(expr, Sum) and getattr(expr, "axis", None) is None:
        return _fold_inner_product(expr)
    return expr


def _fold_inner_product(expr):
    """``sum(multiply(C, E.T)) -> sum(multiply(C.T, E))``: the transpose moves to the constant
    (CVXPY's own ``trace(C @ E)`` rewrite produces the first form; transposing ``E`` costs a
    ``D^2``-row permutation of its coefficient map per use)."""
    arg = expr.args[0]
    if type(arg) is not multiply or arg.ndim != 2:
        return expr
    left, right = arg.args
    if _is_const(right) and not _is_const(left):
        left, right = right, left
    if not (_is_const(left) and type(right) is transpose and right.args[0].ndim == 2):
        return expr
    if getattr(right, "axes", None) not in (None, (1, 0), [1, 0]):
        return expr
    C = _dense(left.value)
    if np.ndim(C) != 2 or C.shape != right.shape:
        return expr
    return cp.sum(cp.multiply(_const(np.asarray(C).T), right.args[0]))


def _split_complex_constant(leaf):
    """``C -> Re C + 1j * Im C`` with real constants, for a complex constant ``C``.

    CVXPY decides whether a complex constant is real or imaginary with an absolute tolerance
    (``cvxpy.interface.matrix_utilities.is_complex``, 1e-5) and ``Complex2Real`` then drops the
    other part: ``0.1 + 1e-7j`` would lose its imaginary part and ``Y + 1e-9 I`` its real part.
    Real constants and the exact scalar ``1j`` leave no such decision to make.
    """
    if type(leaf) is not Constant or not np.iscomplexobj(leaf.value):
        return leaf
    v = leaf.value
    re, im = (v.real, v.imag) if not sp.issparse(v) else (v.real.tocsc(), v.imag.tocsc())
    has_re = (re.nnz if sp.issparse(re) else np.count_nonzero(re)) > 0
    has_im = (im.nnz if sp.issparse(im) else np.count_nonzero(im)) > 0
    if not has_im:
        return Constant(re)
    imag_part = Constant(1j) * Constant(im)
    return Constant(re) + imag_part if has_re else imag_part


def _const(value):
    """A new constant, split like every other complex constant."""
    return _split_complex_constant(Constant(value))


def _is_const(e) -> bool:
    return not e.variables() and not e.parameters()


def _sandwich(term):
    """``(A, E, B)`` when ``term`` is ``A @ E @ B`` with constant 2-D ``A, B``; else ``None``."""
    if type(term) is not MulExpression:
        return None
    left, right = term.args
    if type(left) is MulExpression and _is_const(left.args[0]) and _is_const(right):
        A, E, B = left.args[0], left.args[1], right
    elif type(right) is MulExpression and _is_const(left) and _is_const(right.args[1]):
        A, E, B = left, right.args[0], right.args[1]
    else:
        return None
    if _is_const(E) or not (A.ndim == E.ndim == B.ndim == 2):
        return None
    return A, E, B


def _fold_sum(expr):
    """Replace each group of >= 2 sandwiches around one ``E`` by ``reshape(K @ vec_F(E))``."""
    groups: dict[int, list] = {}
    for i, t in enumerate(expr.args):
        s = _sandwich(t) if t.shape == expr.shape else None
        if s is not None:
            groups.setdefault(id(s[1]), []).append((i, s))
    folded, replaced = [], set()
    for members in groups.values():
        if len(members) < 2:
            continue
        E = members[0][1][1]
        mats = [(sp.csr_matrix(a.value), sp.csr_matrix(b.value)) for _, (a, _, b) in members]
        if sum(a.nnz * b.nnz for a, b in mats) > _NNZ_BUDGET * E.size + 64:
            continue
        K = sum(sp.kron(b.T, a, format="csr") for a, b in mats)
        vec = cp.reshape(E, (E.size,), order="F")
        shape = expr.shape
        folded.append(cp.reshape(_const(K) @ vec, shape, order="F"))
        replaced.update(i for i, _ in members)
    if not folded:
        return expr
    rest = [t for i, t in enumerate(expr.args) if i not in replaced]
    terms = rest + folded
    return terms[0] if len(terms) == 1 else expr.copy(terms)


def _fold_trace(expr):
    """``trace(C @ E) -> sum(multiply(C^T, E))`` and ``trace(E @ C) -> sum(multiply(E, C^T))``."""
    arg = expr.args[0]
    if type(arg) is not MulExpression or arg.ndim != 2:
        return expr
    left, right = arg.args
    if _is_const(left) and not _is_const(right) and right.ndim == 2:
        C, E = np.asarray(_dense(left.value)), right
        return cp.sum(cp.multiply(_const(C.T), E))
    if _is_const(right) and not _is_const(left) and left.ndim == 2:
        C, E = np.asarray(_dense(right.value)), left
        return cp.sum(cp.multiply(E, _const(C.T)))
    return expr


def _dense(v):
    return v.toarray() if sp.issparse(v) else v
