"""The dual oracle of the regularized problem.

For ``eps > 0`` and ``W(alpha) = A*(alpha) - H = U diag(lam) U^*``,

    D_eps(alpha)      = <alpha, q> - eps sum_j psi(lam_j / eps),
    grad D_eps(alpha) = q - A(X(alpha)),   X(alpha) = U diag(psi'(lam / eps)) U^*,

(docs/theory.md, 'The problems' and 'Computing D_eps and its gradient'): one Hermitian
eigendecomposition per evaluation, then O(D^2) work with the
structured operators plus one rank-k product to form ``X`` (k = number of eigenvalues with
non-negligible weight; small at small eps).

Normalization elimination (docs/theory.md, 'Eliminating the normalization multiplier'). When
``A*(c) = I`` for some ``c`` the constraints fix
``Tr X = tau = <c, q>`` and ``D_eps(alpha + s c)`` is maximized over ``s`` in closed form
(von Neumann: ``tau softmax``) or by a scalar monotone solve. The oracle then returns the
*eliminated* dual

    D~(alpha) = max_s D_eps(alpha + s c),     grad D~(alpha) = grad D_eps(alpha + s* c),

(envelope theorem), which is invariant along ``c``, never overflows, and whose state has trace
exactly ``tau`` at every iterate. ``Evaluation.alpha`` is the shifted point ``alpha + s* c``, a
genuine dual point with the same value.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import weakref
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ..backend import Backend, array_module, get_backend
from ..bounds import dual_rounding, infeasibility_threshold, shift_lower_bound
from ..errors import InfeasibleDataError, InvalidInputError
from ..operators.blocks import block_eigh
from ..problem import LoweredProblem
from ..regularizers import Regularizer

__all__ = [
    "LOW_RANK_GAP",
    "LOW_RANK_MAX_FRACTION",
    "SINGLE_PRECISION_RTOL",
    "DualOracle",
    "Evaluation",
]

#: eigenvalues with weight below this fraction of the largest are dropped when forming X
_WEIGHT_CUTOFF = 1e-18
#: gap ``c`` of the low-rank Hessian products: divided differences with both eigenvalues more
#: than ``c`` below the top (``t = lam / eps``) are at most ``e^-c = 8.5e-17`` of the largest
LOW_RANK_GAP = 37.0
#: the low-rank product is used while the top block has at most this fraction of D eigenvalues,
#: per backend. NumPy, one BLAS thread (benchmarks/results/low_rank_products.md, CPU time): the
#: low-rank product costs 0.32-0.76 of the full one at r/D = 0.5 and 0.01-0.22 at r/D = 0.01
#: (D >= 256), and breaks even near r/D = 0.8 for Pauli rows (later for partial traces). The
#: quadratic product from the n off-support columns (:meth:`DualOracle._complement_product`,
#: taken when the top block exceeds this fraction and the rest does not) costs 0.36-0.55 of the
#: full one at n/D = 0.3 and 0.57-0.70 at 0.5 for D >= 256 (same file, second table). CuPy: not
#: yet measured on a device (benchmarks/gpu_check.py measures it); the NumPy value meanwhile
LOW_RANK_MAX_FRACTION = {"numpy": 0.5, "cupy": 0.5}
#: conjugate gradients whose relative residual target is at least this take single-precision
#: full Hessian products (:meth:`DualOracle.single_products`), per backend (``None``: never).
#: NumPy, measured over 12 operation-count cases (benchmarks/results/single_products.md): at
#: 0.1 the Newton iterations of double precision in every case; at 1e-2 IM N = 4 took 17
#: instead of 15 (259 Hessian products instead of 179); their CPU times (D <= 576, mostly
#: low-rank products) are within the machine's noise. CuPy: not yet measured on a device
SINGLE_PRECISION_RTOL = {"numpy": 0.1, "cupy": None}
#: ... and only from this dimension on: a single-precision full product took 1.06-1.10 of the
#: double one at D = 64 (its conversions cost what its matrix products save), 0.58-0.72 at
#: D >= 256 (NumPy, one thread; benchmarks/results/low_rank_products.md, last column)
SINGLE_PRECISION_MIN_DIM = 128
#: the dense Hessian is used up to this many entries in the stack of rows (m D^2): 64 MB complex
_DENSE_HESSIAN_ENTRIES = 1 << 22
#: ... and while m D^3 (the flops of the rows in the eigenbasis) stays below this
_DENSE_HESSIAN_WORK = 4e6
#: the dense Hessian forms the rows in the eigenbasis from the marginal structure when the rows
#: one by one would cost more flops than this: below it the per-marginal gathers cost more than
#: the products they save (one-off, 1 thread: at QWD n = 5, 8 m D^3 = 6e6 flops, the rows took
#: 470 us against 850 us one by one; at IM N = 2, 2 m D^3 = 1.6e5 flops, 150 us against 40 us)
_MARGINAL_ROWS_FLOPS = 1e6
#: Newton considers the dense low-rank Hessian while m r D entries stay within this many bytes
#: (its rows are held a block at a time; the limit keeps the matrix to sizes where it can pay)
_DENSE_LOW_RANK_BYTES = 1 << 30
#: ... and forms its rows this many entries at a time
_LOW_RANK_BLOCK_ENTRIES = 1 << 22
#: rows of partial-trace entries in the eigenbasis (r D entries each) at least this long are
#: summed one by one on NumPy, each row once through the cache; shorter ones by one vectorized
#: gather per marginal, whose temporaries are small. One-off, one thread: at D = 576, r = 150
#: row by row took 0.09 s against 0.16-0.26 s gathered a few rows at a time; at QWD n = 5
#: (r D = 625) 240-639 us against 105-479 us, at n = 6 (r D = 1296) 311-786 against 286-1709
_ROWWISE_MIN_ENTRIES = 1024


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation of the dual oracle (minimization form; host scalars/vectors).

    ``lam``, ``U``, ``w`` (device arrays) are the eigen-data of ``W`` at the shifted point:
    ``X = U diag(w) U^*``. ``X`` is the device state, or ``None`` if not formed. ``spectrum`` is
    ``(alpha, lam)``: the point whose ``W = A*(alpha) - H`` was diagonalized (before the
    normalization shift) and its eigenvalues as computed, for the weak-duality bound
    (:meth:`DualOracle.certified_lower_bound`) without a second eigenvalue solve.
    """

    value: float
    grad: np.ndarray
    alpha: np.ndarray
    shift: float
    lam: Any
    U: Any
    w: Any
    X: Any
    spectrum: tuple[np.ndarray, Any] | None = None

    @property
    def grad_norm(self) -> float:
        """``||grad||_2``."""
        return float(np.linalg.norm(self.grad))


#: how Hessian-vector products are formed (:meth:`DualOracle.hessian_operator`)
HESSIAN_PRODUCTS = ("auto", "full", "low_rank")


#: per problem, ``{(backend name, elimination): {name: data}}``: :attr:`DualOracle._shared`
_PROBLEM_DATA: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _permutation(be, U):
    """``p`` with ``U[p[k], k] = 1`` and every other entry zero when ``U`` is a permutation matrix
    (the eigenvectors :meth:`~cvxqreg.backend.Backend.eigh` returns for a diagonal matrix), else
    ``None``; one pass over ``U``."""
    xp = be.xp
    n = U.shape[0]
    if U.ndim != 2 or U.shape[1] != n or int(xp.count_nonzero(U)) != n:
        return None
    p = xp.argmax(xp.abs(U), axis=0)
    if not bool(xp.all(U[p, xp.arange(n)] == 1)):
        return None
    return p


