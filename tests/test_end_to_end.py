"""From a CVXPY model to exact and regularized answers: the public API end to end."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvxqreg
from cvxqreg import InfeasibleDataError, problems

from .conftest import rand_herm, rand_state


def qot_model(rng, n=2, extra=None):
    D = n * n
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    H = rand_herm(rng, D)
    X = cp.Variable((D, D), hermitian=True)
    cons = [
        X >> 0,
        cp.partial_trace(X, [n, n], axis=1) == rho,
        cp.partial_trace(X, [n, n], axis=0) == sigma,
    ]
    if extra is not None:
        cons.append(cp.trace(X) == extra)
    return cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons), X


def test_solve_exact_agrees_with_direct_scs(rng):
    prob, X = qot_model(rng, n=3)
    direct = prob.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200000)
    X_direct = X.value.copy()
    res = cvxqreg.solve_exact(prob)
    assert res.converged, res.summary()  # measured accuracy, not the status string
    assert abs(res.value - direct) < 1e-6
    assert np.abs(res.X - X_direct).max() < 1e-4
    # the recovery wrote the answer back into the user's problem
    assert abs(prob.value - res.value) < 1e-12
    np.testing.assert_allclose(X.value, res.X, atol=1e-12)
    assert res.dual_residual < 1e-6 and res.primal_residual < 1e-6


@pytest.mark.parametrize("a,b,hbar", [(1.0, 0.5, 1.0), (1.5, 0.5, 0.5), (2.0, 1.0, 1.0)])
def test_cgp_equal_masses_exact_value(a, b, hbar):
    inst = problems.two_point(a, b, hbar)
    res = cvxqreg.solve_exact(inst.problem)
    assert res.converged, res.summary()
    assert abs(res.value - (a - b) ** 2) < 1e-6 * (1 + (a - b) ** 2)


def test_cgp_unequal_masses_cheaper_than_classical():
    inst = problems.two_point(1.0, 1.0, 1.0, eta=0.5)
    res = cvxqreg.solve_exact(inst.problem, "CLARABEL")
    classical = 2 * 0.5 * 1.0**2
    assert res.value < classical - 0.1


def test_dependent_trace_constraint(rng):
    prob, _ = qot_model(rng, extra=1.0)
    assert cvxqreg.solve_exact(prob).converged
    bad, _ = qot_model(rng, extra=2.0)
    with pytest.raises(InfeasibleDataError):
        cvxqreg.lower(bad)  # the lowering has no status to report
    # every solve entry point reports the status instead (and writes it into the problem)
    assert cvxqreg.solve_exact(bad).status == "infeasible" and bad.status == "infeasible"
    r = cvxqreg.solve(bad, eps=0.1)
    assert r.status == "infeasible" and "trace" in r.message and bad.status == "infeasible"
    assert bad.solve(method="cvxqreg", eps=0.1) == np.inf and bad.status == "infeasible"


def test_cvxpy_solve_method(rng):
    prob, X = qot_model(rng, n=2)
    value = prob.solve(method="cvxqreg", eps=0.05, regularizer="quadratic", tol=1e-8)
    res = prob.cvxqreg_result
    assert isinstance(res, cvxqreg.RegularizedResult) and res.converged
    assert value == prob.value  # CVXPY's convention: solve() returns the optimal value
    np.testing.assert_allclose(X.value, res.X, atol=1e-12)
    assert abs(prob.value - res.energy) < 1e-12  # the model's objective at X_eps
    assert abs(prob.objective.value - res.energy) < 1e-9
    for c in prob.constraints[1:]:
        assert c.dual_value is not None
    with pytest.raises(cvxqreg.InvalidInputError, match="eps"):
        prob.solve(method="cvxqreg")


def test_zero_temperature_approach_on_cgp():
    """Tr[H X_eps] approaches the SCS value as eps decreases (equal masses: (a - b)^2)."""
    inst = problems.two_point(1.5, 0.5, 1.0)
    lowered = cvxqreg.lower(inst.problem)
    F0 = cvxqreg.solve_exact(lowered).value
    errs = []
    alpha = None
    for eps in (1.0, 0.1, 0.01, 0.001):
        r = cvxqreg.solve(lowered, eps, alpha0=alpha, tol=1e-9)
        assert r.converged
        alpha = r.alpha
        errs.append(abs(r.energy - F0))
        assert r.certified_bound <= F0 + 1e-6
        assert r.bracket[0] - 1e-6 <= F0 <= r.bracket[1] + 1e-6
    assert errs[-1] < 1e-5 and errs[0] > errs[-1]


def test_maximize_sign_convention(rng):
    """A Maximize reports the maximum; certified bounds become upper bounds."""
    n = 2
    D = n * n
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    H = rand_herm(rng, D)
    X = cp.Variable((D, D), hermitian=True)
    cons = [
        X >> 0,
        cp.partial_trace(X, [n, n], axis=1) == rho,
        cp.partial_trace(X, [n, n], axis=0) == sigma,
    ]
    prob_max = cp.Problem(cp.Maximize(cp.real(cp.trace(H @ X)) + 3.0), cons)
    exact = cvxqreg.solve_exact(prob_max)
    direct = cp.Problem(cp.Maximize(cp.real(cp.trace(H @ X)) + 3.0), cons).solve(solver=cp.CLARABEL)
    assert abs(exact.value - direct) < 1e-5
    reg = cvxqreg.solve(prob_max, eps=1e-3, tol=1e-8)
    assert reg.converged
    assert reg.certified_bound >= exact.value - 1e-6  # an upper bound for a maximization
    assert abs(reg.energy - exact.value) < 1e-2


def test_cvxpy_method_status_mapping():
    X = cp.Variable((2, 2), hermitian=True)
    Xp = np.array([[0, 1], [1, 0]])
    Zp = np.diag([1.0, -1.0])
    cons = [X >> 0, cp.trace(X) == 1, cp.real(cp.trace(Xp @ X)) == 0.8]
    prob = cp.Problem(
        cp.Minimize(0 * cp.real(cp.trace(X))), cons + [cp.real(cp.trace(Zp @ X)) == 0.8]
    )
    prob.solve(method="cvxqreg", eps=0.1)
    res = prob.cvxqreg_result
    assert res.status == "infeasible" and prob.status == "infeasible" and X.value is None
    ok = cp.Problem(cp.Minimize(cp.real(cp.trace(Zp @ X))), cons)
    with pytest.warns(UserWarning, match="may be inaccurate"):  # as CVXPY warns on user_limit
        ok.solve(method="cvxqreg", eps=1e-3, max_iter=2, continuation=False)
    res = ok.cvxqreg_result
    assert res.status == "max_iter" and ok.status == "user_limit" and X.value is not None


def test_readme_example_runs(tmp_path, monkeypatch):
    """The Python block of README.md runs as written."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        ns: dict = {}
        exec(compile(code, "README.md", "exec"), ns)
    assert ns["exact"].status == "optimal"
    assert ns["reg"].converged
    assert len(ns["table"].rows) == 8


_CGP = {}


def _cgp_lowered():
    if "lp" not in _CGP:
        _CGP["lp"] = cvxqreg.lower(problems.two_point(1.5, 0.5, 1.0).problem)
    return _CGP["lp"]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
    eps=st.floats(1e-9, 1e4),
    reg=st.sampled_from(["von_neumann", "quadratic", "tsallis:1.5"]),
)
def test_certified_bound_never_exceeds_closed_form(seed, scale, eps, reg):
    """At any alpha (not only optima) the certified bound is below F_0 = (a - b)^2 = 1."""
    from cvxqreg.solvers.dual import DualOracle

    lp = _cgp_lowered()
    oracle = DualOracle(lp, eps, cvxqreg.get_regularizer(reg), "numpy")
    alpha = np.random.default_rng(seed).normal(size=lp.n_rows) * scale
    ev = oracle.evaluate(alpha)
    assert lp.user_value(oracle.certified_lower_bound(ev)) <= 1.0 + 1e-9 * (1 + scale)
