"""The eps ladder of continuation: geometric with the ratio ``ladder_ratio`` down to the target,
every drop (the last included) exactly that ratio, the top within a factor of the cost's spread."""

import numpy as np
import pytest

from cvxqreg import DualSolver
from cvxqreg.operators import PartialTrace, Stacked
from cvxqreg.problem import LoweredProblem


def _problem(spread):
    H = np.diag(np.linspace(0.0, spread, 4))
    op = Stacked([PartialTrace((2, 2), 1), PartialTrace((2, 2), 0)])
    q = np.asarray(op.apply(np.eye(4) / 4))
    return LoweredProblem(H, op, q)


@pytest.mark.parametrize("spread", [702.7, 1.0, 3.3e-3])
@pytest.mark.parametrize("eps", [1e-2, 3e-5, 1e-6])
@pytest.mark.parametrize("ratio", [10.0, 4.0])
def test_ladder_is_anchored_at_the_target(spread, eps, ratio):
    P = _problem(spread)
    assert np.isclose(P.cost_spread, spread)
    lad = DualSolver(backend="numpy", ladder_ratio=ratio).ladder(P, eps)
    assert lad[-1] == eps
    if spread <= ratio * eps:
        assert lad == [eps]
        return
    steps = np.array(lad[:-1]) / np.array(lad[1:])
    np.testing.assert_allclose(steps, ratio, rtol=1e-12)
    # the top is the largest eps * ratio^k not above the spread (up to rounding)
    assert lad[0] <= spread * (1 + 1e-8) and lad[0] * ratio > spread


def test_ladder_below_a_warm_start_and_without_continuation():
    P = _problem(702.7)
    s = DualSolver(backend="numpy")
    first = s.ladder(P, 1e-4)
    # a warm start from a stage of a previous ladder continues that ladder
    np.testing.assert_allclose(s.ladder(P, 1e-4, eps0=first[2]), first[3:], rtol=1e-12)
    assert s.ladder(P, 1e-4, eps0=1e-3) == [1e-4]
    assert DualSolver(backend="numpy", continuation=False).ladder(P, 1e-4) == [1e-4]


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
@pytest.mark.parametrize("eliminate", [True, False])
def test_tangent_predicts_the_path_to_second_order(rng, reg, eliminate):
    """The tangent step ``alpha + d eps alpha'`` leaves a gradient O(d eps^2) at the new eps,
    where the last stage's ``alpha`` leaves O(d eps): halving ``d eps`` quarters it."""
    from cvxqreg.regularizers import get_regularizer
    from cvxqreg.solvers.continuation import tangent
    from cvxqreg.solvers.dual import DualOracle

    from .conftest import qot_problem

    P, _, _ = qot_problem(rng, n=3)
    eps = 0.5
    res = DualSolver(reg, backend="numpy", tol=1e-12, continuation=False, eliminate=eliminate)(
        P, eps
    )
    oracle = DualOracle(P, eps, get_regularizer(reg), "numpy", eliminate=eliminate)
    ev = oracle.evaluate(res.alpha)
    assert ev.grad_norm < 1e-10
    da = tangent(oracle, ev)
    errs, plain = [], []
    for h in (0.02, 0.01):
        other = oracle.with_eps(eps * (1 - h))
        errs.append(other.evaluate(res.alpha - eps * h * da).grad_norm)
        plain.append(other.evaluate(res.alpha).grad_norm)
    assert errs[0] < 0.1 * plain[0]
    assert 0.15 < errs[1] / errs[0] < 0.35  # second order: a quarter
    assert 0.4 < plain[1] / plain[0] < 0.6  # first order: a half


def test_tangent_predictor_option_solves_to_the_same_optimum():
    P = _problem(702.7)
    plain = DualSolver(backend="numpy", tol=1e-9)(P, 1e-2)
    tang = DualSolver(backend="numpy", tol=1e-9, tangent_predictor=True)(P, 1e-2)
    assert plain.status == tang.status == "converged"
    assert abs(plain.dual_value - tang.dual_value) < 1e-8


def test_tangent_predictor_without_curvature_keeps_a_sane_start(rng):
    """Only the trace row: the eliminated dual is flat (no curvature, zero gradient), the tangent
    is zero, and the bracket still contains the ground-state energy (a singular solve once gave
    alpha ~ 1e275 and a meaningless bound)."""
    from cvxqreg.operators import Dense

    from .conftest import rand_herm

    H = rand_herm(rng, 6)
    lam0 = float(np.linalg.eigvalsh(H)[0])
    P = LoweredProblem(H, Dense(np.eye(6)[None]), np.array([1.0]))
    r = DualSolver(backend="numpy", tangent_predictor=True)(P, 1e-2)
    assert np.all(np.abs(r.alpha) < 1e3)
    assert r.bracket[0] <= lam0 + 1e-9 and lam0 <= r.bracket[1] + 1e-9
