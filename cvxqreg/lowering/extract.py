"""Coefficient extraction: CVXPY expressions -> Hermitian row matrices.

Every real affine functional of a Hermitian ``X`` is ``f(X) = Re Tr[Q X] + c`` for exactly one
Hermitian ``Q``. CVXPY does not see ``X`` itself: ``Complex2Real`` replaces it by real variables
``v`` (the real part, and some parametrization of the skew-symmetric imaginary part) with

    [vec Re X; vec Im X] = T v,

and CVXPY's coefficient extraction gives ``f = c^T v + c_0``. ``T`` is learned by extracting the
probe constraint ``X == 0`` through the same machinery, so nothing depends on how a given CVXPY
version parametrizes ``Im X``. For every valid ``v``, ``v = S T v`` with the left inverse
``S = (T^T T)^{-1} T^T`` (``T^T T`` is diagonal for every parametrization seen so far; a sparse
solve handles any other), hence ``f(X) = g^T [vec Re X; vec Im X] + c_0`` with ``g = S^T c``, and

    Re Q = (G_R + G_R^T) / 2,   Im Q = (G_I - G_I^T) / 2

(only the symmetric part pairs with ``Re X``, only the skew part with ``Im X``). This is the rule
``X -> Re Tr[B X]`` is represented by ``Herm(B)``. Rows are returned in the layout of
:class:`cvxqreg.operators.Dense`: ``vec(Q)`` in C order with real and imaginary parts interleaved.

A constraint ``expr(X) == B`` of shape ``(p, r)`` gives the rows ``Re vec_F(expr - B)`` and, when
CVXPY deems the expression complex, ``Im vec_F(expr - B)`` (column-major, as CVXPY), with
right-hand side ``q = -`` (constant part).

Fast path: CVXPY's canonicalization costs O(D^2) per use of ``X``, which dominates models with
many scalar constraints (``M = 2D`` Pauli expectations). Scalar equalities and the objective
whose form ``Tr[B X] + c_0`` can be read off the tree (:mod:`.linear_form`) skip it; each such form
is checked against CVXPY's own evaluation at a random point, and anything not recognised or not
confirmed goes through CVXPY. Both paths give the same rows (tested).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InvalidInputError, UnsupportedModelError
from ..hermitian import hermitian_defect
from .linear_form import (
    form_rows,
    random_point,
    sandwich_form,
    sandwich_rows,
    scalar_form,
    validate_forms,
    validate_sandwich,
    values_at,
)
from .rewrite import rewrite_expression
from .validate import ModelParts, constraint_label

__all__ = ["Block", "Extraction", "extract", "hermitian_rows"]

#: canonicalization backend: the SciPy backend handles every reshape the lowering meets (the C++
#: one has crashed on 4-D reshapes) and needs no compiled extension.
CANON_BACKEND = "SCIPY"


@dataclasses.dataclass(frozen=True)
class Block:
    """The rows that one CVXPY equality constraint produces.

    Attributes
    ----------
    index : int
        Position of the constraint in ``problem.constraints``.
    constraint : cvxpy Constraint
        The user's constraint object.
    shape : tuple of int
        Shape of the constraint expression.
    start : int
        First row of the block in the full row matrix.
    n_re, n_im : int
        Numbers of ``Re`` rows and of ``Im`` rows (each 0 or ``prod(shape)``); the ``Re`` rows
        come first.
    """

    index: int
    constraint: object
    shape: tuple
    start: int
    n_re: int
    n_im: int

    @property
    def stop(self) -> int:
        """One past the last row of the block."""
        return self.start + self.n_re + self.n_im

    @functools.cached_property
    def label(self) -> str:
        """``#index `text``` for messages (computed once: ``str`` of a big constraint is slow)."""
        return constraint_label(self.index, self.constraint)

    def row_name(self, row: int) -> str:
        """Name of full row ``row`` inside the block, e.g. ``"Im[1, 0]"`` or ``"Re"``."""
        local = row - self.start
        part = "Re" if local < self.n_re else "Im"
        entry = local if local < self.n_re else local - self.n_re
        if not self.shape:
            return part
        pos = np.unravel_index(entry, self.shape, order="F")
        return f"{part}[{', '.join(str(int(p)) for p in pos)}]"


