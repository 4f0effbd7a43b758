"""Certified bounds on the exact (eps = 0) value ``F_0 = min {Tr[H X] : X >= 0, A(X) = q}``
(docs/theory.md, 'Certified bounds'; docs/bounds.md).

Everything is in minimization form (a ``Maximize`` was negated by the lowering; the user's
convention is applied by the callers, where the roles of the two ends swap).

**Lower bound L (weak duality).** For any ``alpha`` and ``s = lambda_max(A*(alpha) - H)``, the
point ``alpha - s c`` (``A*(c) = I``) is dual feasible, so ``F_0 >= <alpha, q> - s tau``
(:func:`shift_lower_bound`). For a convex ``phi`` and states of fixed trace ``tau`` on ``C^D``,

    Tr[phi(X)]  in  [phi_min, phi_max] = [D phi(tau / D),  phi(tau) + (D - 1) phi(0)]

(Jensen; a convex function on the simplex peaks at a vertex), so ``F_eps - eps phi_max <= F_0``,
and ``D_eps(alpha) <= F_eps`` makes ``D_eps(alpha) - eps phi_max`` a lower bound at any iterate
(:func:`regularization_lower_bound`). Von Neumann, unit trace:
``F_eps <= F_0 <= F_eps + eps log D``.

**Upper bound U (a feasible state).** ``X_eps`` satisfies ``A(X) = q`` only to the gradient
tolerance, so ``Tr[H X_eps]`` bounds nothing. :func:`feasible_upper_bound`

1. restores feasibility: ``X' = X + A*(y)`` with ``A A* y = q - A(X)`` (conjugate gradients on the
   structured operators, two rounds), so ``A(X') = q`` up to rounding;
2. bounds ``lambda_min(X')`` from below: Weyl, ``lambda_min(X) - ||A*(y)||_F``, or one eigenvalue
   solve of ``X'``, whichever is sharper;
3. mixes with a strictly feasible *anchor* ``X_s`` (:func:`anchor_state`: the projection of the
   maximally mixed state onto ``A(X) = q`` when that is well inside the cone, otherwise the
   maximum-entropy feasible state, which for two marginal constraints is ``rho (x) sigma``):
   ``X^ = (1 - t) X' + t X_s`` with the smallest ``t`` that keeps ``lambda_min(X^)`` above the
   rounding-level correction ``zeta`` still needed to make ``A(X^) = q`` hold exactly;
4. returns ``U = (1 - t) Tr[H X'] + t Tr[H X_s] + ||H||_F zeta`` plus the rounding error of the
   energies, so that ``U >= F_0`` holds for the exact feasible state ``X^ + A*(z)``,
   ``||A*(z)||_F <= zeta``.

Rounding model: a computed eigenvalue of a Hermitian ``M`` is within ``8 D u ||M||_2`` of an
exact one (backward-stable solvers); a length-``n`` sum, in any order, is off by at most
``n u`` times the sum of the absolute values of its terms (``n`` the nonzeros of a row of ``A``
for the residual, ``2 D^2`` for the energy). The Gram matrix ``A A*`` enters through its extreme
eigenvalues (computed exactly up to 400 rows, by Lanczos above; a factor 2 of safety on each
side); those terms are at rounding level. When no strictly feasible state is found (singular
marginals, data that fix a pure state) ``U`` is ``inf`` with a reason, and only ``L`` is
guaranteed.
"""

from __future__ import annotations

import dataclasses
import math
import time
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from .errors import CvxqregError
from .regularizers import Regularizer, VonNeumann

__all__ = [
    "Anchor",
    "FeasibleBound",
    "anchor_state",
    "anchor_states",
    "entropy_range",
    "feasible_upper_bound",
    "infeasibility_threshold",
    "regularization_lower_bound",
    "restore_feasibility",
    "shift_lower_bound",
]

_U = float(np.finfo(np.float64).eps)
#: an anchor from the maximally mixed state is accepted without trying the maximum-entropy state
#: when its smallest eigenvalue is at least this fraction of tau / D
_WELL_CENTRED = 0.05


# ---------------------------------------------------------------------------- lower bounds
def entropy_range(reg: Regularizer, tau: float, dim: int) -> tuple[float, float]:
    """``(min, max)`` of ``Tr[phi(X)]`` over ``X >= 0`` with ``Tr X = tau`` on ``C^dim``."""
    lo = dim * float(reg.phi(np.array([tau / dim]))[0])
    hi = float(reg.phi(np.array([tau]))[0]) + (dim - 1) * float(reg.phi(np.array([0.0]))[0])
    return lo, hi


def regularization_lower_bound(
    reg: Regularizer, eps: float, tau: float, dim: int, dual_value: float
) -> float:
    """``D_eps(alpha) - eps phi_max <= F_eps - eps phi_max <= F_0`` (minimization form); pass a
    ``dual_value`` already lowered by its rounding error (:func:`dual_rounding`)."""
    _, hi = entropy_range(reg, tau, dim)
    return dual_value - eps * hi


def dual_rounding(
    value: float,
    alpha: np.ndarray,
    q: np.ndarray,
    dim: int,
    *,
    alpha_size: np.ndarray | None = None,
    trace: float = 0.0,
    lam_max: float = 0.0,
) -> float:
    """A bound on the rounding error of a computed ``D_eps(alpha)``.

    ``alpha_size``: entrywise bounds on the terms ``alpha`` was formed from (``|alpha_in| +
    |s| |c|`` for the normalization shift ``alpha = alpha_in + s c``, whose cancellation the
    result alone does not show). ``trace`` and ``lam_max``: ``Tr X`` and ``max |lambda(W)|``;
    each eigenvalue of ``W`` carries an error of at most ``8 D u ||W||``, which moves ``D`` by at
    most ``Tr X`` times that (``dD/dW = -X``)."""
    m = q.size
    size = np.abs(alpha) if alpha_size is None else np.maximum(np.abs(alpha), alpha_size)
    return 8.0 * _U * (m * float(size @ np.abs(q)) + dim * abs(value) + dim * trace * lam_max)


def infeasibility_threshold(problem, reg: Regularizer, eps: float, tau: float | None):
    """An upper bound on ``F_eps(X)`` over *all* states with ``Tr X = tau`` (not only feasible):

        Tr[H X] <= tau lambda_max(H),   Tr[phi(X)] <= phi(tau) + (D - 1) phi(0).

    A dual value above it certifies, by weak duality, that no feasible state exists. ``None``
    when the trace is not fixed.
    """
    if tau is None:
        return None
    _, hi = entropy_range(reg, tau, problem.dim)
    bound = tau * problem.cost_max + eps * hi
    return bound + 1e-9 * (1.0 + abs(bound))


