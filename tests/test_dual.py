"""The dual oracle and the regularized solver on hand-built lowered problems."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvxqreg import DualSolver, InvalidInputError, solve
from cvxqreg.operators import Dense, Pauli
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Quadratic, Tsallis, VonNeumann
from cvxqreg.solvers.dual import DualOracle

from .conftest import BACKENDS, qot_problem, rand_herm, rand_state, tomography_problem

REGS = [VonNeumann(), Quadratic(), Tsallis(1.5)]


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("eliminate", [True, False])
@pytest.mark.parametrize("eps", [0.3, 2.0])
def test_gradient_by_finite_differences(rng, reg, eliminate, eps):
    P, _ = tomography_problem(rng, D=5, n_obs=4)
    oracle = DualOracle(P, eps, reg, "numpy", eliminate=eliminate)
    alpha = rng.normal(size=P.n_rows) * 0.3
    ev = oracle.evaluate(alpha)
    h = 1e-6
    fd = np.array(
        [
            (oracle.evaluate(alpha + h * e).value - oracle.evaluate(alpha - h * e).value) / (2 * h)
            for e in np.eye(P.n_rows)
        ]
    )
    np.testing.assert_allclose(ev.grad, fd, rtol=1e-6, atol=1e-7)
    if eliminate:  # the state has the fixed trace at every iterate
        assert abs(np.trace(ev.X).real - 1.0) < 1e-13


def test_eliminated_dual_is_max_over_shift(rng):
    P, _ = tomography_problem(rng, D=4, n_obs=3)
    plain = DualOracle(P, 0.5, VonNeumann(), "numpy", eliminate=False)
    elim = DualOracle(P, 0.5, VonNeumann(), "numpy", eliminate=True)
    alpha = rng.normal(size=P.n_rows)
    ev = elim.evaluate(alpha)
    # D~(alpha) equals the plain dual at the shifted point, and beats nearby shifts
    assert abs(plain.evaluate(ev.alpha).value - ev.value) < 1e-12
    c = P.trace_direction
    for s in (-1e-3, 1e-3):
        assert plain.evaluate(ev.alpha + s * c).value < ev.value


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 30), eps=st.floats(1e-3, 10))
def test_weak_duality(reg, seed, scale, eps):
    """D_eps(alpha) <= F_eps(X) for every alpha and every feasible X."""
    rng = np.random.default_rng(seed)
    P, rho, sigma = qot_problem(rng, n=2)
    X = np.kron(rho, sigma)  # feasible: its marginals are rho and sigma
    assert np.linalg.norm(P.residual(X)) < 1e-12
    w = np.linalg.eigvalsh(X)
    F = np.trace(P.H @ X).real + eps * float(np.sum(reg.phi(np.clip(w, 0, None))))
    alpha = rng.normal(size=P.n_rows) * scale
    for eliminate in (True, False):
        with np.errstate(over="ignore"):
            value = DualOracle(P, eps, reg, "numpy", eliminate=eliminate).evaluate(alpha).value
        assert value <= F + 1e-9 * (1 + abs(F))


def _cvxpy_regularized(P, rho_trace, eps, kind):
    """Independent solve of the regularized primal in CVXPY (real symmetric data)."""
    D = P.dim
    X = cp.Variable((D, D), symmetric=True)
    Q = P.A.to_dense().real
    cons = [X >> 0] + [cp.sum(cp.multiply(Q[i], X)) == P.q[i] for i in range(P.n_rows)]
    energy = cp.sum(cp.multiply(P.H, X))
    if kind == "von_neumann":
        obj = energy - eps * cp.von_neumann_entr(X)
        prob = cp.Problem(cp.Minimize(obj), cons)
        prob.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200000)
        if not (prob.status == cp.OPTIMAL and np.isfinite(prob.value)):
            # measured with SCS 3.3.1 and CVXPY 1.9.3: status "optimal" with value inf at
            # eps = 0.2; Clarabel (interior point, exponential cones) is the second reference
            prob.solve(solver=cp.CLARABEL)
        assert prob.status == cp.OPTIMAL and np.isfinite(prob.value), prob.status
    else:
        obj = energy + eps * 0.5 * cp.sum_squares(X)
        prob = cp.Problem(cp.Minimize(obj), cons)
        prob.solve(solver=cp.CLARABEL)
    return prob.value


@pytest.mark.parametrize("kind", ["von_neumann", "quadratic"])
@pytest.mark.parametrize("eps", [0.2, 0.5, 5.0])
def test_values_match_independent_cvxpy_solve(kind, eps):
    rng = np.random.default_rng(7)
    D = 4
    rho = rand_state(rng, D, real=True)
    Qs = [np.eye(D)] + [rand_herm(rng, D, real=True) for _ in range(3)]
    q = np.array([np.trace(Q @ rho) for Q in Qs])
    P = LoweredProblem(rand_herm(rng, D, real=True), Dense(np.stack(Qs)), q, real=True)
    res = solve(P, eps, regularizer=kind, backend="numpy", tol=1e-8)
    assert res.status in ("converged", "stalled") and res.grad_norm < 1e-6
    ref = _cvxpy_regularized(P, 1.0, eps, kind)
    assert abs(res.value - ref) < 1e-7 * (1 + abs(ref))
    assert abs(res.gap) < 1e-6


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("eps", [1e4, 1e2, 1.0, 1e-2, 1e-6, 1e-9])
def test_stable_at_every_eps(rng, reg, eps):
    P, _, _ = qot_problem(rng, n=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow or invalid-value warning fails the test
        res = DualSolver(reg, backend="numpy", tol=1e-6, max_iter=300)(P, eps)
    assert np.isfinite([res.value, res.dual_value, res.energy, res.grad_norm]).all()
    assert np.all(np.isfinite(res.X))
    assert res.status != "failed"
    assert abs(np.trace(res.X).real - 1.0) < 1e-12


def test_certified_bound_below_exact_value(rng):
    from cvxqreg import solve_exact

    P, _, _ = qot_problem(rng, n=2)
    exact = solve_exact(P, "CLARABEL")
    for eps in (10.0, 1.0, 0.1, 0.01):
        for k, reg in enumerate(REGS):
            res = solve(P, eps, regularizer=reg, backend="numpy", max_iter=50)
            assert res.certified_bound <= exact.value + 1e-7
            # also at a random, non-optimal alpha
            ev = DualOracle(P, eps, reg, "numpy").evaluate(rng.normal(size=P.n_rows) * (k + 1))
            lb = DualOracle(P, eps, reg, "numpy").certified_lower_bound(ev)
            assert lb <= exact.value + 1e-7


@pytest.mark.parametrize("eliminate", [True, False])
def test_certified_bound_reuses_the_evaluation_spectrum(rng, monkeypatch, eliminate):
    """The weak-duality bound from the evaluation's own eigenvalues agrees with the one from a
    fresh eigenvalue solve at the same point (to rounding), and needs no such solve."""
    from cvxqreg import bounds

    P, _, _ = qot_problem(rng, n=3)
    oracle = DualOracle(P, 0.05, VonNeumann(), "numpy", eliminate=eliminate)
    Backend = type(oracle.be)
    eigvalsh, calls = Backend.eigvalsh, []

    def counted(self, a):
        calls.append(a.shape)
        return eigvalsh(self, a)

    monkeypatch.setattr(Backend, "eigvalsh", counted)
    for scale in (0.1, 3.0):
        ev = oracle.evaluate(rng.normal(size=P.n_rows) * scale)
        lb = oracle.certified_lower_bound(ev)
        assert not calls
        alpha = P.project_dual(ev.alpha)
        fresh = bounds.shift_lower_bound(P, oracle.be, oracle.W(alpha), alpha)
        assert calls
        assert abs(lb - fresh) <= 1e-10 * (1.0 + abs(fresh))
        calls.clear()


def test_von_neumann_bracket_closes(rng):
    """F_eps <= F_0 <= F_eps + eps log D on unit-trace states (docs/theory.md, 'Regularization
    brackets')."""
    from cvxqreg import solve_exact

    P, _, _ = qot_problem(rng, n=2)
    F0 = solve_exact(P, "CLARABEL").value
    for eps in (1.0, 0.1, 0.01, 0.001):
        r = solve(P, eps, backend="numpy", tol=1e-8)
        assert r.value <= F0 + 1e-6
        assert F0 <= r.value + eps * np.log(P.dim) + 1e-6
    assert abs(r.energy - F0) < 0.01


def test_infeasible_data_detected():
    """Example 6.1 pushed past the Bloch sphere: <X> = <Z> = 0.8 has |r| > 1."""
    P = LoweredProblem(np.zeros((2, 2)), Pauli(["I", "X", "Z"]), [1.0, 0.8, 0.8])
    res = solve(P, 0.1, backend="numpy", max_iter=5000)
    assert res.status == "infeasible" and not res.converged
    assert "infeasible" in res.message


def test_bad_arguments(rng):
    P, _ = tomography_problem(rng)
    for eps in (0.0, -1.0, float("nan"), float("inf"), "abc"):
        with pytest.raises(InvalidInputError, match="eps"):
            solve(P, eps)
    with pytest.raises(InvalidInputError, match="tol"):
        solve(P, 1.0, tol=-1)
    with pytest.raises(InvalidInputError, match="alpha0"):
        solve(P, 1.0, alpha0=np.zeros(3))
    with pytest.raises(InvalidInputError, match="Hermitian"):
        LoweredProblem(np.array([[0, 1], [0, 0.0]]), Dense(np.eye(2)), [1.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        LoweredProblem(np.eye(2), Dense(np.eye(2)), [np.nan])
    # a negative trace: no state satisfies the data, an honest status (not a raise)
    r = solve(LoweredProblem(np.eye(2), Dense(np.eye(2)), [-1.0]), 1.0)
    assert r.status == "infeasible" and "trace" in r.message and r.X is None


def test_warm_start_and_history(rng):
    P, _, _ = qot_problem(rng, n=3)
    cold = solve(P, 0.05, backend="numpy")
    warm = solve(P, 0.05, backend="numpy", alpha0=cold.alpha)
    assert warm.iterations <= 2
    stages = len(np.unique(cold.history.eps))
    assert len(cold.history) == cold.iterations + stages
    assert np.all(np.diff(cold.history.eps) <= 0) and cold.history.eps[-1] == 0.05
    assert len(cold.history.final_stage) >= 1
    assert np.all(np.diff(cold.history.time) >= 0)
    assert cold.history.grad_norm[-1] == pytest.approx(cold.grad_norm, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_give_same_solution(rng, backend):
    P, _, _ = qot_problem(rng, n=3)
    ref = solve(P, 0.1, backend="numpy", tol=1e-8)
    res = solve(P, 0.1, backend=backend, tol=1e-8)
    assert res.backend == backend
    assert abs(res.value - ref.value) < 1e-7


def test_own_lbfgs_converges_where_scipy_stalls():
    """At eps = 1e-4 the f-based line search of SciPy stops above tol (rounding of D_eps);
    the approximate-Wolfe line search keeps going (measured in the docstring of solvers.lbfgs)."""
    P, _, _ = qot_problem(np.random.default_rng(0), n=3)
    ours = solve(P, 1e-4, backend="numpy", tol=1e-7, optimizer="lbfgs")
    ref = solve(P, 1e-4, backend="numpy", tol=1e-7, optimizer="scipy")
    assert ours.converged and ours.grad_norm < 1e-7
    assert ref.status == "stalled" and ref.grad_norm > 1e-7
    assert ours.dual_value >= ref.dual_value - 1e-12  # a better dual point
    assert abs(ours.value - ref.value) < 1e-5


@pytest.mark.parametrize("optimizer", ["lbfgs", "scipy"])
def test_optimizers_agree(rng, optimizer):
    P, _, _ = qot_problem(rng, n=3)
    r = solve(P, 0.1, backend="numpy", tol=1e-6, optimizer=optimizer)
    ref = solve(P, 0.1, backend="numpy", tol=1e-9, regularizer="von_neumann")
    assert ref.converged
    # the dual value is second-order accurate in ||grad||; the primal value only first-order
    assert abs(r.dual_value - ref.dual_value) < 1e-9
    assert abs(r.value - ref.value) < 1e-5
    with pytest.raises(InvalidInputError, match="optimizer"):
        solve(P, 0.1, optimizer="newton-raphson")


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("eliminate", [True, False])
def test_hessian_vector_by_finite_differences(rng, reg, eliminate):
    P, _ = tomography_problem(rng, D=5, n_obs=4)
    oracle = DualOracle(P, 0.7, reg, "numpy", eliminate=eliminate)
    alpha = rng.normal(size=P.n_rows) * 0.3
    neg_hess = oracle.hessian_operator(oracle.evaluate(alpha))
    h = 1e-6
    for v in rng.normal(size=(3, P.n_rows)):
        fd = -(oracle.evaluate(alpha + h * v).grad - oracle.evaluate(alpha - h * v).grad) / (2 * h)
        np.testing.assert_allclose(neg_hess(v), fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
def test_newton_with_continuation_reaches_small_eps(reg):
    """Newton-CG down the eps ladder converges at eps = 1e-6, where plain L-BFGS needs
    thousands of iterations; both give the same dual value where both converge."""
    P, _, _ = qot_problem(np.random.default_rng(0), n=3)
    newton = DualSolver(reg, backend="numpy", optimizer="newton", continuation=True)
    r = newton(P, 1e-6)
    assert r.converged and r.iterations < 300
    assert "continuation" in r.message
    lb = DualSolver(reg, backend="numpy", tol=1e-6)(P, 1e-2)
    nt = newton(P, 1e-2)
    assert lb.converged and nt.converged
    assert abs(lb.dual_value - nt.dual_value) < 1e-9
    assert len(r.history) == r.iterations + len(newton.ladder(P, 1e-6))


@pytest.mark.parametrize("eps", [1e-4, 1e-6])
@pytest.mark.parametrize("reg", ["quadratic", "von_neumann"])
def test_lbfgs_line_search_recovers_from_overshoot(eps, reg):
    """Regression: the first step overshot the line maximum by ~1e4 and the clamped secant shrank
    the bracket by 10% per trial, so L-BFGS stalled at iteration 0 (tomography, H = 0)."""
    import cvxqreg

    lp = cvxqreg.lower(cvxqreg.problems.tomography("QT2", n_qubits=2).problem)
    r = solve(lp, eps, reg, optimizer="lbfgs", continuation=False)
    assert r.converged and r.iterations < 50


def test_time_limit_message_names_the_users_limit(monkeypatch):
    """A clock that advances one second per reading: the 0.05 s limit is hit at the first check
    whatever the machine's speed (the real clock made this depend on the load)."""
    import itertools
    import time

    import cvxqreg

    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(5).problem)
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    r = solve(lp, 1e-6, time_limit=0.05)
    assert r.status == "time_limit" and "time limit of 0.05 s" in r.message


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_eigh_of_a_diagonal_matrix_skips_lapack_and_agrees_with_it(dtype):
    from cvxqreg.backend import _diagonal, _syevd, get_backend

    be = get_backend("numpy")
    d = np.array([3.0, -1.0, 2.0, -1.0, 0.0])
    A = np.diag(d).astype(dtype)
    w, V = be.eigh(A)
    w_ref, _ = _syevd(A.copy(), True)
    assert _diagonal(A) is not None and V.dtype == A.dtype
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_allclose(V @ np.diag(w) @ V.conj().T, A, atol=0)
    B = A.copy()
    B[3, 1] = B[1, 3] = 1e-300  # one off-diagonal entry, away from the two probed first
    assert _diagonal(B) is None


@pytest.mark.parametrize("eps", [1.0, 1e-3])
def test_von_neumann_trace_curvature_is_the_states_marginal(rng, eps, monkeypatch):
    """Von Neumann has ``psi'' = psi'``: the curvature along the trace direction,
    ``A(U diag(psi''(t)) U^*)``, is read from the evaluation's ``A(X) = q - grad`` instead of
    forming the matrix again; equal to the explicit form to rounding, on Pauli and marginal
    rows."""
    import cvxqreg
    from cvxqreg import problems

    def no_product(*args, **kwargs):
        raise AssertionError("A(U diag(psi'') U^*) was formed again")

    for prob in (problems.tomography("QT2", n_qubits=3).problem, problems.wasserstein(3).problem):
        lp = cvxqreg.lower(prob)
        o = DualOracle(lp, eps, VonNeumann(), "numpy")
        ev = o.evaluate(rng.standard_normal(lp.n_rows), want_state=False)
        with monkeypatch.context() as mp:
            mp.setattr(o.A, "apply_spectral", no_product)
            hc, chc = o._trace_curvature(ev)
        with monkeypatch.context() as mp:
            mp.setattr(VonNeumann, "curvature_is_state", False)
            hc_ref, chc_ref = o._trace_curvature(ev)
        assert np.allclose(hc, hc_ref, rtol=0, atol=1e-13 * np.abs(hc_ref).max())
        assert chc == pytest.approx(chc_ref, rel=1e-14)


def test_single_precision_copy_has_no_subnormals_and_keeps_the_scale(rng):
    """``Backend.single``: ``b s`` equals ``a`` to single precision's rounding of its largest
    entry, components below ``2^-60`` of it are zero, no component is subnormal, at any scale
    (including scales beyond float32's range) and for transposed (F-ordered) input."""
    from cvxqreg.backend import SINGLE_FLOOR, get_backend

    be = get_backend("numpy")
    tiny32 = np.finfo(np.float32).tiny
    for scale in (1e-300, 1e-45, 1.0, 1e40, 1e300):
        base = rng.standard_normal((40, 30)) + 1j * rng.standard_normal((40, 30))
        mags = 10.0 ** rng.uniform(-120, 0, size=(40, 30))  # down to 1e-120 of the largest
        for a in (scale * base * mags, (scale * base * mags).real.T):
            b, s = be.single(a)
            assert b.dtype == (np.complex64 if np.iscomplexobj(a) else np.float32)
            comp = b.ravel(order="A").view(np.float32)
            assert not np.any((comp != 0) & (np.abs(comp) < tiny32))
            top = max(np.abs(a.real).max(), np.abs(a.imag).max())
            err = np.abs(b.astype(np.complex128) * s - a)
            assert err.max() <= 2 * (2.0**-24 + SINGLE_FLOOR) * top
            assert s == pytest.approx(top, rel=1e-6)
    b, s = be.single(np.zeros((3, 3)))
    assert s == 1.0 and not b.any()


@pytest.mark.parametrize("kind", ["QT1", "QT2"])  # complex rows; QT2 is real-reduced
@pytest.mark.parametrize("reg", [VonNeumann(), Quadratic()], ids=lambda r: r.name)
def test_single_precision_hessian_product_matches_double(kind, reg):
    """The single-precision full Hessian product equals the double one to ``1e-5`` of its norm
    (measured ``~2e-7``) at a converged point, at a random point, and at ``alpha = 0`` (a
    diagonal ``W``: eigenvectors with exact zeros)."""
    import cvxqreg
    from cvxqreg import problems

    lp = cvxqreg.lower(problems.tomography(kind, n_qubits=5).problem)
    rng = np.random.default_rng(3)
    sol = DualSolver(reg, backend="numpy", tol=1e-6)(lp, 1e-2)
    o = DualOracle(lp, 1e-2, reg, "numpy")
    for alpha in (sol.alpha, 0.3 * rng.standard_normal(lp.n_rows), np.zeros(lp.n_rows)):
        ev = o.evaluate(alpha, want_state=False)
        double = o.hessian_operator(ev, "full")
        single = o.hessian_operator(ev, "full", single=True)
        for v in rng.standard_normal((3, lp.n_rows)):
            ref = double(v)
            assert np.linalg.norm(single(v) - ref) <= 1e-5 * np.linalg.norm(ref)


def test_newton_takes_single_precision_products_only_while_cg_is_loose(monkeypatch):
    """Newton asks for single-precision products exactly when CG's relative residual target
    ``min(0.5, sqrt(||grad||))`` is at least ``SINGLE_PRECISION_RTOL``; the solve reaches the
    same optimum as with double products throughout."""
    import cvxqreg
    import cvxqreg.solvers.dual as dual
    from cvxqreg import problems

    lp = cvxqreg.lower(problems.tomography("QT1", n_qubits=7).problem)
    assert lp.dim >= dual.SINGLE_PRECISION_MIN_DIM
    seen = []
    real = DualOracle.hessian_operator

    def spy(self, ev, products="auto", single=False):
        seen.append((float(np.linalg.norm(ev.grad)), single))
        return real(self, ev, products, single)

    monkeypatch.setattr(DualOracle, "hessian_operator", spy)
    solver = DualSolver("von_neumann", backend="numpy", tol=1e-9, hessian="cg")
    r = solver(lp, 1e-2)
    assert r.status == "converged" and seen
    floor = dual.SINGLE_PRECISION_RTOL["numpy"]
    assert all(single == (min(0.5, np.sqrt(g)) >= floor) for g, single in seen)
    assert any(s for _, s in seen) and not seen[-1][1]
    monkeypatch.setitem(dual.SINGLE_PRECISION_RTOL, "numpy", None)
    ref = solver(lp, 1e-2)
    assert abs(r.dual_value - ref.dual_value) <= 1e-9 * max(1.0, abs(ref.dual_value))
    assert np.linalg.norm(r.alpha - ref.alpha) <= 1e-6 * max(1.0, np.linalg.norm(ref.alpha))


def test_large_complex_eigh_keeps_the_threads_of_a_one_thread_section(monkeypatch):
    """Inside ``threads_for`` (one BLAS thread) a complex eigendecomposition of at least
    ``THREADED_EIGH_MIN_DIM`` runs with the thread count from before the section; smaller and
    real ones with one thread; the result is the same decomposition."""
    import cvxqreg.backend as B

    be = B.get_backend("numpy")
    ctl = B.blas_controller()
    seen = []
    real = B._syevd

    def spy(a, vectors):
        seen.append(max(i["num_threads"] for i in ctl.info() if i["user_api"] == "blas"))
        return real(a, vectors)

    monkeypatch.setattr(B, "_syevd", spy)
    monkeypatch.setattr(B, "THREADED_EIGH_MIN_DIM", 24)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((24, 24)) + 1j * rng.standard_normal((24, 24))
    Z = Z + Z.conj().T
    R = Z.real.copy()
    with ctl.limit(limits=2, user_api="blas"):
        with be.threads_for(24):
            w, V = be.eigh(Z)
            be.eigh(R)
            be.eigh(Z[:20, :20].copy())
        after = max(i["num_threads"] for i in ctl.info() if i["user_api"] == "blas")
    assert seen == [2, 1, 1] and after == 2
    np.testing.assert_allclose(V @ np.diag(w) @ V.conj().T, Z, atol=1e-12)
    seen.clear()
    with ctl.limit(limits=1, user_api="blas"), be.threads_for(24):
        be.eigh(Z)  # a user's single thread is kept
    assert seen == [1]


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("reg", [VonNeumann(), Quadratic()], ids=lambda r: r.name)
def test_hessian_product_at_a_diagonal_iterate_skips_the_matrix_products(real, reg, monkeypatch):
    """At ``alpha = 0`` with a diagonal cost of distinct entries the eigenvectors are a
    permutation: the product is ``A(G' o A*(v)) / eps`` (``G'`` permuted back), equal to the
    general formula's four matrix products."""
    import cvxqreg
    import cvxqreg.solvers.dual as dual
    from cvxqreg import problems

    rng = np.random.default_rng(7)
    base = cvxqreg.lower(problems.tomography("QT1", n_qubits=4).problem)
    h = rng.permutation(np.linspace(-1.0, 1.0, base.dim))
    H = np.diag(h) if real else np.diag(h).astype(complex)
    lp = LoweredProblem(H, base.A, base.q)
    o = DualOracle(lp, 0.3, reg, "numpy", eliminate=False)
    ev = o.evaluate(np.zeros(lp.n_rows), want_state=False)
    assert dual._permutation(o.be, ev.U) is not None
    U, G = ev.U, reg.divided_differences(ev.lam / 0.3)
    v = rng.standard_normal(lp.n_rows)
    E = o._adjoint(v)
    ref = o.A.apply(U @ (G * (U.conj().T @ E @ U)) @ U.conj().T) / 0.3
    assert np.ptp(G) > 0.1  # the permutation matters
    got = o.hessian_operator(ev, "full")(v)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    # not a permutation: a rotation, a signed permutation, a permutation with a wrong entry
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.eye(4)
    R[:2, :2] = [[c, -s], [s, c]]
    P = np.eye(4)[[2, 0, 3, 1]]
    be = o.be
    assert dual._permutation(be, P) is not None
    assert all(dual._permutation(be, M) is None for M in (R, -P, 2 * P, np.zeros((4, 4))))


def test_oracles_of_one_problem_share_its_lazily_built_data():
    """Data built from the problem alone (here the sparse row entries) are built once per
    problem, backend and elimination, not once per oracle (per solve)."""
    import cvxqreg
    from cvxqreg import problems

    lp = cvxqreg.lower(problems.wasserstein(3).problem)
    a = DualOracle(lp, 0.1, VonNeumann(), "numpy")
    ent = a._row_entries()
    b = DualOracle(lp, 0.5, Quadratic(), "numpy")
    assert b._row_entries() is ent
    assert DualOracle(lp, 0.1, VonNeumann(), "numpy", eliminate=False)._shared is not a._shared
    other = cvxqreg.lower(problems.wasserstein(3).problem)
    assert DualOracle(other, 0.1, VonNeumann(), "numpy")._row_entries() is not ent


@pytest.mark.parametrize("kind", ["QT1", "QT2", "QT3"])
def test_quadratic_trace_curvature_from_the_smaller_block(kind):
    """Quadratic has ``psi'' = 1`` on the support and ``0`` off it: the curvature along the
    trace direction ``A(U diag(psi'') U^*)`` is formed from the support, or as
    ``A(I) - A(U_off U_off^*)`` when the support is most of the spectrum; both equal the explicit
    form to rounding (at the optimum, at half of it and at ``alpha = 0``)."""
    import cvxqreg
    from cvxqreg import problems

    lp = cvxqreg.lower(problems.tomography(kind, n_qubits=5).problem)
    r = DualSolver("quadratic", backend="numpy", tol=1e-8)(lp, 0.05)
    o = DualOracle(lp, 0.05, Quadratic(), "numpy")
    sizes = set()
    for alpha in (r.alpha, 0.5 * r.alpha, np.zeros(lp.n_rows)):
        ev = o.evaluate(alpha, want_state=False)
        hc, chc = o._trace_curvature(ev)
        d2 = np.maximum(Quadratic().d2psi(ev.lam / 0.05), 0.0)
        ref = o.A.apply(ev.U @ np.diag(d2) @ ev.U.conj().T) / 0.05
        assert np.abs(hc - ref).max() <= 1e-13 * np.abs(ref).max()
        assert chc == pytest.approx(d2.sum() / 0.05, rel=1e-14)
        sizes.add(2 * int(np.count_nonzero(d2)) > d2.size)
        # the top r eigenvalues only (the low-rank products' truncation): no complement there
        rr = lp.dim - 3
        hc_r, _ = o._trace_curvature(ev, rr)
        UT, dT = ev.U[:, -rr:], d2[-rr:]
        ref_r = o.A.apply(UT @ np.diag(dT) @ UT.conj().T) / 0.05
        assert np.abs(hc_r - ref_r).max() <= 1e-13 * max(np.abs(ref_r).max(), 1e-300)
    assert True in sizes  # the complement was taken at least once


def test_single_precision_products_only_from_the_minimum_dimension():
    import cvxqreg
    import cvxqreg.solvers.dual as dual
    from cvxqreg import problems

    small = cvxqreg.lower(problems.tomography("QT1", n_qubits=6).problem)  # D = 64
    large = cvxqreg.lower(problems.tomography("QT1", n_qubits=7).problem)  # D = 128
    assert small.dim < dual.SINGLE_PRECISION_MIN_DIM <= large.dim
    assert not DualOracle(small, 0.1, VonNeumann(), "numpy").single_products(0.5)
    assert DualOracle(large, 0.1, VonNeumann(), "numpy").single_products(0.5)
    assert not DualOracle(large, 0.1, VonNeumann(), "numpy").single_products(1e-3)


def test_cached_problem_data_are_freed_with_the_problem():
    """The per-problem caches (oracle data, anchors, anchor starts, restored anchors) hold their
    problem weakly: nothing they store refers back to it."""
    import gc

    import cvxqreg
    import cvxqreg.bounds as bounds
    import cvxqreg.solvers.dual as dual
    from cvxqreg import problems

    lp = cvxqreg.lower(problems.wasserstein(4).problem)
    for reg in ("von_neumann", "quadratic"):
        DualSolver(reg, backend="numpy", tol=1e-6, hessian="cg")(lp, 1e-2)
    # a tomography state is certified by itself: it is recorded as an anchor
    lp2 = cvxqreg.lower(problems.tomography("QT1", n_qubits=3).problem)
    DualSolver("von_neumann", backend="numpy", tol=1e-6)(lp2, 0.5)
    caches = (dual._PROBLEM_DATA, bounds._ANCHORS, bounds._ANCHOR_STARTS, bounds._RESTORED_ANCHORS)
    assert all(lp in c for c in caches[:3]) and lp2 in bounds._RESTORED_ANCHORS
    after = [len(c) - (lp in c) - (lp2 in c) for c in caches]
    del lp, lp2
    gc.collect()
    assert [len(c) for c in caches] == after