@dataclasses.dataclass(frozen=True)
class Extraction:
    """Everything read off the CVXPY model.

    Attributes
    ----------
    dim : int
        ``D``.
    real : bool
        ``X`` is real symmetric.
    rows : scipy.sparse.csr_matrix, shape (m, 2 D^2)
        The Hermitian ``Q_i`` of all equality rows (Dense layout).
    q : ndarray, shape (m,)
        Right-hand sides.
    blocks : tuple of Block
        Row ranges, one per equality constraint, in order.
    H : ndarray, shape (D, D)
        Hermitian cost of the minimization form.
    offset : float
        Constant of the minimization form.
    sense : {1, -1}
        ``-1`` when a ``Maximize`` was negated.
    psd_scales : tuple of float
        For each PSD constraint, the ``s > 0`` with ``arg = s X``.
    fast : tuple
        Positions in ``problem.constraints`` of the equalities read by the fast path, plus
        ``"objective"`` when the objective was.
    """

    dim: int
    real: bool
    rows: sp.csr_matrix
    q: np.ndarray
    blocks: tuple
    H: np.ndarray
    offset: float
    sense: int
    psd_scales: tuple
    fast: tuple = ()


def extract(problem, parts: ModelParts) -> Extraction:
    """Read ``H``, the offset, the rows ``Q_i`` and ``q`` off a validated model.

    Scalar equalities and the objective whose form :func:`.linear_form.scalar_form` can read
    (and whose form passes :func:`.linear_form.validate_forms`) skip CVXPY's canonicalization;
    everything else goes through ``Complex2Real`` and CVXPY's coefficient extraction.
    """
    import cvxpy as cp
    from cvxpy.constraints import Equality
    from cvxpy.error import ParameterError
    from cvxpy.expressions.constants import Constant
    from cvxpy.reductions import EvalParams

    X = parts.variable
    D = int(X.shape[0])
    n_eq = len(parts.equalities)
    psd_scales = {}  # position in parts.psd -> scale s of `s X >> 0`
    probed = []
    for k, (i, c) in enumerate(parts.psd):
        arg = c.args[0]
        if arg.shape != X.shape:
            raise UnsupportedModelError(_psd_message(i, c))
        if _is_plain_x(arg, X):
            psd_scales[k] = 1.0
        else:
            probed.append(k)
    zero = Constant(np.zeros((D, D)))
    probes = [Equality(parts.psd[k][1].args[0], zero) for k in probed]
    aux = cp.Problem(problem.objective, [c for _, c in parts.equalities] + probes)
    try:
        aux, _ = EvalParams().apply(aux)
    except ParameterError as exc:  # a parameter without a value
        raise InvalidInputError(f"cannot evaluate the model's parameters: {exc}") from exc
    objective = aux.objective.args[0]
    evaluated = list(aux.constraints)

    # Fast path: scalar forms read off the tree, validated at a random point.
    fast = _fast_forms(X, objective, parts.equalities, evaluated[:n_eq])

    # CVXPY path for the rest (and for the PSD probes).
    slow = [k for k in range(n_eq) if k not in fast]
    cv = None
    if slow or probed or "objective" not in fast:
        cv = _cvxpy_extract(
            X, objective, [evaluated[k] for k in slow] + evaluated[n_eq:], "objective" in fast
        )
    for j, k in enumerate(probed):
        i, c = parts.psd[k]
        psd_scales[k] = _psd_scale(i, c, cv.parts[len(slow) + j], cv.T_re, cv.T_im)

    # Equality rows, block by block.
    slow_rows = iter(cv.parts[: len(slow)]) if cv is not None else iter(())
    blocks, row_parts, rhs_parts = [], [], []
    start = 0
    for k, (i, c) in enumerate(parts.equalities):
        size = int(np.prod(c.shape, dtype=np.int64))
        if k in fast:
            (_, c0), n_re, n_im, (re_row, im_row) = fast[k]
            if n_re:
                row_parts.append(re_row)
                rhs_parts.append(np.atleast_1d(-c0.real))
            if n_im:
                row_parts.append(im_row)
                rhs_parts.append(np.atleast_1d(-c0.imag))
        else:
            re, im = next(slow_rows)
            n_re = re[0].shape[0] if re is not None else 0
            n_im = im[0].shape[0] if im is not None else 0
            for part in (re, im):
                if part is not None:
                    row_parts.append(hermitian_rows(part[0] @ cv.S, D))
                    rhs_parts.append(-part[1])
        if n_re not in (0, size) or n_im not in (0, size):  # pragma: no cover - invariant
            raise UnsupportedModelError(f"internal: unexpected row count for {c}")
        blocks.append(Block(i, c, tuple(c.shape), start, n_re, n_im))
        start += n_re + n_im
    rows = sp.vstack(row_parts, format="csr")
    rhs = np.concatenate([np.asarray(r, dtype=np.float64) for r in rhs_parts])
    for blk in blocks:
        sl = slice(blk.start, blk.stop)
        if not (np.all(np.isfinite(rows[sl].data)) and np.all(np.isfinite(rhs[sl]))):
            raise InvalidInputError(f"constraint {blk.label} contains NaN or inf")

    # Objective.
    if "objective" in fast:
        (B, c0), _, _, _ = fast["objective"]
        # accepted only when Im f vanishes: for Hermitian X that is B == B^* exactly
        H = B if not parts.real else 0.5 * (B + B.conj().T)
        c0 = c0.real
    else:
        H, c0 = cv.H, cv.c0
    if not (np.all(np.isfinite(H)) and np.isfinite(c0)):
        raise InvalidInputError("the objective contains NaN or inf")
    sense = -1 if isinstance(problem.objective, cp.Maximize) else 1
    H = sense * (H.real if parts.real else H)
    return Extraction(
        dim=D,
        real=parts.real,
        rows=rows,
        q=rhs,
        blocks=tuple(blocks),
        H=H,
        offset=float(sense * c0),
        sense=sense,
        psd_scales=tuple(psd_scales[k] for k in range(len(parts.psd))),
        fast=tuple(parts.equalities[k][0] for k in sorted(k for k in fast if k != "objective"))
        + (("objective",) if "objective" in fast else ()),
    )


