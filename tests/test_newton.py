"""The regularized Newton method: dense Hessian, Levenberg-Marquardt shift, continuation
predictor, and the float64-floor stop."""

from __future__ import annotations

import numpy as np
import pytest

import cvxqreg
from cvxqreg import DualSolver, solve
from cvxqreg.operators import Dense
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Quadratic, Tsallis, VonNeumann
from cvxqreg.solvers.continuation import predict
from cvxqreg.solvers.dual import DualOracle
from cvxqreg.solvers.optimize import Stagnation, gradient_noise

from .conftest import qot_problem, rand_herm, rand_state, tomography_problem

REGS = [VonNeumann(), Quadratic(), Tsallis(1.5)]


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("eliminate", [True, False])
@pytest.mark.parametrize("real", [True, False])
def test_dense_hessian_equals_hessian_vector_products(rng, reg, eliminate, real):
    if real:
        D = 5
        rho = rand_state(rng, D, real=True)
        Qs = [np.eye(D)] + [rand_herm(rng, D, real=True) for _ in range(4)]
        q = np.array([np.trace(Q @ rho) for Q in Qs])
        P = LoweredProblem(rand_herm(rng, D, real=True), Dense(np.stack(Qs)), q, real=True)
    else:
        P, _ = tomography_problem(rng, D=5, n_obs=4)
    oracle = DualOracle(P, 0.7, reg, "numpy", eliminate=eliminate)
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    Hm = oracle.hessian_matrix(ev)
    op = oracle.hessian_operator(ev)
    cols = np.column_stack([op(e) for e in np.eye(P.n_rows)])
    np.testing.assert_allclose(Hm, cols, rtol=1e-12, atol=1e-12 * np.abs(cols).max())
    np.testing.assert_array_equal(Hm, Hm.T)
    assert np.linalg.eigvalsh(Hm).min() > -1e-12 * np.abs(Hm).max()  # -Hess D is PSD


def test_dense_hessian_by_finite_differences(rng):
    P, _, _ = qot_problem(rng, n=3)
    oracle = DualOracle(P, 0.5, VonNeumann(), "numpy")
    alpha = rng.normal(size=P.n_rows) * 0.3
    Hm = oracle.hessian_matrix(oracle.evaluate(alpha))
    h = 1e-6
    for v in rng.normal(size=(3, P.n_rows)):
        fd = -(oracle.evaluate(alpha + h * v).grad - oracle.evaluate(alpha - h * v).grad) / (2 * h)
        np.testing.assert_allclose(Hm @ v, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("hessian", ["dense", "cg"])
@pytest.mark.parametrize("regularization", [0.0, 1e-3])
def test_hessian_forms_reach_the_same_optimum(hessian, regularization):
    P, _, _ = qot_problem(np.random.default_rng(3), n=3)
    ref = DualSolver("von_neumann", backend="numpy", tol=1e-9, optimizer="lbfgs")(P, 1e-2)
    r = DualSolver(
        "von_neumann",
        backend="numpy",
        tol=1e-9,
        hessian=hessian,
        regularization=regularization,
    )(P, 1e-2)
    assert ref.converged and r.converged
    assert ("Hessian factorizations" in r.message) == (hessian == "dense")
    assert abs(r.dual_value - ref.dual_value) < 1e-10
    np.testing.assert_allclose(r.X, ref.X, atol=1e-7)


def test_bad_hessian_option():
    P, _, _ = qot_problem(np.random.default_rng(0), n=2)
    with pytest.raises(ValueError, match="hessian must be"):
        DualSolver(backend="numpy", hessian="exact")(P, 1.0)


def test_regularized_newton_on_nearly_rank_deficient_marginals():
    """Regression: the Ising marginals (smallest eigenvalue 5e-5) make the quadratic dual's
    Hessian singular to working precision at small eps. Plain Newton took 739 iterations at
    eps = 1e-6 and did not converge at 1e-9 (||grad|| stuck near 0.85); with the shift it
    converges in a few dozen."""
    lp = cvxqreg.lower(cvxqreg.problems.ising(2).problem)
    for eps in (1e-6, 1e-9):
        r = DualSolver("quadratic", backend="numpy", tol=1e-6)(lp, eps, return_state=False)
        assert r.converged, r.message
        assert r.iterations < 100


def test_predictor_never_worse_than_the_last_stage(rng):
    P, _, _ = qot_problem(rng, n=3)
    s = DualSolver("von_neumann", backend="numpy", tol=1e-8, continuation=False)
    a1, a2 = s(P, 1.0).alpha, s(P, 0.1).alpha
    oracle = DualOracle(P, 0.01, VonNeumann(), "numpy")
    guess = a2 + (a2 - a1) * ((0.01 - 0.1) / (0.1 - 1.0))
    x = predict(oracle, (1.0, a1), (0.1, a2), 0.01)
    v = oracle.evaluate(x).value
    assert v >= oracle.evaluate(a2).value and v >= oracle.evaluate(guess).value
    # on this smooth path the extrapolation wins
    np.testing.assert_array_equal(x, guess)


def test_stagnation_counter():
    s = Stagnation(3)
    assert not any(s.update(g) for g in (1.0, 0.4, 0.1))  # halves each time
    assert [s.update(0.09) for _ in range(3)] == [False, False, True]
    assert not s.update(0.09)  # the count restarts


def test_gradient_noise_is_rounding_level_at_large_eps_and_grows_at_small_eps():
    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(4).problem)
    noise = {}
    for eps in (1.0, 1e-9):
        r = solve(lp, eps, "quadratic", backend="numpy", tol=1e-4)
        oracle = DualOracle(lp, eps, Quadratic(), "numpy")
        g = oracle.evaluate(r.alpha).grad

        def fun(a, oracle=oracle):
            ev = oracle.evaluate(a, want_state=False)
            return ev.value, ev.grad

        noise[eps] = gradient_noise(fun, r.alpha, g)
    assert noise[1.0] < 1e-12
    assert noise[1e-9] > 1e3 * noise[1.0]


