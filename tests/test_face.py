"""Facial reduction of couplings with singular marginals (cvxqreg.face; docs/bounds.md,
'Singular marginals: the face of the couplings')."""

import math

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.face import _split_sum, coupling_face, lifted_lower_bound

from .conftest import rand_herm, rand_state


def _coupling(H, rho, sigma, maximize=False):
    n1, n2 = rho.shape[0], sigma.shape[0]
    X = cp.Variable((n1 * n2, n1 * n2), hermitian=True)
    obj = cp.real(cp.trace(H @ X))
    return cp.Problem(
        cp.Maximize(obj) if maximize else cp.Minimize(obj),
        [
            X >> 0,
            cp.partial_trace(X, [n1, n2], axis=1) == rho,
            cp.partial_trace(X, [n1, n2], axis=0) == sigma,
        ],
    )


def test_split_sum_recovers_the_parts(rng):
    a, b = rand_herm(rng, 3), rand_herm(rng, 2)
    S = np.kron(a, np.eye(2)) + np.kron(np.eye(3), b)
    a2, b2 = _split_sum(S, (3, 2))
    assert np.allclose(np.kron(a2, np.eye(2)) + np.kron(np.eye(3), b2), S, atol=1e-13)


def test_no_face_for_positive_definite_marginals(rng):
    lp = cvxqreg.lower(_coupling(rand_herm(rng, 6), rand_state(rng, 2), rand_state(rng, 3)))
    assert coupling_face(lp) is None


def _face_reference(H, rho, sigma, maximize):
    """The exact value from SCS at 1e-10 on the face problem written out by hand (strictly
    feasible there; on the original problem SCS reports 'optimal_inaccurate' and misses the
    value by 1e-4)."""

    def support(M):
        w, V = np.linalg.eigh(M)
        keep = w > 1e-10 * w[-1]
        return V[:, keep], np.diag(w[keep])

    V1, r1 = support(rho)
    V2, r2 = support(sigma)
    V = np.kron(V1, V2)
    Hr = V.conj().T @ H @ V
    prob = _coupling(0.5 * (Hr + Hr.conj().T), r1, r2, maximize)
    return cvxqreg.solve_exact(prob, "SCS", eps_abs=1e-10, eps_rel=1e-10).value


@pytest.mark.parametrize("maximize", [False, True])
def test_rank_deficient_marginals_bracket_the_exact_value(rng, maximize):
    """Marginals of rank 2 of 3: the face is 2 x 2 of 9; the bracket from certify contains the
    exact value, for Minimize and Maximize (the ends swap), and its state is feasible."""
    rho, sigma = rand_state(rng, 3, rank=2), rand_state(rng, 3, rank=2)
    H = rand_herm(rng, 9)
    prob = _coupling(H, rho, sigma, maximize)
    lp = cvxqreg.lower(prob)
    face = coupling_face(lp)
    assert face is not None and face.ranks == (2, 2) and face.dropped < 1e-14
    ref = _face_reference(H, rho, sigma, maximize)
    c = cvxqreg.certify(lp, rtol=1e-5, backend="numpy", time_limit=120)
    assert c.status == "certified"
    assert c.low - 1e-8 <= ref <= c.high + 1e-8
    assert c.high - c.low <= 1e-5 * max(1.0, abs(c.low))
    X = c.X
    assert np.linalg.eigvalsh(X)[0] > -1e-12
    T = X.reshape(3, 3, 3, 3)
    assert np.linalg.norm(np.einsum("ajbj->ab", T) - rho) < 1e-10
    assert np.linalg.norm(np.einsum("iaib->ab", T) - sigma) < 1e-10
    energy = float(np.real(np.trace(H @ X)))
    assert (energy <= c.high + 1e-12) if not maximize else (energy >= c.low - 1e-12)


def test_lifted_bound_is_weak_duality_on_the_original(rng):
    """Any dual vector of the face lifts to a valid lower bound: below F_0, at every c scanned."""
    rho = rand_state(rng, 3, rank=1)
    sigma = rand_state(rng, 2)
    H = rand_herm(rng, 6)
    lp = cvxqreg.lower(_coupling(H, rho, sigma))
    face = coupling_face(lp)
    F0 = float(np.real(np.trace(H @ np.kron(rho, sigma))))  # the only coupling
    for _ in range(5):
        alpha = rng.standard_normal(face.problem.n_rows)
        L, a = lifted_lower_bound(lp, face, alpha)
        assert L <= F0 + 1e-12 and a.shape == (lp.n_rows,)


