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
    plain = DualSolver(backend="numpy", tol=1e-9, tangent_predictor=False)(P, 1e-2)
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


def test_every_intermediate_stage_reduces_its_gradient():
    """``stage_reduction``: from the second stage on, each intermediate stage ends with
    ``||grad||`` at most a tenth of its warm start's (or at ``tol``), read off the history (whose
    first entry per stage is the warm start). On Ising N = 2 at eps = 1e-9 the stages without
    it passed on a start that already met ``stage_tol`` but lay far out along a flat direction,
    and with the tangent warm start the last stage stalled (127 iterations, ||grad|| = 1.2)."""
    import cvxqreg
    from cvxqreg import problems

    P = cvxqreg.lower(problems.ising(2).problem)
    r = DualSolver(backend="numpy", tol=1e-6)(P, 1e-9)
    assert r.status == "converged" and r.grad_norm < 1e-6
    h = r.history
    stages = [np.flatnonzero(h.eps == e) for e in dict.fromkeys(h.eps.tolist())]
    assert len(stages) > 3
    for idx in stages[1:-1]:
        start, end = h.grad_norm[idx[0]], h.grad_norm[idx[-1]]
        assert end <= max(1e-6, 0.1 * start) * (1 + 1e-12)
    lo, hi = r.bracket
    assert lo <= hi


def test_max_iter_counts_the_iterations_of_all_stages():
    """The iteration cap is over the whole ladder: a ladder that reaches it in an intermediate
    stage stops there, reports ``max_iter`` and the gradient at the target eps (before, every
    stage was granted at least one iteration, so ``max_iter=2`` ran 8 and converged)."""
    P = _problem(702.7)
    full = DualSolver(backend="numpy")(P, 1e-3)
    assert full.converged and full.iterations > 2
    r = DualSolver(backend="numpy", max_iter=2)(P, 1e-3)
    assert r.status == "max_iter" and r.iterations <= 2
    assert "continuation stages]" in r.message
    # the gradient reported is the one at the target eps, not that of the stage it stopped in
    from cvxqreg.regularizers import get_regularizer
    from cvxqreg.solvers.dual import DualOracle

    target = DualOracle(P, 1e-3, get_regularizer("von_neumann"), "numpy").evaluate(r.alpha)
    g = float(np.linalg.norm(P.projected_gradient(target.alpha, target.grad)))
    assert np.isclose(r.grad_norm, g, rtol=1e-8) and f"{g:.3e}" in r.message
    # the value and bounds are those of the last iterate at the target eps: still a bracket
    assert r.bracket[0] <= full.dual_value + 1e-9


def test_a_primed_evaluation_is_handed_over_once():
    """``DualOracle.prime``: the next evaluation at that alpha returns it without a new
    eigendecomposition; any other evaluation clears it."""
    from cvxqreg.regularizers import get_regularizer
    from cvxqreg.solvers.dual import DualOracle

    P = _problem(3.0)
    o = DualOracle(P, 0.1, get_regularizer("von_neumann"), "numpy")
    a = np.arange(P.n_rows, dtype=float) * 0.1
    ev = o.evaluate(a, want_state=False)
    n = o.n_evals
    o.prime(a, ev)
    assert o.evaluate(a.copy(), want_state=False) is ev and o.n_evals == n
    again = o.evaluate(a, want_state=False)  # handed over once only
    assert again is not ev and o.n_evals == n + 1
    o.prime(a, ev)
    assert o.evaluate(a + 1.0, want_state=False) is not ev  # another alpha: a new evaluation
    assert o.evaluate(a, want_state=False) is not ev  # and the primed one was dropped
    o.prime(a, ev)  # without a state, a caller asking for the state gets a new evaluation
    with_state = o.evaluate(a)
    assert with_state is not ev and with_state.X is not None
    o.prime(a, ev)  # another eps: the same problem's oracle there does not take it over
    assert o.with_eps(0.2).evaluate(a, want_state=False) is not ev
    o.eps = 0.2
    assert o.evaluate(a, want_state=False) is not ev