class DualOracle:
    """Evaluates ``D_eps``, its gradient and the primal state for one problem and one ``eps``.

    Parameters
    ----------
    problem : LoweredProblem
    eps : float
        Regularization strength, ``> 0``.
    regularizer : Regularizer
    backend : Backend or str
        Where the eigendecompositions run; data move to the device once, here.
    eliminate : bool or "auto"
        Use normalization elimination when the constraints fix the trace (``"auto"``: whenever
        possible).
    """

    def __init__(
        self,
        problem: LoweredProblem,
        eps: float,
        regularizer: Regularizer,
        backend: Backend | str = "auto",
        eliminate: bool | str = "auto",
    ):
        if not isinstance(problem, LoweredProblem):
            raise InvalidInputError("DualOracle needs a LoweredProblem (see cvxqreg.lower)")
        eps = _check_eps(eps)
        self.problem = problem
        self.eps = eps
        self.reg = regularizer
        self.be = get_backend(backend)
        xp = self.be.xp
        self.imag_rows = None if problem.real else _real_reduction(problem)
        self.real = problem.real or self.imag_rows is not None
        self.A = problem.A.to_backend(self.be)
        H = np.real(problem.H) if self.real else problem.H
        self.H = self.be.asarray(H, dtype=xp.float64 if self.real else xp.complex128)
        self.q = np.asarray(problem.q, dtype=np.float64)
        c = problem.trace_direction
        if eliminate not in ("auto", True, False):
            raise InvalidInputError(f"eliminate must be True, False or 'auto', got {eliminate!r}")
        if eliminate is True and c is None:
            raise InvalidInputError(
                "eliminate=True needs constraints that fix the trace (the identity must be a "
                "combination of the Q_i); add cp.trace(X) == 1"
            )
        self.c = c if eliminate in ("auto", True) else None
        if self.c is not None and self.imag_rows is not None:
            # A*(c) = I is real: c's imaginary rows carry only LSQR rounding; zeroing them keeps
            # every shifted point alpha + s c on the real reduction (W's real part is exact)
            self.c = np.where(self.imag_rows, 0.0, self.c)
        self.tau = None if self.c is None else float(self.c @ self.q)
        if self.c is not None and not self.tau > 0:
            raise InfeasibleDataError(
                f"the constraints fix Tr X = {self.tau:.6g} <= 0; a nonzero positive "
                "semidefinite X needs a positive trace"
            )
        self.n_evals = 0
        self._primed = None  # (alpha, eps, Evaluation) for the next evaluate at that alpha
        self.last_products = None  # which Hessian product the last hessian_operator built
        # lazily built data that depend on the problem alone (row stacks, sparse entries,
        # marginal structure): shared by every oracle of this problem on this backend with the
        # same elimination and real reduction (several of them keep only the real parts there),
        # so a solver called on one problem again and again builds them once
        key = (self.be.name, self.c is not None, self.imag_rows is not None)
        self._shared: dict[str, Any] = _PROBLEM_DATA.setdefault(problem, {}).setdefault(key, {})

    def with_eps(self, eps: float) -> DualOracle:
        """The same problem and device data at another ``eps`` (no new transfers)."""
        other = copy.copy(self)
        other.eps = _check_eps(eps)
        other.n_evals = 0
        other._primed = None
        return other

    # ------------------------------------------------------------------ pieces
    def W(self, alpha: np.ndarray):
        """``A*(alpha) - H`` on the device (real symmetric for a real or real-reduced problem,
        where ``alpha`` is taken with its :attr:`imag_rows` zeroed: ``W(P alpha)``, exact)."""
        return self._W_projected(self._project(np.asarray(alpha, dtype=np.float64)))

    def _W_projected(self, alpha: np.ndarray):
        """:meth:`W` at an ``alpha`` already projected (``P alpha = alpha``)."""
        a = self.be.asarray(alpha, dtype=self.be.xp.float64)
        Wd = self.A.adjoint_real(a) if self.real else self.A.adjoint(a)
        return Wd - self.H

    def _project(self, alpha: np.ndarray) -> np.ndarray:
        """``P alpha``: ``alpha`` with the imaginary rows of the real reduction zeroed
        (:func:`_real_reduction`; the identity without it)."""
        if self.imag_rows is None or not np.any(alpha[self.imag_rows]):
            return alpha
        alpha = alpha.copy()
        alpha[self.imag_rows] = 0.0
        return alpha

    def factor(self, U, w):
        """``V = U_k diag(sqrt(w_k))`` over the columns with non-negligible weight, so that
        ``X = U diag(w) U^* = V V^*`` (rank ``k``; small at small eps)."""
        xp = self.be.xp
        w = xp.maximum(w, 0.0)
        wmax = float(xp.max(w)) if w.size else 0.0
        keep = w > _WEIGHT_CUTOFF * wmax if wmax > 0 else w > 0
        k = int(xp.count_nonzero(keep))
        if k < w.size:
            idx = xp.nonzero(keep)[0]
            U, w = U[:, idx], w[idx]
        return U * xp.sqrt(w)[None, :]

    # ------------------------------------------------------------------ the oracle
    def evaluate(self, alpha: np.ndarray, want_state: bool = True) -> Evaluation:
        """``D(alpha)`` and ``grad D(alpha)`` (maximization form) with the eigen-data; the state
        ``X`` too when ``want_state`` (inside an optimizer loop it is not needed, and operators
        with ``spectral_native`` then compute ``A(X)`` without forming it)."""
        xp, eps, reg = self.be.xp, self.eps, self.reg
        alpha = np.asarray(alpha, dtype=np.float64)
        if self._primed is not None:
            (a_p, eps_p, ev_p), self._primed = self._primed, None
            if (
                (ev_p.X is not None or not want_state)
                and eps_p == self.eps
                and np.array_equal(a_p, alpha)
            ):
                return ev_p
        alpha = self._project(alpha)
        # several PSD variables: W is block diagonal, one eigh per block
        lam, U = block_eigh(self.be, self._W_projected(alpha), self.problem.blocks)
        self.n_evals += 1
        spectrum = (alpha.copy(), lam)  # a copy: callers may update their alpha in place
        if self.c is not None:
            # centre first: t = (lam - lam_max)/eps <= 0 keeps t + u accurate at tiny eps
            top = float(lam[-1])
            t = (lam - top) / eps
            u = reg.normalizing_shift(t, self.tau)
            t = t + u
            shift = eps * u - top  # W + shift*I has eigenvalues eps*t
            lam = eps * t
            alpha = alpha + shift * self.c
        else:
            t = lam / eps
            shift = 0.0
        # without elimination exp(t - 1) can overflow: D = -inf is the true value of that
        # iterate and the line search steps back, so the overflow is not an error here
        with np.errstate(over="ignore", invalid="ignore"):
            w = reg.dpsi(t)
            psi_sum = float(xp.sum(reg.psi(t)))
        value = float(alpha @ self.q) - eps * psi_sum
        V = self.factor(U, w)
        if self.A.spectral_native and not want_state:
            X = None  # A(X) straight from the factor: X is never formed
            AX = self.A.apply_spectral(V)
        elif not want_state:  # X is not returned: real under the real reduction, read as is
            X = None
            AX = self.A.apply(self.be.outer(V))
        else:
            X = self._state(V)
            AX = self.A.apply(X)
        grad = self.q - self.be.to_host(AX)
        return Evaluation(
            value=value,
            grad=grad,
            alpha=alpha,
            shift=shift,
            lam=lam,
            U=U,
            w=w,
            X=X,
            spectrum=spectrum,
        )

    def prime(self, alpha: np.ndarray, ev: Evaluation) -> None:
        """Hand ``ev`` (this oracle's evaluation at ``alpha``) to the next :meth:`evaluate`, which
        returns it if called at the same ``alpha`` (once): a warm start chosen by comparing
        evaluations is not decomposed again by the optimizer's first step."""
        self._primed = (np.array(alpha, dtype=np.float64), self.eps, ev)

    def with_state(self, ev: Evaluation) -> Evaluation:
        """``ev`` with its state ``X = U diag(w) U^*`` formed (as ``evaluate(want_state=True)``)."""
        if ev.X is not None:
            return ev
        return dataclasses.replace(ev, X=self._state(self.factor(ev.U, ev.w)))

    def _state(self, V):
        """``X = V V^*``, complex for a Hermitian problem even when the real reduction made it
        real (the caller's variable is Hermitian)."""
        X = self.be.outer(V)
        if self.imag_rows is not None:
            X = X.astype(self.be.xp.complex128)
        return X

    def single_products(self, rtol: float) -> bool:
        """Whether conjugate gradients to the relative residual ``rtol`` take single-precision
        full Hessian products (:meth:`_full_product`): per backend,
        :data:`SINGLE_PRECISION_RTOL`, from :data:`SINGLE_PRECISION_MIN_DIM` on."""
        floor = SINGLE_PRECISION_RTOL.get(self.be.name)
        return floor is not None and rtol >= floor and self.problem.dim >= SINGLE_PRECISION_MIN_DIM

    def hessian_operator(self, ev: Evaluation, products: str = "auto", single: bool = False):
        """``v -> -Hess D(alpha) v`` (positive semidefinite) at an evaluation, on the host.

        Daleckii-Krein (docs/theory.md, 'Daleckii-Krein Hessian'): with ``t = lam / eps`` and the
        divided differences ``G`` of ``psi'``,

            Hess D_eps(alpha) v = -(1/eps) A( U (G o (U^* A*(v) U)) U^* ),

        reusing the eigendecomposition (four ``D x D`` products per call, no new eigh). With
        normalization elimination the Hessian of ``D~(alpha) = max_s D_eps(alpha + s c)`` is the
        Schur complement along ``c``:
        ``Hess D~ = Hess D - (Hess D c)(Hess D c)^T / (c^T Hess D c)``, and ``Hess D c`` needs
        only ``A(U diag(psi''(t)) U^*)`` since ``A*(c) = I``.

        ``products``: ``"full"``, ``"low_rank"`` (:meth:`_low_rank_split`, where the regularizer
        allows it) or ``"auto"`` (low rank when the top block is at most
        :data:`LOW_RANK_MAX_FRACTION` of ``D`` for this backend; else, when the regularizer has a
        :attr:`~cvxqreg.regularizers.Regularizer.support_curvature` and the rest is at most that
        fraction, :meth:`_complement_product`). ``single``: full products in single precision
        (:meth:`single_products` says when).
        """
        if products not in HESSIAN_PRODUCTS:
            raise InvalidInputError(
                f"products must be 'auto', 'full' or 'low_rank', got {products!r}"
            )
        split = None if products == "full" else self._low_rank_split(ev)
        rest = None  # the size of the block without curvature, for the complement product
        if split is not None and products == "auto":
            D = ev.U.shape[0]
            frac = LOW_RANK_MAX_FRACTION.get(self.be.name, LOW_RANK_MAX_FRACTION["numpy"])
            if split > frac * D:
                if self.reg.support_curvature is not None and D - split <= frac * D:
                    rest = D - split
                split = None
        if rest is not None:
            neg_hess = self._complement_product(ev, rest)
            along = self._trace_curvature(ev)
            self.last_products = f"complement(n={rest})"
        elif split is None:
            neg_hess = self._full_product(ev, single)
            along = self._trace_curvature(ev)
            self.last_products = "full"
        else:
            neg_hess = self._low_rank_product(ev, split)
            along = self._trace_curvature(ev, split)
            self.last_products = f"low_rank(r={split})"
        if along is None:
            return neg_hess
        hc, chc = along

        def neg_hess_eliminated(v):
            return neg_hess(v) - hc * (float(hc @ v) / chc)

        return neg_hess_eliminated

    def _adjoint(self, v):
        a = self.be.asarray(v, dtype=self.be.xp.float64)
        return self.A.adjoint_real(a) if self.real else self.A.adjoint(a)

    def _full_product(self, ev: Evaluation, single: bool = False):
        """``v -> -(1/eps) A(U (G o (U^* A*(v) U)) U^*)``: four ``D x D`` products.

        ``single``: the four products in single precision, each factor scaled to unit maximum
        with its negligible components zeroed (:meth:`~cvxqreg.backend.Backend.single`, no
        subnormal arithmetic); ``A`` and ``A*`` stay in double precision. The result is exact
        to about ``1e-7`` of its norm: for conjugate gradients run to a loose tolerance."""
        U = ev.U
        G = self.reg.divided_differences(ev.lam / self.eps)
        perm = _permutation(self.be, U)
        if perm is not None:
            # U is a permutation (W was diagonal: alpha = 0 with a diagonal cost, where every
            # tomography solve starts): U (G o (U^* E U)) U^* = G' o E with G' = G permuted back,
            # O(D^2) instead of four matrix products
            Gp = self.be.xp.empty_like(G)
            Gp[perm[:, None], perm[None, :]] = G

            def neg_hess_diagonal(v):
                return self.be.to_host(self.A.apply(Gp * self._adjoint(v))) / self.eps

            return neg_hess_diagonal
        Uh = U.conj().T
        if not single:

            def neg_hess(v):
                C = G * (Uh @ self._adjoint(v) @ U)
                return self.be.to_host(self.A.apply(U @ C @ Uh)) / self.eps

            return neg_hess

        be = self.be
        U1 = be.single(U, scale=False)[0]  # |U_ij| <= 1
        Uh1 = U1.conj().T
        G1, sg = be.single(G)

        def neg_hess_single(v):
            E, s = be.single(self._adjoint(v))
            B, s1 = be.single(Uh1 @ E)
            C, s2 = be.single(G1 * (B @ U1))
            Y, s3 = be.single(U1 @ C)
            X = (Y @ Uh1).astype(U.dtype)
            scale = s * s1 * s2 * s3 * sg / self.eps
            return be.to_host(self.A.apply(X)) * scale

        return neg_hess_single

    def _complement_product(self, ev: Evaluation, n: int):
        """The Hessian product from the block ``N`` without curvature (the first ``n``
        eigenvalues) when ``psi'' = c`` on the rest ``S`` and ``psi'`` is constant on ``N``
        (:attr:`~cvxqreg.regularizers.Regularizer.support_curvature`; quadratic: ``c = 1``).

        Then ``G = c - F`` with ``F_SS = 0``, ``F_NN = c`` and ``F_NS = c - G_NS``, and since
        ``U C U^* = E = A*(v)`` (docs/theory.md, 'Low-rank Hessian products'),

            U (G o C) U^*  =  c E - (P + P^*),   P = U_N (F'_N. o (U_N^* E U)) U^*,

        with the ``N`` columns of ``F'`` halved (as in :meth:`_low_rank_product`). Exact, and
        ``4 n D^2`` flops instead of ``4 D^3``: the product for a state of high rank.
        """
        c, eps = float(self.reg.support_curvature), self.eps
        U = ev.U
        UN, Uh = U[:, :n], U.conj().T
        t = ev.lam / eps
        F = c - self.reg.divided_differences(t[:n], t)  # n x D rows of F
        F[:, :n] *= 0.5

        def neg_hess(v):
            E = self._adjoint(v)
            if n:
                K = (F * ((E @ UN).conj().T @ U)) @ Uh  # (U_N^* E = (E U_N)^*, E Hermitian)
                P = UN @ K
                E = c * E - P - P.conj().T
            else:
                E = c * E
            return self.be.to_host(self.A.apply(E)) / eps

        return neg_hess

    def _low_rank_split(self, ev: Evaluation) -> int | None:
        """The size ``r`` of the top block ``T`` of eigenvalues (``t = lam/eps`` above the
        regularizer's :meth:`~cvxqreg.regularizers.Regularizer.negligible_cut` at gap
        :data:`LOW_RANK_GAP`), or ``None`` when the regularizer gives no cut."""
        t = ev.lam / self.eps
        cut = self.reg.negligible_cut(float(t[-1]), LOW_RANK_GAP)
        if cut is None:
            return None
        return int(self.be.xp.count_nonzero(t > cut))

    def _low_rank_product(self, ev: Evaluation, r: int):
        """The Hessian product on the top block ``T`` (the last ``r`` eigenvalues; ``B`` the rest).

        With ``C = U^* E U`` (``E = A*(v)``) and ``G`` split into blocks, ``G_BB`` is dropped
        (below ``e^-gap psi''(t_max)`` entrywise, or exactly zero): since ``G`` and ``C`` are
        Hermitian the ``(B, T)`` block mirrors ``(T, B)``, and

            U (G o C) U^*  ~=  P + P^*,   P = U_T (Z' U^*),   Z' = G_T. o (U_T^* E U),

        with the ``T`` columns of ``Z'`` halved (``Z'_TT + Z'_TT^* = G_TT o C_TT``). Every
        factor is ``r x D``: ``4 r D^2`` flops instead of ``4 D^3``. The dropped operator
        ``v -> (1/eps) A(U_B (G_BB o C_BB) U_B^*)`` is positive semidefinite with norm at most
        ``e^-gap psi''(t_max) ||A||^2 / eps``, i.e. ``e^-gap`` times the bound
        ``psi''(t_max) ||A||^2 / eps`` on the whole Hessian when ``psi''`` is monotone
        (docs/theory.md, 'Low-rank Hessian products').
        """
        xp, eps = self.be.xp, self.eps
        U = ev.U
        D = U.shape[0]
        t = ev.lam / eps
        UT = U[:, D - r :]
        Uh = U.conj().T
        GT = self.reg.divided_differences(t[D - r :], t)  # r x D rows of G
        GT[:, D - r :] *= 0.5

        def neg_hess(v):
            if r == 0:
                return np.zeros(self.q.size)
            a = xp.asarray(v, dtype=xp.float64)
            # A*(v) U_T; only its real part when the problem is real (``real`` is passed only
            # then: operators written before it was added keep working)
            B = self.A.adjoint_times(a, UT, real=True) if self.real else self.A.adjoint_times(a, UT)
            B = B.real if self.real else B
            K = (GT * (B.conj().T @ U)) @ Uh  # Z' U^*, r x D
            # A(P + P^*) with P = U_T K from the factors (structured operators never form the
            # D x D sum). Measured on the Ising instance at D = 256, writing it as a difference
            # of two Gram terms A(X+ X+^*) - A(X- X-^*) made the operator 6x less symmetric,
            # enough to stall conjugate gradients on its near-null directions; L R^* + R L^*
            # is Hermitian by construction
            return self.be.to_host(self.A.apply_sym_product(UT, K.conj().T)) / eps

        return neg_hess

    def dense_hessian_fits(self) -> bool:
        """Whether :meth:`hessian_matrix` pays: its ``2 m D^3`` flops against conjugate gradients
        at ``4 D^3`` per product. Measured (``benchmarks/results/optimizers.md``): at ``D <= 25``
        Python overhead per CG product dominates and the dense form wins; at ``D = 64`` with
        ``m = 127`` CG is 2-30x faster. The rule is ``m D^3 <= 4e6`` (and the stack of rows
        within 64 MB)."""
        m, D = self.q.size, self.problem.dim
        return m * D**3 <= _DENSE_HESSIAN_WORK and m * D**2 <= _DENSE_HESSIAN_ENTRIES

    def _row_stack(self):
        """The ``Q_i`` as an ``(m, D, D)`` device stack (:attr:`LoweredProblem.row_stack`); under
        the real reduction only the real rows (``~imag_rows``), as a real stack."""
        Qs = self._shared.get("rows")
        if Qs is None:
            Qs = self.problem.row_stack
            if self.imag_rows is not None:
                Qs = np.ascontiguousarray(Qs[~self.imag_rows].real)
            Qs = self._shared["rows"] = self.be.asarray(Qs)
        return Qs

    def hessian_matrix(self, ev: Evaluation) -> np.ndarray:
        """``-Hess D(alpha)`` as a dense ``(m, m)`` host matrix (positive semidefinite).

        With ``J_i = U^* Q_i U`` (the rows in the eigenbasis) and the divided differences ``G``,

            (-Hess D_eps)_ij = (1/eps) Re sum_kl conj(J_i)_kl G_kl (J_j)_kl,

        the matrix form of :meth:`hessian_operator` (same Schur complement under elimination).
        It costs ``2 m D^3 + m^2 D^2`` flops in a few large BLAS calls: cheaper than conjugate
        gradients with ``O(m)`` Hessian-vector products when ``m D^2`` is small
        (:meth:`dense_hessian_fits`). Under the real reduction ``U`` is real and only the real
        rows enter (``D(P alpha)`` is flat along the dropped ones): real arithmetic on those.
        """
        xp, eps = self.be.xp, self.eps
        U = ev.U
        D = U.shape[0]
        m = self.q.size
        marg = self._marginal_rows()
        flops = (2.0 if self.real else 8.0) * self._entering_rows().size * D**3
        # the rows of the stacks below: all, or those the real reduction keeps (cached)
        keep = self._shared.get("stack_rows")
        if keep is None:
            keep = np.arange(m) if self.imag_rows is None else np.flatnonzero(~self.imag_rows)
            self._shared["stack_rows"] = keep
        scale = None
        if marg is not None and flops > _MARGINAL_ROWS_FLOPS:  # (the rows one by one)
            # entries of partial traces: n D^3 multiply-adds per marginal, not 2 m D^3
            J, keep, scale = _marginal_basis_rows(marg, U, U, self._entering_rows())
        elif (pauli := self._pauli_rows()) is not None:  # Q_i U gathers rows of U
            cols, entries = pauli
            J = xp.matmul(U.conj().T, entries[:, :, None] * U[cols])
        else:
            Qs = self._row_stack()
            J = xp.matmul(U.conj().T, (Qs.reshape(-1, D) @ U).reshape(-1, D, D))
        k = J.shape[0]
        # J_i and G are Hermitian / symmetric: the sum over k <= l with the pairs k < l counted
        # twice is the whole sum, at half the flops of the contraction
        upper, weight = self._upper_triangle(D)
        J = xp.take(J.reshape(k, D * D), upper, axis=1)
        G = self.reg.divided_differences(ev.lam / eps).reshape(-1)[upper] * weight
        if xp.iscomplexobj(J):  # Re(conj(a) b) = Re a Re b + Im a Im b: one real product
            J = J.view(xp.float64)
            G = xp.repeat(G, 2)
        Hk = (J @ (J * G[None, :]).T) / eps
        Hk = self.be.to_host(0.5 * (Hk + Hk.T))
        if scale is not None:
            Hk *= np.outer(scale, scale)
        Hm = _embed_rows(Hk, keep, m)
        return _schur_complement(Hm, self._trace_curvature(ev))

    def _pauli_rows(self):
        """For rows that are Pauli strings (:class:`~cvxqreg.operators.Pauli`, or a selection
        of its rows): ``(cols, entries)`` of their phased permutations
        (:meth:`~cvxqreg.operators.Pauli.phased_permutation`) on the device, under the real
        reduction the kept rows only (real entries: their strings have an even number of
        ``Y``); ``None`` for other rows."""
        if "pauli_rows" not in self._shared:
            from ..operators import Pauli, Selected

            A, out = self.problem.A, None
            rows = np.asarray(A.rows) if isinstance(A, Selected) else None
            A = A.base if isinstance(A, Selected) else A
            if isinstance(A, Pauli) and self.problem.blocks is None:
                cols, entries = A.phased_permutation()
                if rows is not None:
                    cols, entries = cols[rows], entries[rows]
                if self.imag_rows is not None:
                    keep = ~self.imag_rows
                    cols, entries = cols[keep], entries[keep].real
                out = (self.be.asarray(cols), self.be.asarray(entries))
            self._shared["pauli_rows"] = out
        return self._shared["pauli_rows"]

    def _upper_triangle(self, D: int):
        """The flat indices of the entries ``k <= l`` of a ``D x D`` matrix and their weights in
        a symmetric sum (1 on the diagonal, 2 above it), on the device (cached per problem)."""
        key = ("upper", D)
        out = self._shared.get(key)
        if out is None:
            a, b = np.triu_indices(D)
            out = self.be.asarray(a * D + b), self.be.asarray(np.where(a == b, 1.0, 2.0))
            self._shared[key] = out
        return out

    def _row_entries(self):
        """The nonzeros of the rows as host triplets ``(i, a, b, (Q_i)_ab)`` (real parts only
        under the real reduction, as :meth:`_adjoint`), from the sparse
        :meth:`~cvxqreg.operators.ConstraintOperator.matrix`."""
        ent = self._shared.get("entries")
        if ent is None:
            M = self.problem.A.to_backend("numpy").matrix().tocoo()
            pair, part = np.divmod(M.col, 2)
            vals = np.where(part == 0, M.data + 0j, 1j * M.data)
            if self.real:
                keep = part == 0
                rows, pair, vals = M.row[keep], pair[keep], vals[keep].real
            else:
                rows = M.row
            a, b = np.divmod(pair, self.problem.dim)
            ent = self._shared["entries"] = (rows, a, b, vals)
        return ent

    def low_rank_dense_cost(
        self, ev: Evaluation, products: str = "auto"
    ) -> tuple[int, float] | None:
        """``(r, c)``: the block of eigenvectors that :meth:`hessian_operator` would use with
        ``products`` (``r = D`` for the full product) and the flops of
        :meth:`low_rank_hessian_matrix` on it in units of one such Hessian-vector product
        (``8 m r D^2 + 2 m^2 r D`` against ``40 r D^2 + 8 nnz``; ``8 m`` becomes ``8 n`` summed
        over the marginals when the rows are marginal entries; in real arithmetic the products
        and ``J`` cost a quarter, the symmetric update half); ``None`` when ``m r D`` entries
        would exceed :data:`_DENSE_LOW_RANK_BYTES`. The update is counted on all ``m`` rows
        although only the ``k`` of :meth:`_entering_rows` are formed: so counted, the estimate
        is within 0.6-1.1 of the measured time at QWD ``n = 16 ... 32`` in real arithmetic, and
        3-5 times too low with ``k`` (``benchmarks/results/dense_hessian_cost.md``)."""
        D = self.problem.dim
        r = None if products == "full" else self._low_rank_split(ev)
        frac = LOW_RANK_MAX_FRACTION.get(self.be.name, LOW_RANK_MAX_FRACTION["numpy"])
        if r is None or (products == "auto" and r > frac * D):
            r = D
        itemsize = 8 if self.real else 16
        m = self.q.size
        if r == 0 or m * r * D * itemsize > _DENSE_LOW_RANK_BYTES:
            return None
        nnz = self._row_entries()[0].size
        marg = self._marginal_rows()
        # the J_i: one product per row, or per marginal when the rows are marginal entries
        n_products = m if marg is None else sum(mr.n for mr in marg)
        if self.real:  # real arithmetic: a quarter of the flops of the products, half the update
            dense = 2.0 * n_products * r * D * D + 1.0 * m * m * r * D
            return r, dense / (10.0 * r * D * D + 2.0 * nnz)
        dense = 8.0 * n_products * r * D * D + 2.0 * m * m * r * D
        return r, dense / (40.0 * r * D * D + 8.0 * nnz)

    def low_rank_hessian_matrix(self, ev: Evaluation, r: int) -> np.ndarray:
        """``-Hess D(alpha)`` as a dense ``(m, m)`` matrix from the top ``r`` eigenvectors only:
        the matrix of :meth:`_low_rank_product` (docs/theory.md, 'Low-rank Hessian products').

        With the rows ``J_i = U_T^* Q_i U`` (``r x D``) of the rows in the eigenbasis and the top
        rows ``G_T`` of the divided differences (``T`` columns halved, as in the product),

            (-Hess D_eps)_ij = (2/eps) Re sum_{k in T, l} (G_T)_kl conj(J_i)_kl (J_j)_kl.

        The divided differences of the increasing ``psi'`` are non-negative, so this is
        ``Re K K^*`` with ``K_i = J_i o sqrt(2 G_T / eps)``. ``J_i^T = U^T (Q_i^T conj(U_T))``:
        the sparse rows times ``U_T`` (``nnz r`` flops), then one ``r x D`` by ``D x D`` product
        per row (``8 k r D^2`` flops in all); the contraction is a symmetric rank-``2rD``
        update (``2 k^2 r D`` flops), accumulated over blocks of the top eigenvectors so that
        only a block of ``K`` (:data:`_LOW_RANK_BLOCK_ENTRIES`) is held, in memory reused from
        block to block. Only the ``k`` rows that can enter are formed (:meth:`_entering_rows`:
        in real arithmetic about half of partial traces' rows). Against ``40 r D^2`` flops for
        one low-rank product that is about ``k / 5 + k^2 / (20 D)`` products, whatever ``r``
        (``k^2 / (10 D)`` in real arithmetic; :meth:`low_rank_dense_cost`), and it needs no
        conjugate-gradient iterations."""
        eps = self.eps
        m = self.q.size
        # C order: the marginal products read U's rows in blocks (LAPACK returns it in
        # Fortran order; at D = 1024 the blocks' products took 3x longer from it, one-off)
        U = np.ascontiguousarray(self.be.to_host(ev.U))
        D = U.shape[0]
        t = self.be.to_host(ev.lam) / eps
        UT = U[:, D - r :]
        GT = np.asarray(self.reg.divided_differences(t[D - r :], t))
        GT[:, D - r :] *= 0.5
        S = np.sqrt(np.maximum(GT, 0.0) * (2.0 / eps))
        marg = self._marginal_rows()
        keep, scale = self._entering_rows(), None
        k = keep.size
        # K K^T accumulated over blocks of the top eigenvectors, so that only a block of K is
        # held, in buffers reused from block to block (fresh memory for all of K cost more than
        # the update itself at QWD n = 24: one-off)
        pool: dict = {}
        block = max(1, _LOW_RANK_BLOCK_ENTRIES // (k * D))
        Hk = None
        for r0 in range(0, r, block):
            r1 = min(r, r0 + block)
            if marg is not None:
                K, order, scale = _marginal_basis_rows(
                    marg, UT[:, r0:r1], U, keep, weight=S[r0:r1], pool=pool
                )
            else:
                K, order = self._sparse_basis_rows(UT[:, r0:r1], U, keep, S[r0:r1], pool), keep
            Kf = K.reshape(k, -1)
            if np.iscomplexobj(Kf):  # Re(conj(a) b) = Re a Re b + Im a Im b: one real product
                Kf = Kf.view(np.float64)
            # K K^T as symmetric rank-k updates (half the flops of a general product); a
            # C-ordered K is the Fortran-ordered K^T that syrk reads with trans=1
            (syrk,) = scipy.linalg.blas.get_blas_funcs(("syrk",), (Kf,))
            if Hk is None:
                Hk = syrk(1.0, Kf.T, trans=1)
            else:
                Hk = syrk(1.0, Kf.T, beta=1.0, c=Hk, trans=1, overwrite_c=1)
        Hk = np.triu(Hk) + np.triu(Hk, 1).T
        if scale is not None:
            Hk *= np.outer(scale, scale)
        Hm = _embed_rows(Hk, order, m)
        return _schur_complement(Hm, self._trace_curvature(ev, r))

    def _sparse_basis_rows(self, UT, U, keep: np.ndarray, weight, pool: dict) -> np.ndarray:
        """``K[t] = weight o U_T^* Q_i U`` (``(k, r, D)``, host) for the rows ``i = keep[t]``,
        from the sparse rows: ``J_i^T = U^T (Q_i^T conj(U_T))``, the rows ``Q_i^T`` stacked
        (row ``t D + b``, column ``a``) times ``conj(U_T)``, then one dense product with ``U``."""
        D, r, k = U.shape[0], UT.shape[1], keep.size
        Qt = self._shared.get("rows_t")
        if Qt is None:
            rows, a, b, vals = self._row_entries()
            at = np.full(self.q.size, -1)
            at[keep] = np.arange(k)
            rows, on = at[rows], at[rows] >= 0
            Qt = sp.csr_matrix((vals[on], (rows[on] * D + b[on], a[on])), shape=(k * D, D))
            Qt.sum_duplicates()
            Qt = self._shared["rows_t"] = Qt
        C = np.asarray(Qt @ UT.conj()).reshape(k, D, r).transpose(0, 2, 1)
        K = _scratch(pool, "K", (k, r, D), np.result_type(U, Qt.dtype), np)
        np.matmul(np.ascontiguousarray(C).reshape(k * r, D), U, out=K.reshape(k * r, D))
        K *= weight[None]
        return K

    def _entering_rows(self) -> np.ndarray:
        """The rows that can enter the Hessian: all of them in complex arithmetic; in real
        arithmetic those with a real part (only the real part of ``Q_i`` acts on a real state:
        under the real reduction the rows that are not :attr:`imag_rows`, and for a real
        problem with Hermitian rows, such as partial traces' imaginary parts, about half)."""
        rows = self._shared.get("entering")
        if rows is None:
            if self.real:
                rows = np.unique(self._row_entries()[0])
            else:
                rows = np.arange(self.q.size)
            rows = self._shared["entering"] = rows
        return rows

    def _marginal_rows(self) -> list[_MarginalRows] | None:
        """The rows as entries of partial traces (:class:`_MarginalRows`, one per part), when
        every row is one: then ``Q_i = (s / 2) (c E_ij + conj(c) E_ji) (x) I`` on the kept
        factor, and :meth:`low_rank_hessian_matrix` forms all ``J_i`` from one product per part
        (``8 n r D^2`` flops instead of ``8 m r D^2``). ``None`` for other rows."""
        if "marginal_rows" not in self._shared:
            self._shared["marginal_rows"] = _marginal_rows(self.problem, self.real)
        return self._shared["marginal_rows"]

    def _trace_curvature(self, ev: Evaluation, r: int | None = None):
        """``(-Hess D c, -c^T Hess D c)`` along the trace direction ``c`` (``A*(c) = I``, so only
        ``A(U diag(psi''(t)) U^*)`` is needed), for the Schur complement of the eliminated dual;
        ``None`` without elimination or with no curvature along ``c``. With ``r`` only the top
        ``r`` eigenvalues count: the same truncation as the low-rank product, so that the Schur
        complement is taken of the truncated (positive semidefinite) operator itself."""
        if self.c is None:
            return None
        eps, U = self.eps, ev.U
        if r is None and self.reg.curvature_is_state and ev.w is not None and ev.grad is not None:
            # psi'' = psi' (von Neumann): U diag(psi''(t)) U^* is the state, whose A(X) = q - grad
            # the evaluation computed (only weights below the factor's cutoff differ)
            chc = float(self.be.xp.sum(ev.w)) / eps
            return ((self.q - ev.grad) / eps, chc) if chc > 0 else None
        d2 = self.reg.d2psi(ev.lam / eps)
        if r is not None:
            U, d2 = U[:, U.shape[1] - r :], d2[d2.size - r :]
        xp = self.be.xp
        d2 = xp.maximum(d2, 0.0)
        chc = float(xp.sum(d2)) / eps
        if chc <= 0:
            return None
        on = d2 > 0
        c = self.reg.support_curvature
        if r is None and c is not None and 2 * int(xp.count_nonzero(on)) > d2.size:
            # psi'' = c on the support, most of the spectrum (quadratic: c = 1):
            # A(U diag(psi'') U^*) = c (A(I) - A(U_off U_off^*)), the smaller block formed
            off = U[:, ~on]
            image = self._shared.get("identity_image")
            if image is None:
                eye = xp.eye(U.shape[0], dtype=U.dtype)
                image = self._shared["identity_image"] = self.be.to_host(self.A.apply(eye))
            rest = self.be.to_host(self.A.apply_spectral(off)) if off.shape[1] else 0.0
            return float(c) * (image - rest) / eps, chc
        V = U[:, on] * xp.sqrt(d2[on])[None, :]  # the columns without curvature dropped
        hc = self.be.to_host(self.A.apply_spectral(V)) / eps
        return hc, chc

    def primal_parts(self, ev: Evaluation) -> tuple[float, float]:
        """``(Tr[H X], Tr[phi(X)])`` of the state of an evaluation (minimization form)."""
        xp = self.be.xp
        energy = float(xp.real(xp.vdot(self.H, ev.X)))
        entropy = float(xp.sum(self.reg.phi(ev.w)))
        return energy, entropy

    def dual_rounding(self, ev: Evaluation) -> float:
        """A bound on the rounding error of the computed ``D_eps(alpha)``
        (:func:`cvxqreg.bounds.dual_rounding`, with the sizes of the diagonalized point and of
        its eigenvalues from ``ev.spectrum`` when the evaluation kept them)."""
        if ev.spectrum is None:
            return dual_rounding(ev.value, ev.alpha, self.q, self.problem.dim)
        xp = self.be.xp
        alpha_in, lam = ev.spectrum
        size = np.abs(alpha_in)
        if self.c is not None:
            size = size + abs(ev.shift) * np.abs(self.c)
        return dual_rounding(
            ev.value,
            ev.alpha,
            self.q,
            self.problem.dim,
            alpha_size=size,
            trace=float(xp.sum(xp.abs(ev.w))),
            lam_max=float(xp.max(xp.abs(lam))) if lam.size else 0.0,
        )

    def energy_scale(self) -> float:
        """``max(eps, s)``, ``s`` the spread of ``H``: the size of dual values, and the scale of
        the Hessian (``1/eps`` above the spread, ``1/s`` below it) that Newton's
        Levenberg-Marquardt shift is measured in."""
        return max(self.eps, self.problem.cost_spread, np.finfo(float).tiny)

    def value_unit(self) -> float:
        """The size below which a dual value counts as zero in the optimizers' rounding tests
        (``eps_f = 64 u (unit + |D|)``): ``min(1, energy_scale())``. With ``H = 0`` the dual at
        ``eps`` is the dual at ``1`` scaled by ``eps``, and a fixed ``1`` made the tests
        scale-dependent (QT2, 7 qubits, quadratic, ``tol = 1e-6``: 400 Newton iterations without
        converging at ``eps = 1e-6``, 46 at ``1e-4``; with this unit 50)."""
        return min(1.0, self.energy_scale())

    def primal_upper_bound(self) -> float | None:
        """An upper bound on ``F_eps`` over all states of the fixed trace; a dual value above it
        certifies infeasibility (:func:`cvxqreg.bounds.infeasibility_threshold`)."""
        return infeasibility_threshold(self.problem, self.reg, self.eps, self.tau)

    def certified_lower_bound(self, ev: Evaluation) -> float:
        """A rigorous lower bound on ``F_0`` from ``ev.alpha`` by weak duality
        (:func:`cvxqreg.bounds.shift_lower_bound`; docs/theory.md, 'Weak-duality lower bound'),
        taken at the sign-projected ``alpha`` (``alpha_I <= 0`` on inequality rows: weak duality
        needs the sign); ``nan`` when the trace is not fixed."""
        if self.problem.trace_direction is None:
            return math.nan
        if ev.spectrum is not None:  # the eigenvalues of the evaluation, if the sign allows
            alpha, lam = ev.spectrum
            # the margins grow with |alpha|: reuse only when the normalization shift did not
            # shrink alpha much (it does after a far warm start along the trace direction)
            near = np.linalg.norm(alpha) <= 2.0 * (1.0 + np.linalg.norm(ev.alpha))
            if near and np.array_equal(self.problem.project_dual(alpha), alpha):
                return shift_lower_bound(self.problem, self.be, None, alpha, lam=lam)
        alpha = self.problem.project_dual(ev.alpha)
        return shift_lower_bound(self.problem, self.be, self.W(alpha), alpha)


@dataclasses.dataclass(frozen=True)
class _MarginalRows:
    """The rows ``pos`` of a problem that read entries of one two-factor partial trace: row
    ``pos[t]`` is ``Re Tr[Q X]`` with ``Q = Herm(coef[t] E_{i[t] j[t]}) (x) I`` (``E`` on the
    kept factor ``kept``, of size ``n``; ``coef`` includes the part's scale)."""

    pos: np.ndarray
    i: np.ndarray
    j: np.ndarray
    coef: np.ndarray
    kept: int
    n: int


def _marginal_basis_rows(
    marg: list[_MarginalRows],
    UT,
    U,
    rows: np.ndarray,
    weight=None,
    pool: dict | None = None,
    rowwise: bool | None = None,
):
    """The rows ``rows`` in the eigenbasis, ``J_i = U_T^* Q_i U`` (``r x D``), for rows that are
    entries of partial traces (:class:`_MarginalRows`), up to a real factor per row: returns
    ``(K, order, s)`` with ``K[t] = weight o J_{order[t]} / s[t]`` (``(len(rows), r D)``, on
    ``U``'s device; ``weight`` an ``r x D`` array, or none), ``order`` a permutation of ``rows``
    (grouped by marginal) and ``s`` the real factors. ``K`` and the products below are held in
    ``pool`` (:func:`_scratch`) when given. ``rowwise``: form ``K`` row by row (the default on
    NumPy for rows of at least :data:`_ROWWISE_MIN_ENTRIES` entries) or by one vectorized
    gather per marginal (the default for shorter rows, and off NumPy: few kernels).

    All entries of one marginal come from one product: ``M[a, :, b, :] = U_T^* (E_ab (x) I) U``
    for every ``(a, b)`` is one ``(n r x t)`` by ``(t x n D)`` product (``t`` the traced
    factor's size; ``n r D^2`` multiply-adds, against ``2 m D^3`` for the rows one by one). For
    ``Q = Herm(c E_ij) (x) I`` with ``c = s`` real, ``J = s (M[i, :, j, :] + M[j, :, i, :])``;
    with ``c = i s`` imaginary, ``J = i s (M[i, :, j, :] - M[j, :, i, :])``: each ``K[t]`` is
    the sum of two blocks of ``M`` times the weight, with no ``m x r D`` temporary."""
    xp = array_module(U)
    D, r = U.shape[0], UT.shape[1]
    m = 1 + max([int(mr.pos.max()) for mr in marg if mr.pos.size] + [int(np.max(rows, initial=-1))])
    wanted = np.zeros(m, bool)
    wanted[rows] = True
    imag_any = any(np.any(mr.coef.imag[wanted[mr.pos]] != 0) for mr in marg if mr.pos.size)
    dtype = xp.result_type(U, 1j) if imag_any else xp.result_type(U)
    pool = {} if pool is None else pool
    K = _scratch(pool, "K", (rows.size, r * D), dtype, xp)
    w = None if weight is None else xp.asarray(weight).reshape(r, D)
    order, scale, t0 = [], [], 0
    for mr in marg:
        sel = wanted[mr.pos]
        if not np.any(sel):
            continue
        n, tr = mr.n, D // mr.n
        if mr.kept == 0:  # the kept factor first: row a tr + t
            A = UT.reshape(n, tr, r).transpose(0, 2, 1)  # (a, k, t)
        else:
            A = UT.reshape(tr, n, r).transpose(1, 2, 0)
        B = pool.get(("B", mr.kept, n))  # (t, b l): U's rows by the traced factor
        if B is None:
            B = U.reshape(n, tr, D).transpose(1, 0, 2) if mr.kept == 0 else U.reshape(tr, n, D)
            B = pool[("B", mr.kept, n)] = xp.ascontiguousarray(B).reshape(tr, n * D)
        M = _scratch(pool, "M", (n * r, n * D), xp.result_type(U), xp)
        xp.matmul(xp.ascontiguousarray(A.conj()).reshape(n * r, tr), B, out=M)
        M = M.astype(dtype, copy=False).reshape(n, r, n, D)  # M[a, :, b, :]
        imag = mr.coef.imag != 0
        for is_imag in (False, True):
            g = sel & (imag == is_imag)
            cnt = int(np.count_nonzero(g))
            if not cnt:
                continue
            i, j = mr.i[g], mr.j[g]
            order.append(mr.pos[g])
            scale.append(mr.coef.imag[g] if is_imag else mr.coef.real[g])
            op = xp.subtract if is_imag else xp.add
            wv = w if not is_imag else (1j if w is None else 1j * w)
            if (xp is np and r * D >= _ROWWISE_MIN_ENTRIES) if rowwise is None else rowwise:
                for t in range(cnt):
                    out = K[t0 + t].reshape(r, D)
                    op(M[i[t], :, j[t], :], M[j[t], :, i[t], :], out=out)
                    if wv is not None:
                        out *= wv
            else:
                i, j = xp.asarray(i), xp.asarray(j)
                out = K[t0 : t0 + cnt].reshape(cnt, r, D)
                op(M[i, :, j, :], M[j, :, i, :], out=out)
                if wv is not None:
                    out *= wv
            t0 += cnt
    if not order:
        return K, np.zeros(0, int), np.zeros(0)
    return K, np.concatenate(order), np.concatenate(scale)


def _scratch(pool: dict, name: str, shape: tuple, dtype, xp):
    """An uninitialized ``shape`` array of ``dtype`` from ``pool``'s buffer ``name`` (grown when
    too small): repeated products reuse their memory instead of touching fresh pages."""
    size = math.prod(shape)
    buf = pool.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = pool[name] = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def _schur_complement(Hm: np.ndarray, along) -> np.ndarray:
    """``Hm - h h^T / c`` for ``along = (h, c)`` (:meth:`DualOracle._trace_curvature`; ``Hm``
    when it is ``None``), in place with one ``m x m`` temporary instead of three."""
    if along is None:
        return Hm
    h, c = along
    T = np.outer(h, h)
    T /= c
    if Hm.dtype != T.dtype:
        return Hm - T
    Hm -= T
    return Hm


def _embed_rows(Hk: np.ndarray, order: np.ndarray, m: int) -> np.ndarray:
    """The ``(m, m)`` matrix with ``Hk`` (host, rows and columns ``order``) and zeros elsewhere
    (the rows the real reduction drops: ``D(P alpha)`` is flat along them)."""
    if order.size == m and (m == 0 or (order[0] == 0 and np.all(np.diff(order) == 1))):
        return Hk
    Hm = np.zeros((m, m))
    Hm[order[:, None], order[None, :]] = Hk
    return Hm


def _marginal_rows(problem: LoweredProblem, real: bool) -> list[_MarginalRows] | None:
    """:meth:`DualOracle._marginal_rows` (``real``: under the real reduction, where only the real
    part of each ``Q`` acts)."""
    from ..operators import PartialTrace, Selected, Stacked

    A, rows = problem.A, None
    if problem.blocks is not None:
        return None
    if isinstance(A, Selected):
        A, rows = A.base, np.asarray(A.rows)
    stack = A if isinstance(A, Stacked) else Stacked([A])
    if not all(isinstance(p, PartialTrace) and len(p.dims) == 2 for p in stack.parts):
        return None
    out = []
    for part, (mine, local) in zip(stack.parts, stack.split_rows(rows), strict=True):
        if not mine.size:
            continue
        # row i + n j reads entry (i, j): Z = E_ij (x) I, or i E_ij (the adjoint of a unit
        # vector is s Herm(Z) (x) I, PartialTrace._unpack / embed)
        im, i, j = part.row_entries(local)
        coef = np.where(im == 1, 1j, 1.0) * (0.5 * part.scale)
        if real:
            coef = coef.real
        kept = 1 - part.axes[0]
        out.append(_MarginalRows(mine, i, j, coef, kept, part.n_out))
    return out


def _real_reduction(problem: LoweredProblem) -> np.ndarray | None:
    """The rows to drop when a Hermitian problem has real data, else ``None`` (cached per
    problem: a problem's data are frozen, and the test reads every row once).

    When ``H`` is real and every ``Q_i`` is either real symmetric or purely imaginary with
    ``q_i = 0``, complex conjugation maps feasible states to feasible states with the same
    energy and entropy, so the regularized optimum (unique: ``phi`` is strictly convex) is real
    and the dual maximum is attained with ``alpha_i = 0`` on the imaginary rows (their gradient
    ``q_i - Tr[Q_i X] = 0`` there for every real ``X``). The oracle then evaluates
    ``D(P alpha)``, ``P`` zeroing those rows: a concave function with the same maximum, whose
    every point ``P alpha`` is a genuine dual point (so bounds stay rigorous), and whose
    eigendecompositions and Hessian products are real: about 4x cheaper than complex ones.
    Returns the boolean mask of the imaginary rows.
    """
    if problem in _REAL_REDUCTION:
        return _REAL_REDUCTION[problem]
    out = _real_reduction_rows(problem)
    if out is not None:
        out.setflags(write=False)
    _REAL_REDUCTION[problem] = out
    return out


_REAL_REDUCTION: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _real_reduction_rows(problem: LoweredProblem) -> np.ndarray | None:
    if np.iscomplexobj(problem.H) and np.any(np.imag(problem.H)):
        return None
    M = sp.csr_matrix(problem.A.matrix())
    M.eliminate_zeros()
    m = M.shape[0]
    rows = np.repeat(np.arange(m), np.diff(M.indptr))
    odd = (M.indices % 2).astype(bool)
    has_re = np.bincount(rows[~odd], minlength=m) > 0
    has_im = np.bincount(rows[odd], minlength=m) > 0
    imag = has_im & ~has_re
    if np.any(has_re & has_im) or np.any(np.asarray(problem.q)[imag] != 0):
        return None
    return imag


def _check_eps(eps: Any) -> float:
    # a real number only: bool, str and complex are not (float(True), float("1e-3") would pass)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (numbers.Real, np.ndarray)):
        raise InvalidInputError(f"eps must be a positive real number, got {eps!r}")
    if isinstance(eps, np.ndarray) and (eps.ndim != 0 or eps.dtype.kind not in "iuf"):
        raise InvalidInputError(f"eps must be a positive real number, got {eps!r}")
    e = float(eps)
    if not (math.isfinite(e) and e > 0):
        raise InvalidInputError(
            f"eps must be a finite number > 0, got {eps!r}; for eps = 0 use cvxqreg.solve_exact"
        )
    return e
