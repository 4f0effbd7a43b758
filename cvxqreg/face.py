"""Facial reduction of couplings with singular marginals (docs/bounds.md, 'Singular marginals:
the face of the couplings').

For ``X >= 0`` with ``Tr_2 X = rho`` and ``Tr_1 X = sigma``, every feasible ``X`` lives on
``supp(rho) (x) supp(sigma)``: if ``rho v = 0`` then ``Tr[(v v^* (x) I) X] = 0``, and a PSD ``X``
with a zero diagonal block has zero rows there. With isometries ``V1``, ``V2`` onto the supports
(``rho = V1 rho' V1^*``, ``sigma = V2 sigma' V2^*``, ``rho'``, ``sigma'`` positive definite) and
``V = V1 (x) V2``, the feasible states are exactly ``X = V Y V^*`` with ``Y`` a coupling of
``rho'`` and ``sigma'``, and

    F_0 = min {Tr[(V^* H V) Y] : Y >= 0, Tr_2 Y = rho', Tr_1 Y = sigma'}

on ``C^(r1 r2)``: the *face* problem. It has a strictly feasible point (``rho' (x) sigma'``), so
:func:`cvxqreg.bounds.feasible_upper_bound` gives an upper bound there, while the original problem
has none (no positive definite coupling exists).

**What is guaranteed.** Numerically the marginals are singular only up to rounding: their
smallest eigenvalues are ``O(u)`` rather than zero. The face keeps the eigenvalues above
``cut lambda_max`` and drops the rest (at most :attr:`CouplingFace.dropped` in absolute value),
so an upper bound from the face is the exact value for marginals changed by that much (the
dropped eigenvalues set to zero). The lower bound needs no such caveat: a dual point of the face
problem lifts to the original one, ``alpha = V1 a' V1^* + c K1``, ``beta = V2 b' V2^* + c K2``
(``K1``, ``K2`` the projectors onto the dropped eigenvectors), and for any ``c`` weak duality on
the *original* data gives a rigorous bound (:func:`lifted_lower_bound`); as ``c -> -inf`` it
tends to the face problem's shift bound.
"""

from __future__ import annotations

import dataclasses
import math
import weakref

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = [
    "CouplingFace",
    "coupling_face",
    "coupling_gauge",
    "lift_dual",
    "lifted_lower_bound",
    "restrict_dual",
]

#: eigenvalues of a marginal at or below this fraction of its largest are dropped
FACE_CUT = 1e-10

#: entries at most this many units of rounding of the largest entry of their matrix are zeros
#: for the phase graph of :func:`_gauge_phases`
GAUGE_ROUNDING = 32
#: gauged data count as real when every imaginary part is at most this many units of rounding
#: of the largest entry of its matrix: the phases accumulate rounding along the spanning tree
#: (measured on QWD: 2, 5 and 92 units at n = 6, 12 and 50). Dropping such an imaginary part
#: changes no energy of a real state (``Tr[i E Y] = 0`` for antisymmetric ``E``), and bounds are
#: scored on the data as given
GAUGE_REAL = 1024
#: ``DualSolver(phase_gauge="auto")`` looks for a gauge from this dimension on. Finding it costs
#: about 0.05-0.2 s once per problem (the marginals, lowering the gauged problem) and mapping back
#: a few milliseconds per solve. Measured on QWD, eps = 1e-2, one BLAS thread, idle machine
#: (first solve / best of three repeated solves, gauged against as given): D = 16 0.098 / 0.035 s
#: against 0.058 / 0.034 s, D = 64 0.28 / 0.16 against 0.20 / 0.18, D = 100 0.38 / 0.26 against
#: 0.37 / 0.34, D = 144 0.61 / 0.38 against 0.84 / 0.89
GAUGE_MIN_DIM = 100

_FACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GAUGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True, eq=False)
class CouplingFace:
    """The face ``supp(rho) (x) supp(sigma)`` of a coupling problem with singular marginals.

    Attributes
    ----------
    problem : LoweredProblem
        The face problem (minimization form, no offset) on ``C^(r1 r2)``.
    V1, V2 : ndarray
        Orthonormal bases of the supports of ``rho`` (``n1 x r1``) and ``sigma`` (``n2 x r2``).
    K1, K2 : ndarray
        Projectors onto the dropped eigenvectors (``I - V1 V1^*``, ``I - V2 V2^*``).
    dims : tuple of int
        ``(n1, n2)``.
    dropped : float
        The largest absolute eigenvalue dropped from either marginal: the face problem's data
        differ from the original by at most this in each dropped direction. For a gauge, the
        largest imaginary part dropped from the gauged marginals (rounding).
    kind : {"face", "gauge"}
        ``"face"``: the supports of singular marginals (:func:`coupling_face`); ``"gauge"``: a
        diagonal unitary ``V1 (x) V2`` in which the data are real (:func:`coupling_gauge`; no
        eigenvalue dropped, ``K1 = K2 = 0``).
    """

    problem: object
    V1: np.ndarray
    V2: np.ndarray
    K1: np.ndarray
    K2: np.ndarray
    dims: tuple[int, int]
    dropped: float
    kind: str = "face"

    @property
    def ranks(self) -> tuple[int, int]:
        """``(r1, r2)``."""
        return (self.V1.shape[1], self.V2.shape[1])

    @property
    def isometry(self) -> np.ndarray:
        """``V = V1 (x) V2`` (``D x r1 r2``)."""
        return np.kron(self.V1, self.V2)

    @property
    def drops(self) -> bool:
        """Whether eigenvectors of a marginal were dropped (``K1`` or ``K2`` nonzero): false for
        a gauge, whose lifted dual vectors then have no free multiple ``c``."""
        return bool(np.any(self.K1) or np.any(self.K2))

    def _phases(self) -> np.ndarray | None:
        """The diagonal of ``V`` for a gauge (``None`` for a face)."""
        if self.kind != "gauge":
            return None
        return np.kron(np.diag(self.V1), np.diag(self.V2))

    def restrict(self, X: np.ndarray) -> np.ndarray:
        """``V^* X V``."""
        g = self._phases()
        if g is not None:
            Y = g.conj()[:, None] * np.asarray(X) * g[None, :]
        else:
            V = self.isometry
            Y = V.conj().T @ np.asarray(X) @ V
        return 0.5 * (Y + Y.conj().T)

    def lift(self, Y: np.ndarray) -> np.ndarray:
        """``V Y V^*``: a state of the face as a state of the original space."""
        g = self._phases()
        if g is not None:
            X = g[:, None] * np.asarray(Y) * g.conj()[None, :]
        else:
            V = self.isometry
            X = V @ np.asarray(Y) @ V.conj().T
        return 0.5 * (X + X.conj().T)

    def describe(self) -> str:
        (n1, n2), (r1, r2) = self.dims, self.ranks
        if self.kind == "gauge":
            return (
                f"the data are real in the phase gauge diag(g1) (x) diag(g2) on {n1} x {n2} "
                "(solved there as a real problem: real eigendecompositions)"
            )
        return (
            f"the couplings live on supp(rho) (x) supp(sigma), of dimension {r1} x {r2} = "
            f"{r1 * r2} (of {n1 * n2}); the marginals' eigenvalues below {FACE_CUT:g} times "
            f"the largest (at most {self.dropped:.1e}) were taken as zero"
        )