def test_precision_limit_reported_with_bracket():
    """Quadratic, eps = 1e-9 on the 5-level transport instance: the gradient's float64 noise
    (~1e-5, measured) is above tol = 1e-8. The solver stops at the floor in seconds, says so, and
    still reports the certified bound and the bracket."""
    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(5).problem)
    r = DualSolver("quadratic", backend="numpy", tol=1e-8, time_limit=60)(lp, 1e-9)
    assert r.status == "precision_limit", r.message
    assert not r.converged
    assert "float64 noise" in r.message
    noise = float(r.message.split("at this point is ")[1].split(" ")[0])
    assert r.grad_norm <= 10 * noise
    lo, hi = r.bracket
    assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
    assert r.certified_bound <= hi
    assert "FLOAT64 FLOOR" in r.summary()
    assert r.time < 30


def test_far_from_the_optimum_is_not_a_floor():
    """Regression: a stagnating run with ||grad|| ~ 0.5 was reported at the float64 floor because
    the noise there exceeded tol; the floor needs ||grad|| within 10x of the noise itself."""
    from cvxqreg.solvers.optimize import precision_limit

    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(5).problem)
    oracle = DualOracle(lp, 1e-9, Quadratic(), "numpy")

    def fun(a):
        ev = oracle.evaluate(a, want_state=False)
        return ev.value, ev.grad

    x = np.zeros(lp.n_rows)
    _, g = fun(x)
    assert np.linalg.norm(g) > 0.1
    assert precision_limit(fun, x, g, float(np.linalg.norm(g)), "test") is None


def test_reachable_tolerance_is_not_called_a_floor():
    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(5).problem)
    r = DualSolver("quadratic", backend="numpy", tol=1e-6)(lp, 1e-6)
    assert r.converged


def test_semismooth_shift_keeps_the_quadratic_optimum(monkeypatch):
    """The damping of stalled semismooth Newton steps (quadratic regularizer,
    ``SEMISMOOTH_SHIFT``) changes the path, not the optimum: the same dual value and state as
    plain Newton, to the tolerance asked."""
    import cvxqreg
    from cvxqreg import problems
    from cvxqreg.solvers import newton

    P = cvxqreg.lower(problems.wasserstein(5).problem)
    solve = DualSolver("quadratic", backend="numpy", tol=1e-9)
    shifts = []
    step = newton._dense_step

    def recording(Hm, b, mu):
        shifts.append(mu / max(float(np.trace(Hm)) / Hm.shape[0], 1e-300))
        return step(Hm, b, mu)

    monkeypatch.setattr(newton, "_dense_step", recording)
    damped = solve(P, 1e-6)  # the shift engages here
    damped_shift = max(shifts)
    monkeypatch.setattr(newton, "SEMISMOOTH_SHIFT", 0.0)
    shifts.clear()
    plain = solve(P, 1e-6)
    # the shift did act: some step's mu, relative to the mean curvature, exceeds every plain one
    assert damped_shift > 2 * max(shifts)
    # both end at tol or at the measured float64 floor, within 1e-7 of stationarity
    for r in (damped, plain):
        assert r.status in ("converged", "precision_limit") and r.grad_norm < 1e-7
    assert abs(damped.dual_value - plain.dual_value) < 1e-9 * max(1.0, abs(plain.dual_value))
    np.testing.assert_allclose(damped.X, plain.X, atol=1e-7)


