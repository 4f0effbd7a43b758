"""Regularized Newton on the dual, with the Hessian from the Daleckii-Krein formula.

At small eps the dual's curvature spans many orders of magnitude and L-BFGS needs thousands of
iterations. A Newton step solves

    (-Hess D(alpha) + mu I) p = grad D(alpha),     mu = kappa ||grad D|| / max(eps, s),

(``s`` the cost's spread), then takes the step with the line search of
:mod:`cvxqreg.solvers.line_search`. The Hessian reuses the eigendecomposition of the current iterate
(docs/theory.md, 'Daleckii-Krein Hessian'): for small problems it is formed as a dense ``m x m``
matrix and factored
(:meth:`DualOracle.hessian_matrix`), otherwise applied by conjugate gradients, each CG iteration
costing four matrix products, with the forcing tolerance ``min(0.5, sqrt(||g||)) ||g||``; on
bipartite marginal problems CG is preconditioned by the marginals' Kubo-Mori metrics
(:mod:`cvxqreg.solvers.preconditioner`, inverted in closed form), on Pauli rows by the Jordan
approximation of the Hessian (:mod:`cvxqreg.solvers.pauli_preconditioner`), with plain CG as
the fallback. At small eps the products use only the ``r`` eigenvectors whose eigenvalues lie
within ``37 eps`` of the top (``4 r D^2`` flops instead of ``4 D^3``; docs/theory.md,
'Low-rank Hessian products').
The shift ``mu`` (Levenberg-Marquardt; it vanishes at the optimum, so local convergence stays
fast) keeps steps bounded where the Hessian is singular to working precision: a low-rank optimal
state under the quadratic regularizer, or nearly rank-deficient marginals. Measured: on the Ising
instance at ``D = 16`` the quadratic regularizer needed 739 plain Newton iterations at eps = 1e-6
and did not converge at 1e-9; with ``kappa = 1e-3``, 19 and 22.

On coupling problems under von Neumann a Newton step that did not halve ``||grad D||`` is
followed by a trial of the marginal scaling step (an operator-Sinkhorn step,
:mod:`cvxqreg.solvers.scaling`), kept when it raises ``D`` and lowers ``||grad D||``.

A run whose gradient norm stops decreasing is checked against the measured float64 noise of the
gradient (:func:`cvxqreg.solvers.optimize.precision_limit`) and stops with status
``precision_limit`` when it has reached it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import scipy.linalg

from .dual import HESSIAN_PRODUCTS, DualOracle
from .line_search import line_search, value_rounding
from .optimize import (
    STAGNATION_PATIENCE,
    Progress,
    RunOutcome,
    RunRecord,
    Stagnation,
    line_search_failed,
    stop_reason,
)
from .pauli_preconditioner import START_PRODUCTS, pauli_preconditioner, pauli_structure
from .preconditioner import PRECONDITIONERS, marginal_preconditioner, marginal_structure
from .scaling import marginal_scaling

__all__ = ["newton_cg_maximize"]

#: preconditioned Newton steps allowed without halving the best gradient norm before plain CG
#: takes over (measured: exactly rank-deficient marginals, whose dual optimum lies at infinity,
#: otherwise kept the preconditioned run from converging where plain CG did)
PCG_PATIENCE = 10
#: a Newton step that leaves ``||grad||`` above this fraction of its value before the step is
#: followed by a trial of the marginal scaling step (:mod:`cvxqreg.solvers.scaling`)
SCALING_TRIGGER = 0.5
#: after a CG solve that used up its iteration cap (an inexact Newton step), the dense low-rank
#: Hessian (an exact step) is formed when it costs at most this many times the cap in
#: Hessian-vector products. Measured on QWD with the quadratic regularizer (eps 1e-2, tol 1e-6,
#: benchmarks/results/capped_cg.md): capped CG steps made Newton crawl (n = 19: 297 iterations in
#: the last eps stage), exact steps converge in 15, at 2-6 caps' worth of products each
CAPPED_DENSE_FACTOR = 8
#: smooth regularizers: after a Newton step whose directional derivative kept at least
#: ``TRIAL_RATIO_MIN`` of its initial value, the next line search starts at the secant's
#: estimate of the best step, at most ``MAX_TRIAL_STEP`` (:func:`_next_trial_step`).
#: Measured (one-off operation counts): over the small paper tables' 120 cells (dense Hessian)
#: von Neumann Newton iterations 523 -> 466 (QT2 180 -> 150, IM 137 -> 110; no cell more than
#: 2 iterations worse), where a cap of 4 gave QT2 162 and a threshold of 0.35 IM 132; with
#: conjugate gradients at eps 1e-2, tol 1e-6, QT2 n = 7 20 -> 16 iterations (221 -> 160 Hessian
#: products), n = 9 13 -> 11 (53 -> 48), and QWD n = 12, 15, random transport n = 8, 12, 16,
#: QT1 and QT3 n = 9 within one iteration and 5 products. The one loss measured: IM N = 3 in
#: the full space with the marginal preconditioner (not the default path, which solves on the
#: face), 168 -> 219 products. Not for the quadratic regularizer: its curvature jumps where
#: eigenvalues cross zero and the longer trials overshoot (QT2 204 -> 174 iterations but
#: 216 -> 306 evaluations; IM 97 -> 112 iterations, 350 -> 509 evaluations)
TRIAL_RATIO_MIN = 0.2
MAX_TRIAL_STEP = 2.0


def _cg(apply_M: Callable, b: np.ndarray, rtol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Plain conjugate gradients for ``M p = b`` (:func:`_pcg` without a preconditioner):
    ``(p, products)``; stops early on non-positive curvature."""
    x, k, _ = _pcg(apply_M, b, rtol, max_iter)
    return x, k


