"""Affine inequalities: lowering, exact solve, bound-constrained regularized dual, CVXPY duals."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.errors import InfeasibleDataError, InvalidInputError
from cvxqreg.lowering import lower
from cvxqreg.solvers.regularized import DualSolver

from .conftest import rand_herm


def random_model(seed, D=4, k=3, real=False):
    """min Tr[H X], Tr X = 1, k upper bounds Re Tr[P_j X] <= u_j, one lower bound on P_0 and one
    two-sided window on an observable B, written as users write them."""
    rng = np.random.default_rng(seed)
    X = cp.Variable((D, D), symmetric=True) if real else cp.Variable((D, D), hermitian=True)

    def lin(M):  # CVXPY cannot take cp.real of a real expression: leave it out there
        e = cp.trace(M @ X)
        return e if real else cp.real(e)

    P = [rand_herm(rng, D, real) for _ in range(k)]
    B = rand_herm(rng, D, real)
    q_b = float(np.trace(B).real / D)
    cons = [X >> 0, cp.trace(X) == 1]
    cons += [lin(p) <= 0.1 for p in P]
    cons += [lin(P[0]) >= -0.3, lin(B) - q_b <= 0.2, lin(B) - q_b >= -0.2]
    H = rand_herm(rng, D, real)
    return cp.Problem(cp.Minimize(lin(H)), cons), X


def direct(problem):
    value = problem.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    assert problem.status == cp.OPTIMAL
    duals = [np.asarray(c.dual_value, dtype=complex) for c in problem.constraints[1:]]
    return value, duals


def test_lowering_marks_inequality_rows():
    prob, _ = random_model(0)
    L = lower(prob)
    assert L.has_inequalities
    assert L.n_rows == 1 + 3 + 3
    assert int(L.inequality.sum()) == 6  # the two-sided window gives two rows
    # the trace direction uses the equality row only
    c = L.trace_direction
    assert c is not None and np.all(c[L.inequality] == 0)
    assert L.trace_value == pytest.approx(1.0, abs=1e-12)
    ub = L.dual_upper_bounds()
    assert np.all(ub[L.inequality] == 0) and np.all(np.isinf(ub[~L.inequality]))
    assert "inequalities" in L.describe()


def test_lowered_inequality_rows_read_as_le():
    """`>=` becomes A(X)_i <= q_i with the row negated: the lowered residual is the violation."""
    X = cp.Variable((2, 2), hermitian=True)
    Z = np.diag([1.0, -1.0])
    prob = cp.Problem(cp.Minimize(0), [X >> 0, cp.trace(X) == 1, cp.real(cp.trace(Z @ X)) >= 0.5])
    L = lower(prob)
    X0 = np.diag([0.6, 0.4])  # <Z> = 0.2 < 0.5: violated by 0.3
    assert np.abs(L.residual(X0)).max() == pytest.approx(0.3, abs=1e-14)
    X1 = np.diag([0.9, 0.1])  # <Z> = 0.8: inside
    assert np.abs(L.residual(X1)).max() == pytest.approx(0.0, abs=1e-14)


def test_zero_inequality_rows():
    X = cp.Variable((2, 2), hermitian=True)
    ok = [X >> 0, cp.trace(X) == 1]
    L = lower(cp.Problem(cp.Minimize(0), ok + [cp.real(cp.trace(X - X)) <= 1]))
    assert not L.has_inequalities  # 0 <= 1 always: dropped
    with pytest.raises(InfeasibleDataError, match="0 <= -1"):
        lower(cp.Problem(cp.Minimize(0), ok + [cp.real(cp.trace(X - X)) <= -1]))


def test_inequality_mask_is_checked():
    L = lower(random_model(0)[0])
    with pytest.raises(InvalidInputError, match="boolean mask"):
        cvxqreg.LoweredProblem(H=L.H, A=L.A, q=L.q, inequality=np.ones(3))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("real", [False, True])
def test_exact_matches_cvxpy_values_and_duals(seed, real):
    prob, X = random_model(seed, real=real)
    ref, ref_duals = direct(prob)
    X_ref = X.value.copy()
    res = cvxqreg.solve_exact(prob, eps_abs=1e-10, eps_rel=1e-10)
    assert res.status == "optimal"
    assert res.primal_residual < 1e-9 and res.dual_residual < 1e-9
    assert abs(res.value - res.dual_value) < 1e-9
    assert abs(res.value - ref) < 1e-10 * (1 + abs(ref))
    np.testing.assert_allclose(X.value, X_ref, atol=1e-5)
    L = lower(prob)
    assert np.all(res.alpha[L.inequality] <= 1e-9)  # sign-constrained multipliers
    for c, d in zip(prob.constraints[1:], ref_duals, strict=True):
        np.testing.assert_allclose(np.asarray(c.dual_value, dtype=complex), d, atol=1e-6)
        if type(c).__name__ == "Inequality":
            assert float(np.real(c.dual_value)) >= -1e-9  # CVXPY: nonnegative


def test_exact_matches_scs_direct():
    prob, _ = random_model(3)
    ref = prob.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)
    res = cvxqreg.solve_exact(prob)
    assert res.status == "optimal"
    assert abs(res.value - res.dual_value) < 1e-8
    assert abs(res.value - ref) < 1e-7 * (1 + abs(ref))


@pytest.mark.parametrize("regularizer", ["von_neumann", "quadratic", "tsallis"])
@pytest.mark.parametrize("seed", [0, 1])
def test_regularized_kkt_and_bounds(regularizer, seed):
    prob, _ = random_model(seed)
    ref, _ = direct(prob)
    L = lower(prob)
    eps = 1e-3
    r = cvxqreg.solve(L, eps=eps, regularizer=regularizer)
    assert r.status == "converged", r.message
    # dual feasibility (signs), KKT residual, strong duality at the returned pair
    assert np.all(r.alpha[L.inequality] <= 0)
    pg = L.projected_gradient(r.alpha, L.q - L.A.apply(r.X))
    assert np.linalg.norm(pg) < r.tol
    assert np.linalg.norm(L.residual(r.X)) < r.tol  # every inequality holds within tol
    assert abs(r.value - r.dual_value) < 1e-6
    # weak duality: the certified bound is below the exact optimum; the bracket contains it
    assert r.certified_bound <= ref + 1e-9
    lo, hi = r.bracket
    assert lo <= ref + 1e-9 and ref <= hi + 1e-5
    assert abs(r.energy - ref) < 10 * eps


@pytest.mark.parametrize("optimizer", ["newton", "scipy"])
@pytest.mark.parametrize("hessian", ["dense", "cg"])
def test_bounded_drivers_reach_tight_tolerance(optimizer, hessian):
    """Projected Newton (dense or CG Hessian) and L-BFGS-B on the box: the KKT residual below
    tol, dual feasible signs, and the energy within eps-scale of the exact value."""
    prob, _ = random_model(7)
    ref, _ = direct(prob)
    L = lower(prob)
    eps = 1e-4
    r = DualSolver(optimizer=optimizer, hessian=hessian, tol=1e-7, backend="numpy")(L, eps)
    assert r.status in ("converged", "precision_limit"), r.message
    assert r.grad_norm < 1e-6 and np.all(r.alpha[L.inequality] <= 0)
    assert r.certified_bound <= ref + 1e-9 and abs(r.energy - ref) < 20 * eps
    name = "projected newton" if optimizer == "newton" else "scipy L-BFGS-B"
    assert r.extras["optimizer"].startswith(name)


def test_certified_bound_uses_sign_projection():
    """An alpha with a positive inequality multiplier is not dual feasible; the certified bound is
    computed at its projection and stays below the exact value."""
    from cvxqreg.regularizers import get_regularizer
    from cvxqreg.solvers.dual import DualOracle

    prob, _ = random_model(4)
    ref, _ = direct(prob)
    L = lower(prob)
    orc = DualOracle(L, 1e-2, get_regularizer("von_neumann"), "numpy")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=L.n_rows) * 5
        assert orc.certified_lower_bound(orc.evaluate(a)) <= ref - L.offset + 1e-9


def test_cvxpy_method_sets_inequality_duals():
    prob, X = random_model(5)
    ref, ref_duals = direct(prob)
    prob.solve(method="cvxqreg", eps=1e-5, tol=1e-8)
    assert prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    assert abs(prob.value - ref) < 1e-4
    for c, d in zip(prob.constraints[1:], ref_duals, strict=True):
        if type(c).__name__ == "Inequality":
            assert float(np.real(c.dual_value)) >= 0.0
        np.testing.assert_allclose(np.asarray(c.dual_value, dtype=complex), d, atol=5e-3)


def test_tomography_intervals_instance():
    inst = problems.tomography_intervals(2, shots=1000, seed=0)
    md = inst.metadata
    assert inst.n_constraints == 1 + 2 * len(md["labels"])
    assert md["truth_inside"]
    assert np.all(md["lower"] <= md["estimates"]) and np.all(md["estimates"] <= md["upper"])
    assert md["halfwidth"] == pytest.approx(problems.hoeffding_halfwidth(1000, 8, 0.95))
    L = lower(inst.problem)
    assert L.A.describe().startswith("Pauli(")  # inequality rows keep the Pauli structure
    ref = inst.problem.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)
    res = cvxqreg.solve_exact(inst.problem)
    assert abs(res.value - ref) < 1e-7
    # the generating state is feasible: the worst-case fidelity is at most its fidelity
    assert res.value <= md["truth_fidelity"] + 1e-8
    r = cvxqreg.solve(inst.problem, eps=1e-4)
    assert r.status == "converged"
    assert r.certified_bound <= res.value + 1e-7 and abs(r.energy - res.value) < 1e-3


def test_tomography_intervals_arguments():
    with pytest.raises(InvalidInputError):
        problems.tomography_intervals(2, confidence=1.0)
    with pytest.raises(InvalidInputError):
        problems.tomography_intervals(2, objective="energy")
    with pytest.raises(InvalidInputError):
        problems.tomography_intervals(1, n_measurements=4)


def test_floor_check_does_not_flip_bounds():
    """Regression: the float64-floor check perturbs alpha at rounding level; a multiplier at its
    bound must keep its bound status there, or the measured 'noise' is a whole gradient entry and
    a slow phase far from the optimum is misreported as precision_limit (seen at ||pg|| = 2.6)."""
    inst = problems.tomography_intervals(3, n_measurements=63, shots=10_000)
    L = lower(inst.problem)
    r = DualSolver(backend="numpy")(L, 1e-2)
    assert r.status == "converged", r.message
    assert r.grad_norm < 1e-6
