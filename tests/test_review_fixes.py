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


@pytest.mark.parametrize("eps", [1e4, 1e-9])
@pytest.mark.parametrize("reg", ["entropy", "quadratic"])
def test_extreme_eps_is_finite_and_honest(eps, reg):
    """The log-sum-exp forms keep eps = 1e4 and eps = 1e-9 free of overflow: finite values and
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