def test_ising_first_excited_is_certified():
    """IM N = 3: the marginals of the first excited state have eigenvalues of 1e-12; certify
    works on the 6 x 6 face, its dual end stays below a known feasible value and its state is
    feasible."""
    inst = problems.ising(3)
    lp = cvxqreg.lower(inst.problem)
    face = coupling_face(lp)
    assert face is not None and face.ranks == (6, 6)
    c = cvxqreg.certify(lp, rtol=1e-4, backend="numpy", time_limit=120)
    assert c.status == "certified" and math.isfinite(c.high)
    assert c.high - c.low <= 1e-4 * max(1.0, abs(c.low))
    # closed-form checks of the rigorous end: lambda_0 <= F_0 (no state beats the ground
    # energy) and F_0 <= lambda_1 (|psi_1><psi_1| is feasible), so L must not exceed lambda_1
    assert inst.metadata["lower_bound"] <= c.low <= inst.metadata["feasible_value"] + 1e-12
    assert np.linalg.eigvalsh(c.X)[0] > -1e-12
    T = c.X.reshape(8, 8, 8, 8)
    assert np.linalg.norm(np.einsum("ajbj->ab", T) - inst.metadata["rho"]) < 1e-9


# ---------------------------------------------------------------- the solver on the face
def test_pure_marginal_regularized_closed_form(rng):
    """The only coupling of a pure rho is rho (x) sigma, so F_eps = Tr[H rho(x)sigma] +
    eps Tr[X log X] there exactly; the face solve returns it with the state lifted back."""
    rho = np.diag([0.0, 1.0, 0.0]).astype(complex)
    sigma = rand_state(rng, 2)
    H = rand_herm(rng, 6)
    lp = cvxqreg.lower(_coupling(H, rho, sigma))
    Xs = np.kron(rho, sigma)
    w = np.linalg.eigvalsh(sigma)
    eps = 0.1
    exact = float(np.real(np.trace(H @ Xs))) + eps * float(np.sum(w * np.log(w)))
    r = cvxqreg.solve(lp, eps=eps, backend="numpy", tol=1e-10)
    assert r.status == "converged" and r.grad_norm < 1e-10
    assert abs(r.value - exact) < 1e-10
    assert np.linalg.norm(r.X - Xs) < 1e-9
    assert r.extras["face_dim"] == 2 and "solved on the face" in r.message
    lo, hi = r.bracket
    F0 = float(np.real(np.trace(H @ Xs)))
    assert lo <= F0 <= hi


@pytest.mark.parametrize("maximize", [False, True])
def test_face_solve_is_the_regularized_optimum(rng, maximize):
    """Rank-2 marginals of size 3: the face solve equals the regularized optimum of the face
    problem written out by hand, its state is feasible on the original data (grad_norm is
    ||q - A(X)|| there), and the full-space solve (facial_reduction=False) can only look better
    by exploiting its residual: PSD states with a residual r on the kernel rows may carry
    off-diagonal blocks of size sqrt(r)."""
    rho, sigma = rand_state(rng, 3, rank=2), rand_state(rng, 3, rank=2)
    H = rand_herm(rng, 9)
    lp = cvxqreg.lower(_coupling(H, rho, sigma, maximize))
    kw = dict(eps=0.05, backend="numpy", tol=1e-9)
    r = cvxqreg.solve(lp, **kw)
    assert r.status == "converged" and r.grad_norm < 1e-9

    def support(M):
        w, V = np.linalg.eigh(M)
        keep = w > 1e-10 * w[-1]
        return V[:, keep], np.diag(w[keep])

    (V1, r1), (V2, r2) = support(rho), support(sigma)
    V = np.kron(V1, V2)
    by_hand = cvxqreg.solve(_coupling(V.conj().T @ H @ V, r1, r2, maximize), **kw)
    assert abs(r.value - by_hand.value) < 1e-9
    T = r.X.reshape(3, 3, 3, 3)
    resid = np.hypot(
        np.linalg.norm(np.einsum("ajbj->ab", T) - rho),
        np.linalg.norm(np.einsum("iaib->ab", T) - sigma),
    )
    assert resid < 1e-9 and np.linalg.eigvalsh(r.X)[0] > -1e-12
    full = cvxqreg.solve(lp, facial_reduction=False, **kw)
    sign = -1.0 if maximize else 1.0
    gain = sign * (r.value - full.value)  # how much better the infeasible full solve looks
    assert -1e-9 <= gain <= 10 * np.sqrt(max(full.grad_norm, 1e-16)) * np.linalg.norm(H, 2)
    lo, hi = r.bracket
    assert lo <= hi


