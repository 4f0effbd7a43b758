"""Several PSD variables: block-diagonal lowering, per-block eigh, values and duals written back."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import get_backend
from cvxqreg.errors import UnsupportedModelError
from cvxqreg.lowering import lower
from cvxqreg.operators.blocks import block_eigh
from cvxqreg.regularizers import get_regularizer
from cvxqreg.solvers.dual import DualOracle

from .conftest import rand_herm, rand_state


def scs(problem):
    value = problem.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    assert problem.status == cp.OPTIMAL
    return value


def test_block_eigh_matches_eigh():
    rng = np.random.default_rng(0)
    be = get_backend("numpy")
    sizes = (3, 1, 4)
    W = np.zeros((8, 8), complex)
    o = 0
    for n in sizes:
        W[o : o + n, o : o + n] = rand_herm(rng, n)
        o += n
    lam, U = block_eigh(be, W, sizes)
    assert np.all(np.diff(lam) >= 0)
    np.testing.assert_allclose(lam, np.linalg.eigvalsh(W), atol=1e-13)
    np.testing.assert_allclose((U * lam) @ U.conj().T, W, atol=1e-13)
    np.testing.assert_allclose(U.conj().T @ U, np.eye(8), atol=1e-13)


@pytest.mark.parametrize("p0", [0.5, 0.3])
def test_helstrom_closed_form(p0):
    inst = problems.state_discrimination(2, 3, priors=[p0, 1 - p0], seed=1)
    rho0, rho1 = inst.metadata["states"]
    ref = problems.helstrom_value(rho0, rho1, p0)
    assert inst.reference_value == ref
    res = cvxqreg.solve_exact(inst.problem)
    assert res.status == "optimal" and abs(res.value - ref) < 1e-8
    M0, M1 = inst.metadata["variables"]
    np.testing.assert_allclose(M0.value + M1.value, np.eye(3), atol=1e-8)
    # the optimal POVM projects onto the positive part of p0 rho0 - p1 rho1
    w, V = np.linalg.eigh(p0 * rho0 - (1 - p0) * rho1)
    Pp = V[:, w > 0] @ V[:, w > 0].conj().T
    np.testing.assert_allclose(M0.value, Pp, atol=1e-6)
    for reg in ("von_neumann", "quadratic", "tsallis"):
        r = cvxqreg.solve(inst.problem, eps=1e-4, regularizer=reg)
        assert r.status == "converged"
        assert r.certified_bound >= ref - 1e-9  # a maximization: an upper bound
        assert abs(r.energy - ref) < 1e-3


def test_symmetric_states_closed_form():
    inst = problems.state_discrimination(4, kind="symmetric", seed=3)
    res = cvxqreg.solve_exact(inst.problem)
    assert abs(res.value - inst.reference_value) < 1e-8
    r = cvxqreg.solve(inst.problem, eps=1e-5)
    assert r.status == "converged" and abs(r.energy - inst.reference_value) < 1e-4
    assert r.certified_bound >= inst.reference_value - 1e-9


@pytest.mark.parametrize("seed", [0, 1])
def test_random_discrimination_matches_scs(seed):
    inst = problems.state_discrimination(3, 3, seed=seed)
    L = lower(inst.problem)
    assert L.blocks == (3, 3, 3)
    ref = scs(inst.problem)
    Ms = inst.metadata["variables"]
    ref_M = [M.value.copy() for M in Ms]
    ref_Z = [c.dual_value.copy() for c in inst.problem.constraints[:3]]
    res = cvxqreg.solve_exact(inst.problem, eps_abs=1e-10, eps_rel=1e-10)
    assert abs(res.value - ref) < 1e-9
    for M, Mr in zip(Ms, ref_M, strict=True):
        np.testing.assert_allclose(M.value, Mr, atol=1e-5)
    for c, Zr in zip(inst.problem.constraints[:3], ref_Z, strict=True):
        np.testing.assert_allclose(c.dual_value, Zr, atol=1e-5)
    # the regularized solve through CVXPY fills every variable and dual
    inst.problem.solve(method="cvxqreg", eps=1e-6, tol=1e-8)
    assert inst.problem.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
    assert abs(inst.problem.value - ref) < 1e-4
    np.testing.assert_allclose(sum(M.value for M in Ms), np.eye(3), atol=1e-7)
    for M in Ms:
        assert np.linalg.eigvalsh(M.value).min() > -1e-12
    for c in inst.problem.constraints:
        assert c.dual_value is not None


def test_oracle_block_eigh_agrees_with_full():
    inst = problems.state_discrimination(3, 4, seed=2)
    L = lower(inst.problem)
    full = cvxqreg.LoweredProblem(H=L.H, A=L.A, q=L.q, offset=L.offset, sense=L.sense)
    reg = get_regularizer("von_neumann")
    a = np.random.default_rng(0).normal(size=L.n_rows)
    e1 = DualOracle(L, 1e-2, reg, "numpy").evaluate(a)
    e2 = DualOracle(full, 1e-2, reg, "numpy").evaluate(a)
    assert e1.value == pytest.approx(e2.value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(e1.grad, e2.grad, atol=1e-11)
    np.testing.assert_allclose(e1.X, e2.X, atol=1e-12)


def test_psd_forms_and_real_blocks():
    rng = np.random.default_rng(4)
    A = cp.Variable((2, 2), PSD=True)
    B = cp.Variable((3, 3), symmetric=True)
    C1, C2 = rand_herm(rng, 2, real=True), rand_herm(rng, 3, real=True)
    cons = [0 << 2 * B, cp.trace(A) + cp.trace(B) == 1, A[0, 1] == 0.1]
    prob = cp.Problem(cp.Minimize(cp.trace(C1 @ A) + cp.trace(C2 @ B)), cons)
    L = lower(prob)
    assert L.real and L.blocks == (2, 3)
    ref = scs(prob)
    res = cvxqreg.solve_exact(prob, eps_abs=1e-10, eps_rel=1e-10)
    assert abs(res.value - ref) < 1e-9
    assert A.value.shape == (2, 2) and B.value.shape == (3, 3)
    r = cvxqreg.solve(prob, eps=1e-5)
    assert r.status == "converged" and r.certified_bound <= ref + 1e-9


def test_transport_plan_plus_slack_block():
    """A coupling and a slack block tied by a trace budget: min cost with Tr[pi] + Tr[S] = 2."""
    rng = np.random.default_rng(5)
    n = 2
    pi = cp.Variable((n * n, n * n), hermitian=True)
    S = cp.Variable((2, 2), hermitian=True)
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    Hc = rand_herm(rng, n * n)
    cons = [
        pi >> 0,
        S >> 0,
        cp.partial_trace(pi, [n, n], axis=1) == rho,
        cp.partial_trace(pi, [n, n], axis=0) == sigma,
        cp.trace(pi) + cp.trace(S) == 2,
    ]
    prob = cp.Problem(cp.Minimize(cp.real(cp.trace(Hc @ pi)) + cp.real(S[0, 0])), cons)
    ref = scs(prob)
    res = cvxqreg.solve_exact(prob, eps_abs=1e-10, eps_rel=1e-10)
    assert abs(res.value - ref) < 1e-8
    assert np.trace(S.value).real == pytest.approx(1.0, abs=1e-7)


def test_block_errors():
    X = cp.Variable((2, 2), hermitian=True, name="X")
    R = cp.Variable((2, 2), symmetric=True, name="R")
    v = cp.Variable(2, name="v")
    Y = cp.Variable((2, 2), hermitian=True, name="Y")
    z = cp.Minimize(0)
    cases = [
        (cp.Problem(z, [X >> 0, R >> 0, cp.trace(X) == 1]), "mix real"),
        (cp.Problem(z, [X >> 0, cp.trace(X) + cp.trace(Y) == 1]), "no PSD constraint"),
        (cp.Problem(z, [X >> 0, Y >> 0, X << np.eye(2), cp.trace(X) == 1]), "slack variable"),
        (cp.Problem(z, [X >> 0, Y >> 0, X - Y >> 0, cp.trace(X) == 1]), "slack variable"),
        (cp.Problem(z, [X >> 0, cp.trace(X) == 1, v == 1]), "square PSD matrix"),
    ]
    for prob, hint in cases:
        with pytest.raises(UnsupportedModelError, match=hint):
            lower(prob)


def test_discrimination_arguments():
    from cvxqreg.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        problems.state_discrimination(3, 4, kind="symmetric")
    with pytest.raises(InvalidInputError):
        problems.state_discrimination(2, 2, priors=[0.6, 0.6])


def test_blocks_with_inequalities():
    """Several variables and inequalities together: values and the inequality duals (>= 0)."""
    X = cp.Variable((2, 2), hermitian=True)
    Y = cp.Variable((2, 2), hermitian=True)
    rho = np.array([[0.6, 0.1j], [-0.1j, 0.4]])
    cons = [
        X >> 0,
        Y >> 0,
        X + Y == np.eye(2),
        cp.real(X[0, 0]) <= 0.3,
        cp.real(cp.trace(X)) >= 0.5,
    ]
    prob = cp.Problem(cp.Maximize(cp.real(cp.trace(rho @ X))), cons)
    ref = scs(prob)
    duals = [float(np.real(c.dual_value)) for c in cons[3:]]
    res = cvxqreg.solve_exact(prob, eps_abs=1e-10, eps_rel=1e-10)
    assert abs(res.value - ref) < 1e-9
    for c, d in zip(cons[3:], duals, strict=True):
        assert float(np.real(c.dual_value)) == pytest.approx(d, abs=1e-6)
        assert float(np.real(c.dual_value)) >= -1e-12
    r = cvxqreg.solve(prob, eps=1e-5)
    assert r.status == "converged"
    assert r.certified_bound >= ref - 1e-9 and abs(r.energy - ref) < 1e-4
