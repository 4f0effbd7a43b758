"""Regressions for review findings: failure reporting, rigorous bounds, input checks."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import cvxqreg
from cvxqreg import InvalidInputError, solve
from cvxqreg.backend import get_backend
from cvxqreg.operators import Dense, PartialTrace, Pauli
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Custom
from cvxqreg.solvers.dual import DualOracle

from .conftest import qot_problem, rand_herm


def infeasible_model():
    X = cp.Variable((2, 2), hermitian=True)
    cons = [X >> 0, cp.trace(X) == 1, cp.real(X[0, 0]) == 2]
    return cp.Problem(cp.Minimize(cp.real(cp.trace(X))), cons), X


@pytest.mark.parametrize("optimizer", ["lbfgs", "newton"])
def test_unbounded_dual_ends_infeasible(optimizer):
    prob, _ = infeasible_model()
    r = solve(prob, 0.1, "quadratic", optimizer=optimizer, continuation=False)
    assert r.status == "infeasible" and not r.converged


def test_cvxpy_never_gets_a_far_from_feasible_point_as_a_solution():
    prob, X = infeasible_model()
    prob.solve(method="cvxqreg", eps=0.1, regularizer="quadratic", optimizer="scipy")
    res = prob.cvxqreg_result
    assert not res.converged
    assert prob.status in ("infeasible", "solver_error", "user_limit")
    if prob.status != "user_limit":
        assert X.value is None


def pure_state_problem(shift):
    """All 15 non-identity Pauli expectations of a pure 2-qubit state fix it: F_0 = Tr[H rho]."""
    rng = np.random.default_rng(3)
    psi = rng.normal(size=4) + 1j * rng.normal(size=4)
    rho = np.outer(psi, psi.conj()) / np.vdot(psi, psi).real
    labels = ["".join(p) for p in itertools.product("IXYZ", repeat=2)]
    op = Pauli(labels)
    q = np.asarray(op.apply(rho))
    H = shift * np.eye(4) + rand_herm(rng, 4)
    return LoweredProblem(H, op, q), float(np.trace(H @ rho).real)


@pytest.mark.parametrize("shift", [0.0, 1e6, -1e9])
@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
def test_certified_bound_is_rigorous_at_large_offsets(shift, reg):
    lp, F0 = pure_state_problem(shift)
    rng = np.random.default_rng(0)
    oracle = DualOracle(lp, 0.01, cvxqreg.get_regularizer(reg), "numpy")
    for _ in range(50):
        ev = oracle.evaluate(rng.normal(size=lp.n_rows) * 10.0 ** rng.uniform(-3, 3))
        assert oracle.certified_lower_bound(ev) <= F0
    r = solve(lp, 1e-3, reg)
    assert r.certified_bound <= F0 and r.bracket[0] <= F0


def test_certificate_without_elimination():
    P, _, _ = qot_problem(np.random.default_rng(1), n=2)
    r = solve(P, 0.5, eliminate=False, optimizer="lbfgs")
    assert np.isfinite(r.certified_bound)


def test_operator_input_checks():
    bad = sp.csr_matrix(np.array([[np.nan] + [0.0] * 7]))
    with pytest.raises(InvalidInputError, match="NaN"):
        Dense(bad, dim=2)
    for scale in (0.0, np.nan, np.inf):
        with pytest.raises(InvalidInputError, match="scale"):
            PartialTrace((2, 2), 0, scale)
    with pytest.raises(InvalidInputError, match="integers"):
        Pauli([(1.5, 0)], n_qubits=1)


def test_auto_backend_equals_numpy_without_gpu():
    if "cupy" in cvxqreg.available_backends():
        pytest.skip("a GPU is present: auto picks CuPy")
    assert get_backend("auto") == get_backend("numpy")


def test_custom_regularizer_without_second_derivative_uses_lbfgs():
    reg = Custom(
        phi_fn=lambda x: 0.5 * x * x,
        psi_fn=lambda t: 0.5 * np.maximum(t, 0) ** 2,
        dpsi_fn=lambda t: np.maximum(t, 0),
        label="quad_no_d2",
    )
    P, _, _ = qot_problem(np.random.default_rng(2), n=2)
    r = solve(P, 0.1, reg)
    ref = solve(P, 0.1, "quadratic")
    assert r.converged and abs(r.dual_value - ref.dual_value) < 1e-9
