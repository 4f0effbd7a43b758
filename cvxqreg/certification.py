"""Solve to a certified accuracy: drive eps down until the bracket ``[L, U]`` on ``F_0`` is narrow.

Every regularized solve gives two rigorous bounds on the exact value (:mod:`cvxqreg.bounds`,
``docs/bounds.md``): ``L <= F_0`` by weak duality from its ``alpha`` and ``U >= F_0`` from a
feasible state built from ``X_eps``. Both stay valid for ``F_0`` whatever eps they came from, so
the best of each over all stages is kept. The width ``U - L`` has two parts:

* ``Tr[H X'] - L``, set by eps (about ``eps Tr[phi(X_eps)]`` plus the dual's distance from
  optimality): it shrinks as eps decreases;
* ``U - Tr[H X']``, the price of feasibility (the weight of the strictly feasible state mixed in is
  proportional to the residual ``||q - A(X_eps)||``): it shrinks with the gradient tolerance.

:func:`certify` first drives eps down (warm-started from the previous ``alpha``): the eps part is
measured as ``kappa eps`` and the next eps aimed at ``0.4 rtol max(1, |L|) / kappa`` (at least a
factor ``ratio``, at most ``1e4`` per stage). Once the eps part is below half the target, it
re-solves, with a gradient tolerance aimed from the measured residual, at the *largest* eps whose
restored state's energy is already within half the target of ``L`` (the float64 floor of the
residual is lower at larger eps), until ``U - L <= rtol max(1, |L|)`` or the budget ends.
Restored states of earlier stages that are certified positive definite are kept as extra anchors
for the mixing (they are often much closer to optimal than the maximum-entropy state).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from .backend import get_backend
from .bounds import Anchor, anchor_states, feasible_upper_bound, user_bracket
from .errors import InvalidInputError
from .problem import LoweredProblem
from .results import Status
from .solvers.regularized import DualSolver

__all__ = ["CertifyResult", "CertifyStage", "certify"]

#: eps is divided by at most this much between two stages
_MAX_JUMP = 1e4


@dataclasses.dataclass(frozen=True)
class CertifyStage:
    """One regularized solve of :func:`certify` (bounds in the user's convention; ``low``/``high``
    are the best bracket *after* this stage)."""

    eps: float
    tol: float
    status: str
    grad_norm: float
    low: float
    high: float
    width: float
    iterations: int
    time: float


@dataclasses.dataclass(frozen=True, repr=False)
class CertifyResult:
    """Outcome of :func:`certify`: a certified interval ``[low, high]`` that contains ``F_0``.

    Attributes
    ----------
    status : str
        ``"certified"`` (``high - low <= rtol max(1, |bound|)``), ``"time_limit"``,
        ``"max_stages"``, ``"stalled"`` (the width stopped shrinking: float64 floor),
        ``"no_upper_bound"`` (no strictly feasible state: only the dual bound is guaranteed),
        ``"infeasible"`` or ``"failed"``.
    message : str
    low, high : float
        The bracket in the user's convention (objective offset included). For a minimization
        ``low`` is the weak-duality bound and ``high`` the objective at :attr:`X`; for a
        ``Maximize`` the roles swap.
    rtol : float
    eps : float
        The smallest eps solved.
    X : ndarray or None
        The feasible state whose objective is the feasible end of the bracket.
    alpha : ndarray or None
        The dual vector of the dual end (minimization form).
    time : float
        Wall time in seconds, everything included.
    stages : tuple of CertifyStage
    sense : int
    regularizer : str
    note : str
        How the feasible end was obtained, or why it is missing.
    """

    status: str
    message: str
    low: float
    high: float
    rtol: float
    eps: float
    X: np.ndarray | None
    alpha: np.ndarray | None
    time: float
    stages: tuple[CertifyStage, ...]
    sense: int
    regularizer: str
    note: str = ""

    @property
    def bracket(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low

    @property
    def rel_width(self) -> float:
        """``width / max(1, |dual end|)``, the quantity compared with ``rtol``."""
        dual_end = self.low if self.sense == 1 else self.high
        return self.width / max(1.0, abs(dual_end)) if math.isfinite(dual_end) else math.inf

    @property
    def midpoint(self) -> float:
        """``(low + high) / 2``: within ``width / 2`` of ``F_0``."""
        return 0.5 * (self.low + self.high)

    @property
    def certified(self) -> bool:
        """``True`` when the requested relative width was reached."""
        return self.status == "certified"

    @property
    def history(self) -> dict[str, list]:
        """The stages as plain lists (one entry per regularized solve)."""
        return {
            f.name: [getattr(s, f.name) for s in self.stages]
            for f in dataclasses.fields(CertifyStage)
        }

    def summary(self) -> str:
        """A few readable lines."""
        return (
            f"certify ({self.regularizer}): status={self.status}\n"
            f"  F_0 in [{self.low:.12g}, {self.high:.12g}]   width = {self.width:.3e} "
            f"(relative {self.rel_width:.2e}, rtol {self.rtol:.1e})\n"
            f"  {len(self.stages)} solves down to eps = {self.eps:.2e}, {self.time:.2f} s\n"
            f"  {self.message}"
        )

    def __repr__(self) -> str:
        return (
            f"CertifyResult(status={self.status!r}, low={self.low:.10g}, high={self.high:.10g}, "
            f"rel_width={self.rel_width:.2e}, eps={self.eps:.2e}, time={self.time:.3g}s)"
        )


def certify(
    problem,
    rtol: float = 1e-4,
    *,
    regularizer: Any = "von_neumann",
    backend: Any = "auto",
    time_limit: float | None = None,
    max_stages: int = 60,
    eps_start: float | None = None,
    ratio: float = 10.0,
    tol: float | None = None,
    min_tol: float = 1e-12,
    progress=None,
    **solver_options,
) -> CertifyResult:
    """Bracket the exact value ``F_0`` to relative width ``rtol`` by regularized solves.

    ``L <= F_0 <= U`` (minimization form) holds at every stage: ``L`` by weak duality from the
    dual vector, ``U`` as the objective of a feasible state (``X_eps`` restored onto ``A(X) = q``
    and mixed with a strictly feasible state). Stages decrease eps or the gradient tolerance,
    whichever part of the width dominates, until ``U - L <= rtol max(1, |L|)``.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
    rtol : float
        Target relative width of the bracket.
    regularizer, backend
        See :class:`~cvxqreg.DualSolver`.
    time_limit : float, optional
        Seconds for everything; the best bracket so far is returned when it runs out.
    max_stages : int
        At most this many regularized solves.
    eps_start : float, optional
        The first eps (default: a tenth of the cost's spread ``lambda_max(H) - lambda_min(H)``;
        the first solve runs the usual continuation ladder down to it).
    ratio : float
        eps is divided by at least this between stages that decrease it.
    tol : float, optional
        Gradient tolerance of the first stage (default ``min(1e-6, rtol / 100)``).
    min_tol : float
        The tolerance is not tightened below this.
    progress : callable, optional
        ``progress(stage)`` with each :class:`CertifyStage`.
    **solver_options
        Passed to :class:`~cvxqreg.DualSolver` (e.g. ``optimizer="lbfgs"``).

    Returns
    -------
    CertifyResult
    """
    t0 = time.perf_counter()
    if isinstance(problem, LoweredProblem):
        lp = problem
    else:
        from .lowering import lower

        lp = lower(problem)
    # every option but the time limit, as passed on to certify on a face (_certify_on_face)
    options = dict(
        regularizer=regularizer,
        backend=backend,
        max_stages=max_stages,
        eps_start=eps_start,
        ratio=ratio,
        tol=tol,
        min_tol=min_tol,
        progress=progress,
        **solver_options,
    )
    # the bounds run on the host between the solves: small matrices with one BLAS thread
    with get_backend(backend).threads_for(lp.dim):
        return _certify(lp, rtol, t0, time_limit, options)


def _certify(lp, rtol, t0, time_limit, options: dict) -> CertifyResult:
    """:func:`certify` on a lowered problem (``t0``: when the call started; ``options``: the
    keywords of :func:`certify` but ``time_limit``)."""
    opts = dict(options)
    regularizer, backend = opts.pop("regularizer"), opts.pop("backend")
    max_stages, eps_start, ratio = opts.pop("max_stages"), opts.pop("eps_start"), opts.pop("ratio")
    tol, min_tol, progress = opts.pop("tol"), opts.pop("min_tol"), opts.pop("progress")
    solver_options = opts
    if not (isinstance(rtol, int | float) and math.isfinite(rtol) and rtol > 0):
        raise InvalidInputError(f"rtol must be a positive number, got {rtol!r}")
    if not (math.isfinite(ratio) and ratio > 1):
        raise InvalidInputError(f"ratio must be > 1, got {ratio!r}")
    if time_limit is not None and not time_limit > 0:
        raise InvalidInputError(f"time_limit must be > 0 seconds, got {time_limit!r}")
    sense, off = lp.sense, lp.offset

    def internal(user_value: float) -> float:
        return sense * user_value - off

    eps = float(eps_start) if eps_start is not None else 0.1 * (lp.cost_spread or 10.0)
    tol_k = float(tol) if tol is not None else min(1e-6, rtol / 100)
    tol_k = tol0 = max(tol_k, min_tol)
    visited: list[
        tuple
    ] = []  # (eps, alpha, restored energy, feasibility part, ||grad||, tol, floor)
    budget = 60.0 if time_limit is None else max(1.0, 0.1 * time_limit)
    anchors: list[Anchor] = anchor_states(lp, time_limit=budget, centre=True)
    n_fixed = len(anchors)
    if anchors[0].X is None:
        from .face import coupling_face

        face = coupling_face(lp)
        if face is not None:
            return _certify_on_face(lp, face, rtol, t0, time_limit, options)
    best_L, best_U = -math.inf, math.inf
    best_X = best_alpha = None
    note = anchors[0].note
    stages: list[CertifyStage] = []
    alpha = eps_prev = None
    eps_min = eps
    status, message = "max_stages", f"{max_stages} stages without reaching rtol = {rtol:.1e}"
    stale = 0
    reg_name = ""
    for _ in range(max_stages):
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            status, message = "time_limit", f"time limit of {time_limit:g} s reached"
            break
        solver = DualSolver(
            regularizer=regularizer,
            backend=backend,
            tol=tol_k,
            time_limit=left,
            **solver_options,
        )
        reg_name = solver.regularizer.name
        ts = time.perf_counter()
        if alpha is None:
            res = solver(lp, eps)
        else:
            res = solver(lp, eps, alpha0=alpha, eps0=eps_prev)
        if res.status in (Status.FAILED, Status.INFEASIBLE) or not np.all(np.isfinite(res.alpha)):
            status, message = "failed", f"the solve at eps = {eps:.2e} failed: {res.message}"
            if res.status == Status.INFEASIBLE:
                status = "infeasible"
            break
        eps_min = min(eps_min, eps)
        width_before = best_U - best_L
        L = internal(res.certified_bound) if math.isfinite(res.certified_bound) else -math.inf
        if L > best_L:
            best_L, best_alpha = L, res.alpha
        fb = feasible_upper_bound(lp, res.X, anchor=anchors)
        if fb.restored is not None and fb.restored.lam_lower > fb.zeta:
            anchors.append(dataclasses.replace(fb.restored, source=f"restored eps={eps:.1e} state"))
            if len(anchors) > n_fixed + 3:  # keep the problem's anchors and the last three
                del anchors[n_fixed]
        if fb.value < best_U:
            best_U, best_X, note = fb.value, fb.X, fb.note
        elif not math.isfinite(best_U):
            note = fb.note
        lo, hi = user_bracket(lp, best_L, best_U)
        width = best_U - best_L
        stage = CertifyStage(
            eps=eps,
            tol=tol_k,
            status=res.status,
            grad_norm=res.grad_norm,
            low=lo,
            high=hi,
            width=width,
            iterations=res.iterations,
            time=time.perf_counter() - ts,
        )
        stages.append(stage)
        if progress is not None:
            progress(stage)
        if math.isfinite(width) and width <= rtol * max(1.0, abs(best_L + off)):
            status, message = "certified", f"relative width <= {rtol:.1e} reached"
            break
        if not math.isfinite(best_U) and anchors[0].X is None:
            status, message = "no_upper_bound", note
            break
        stale = stale + 1 if not width < 0.9 * width_before else 0
        if stale >= 4:
            status, message = (
                "stalled",
                (
                    "the bracket stopped shrinking for 4 stages (float64 floor at these eps; "
                    f"last solve: {res.status})"
                ),
            )
            break
        # the two parts of the width: eps (energy above L) and feasibility (U above energy)
        e_part = (fb.energy - L) if math.isfinite(fb.energy) else math.inf
        f_part = (fb.value - fb.energy) if math.isfinite(fb.value) else math.inf
        at_floor = res.status == Status.PRECISION_LIMIT or tol_k <= min_tol
        visited.append((eps, res.alpha, fb.energy, f_part, res.grad_norm, tol_k, at_floor))
        target = rtol * max(1.0, abs(best_L + off))
        gap_L = (fb.energy - best_L) if math.isfinite(fb.energy) else math.inf
        # U can come from a larger eps than L: the float64 floor of the residual is lower there.
        # Candidates: stages whose restored energy is within half the target of L.
        cands = [v for v in visited if v[2] - best_L <= 0.5 * target and not v[6]]
        if gap_L <= 0.5 * target and cands:
            e_u, a_u, _, f_u, g_u, t_u, _ = max(cands, key=lambda v: v[0])
            visited = [v for v in visited if v[0] != e_u]  # replaced by the re-solve
            # the feasibility part scales with the residual: aim it at a quarter of the target
            tol_k = max(min_tol, min(t_u / 10, g_u * 0.25 * target / max(f_u, 1e-300)))
            eps_prev, eps, alpha = e_u, e_u, a_u
        else:
            # the eps part is about kappa * eps: aim it at 0.4 target, at least one factor
            # `ratio` and at most _MAX_JUMP per stage (the solver's own ladder fills the gap)
            kappa = e_part / eps if math.isfinite(e_part) and e_part > 0 else 0.0
            aim = 0.4 * target / kappa if kappa > 0 else eps / ratio
            alpha, tol_k = res.alpha, tol0
            eps_prev, eps = eps, min(eps / ratio, max(aim, eps / _MAX_JUMP))
    lo, hi = user_bracket(lp, best_L, best_U)
    return CertifyResult(
        status=status,
        message=message,
        low=lo,
        high=hi,
        rtol=float(rtol),
        eps=eps_min,
        X=best_X,
        alpha=best_alpha,
        time=time.perf_counter() - t0,
        stages=tuple(stages),
        sense=sense,
        regularizer=reg_name,
        note=note,
    )


def _certify_on_face(lp, face, rtol, t0, time_limit, options) -> CertifyResult:
    """:func:`certify` for a coupling problem with singular marginals: certify the face problem
    (:mod:`cvxqreg.face`; strictly feasible, of dimension ``r1 r2``), keep its feasible end
    (exact for the marginals with their dropped eigenvalues set to zero) and its state lifted
    back, and lift its dual vector to a lower bound on the original data."""
    from .face import lifted_lower_bound

    left = None if time_limit is None else max(1.0, 0.9 * (time_limit - (time.perf_counter() - t0)))
    sub = certify(face.problem, 0.5 * rtol, time_limit=left, **options)
    best_L, alpha = -math.inf, None
    if sub.alpha is not None:
        # enough to certify: U - rtol max(1, |U|), with a little room
        target = sub.high - 0.9 * rtol * max(1.0, abs(sub.high + lp.offset))
        best_L, alpha = lifted_lower_bound(lp, face, sub.alpha, target=target)
    best_U = sub.high  # the face problem: minimization form, no offset, as lp's internal values
    X = None if sub.X is None else face.lift(sub.X)
    width = best_U - best_L
    if math.isfinite(width) and width <= rtol * max(1.0, abs(best_L + lp.offset)):
        status, message = "certified", f"relative width <= {rtol:.1e} reached"
    elif sub.status == "certified":
        status = "stalled"
        message = (
            "the face problem was certified but the lifted dual bound on the original data is "
            f"{width:.2e} wide"
        )
    else:
        status, message = sub.status, sub.message
    stages = tuple(
        dataclasses.replace(st, low=lo, high=hi)
        for st in sub.stages
        for lo, hi in [user_bracket(lp, st.low, st.high)]
    )
    lo, hi = user_bracket(lp, best_L, best_U)
    return CertifyResult(
        status=status,
        message=message,
        low=lo,
        high=hi,
        rtol=float(rtol),
        eps=sub.eps,
        X=X,
        alpha=alpha,
        time=time.perf_counter() - t0,
        stages=stages,
        sense=lp.sense,
        regularizer=sub.regularizer,
        note=(
            f"{face.describe()}: the feasible end is exact for marginals with those eigenvalues "
            "set to zero, the dual end (lifted from the face's dual vector) for the data as "
            f"given; on the face: {sub.note}"
        ),
    )
