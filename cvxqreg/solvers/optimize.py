"""What the dual optimizers share: the run record and the stopping rules.

The drivers - regularized Newton (:mod:`cvxqreg.solvers.newton`), cvxqreg's L-BFGS
(:mod:`cvxqreg.solvers.lbfgs`), SciPy's L-BFGS-B (:mod:`cvxqreg.solvers.scipy_lbfgs`) and the
bound-constrained ones (:mod:`cvxqreg.solvers.bounded`) - all return a :class:`RunOutcome` built by
a :class:`RunRecord`, and stop by the same rules: :func:`stop_reason` (``||grad D_eps||_2 < tol``,
the paper's rule; the iteration cap; the time limit; a dual value above the primal upper bound,
which certifies infeasibility), :class:`Stagnation` and :func:`line_search_failed` (the verdicts
``precision_limit`` or ``stalled``), with the float64 floor measured by :func:`gradient_noise` and
:func:`precision_limit`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..results import Status

__all__ = [
    "STAGNATION_PATIENCE",
    "RunOutcome",
    "RunRecord",
    "Progress",
    "Stagnation",
    "gradient_noise",
    "line_search_failed",
    "precision_limit",
    "stop_reason",
]


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """What the optimizer loop returns to the solver (host data)."""

    x: np.ndarray
    status: str
    message: str
    iterations: int
    history_iter: np.ndarray
    history_value: np.ndarray
    history_grad: np.ndarray
    history_time: np.ndarray
    history_eps: np.ndarray | None = None
    #: the oracle's evaluation at ``x``, when the driver has it (Newton), so the solver need not
    #: recompute it
    evaluation: Any = None


def stop_reason(
    f: float,
    gn: float,
    k: int,
    tol: float,
    max_iter: int,
    elapsed: float,
    time_limit: float | None,
    stop_above: float | None,
) -> tuple[str, str] | None:
    """The stopping rules shared by the optimizers, checked at iterate ``k`` with dual value ``f``
    and gradient norm ``gn``: ``(status, message)``, or ``None`` to go on."""
    if not np.isfinite(f):
        return Status.FAILED, "the dual value became non-finite"
    if gn < tol:
        return Status.CONVERGED, f"||grad||_2 = {gn:.3e} < tol = {tol:.1e}"
    if stop_above is not None and f > stop_above:
        return Status.INFEASIBLE, (
            f"the dual value {f:.6g} exceeds {stop_above:.6g}, an upper bound on the primal "
            "objective of every feasible state: the constraints are infeasible"
        )
    if k >= max_iter:
        return Status.MAX_ITER, (
            f"{max_iter} iterations reached with ||grad||_2 = {gn:.3e} >= tol = {tol:.1e}"
        )
    if time_limit is not None and elapsed > time_limit:
        return (
            Status.TIME_LIMIT,
            f"time limit of {time_limit:g} s reached with ||grad||_2 = {gn:.3e}",
        )
    return None


#: a run whose best ||grad|| has not halved for this many iterations is checked for the float64
#: floor (Newton; L-BFGS waits ten times longer)
STAGNATION_PATIENCE = 20
#: the gradient is at the float64 floor when ||grad|| <= this factor times its measured noise
_FLOOR_FACTOR = 10.0


class Progress:
    """The best gradient norm so far and the number of steps since it last halved."""

    def __init__(self):
        self.best, self.since = np.inf, 0

    def track(self, gn: float) -> None:
        if gn < 0.5 * self.best:
            self.best, self.since = gn, 0
        else:
            self.since += 1


class Stagnation(Progress):
    """Tracks the best gradient norm; :meth:`update` is ``True`` when it has not halved in
    ``patience`` iterations (and restarts the count)."""

    def __init__(self, patience: int):
        super().__init__()
        self.patience = int(patience)

    def update(self, gn: float) -> bool:
        if not np.isfinite(self.best):
            self.best, self.since = gn, 0
            return False
        self.track(gn)
        if self.since >= self.patience:
            self.best, self.since = gn, 0
            return True
        return False

    def check(self, fun, x: np.ndarray, grad: np.ndarray, gn: float) -> tuple[str, str] | None:
        """:meth:`update`, and when the run has stagnated, :func:`precision_limit` at ``x``."""
        if not self.update(gn):
            return None
        why = f"||grad||_2 did not halve in {self.patience} iterations"
        return precision_limit(fun, x, grad, gn, why)


def line_search_failed(fun, x: np.ndarray, grad: np.ndarray, gn: float, tol: float):
    """``(status, message)`` of a run whose line search failed: ``precision_limit`` at the float64
    floor, ``stalled`` otherwise."""
    return precision_limit(fun, x, grad, gn, "the line search failed") or (
        Status.STALLED,
        f"line search failed at ||grad||_2 = {gn:.3e} >= tol = {tol:.1e}: no further "
        "progress in float64",
    )


def gradient_noise(fun, x: np.ndarray, grad: np.ndarray, samples: int = 3, seed: int = 0) -> float:
    """The float64 noise of the gradient at ``x``, *measured*: the largest change of
    ``grad f`` when ``x`` is perturbed at the level of rounding (relative ``4 u`` per entry,
    ``u`` the unit roundoff). A gradient norm comparable to this cannot be reduced further in
    float64, whatever the optimizer: the eigendecomposition behind each gradient is accurate only
    to ``O(u ||W||)``, which the dual amplifies by ``1/eps`` at small eps."""
    rng = np.random.default_rng(seed)
    u = np.finfo(np.float64).eps
    scale = np.maximum(np.abs(x), 1e-3 * float(np.max(np.abs(x), initial=0.0)))
    worst = 0.0
    for _ in range(samples):
        xs = x + 4.0 * u * scale * rng.standard_normal(x.size)
        _, gs = fun(xs)
        worst = max(worst, float(np.linalg.norm(np.asarray(gs) - grad)))
    return worst


def precision_limit(
    fun, x: np.ndarray, grad: np.ndarray, gn: float, why: str
) -> tuple[str, str] | None:
    """``(Status.PRECISION_LIMIT, message)`` when ``||grad|| = gn`` is within
    ``_FLOOR_FACTOR`` of the measured :func:`gradient_noise` at ``x``; ``None`` when the gradient
    is resolved (a slow or stuck run far above its noise is not at the floor)."""
    noise = gradient_noise(fun, x, grad)
    if gn <= _FLOOR_FACTOR * noise:
        return Status.PRECISION_LIMIT, (
            f"{why} at ||grad||_2 = {gn:.3e}; the gradient's float64 noise at this point is "
            f"{noise:.1e} (measured by perturbing alpha at the rounding level), so a smaller "
            "||grad|| is beyond what float64 resolves here"
        )
    return None


class RunRecord:
    """Per-iteration records of an optimizer run (value, gradient norm, time), with the
    progress callback; shared by the drivers."""

    def __init__(self, t0: float, callback: Callable[[int, float, float], None] | None = None):
        self.t0, self.callback = t0, callback
        self.k, self.f, self.g, self.t = [], [], [], []

    def record(self, k: int, f: float, grad: np.ndarray) -> float:
        """Record iterate ``k`` with value ``f`` and gradient ``grad``; returns ``||grad||``."""
        gn = float(np.linalg.norm(grad))
        self.k.append(k)
        self.f.append(f)
        self.g.append(gn)
        self.t.append(time.perf_counter() - self.t0)
        if self.callback is not None:
            self.callback(k, f, gn)
        return gn

    def outcome(self, x, status: str, msg: str, k: int) -> RunOutcome:
        """The run's result with these records."""
        return _outcome(x, status, msg, k, self.k, self.f, self.g, self.t)


def _outcome(x, status, msg, k, hk, hf, hg, ht) -> RunOutcome:
    return RunOutcome(
        x=np.asarray(x),
        status=status,
        message=msg,
        iterations=int(k),
        history_iter=np.asarray(hk, dtype=np.int64),
        history_value=np.asarray(hf, dtype=float),
        history_grad=np.asarray(hg, dtype=float),
        history_time=np.asarray(ht, dtype=float),
    )