def _fast_forms(X, objective, equalities, evaluated) -> dict:
    """``{k: ((B, c_0), n_re, n_im, (re_row, im_row))}`` for the equalities (and
    ``"objective"``) that have a validated scalar form. The ``Re``/``Im`` row layout follows
    CVXPY's ``Complex2Real`` (``Re`` rows unless the constraint is imaginary, ``Im`` rows unless
    it is real); a form whose omitted part is not identically zero is left to the CVXPY path."""
    D, real = int(X.shape[0]), not X.is_complex()
    items = [
        (k, uc, c.expr) for k, ((_, uc), c) in enumerate(zip(equalities, evaluated, strict=True))
    ]
    items.append(("objective", None, objective))
    cand, sandwiches = [], []
    for k, user_c, expr in items:
        form = scalar_form(expr, X)
        if form is None and user_c is not None:
            got = _sandwich_rows(X, user_c, expr)
            if got is not None:
                sandwiches.append((k, expr, got))
            continue
        if form is None:
            continue
        if user_c is None:  # the objective: only H is needed, and Im f must vanish
            B, c0 = form
            Bd = np.zeros((D, D), complex) if B is None else (B.toarray() if sp.issparse(B) else B)
            # Im f = Tr[sym(Im B) X] for real symmetric X, Tr[Herm(-iB) X] for Hermitian X
            skew = np.any(Bd.imag + Bd.imag.T) if real else not hermitian_defect(Bd) == 0.0
            if c0.imag == 0 and not skew:
                cand.append((k, expr, (Bd, c0), 1, 0, None))
            continue
        n_re, n_im = int(not user_c.is_imag()), int(not user_c.is_real())
        rows = form_rows(form[0], D, real=real)
        c0 = form[1]
        if (not n_re and (rows[0].nnz or c0.real != 0)) or (
            not n_im and (rows[1].nnz or c0.imag != 0)
        ):
            continue  # the part the layout omits is not identically zero
        cand.append((k, expr, form, n_re, n_im, rows))
    if not cand and not sandwiches:
        return {}
    # every form is checked against CVXPY's own evaluation at one random point
    X0 = random_point(X)
    values = values_at(X, X0, [c[1] for c in cand] + [e for _, e, _ in sandwiches])
    flags = validate_forms(X, [(e, f) for _, e, f, _, _, _ in cand], X0, values[: len(cand)])
    out = {
        k: (f, n_re, n_im, rows)
        for (k, _, f, n_re, n_im, rows), ok in zip(cand, flags, strict=True)
        if ok
    }
    for (k, _, (entry, (G_re, G_im, C))), val in zip(sandwiches, values[len(cand) :], strict=True):
        if validate_sandwich(X0, val, G_re, G_im, C):
            out[k] = entry
    return out


def _sandwich_rows(X, user_c, expr):
    """``(entry, (G_re, G_im, C))`` for a matrix-valued equality ``sum_t c_t L_t X R_t + C == 0``
    (:func:`.linear_form.sandwich_form`: partial traces): ``entry`` is the fast-path entry
    ``((None, vec_F C), n_re, n_im, (re_rows, im_rows))``, the rest what
    :func:`.linear_form.validate_sandwich` checks. ``None`` when not recognised or when the part
    the layout omits is not identically zero."""
    D, real = int(X.shape[0]), not X.is_complex()
    form = sandwich_form(expr, X)
    if form is None:
        return None
    terms, C = form
    G_re, G_im = sandwich_rows(terms, D, real=real)
    n_re, n_im = int(not user_c.is_imag()), int(not user_c.is_real())
    c = C.reshape(-1, order="F")
    if (not n_re and (G_re.count_nonzero() or np.any(c.real))) or (
        not n_im and (G_im.count_nonzero() or np.any(c.imag))
    ):
        return None
    rows = (hermitian_rows(G_re, D), hermitian_rows(G_im, D))
    return ((None, c), n_re * c.size, n_im * c.size, rows), (G_re, G_im, C)