def test_truncated_pcg_returns_its_iterate_at_non_positive_curvature():
    from cvxqreg.solvers.newton import _pcg

    M = np.diag([1.0, 2.0, -1.0])
    b = np.array([1.0, 1.0, 1.0])
    x, k, ok = _pcg(lambda v: M @ v, b, 1e-12, 10, lambda r: r, truncate=True)
    assert ok and k >= 2 and np.all(np.isfinite(x)) and np.any(x)
    _, _, ok_plain = _pcg(lambda v: M @ v, b, 1e-12, 10, lambda r: r)
    assert not ok_plain  # without truncation: reported, for the caller's fallback


def test_gradient_backtrack_takes_the_first_step_that_lowers_the_gradient():
    from cvxqreg.solvers.newton import _gradient_backtrack

    def neg(y):  # f = exp(y) - y: gradient exp(y) - 1, zero at y = 0
        return float(np.exp(y[0]) - y[0]), np.array([np.exp(y[0]) - 1.0])

    x = np.array([1e-3])
    f0, gn = neg(x)[0], abs(np.exp(1e-3) - 1.0)
    t, f, g = _gradient_backtrack(neg, x, f0, np.array([-40.0]), gn)  # 40x too long
    assert t < 1.0 and abs(g[0]) < gn and f == neg(x + t * np.array([-40.0]))[0]
    assert _gradient_backtrack(neg, x, f0, np.array([1.0]), gn) is None  # uphill

    def tilted(y):  # the gradient norm falls towards y = 1 while f rises far beyond rounding
        return float(y[0]), np.array([abs(1.0 - y[0])])

    assert _gradient_backtrack(tilted, np.zeros(1), 0.0, np.array([1.0]), 1.0) is None


def test_next_trial_step_is_the_secant_estimate_within_its_bounds():
    from cvxqreg.solvers.newton import MAX_TRIAL_STEP, TRIAL_RATIO_MIN, _next_trial_step

    assert _next_trial_step(1.0, 0.25) == pytest.approx(1.0 / 0.75)  # the derivative's zero
    assert _next_trial_step(1.0, 0.9) == MAX_TRIAL_STEP  # capped
    assert _next_trial_step(0.3, 0.5) == 1.0  # a backtracked step: the Newton step again
    for ratio in (0.5 * TRIAL_RATIO_MIN, 0.0, -0.5, 1.0, np.nan):  # near the optimum, or past it
        assert _next_trial_step(1.0, ratio) == 1.0


def test_longer_trial_steps_shorten_newton_on_a_maximum_entropy_state(monkeypatch):
    """QT2 (4 qubits, H = 0): Newton's unit steps from the maximally mixed state undershoot for
    about ten steps (the directional derivative keeps 0.4-0.6 of its value); starting the line
    search at the secant's estimate saves iterations and reaches the same optimum."""
    from cvxqreg import problems
    from cvxqreg.solvers import newton

    P = cvxqreg.lower(problems.tomography("QT2", n_qubits=4).problem)
    solve = DualSolver("von_neumann", backend="numpy", tol=1e-9)
    longer = solve(P, 1e-2)
    monkeypatch.setattr(newton, "TRIAL_RATIO_MIN", 2.0)  # never: the unit step throughout
    unit = solve(P, 1e-2)
    assert longer.converged and unit.converged
    # measured 15 against 18 Newton iterations (16 against 19 evaluations)
    assert longer.iterations <= unit.iterations - 2 and longer.n_evals < unit.n_evals
    assert abs(longer.dual_value - unit.dual_value) <= 1e-10 * max(1.0, abs(unit.dual_value))


def test_rounding_tests_follow_the_dual_scale_at_small_eps():
    """With ``H = 0`` the dual at ``eps`` is the dual at ``1`` scaled (``alpha -> eps alpha``,
    ``D -> eps D``), so Newton's path should not depend on eps. Its rounding tests once measured
    ``|D|`` against ``1``: QT2 (7 qubits, quadratic, tol 1e-6) then took 400 iterations at
    eps = 1e-6 without converging (||grad|| 1.4e-6), 46 at eps = 1e-4; with ``|D|`` below the
    energy scale ``min(1, max(eps, spread))`` counted as zero it converges in 50."""
    from cvxqreg import problems

    P = cvxqreg.lower(problems.tomography("QT2", n_qubits=7).problem)
    solve = DualSolver("quadratic", backend="numpy", tol=1e-6, max_iter=200)
    ref, small = solve(P, 1e-4), solve(P, 1e-6)
    assert ref.converged and small.converged
    assert small.iterations <= 2 * ref.iterations
    # the same state (H = 0: the minimum-norm state with the measured Pauli expectations)
    assert np.linalg.norm(small.X - ref.X) <= 1e-4 * np.linalg.norm(ref.X)
