"""eps-continuation (eps-scaling; docs/theory.md, 'Continuation (eps-scaling)'): the ladder of eps
values solved in turn (:func:`eps_ladder`), the secant warm start of each stage (:func:`predict`),
and one run record from the stages (:func:`chain`). :class:`~cvxqreg.DualSolver` drives them.
"""

from __future__ import annotations

import numpy as np

from .dual import DualOracle
from .optimize import RunOutcome

__all__ = ["chain", "eps_ladder", "predict"]


def eps_ladder(spread: float, eps: float, ratio: float, eps0: float | None = None) -> list[float]:
    """The eps values solved in turn: ``eps r^K, ..., eps r^2, eps r, eps`` (``r = ratio``) whose
    top ``eps r^K`` is the largest such value not above ``s = spread``, the cost's spread
    ``lambda_max(H) - lambda_min(H)`` (no ladder when ``eps >= s / r`` or ``H = 0``; at most 60
    stages above ``eps``). When the warm start comes from a solve at ``eps0``, the ladder starts at
    or below ``eps0 / r``.

    The ladder is anchored at the target so that every drop, the last included, is the factor
    ``r``: anchored at ``s`` instead, the last drop was up to ``r^2`` and the first Newton steps
    after it needed line-search steps down to ``1e-5`` (measured on QWD n = 12,
    ``benchmarks/results/newton_steps.md``)."""
    r = ratio
    top = spread if eps0 is None else eps0 / r
    if not top > r * eps:
        return [eps]
    # the 1e-9 keeps a top that is eps r^K up to rounding (a previous ladder's stage) at K
    K = min(int(np.floor(np.log(top / eps) / np.log(r) + 1e-9)), 60)
    return [eps * r**j for j in range(K, 0, -1)] + [eps]


def predict(oracle: DualOracle, older, newer, eps: float) -> np.ndarray:
    """The warm start for the stage at ``eps``: the secant extrapolation of the path
    ``eps -> alpha(eps)`` through the last two stages, or the last stage's ``alpha`` if that has
    the larger dual value at ``eps`` (the path bends where the optimum drifts, e.g. rank-deficient
    marginals). ``DualSolver(predictor=False)`` turns it off for comparison."""
    (e1, a1), (e2, a2) = older, newer
    guess = a2 + (a2 - a1) * ((eps - e2) / (e2 - e1))
    with np.errstate(over="ignore", invalid="ignore"):
        v_guess = oracle.evaluate(guess, want_state=False).value
        v_last = oracle.evaluate(a2, want_state=False).value
    return guess if v_guess > v_last else a2


def chain(outs, ladder) -> RunOutcome:
    """One outcome from the stages of a continuation: the last stage's status and iterate,
    iterations summed, histories concatenated (iteration numbers continue across stages)."""
    if len(outs) == 1:
        return outs[0]
    last = outs[-1]
    ks, offset = [], 0
    for o in outs:
        ks.append(o.history_iter + offset)
        offset += o.iterations
    times, t_off = [], 0.0
    for o in outs:
        times.append(o.history_time + t_off)
        t_off += float(o.history_time[-1]) if o.history_time.size else 0.0
    stages = ", ".join(
        f"eps={e:.2g}: {o.iterations} it" for e, o in zip(ladder, outs, strict=False)
    )
    return RunOutcome(
        x=last.x,
        status=last.status,
        message=f"{last.message} [continuation {stages}]",
        iterations=offset,
        history_iter=np.concatenate(ks),
        history_value=np.concatenate([o.history_value for o in outs]),
        history_grad=np.concatenate([o.history_grad for o in outs]),
        history_time=np.concatenate(times),
        history_eps=np.concatenate(
            [np.full(len(o.history_iter), e) for e, o in zip(ladder, outs, strict=False)]
        ),
        evaluation=last.evaluation,
    )
