"""eps-continuation (eps-scaling; docs/theory.md, 'Continuation (eps-scaling)'): the ladder of eps
values solved in turn (:func:`eps_ladder`), the warm start of each stage (:func:`stage_start`:
the secant extrapolation :func:`predict`, or the path's tangent :func:`tangent`), and one run
record from the stages (:func:`chain`). :class:`~cvxqreg.DualSolver` drives them.
"""

from __future__ import annotations

import numpy as np

from .dual import DualOracle
from .optimize import RunOutcome

__all__ = ["chain", "eps_ladder", "predict", "stage_start", "tangent"]


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


def _secant(older, newer, eps: float) -> np.ndarray:
    """The secant extrapolation of ``eps -> alpha(eps)`` through two stages, at ``eps``."""
    (e1, a1), (e2, a2) = older, newer
    return a2 + (a2 - a1) * ((eps - e2) / (e2 - e1))


def predict(oracle: DualOracle, older, newer, eps: float) -> np.ndarray:
    """The warm start for the stage at ``eps``: the secant extrapolation of the path
    ``eps -> alpha(eps)`` through the last two stages, or the last stage's ``alpha`` if that has
    the larger dual value at ``eps`` (the path bends where the optimum drifts, e.g. rank-deficient
    marginals). ``DualSolver(predictor=False)`` turns it off for comparison. Like
    :func:`stage_start`, it hands the chosen candidate's evaluation to the oracle's next
    evaluation there (:meth:`DualOracle.prime`)."""
    return _best(oracle, [newer[1], _secant(older, newer, eps)])[0]


def _best(oracle: DualOracle, cands) -> tuple[np.ndarray, float]:
    """The candidate with the largest finite dual value at ``oracle.eps`` (the first on ties or
    when none is finite) and its projected ``||grad D||``. Candidates are first projected onto
    the dual's feasible signs (inequality rows), where the optimizer starts from them."""
    problem = oracle.problem
    cands = [problem.project_dual(c) for c in cands]
    with np.errstate(over="ignore", invalid="ignore"):
        evs = [oracle.evaluate(c, want_state=False) for c in cands]
    values = [
        ev.value if np.isfinite(ev.value) and np.all(np.isfinite(ev.grad)) else -np.inf
        for ev in evs
    ]
    i = int(np.argmax(values))
    oracle.prime(cands[i], evs[i])
    return cands[i], float(np.linalg.norm(problem.projected_gradient(cands[i], evs[i].grad)))


#: conjugate-gradient products allowed for the tangent's linear system (an approximate tangent
#: only needs to beat the other warm starts, which :func:`stage_start` checks)
TANGENT_CG_PRODUCTS = 50
#: the tangent step is a candidate only within this many times ``1 + ||alpha||`` (plus as many
#: times the last change of ``alpha`` between stages)
TANGENT_MAX_STEP = 10.0