def shift_lower_bound(problem, backend, W, alpha: np.ndarray, lam: Any = None) -> float:
    """``<alpha, q> - s tau`` with ``s = lambda_max(W)``, ``W = A*(alpha) - H``, minus margins.

    ``alpha - s c`` satisfies ``A*(alpha - s c) <= H``, so by weak duality this is a lower bound
    on ``F_0`` (minimization form, offset excluded) for *any* alpha. The margin ``8 D u ||W||``
    covers the eigenvalue error; ``||A*(c) - I||_F`` (the trace direction's residual) and the
    rounding of ``<alpha, q>`` are covered too. ``nan`` when the trace is not fixed. ``lam``:
    the eigenvalues of ``W`` if already computed (by any backward-stable solver; ``W`` is then
    not read).
    """
    c = problem.trace_direction
    if c is None:
        return math.nan
    q = problem.q
    D, tau = problem.dim, float(c @ q)
    if lam is None:
        lam = backend.eigvalsh(W)
    s = float(backend.xp.max(lam))
    delta = 8.0 * D * _U * (float(backend.xp.max(backend.xp.abs(lam))) + problem.cost_norm)
    t = s + delta
    t += abs(t) * 2.0 * problem.trace_residual  # A*(c) = I + E, ||E|| <= residual
    aq = alpha * q
    rounding = 4.0 * _U * (q.size * float(np.abs(aq).sum()) + abs(t * tau))
    return float(aq.sum()) - t * tau - rounding


# ---------------------------------------------------------------------------- geometry of A
@dataclasses.dataclass(frozen=True)
class _Geometry:
    """The Gram matrix ``G = A A*`` as far as the bounds need it: estimates of its extreme nonzero
    eigenvalues (safety factors applied), the rows' absolute values and lengths (for rounding
    bounds), and for small
    ``m`` its eigendecomposition restricted to the range (``basis``, ``values``) and a basis
    ``null`` of the dependencies among the rows."""

    gram_min: float
    gram_max: float
    abs_rows: Any = None  # |M| (sparse), M the rows acting on X.view(float)
    row_nnz: np.ndarray | None = None
    basis: np.ndarray | None = None
    values: np.ndarray | None = None
    null: np.ndarray | None = None


_GEOMETRY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ANCHORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: per problem, ``(eps, alpha / eps)`` of the von Neumann solve with the largest eps so far: the
#: maximum-entropy search of :func:`anchor_state` starts there when called without ``start``
_ANCHOR_STARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: per problem, ``(eps, Anchor, sharp)``: the restored state of the largest-eps solve whose bound
#: certified it strictly feasible by itself, an anchor candidate of :func:`anchor_state`
#: (``sharp``: its ``lambda_min`` certified by an eigenvalue solve, :func:`_restored_anchor`)
_RESTORED_ANCHORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: up to this many rows the Gram matrix is formed and diagonalized (m applications of A A*)
_DENSE_GRAM_ROWS = 400


def _host_op(problem):
    return problem.A.to_backend("numpy")


def _gram_operator(problem):
    op = _host_op(problem)
    real = problem.real

    def mv(y):
        Y = op.adjoint(np.asarray(y, dtype=np.float64).reshape(-1))
        return np.asarray(op.apply(Y.real if real else Y), dtype=np.float64)

    m = problem.n_rows
    return spla.LinearOperator((m, m), matvec=mv, rmatvec=mv, dtype=np.float64)


def _geometry(problem) -> _Geometry:
    geo = _GEOMETRY.get(problem)
    if geo is not None:
        return geo
    m = problem.n_rows
    M = problem.A.to_backend("numpy").matrix().tocsr()
    rows = dict(abs_rows=abs(M), row_nnz=np.diff(M.indptr))
    if m <= _DENSE_GRAM_ROWS:
        G = _gram_operator(problem) @ np.eye(m)
        lam, V = np.linalg.eigh(0.5 * (G + G.T))
        top = float(lam[-1]) if m else 0.0
        keep = lam > 1e-10 * top
        geo = _Geometry(
            gram_min=0.5 * float(lam[keep][0]) if keep.any() else 0.0,
            gram_max=2.0 * top,
            **rows,
            basis=V[:, keep],
            values=lam[keep],
            null=V[:, ~keep],
        )
    else:
        Gop = _gram_operator(problem)
        v0 = np.random.default_rng(0).standard_normal(m)
        hi = float(spla.eigsh(Gop, k=1, which="LA", tol=1e-4, v0=v0, return_eigenvectors=False)[0])
        try:
            lo = float(
                spla.eigsh(
                    Gop, k=1, which="SA", tol=1e-4, v0=v0, maxiter=20 * m, return_eigenvectors=False
                )[0]
            )
        except spla.ArpackNoConvergence:
            lo = 0.0
        lo = lo if lo > 1e-10 * hi else 0.0  # dependent rows: lower the problem first
        geo = _Geometry(gram_min=0.5 * lo, gram_max=2.0 * hi, **rows)
    _GEOMETRY[problem] = geo
    return geo


def _inconsistency(problem, geo: _Geometry) -> float:
    """``||P q||``, ``P`` the projector onto the dependencies of the rows: ``A(X)`` has no
    component there for any ``X``, so this part of ``q`` is rounding in the data (exactly
    consistent data have none)."""
    if geo.null is None or geo.null.shape[1] == 0:
        return 0.0
    return float(np.linalg.norm(geo.null.T @ problem.q))


def _solve_gram(problem, geo: _Geometry, r: np.ndarray) -> np.ndarray:
    """``y`` with ``A A* y = r`` on the range of ``A`` (least squares when rows are dependent)."""
    if geo.basis is not None:
        return geo.basis @ ((geo.basis.T @ r) / geo.values)
    y, _ = spla.cg(_gram_operator(problem), r, rtol=1e-13, atol=0.0, maxiter=50 + problem.n_rows)
    return y


# ---------------------------------------------------------------------------- restoration
def restore_feasibility(problem, X: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, float]:
    """``(X', ||A*(y)||_F)``: ``X' = X + A*(y)`` with ``A A* y = q - A(X)`` solved by conjugate
    gradients, or through the Gram matrix's eigendecomposition for few rows (``rounds`` rounds of
    refinement), so that ``A(X') = q`` up to rounding.

    ``X'`` is the Frobenius-nearest point of the affine set ``A(X) = q``; it need not be positive
    semidefinite (see :func:`feasible_upper_bound`)."""
    op = _host_op(problem)
    geo = _geometry(problem)
    Xr = np.array(X, dtype=np.float64 if problem.real else np.complex128, copy=True)
    total = np.zeros_like(Xr)
    last = math.inf
    for _ in range(rounds):
        r = _project_range(geo, problem.q - np.asarray(op.apply(Xr), dtype=np.float64))
        nr = float(np.linalg.norm(r))
        if not nr < 0.5 * last:  # refinement stopped paying (rounding level)
            break
        last = nr
        with np.errstate(all="ignore"):
            y = _solve_gram(problem, geo, r)
        if not np.all(np.isfinite(y)):
            break
        Y = op.adjoint(y)
        Y = Y.real if problem.real else Y
        Y = 0.5 * (Y + Y.conj().T)
        Xr = Xr + Y
        total = total + Y
    Xr = 0.5 * (Xr + Xr.conj().T)
    return Xr, float(np.linalg.norm(total))


