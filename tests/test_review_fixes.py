"""Regressions for the second review: eps checks, unbounded problems, sweep rows, exact stats."""

from __future__ import annotations

import numpy as np
import pytest

import cvxqreg
from cvxqreg import InvalidInputError
from cvxqreg.solvers.regularized import DualSolver

from .conftest import qot_problem


@pytest.mark.parametrize("eps", [True, False, np.True_, "1e-3", 1e-3 + 0j, None, [1e-3]])
def test_eps_must_be_a_real_number(eps):
    lp, _, _ = qot_problem(np.random.default_rng(0), n=2)
    with pytest.raises(InvalidInputError, match="eps"):
        DualSolver(backend="numpy")(lp, eps)


@pytest.mark.parametrize("eps", [1, np.float32(0.5), np.int64(1), np.float64(0.1), 0.25])
def test_eps_accepts_python_and_numpy_reals(eps):
    lp, _, _ = qot_problem(np.random.default_rng(0), n=2)
    r = DualSolver(backend="numpy")(lp, eps)
    assert r.eps == float(eps) and r.converged, r.message


@pytest.mark.parametrize("eps", [1e6, 1e4, 1e-9, 1e-12])
@pytest.mark.parametrize("reg", ["entropy", "quadratic"])
def test_extreme_eps_is_finite_and_honest(eps, reg):
    """The log-sum-exp forms keep eps from 1e-12 to 1e6 free of overflow: finite values and
    either convergence or the float64 floor with a bracket that holds the exact optimum."""
    lp, _, _ = qot_problem(np.random.default_rng(1), n=2)
    r = DualSolver(reg, backend="numpy", time_limit=60)(lp, eps)
    assert r.status in ("converged", "precision_limit"), (r.status, r.message)
    assert np.isfinite(r.value) and np.isfinite(r.dual_value) and np.isfinite(r.energy)
    assert np.all(np.isfinite(r.alpha)) and np.all(np.isfinite(r.X))
    lo, hi = r.bracket
    assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi
    F0 = cvxqreg.solve_exact(lp, "clarabel").value
    assert lo - 1e-6 <= F0 <= hi + 1e-6, (lo, F0, hi)


def test_sweep_row_without_a_state():
    """A solve that ends without a state (X = None) against a user-supplied reference gives a row
    with nan distances, not a crash."""
    from cvxqreg.solvers.regularized import infeasible_result
    from cvxqreg.sweep import _row

    lp, _, _ = qot_problem(np.random.default_rng(0), n=2)
    ref = cvxqreg.solve_exact(lp, "clarabel")
    res = infeasible_result("none", 0.1, "entropy", 1e-8, 1, lp.n_rows)
    row = _row(res, ref, ref.value)
    assert row.status == "infeasible"
    assert np.isnan(row.state_distance) and np.isnan(row.dual_distance)
    assert np.isnan(row.value_error)


def test_cli_exact_solver_default_comes_from_solve_exact(monkeypatch):
    """The CLI's --reference/--solver defaults and choices are solve_exact's, not restated."""
    import inspect

    from cvxqreg import cli
    from cvxqreg.solvers import exact
    from cvxqreg.sweep import sweep

    assert inspect.signature(sweep).parameters["reference"].default == exact.DEFAULT_SOLVER
    assert inspect.signature(exact.solve_exact).parameters["solver"].default == exact.DEFAULT_SOLVER
    monkeypatch.setattr(exact, "DEFAULT_SOLVER", "CLARABEL")
    parser = cli.build_parser()
    assert parser.parse_args(["sweep", "qot"]).reference == "clarabel"
    assert parser.parse_args(["solve", "qot", "--exact"]).solver == "clarabel"
    # with that default, --solver scs is the explicit choice that --eps rejects
    assert parser.parse_args(["solve", "qot", "--eps", "0.1"]).solver == "clarabel"
    assert parser.parse_args(["batch", "m.py", "--exact"]).solver == "clarabel"


def unbounded_model(sense):
    """min Tr[H X] with H indefinite and one off-diagonal constraint: X = t e_2 e_2^T + ... is
    feasible for every t, so the SDP is unbounded (SCS: "unbounded")."""
    import cvxpy as cp

    H = np.diag([1.0, -1.0, 0.5])
    X = cp.Variable((3, 3), symmetric=True)
    obj = cp.Minimize(cp.trace(H @ X)) if sense == "min" else cp.Maximize(cp.trace(-H @ X))
    return cp.Problem(obj, [X >> 0, X[0, 1] == 0.1]), X, H


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_unbounded_sdp_reported_unbounded_fast(reg, sense):
    """Was: 10000 iterations then "failed" (von Neumann, eps = 1e-3) or "optimal" with the
    regularized value -1000 (quadratic). Now: "unbounded" with -inf (+inf for a Maximize), as
    CVXPY's own solvers say, and a recession direction that is checked here independently."""
    prob, X, H = unbounded_model(sense)
    for eps in (1e-1, 1e-3):
        prob.solve(method="cvxqreg", eps=eps, regularizer=reg)
        res = prob.cvxqreg_result
        assert prob.status == "unbounded" and res.status == "unbounded", res.message
        assert prob.value == (-np.inf if sense == "min" else np.inf)
        assert X.value is None and res.iterations == 0
        R = res.extras["recession_direction"]
        assert np.linalg.eigvalsh(R).min() >= -1e-12 * np.abs(R).max()
        assert np.trace(H @ R) == pytest.approx(-1.0)
        assert abs(R[0, 1]) <= 1e-6