def tangent(oracle: DualOracle, ev, preconditioner: str = "auto") -> np.ndarray:
    """``d alpha / d eps`` along the path of optima, at an optimum ``ev`` for ``oracle.eps``.

    Differentiating ``grad D_eps(alpha(eps)) = 0`` (implicit function theorem):

        (-Hess D_eps) alpha' = d/d eps grad D_eps(alpha) = -A(dX/d eps),

    where at fixed ``alpha`` the eigenvectors of ``W`` do not move and
    ``dX/d eps = U diag(psi''(t) dt/d eps) U^*``, ``t = lam / eps``: ``dt/d eps = -t / eps``, or
    ``-(t - u) / eps`` with the normalization shift ``u' `` keeping the trace fixed under
    elimination (``sum psi''(t) dt = 0``). The system is solved like a Newton step: dense where
    :meth:`DualOracle.dense_hessian_fits`, else conjugate gradients (preconditioned as Newton's
    first step is under the ``preconditioner`` option: by the marginals, or on Pauli rows under
    ``"pauli"``, :mod:`cvxqreg.solvers.newton`) to ``1e-2`` relative, at most
    :data:`TANGENT_CG_PRODUCTS` products (docs/theory.md, 'Continuation (eps-scaling)')."""
    from .newton import _cg, _dense_step, _pcg, _preconditioner

    xp, be, eps = oracle.be.xp, oracle.be, oracle.eps
    t = ev.lam / eps
    d2 = oracle.reg.d2psi(t)
    if oracle.c is not None:
        u = float(xp.sum(d2 * t)) / max(float(xp.sum(d2)), np.finfo(float).tiny)
        dt = -(t - u) / eps
    else:
        dt = -t / eps
    d = d2 * dt  # dX/d eps = U diag(d) U^*, as a difference of two PSD factors
    U = ev.U
    parts = (xp.maximum(d, 0.0), xp.maximum(-d, 0.0))
    AX = [be.to_host(oracle.A.apply_spectral(U * xp.sqrt(p)[None, :])) for p in parts]
    b = -(np.asarray(AX[0], dtype=np.float64) - np.asarray(AX[1], dtype=np.float64))
    if oracle.imag_rows is not None:  # the real reduction's rows stay at zero
        b[oracle.imag_rows] = 0.0
    if not np.any(b):
        return np.zeros_like(b)
    if oracle.dense_hessian_fits():
        Hm = oracle.hessian_matrix(ev)
        scale = float(np.trace(Hm)) / b.size
        if not scale > 0:  # no curvature at all (e.g. only the trace row): no tangent
            return np.zeros_like(b)
        return _dense_step(Hm, b, 1e-10 * scale)
    M = oracle.hessian_operator(ev)
    build, kind, start = _preconditioner(oracle, preconditioner)
    pre = None if build is None or start > 0 else build(ev, 0.0)
    x, _, ok = _pcg(M, b, 1e-2, TANGENT_CG_PRODUCTS, pre, truncate=kind == "pauli")
    if not ok and pre is not None:  # the preconditioner is not numerically SPD here
        x, _ = _cg(M, b, 1e-2, TANGENT_CG_PRODUCTS)
    return x


def stage_start(
    oracle: DualOracle,
    solved,
    last_eval,
    secant: bool,
    use_tangent: bool,
    preconditioner: str = "auto",
):
    """The warm start of the stage at ``oracle.eps`` after the stages ``solved`` (a list of
    ``(eps, alpha)``, the last one ending at the evaluation ``last_eval``): among the last
    ``alpha``, its first-order step along the path ``alpha + (eps - eps_last) alpha'``
    (:func:`tangent`, if ``use_tangent`` and ``last_eval`` is known) or, where that gives no
    candidate, its secant extrapolation (:func:`predict`, from two stages on, if ``secant``),
    the one with the largest dual value at
    ``oracle.eps`` (the tangent's linear solve with ``preconditioner``, Newton's option). Returns
    ``(alpha, ||grad D||)`` at that start (one evaluation per candidate, one when there is no
    choice to make; the optimizer's first evaluation reuses it, :meth:`DualOracle.prime`)."""
    e_last, a_last = solved[-1]
    cands = [a_last]
    if use_tangent and last_eval is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            step = (oracle.eps - e_last) * tangent(
                oracle.with_eps(e_last), last_eval, preconditioner
            )
        # a first-order step far beyond the scale of alpha is the linearization failing (a
        # nearly singular Hessian): not a candidate
        reach = TANGENT_MAX_STEP * (1.0 + float(np.linalg.norm(a_last)))
        if len(solved) >= 2:
            reach += TANGENT_MAX_STEP * float(np.linalg.norm(a_last - solved[-2][1]))
        if np.all(np.isfinite(step)) and float(np.linalg.norm(step)) <= reach:
            cands.append(a_last + step)
    # the secant only where there is no tangent: with one, it never started a stage in the
    # measured cases (newton_steps.py, 12 cases, and the small paper tables' 120 cells: the same
    # Newton iterations without it but in one cell at the float64 floor, 3-13 fewer evaluations)
    if secant and len(solved) >= 2 and len(cands) == 1:
        cands.append(_secant(solved[-2], solved[-1], oracle.eps))
    return _best(oracle, cands)


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
