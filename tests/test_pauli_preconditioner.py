"""The Pauli preconditioner: the expectation table and Jordan matrix of Pauli rows against brute
force, its order against the exact Hessian, and Newton-CG with it (same optimum, fewer products)."""

import re

import numpy as np
import pytest

import cvxqreg
from cvxqreg import DualSolver, problems
from cvxqreg.operators import Dense, Pauli
from cvxqreg.operators.stacked import Selected
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Quadratic, VonNeumann
from cvxqreg.solvers.dual import DualOracle
from cvxqreg.solvers.pauli_preconditioner import (
    pauli_preconditioner,
    pauli_structure,
)
from cvxqreg.solvers.preconditioner import projected_inverse

from .conftest import BACKENDS


def _herm(rng, D, complex_=True):
    Y = rng.normal(size=(D, D)) + (1j * rng.normal(size=(D, D)) if complex_ else 0.0)
    return Y + Y.conj().T


def _rows(op):
    """The row matrices Q_k = c_k P_k, dense."""
    return [op.adjoint(np.eye(op.n_rows)[k]) for k in range(op.n_rows)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("complex_", [True, False])
def test_expectation_table_is_every_pauli_expectation(n, complex_):
    rng = np.random.default_rng(n)
    D = 1 << n
    Y = _herm(rng, D, complex_)
    every = Pauli([(x, z) for x in range(D) for z in range(D)], n)
    brute = np.array([np.trace(Y @ Q).real for Q in _rows(every)]).reshape(D, D)
    assert np.allclose(every.expectation_table(Y), brute, atol=1e-12 * D * D)


@pytest.mark.parametrize("complex_", [True, False])
def test_jordan_matrix_is_the_symmetrized_product(complex_):
    rng = np.random.default_rng(7)
    n, D, K = 4, 16, 30
    strings = [tuple(int(v) for v in s) for s in rng.integers(0, D, size=(K, 2))]
    op = Pauli(strings, n, coefficients=rng.normal(size=K))
    Y = _herm(rng, D, complex_)
    Qs = _rows(op)
    brute = np.array([[np.trace(Qk @ (Y @ Ql + Ql @ Y)).real / 2 for Ql in Qs] for Qk in Qs])
    assert np.allclose(op.jordan_matrix(Y), brute, atol=1e-12 * np.abs(brute).max())
    rows = np.array([3, 0, 17, 29, 5])
    assert np.allclose(op.jordan_matrix(Y, rows), brute[np.ix_(rows, rows)], atol=1e-11)
    assert np.allclose(op.jordan_matrix(Y), brute, atol=1e-11)  # cache keyed by the rows


def _oracle(kind, n, eps, reg, eliminate="auto"):
    lp = cvxqreg.lower(problems.tomography(kind, n_qubits=n).problem)
    return lp, DualOracle(lp, eps, reg, "numpy", eliminate=eliminate)


def _jordan(oracle, ev):
    g = oracle.reg.d2psi(ev.lam / oracle.eps)
    Y = (ev.U * g) @ ev.U.conj().T
    return oracle.A.jordan_matrix(Y) / oracle.eps


@pytest.mark.parametrize("kind", ["QT1", "QT2"])
def test_jordan_matrix_bounds_the_von_neumann_hessian(kind):
    """Logarithmic mean <= arithmetic mean: P - (-Hess D) is positive semidefinite, and equal
    to it at the maximally mixed state (constant curvatures)."""
    lp, oracle = _oracle(kind, 3, 0.3, VonNeumann(), eliminate=False)
    rng = np.random.default_rng(1)
    for alpha in (np.zeros(lp.n_rows), rng.normal(size=lp.n_rows)):
        ev = oracle.evaluate(alpha)
        H = oracle.hessian_matrix(ev)
        P = _jordan(oracle, ev)
        if oracle.imag_rows is not None:
            keep = ~np.asarray(oracle.imag_rows)
            H, P = H[np.ix_(keep, keep)], P[np.ix_(keep, keep)]
        gap = np.linalg.eigvalsh(P - H)
        assert gap.min() >= -1e-10 * np.abs(P).max()
        if not np.any(alpha):
            assert np.allclose(P, H, atol=1e-12 * np.abs(P).max())
        else:
            assert gap.max() > 1e-3 * np.abs(P).max()  # a genuine approximation away from it


def test_preconditioner_inverts_the_schur_complement_on_the_complement_of_c():
    """At the maximally mixed state P is exact, so P_mu^{-1} solves the eliminated Newton
    system (with its shift) for right-hand sides orthogonal to c and the flat rows."""
    lp, oracle = _oracle("QT2", 3, 0.3, VonNeumann())
    ev = oracle.evaluate(np.zeros(lp.n_rows))
    Hm = oracle.hessian_matrix(ev)  # the eliminated Hessian, flat rows zeroed
    mu = 1e-3
    solve = pauli_preconditioner(pauli_structure(oracle), oracle, ev, mu)
    rng = np.random.default_rng(3)
    b = rng.normal(size=lp.n_rows)
    if oracle.imag_rows is not None:
        b[np.asarray(oracle.imag_rows)] = 0.0
    c = oracle.c / np.linalg.norm(oracle.c)
    b -= c * (c @ b)
    z = solve(b)
    z -= c * (c @ z)
    assert np.allclose(Hm @ z + mu * z, b, atol=1e-9 * np.linalg.norm(b))


def test_projected_inverse_on_kept_rows_and_flat_directions():
    rng = np.random.default_rng(5)
    m, kept = 7, np.array([0, 2, 3, 5, 6])
    B = rng.normal(size=(5, 5))
    P = B @ B.T + np.eye(5)
    N = np.linalg.qr(rng.normal(size=(5, 1)))[0]
    Pi = np.eye(5) - N @ N.T
    solve = projected_inverse(P, kept, m, N, 0.5)
    r = np.zeros(m)
    r[kept] = Pi @ rng.normal(size=5)
    z = solve(r)
    assert np.allclose((Pi @ P @ Pi + 0.5 * np.eye(5)) @ z[kept], r[kept], atol=1e-10)
    r2 = np.zeros(m)
    r2[[1, 4]] = [1.0, -2.0]
    scale = np.trace(Pi @ P @ Pi) / 4
    assert np.allclose(solve(r2)[[1, 4]], [1 / (scale + 0.5), -2 / (scale + 0.5)])
    assert projected_inverse(np.zeros((2, 2)), np.arange(2), 2, np.zeros((2, 0)), 0.0) is None


def test_structure_only_for_pauli_rows():
    lp, oracle = _oracle("QT1", 2, 0.1, VonNeumann())
    assert pauli_structure(oracle) is not None
    sub = LoweredProblem(lp.H, Selected(lp.A, [0, 1, 2, 3]), lp.q[:4])
    st = pauli_structure(DualOracle(sub, 0.1, VonNeumann(), "numpy"))
    assert st is not None and list(st.rows) == [0, 1, 2, 3]
    dense = LoweredProblem(lp.H, Dense(lp.A.matrix(), lp.dim, check_hermitian=False), lp.q)
    assert pauli_structure(DualOracle(dense, 0.1, VonNeumann(), "numpy")) is None


def _products(message):
    return int(re.search(r"(\d+) CG products", message).group(1))


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
def test_newton_with_the_pauli_preconditioner_reaches_the_same_optimum(reg):
    """QT2 (a pure cat state: the optimum's eigenvalues span many orders of magnitude), where
    plain CG needs many products per Newton step."""
    lp = cvxqreg.lower(problems.tomography("QT2", n_qubits=5).problem)
    common = dict(tol=1e-8, hessian="cg", hessian_products="full", backend="numpy")
    plain = DualSolver(reg, preconditioner="none", **common)(lp, 1e-2)
    pre = DualSolver(reg, preconditioner="pauli", **common)(lp, 1e-2)
    auto = DualSolver(reg, **common)(lp, 1e-2)
    assert plain.converged and pre.converged and auto.converged
    for r in (pre, auto):
        assert "steps preconditioned" in r.message
        assert abs(r.value - plain.value) <= 1e-9 * max(1.0, abs(plain.value))
        assert r.bracket[0] <= 0.0 <= r.bracket[1]  # F_0 = 0: the data come from a state
    assert _products(pre.message) <= 0.6 * _products(plain.message)


def test_quadratic_oracle_curvatures_are_the_support():
    """For the quadratic regularizer Y is the projector on the state's support (psi'' is the
    indicator), so the Jordan matrix is PSD with the Hessian's diagonal scale."""
    lp, oracle = _oracle("QT1", 3, 0.05, Quadratic(), eliminate=False)
    ev = oracle.evaluate(np.random.default_rng(2).normal(size=lp.n_rows))
    P = _jordan(oracle, ev)
    assert np.linalg.eigvalsh(P).min() >= -1e-10 * np.abs(P).max()
    H = oracle.hessian_matrix(ev)
    assert np.trace(H) <= np.trace(P) + 1e-9 * np.trace(P)


def test_eager_preconditioner_preconditions_every_step():
    """``eager_preconditioner`` (the anchor states' solves) starts at the first Newton step,
    where ``"auto"`` waits for a plain CG solve of 3 products."""
    from cvxqreg.solvers.newton import newton_cg_maximize

    lp, oracle = _oracle("QT2", 5, 1e-2, VonNeumann())
    common = dict(tol=1e-8, max_iter=100, hessian="cg", products="full")
    x0 = np.zeros(lp.n_rows)
    eager = newton_cg_maximize(oracle, x0, eager_preconditioner=True, **common)
    lazy = newton_cg_maximize(oracle, x0, **common)
    n_eager = int(re.search(r"(\d+) steps preconditioned", eager.message).group(1))
    assert eager.status == "converged" and n_eager == eager.iterations
    n_lazy = re.search(r"(\d+) steps preconditioned", lazy.message)
    # "auto" waits for a costly plain CG solve, then preconditions the rest
    assert lazy.status == "converged" and n_lazy is not None and 0 < int(n_lazy.group(1)) < n_eager


@pytest.mark.parametrize("backend", BACKENDS)
def test_pauli_methods_on_each_backend(backend):
    """The table, the Jordan matrix and the real paths on the backend's arrays equal the host
    ones, also for strings with an odd number of Y (no real part: an empty real matrix)."""
    from cvxqreg.backend import get_backend

    be = get_backend(backend)
    rng = np.random.default_rng(4)
    for strings in (["XYZ", "ZZI", "IYX", "YII"], ["YII", "IYZ", "XXY"]):
        host = Pauli(strings, 3, coefficients=rng.normal(size=len(strings)))
        dev = host.to_backend(be)
        Y = _herm(rng, 8)
        Yr = Y.real + Y.real.T
        a = rng.normal(size=len(strings))
        pairs = [
            (dev.expectation_table(be.asarray(Y)), host.expectation_table(Y)),
            (dev.jordan_matrix(be.asarray(Yr)), host.jordan_matrix(Yr)),
            (dev.adjoint_real(be.asarray(a)), host.adjoint(a).real),
            (dev.apply(be.asarray(Yr)), host.apply(Yr.astype(complex))),
        ]
        for got, want in pairs:
            np.testing.assert_allclose(be.to_host(got), want, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_preconditioner_on_each_backend(backend):
    lp = cvxqreg.lower(problems.tomography("QT1", n_qubits=3).problem)
    rng = np.random.default_rng(6)
    alpha, b = rng.normal(size=lp.n_rows), rng.normal(size=lp.n_rows)
    out = []
    for be in ("numpy", backend):
        oracle = DualOracle(lp, 0.2, VonNeumann(), be)
        ev = oracle.evaluate(alpha)
        out.append(pauli_preconditioner(pauli_structure(oracle), oracle, ev, 1e-3)(b))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-9, atol=1e-12)