def _project_range(geo: _Geometry, r: np.ndarray) -> np.ndarray:
    if geo.null is None or geo.null.shape[1] == 0:
        return r
    return r - geo.null @ (geo.null.T @ r)


def _residual_bound(problem, X: np.ndarray, geo: _Geometry) -> float:
    """A bound on ``||A(X) - q||_2`` for the exact ``A(X)`` of the stored ``X`` (on the range of
    ``A``): the computed residual plus, per row, ``(n_i + 2) u sum_j |M_ij| |x_j|`` for the
    rounding of a length-``n_i`` sum (any order) and ``u (|q_i| + |A(X)_i|)`` for the
    subtraction."""
    op = _host_op(problem)
    AX = np.asarray(op.apply(X), dtype=np.float64)
    r = _project_range(geo, problem.q - AX)
    x = np.abs(np.ascontiguousarray(X, dtype=np.complex128).reshape(-1).view(np.float64))
    err = (geo.row_nnz + 2) * _U * (geo.abs_rows @ x) + _U * (np.abs(problem.q) + np.abs(AX))
    m = problem.n_rows
    return float(np.linalg.norm(r)) * (1.0 + 4.0 * m * _U) + 1.01 * float(np.linalg.norm(err))


def _lambda_min_lower(X: np.ndarray) -> float:
    """A lower bound on ``lambda_min(X)`` from one eigenvalue solve (backward-error margin)."""
    lam = np.linalg.eigvalsh(X)
    D = X.shape[0]
    return float(lam[0]) - 8.0 * D * _U * float(np.abs(lam).max())


def _certified_above(X: np.ndarray, s: float) -> bool:
    """Whether a Cholesky factorization certifies ``lambda_min(X) > s`` for a Hermitian ``X``.

    Rump's criterion (S. M. Rump, "Verification of positive definiteness", BIT Numerical
    Mathematics 46 (2006) 433-452): if the floating-point Cholesky factorization of ``A - c I``
    runs to completion, with ``c = gamma / (1 - 2 gamma) Tr A`` plus an underflow term and
    ``gamma = gamma_{n+1}``, then ``A`` is positive definite. Here ``A = X - s I``, with
    ``gamma_{4(n+2)}`` for the complex arithmetic and the rounding of the shifted diagonal added
    to ``c``. A factorization costs ``n^3/3`` (complex) operations, a tenth or less of the
    eigenvalue solve of :func:`_lambda_min_lower`, and reports only whether ``X > s I``."""
    n = X.shape[0]
    k = 4 * (n + 2) * _U
    d = np.real(np.diagonal(X))
    if k >= 0.1 or not np.all(d > s):  # a diagonal entry at most s: lambda_min(X) <= s
        return False
    gamma = k / (1.0 - k)
    c = gamma / (1.0 - 2.0 * gamma) * float(np.sum(d - s))
    c += 4 * n * (2 * (n + 2) + float(np.max(d - s))) * np.finfo(float).smallest_subnormal
    c += 2 * _U * (float(np.max(np.abs(d))) + abs(s) + c)  # rounding of d - (s + c)
    A = np.array(X, dtype=np.complex128 if np.iscomplexobj(X) else np.float64, order="F")
    A[np.diag_indices(n)] -= s + c
    potrf = scipy.linalg.lapack.zpotrf if np.iscomplexobj(A) else scipy.linalg.lapack.dpotrf
    _, info = potrf(A, lower=1, clean=0, overwrite_a=1)
    return info == 0


def _energy(problem, X: np.ndarray) -> tuple[float, float]:
    """``(fl(Re Tr[H X]), bound on its rounding error)``."""
    H = problem.H
    e = float(np.real(np.vdot(H, X)))  # H Hermitian: Tr[H X] = sum conj(H_ij) X_ij
    n = 2 * X.size
    err = 1.01 * n * _U * float(np.sum(np.abs(H) * np.abs(X))) + 2 * _U * abs(e)
    return e, err


# ---------------------------------------------------------------------------- the anchor
@dataclasses.dataclass(frozen=True)
class Anchor:
    """A strictly feasible state ``X_s`` (``A(X_s) = q`` up to rounding, ``X_s > 0``).

    ``lam_lower`` is a certified lower bound on ``lambda_min(X_s)``, ``energy`` and ``energy_err``
    the computed ``Tr[H X_s]`` and a bound on its rounding, ``residual`` a bound on
    ``||A(X_s) - q||_2``, ``source`` says how it was found. ``X`` is ``None`` (with ``note``) when
    no strictly feasible state was found."""

    X: np.ndarray | None
    lam_lower: float
    energy: float
    energy_err: float
    residual: float
    source: str
    note: str = ""


def _make_anchor(problem, X, source, geo) -> Anchor:
    Xr, _ = restore_feasibility(problem, X)
    lam = _lambda_min_lower(Xr)
    e, err = _energy(problem, Xr)
    return Anchor(Xr, lam, e, err, _residual_bound(problem, Xr, geo), source)


class _LogBarrier(Regularizer):
    """``phi(x) = -log x``: the regularized problem with ``H = 0`` is the analytic centre
    ``argmax {log det X : A(X) = q}``. ``psi(t) = -1 - log(-t)`` for ``t < 0`` (``+inf`` else),
    ``psi'(t) = -1/t``, ``psi''(t) = 1/t^2``."""

    name = "log_barrier"

    def phi(self, x):
        with np.errstate(divide="ignore"):
            return -np.log(x)

    def psi(self, t):
        xp = np if isinstance(t, np.ndarray) else __import__("cupy")
        neg = t < 0
        return xp.where(neg, -1.0 - xp.log(xp.where(neg, -t, 1.0)), xp.inf)

    def dpsi(self, t):
        xp = np if isinstance(t, np.ndarray) else __import__("cupy")
        neg = t < 0
        return xp.where(neg, -1.0 / xp.where(neg, t, -1.0), xp.inf)

    def d2psi(self, t):
        xp = np if isinstance(t, np.ndarray) else __import__("cupy")
        neg = t < 0
        return xp.where(neg, 1.0 / xp.where(neg, t, -1.0) ** 2, xp.inf)


#: the gradient norms the centre state is solved to in turn, until the state is certified strictly
#: feasible (QT1 and QT3 with 9 qubits, whose maximum-entropy states have ``lambda_min`` 1.7e-5
#: and 1.5e-4, are certified at the first; QT2's, 2.4e-12, at the second)
CENTRE_TOLS = (1e-6, 1e-9, 1e-11)


