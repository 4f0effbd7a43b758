"""The dual oracle of the regularized problem.

For ``eps > 0`` and ``W(alpha) = A*(alpha) - H = U diag(lam) U^*``,

    D_eps(alpha)      = <alpha, q> - eps sum_j psi(lam_j / eps),
    grad D_eps(alpha) = q - A(X(alpha)),   X(alpha) = U diag(psi'(lam / eps)) U^*,

(MATH.md sections 1-3): one Hermitian eigendecomposition per evaluation, then O(D^2) work with the
structured operators plus one rank-k product to form ``X`` (k = number of eigenvalues with
non-negligible weight; small at small eps).

Normalization elimination (section 4). When ``A*(c) = I`` for some ``c`` the constraints fix
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
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from ..bounds import dual_rounding, infeasibility_threshold, shift_lower_bound
from ..errors import InfeasibleDataError, InvalidInputError
from ..problem import LoweredProblem
from ..regularizers import Regularizer

__all__ = ["DualOracle", "Evaluation"]

#: eigenvalues with weight below this fraction of the largest are dropped when forming X
_WEIGHT_CUTOFF = 1e-18
#: the dense Hessian is used up to this many entries in the stack of rows (m D^2): 64 MB complex
_DENSE_HESSIAN_ENTRIES = 1 << 22
#: ... and while m D^3 (the flops of the rows in the eigenbasis) stays below this
_DENSE_HESSIAN_WORK = 4e6


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluation of the dual oracle (minimization form; host scalars/vectors).

    ``lam``, ``U``, ``w`` (device arrays) are the eigen-data of ``W`` at the shifted point:
    ``X = U diag(w) U^*``. ``X`` is the device state, or ``None`` if not formed.
    """

    value: float
    grad: np.ndarray
    alpha: np.ndarray
    shift: float
    lam: Any
    U: Any
    w: Any
    X: Any

    @property
    def grad_norm(self) -> float:
        """``||grad||_2``."""
        return float(np.linalg.norm(self.grad))


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
        self.real = problem.real
        self.A = problem.A.to_backend(self.be)
        self.H = self.be.asarray(problem.H, dtype=xp.float64 if self.real else xp.complex128)
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
        self.tau = None if self.c is None else float(self.c @ self.q)
        if self.c is not None and not self.tau > 0:
            raise InfeasibleDataError(
                f"the constraints fix Tr X = {self.tau:.6g} <= 0; a nonzero positive "
                "semidefinite X needs a positive trace"
            )
        self.n_evals = 0
        self._shared: dict[str, Any] = {}  # lazily built data, shared with with_eps copies

    def with_eps(self, eps: float) -> DualOracle:
        """The same problem and device data at another ``eps`` (no new transfers)."""
        other = copy.copy(self)
        other.eps = _check_eps(eps)
        other.n_evals = 0
        return other

    # ------------------------------------------------------------------ pieces
    def W(self, alpha: np.ndarray):
        """``A*(alpha) - H`` on the device."""
        Wd = self.A.adjoint(self.be.asarray(alpha, dtype=self.be.xp.float64))
        if self.real:
            Wd = Wd.real
        return Wd - self.H

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
        lam, U = self.be.eigh(self.W(alpha))
        self.n_evals += 1
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
        else:
            X = self.be.outer(V)
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
        )

    def with_state(self, ev: Evaluation) -> Evaluation:
        """``ev`` with its state ``X = U diag(w) U^*`` formed (as ``evaluate(want_state=True)``)."""
        if ev.X is not None:
            return ev
        return dataclasses.replace(ev, X=self.be.outer(self.factor(ev.U, ev.w)))

    def hessian_operator(self, ev: Evaluation):
        """``v -> -Hess D(alpha) v`` (positive semidefinite) at an evaluation, on the host.

        Daleckii-Krein (MATH.md section 5): with ``t = lam / eps`` and the divided differences
        ``G`` of ``psi'``,

            Hess D_eps(alpha) v = -(1/eps) A( U (G o (U^* A*(v) U)) U^* ),

        reusing the eigendecomposition (four matrix products per call, no new eigh). With
        normalization elimination the Hessian of ``D~(alpha) = max_s D_eps(alpha + s c)`` is the
        Schur complement along ``c``:
        ``Hess D~ = Hess D - (Hess D c)(Hess D c)^T / (c^T Hess D c)``, and ``Hess D c`` needs
        only ``A(U diag(psi''(t)) U^*)`` since ``A*(c) = I``.
        """
        xp, eps = self.be.xp, self.eps
        U = ev.U
        t = ev.lam / eps
        G = self.reg.divided_differences(t)
        Uh = U.conj().T

        def neg_hess(v):
            B = self.A.adjoint(self.be.asarray(v, dtype=xp.float64))
            if self.real:
                B = B.real
            C = G * (Uh @ B @ U)
            Y = U @ C @ Uh
            return self.be.to_host(self.A.apply(Y)) / eps

        along = self._trace_curvature(ev)
        if along is None:
            return neg_hess
        hc, chc = along

        def neg_hess_eliminated(v):
            return neg_hess(v) - hc * (float(hc @ v) / chc)

        return neg_hess_eliminated

    def dense_hessian_fits(self) -> bool:
        """Whether :meth:`hessian_matrix` pays: its ``2 m D^3`` flops against conjugate gradients
        at ``4 D^3`` per product. Measured (``benchmarks/results/optimizers.md``): at ``D <= 25``
        Python overhead per CG product dominates and the dense form wins; at ``D = 64`` with
        ``m = 127`` CG is 2-30x faster. The rule is ``m D^3 <= 4e6`` (and the stack of rows
        within 64 MB)."""
        m, D = self.q.size, self.problem.dim
        return m * D**3 <= _DENSE_HESSIAN_WORK and m * D**2 <= _DENSE_HESSIAN_ENTRIES

    def _row_stack(self):
        """The ``Q_i`` as an ``(m, D, D)`` device stack (:attr:`LoweredProblem.row_stack`)."""
        Qs = self._shared.get("rows")
        if Qs is None:
            Qs = self._shared["rows"] = self.be.asarray(self.problem.row_stack)
        return Qs

    def hessian_matrix(self, ev: Evaluation) -> np.ndarray:
        """``-Hess D(alpha)`` as a dense ``(m, m)`` host matrix (positive semidefinite).

        With ``J_i = U^* Q_i U`` (the rows in the eigenbasis) and the divided differences ``G``,

            (-Hess D_eps)_ij = (1/eps) Re sum_kl conj(J_i)_kl G_kl (J_j)_kl,

        the matrix form of :meth:`hessian_operator` (same Schur complement under elimination).
        It costs ``2 m D^3 + m^2 D^2`` flops in a few large BLAS calls: cheaper than conjugate
        gradients with ``O(m)`` Hessian-vector products when ``m D^2`` is small
        (:meth:`dense_hessian_fits`).
        """
        xp, eps = self.be.xp, self.eps
        U = ev.U
        m = self.q.size
        Qs = self._row_stack()
        D = U.shape[0]
        J = xp.matmul(U.conj().T, (Qs.reshape(m * D, D) @ U).reshape(m, D, D))
        G = self.reg.divided_differences(ev.lam / eps).reshape(-1)
        if xp.iscomplexobj(J):  # Re(conj(a) b) = Re a Re b + Im a Im b: one real product
            J = J.view(xp.float64)
            G = xp.repeat(G, 2)
        J = J.reshape(m, -1)
        Hm = (J @ (J * G[None, :]).T) / eps
        Hm = self.be.to_host(0.5 * (Hm + Hm.T))
        along = self._trace_curvature(ev)
        return Hm if along is None else Hm - np.outer(along[0], along[0]) / along[1]

    def _trace_curvature(self, ev: Evaluation):
        """``(-Hess D c, -c^T Hess D c)`` along the trace direction ``c`` (``A*(c) = I``, so only
        ``A(U diag(psi''(t)) U^*)`` is needed), for the Schur complement of the eliminated dual;
        ``None`` without elimination or with no curvature along ``c``."""
        if self.c is None:
            return None
        eps, U = self.eps, ev.U
        d2 = self.reg.d2psi(ev.lam / eps)
        chc = float(self.be.xp.sum(d2)) / eps
        if chc <= 0:
            return None
        hc = self.be.to_host(self.A.apply((U * d2[None, :]) @ U.conj().T)) / eps
        return hc, chc

    def primal_parts(self, ev: Evaluation) -> tuple[float, float]:
        """``(Tr[H X], Tr[phi(X)])`` of the state of an evaluation (minimization form)."""
        xp = self.be.xp
        energy = float(xp.real(xp.vdot(self.H, ev.X)))
        entropy = float(xp.sum(self.reg.phi(ev.w)))
        return energy, entropy

    def dual_rounding(self, ev: Evaluation) -> float:
        """A bound on the rounding error of the computed ``D_eps(alpha)``
        (:func:`cvxqreg.bounds.dual_rounding`)."""
        return dual_rounding(ev.value, ev.alpha, self.q, self.problem.dim)

    def primal_upper_bound(self) -> float | None:
        """An upper bound on ``F_eps`` over all states of the fixed trace; a dual value above it
        certifies infeasibility (:func:`cvxqreg.bounds.infeasibility_threshold`)."""
        return infeasibility_threshold(self.problem, self.reg, self.eps, self.tau)

    def certified_lower_bound(self, ev: Evaluation) -> float:
        """A rigorous lower bound on ``F_0`` from ``ev.alpha`` by weak duality
        (:func:`cvxqreg.bounds.shift_lower_bound`); ``nan`` when the trace is not fixed."""
        if self.problem.trace_direction is None:
            return math.nan
        return shift_lower_bound(self.problem, self.be, self.W(ev.alpha), ev.alpha)


def _check_eps(eps: Any) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"eps must be a positive number, got {eps!r}") from None
    if not (math.isfinite(e) and e > 0):
        raise InvalidInputError(
            f"eps must be a finite number > 0, got {eps!r}; for eps = 0 use cvxqreg.solve_exact"
        )
    return e