def test_unbounded_lowered_problem_with_random_dense_rows():
    """Reported by another helper: random Dense rows, no trace constraint, gave precision_limit
    with a value of about -9e36. The rows A(X) = <Q_i, X> with Q_i = v_i v_i^T - w_i w_i^T leave
    the PSD direction e e^T (e orthogonal to all v_i, w_i) free, and H = -e e^T + B makes the
    SDP unbounded along it."""
    from cvxqreg.operators import Dense
    from cvxqreg.problem import LoweredProblem

    from .conftest import rand_herm, rand_state

    rng = np.random.default_rng(3)
    D, k = 6, 3
    V = np.linalg.qr(rng.normal(size=(D, D)))[0]
    e, basis = V[:, 0], V[:, 1:]
    Qs = []
    for _ in range(k):
        a, b = basis @ rng.normal(size=D - 1), basis @ rng.normal(size=D - 1)
        Qs.append(np.outer(a, a) - np.outer(b, b))
    X0 = rand_state(rng, D, real=True)
    q = np.array([np.vdot(Q, X0).real for Q in Qs])
    H = rand_herm(rng, D, real=True)
    H = H - (e @ H @ e + 1.0) * np.outer(e, e)  # e^T H e = -1
    lp = LoweredProblem(H, Dense(np.array(Qs)), q, real=True)
    assert lp.trace_value is None
    r = cvxqreg.solve(lp, 1e-3)
    assert r.status == "unbounded" and r.value == -np.inf, (r.status, r.value, r.message)
    R = r.extras["recession_direction"]
    assert np.vdot(H, R).real == pytest.approx(-1.0)
    assert max(abs(np.vdot(Q, R).real) for Q in Qs) <= 1e-6


def test_bounded_sdp_without_trace_still_solved():
    """The probe must not call a bounded SDP without a fixed trace unbounded (H >= 0 here)."""
    import cvxpy as cp

    X = cp.Variable((3, 3), symmetric=True)
    H = np.diag([1.0, 2.0, 0.5])
    prob = cp.Problem(cp.Minimize(cp.trace(H @ X)), [X >> 0, X[0, 1] == 0.1])
    prob.solve(method="cvxqreg", eps=1e-2)
    assert prob.status == "optimal" and np.isfinite(prob.value)


def test_unbounded_in_a_sweep_and_summary():
    """A sweep over an unbounded SDP: every row says "unbounded" (no state, no crash), and the
    summary does not call -inf a last iterate."""
    prob, _, _ = unbounded_model("min")
    out = cvxqreg.sweep(prob, eps=[1e-1, 1e-3], regularizers=["quadratic"], reference="SCS")
    assert out.reference.status == "unbounded"
    assert [r.status for r in out.rows] == ["unbounded", "unbounded"]
    assert all(r.value == -np.inf for r in out.rows)
    assert "UNBOUNDED" in out.results[0].summary()


@pytest.mark.parametrize("seed", [4, 5])
def test_random_dense_rows_without_trace_not_reported_near_optimal(seed):
    """The reported case: random Hermitian Dense rows, no trace constraint, eps = 1e-2 gave
    status precision_limit with values like -2.7e67 (measured before the fix). Clarabel calls
    these SDPs unbounded; so must we, with a recession direction checked here."""
    from cvxqreg.operators import Dense
    from cvxqreg.problem import LoweredProblem

    from .conftest import rand_herm, rand_state

    rng = np.random.default_rng(seed)
    D, k = 5, 4
    Qs = np.array([rand_herm(rng, D) for _ in range(k)])
    X0 = rand_state(rng, D)
    q = np.array([np.vdot(Q, X0).real for Q in Qs])
    H = rand_herm(rng, D)
    lp = LoweredProblem(H, Dense(Qs), q)
    r = cvxqreg.solve(lp, 1e-2)
    assert r.status == "unbounded" and r.value == -np.inf, (r.status, r.value)
    R = r.extras["recession_direction"]
    assert np.linalg.eigvalsh(R).min() >= -1e-12 * np.abs(R).max()
    assert np.vdot(H, R).real == pytest.approx(-1.0)
    assert max(abs(np.vdot(Q, R)) for Q in Qs) <= 1e-6


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # L-BFGS at 1e67
def test_state_check_catches_what_the_probe_misses(monkeypatch):
    """Without the probe, the final state itself is tested: the reported precision_limit at
    -2.7e67 (seed 4, eps = 1e-2) becomes "unbounded"; an overflowing dual says why it failed."""
    from cvxqreg.operators import Dense
    from cvxqreg.problem import LoweredProblem

    from .conftest import rand_herm, rand_state

    monkeypatch.setattr(DualSolver, "_recession_certificate", lambda self, problem: None)
    rng = np.random.default_rng(4)
    Qs = np.array([rand_herm(rng, 5) for _ in range(4)])
    q = np.array([np.vdot(Q, rand_state(rng, 5)).real for Q in Qs])
    lp = LoweredProblem(rand_herm(rng, 5), Dense(Qs), q)
    r = cvxqreg.solve(lp, 1e-2)
    assert r.status == "unbounded" and r.value == -np.inf and r.iterations > 0, r.status
    R = r.extras["recession_direction"]
    assert np.vdot(lp.H, R).real == pytest.approx(-1.0)
    assert max(abs(np.vdot(Q, R)) for Q in Qs) <= 1e-6 * np.linalg.norm(Qs[0])

    prob, _, _ = unbounded_model("min")
    r = cvxqreg.solve(prob, 1e-3, max_iter=50)
    assert r.status in ("unbounded", "failed"), r.status
    if r.status == "failed":
        assert "probably unbounded" in r.message