def _centre_state(
    problem,
    reg: Regularizer,
    time_limit: float,
    source: str,
    geo: _Geometry,
    start: np.ndarray | None = None,
) -> Anchor | None:
    """The anchor from ``argmin {Tr[phi(X)] : A(X) = q}``, by Newton on its dual (``H = 0``,
    eps = 1): the maximum-entropy state for von Neumann (``rho (x) sigma`` for two marginals),
    the analytic centre for the log barrier; ``None`` when the solve fails.

    Solved to each tolerance of :data:`CENTRE_TOLS` in turn until the restored state is
    certified strictly feasible (checked only where Weyl's inequality allows it: ``lambda_min``
    of the state above the Frobenius norm of the correction its gradient calls for); the first
    stage with Newton's default preconditioning, the later ones preconditioned from their first
    step. ``start``: a dual point to begin from instead of ``0`` where its gradient is smaller."""
    from .problem import LoweredProblem
    from .solvers.dual import DualOracle
    from .solvers.newton import newton_cg_maximize

    lp0 = LoweredProblem(
        H=np.zeros((problem.dim, problem.dim)),
        A=_host_op(problem),
        q=problem.q,
        real=problem.real,
    )
    t0 = time.perf_counter()
    x = np.zeros(problem.n_rows)
    anchor = None
    try:
        oracle = DualOracle(lp0, 1.0, reg, "numpy")
        if start is not None:
            start = np.asarray(start, dtype=np.float64).reshape(-1)
        if start is not None and start.shape == x.shape and np.all(np.isfinite(start)):
            with np.errstate(all="ignore"):
                ev0 = oracle.evaluate(x, want_state=False)
                ev1 = oracle.evaluate(start, want_state=False)
            if np.linalg.norm(ev1.grad) < np.linalg.norm(ev0.grad):
                x, ev0 = start, ev1
            oracle.prime(x, ev0)  # Newton's first evaluation
        # the tail is preconditioned from its first step: with preconditioning only once plain
        # CG grows costly ("auto") it was measured 2-4x slower on the maximum-entropy state and
        # analytic centre of QT2 with 9 qubits
        for tol in CENTRE_TOLS:
            left = time_limit - (time.perf_counter() - t0)
            if anchor is not None and left <= 0:
                break
            with np.errstate(all="ignore"):
                out = newton_cg_maximize(
                    oracle,
                    x,
                    tol=tol,
                    max_iter=100,
                    time_limit=max(left, 0.0),
                    eager_preconditioner=tol < CENTRE_TOLS[0],
                )
                x = out.x
                # Newton's last evaluation is at x: only the state is formed (no new eigh)
                ev = out.evaluation
                ev = oracle.evaluate(x) if ev is None else oracle.with_state(ev)
            if not np.isfinite(ev.value):
                return None
            need = _zeta(float(np.linalg.norm(ev.grad)), geo)
            if tol > CENTRE_TOLS[-1] and float(np.min(ev.w)) <= need:
                continue  # cannot be certified yet: the restoration would cost a solve for nothing
            anchor = _make_anchor(problem, np.asarray(ev.X), source, geo)
            if anchor.lam_lower > _zeta(anchor.residual, geo):
                break
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, CvxqregError):
        return anchor
    return anchor


def _parts(op) -> tuple:
    """The blocks of rows of ``op`` (through :class:`~cvxqreg.operators.Selected` and
    :class:`~cvxqreg.operators.Stacked`)."""
    from .operators import Selected, Stacked

    while isinstance(op, Selected):
        op = op.base
    return op.parts if isinstance(op, Stacked) else (op,)


def _bipartite_dims(op) -> tuple[int, int] | None:
    """``(n1, n2)`` when ``op`` holds partial traces over a two-factor space."""
    from .operators import PartialTrace

    for p in _parts(op):
        if isinstance(p, PartialTrace) and len(p.dims) == 2:
            return p.dims
    return None


def _marginals_only(op) -> bool:
    """Whether every row of ``op`` is a partial trace over one two-factor split: the feasible set
    is then the set of couplings of two marginals, whose maximum-entropy point is their product."""
    from .operators import PartialTrace

    parts = _parts(op)
    return all(isinstance(p, PartialTrace) and len(p.dims) == 2 for p in parts) and (
        len({tuple(p.dims) for p in parts}) == 1
    )