def test_face_warm_start_round_trip(rng):
    """A lifted dual vector passed back as alpha0 restricts to the face: the re-solve starts at
    the optimum."""
    rho, sigma = rand_state(rng, 3, rank=2), rand_state(rng, 2)
    lp = cvxqreg.lower(_coupling(rand_herm(rng, 6), rho, sigma))
    r = cvxqreg.solve(lp, eps=0.1, backend="numpy", tol=1e-9)
    again = cvxqreg.solve(lp, eps=0.1, backend="numpy", tol=1e-9, alpha0=r.alpha)
    assert again.status == "converged" and again.iterations <= 2
    # the round trip keeps the dual point: dual values agree to rounding; the primal values
    # F_eps(X(alpha)) of two points with ||grad|| < tol differ by up to ~ ||alpha|| tol
    # (measured: 1.0e-9 with dual values equal to 7e-16)
    assert abs(again.dual_value - r.dual_value) < 1e-13 * max(1.0, abs(r.dual_value))
    assert abs(again.value - r.value) < 2e-9 * max(1.0, np.linalg.norm(r.alpha))
    with pytest.raises(cvxqreg.InvalidInputError):
        cvxqreg.solve(lp, eps=0.1, backend="numpy", alpha0=np.zeros(3))


def test_ising_quadratic_small_eps_on_the_face():
    """IM N = 3, quadratic, eps = 1e-6: on the face it converges in a few Newton steps (the full
    dual needs more than 10^4 iterations: its optimum is at infinity along the kernels)."""
    inst = problems.ising(3)
    lp = cvxqreg.lower(inst.problem)
    r = cvxqreg.solve(lp, eps=1e-6, regularizer="quadratic", backend="numpy", tol=1e-6)
    assert r.status == "converged" and r.grad_norm < 1e-6
    lo, hi = r.bracket
    assert inst.metadata["lower_bound"] <= lo <= inst.metadata["feasible_value"] + 1e-12
    assert lo <= r.energy <= hi


def test_cvxpy_method_on_a_singular_coupling(rng):
    """problem.solve(method="cvxqreg") writes the lifted state back into the CVXPY variable."""
    rho = np.diag([1.0, 0.0])
    sigma = np.diag([0.6, 0.4])
    H = np.diag([1.0, 2.0, 3.0, 4.0])
    prob = _coupling(H, rho, sigma)
    # the state is unique (rho is pure), so its error is the residual's: solved to tol 1e-9 for
    # the 1e-8 checks below
    prob.solve(method="cvxqreg", eps=1e-3, backend="numpy", tol=1e-9)
    assert prob.status == "optimal"
    assert np.allclose(prob.variables()[0].value, np.kron(rho, sigma), atol=1e-8)
    # CVXPY's value is the problem's own objective Tr[H X] at the state
    assert abs(prob.value - (1.0 * 0.6 + 2.0 * 0.4)) < 1e-8


def test_dropped_eigenvalues_above_tol_are_reported(rng):
    """A marginal eigenvalue of 2e-11 is below the face's cut (1e-10 of the largest): the face
    solve meets tol = 1e-12 there, but on the data as given the residual is 2e-11, so the status
    says precision_limit and the message names the dropped eigenvalues."""
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rho = U @ np.diag([0.7, 0.3 - 2e-11, 2e-11]) @ U.T
    sigma = rand_state(rng, 2, real=True)
    lp = cvxqreg.lower(_coupling(rand_herm(rng, 6, real=True), rho, sigma))
    face = coupling_face(lp)
    assert face is not None and 1e-11 < face.dropped < 3e-11
    r = cvxqreg.solve(lp, eps=0.1, backend="numpy", tol=1e-12)
    assert r.status == "precision_limit" and "not matched" in r.message
    assert 1e-11 < r.grad_norm < 1e-10
    coarse = cvxqreg.solve(lp, eps=0.1, backend="numpy", tol=1e-8)
    assert coarse.status == "converged" and coarse.grad_norm < 1e-8