def _support(M: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    w, V = np.linalg.eigh(0.5 * (M + M.conj().T))
    keep = w > FACE_CUT * max(float(w[-1]), 0.0)
    dropped = float(np.max(np.abs(w[~keep]))) if np.any(~keep) else 0.0
    Vk = V[:, keep]
    K = V[:, ~keep] @ V[:, ~keep].conj().T
    return Vk, np.diag(w[keep]), dropped, K


def coupling_face(problem) -> CouplingFace | None:
    """The face of a coupling problem whose marginals are singular (numerically: eigenvalues
    at most :data:`FACE_CUT` times the largest), or ``None`` when the problem is not a coupling
    of two marginals or both marginals are positive definite (cached per problem)."""
    if problem in _FACES:
        return _FACES[problem]
    from .bounds import coupling_marginals

    out = None
    marg = coupling_marginals(problem)
    if marg is not None:
        dims, rho, sigma = marg
        V1, rho_r, d1, K1 = _support(rho)
        V2, sigma_r, d2, K2 = _support(sigma)
        if (V1.shape[1] < dims[0] or V2.shape[1] < dims[1]) and V1.shape[1] and V2.shape[1]:
            from .lowering import lower
            from .problems._instance import _qot_problem

            V = np.kron(V1, V2)
            Hr = V.conj().T @ np.asarray(problem.H) @ V
            Hr = 0.5 * (Hr + Hr.conj().T)
            if np.allclose(Hr.imag, 0, atol=0) and np.isrealobj(V):
                Hr = Hr.real
            # the marginals in their eigenbases: diagonal, so exactly Hermitian
            cp_problem, _, _ = _qot_problem(Hr, rho_r, sigma_r)
            out = CouplingFace(lower(cp_problem), V1, V2, K1, K2, dims, max(d1, d2))
    _FACES[problem] = out
    return out


def _gauge_phases(
    H: np.ndarray, rho: np.ndarray, sigma: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unit phases ``(g1, g2)`` that make ``H``, ``rho`` and ``sigma`` real in the gauge
    ``g = g1 (x) g2`` when any product of diagonal phases does.

    On the ``D = n1 n2`` basis states, the entries of ``H``, ``rho (x) I`` and ``I (x) sigma``
    above rounding are the edges of a graph, weighted by their size relative to the largest
    entry of their matrix. Along a maximum spanning tree (SciPy's minimum spanning tree of
    ``2 - weight``: the best-resolved phases) the phases ``g_v = g_u conj(M_uv) / |M_uv|`` make
    every tree entry real and positive; on a connected graph every gauge that makes the data real
    equals this one up to a common phase and signs, and a gauge of product form factors as
    ``g1_i = g_(i,0)``, ``g2_j = g_(0,j) / g_(0,0)`` up to signs (real orthogonal, harmless). The
    caller checks the result on all three matrices."""
    from scipy.sparse import coo_matrix, csr_matrix, identity, kron
    from scipy.sparse.csgraph import (
        breadth_first_order,
        connected_components,
        minimum_spanning_tree,
    )

    n1, n2 = rho.shape[0], sigma.shape[0]
    D = n1 * n2

    def rel(M):
        a = np.abs(M)
        top = max(float(a.max()), 1e-300)
        return csr_matrix(np.where(a > GAUGE_ROUNDING * np.finfo(float).eps * top, a / top, 0))

    w_rho = kron(rel(rho), identity(n2), format="csr")
    w_sigma = kron(identity(n1), rel(sigma), format="csr")
    w_H = rel(H)
    weight = w_H.maximum(w_rho).maximum(w_sigma).tocoo()
    off = weight.row != weight.col
    cost = coo_matrix(
        (2.0 - weight.data[off], (weight.row[off], weight.col[off])), shape=(D, D)
    ).tocsr()
    tree = minimum_spanning_tree(cost)
    _, labels = connected_components(tree, directed=False)
    phi = np.zeros(D)
    for c in np.unique(labels):
        root = int(np.flatnonzero(labels == c)[0])
        order, pred = breadth_first_order(tree, root, directed=False)
        kids = order[1:]
        u = pred[kids]
        (i, j), (k, l) = np.divmod(u, n2), np.divmod(kids, n2)
        # the entry of the best-resolved of the three matrices on each tree edge
        cand = np.stack(
            [
                np.asarray(w_H[u, kids]).ravel(),
                np.where(j == l, np.asarray(w_rho[u, kids]).ravel(), 0.0),
                np.where(i == k, np.asarray(w_sigma[u, kids]).ravel(), 0.0),
            ]
        )
        vals = np.stack([H[u, kids], rho[i, k], sigma[j, l]])
        angle = np.angle(vals[np.argmax(cand, axis=0), np.arange(kids.size)])
        for v, p, a in zip(kids, u, angle, strict=True):  # parents come before children
            phi[v] = phi[p] - a
    g = np.exp(1j * phi).reshape(n1, n2)
    return g[:, 0], g[0, :] / g[0, 0]


def _imag_excess(M: np.ndarray) -> float:
    """``max |Im M|`` in units of :data:`GAUGE_REAL` roundings of ``max |M|`` (``<= 1``: real
    to rounding)."""
    scale = GAUGE_REAL * np.finfo(float).eps * max(float(np.abs(M).max()), 1e-300)
    return float(np.abs(M.imag).max()) / scale if np.iscomplexobj(M) else 0.0


def coupling_gauge(problem) -> CouplingFace | None:
    """A diagonal unitary ``V = diag(g1) (x) diag(g2)`` in which a complex coupling problem has
    real data, or ``None`` (cached per problem).

    ``X -> V^* X V`` maps the couplings of ``rho`` and ``sigma`` onto those of
    ``rho' = diag(g1)^* rho diag(g1)`` and ``sigma'`` and keeps ``Tr[H X]``, the spectrum (so
    every spectral regularizer) and positivity: the problem with ``H' = V^* H V`` is the same
    problem. When ``H'``, ``rho'`` and ``sigma'`` are real to rounding, its regularized optimum
    is real and every eigendecomposition of the solve is real symmetric: about 4x fewer flops
    than complex Hermitian (docs/theory.md, 'Real data, and real data in a phase gauge'). The
    phases come from a spanning tree of the data's nonzero entries (:func:`_gauge_phases`) and
    are then checked on all three matrices; ``None`` when the data are already real, the check
    fails, or the problem is not a coupling of two marginals. Example: the paper's QWD instance
    (Gaussian marginals whose means and principal axes lie along one direction of phase space,
    and a cost invariant under the joint phase rotation
    ``diag(e^{i theta k}) (x) diag(e^{i theta k})``)."""
    if problem in _GAUGES:
        return _GAUGES[problem]
    from .bounds import coupling_marginals

    out = None
    H = np.asarray(problem.H)
    marg = None if problem.has_inequalities else coupling_marginals(problem)
    if marg is not None:
        dims, rho, sigma = marg
        # marginals read off a restored state carry imaginary rounding: real to rounding is real
        if max(_imag_excess(H), _imag_excess(rho), _imag_excess(sigma)) > 1.0:
            g1, g2 = _gauge_phases(H, rho, sigma)
            rho_g = g1.conj()[:, None] * rho * g1[None, :]
            sigma_g = g2.conj()[:, None] * sigma * g2[None, :]
            g = np.kron(g1, g2)
            H_g = g.conj()[:, None] * H * g[None, :]
            if max(_imag_excess(rho_g), _imag_excess(sigma_g), _imag_excess(H_g)) <= 1.0:
                from .lowering import lower
                from .problems._instance import _qot_problem

                dropped = max(float(np.abs(rho_g.imag).max()), float(np.abs(sigma_g.imag).max()))
                H_r = 0.5 * (H_g.real + H_g.real.T)
                rho_r = 0.5 * (rho_g.real + rho_g.real.T)
                sigma_r = 0.5 * (sigma_g.real + sigma_g.real.T)
                cp_problem, _, _ = _qot_problem(H_r, rho_r, sigma_r)
                n1, n2 = dims
                out = CouplingFace(
                    lower(cp_problem),
                    np.diag(g1),
                    np.diag(g2),
                    np.zeros((n1, n1)),
                    np.zeros((n2, n2)),
                    dims,
                    dropped,
                    kind="gauge",
                )
    _GAUGES[problem] = out
    return out


def _split_sum(S: np.ndarray, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with ``a (x) I + I (x) b = S`` when ``S`` has that form (least squares
    otherwise): ``a = Tr_2 S / r2``, ``b = (Tr_1 S - Tr[a] I) / r1``."""
    r1, r2 = dims
    T = S.reshape(r1, r2, r1, r2)
    a = np.einsum("ajbj->ab", T) / r2
    b = (np.einsum("iaib->ab", T) - np.trace(a) * np.eye(r2)) / r1
    return a, b


def _rows_of(problem, M: np.ndarray) -> np.ndarray:
    """``y`` with ``A*(y) = M`` for ``M`` in the range of ``A*`` (least squares otherwise)."""
    from .bounds import _geometry, _host_op, _solve_gram

    M = 0.5 * (M + M.conj().T)
    r = np.asarray(_host_op(problem).apply(M.real if problem.real else M), dtype=np.float64)
    return _solve_gram(problem, _geometry(problem), r)


def lift_dual(problem, face: CouplingFace, alpha_face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(a0, a1)``: the dual vectors of the original problem with
    ``A*(a0) = V1 a V1^* (x) I + I (x) V2 b V2^*`` (``a (x) I + I (x) b = A_face*(alpha_face)``)
    and ``A*(a1) = K1 (x) I + I (x) K2``; the lifts are ``a0 + c a1``."""
    from .bounds import _host_op

    S = _host_op(face.problem).adjoint(np.asarray(alpha_face, dtype=np.float64))
    S = 0.5 * (S + S.conj().T)
    a, b = _split_sum(S, face.ranks)
    n1, n2 = face.dims
    M0 = np.kron(face.V1 @ a @ face.V1.conj().T, np.eye(n2)) + np.kron(
        np.eye(n1), face.V2 @ b @ face.V2.conj().T
    )
    if not face.drops:  # a gauge: a1 = 0, no solve
        return _rows_of(problem, M0), np.zeros(problem.n_rows)
    M1 = np.kron(face.K1, np.eye(n2)) + np.kron(np.eye(n1), face.K2)
    return _rows_of(problem, M0), _rows_of(problem, M1)


def restrict_dual(problem, face: CouplingFace, alpha: np.ndarray) -> np.ndarray:
    """A dual vector of the face problem with ``A_face*(alpha') = V^* A*(alpha) V`` (the inverse of
    :func:`lift_dual` for every ``c``): a warm start on the face from one on the original."""
    from .bounds import _host_op

    W = _host_op(problem).adjoint(np.asarray(alpha, dtype=np.float64))
    return _rows_of(face.problem, face.restrict(W))


def lifted_lower_bound(
    problem,
    face: CouplingFace,
    alpha_face: np.ndarray,
    target: float = math.inf,
    golden: int = 6,
) -> tuple[float, np.ndarray]:
    """``(L, alpha)``: the best weak-duality bound on the original problem's ``F_0``
    (minimization form, offset excluded) over the lifts ``alpha(c)`` of a dual vector of the face
    problem, ``c <= 0``.

    ``A*(alpha(c)) = (V1 a V1^* + c K1) (x) I + I (x) (V2 b V2^* + c K2)`` with
    ``a (x) I + I (x) b = A_face*(alpha_face)``. Each candidate is scored by
    :func:`cvxqreg.bounds.shift_lower_bound` on the original data, so the result is rigorous
    whatever ``c`` (one Hermitian eigenvalue solve of ``D x D`` per candidate: a grid in
    ``log |c|`` refined by at most ``golden`` steps of a bounded scalar search, the scan stopping
    early once a bound reaches ``target``), and the lifted dual vector that attains it."""
    from .backend import get_backend
    from .bounds import _host_op, shift_lower_bound

    be = get_backend("numpy")
    op = _host_op(problem)
    a0, a1 = lift_dual(problem, face, alpha_face)
    H = np.asarray(problem.H)

    def bound(c: float) -> float:
        alpha = a0 + c * a1
        W = op.adjoint(alpha)
        W = (W.real if problem.real else W) - H
        return shift_lower_bound(problem, be, 0.5 * (W + W.conj().T), alpha)

    if not face.drops:  # a gauge: every c gives the same lift
        return float(bound(0.0)), a0

    # L(c) is concave in c (a linear term minus lambda_max of an affine family, minus margins
    # linear in |c|), hence unimodal along |c| = scale 10^k: scan up until it drops (or reaches
    # ``target``), then SciPy's bounded scalar search in log |c| between the neighbours of the
    # best point, every candidate scored and the best kept
    scale = max(1.0, float(problem.cost_norm))
    ks = list(range(-2, 13))
    seen: dict[float, float] = {}

    def neg(x: float) -> float:
        seen[x] = bound(-scale * 10.0**x)
        return -seen[x] if np.isfinite(seen[x]) else math.inf

    for k in ks:
        neg(float(k))
        vals = [seen[float(kk)] for kk in ks[: ks.index(k) + 1]]
        if vals[-1] >= target or (len(vals) > 1 and vals[-1] < vals[-2]):
            break
    i = int(np.nanargmax(vals))
    if vals[i] < target and i > 0 and golden > 0:
        lo, hi = ks[i - 1], ks[min(i + 1, len(ks) - 1)]
        minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"maxiter": golden})
    x = max(seen, key=lambda x: seen[x] if np.isfinite(seen[x]) else -math.inf)
    best = (seen[x], -scale * 10.0**x)
    return float(best[0]), a0 + best[1] * a1