def _product_state(X: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """``Tr_2 X (x) Tr_1 X / Tr X``: the product of the marginals of ``X`` (the maximum-entropy
    state with those marginals)."""
    n1, n2 = dims
    T = X.reshape(n1, n2, n1, n2)
    rho = np.einsum("ajbj->ab", T)
    sigma = np.einsum("iaib->ab", T)
    return np.kron(rho, sigma) / np.trace(X).real


def _marginals(X: np.ndarray, dims: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(Tr_2 X, Tr_1 X)``."""
    n1, n2 = dims
    T = X.reshape(n1, n2, n1, n2)
    return np.einsum("ajbj->ab", T), np.einsum("iaib->ab", T)


def _shifted_product_state(X: np.ndarray, dims: tuple[int, int], theta: float = 0.9) -> np.ndarray:
    """The coupling ``(rho - n2 d I) (x) (sigma - n1 d I) / (tau - n1 n2 d) + d I`` of the marginals
    ``rho = Tr_2 X``, ``sigma = Tr_1 X`` (``tau = Tr X``), with
    ``d = theta min(lambda_min(rho) / n2, lambda_min(sigma) / n1)``.

    Its marginals are ``rho`` and ``sigma`` and its smallest eigenvalue is at least ``d``: within
    the factor ``theta`` of the largest possible, since ``X >= l I`` forces ``rho >= n2 l I`` and
    ``sigma >= n1 l I``. The product ``rho (x) sigma / tau`` has only
    ``lambda_min(rho) lambda_min(sigma) / tau`` (docs/bounds.md, 'The anchor')."""
    n1, n2 = dims
    rho, sigma = _marginals(X, dims)
    rho, sigma = 0.5 * (rho + rho.conj().T), 0.5 * (sigma + sigma.conj().T)
    tau = float(np.trace(X).real)
    lr, ls = float(np.linalg.eigvalsh(rho)[0]), float(np.linalg.eigvalsh(sigma)[0])
    d = theta * min(lr / n2, ls / n1)
    if not (d > 0 and tau > n1 * n2 * d):
        return np.full_like(X, np.nan)
    Y = np.kron(rho - n2 * d * np.eye(n1), sigma - n1 * d * np.eye(n2)) / (tau - n1 * n2 * d)
    return Y + d * np.eye(n1 * n2)


_MARGINALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def coupling_marginals(problem) -> tuple[tuple[int, int], np.ndarray, np.ndarray] | None:
    """``(dims, rho, sigma)`` when every constraint of ``problem`` is a partial trace over one
    two-factor split (the feasible set is the couplings of ``rho`` and ``sigma``), else ``None``.
    The marginals are read off the maximally mixed state restored onto ``A(X) = q`` (cached)."""
    if problem in _MARGINALS:
        return _MARGINALS[problem]
    out = None
    dims = _bipartite_dims(problem.A)
    tau = problem.trace_value
    if dims is not None and _marginals_only(problem.A) and tau is not None and tau > 0:
        X0, _ = restore_feasibility(problem, (tau / problem.dim) * np.eye(problem.dim))
        rho, sigma = _marginals(X0, dims)
        out = (dims, 0.5 * (rho + rho.conj().T), 0.5 * (sigma + sigma.conj().T))
    _MARGINALS[problem] = out
    return out


def _psd_sqrt(A: np.ndarray, inverse: bool = False) -> np.ndarray | None:
    """``A^(1/2)`` (or ``A^(-1/2)``) of a Hermitian ``A``, or ``None`` if ``A`` is not positive
    definite."""
    w, V = np.linalg.eigh(A)
    if not w[0] > 0:
        return None
    return (V * (1.0 / np.sqrt(w) if inverse else np.sqrt(w))) @ V.conj().T


def scale_to_marginals(
    X: np.ndarray,
    rho: np.ndarray,
    sigma: np.ndarray,
    dims: tuple[int, int],
    rounds: int = 60,
    reduction: float = 0.0,
) -> np.ndarray | None:
    """Operator Sinkhorn: ``X <- (P (x) I) X (P (x) I)*`` with ``P = rho^(1/2) (Tr_2 X)^(-1/2)``,
    then the same on the second factor, alternately, until both marginals equal ``rho`` and
    ``sigma`` to rounding (docs/bounds.md, 'Couplings: scaling instead of projecting').

    A congruence keeps a positive definite ``X`` positive definite, so unlike the Frobenius
    projection of :func:`restore_feasibility` this restores feasibility without creating negative
    eigenvalues; near a feasible ``X`` the factors are ``I + O(||residual|| / lambda_min(rho))``.
    Each congruence acts on one tensor factor through reshapes and (batched) matrix products,
    ``O(n D^2)`` flops. ``reduction``: stop as well once the residual has fallen to this
    fraction of its initial value (:func:`feasible_upper_bound` sets it from the bracket).
    Returns ``None`` when a marginal of ``X`` (or ``rho``, ``sigma``) is not positive
    definite."""
    n1, n2 = dims
    D = n1 * n2
    T = np.array(X, dtype=np.result_type(X, rho, sigma, np.float64), copy=True)
    T = 0.5 * (T + T.conj().T)
    scale = max(float(np.abs(np.trace(rho))), np.finfo(float).tiny)
    root_rho, root_sigma = _psd_sqrt(rho), _psd_sqrt(sigma)
    if root_rho is None or root_sigma is None:
        return None
    last, stop = math.inf, 4 * _U
    for k in range(rounds):
        r1, r2 = _marginals(T, dims)
        err = max(float(np.linalg.norm(r1 - rho)), float(np.linalg.norm(r2 - sigma))) / scale
        if k == 0:
            stop = max(stop, reduction * err)
        if err < stop or not err < 0.9 * last:
            break
        last = err
        inv = _psd_sqrt(0.5 * (r1 + r1.conj().T), inverse=True)
        if inv is None:
            return None
        P = root_rho @ inv
        # (P (x) I) T (P (x) I)*: P on the first factor of the rows, then of the columns
        T = (P @ T.reshape(n1, n2 * D)).reshape(D, n1, n2)
        T = np.matmul(P.conj(), T).reshape(D, D)
        r2 = _marginals(T, dims)[1]
        inv = _psd_sqrt(0.5 * (r2 + r2.conj().T), inverse=True)
        if inv is None:
            return None
        Q = root_sigma @ inv
        # (I (x) Q) T (I (x) Q)*: Q on the second factor of the rows, then of the columns
        T = np.matmul(Q, T.reshape(n1, n2, D)).reshape(D * n1, n2)
        T = (T @ Q.conj().T).reshape(D, D)
        T = 0.5 * (T + T.conj().T)
    return T


def anchor_state(
    problem, time_limit: float = 20.0, centre: bool = False, start: np.ndarray | None = None
) -> Anchor:
    """A strictly feasible, well-centred state for :func:`feasible_upper_bound` (cached per
    problem).

    First the projection of the maximally mixed state ``tau I / D`` onto ``A(X) = q``; accepted
    if its ``lambda_min`` is at least ``0.05 tau / D``. For marginal (two-factor partial-trace)
    constraints, next the product ``rho (x) sigma`` of the marginals (the maximum-entropy state
    with those marginals). If neither is positive definite, the maximum-entropy feasible state,
    ``argmin {Tr[X log X] : A(X) = q}``, by Newton within ``time_limit`` seconds. The candidate
    with the largest certified ``lambda_min`` wins; if none is positive definite, the result has
    ``X = None`` and a note. With ``centre=True`` (used by :func:`cvxqreg.certify`; one more
    Newton solve, within ``time_limit``) the analytic centre ``argmax {log det X : A(X) = q}`` is
    a candidate too whenever the others are not well centred: its smallest eigenvalue is
    typically far larger than that of ``rho (x) sigma`` (measured on random transport with
    Wishart marginals, D = 36 and 64: 14-30 times). ``start``: a dual point to start the
    maximum-entropy search from instead of ``0`` if its gradient is smaller (the multipliers of a
    von Neumann solve divided by its eps: exactly the maximum-entropy dual point when ``H = 0``);
    without it, that of the largest-eps von Neumann solve of this problem so far (recorded by
    :func:`bracket_of_solve`), so that a later solve with another regularizer reuses it.
    """
    cached = _ANCHORS.setdefault(problem, {})
    if centre in cached:
        return cached[centre][0]
    if start is None and problem in _ANCHOR_STARTS:
        start = _ANCHOR_STARTS[problem][1]
    from .face import coupling_face

    face = coupling_face(problem)
    if face is not None:  # every coupling is singular: no candidate can be positive definite
        none = Anchor(
            None,
            -math.inf,
            math.nan,
            math.nan,
            math.inf,
            "none",
            f"no strictly feasible state: the marginals are singular and {face.describe()}; "
            "upper bounds come from that face (cvxqreg.face)",
        )
        cached[centre] = (none, [none])
        return none
    geo = _geometry(problem)
    D = problem.dim
    tau = problem.trace_value
    cands = []
    if tau is not None and tau > 0:
        a = _make_anchor(problem, (tau / D) * np.eye(D), "projected maximally mixed state", geo)
        cands.append(a)
    dims = _bipartite_dims(problem.A)
    if cands and dims is not None and cands[0].lam_lower < _WELL_CENTRED * tau / D:
        # the marginals of the restored I / D are the data's: their product is feasible
        prod = _product_state(cands[0].X, dims)
        if np.all(np.isfinite(prod)):
            cands.append(_make_anchor(problem, prod, "product of the marginals", geo))
        if _marginals_only(problem.A):
            shifted = _shifted_product_state(cands[0].X, dims)
            if np.all(np.isfinite(shifted)):
                name = "shifted product of the marginals"
                cands.append(_make_anchor(problem, shifted, name, geo))
    if problem in _RESTORED_ANCHORS:
        cands.append(_restored_anchor(problem))
    # for couplings of two marginals the product (tried above) is the maximum-entropy state
    product_is_max_entropy = len(cands) >= 2 and _marginals_only(problem.A)
    # the shifted product is within 10% of the largest lambda_min any coupling can have
    near_optimal_lambda = any(a.source.startswith("shifted") and a.lam_lower > 0 for a in cands)
    if (
        not product_is_max_entropy
        and max((a.lam_lower for a in cands), default=-math.inf) < _WELL_CENTRED * (tau or 1) / D
        and (not cands or max(a.lam_lower for a in cands) <= 0)
    ):
        a = _centre_state(
            problem, VonNeumann(), time_limit, "maximum-entropy feasible state", geo, start
        )
        if a is not None:
            cands.append(a)
    if (
        centre
        and not near_optimal_lambda
        and tau is not None
        and max((a.lam_lower for a in cands), default=-1.0) < _WELL_CENTRED * tau / D
    ):
        # the analytic centre maximizes log det: its smallest eigenvalue is typically far above
        # that of the product of the marginals (min(lam(rho)/n2, lam(sigma)/n1) rather than
        # lam(rho) lam(sigma))
        a = _centre_state(problem, _LogBarrier(), time_limit, "analytic centre", geo)
        if a is not None:
            cands.append(a)
    good = [a for a in cands if a.lam_lower > _zeta(a.residual, geo)]
    best = max(cands, key=lambda a: a.lam_lower) if cands else None
    if best is None or not best.lam_lower > _zeta(best.residual, geo):
        best = Anchor(
            None,
            -math.inf if best is None else best.lam_lower,
            math.nan,
            math.nan,
            math.inf,
            "none",
            "no strictly feasible state found: the maximum-entropy feasible state is singular "
            "(to rounding), so the feasible set has no positive definite point (singular "
            "marginals, or data that fix a low-rank state); only the lower bound is guaranteed",
        )
    cached[centre] = (best, sorted(good, key=lambda a: -a.lam_lower) or [best])
    return best


def anchor_states(
    problem, time_limit: float = 20.0, centre: bool = False, start: np.ndarray | None = None
) -> list[Anchor]:
    """Every certified strictly feasible candidate of :func:`anchor_state` (the best first);
    :func:`feasible_upper_bound` mixes with whichever gives the smallest bound."""
    anchor_state(problem, time_limit, centre, start)
    return list(_ANCHORS[problem][centre][1])


def _zeta(residual: float, geo: _Geometry) -> float:
    """Frobenius bound on the correction ``A*(z)``, ``A A* z = r``, for ``||r|| <= residual``."""
    if geo.gram_min <= 0:
        return math.inf
    return residual / math.sqrt(geo.gram_min)


# ---------------------------------------------------------------------------- the upper bound
@dataclasses.dataclass(frozen=True)
class FeasibleBound:
    """A certified upper bound ``U >= F_0`` (minimization form, offset excluded) and the state.

    Attributes
    ----------
    value : float
        ``U``; ``inf`` when no bound is available (``note`` says why).
    X : ndarray or None
        ``X^ = (1 - t) X' + t X_s``, positive definite with ``A(X^) = q`` up to a correction of
        Frobenius norm ``<= zeta`` that ``value`` already accounts for.
    t : float
        Weight of the anchor.
    lam_lower : float
        Certified lower bound on ``lambda_min`` of the restored state ``X'``.
    restoration : float
        ``||X' - X||_F``, the size of the feasibility correction.
    zeta : float
        Bound on the rounding-level correction still needed after mixing.
    energy : float
        ``Tr[H X']`` of the restored state before mixing.
    note : str
    time : float
    restored : Anchor or None
        The restored state ``X'`` with its certified data: a candidate anchor for later bounds
        when its ``lam_lower`` is positive.
    """

    value: float
    X: np.ndarray | None
    t: float
    lam_lower: float
    restoration: float
    zeta: float
    energy: float
    note: str = ""
    time: float = 0.0
    restored: Anchor | None = dataclasses.field(default=None, repr=False)

    @property
    def available(self) -> bool:
        """Whether ``value`` is finite."""
        return math.isfinite(self.value)


def _unavailable(note: str, t0: float, **kw) -> FeasibleBound:
    fields = dict(
        value=math.inf,
        X=None,
        t=math.nan,
        lam_lower=math.nan,
        restoration=math.nan,
        zeta=math.nan,
        energy=math.nan,
    )
    fields.update(kw)
    return FeasibleBound(**fields, note=note, time=time.perf_counter() - t0)


def feasible_upper_bound(
    problem,
    X: Any,
    *,
    anchor: Anchor | np.ndarray | Sequence[Anchor] | None = None,
    eig: bool | str = "auto",
    lam_min_X: float | None = None,
    lam_estimate: float | None = None,
    anchor_start: np.ndarray | None = None,
    lower: float | None = None,
) -> FeasibleBound:
    """``U >= F_0`` from an approximately feasible ``X`` (see the module docstring).

    Parameters
    ----------
    problem : LoweredProblem
    X : array_like
        Any Hermitian ``D x D`` matrix, typically the regularized state ``X_eps``.
    anchor : Anchor, ndarray or sequence of Anchor, optional
        Strictly feasible state(s) to mix with (an array is restored and checked first); with
        several, the one giving the smallest ``U`` is used. Default :func:`anchor_state`.
    eig : bool or "auto"
        Bound ``lambda_min(X')`` with one eigenvalue solve of ``X'`` (``True``), by Weyl only
        (``False``: ``lambda_min(X) - ||X' - X||_F``, needs ``lam_min_X``), or by Weyl first and
        the eigenvalue solve only when Weyl's bound would need the anchor (``"auto"``).
    lam_min_X : float, optional
        A certified lower bound on ``lambda_min(X)`` (e.g. from the eigenvalues the state was
        built from), for the Weyl bound.
    lam_estimate : float, optional
        An estimate of ``lambda_min(X)``, not certified (e.g. the smallest eigenvalue the state
        was built from). With ``eig="auto"``, where it predicts by Weyl that the restored state
        is positive definite, a Cholesky factorization certifies ``lambda_min(X')`` above half
        that prediction (:func:`_certified_above`) instead of the eigenvalue solve, which runs
        only if the certificate fails.
    anchor_start : ndarray, optional
        A dual point for the maximum-entropy search of the default anchor
        (:func:`anchor_state`'s ``start``).
    lower : float, optional
        A certified lower bound ``L`` on ``F_0``. On coupling problems the operator Sinkhorn
        scaling then stops once its remaining residual is predicted to cost less than
        :data:`SCALING_BRACKET_SHARE` of ``U - L`` (:func:`_scaling_reduction`); without it, at
        rounding.

    Returns
    -------
    FeasibleBound
        ``value = inf`` with a ``note`` when no bound is available.
    """
    t0 = time.perf_counter()
    geo = _geometry(problem)
    if anchor is None:
        # computed (and cached) only if the restored state itself is not certified positive
        # definite: finding an anchor can take one Newton solve of its own
        def anchors():
            return anchor_states(problem, start=anchor_start)
    elif isinstance(anchor, Anchor):
        anchors = [anchor]
    elif isinstance(anchor, np.ndarray):
        anchors = [_make_anchor(problem, anchor, "user-provided state", geo)]
    else:
        anchors = list(anchor)
    X = np.asarray(X)
    if X.shape != (problem.dim, problem.dim) or not np.all(np.isfinite(X)):
        return _unavailable("the state is not a finite D x D matrix", t0)
    nu = _inconsistency(problem, geo)
    if nu > 1e-8 * (1.0 + float(np.linalg.norm(problem.q))):
        return _unavailable(
            f"the rows of A are dependent and q violates the dependence by {nu:.2e}: "
            "no state satisfies A(X) = q",
            t0,
        )
    Xh = 0.5 * (X + X.conj().T)
    fb = _bound(problem, Xh, anchors, geo, nu, eig, lam_min_X, t0, lam_estimate)
    if not fb.available:
        ff = _face_bound(problem, Xh, t0)
        if ff is not None:
            return ff
    marg = coupling_marginals(problem)
    if marg is not None and (fb.t != 0.0 or not fb.available):
        dims, rho, sigma = marg
        with np.errstate(all="ignore"):
            stop = _scaling_reduction(fb, lower, problem.cost_frobenius)
            Xs = scale_to_marginals(Xh, rho, sigma, dims, reduction=stop)
        if Xs is not None and np.all(np.isfinite(Xs)):
            fs = _bound(problem, Xs, anchors, geo, nu, True, None, t0, scaled=True)
            if fs.value < fb.value:
                restoration = float(np.linalg.norm(fs.restored.X - Xh))
                return dataclasses.replace(fs, restoration=restoration)
    return fb


#: operator Sinkhorn (:func:`scale_to_marginals`) in :func:`feasible_upper_bound` stops once
#: the predicted cost of its remaining residual is this fraction of the bracket ``U - L``
SCALING_BRACKET_SHARE = 1e-3


def _scaling_reduction(fb: FeasibleBound, lower: float | None, h_norm: float) -> float:
    """The residual reduction at which operator Sinkhorn may stop, given the bound ``fb`` from
    the Frobenius projection ``X'`` of the state and a certified lower bound ``lower`` on
    ``F_0`` (``0``: run to rounding).

    Projecting a residual costs the bound its mixing with the anchor and moves the energy by up
    to ``||H||_F`` times the correction; both scale with the residual. Sinkhorn's residual
    ``r_k`` left to the final projection therefore costs about
    ``(r_k / r_0) c`` with ``c = (U' - E') + ||H||_F ||X' - X||_F`` (``U'``, ``E'`` the bound and
    energy of ``X'``). No bound from this state can beat ``w = E' - L - ||H||_F ||X' - X||_F``
    (the energy of the scaled state is within that correction of ``E'``), and Sinkhorn stops
    once ``(r_k / r_0) c`` is :data:`SCALING_BRACKET_SHARE` of ``w``: where the regularization
    gap dominates the bracket (large eps). Where ``w <= 0`` (small eps: the bracket is set by
    the state's feasibility) it runs to rounding (docs/bounds.md, 'Couplings: scaling instead
    of projecting')."""
    if lower is None or not (fb.available and np.isfinite(lower)):
        return 0.0
    cost = (fb.value - fb.energy) + h_norm * fb.restoration
    width = fb.energy - lower - h_norm * fb.restoration
    if not (cost > 0 and width > 0 and np.isfinite(cost)):
        return 0.0
    return min(1.0, SCALING_BRACKET_SHARE * width / cost)


def _face_bound(problem, Xh: np.ndarray, t0: float) -> FeasibleBound | None:
    """The upper bound from the face of a coupling problem with singular marginals
    (:mod:`cvxqreg.face`): ``V^* X V`` bounded on the face problem, its state lifted back."""
    from .face import coupling_face

    face = coupling_face(problem)
    if face is None:
        return None
    fr = feasible_upper_bound(face.problem, face.restrict(Xh))
    if not fr.available:
        return None
    X = face.lift(fr.X)
    return FeasibleBound(
        fr.value,
        X,
        fr.t,
        0.0,
        float(np.linalg.norm(X - Xh)),
        fr.zeta,
        fr.energy,
        f"{face.describe()} (U is exact for marginals with those eigenvalues set to zero); "
        f"on that face: {fr.note}",
        time.perf_counter() - t0,
        None,
    )


def _bound(
    problem, Xh, anchors, geo, nu, eig, lam_min_X, t0, lam_estimate=None, scaled=False
) -> FeasibleBound:
    """:func:`feasible_upper_bound` for one Hermitian ``Xh`` (``scaled``: ``Xh`` came from
    :func:`scale_to_marginals`). ``anchors`` is a list of :class:`Anchor`, or a callable that
    returns one, called only when the restored state needs mixing."""
    Xr, corr = restore_feasibility(problem, Xh)
    rho = _residual_bound(problem, Xr, geo)
    energy, e_err = _energy(problem, Xr)
    # Weyl: lambda_min(X + Y) >= lambda_min(X) - ||Y||_2 >= lambda_min(X) - ||Y||_F
    lam = -math.inf if lam_min_X is None else lam_min_X - corr * (1.0 + 1e-12)
    need = _zeta(rho, geo)
    if eig == "auto" and lam < need and lam_estimate is not None:
        s = 0.5 * (lam_estimate - corr)  # half of Weyl's prediction for lambda_min(X')
        if s >= need and _certified_above(Xr, s):
            lam = s
    if eig is True or (eig == "auto" and lam < need):
        lam = max(lam, _lambda_min_lower(Xr))
    restored = Anchor(Xr, lam, energy, e_err, rho, "restored state")
    hf = problem.cost_frobenius
    if lam >= need:  # X' itself is (to rounding) feasible and positive definite
        value = energy + e_err + hf * need * (1.0 + 1e-6)
        return FeasibleBound(
            value,
            Xr,
            0.0,
            lam,
            corr,
            need,
            energy,
            _note("", 0.0, nu, scaled),
            time.perf_counter() - t0,
            restored,
        )
    best = None
    notes = []
    for anc in anchors() if callable(anchors) else anchors:
        if anc.X is None:
            notes.append(anc.note)
            continue
        zeta = _zeta(max(rho, anc.residual), geo)
        if not anc.lam_lower > zeta:
            notes.append(f"the {anc.source} is not certified positive definite")
            continue
        t = (zeta - lam) / (anc.lam_lower - lam)
        t = min(1.0, t * (1.0 + 1e-12) + 4 * _U)
        while (1 - t) * lam + t * anc.lam_lower < zeta and t < 1.0:
            t = min(1.0, t * (1.0 + 1e-9) + 1e-15)
        value = (1.0 - t) * (energy + e_err) + t * (anc.energy + anc.energy_err)
        value += 4 * _U * (abs(energy) + abs(anc.energy)) + hf * zeta * (1.0 + 1e-6)
        if best is None or value < best[0]:
            best = (value, t, zeta, anc)
    if best is None:
        return _unavailable(
            "; ".join(dict.fromkeys(notes)) or "no strictly feasible state to mix with",
            t0,
            lam_lower=lam,
            restoration=corr,
            zeta=need,
            energy=energy,
            restored=restored,
        )
    value, t, zeta, anc = best
    Xhat = (1.0 - t) * Xr + t * anc.X
    return FeasibleBound(
        value,
        Xhat,
        t,
        lam,
        corr,
        zeta,
        energy,
        _note(anc.source, t, nu, scaled),
        time.perf_counter() - t0,
        restored,
    )


def _note(source: str, t: float, nu: float, scaled: bool = False) -> str:
    how = "scaled to the marginals (operator Sinkhorn), " if scaled else ""
    note = (
        f"{how}restored onto A(X) = q"
        if t == 0.0
        else f"{how}restored onto A(X) = q and mixed with the {source} (weight t = {t:.3e})"
    )
    if nu > 0:
        note += (
            f"; the rows of A are dependent and q meets the dependence only to {nu:.1e} "
            "(rounding in the data): U is for q projected onto the range of A"
        )
    return note


# ---------------------------------------------------------------------------- the two ends
def bracket_of_solve(
    oracle, ev, usable: bool = True, need_state: bool = True
) -> tuple[float, FeasibleBound]:
    """``(L, FeasibleBound)`` for one evaluation of a dual oracle: ``L`` the sharper of
    :func:`shift_lower_bound` and :func:`regularization_lower_bound` (``nan`` when the trace is
    not fixed), ``U`` from :func:`feasible_upper_bound` on the evaluation's state. With
    ``usable=False`` (a failed or infeasible solve) only the shift bound is computed.

    With ``H = 0`` (a feasibility problem: ``F_0 = 0``, attained by every feasible state) and
    ``need_state=False`` (the caller does not return the feasible state), ``U = 0`` comes from
    a strictly feasible state this problem already has certified (:func:`_known_anchor`),
    without restoring the evaluation's own state."""
    problem = oracle.problem
    lb = oracle.certified_lower_bound(ev)
    tau = problem.trace_value
    if not usable:
        return lb, _unavailable(
            "not computed: the solve failed or the data are infeasible", time.perf_counter()
        )
    if tau is not None and np.isfinite(ev.value):
        lo = regularization_lower_bound(
            oracle.reg, oracle.eps, tau, problem.dim, ev.value - oracle.dual_rounding(ev)
        )
        lb = max(lb, lo)  # both rigorous; keep the sharper
    # with H = 0 a von Neumann solve's alpha / eps is the maximum-entropy anchor's dual point
    start = None
    if isinstance(oracle.reg, VonNeumann):
        start = np.asarray(ev.alpha, dtype=np.float64) / oracle.eps
        if oracle.eps >= _ANCHOR_STARTS.get(problem, (-math.inf,))[0]:
            _ANCHOR_STARTS[problem] = (oracle.eps, start)
    if not need_state and not np.any(problem.H):
        known = _known_anchor(problem)
        if known is not None:
            return lb, known
    X = oracle.be.to_host(oracle.with_state(ev).X)
    est = None
    if ev.w is not None:
        w = np.asarray(oracle.be.to_host(ev.w), dtype=np.float64)
        est = float(np.min(w)) if w.size and np.all(np.isfinite(w)) else None
    fb = feasible_upper_bound(problem, X, lam_estimate=est, anchor_start=start, lower=lb)
    anc = fb.restored
    if (
        fb.available
        and fb.t == 0.0
        and anc is not None
        and oracle.eps > _RESTORED_ANCHORS.get(problem, (-math.inf,))[0]
    ):
        # the restored state needed no anchor: a certified strictly feasible state that a
        # later bound on this problem (another regularizer, a smaller eps) can mix with
        # instead of searching for the maximum-entropy state (the largest eps gives the most
        # centred one). Its lambda_min is certified sharply only when it is used as an anchor
        # (:func:`anchor_state`)
        source = f"restored state of the {oracle.reg.name} solve at eps = {oracle.eps:g}"
        _RESTORED_ANCHORS[problem] = (oracle.eps, dataclasses.replace(anc, source=source), False)
    return lb, fb


def _restored_anchor(problem) -> Anchor:
    """The recorded restored state of :data:`_RESTORED_ANCHORS` with its ``lambda_min``
    certified by one eigenvalue solve (once): the bound that recorded it may have settled for a
    Cholesky certificate of half of it, enough there but a poor anchor (the mixing weight grows
    as ``lambda_min`` shrinks)."""
    eps, anc, sharp = _RESTORED_ANCHORS[problem]
    if not sharp:
        anc = dataclasses.replace(anc, lam_lower=max(anc.lam_lower, _lambda_min_lower(anc.X)))
        _RESTORED_ANCHORS[problem] = (eps, anc, True)
    return anc


def _known_anchor(problem) -> FeasibleBound | None:
    """For ``H = 0``: ``U = 0`` from a strictly feasible state already certified for this
    problem (a restored state of an earlier solve, or a computed anchor), ``None`` if there is
    none yet. Every rounding margin of :func:`feasible_upper_bound` carries a factor of ``H``;
    the state's residual is within ``zeta`` of its certified ``lambda_min``, as there."""
    t0 = time.perf_counter()
    cands = []
    if problem in _RESTORED_ANCHORS:
        cands.append(_RESTORED_ANCHORS[problem][1])  # certified (U needs no sharp lambda_min)
    for _, good in _ANCHORS.get(problem, {}).values():
        cands.extend(good)
    geo = _geometry(problem)
    for anc in cands:
        zeta = _zeta(anc.residual, geo)
        if anc.X is not None and anc.lam_lower > zeta:
            note = (
                f"H = 0: every feasible state is optimal (F_0 = 0); the {anc.source}, certified "
                "strictly feasible for this problem before, attains it"
            )
            return FeasibleBound(
                0.0, anc.X, 1.0, math.nan, math.nan, zeta, 0.0, note, time.perf_counter() - t0
            )
    return None


def user_bracket(problem, lower: float, upper: float) -> tuple[float, float]:
    """``(low, high)`` in the user's convention from ``L <= F_0 <= U`` in minimization form (the
    offset added; for a ``Maximize`` the ends swap). A missing end is infinite."""
    lo = lower if math.isfinite(lower) else -math.inf
    hi = upper if not math.isnan(upper) else math.inf
    a, b = problem.user_value(lo), problem.user_value(hi)
    return (a, b) if problem.sense == 1 else (b, a)