def _pcg(
    apply_M: Callable,
    b: np.ndarray,
    rtol: float,
    max_iter: int,
    precondition: Callable | None = None,
    truncate: bool = False,
) -> tuple[np.ndarray, int, bool]:
    """(Preconditioned) conjugate gradients for ``M p = b`` with ``M`` positive semidefinite, to
    the residual ``||b - M p|| <= rtol ||b||`` (Euclidean, with or without a preconditioner).

    ``precondition(r)`` applies ``P^{-1}`` for an SPD ``P``. Returns ``(p, products, ok)``;
    ``ok`` is False when the iteration met non-positive curvature ``<d, M d> <= 0`` or a
    non-positive ``<r, P^{-1} r>`` (the preconditioner is not numerically SPD): ``p`` is then
    the last iterate (or ``b`` if none), as plain CG returns it. With ``truncate``, non-positive
    curvature after the first iteration instead ends the solve with its iterate and ``ok``
    (Steihaug's truncated CG): a preconditioner that weights the directions of least curvature
    meets, near a singular optimum, directions whose curvature is below rounding."""
    x = np.zeros_like(b)
    r = b.copy()
    z = r if precondition is None else precondition(r)
    p = z.copy()
    rz = float(r @ z)
    stop = (rtol * np.linalg.norm(b)) ** 2
    if not rz > 0:
        return b.copy(), 0, precondition is None
    for k in range(max_iter):
        Mp = apply_M(p)
        pMp = float(p @ Mp)
        if not pMp > 0:
            return (x if k else b.copy()), k + 1, precondition is None or (truncate and k > 0)
        a = rz / pMp
        x += a * p
        r -= a * Mp
        rr = float(r @ r)
        if rr <= stop:
            return x, k + 1, True
        z = r if precondition is None else precondition(r)
        rz_new = float(r @ z)
        if not rz_new > 0:
            return x, k + 1, precondition is None
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, max_iter, True


#: semismooth regularizers (``psi''`` jumps: quadratic): after :data:`SEMISMOOTH_PATIENCE` Newton
#: steps without halving ``||grad||``, the dense step's Levenberg-Marquardt shift is at least
#: ``min(SEMISMOOTH_SHIFT, ||grad||)`` times the mean curvature ``tr(-Hess D) / m``. The
#: generalized Hessian has no curvature along directions that only move eigenvalues outside the
#: support of ``X``; steps there overshoot by up to 10^4 and the last eps stage of quadratic QWD
#: ``n = 32`` cycled between ``||grad|| ~ 2e-4`` and ``2e-3`` for 75 steps. Measured in
#: benchmarks/results/semismooth_shift.md
SEMISMOOTH_SHIFT = 1e-3
SEMISMOOTH_PATIENCE = 2