@dataclasses.dataclass
class _CvxpyRows:
    """Result of :func:`_cvxpy_extract`: per constraint ``(re, im)`` with each ``(C, b)`` or
    ``None`` (``vec_F(expr) = C v + b``), the map ``S`` from ``v`` to ``[vec Re X; vec Im X]``
    coefficients, ``T_re``/``T_im`` of the probe ``X == 0``, and the objective ``H``, ``c0``."""

    parts: list
    S: sp.csr_matrix
    T_re: sp.csr_matrix
    T_im: sp.csr_matrix
    H: np.ndarray | None
    c0: float


def _cvxpy_extract(X, objective, constraints, objective_known: bool) -> _CvxpyRows:
    """Complex2Real + one batched coefficient extraction of ``constraints`` (and the
    objective unless ``objective_known``), plus the probe ``X == 0`` that yields ``S``."""
    import cvxpy as cp
    from cvxpy.constraints import Equality
    from cvxpy.expressions.constants import Constant
    from cvxpy.reductions import Complex2Real
    from cvxpy.reductions.complex2real import complex2real
    from cvxpy.reductions.inverse_data import InverseData

    D = int(X.shape[0])
    obj = Constant(0.0) if objective_known else rewrite_expression(objective)
    cons = [c.copy([rewrite_expression(a) for a in c.args]) for c in constraints]
    cons.append(Equality(X, Constant(np.zeros((D, D)))))
    aux = cp.Problem(cp.Minimize(obj), cons)
    # the module-level test: Complex2Real.accepts returns None in CVXPY < 1.8
    if complex2real.accepts(aux):
        real_prob, inv = Complex2Real().apply(aux)
        real2imag = inv.real2imag
    else:
        real_prob, real2imag = aux, {}
    by_id = {c.id: c for c in real_prob.constraints}
    exprs = [real_prob.objective.args[0]]
    pieces = []  # per constraint: (re or None, im or None)
    for c in cons:
        pair = (by_id.get(c.id), by_id.get(real2imag.get(c.id, object())))
        pieces.append(pair)
        exprs.extend(p.expr for p in pair if p is not None)
    c_obj, c0, A, b = _affine_coefficients(exprs, InverseData(real_prob))
    sizes = [p.expr.size for pair in pieces for p in pair if p is not None]
    bounds = np.cumsum([0] + sizes)
    chunks = iter((A[lo:hi], b[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))
    per = [tuple(next(chunks) if p is not None else None for p in pair) for pair in pieces]
    probe = per.pop()
    if probe[0] is None:  # pragma: no cover - X == 0 always has a real part
        raise UnsupportedModelError("internal: Complex2Real dropped the real part of X")
    T_re = probe[0][0]
    T_im = probe[1][0] if probe[1] is not None else sp.csr_matrix((D * D, A.shape[1]))
    S = _left_inverse(sp.vstack([T_re, T_im], format="csr"))
    H = None
    if not objective_known:
        if not (np.all(np.isfinite(c_obj)) and np.isfinite(c0)):
            raise InvalidInputError("the objective contains NaN or inf")
        g = S.T @ c_obj
        G_re = g[: D * D].reshape(D, D, order="F")
        G_im = g[D * D :].reshape(D, D, order="F")
        H = 0.5 * (G_re + G_re.T) + 0.5j * (G_im - G_im.T)
    return _CvxpyRows(per, S, T_re, T_im, H, c0)


def hermitian_rows(G: sp.spmatrix, D: int) -> sp.csr_matrix:
    """Rows ``Q_i`` (Dense layout) from coefficients ``G`` on ``[vec_F Re X; vec_F Im X]``.

    ``Re Q = (G_R + G_R^T)/2`` and ``Im Q = (G_I - G_I^T)/2``, written in C order with real and
    imaginary parts interleaved.
    """
    G = sp.coo_matrix(G)
    nn = D * D
    p = G.col.astype(np.int64)
    imag = p >= nn
    e = p % nn
    j, k = e % D, e // D  # column-major (CVXPY) position (j, k)
    half = 0.5 * G.data
    sign = np.where(imag, -1.0, 1.0)
    cols = np.concatenate([2 * (j * D + k) + imag, 2 * (k * D + j) + imag])
    vals = np.concatenate([half, sign * half])
    rows = np.concatenate([G.row, G.row])
    out = sp.csr_matrix((vals, (rows, cols)), shape=(G.shape[0], 2 * nn))
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


def _affine_coefficients(exprs, inverse_data):
    """Coefficients of the stacked real affine ``exprs = [objective, e_1, ...]``.

    Returns ``(c, c_0, A, b)`` with ``objective = c^T v + c_0`` (``c`` dense) and
    ``vec_F([e_1; ...]) = A v + b`` (``A`` sparse).
    """
    from cvxpy.utilities.coeff_extractor import CoeffExtractor

    tensor = CoeffExtractor(inverse_data, CANON_BACKEND).affine(exprs)
    n = int(sum(e.size for e in exprs))
    nv = int(inverse_data.x_length)
    t = sp.coo_matrix(tensor)
    if np.iscomplexobj(t.data):  # some CVXPY versions keep a complex dtype (zero imaginary part)
        if t.nnz and np.abs(t.data.imag).max() > 0:  # pragma: no cover - never seen
            raise UnsupportedModelError("internal: CVXPY produced complex real-part coefficients")
        t = sp.coo_matrix((t.data.real, (t.row, t.col)), shape=t.shape)
    idx = t.row.astype(np.int64)
    col, row = idx // n, idx % n
    const = col == nv
    obj = (row == 0) & ~const
    c = np.bincount(col[obj], weights=t.data[obj], minlength=nv)
    lin = (row > 0) & ~const
    A = sp.csr_matrix((t.data[lin], (row[lin] - 1, col[lin])), shape=(n - 1, nv))
    b = np.zeros(n)
    np.add.at(b, row[const], t.data[const])
    return c, float(b[0]), A, b[1:]


def _left_inverse(T: sp.csr_matrix) -> sp.csr_matrix:
    """``S = (T^T T)^{-1} T^T`` for the injective parametrization map ``T``."""
    TtT = (T.T @ T).tocsr()
    d = TtT.diagonal()
    if np.any(d <= 0):
        raise UnsupportedModelError(
            "internal: CVXPY's real parametrization of X has entries that do not appear in X; "
            "this CVXPY version is not supported"
        )
    off = TtT - sp.diags(d)
    off.eliminate_zeros()
    if off.nnz == 0:
        return (sp.diags(1.0 / d) @ T.T).tocsr()
    return sp.csr_matrix(spla.spsolve(TtT.tocsc(), T.T.tocsc()))  # pragma: no cover


def _psd_scale(index, constraint, extracted, T_re, T_im) -> float:
    """The ``s > 0`` with ``arg = s X`` for a PSD constraint; raise if there is none."""
    re, im = extracted
    P_re = re[0] if re is not None else sp.csr_matrix(T_re.shape)
    P_im = im[0] if im is not None else sp.csr_matrix(T_im.shape)
    const = np.concatenate([p[1] for p in extracted if p is not None])
    T = sp.vstack([T_re, T_im], format="csr")
    P = sp.vstack([P_re, P_im], format="csr")
    s = float(P.multiply(T).sum() / T.multiply(T).sum())
    err = abs(P - s * T).max() if P.nnz or T.nnz else 0.0
    tol = 1e-12 * max(1.0, abs(s))
    if not (s > 0 and err <= tol and np.all(np.abs(const) <= tol)):
        raise UnsupportedModelError(_psd_message(index, constraint))
    return s


def _is_plain_x(arg, X) -> bool:
    """``arg`` is ``X`` or ``X + 0`` (what ``X >> 0`` builds), decided without extraction."""
    from cvxpy.atoms.affine.add_expr import AddExpression

    if arg is X:
        return True
    if not isinstance(arg, AddExpression):
        return False
    rest = [a for a in arg.args if a is not X]
    if len(rest) != len(arg.args) - 1:
        return False
    for a in rest:
        if a.variables():
            return False
        v = a.value
        if v is None or np.any(np.asarray(v.toarray() if sp.issparse(v) else v) != 0):
            return False
    return True


def _psd_message(index, constraint) -> str:
    return (
        f"PSD constraint {constraint_label(index, constraint)} is not on X itself; cvxqreg needs "
        "exactly `X >> 0`. For `X >> c*I` (or another affine argument) substitute X = Y + c*I "
        "with a new variable Y >> 0 and rewrite the objective and equalities in Y"
    )
