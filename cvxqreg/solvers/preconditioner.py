"""A preconditioner for Newton-CG on bipartite marginal (transport) constraints.

For constraints ``s_A Tr_B X = rho_A``, ``s_B Tr_A X = rho_B`` on ``X`` on ``C^{n_A} (x) C^{n_B}``
(QWD, quantum transport, the Ising marginals) and the von Neumann regularizer, the negative dual
Hessian ``-Hess D = (1/eps) A Dpsi'_W A*`` (docs/theory.md, 'Daleckii-Krein Hessian') has a closed
form when the state is a product, ``X = X_A (x) X_B / Tr X`` with marginals ``X_A = Tr_B X``,
``X_B = Tr_A X``: since ``exp(W_A (x) I + I (x) W_B) = exp(W_A) (x) exp(W_B)``,

    <Q_i, Dexp(Q_j)>/eps = (s_A^2/eps) Re sum_kl conj(J_i)_kl L_kl (J_j)_kl       (i, j rows of A)
                         = (s_A s_B/eps) <Q_i, X> <Q_j, X> / Tr X                  (i of A, j of B)

with ``J_i = U_A^* B_i U_A`` (``Q_i = s_A B_i (x) I``, ``X_A = U_A diag(a) U_A^*``) and ``L`` the
logarithmic means ``L_kl = (a_k - a_l) / (log a_k - log a_l)`` (``L_kk = a_k``): the Kubo-Mori
metric of the marginal. :func:`marginal_preconditioner` forms this ``m x m`` matrix ``P`` from
the marginals of the current iterate (``O(m n^4 + m^3)`` flops, ``n = max(n_A, n_B)``: less
than a full Hessian-vector product or an eigendecomposition at ``D = n^2``), takes the same
Schur complement along the trace direction as the oracle (docs/theory.md, 'The Hessian of the
eliminated dual'), adds the Levenberg-Marquardt shift and factors it by Cholesky. For a product
state ``P`` equals ``-Hess D`` exactly, so preconditioned CG converges in one iteration;
elsewhere it is an SPD approximation whose quality depends on how far the state is from a
product.

Guards: the marginals' eigenvalues are floored at ``1e-12`` of the largest (a rank-deficient
marginal would make ``P`` singular); the directions on which ``-Hess D`` vanishes (``null(A*)``,
the rows dropped by the real reduction, and ``c`` under elimination), which CG's residuals never
enter, are projected out of ``P`` and put at its mean curvature, so that ``P`` is SPD; a failed
Cholesky returns ``None``. Newton-CG falls back to plain CG when this returns ``None``, when
preconditioned CG meets non-positive curvature, or when preconditioned steps stop making progress
(:mod:`cvxqreg.solvers.newton`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg

from ..operators.partial_trace import PartialTrace
from ..operators.stacked import Selected, Stacked

__all__ = [
    "PRECONDITIONERS",
    "MarginalStructure",
    "fast_marginal_preconditioner",
    "marginal_preconditioner",
    "marginal_structure",
    "projected_inverse",
    "schur_complement",
]

#: ``preconditioner=`` choices of Newton-CG (:class:`~cvxqreg.DualSolver`)
PRECONDITIONERS = ("auto", "none", "marginal", "marginal_dense", "pauli")
#: the fast form is used while a part's rows miss at most this many coordinates of its marginal
#: (each costs one ``O(n^3)`` application when the preconditioner is built)
MAX_MISSING = 64
#: marginal eigenvalues are floored at this fraction of the largest
_MARGINAL_FLOOR = 1e-12
#: the preconditioner is a dense m x m matrix: not used above this many rows (288 MB; QWD with
#: 50 levels has m = 5000)
MAX_ROWS = 6000


@dataclasses.dataclass(frozen=True)
class MarginalStructure:
    """The two :class:`~cvxqreg.operators.PartialTrace` parts of a bipartite marginal problem:
    the stacked operator ``base``, its parts, and the rows kept (``None``: all)."""

    base: Stacked
    parts: tuple[PartialTrace, PartialTrace]
    rows: np.ndarray | None
    #: per part, the map of its rows onto the coordinates of the marginal (:class:`_Coordinates`),
    #: or ``None`` when the fast form does not apply (:func:`_coordinates`)
    coords: tuple | None
    #: orthonormal basis (``m x k``) of the directions on which ``D(alpha)`` is flat: the null
    #: space of ``A*`` and the rows dropped by the real reduction
    flat: np.ndarray


def marginal_structure(oracle) -> MarginalStructure | None:
    """The bipartite marginal structure of the oracle's problem, or ``None`` when the
    preconditioner does not apply: not the von Neumann regularizer, several PSD blocks, more than
    :data:`MAX_ROWS` rows, or constraints other than the two marginals ``Tr_B X``, ``Tr_A X`` of
    one bipartition (each possibly a subset of rows)."""
    if getattr(oracle.reg, "name", None) != "von_neumann" or oracle.problem.blocks is not None:
        return None
    if oracle.q.size > MAX_ROWS:
        return None
    A, rows = oracle.A, None
    if isinstance(A, Selected):
        A, rows = A.base, np.asarray(A.rows)
    if not isinstance(A, Stacked) or len(A.parts) != 2:
        return None
    p, q = A.parts
    if not (isinstance(p, PartialTrace) and isinstance(q, PartialTrace)):
        return None
    if len(p.dims) != 2 or p.dims != q.dims or {p.axes, q.axes} != {(0,), (1,)}:
        return None
    flat = oracle._shared.get("flat_directions")
    if flat is None:
        flat = oracle._shared["flat_directions"] = _flat_directions(oracle)
    coords = oracle._shared.get("marginal_coordinates", False)
    if coords is False:
        coords = oracle._shared["marginal_coordinates"] = _coordinates(A, rows, oracle.real)
    return MarginalStructure(A, (p, q), rows, coords, flat)


def _flat_directions(oracle) -> np.ndarray:
    """Orthonormal basis (``m x k``) of the directions on which ``-Hess D`` vanishes:
    ``null(A*)`` and the rows the real reduction drops (:attr:`DualOracle.imag_rows`).

    Found from the structure in ``O(m)``, not from the ``m x m`` Gram matrix: each row of a
    marginal is one real coordinate of ``Herm(Z)`` (``Re Y_jk`` and ``Re Y_kj`` the same one,
    ``Im Y_jj`` none) with a weight, so ``A*(alpha) = s_A H_A (x) I + s_B I (x) H_B`` vanishes
    exactly when, in every coordinate, the weighted sum of its rows vanishes, except that the
    diagonal coordinates may carry ``H_A = c I / s_A``, ``H_B = -c I / s_B``."""
    structure_rows = oracle.A.rows if isinstance(oracle.A, Selected) else None
    base = oracle.A.base if isinstance(oracle.A, Selected) else oracle.A
    m = base.n_rows if structure_rows is None else len(structure_rows)
    imag = np.zeros(m, bool) if oracle.imag_rows is None else np.asarray(oracle.imag_rows, bool)
    groups: dict[tuple, list[tuple[int, float]]] = {}
    zero = []
    for k, (part, (positions, local)) in enumerate(
        zip(base.parts, base.split_rows(structure_rows), strict=True)
    ):
        for pos, im, i, j in zip(positions, *part.row_entries(local), strict=True):  # entry (i, j)
            pos, im, i, j = int(pos), int(im), int(i), int(j)
            if im and i == j:
                zero.append(pos)  # Herm(i E_jj) = 0
                continue
            kind = "d" if i == j else ("im" if im else "re")
            w = 1.0 if i == j else (0.5 if (i < j or not im) else -0.5)
            groups.setdefault((k, kind, min(i, j), max(i, j)), []).append((pos, part.scale * w))
    zero.sort()
    vecs = [np.eye(m)[:, [p for p in zero if not imag[p]]]]
    diag = np.zeros(m)
    n_diag = 0
    for (k, kind, _, _), members in groups.items():
        idx = np.array([p for p, _ in members])
        if np.all(imag[idx]):
            continue  # covered by the unit vectors of the real reduction's rows
        w = np.array([w for _, w in members])
        if idx.size > 1:
            basis = scipy.linalg.null_space(w[None, :])
            v = np.zeros((m, basis.shape[1]))
            v[idx] = basis
            vecs.append(v)
        if kind == "d":  # the identity: s_A (w . alpha) = c on A's diagonal, -c on B's
            n_diag += 1
            diag[idx] = (1.0 if k == 0 else -1.0) * w / (w @ w)
    if n_diag == sum(p.n_out for p in base.parts):
        vecs.append((diag / np.linalg.norm(diag))[:, None])
    if imag.any():
        vecs.append(np.eye(m)[:, imag])
    return np.concatenate(vecs, axis=1)


@dataclasses.dataclass(frozen=True)
class _Coordinates:
    """The rows of one marginal part as signed coordinates of its ``n x n`` Hermitian marginal
    ``Y``: the row at position ``pos[i]`` of ``P`` reads ``sign[i] * t[slot[i]]`` (times the
    part's scale), where ``t`` (length ``2 n^2``) holds ``Re Y_jk`` at ``j + n k`` (``j >= k``)
    and ``Im Y_jk`` at ``n^2 + j + n k`` (``j > k``); ``share[i]``: one over the number of rows
    reading that slot; ``missing``: the slots no row reads (``Im`` slots only when the state is
    complex)."""

    n: int
    pos: np.ndarray
    slot: np.ndarray
    sign: np.ndarray
    share: np.ndarray
    missing: np.ndarray


def _coordinates(base: Stacked, rows: np.ndarray | None, real_state: bool) -> tuple | None:
    """The :class:`_Coordinates` of both parts, or ``None`` when a part misses more than
    :data:`MAX_MISSING` coordinates (the fast form then does not apply). Row ``j + n k`` of a
    part reads ``Re Y_jk``, row ``n^2 + j + n k`` reads ``Im Y_jk``; above the diagonal they
    read ``Re Y_kj`` and ``-Im Y_kj``, ``Im Y_jj = 0`` reads nothing."""
    out = []
    for part, (mine, local) in zip(base.parts, base.split_rows(rows), strict=True):
        n = part.n_out
        nn = n * n
        im, row, col = part.row_entries(local)  # entry (row, col)
        lower = row >= col
        j, kk = np.where(lower, row, col), np.where(lower, col, row)
        reads = ~((im == 1) & (row == col))
        slot = (im * nn + j + n * kk)[reads]
        jj, ii = np.divmod(np.arange(nn), n)  # slot ii + n jj is entry (ii, jj)
        active = [np.flatnonzero(ii >= jj)]
        if not real_state:  # a real state's imaginary coordinates decouple (see above)
            active.append(nn + np.flatnonzero(ii > jj))
        missing = np.setdiff1d(np.concatenate(active), slot)
        if missing.size > MAX_MISSING:
            return None
        sign = np.where((im == 1) & ~lower, -1.0, 1.0)[reads]
        share = 1.0 / np.bincount(slot, minlength=2 * nn)[slot]
        out.append(_Coordinates(n, mine[reads], slot, sign, share, missing))
    return tuple(out)


def _row_matrices(part: PartialTrace, U: np.ndarray) -> np.ndarray:
    """``J_i = U^* Herm(Z_i) U`` for the rows of ``part`` (``(rows, n, n)``), ``Z_i`` the unit
    matrix of row ``i`` (``E_jk`` for ``Re Y_jk``, ``i E_jk`` for ``Im Y_jk``, column-major)."""
    n = part.n_out
    O = U.conj()[:, None, :, None] * U[None, :, None, :]  # O[j, k, a, b] = conj(U_ja) U_kb
    Ot = O.transpose(1, 0, 2, 3)
    re = 0.5 * (O + Ot)
    # row j + n k is entry (j, k): the [k, j] order flattens to it
    J = re.transpose(1, 0, 2, 3).reshape(n * n, n, n)
    if not part.real:
        im = 0.5j * (O - Ot)
        J = np.concatenate([J, im.transpose(1, 0, 2, 3).reshape(n * n, n, n)])
    return J


def _log_mean(a: np.ndarray) -> np.ndarray:
    """``L_kl = (a_k - a_l) / (log a_k - log a_l)``, ``L_kk = a_k`` (``a > 0``), computed as
    ``a_l (x - 1) / log x`` with ``x = a_k / a_l`` and ``log1p`` near ``x = 1``."""
    hi = np.maximum(a[:, None], a[None, :])
    lo = np.minimum(a[:, None], a[None, :])
    y = hi / lo - 1.0
    safe = np.where(y > 0, y, 1.0)
    return np.where(y > 1e-12, lo * safe / np.log1p(safe), lo * (1.0 + 0.5 * y))


def _marginal_eigen(structure: MarginalStructure, oracle, ev):
    """``(u_full, trace, [(a, U_a), ...])``: the rows ``A(X)`` of the (unnormalized) state, its
    trace, and per part the eigendecomposition of its marginal ``rho = Herm(Y) / s`` with the
    eigenvalues floored at :data:`_MARGINAL_FLOOR` of the largest."""
    be = oracle.be
    V = oracle.factor(ev.U, ev.w)
    u_full = np.asarray(be.to_host(structure.base.apply_spectral(V)), dtype=np.float64)
    trace = float(be.to_host(be.xp.sum(be.xp.abs(V) ** 2)))
    eig = []
    for k, part in enumerate(structure.parts):
        n, s = part.n_out, part.scale
        off = structure.base.offsets[k]
        y = u_full[off : off + part.n_rows]
        nn = n * n
        Y = y[:nn].reshape(n, n, order="F").astype(np.complex128)
        if not part.real:
            Y = Y + 1j * y[nn:].reshape(n, n, order="F")
        a, Ua = np.linalg.eigh(0.5 * (Y + Y.conj().T) / s)
        a = np.maximum(a, _MARGINAL_FLOOR * max(float(a[-1]), np.finfo(float).tiny))
        eig.append((a, Ua))
    return u_full, trace, eig


def marginal_matrix(structure: MarginalStructure, oracle, ev) -> np.ndarray:
    """The product-state approximation ``P`` of ``-Hess D`` (before the Schur complement) as an
    ``(m, m)`` host matrix over the oracle's rows, from the marginals of ``ev``'s state."""
    eps = oracle.eps
    u_full, trace, eig = _marginal_eigen(structure, oracle, ev)
    offsets = structure.base.offsets
    rows = np.arange(offsets[-1]) if structure.rows is None else structure.rows
    m = rows.size
    P = np.empty((m, m))
    sel, us = [], []
    for k, part in enumerate(structure.parts):
        s, off = part.scale, offsets[k]
        a, Ua = eig[k]
        L = _log_mean(a).reshape(-1)
        mine = np.flatnonzero((rows >= off) & (rows < off + part.n_rows))  # positions in P
        J = _row_matrices(part, Ua)[rows[mine] - off].reshape(mine.size, -1)
        # Re sum_kl conj(J_i)_kl L_kl (J_j)_kl = B_i . B_j with B = [Re J, Im J] sqrt(L)
        sq = np.sqrt(L)[None, :]
        B = np.concatenate([J.real * sq, J.imag * sq], axis=1)
        P[np.ix_(mine, mine)] = (s * s / eps) * (B @ B.T)
        sel.append(mine)
        us.append(u_full[rows[mine]])
    cross = np.outer(us[0], us[1]) / (eps * trace)
    P[np.ix_(sel[0], sel[1])] = cross
    P[np.ix_(sel[1], sel[0])] = cross.T
    return 0.5 * (P + P.T)


def marginal_preconditioner(
    structure: MarginalStructure, oracle, ev, mu: float, form: str = "auto"
):
    """``r -> P_mu^{-1} r`` for an SPD approximation ``P_mu`` of ``-Hess D + mu I`` from the
    marginals of ``ev``'s state, or ``None`` when it cannot be formed. ``form="dense"``: the
    ``m x m`` matrix ``P`` of the module docstring, factored by Cholesky (``O(m n^4 + m^3)``
    to form, ``O(m^2)`` per application); ``"fast"``: its block diagonal inverted in closed form
    (:func:`fast_marginal_preconditioner`, ``O(n^3)`` per application); ``"auto"``: ``"fast"``
    where the rows are coordinates of the marginals, else ``"dense"``."""
    if form not in ("auto", "fast", "dense"):
        raise ValueError(f"form must be 'auto', 'fast' or 'dense', got {form!r}")
    if form == "fast" or (form == "auto" and structure.coords is not None):
        return fast_marginal_preconditioner(structure, oracle, ev, mu)
    P = schur_complement(marginal_matrix(structure, oracle, ev), oracle.c)
    # the directions on which D is flat (and c under elimination) are null for -Hess D; the
    # residuals of CG are orthogonal to them: project them out of P and put them at P's mean
    # curvature, so that P is SPD and exact on their complement
    N = structure.flat
    if oracle.c is not None:
        ch = oracle.c - N @ (N.T @ oracle.c)
        N = np.concatenate([N, (ch / np.linalg.norm(ch))[:, None]], axis=1)
    unit = np.count_nonzero(N, axis=0) == 1  # coordinate directions: drop their rows
    kept = np.flatnonzero(~np.any(N[:, unit] != 0, axis=1))
    return projected_inverse(P[np.ix_(kept, kept)], kept, P.shape[0], N[kept][:, ~unit], mu)


def schur_complement(P: np.ndarray, c: np.ndarray | None) -> np.ndarray:
    """``P - h h^T / (c^T h)``, ``h = P c``: the Schur complement along the trace direction ``c``
    that the oracle takes of ``-Hess D`` under elimination (docs/theory.md, 'The Hessian of the
    eliminated dual'); ``P`` itself when ``c`` is ``None`` or ``P`` has no curvature along it."""
    if c is None:
        return P
    h = P @ c
    chc = float(c @ h)
    return P - np.outer(h, h) / chc if chc > 0 else P


def projected_inverse(P: np.ndarray, kept: np.ndarray, m: int, N: np.ndarray, mu: float):
    """``r -> P_mu^{-1} r`` for an approximation ``P`` (``k x k``, symmetric positive
    semidefinite) of ``-Hess D`` on the rows ``kept`` of ``m``, or ``None`` when it cannot be
    factored.

    The other rows, and the orthonormal columns of ``N`` (``k x f``), span directions on which
    ``-Hess D`` vanishes (rows it does not see, ``null(A*)``, ``c`` under elimination), which
    CG's residuals never enter: they are projected out of ``P`` and put at its mean curvature
    ``tr(P) / (k - f)``, so that ``P`` is SPD and exact on their complement; then the shift
    ``mu I`` and a Cholesky factorization. Applying it costs ``O(k^2)``."""
    k = P.shape[0]
    if N.shape[1]:
        PN = P @ N
        P = P - N @ PN.T - PN @ N.T + N @ (N.T @ PN) @ N.T
    if N.shape[1] >= k:
        return None
    scale = float(np.trace(P)) / (k - N.shape[1])
    if not (np.isfinite(scale) and scale > 0):
        return None
    P = 0.5 * (P + P.T) + scale * (N @ N.T)
    P[np.diag_indices(k)] += mu + 1e-12 * scale
    try:
        factor = scipy.linalg.cho_factor(P, check_finite=False, overwrite_a=True)
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not np.all(np.isfinite(factor[0])):
        return None
    if k == m:
        return lambda r: scipy.linalg.cho_solve(factor, r, check_finite=False)

    def solve(r):
        z = r / (scale + mu)
        z[kept] = scipy.linalg.cho_solve(factor, r[kept], check_finite=False)
        return z

    return solve


def _kubo_mori_inverse(n: int, a: np.ndarray, U: np.ndarray, weight: float, shift: float):
    """``t -> weight Dg^{-1} Z^T (L + shift)^{-1}[Z Dg^{-1} t]`` on the coordinates ``t``
    (``(2 n^2,)`` or ``(2 n^2, k)``) of :class:`_Coordinates`: ``Z Dg^{-1} t`` is the Hermitian
    matrix with coordinates ``t``, ``L`` the Kubo-Mori metric ``Y -> U (L o (U^* Y U)) U^*`` of
    the marginal ``U diag(a) U^*``, and ``Dg^{-1} Z^T`` reads the coordinates back, doubled off
    the diagonal (``Dg = Z^T Z`` is 1 on diagonal and 1/2 on off-diagonal coordinates)."""
    inv = 1.0 / (_log_mean(a) + shift)
    low = np.tril(np.ones((n, n), bool), -1)
    Uh = U.conj().T

    def apply(t):
        T = t.reshape(n, n, 2, -1, order="F")  # [j, k, re/im, column]
        Y = np.where(low[..., None], T[:, :, 0] + 1j * T[:, :, 1], 0.0)
        Y = Y + Y.conj().transpose(1, 0, 2)
        idx = np.arange(n)
        Y[idx, idx] = T[idx, idx, 0]
        Y = np.moveaxis(Y, 2, 0)  # (column, n, n)
        Y = np.moveaxis(U @ ((Uh @ Y @ U) * inv) @ Uh, 0, 2)
        out = np.zeros((n, n, 2, Y.shape[2]))
        out[:, :, 0] = np.where(low[..., None], 2.0 * Y.real, 0.0)
        out[idx, idx, 0] = Y.real[idx, idx]
        out[:, :, 1] = np.where(low[..., None], 2.0 * Y.imag, 0.0)
        return weight * out.reshape(t.shape, order="F")

    return apply


def _flat_projection(structure: MarginalStructure, oracle):
    """``v -> v - N N^T v`` for an orthonormal basis ``N`` of the flat directions (and ``c``
    under elimination): unit vectors are zeroed, the other directions (few) projected out."""
    key = "marginal_flat_projection"
    if key in oracle._shared:
        return oracle._shared[key]
    N = structure.flat
    if oracle.c is not None:
        N = np.concatenate([N, oracle.c[:, None]], axis=1)
    unit = np.count_nonzero(N, axis=0) == 1
    zero = np.flatnonzero(np.any(N[:, unit] != 0, axis=1))
    rest = N[:, ~unit].copy()
    rest[zero] = 0.0
    Q = scipy.linalg.orth(rest) if rest.shape[1] else rest

    def project(v):
        v = v.copy()
        v[zero] = 0.0
        return v - Q @ (Q.T @ v) if Q.shape[1] else v

    oracle._shared[key] = project
    return project


def fast_marginal_preconditioner(structure: MarginalStructure, oracle, ev, mu: float):
    """``r -> Pi P_mu^{-1} Pi r`` for the product-state approximation ``P`` of the module
    docstring, in ``O(n^3)`` flops per application instead of ``O(m^2)`` after an ``O(m^3)``
    factorization (``m ~ 2 n^2``); ``Pi`` projects onto the complement of the flat directions
    and of ``c``.

    ``P = B + W K W^T``: the block diagonal ``B`` holds the two marginals' Kubo-Mori metrics,
    ``P_AA = (s^2/eps) Z^T L Z`` over the marginal's coordinates (``Z^T Z = Dg``, 1 on
    diagonal and 1/2 on off-diagonal coordinates), so

        P_AA^{-1} = (eps/s^2) Dg^{-1} Z^T L^{-1} Z Dg^{-1}

    is two ``n x n`` basis changes (:func:`_kubo_mori_inverse`); the rank-two cross term
    (``W = [u_A, u_B]``, ``K = [[0, 1], [1, 0]] / (eps Tr X)``) enters by Woodbury. Rows that
    miss coordinates (a lowered model drops one diagonal entry of a marginal) take the inverse
    of a principal submatrix, ``F_KK - F_KM F_MM^{-1} F_MK``; rows that read one coordinate
    ``d`` times (``Re Y_jk`` and ``Re Y_kj``) share it (``S^T (S S^T)^{-1} F (S S^T)^{-1} S``
    is the pseudo-inverse of ``S^T F^{-1} S`` for the row-to-coordinate map ``S``). Under
    elimination the Schur complement ``M = P - h h^T / (c^T h)``, ``h = P c``, needs nothing
    more: for ``r`` orthogonal to ``c`` the solution of ``M z = r`` orthogonal to ``c`` is
    ``z = Pi P^{-1} r`` (as ``P^{-1} h = c``). So without a shift this is the dense form on the
    complement of the flat directions, exactly (where the rows are independent, as in a lowered
    model). The shift ``mu I`` is carried as ``2 mu eps/s^2`` on ``L`` (exact on the
    off-diagonal coordinates, twice too large on the diagonal ones). ``None`` when the rows
    are not coordinates of the marginals (:func:`_coordinates`): use the dense form."""
    if structure.coords is None:
        return None
    eps = oracle.eps
    u_full, trace, eig = _marginal_eigen(structure, oracle, ev)
    blocks = []
    for part, co, (a, Ua) in zip(structure.parts, structure.coords, eig, strict=True):
        s2 = part.scale**2
        F = _kubo_mori_inverse(co.n, a, Ua, eps / s2, 2.0 * mu * eps / s2)
        corr = None
        if co.missing.size:
            E = np.zeros((2 * co.n * co.n, co.missing.size))
            E[co.missing, np.arange(co.missing.size)] = 1.0
            FM = F(E)
            try:
                corr = (FM, scipy.linalg.cho_factor(FM[co.missing], check_finite=False))
            except (np.linalg.LinAlgError, ValueError):
                return None
        blocks.append((co, F, corr))
    project = _flat_projection(structure, oracle)
    m = oracle.q.size

    def block_solve(r):
        z = np.zeros(r.shape)
        for co, F, corr in blocks:
            t = np.zeros((2 * co.n * co.n,) + r.shape[1:])
            np.add.at(t, co.slot, (co.share * co.sign).reshape(-1, *[1] * (r.ndim - 1)) * r[co.pos])
            f = F(t)
            if corr is not None:
                FM, fac = corr
                f = f - FM @ scipy.linalg.cho_solve(fac, FM.T @ t, check_finite=False)
            z[co.pos] = (co.share * co.sign).reshape(-1, *[1] * (r.ndim - 1)) * f[co.slot]
        return z

    # the cross term W K W^T (W = [u_A, u_B] on the two parts' rows, K = [[0, 1], [1, 0]] /
    # (eps Tr X)) by Woodbury: P^{-1} = B^{-1} - B^{-1} W (K^{-1} + W^T B^{-1} W)^{-1} W^T B^{-1}
    W = np.zeros((m, 2))
    offsets = structure.base.offsets
    rows = np.arange(offsets[-1]) if structure.rows is None else structure.rows
    for k in range(2):
        mine = (rows >= offsets[k]) & (rows < offsets[k + 1])
        W[mine, k] = u_full[rows[mine]]
    BW = block_solve(W)
    cap = eps * trace * np.array([[0.0, 1.0], [1.0, 0.0]]) + W.T @ BW
    cap = 0.5 * (cap + cap.T)
    w_cap = np.linalg.eigvalsh(cap)
    cross = None
    if np.all(np.isfinite(w_cap)) and np.min(np.abs(w_cap)) > 1e-8 * np.max(np.abs(w_cap)):
        cross = (BW, np.linalg.inv(cap))

    def solve(r):
        r = project(r)
        z = block_solve(r)
        if cross is not None:
            z = z - cross[0] @ (cross[1] @ (cross[0].T @ r))
        return project(z)

    return solve