def newton_cg_maximize(
    oracle: DualOracle,
    x0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    time_limit: float | None = None,
    callback: Callable[[int, float, float], None] | None = None,
    stop_above: float | None = None,
    cg_max_iter: int = 250,
    hessian: str = "auto",
    regularization: float = 0.0,
    products: str = "auto",
    preconditioner: str = "auto",
    scaling: bool = True,
    eager_preconditioner: bool = False,
) -> RunOutcome:
    """Maximize ``D_eps`` from ``x0`` by (regularized) Newton (same contract as the L-BFGS
    drivers).

    The step solves ``(-Hess D + mu I) p = grad D`` with ``mu = regularization * ||grad D||``
    (a Levenberg-Marquardt shift: at small eps the Hessian of a degenerate problem is singular
    to working precision, and the shift keeps the step bounded while vanishing at the optimum).
    ``hessian="dense"`` forms ``-Hess D`` (:meth:`DualOracle.hessian_matrix`) and factors it;
    ``"cg"`` runs conjugate gradients on Hessian-vector products; ``"auto"`` takes the dense
    form when :meth:`DualOracle.dense_hessian_fits`. ``products`` chooses CG's Hessian-vector
    products (:meth:`DualOracle.hessian_operator`: ``"auto"``, ``"full"``, ``"low_rank"``).
    ``preconditioner``: ``"marginal"`` preconditions CG with the marginals' Kubo-Mori metrics
    (:mod:`cvxqreg.solvers.preconditioner`; in closed form where the rows are coordinates of
    the marginals, ``"marginal_dense"`` always as a factored ``m x m`` matrix) where the problem
    has that structure (plain CG elsewhere); ``"pauli"`` with the Jordan approximation of the
    Hessian on Pauli rows (:mod:`cvxqreg.solvers.pauli_preconditioner`); ``"none"`` runs plain
    CG; ``"auto"`` is ``"marginal"`` where it applies, else ``"pauli"`` once a plain CG solve
    has needed :data:`~cvxqreg.solvers.pauli_preconditioner.START_PRODUCTS` products. Plain CG
    serves the rest
    of the run once the preconditioner cannot be factored, once preconditioned CG meets
    non-positive curvature (that step is recomputed by plain CG), or after :data:`PCG_PATIENCE`
    preconditioned steps without halving the gradient norm. ``scaling``: after a Newton step
    that left ``||grad||`` above :data:`SCALING_TRIGGER` of its value, try the marginal scaling
    steps (:func:`cvxqreg.solvers.scaling.marginal_scaling`, coupling problems only) and keep
    the first that raises ``D`` and lowers ``||grad||`` (counted as an iteration).
    ``eager_preconditioner``: build the preconditioner from the first step even where
    ``"auto"`` would wait for a costly plain CG solve (one-off solves to tight tolerances, such
    as the anchor states of :mod:`cvxqreg.bounds`, where its cost does not matter).
    """
    t0 = time.perf_counter()
    last = {}

    def neg(x):
        ev = oracle.evaluate(x, want_state=False)
        last["x"], last["ev"] = x, ev
        return -ev.value, -ev.grad

    x = np.asarray(x0, dtype=np.float64).copy()
    f, g = neg(x)
    ev = last["ev"]
    history = RunRecord(t0, callback)
    cg_total = n_factor = cg_low_rank = n_low_rank_dense = cg_last = 0
    cg_capped = False  # the last CG solve stopped at its iteration cap
    if hessian not in ("auto", "dense", "cg"):
        raise ValueError(f"hessian must be 'auto', 'dense' or 'cg', got {hessian!r}")
    if products not in HESSIAN_PRODUCTS:
        raise ValueError(f"products must be 'auto', 'full' or 'low_rank', got {products!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    energy_scale = oracle.energy_scale()  # of the Hessian, for the Levenberg-Marquardt shift
    unit = oracle.value_unit()  # |D| below it counts as zero in the rounding tests
    dense = hessian == "dense" or (hessian == "auto" and oracle.dense_hessian_fits())
    build, kind, start = _preconditioner(oracle, preconditioner) if not dense else (None, "", 0)
    if eager_preconditioner:
        start = 0
    n_pcg, fallback = 0, None
    pcg_progress = Progress()  # of the preconditioned steps
    scale = marginal_scaling(oracle) if scaling else None
    n_scaling = 0

    stagnation = Stagnation(STAGNATION_PATIENCE)
    semismooth = SEMISMOOTH_SHIFT > 0 and oracle.reg.semismooth
    progress = Progress()  # of all Newton steps
    t_first = 1.0  # the line search's first trial step (_next_trial_step)
    k = 0
    gn = history.record(0, -f, g)
    while True:
        stop = stop_reason(
            -f, gn, k, tol, max_iter, time.perf_counter() - t0, time_limit, stop_above
        )
        if stop is None:
            stop = stagnation.check(neg, x, g, gn)
        if stop is not None:
            status, msg = stop
            break
        mu = regularization * gn / energy_scale
        low_rank_dense = None
        if not dense and hessian == "auto" and cg_last > 0:
            cost = oracle.low_rank_dense_cost(ev, products)
            # conjugate gradients needed more products than forming the matrix costs, or
            # stopped at the cap short of its tolerance and the matrix is not far dearer
            if cost is not None and (
                cost[1] <= cg_last or (cg_capped and cost[1] <= CAPPED_DENSE_FACTOR * cg_last)
            ):
                low_rank_dense = cost[0]
        if dense or low_rank_dense is not None:
            if dense:
                Hm = oracle.hessian_matrix(ev)
                n_factor += 1
            else:
                Hm = oracle.low_rank_hessian_matrix(ev, low_rank_dense)
                n_low_rank_dense += 1
            if semismooth and progress.since >= SEMISMOOTH_PATIENCE:
                mu = max(mu, float(np.trace(Hm)) / Hm.shape[0] * min(SEMISMOOTH_SHIFT, gn))
            p = _dense_step(Hm, -g, mu)
        else:
            rtol, cap = min(0.5, np.sqrt(gn)), min(cg_max_iter, 2 * x.size + 10)
            M = oracle.hessian_operator(ev, products, oracle.single_products(rtol))
            M_mu = M if mu == 0 else (lambda v, M=M, mu=mu: M(v) + mu * v)
            pre = None
            attempt = build is not None and (n_pcg > 0 or cg_last >= start)
            if attempt:
                pre = build(ev, mu)
            p, n_cg, ok = _pcg(M_mu, -g, rtol, cap, pre, truncate=kind == "pauli")
            if pre is not None:
                n_pcg += 1
                pcg_progress.track(gn)
            if attempt and pre is None:
                fallback = "it could not be formed or factored"
            elif not ok:
                fallback = "non-positive curvature in preconditioned CG"
            elif pre is not None and pcg_progress.since > PCG_PATIENCE:
                fallback = f"{PCG_PATIENCE} steps without halving ||grad||"
            if fallback is not None and build is not None:
                # plain CG for this step (if it failed) and the rest of the run
                build = None
                if not ok:
                    p, n_more = _cg(M_mu, -g, rtol, cap)
                    n_cg += n_more
            cg_total += n_cg
            cg_last = n_cg
            cg_capped = n_cg >= cap
            if oracle.last_products != "full":
                cg_low_rank += n_cg
        dphi0 = float(g @ p)
        step, t_trial, t_first = None, t_first, 1.0
        if not dphi0 < 0:  # not a descent direction: the gradient, from the unit step
            p, dphi0, t_trial = -g, -float(g @ g), 1.0
        # a predicted gain within the rounding of D (line_search's eps_f): judged by the
        # gradient norm instead of by the line search
        if -dphi0 <= value_rounding(f, unit):
            step = _gradient_backtrack(neg, x, f, p, gn, unit)
        if step is None:
            step = line_search(neg, x, f, p, dphi0, t_trial, unit)
            if step is not None and not semismooth:
                t_first = _next_trial_step(step[0], float(step[2] @ p) / dphi0)
        if step is None:  # far from the optimum the Newton model can be poor: gradient step
            p = -g
            step = line_search(neg, x, f, p, -gn * gn, 1.0 / gn, unit)
        if step is None:
            status, msg = line_search_failed(neg, x, g, gn, tol)
            break
        t, f, g = step
        x = x + t * p
        ev = last["ev"] if np.array_equal(last["x"], x) else oracle.evaluate(x, want_state=False)
        k += 1
        gn_before, gn = gn, history.record(k, -f, g)
        progress.track(gn)
        if scale is not None and gn >= tol and gn > SCALING_TRIGGER * gn_before:
            for d in scale(ev):
                f1, g1 = neg(x + d)
                if f1 < f and np.linalg.norm(g1) < gn:  # D rose and ||grad|| fell: keep it
                    x, f, g = x + d, f1, g1
                    ev = last["ev"]
                    k += 1
                    n_scaling += 1
                    gn = history.record(k, -f, g)
                    break
    work = f"{n_factor} Hessian factorizations" if dense else f"{cg_total} CG products"
    if cg_low_rank:
        work += f", {cg_low_rank} of them low-rank"
    if n_low_rank_dense:
        work += f", {n_low_rank_dense} low-rank Hessian factorizations"
    if n_pcg:
        work += f", {n_pcg} steps preconditioned"
    if n_scaling:
        work += f", {n_scaling} marginal scaling steps"
    if fallback is not None:
        work += f", then plain CG ({kind} preconditioner: {fallback})"
    out = history.outcome(x, status, f"{msg} ({work})", k)
    return dataclasses.replace(out, evaluation=ev)


def _next_trial_step(t: float, ratio: float) -> float:
    """The first trial step of the next Newton line search, after a step ``t`` at which the
    directional derivative kept ``ratio`` of its value at ``t = 0``.

    Where ``ratio >= TRIAL_RATIO_MIN`` the step stopped well short of the maximum along its
    direction, and the next one is tried at the secant's zero of the derivative,
    ``t / (1 - ratio)``, within ``[1, MAX_TRIAL_STEP]``; elsewhere at the Newton step ``1``. On a
    maximum-entropy state far from the maximally mixed start, Newton's unit steps undershoot
    step after step (``ratio`` 0.4-0.6 for ten steps of QT2, 4 qubits: the exponential is far
    from its quadratic model there); near the optimum ``ratio -> 0`` and the unit step, with its
    quadratic convergence, returns."""
    if not TRIAL_RATIO_MIN <= ratio < 1.0:
        return 1.0
    return min(MAX_TRIAL_STEP, max(1.0, t / (1.0 - ratio)))


def _gradient_backtrack(neg, x, f, p, gn: float, unit: float = 1.0):
    """The step ``t p`` (``t = 1, 1/4, 1/16, ...``, down to ``4^-8``) first to lower ``||grad||``
    below ``gn`` without raising the minimized ``f = -D`` beyond its rounding
    (:func:`~cvxqreg.solvers.line_search.value_rounding`), as ``(t, f, g)``, or ``None``.

    Used when the step's predicted gain ``-grad . p`` is below that rounding of ``D``: function
    values can no longer rank the trial points, and the gradient, the stopping criterion, is
    what is left to judge them by. Measured on the
    maximum-entropy state of QT2 (9 qubits, eigenvalues down to 2e-12 of the largest, tol
    1e-11): steps of length 5-1700 along directions of curvature ~1e-12 passed the function
    test at rounding level and sent ``||grad||`` from 1e-11 to 1e-7, nine times in one run.
    """
    t = 1.0
    slack = value_rounding(f, unit)
    for _ in range(9):
        f1, g1 = neg(x + t * p)
        if np.isfinite(f1) and f1 <= f + slack and np.linalg.norm(g1) < gn:
            return t, f1, g1
        t *= 0.25
    return None


def _preconditioner(oracle, choice: str):
    """``(build, kind, start)`` for Newton-CG: ``build(ev, mu)`` returns ``r -> P_mu^{-1} r``
    (or ``None`` when it cannot be formed), ``kind`` names it, and it is first built once a
    plain CG solve has needed ``start`` products; ``(None, "", 0)`` where none applies.
    ``"auto"``: the marginal preconditioner on bipartite marginal problems, else the Pauli one
    on Pauli rows from :data:`~cvxqreg.solvers.pauli_preconditioner.START_PRODUCTS` on."""
    if choice in ("auto", "marginal", "marginal_dense"):
        structure = marginal_structure(oracle)
        if structure is not None:
            form = "dense" if choice == "marginal_dense" else "auto"
            return (
                lambda ev, mu: marginal_preconditioner(structure, oracle, ev, mu, form),
                "marginal",
                0,
            )
    if choice in ("auto", "pauli"):
        structure = pauli_structure(oracle)
        if structure is not None:
            return (
                lambda ev, mu: pauli_preconditioner(structure, oracle, ev, mu),
                "pauli",
                START_PRODUCTS if choice == "auto" else 0,
            )
    return None, "", 0


def _dense_step(Hm: np.ndarray, b: np.ndarray, mu: float) -> np.ndarray:
    """Solve ``(Hm + mu I) p = b`` for a positive semidefinite ``Hm``: Cholesky, or (singular to
    working precision) the eigendecomposition with the eigenvalues below ``m u lambda_max``
    treated as that floor."""
    A = Hm + mu * np.eye(b.size) if mu > 0 else Hm
    # LAPACK potrf/potrs directly: scipy.linalg.cho_factor and cho_solve cost about 18 us more per
    # step, half the step at m = 33 (benchmarks/results/small_overhead.md)
    c, info = scipy.linalg.lapack.dpotrf(A, lower=0, clean=0)
    if info == 0:
        x, info = scipy.linalg.lapack.dpotrs(c, b, lower=0)
        if info == 0:
            return x
    if info < 0:
        raise ValueError(f"LAPACK potrf/potrs rejected argument {-info}")
    w, V = np.linalg.eigh(A)
    floor = max(b.size * np.finfo(float).eps * max(float(w[-1]), 0.0), np.finfo(float).tiny)
    return V @ ((V.T @ b) / np.maximum(w, floor))
