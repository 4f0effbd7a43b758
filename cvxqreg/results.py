"""Result objects: frozen dataclasses with derived properties.

All values are in the *user's* sign convention, objective offset included: for a ``Maximize`` the
reported value is the maximum, and the certified bound is an upper bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["EXACT_ACCURACY", "ExactResult", "History", "RegularizedResult", "Status"]

#: An exact solve is accepted (:attr:`ExactResult.converged`) when its measured
#: :attr:`ExactResult.accuracy` is at most this, whatever status string the conic solver reports.
EXACT_ACCURACY = 1e-6


class Status:
    """Status strings of a regularized solve."""

    CONVERGED = "converged"  #: ``||grad D_eps||_2 < tol``
    MAX_ITER = "max_iter"  #: the iteration cap was hit first
    TIME_LIMIT = "time_limit"  #: the time limit was hit first
    STALLED = "stalled"  #: no further progress possible in float64 (line search failed)
    #: stopped at the float64 floor: ||grad|| is within a small factor of its measured rounding
    #: noise, so the tolerance cannot be resolved (the certified bound and bracket still hold)
    PRECISION_LIMIT = "precision_limit"
    INFEASIBLE = "infeasible"  #: the dual exceeded an upper bound on F_eps: no feasible state
    #: the constraints do not fix the trace and a recession direction R >= 0, A(R) = 0,
    #: Tr[H R] < 0 was found: the SDP is unbounded
    UNBOUNDED = "unbounded"
    FAILED = "failed"  #: non-finite values or an internal error


@dataclasses.dataclass(frozen=True)
class History:
    """Per-iteration record of a dual solve (the data of the paper's convergence figures).

    Attributes
    ----------
    iteration, dual_value, grad_norm, time : ndarray
        Iteration index (0 = the starting point), ``D_eps(alpha_k)`` in the user's sign convention,
        ``||grad D_eps(alpha_k)||_2`` and the wall time since the start of the solve.
    eps : ndarray
        The eps of each record. With continuation the records of the intermediate stages come
        first (larger eps); each stage starts with a record of its starting point, so an
        iteration index appears twice where one stage hands over to the next.
    """

    iteration: np.ndarray
    dual_value: np.ndarray
    grad_norm: np.ndarray
    time: np.ndarray
    eps: np.ndarray

    @property
    def final_stage(self) -> History:
        """The records at the target eps only."""
        keep = self.eps == self.eps[-1] if self.eps.size else slice(None)
        return History(*(getattr(self, f.name)[keep] for f in dataclasses.fields(self)))

    def __len__(self) -> int:
        return int(self.iteration.size)

    def as_dict(self) -> dict[str, list]:
        """Plain lists, e.g. for JSON."""
        return {f.name: getattr(self, f.name).tolist() for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, repr=False)
class RegularizedResult:
    """Outcome of :func:`cvxqreg.solve`: the regularized problem at one ``eps``.

    ``F_eps(X) = Tr[H X] + eps Tr[phi(X)]`` (plus the offset, times the sense) is :attr:`value`;
    :attr:`energy` is the unregularized objective at the same ``X``; :attr:`dual_value` is
    ``D_eps(alpha)``. A result whose :attr:`status` is not ``"converged"`` carries the best iterate,
    and every summary prints the status next to the numbers.

    Attributes
    ----------
    status : str
        One of :class:`Status`.
    message : str
        Human-readable explanation of the status.
    eps, regularizer, tol
        The problem's regularization and the stopping tolerance on ``||grad D_eps||_2``.
    value, energy, dual_value : float
        ``F_eps(X)``, ``Tr[H X]`` and ``D_eps(alpha)`` in the user's convention.
    entropy : float
        ``Tr[phi(X)]``.
    grad_norm : float
        ``||grad D_eps(alpha)||_2 = ||q - A(X)||_2``, the primal residual of ``X``.
    certified_bound : float
        A rigorous bound on the exact (``eps = 0``) optimum from ``alpha`` (docs/theory.md,
        'Weak-duality lower bound'):
        a lower bound for a minimization, an upper bound for a maximization; the sharper of the
        ``lambda_max`` shift bound and the left end of the regularization bracket. ``nan`` if the
        constraints do not fix the trace.
    bracket : tuple of float
        ``(low, high)``, a certified interval that contains the exact optimum ``F_0``
        (:mod:`cvxqreg.bounds`, ``docs/bounds.md``): one end is :attr:`certified_bound` (weak
        duality), the other :attr:`feasible_bound` (the objective at a feasible state). A missing
        end is ``-inf``/``inf``.
    iterations, n_evals : int
        Optimizer iterations and dual-oracle calls (one eigendecomposition each).
    time : float
        Wall time of the solve in seconds.
    alpha : ndarray
        Dual vector (minimization form, independent rows of the lowered problem).
    X : ndarray or None
        The primal state ``psi'((A*(alpha) - H)/eps)`` on the host.
    history : History
    backend : str
    sense : int
        ``1`` for a minimization, ``-1`` for a maximization.
    feasible_bound : float
        The objective at a certified feasible state (:func:`cvxqreg.bounds.feasible_upper_bound`):
        an upper bound on ``F_0`` for a minimization, a lower bound for a maximization; ``inf``
        (``-inf``) when no strictly feasible state exists, with the reason in :attr:`bound_note`.
    feasible_state : ndarray or None
        That feasible state (``X_eps`` restored onto ``A(X) = q`` and mixed with a strictly
        feasible state); ``None`` with ``return_state=False``.
    bound_note : str
        How :attr:`feasible_bound` was obtained, or why it is missing.
    """

    status: str
    message: str
    eps: float
    regularizer: str
    tol: float
    value: float
    energy: float
    dual_value: float
    entropy: float
    grad_norm: float
    certified_bound: float
    bracket: tuple[float, float]
    iterations: int
    n_evals: int
    time: float
    alpha: np.ndarray
    X: np.ndarray | None
    history: History
    backend: str
    sense: int = 1
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    feasible_bound: float = float("nan")
    feasible_state: np.ndarray | None = None
    bound_note: str = ""

    @property
    def converged(self) -> bool:
        """``True`` when the stopping rule ``||grad D_eps||_2 < tol`` was met."""
        return self.status == Status.CONVERGED

    @property
    def bracket_width(self) -> float:
        """``bracket[1] - bracket[0]``: how far the certified interval is from pinning ``F_0``."""
        return float(self.bracket[1] - self.bracket[0])

    @property
    def gap(self) -> float:
        """``F_eps(X) - D_eps(alpha)`` in minimization form.

        At the returned pair it equals ``<alpha, A(X) - q>`` exactly (Fenchel-Young), so it
        vanishes with the residual but can be slightly negative while ``X`` is not exactly
        feasible; :attr:`dual_value` is the rigorous lower bound on ``F_eps``."""
        return self.sense * (self.value - self.dual_value)

    @property
    def residual(self) -> float:
        """Primal constraint residual ``||A(X) - q||_2`` (equals :attr:`grad_norm`)."""
        return self.grad_norm

    def summary(self) -> str:
        """A few readable lines; the status is always shown next to the numbers."""
        if self.converged:
            flag = ""
        elif self.status == Status.PRECISION_LIMIT:
            flag = "  [AT THE FLOAT64 FLOOR: tol not resolvable; residual = ||grad||]"
        elif self.status == Status.UNBOUNDED:
            flag = "  [UNBOUNDED: the SDP has no finite optimum; see message]"
        else:
            flag = "  [NOT CONVERGED: value is the last iterate's]"
        return (
            f"{self.regularizer} eps={self.eps:.3g}: status={self.status}{flag}\n"
            f"  F_eps = {self.value:.12g}   Tr[HX] = {self.energy:.12g}   "
            f"D_eps = {self.dual_value:.12g}   gap = {self.gap:.3e}\n"
            f"  ||grad|| = {self.grad_norm:.3e} (tol {self.tol:.1e})   "
            f"certified F_0 {'<=' if self.sense == -1 else '>='} {self.certified_bound:.12g}\n"
            f"  {self.iterations} iterations, {self.n_evals} evaluations, {self.time:.3f} s "
            f"on {self.backend}"
        )

    def __repr__(self) -> str:
        return (
            f"RegularizedResult(status={self.status!r}, eps={self.eps:g}, "
            f"regularizer={self.regularizer!r}, value={self.value:.10g}, "
            f"grad_norm={self.grad_norm:.2e}, iterations={self.iterations}, time={self.time:.3g}s)"
        )


@dataclasses.dataclass(frozen=True, repr=False)
class ExactResult:
    """Outcome of :func:`cvxqreg.solve_exact`: the ``eps = 0`` SDP solved by a conic solver.

    Attributes
    ----------
    status : str
        CVXPY's status string (``"optimal"``, ``"optimal_inaccurate"``, ``"infeasible"``, ...).
    value : float
        Optimal value in the user's convention (offset included); ``nan`` unless solved.
    X : ndarray or None
        Optimal state.
    alpha : ndarray or None
        Dual vector of ``max <alpha, q> s.t. A*(alpha) <= H`` (minimization form).
    primal_residual : float
        ``||A(X) - q||_2``.
    dual_residual : float
        ``max(0, lambda_max(A*(alpha) - H))``: how far ``alpha`` is from dual feasibility.
    min_eigenvalue : float
        ``lambda_min(X)`` (negative values are solver tolerance).
    iterations : int or None
    time : float
        Wall time of the conic solve (seconds, CVXPY compilation included).
    solver : str
    settings : dict
        Solver options used (tolerances).
    accuracy : float
        The measured accuracy of the returned pair, the largest of the relative primal residual
        ``||A(X) - q|| / (1 + ||q||)``, dual infeasibility ``max(0, lambda_max(A*(alpha) - H)) /
        (1 + ||H||_2)``, duality gap ``|value - dual_value| / (1 + |value| + |dual_value|)`` and
        PSD violation ``max(0, -lambda_min(X)) / (1 + Tr X)``; ``nan`` without a solution.
        :attr:`converged` compares it with :data:`EXACT_ACCURACY`: a solver's status string
        (``"optimal_inaccurate"`` at tolerances it cannot certify) is reported, not judged.
    """

    status: str
    value: float
    X: np.ndarray | None
    alpha: np.ndarray | None
    primal_residual: float
    dual_residual: float
    min_eigenvalue: float
    iterations: int | None
    time: float
    solver: str
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    dual_value: float = float("nan")
    sense: int = 1
    accuracy: float = float("nan")

    @property
    def optimal(self) -> bool:
        """``True`` for status ``"optimal"`` (the solver's own verdict at its tolerances)."""
        return self.status == "optimal"

    @property
    def converged(self) -> bool:
        """``True`` when a solution is present and its measured :attr:`accuracy` is at most
        :data:`EXACT_ACCURACY` (the rule the command line and the tests use)."""
        return self.X is not None and bool(self.accuracy <= EXACT_ACCURACY)

    @property
    def gap(self) -> float:
        """``value - dual_value`` (minimization form): the solver's reported duality gap."""
        return self.sense * (self.value - self.dual_value)

    def summary(self) -> str:
        """A few readable lines."""
        return (
            f"exact SDP ({self.solver}): status={self.status}\n"
            f"  F_0 = {self.value:.12g}   dual = {self.dual_value:.12g}   gap = {self.gap:.3e}\n"
            f"  primal residual = {self.primal_residual:.3e}   dual infeasibility = "
            f"{self.dual_residual:.3e}   lambda_min(X) = {self.min_eigenvalue:.3e}\n"
            f"  measured accuracy {self.accuracy:.1e} (accepted at <= {EXACT_ACCURACY:.0e}: "
            f"{'yes' if self.converged else 'NO'});  {self.iterations} iterations, "
            f"{self.time:.3f} s"
        )

    def __repr__(self) -> str:
        return (
            f"ExactResult(status={self.status!r}, value={self.value:.10g}, solver={self.solver!r}, "
            f"time={self.time:.3g}s)"
        )
