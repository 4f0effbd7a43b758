"""Certified bounds: L <= F_0 <= U on closed forms, against SCS at 1e-10, and under fuzzing."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import scipy.linalg as sla
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

import cvxqreg
from cvxqreg import DualSolver, certify, solve_exact
from cvxqreg.bounds import anchor_state, feasible_upper_bound, restore_feasibility
from cvxqreg.operators import Dense, PartialTrace, Stacked
from cvxqreg.problem import LoweredProblem
from cvxqreg.solvers.dual import DualOracle

from .conftest import qot_problem, rand_herm, rand_state, tomography_problem

REGS = ["von_neumann", "quadratic", "tsallis"]


def _check(r, F0, slack=0.0):
    """``low <= F0 <= high`` (slack: the reference's own accuracy)."""
    lo, hi = r.bracket
    assert lo <= hi
    assert lo <= F0 + slack, (lo, F0)
    assert hi >= F0 - slack, (hi, F0)


# ---------------------------------------------------------------------------- closed forms
def ground_state_problem(rng, D=6):
    H = rand_herm(rng, D)
    return LoweredProblem(H, Dense(np.eye(D)[None]), np.array([1.0])), float(
        np.linalg.eigvalsh(H)[0]
    )


@pytest.mark.parametrize("reg", REGS)
@pytest.mark.parametrize("eps", [1.0, 1e-2, 1e-4])
def test_ground_state_bracketed(rng, reg, eps):
    lp, lam0 = ground_state_problem(rng)
    r = DualSolver(reg, backend="numpy")(lp, eps)
    _check(r, lam0)
    assert np.isfinite(r.bracket[1])
    assert r.feasible_bound == r.bracket[1]
    # the state that attains U is a state: PSD (to rounding), unit trace, energy = U (to margins)
    X = r.feasible_state
    assert np.linalg.eigvalsh(X)[0] > -1e-12 and abs(np.trace(X).real - 1) < 1e-12
    assert np.real(np.vdot(lp.H, X)) <= r.feasible_bound + 1e-12


def test_certify_ground_state_to_rtol(rng):
    lp, lam0 = ground_state_problem(rng, D=8)
    c = certify(lp, rtol=1e-8, backend="numpy")
    assert c.certified, c.summary()
    assert c.low <= lam0 <= c.high and c.width <= 1e-8 * max(1, abs(lam0))
    assert c.X is not None and np.real(np.vdot(lp.H, c.X)) <= c.high + 1e-12


def helstrom_model(rng, d=3, p=0.3):
    """Maximize the success probability of telling rho0 from rho1: X on C^2 (x) C^d,
    H = |0><0| (x) p rho0 + |1><1| (x) (1-p) rho1, Tr_1 X = I (a POVM on the diagonal blocks)."""
    r0, r1 = rand_state(rng, d), rand_state(rng, d)
    H = np.kron(np.diag([1.0, 0.0]), p * r0) + np.kron(np.diag([0.0, 1.0]), (1 - p) * r1)
    X = cp.Variable((2 * d, 2 * d), hermitian=True)
    prob = cp.Problem(
        cp.Maximize(cp.real(cp.trace(H @ X))),
        [X >> 0, cp.partial_trace(X, [2, d], axis=0) == np.eye(d)],
    )
    exact = 0.5 * (1 + np.abs(np.linalg.eigvalsh(p * r0 - (1 - p) * r1)).sum())
    return prob, float(exact)


@pytest.mark.parametrize("reg", REGS)
def test_helstrom_maximize_bracketed(rng, reg):
    prob, P = helstrom_model(rng)
    lp = cvxqreg.lower(prob)
    assert lp.sense == -1
    for eps in (1e-1, 1e-3):
        r = DualSolver(reg, backend="numpy")(lp, eps)
        _check(r, P)
        # for a Maximize the certified (dual) bound is the upper end, the feasible state the lower
        assert r.certified_bound == r.bracket[1] and r.feasible_bound == r.bracket[0]


def test_certify_helstrom(rng):
    prob, P = helstrom_model(rng)
    c = certify(prob, rtol=1e-6, backend="numpy")
    assert c.certified, c.summary()
    assert c.low <= P <= c.high and c.rel_width <= 1e-6


def fidelity_model(rng, d=3):
    """F(rho, sigma) = max Re Tr[Y] over [[rho, Y], [Y^*, sigma]] >= 0, which is
    ||sqrt(rho) sqrt(sigma)||_1."""
    rho, sigma = rand_state(rng, d), rand_state(rng, d)
    X = cp.Variable((2 * d, 2 * d), hermitian=True)
    prob = cp.Problem(
        cp.Maximize(cp.real(cp.trace(X[:d, d:]))),
        [X >> 0, X[:d, :d] == rho, X[d:, d:] == sigma],
    )
    F = np.linalg.svd(sla.sqrtm(rho) @ sla.sqrtm(sigma), compute_uv=False).sum()
    return prob, float(F)


def test_fidelity_bracketed(rng):
    prob, F = fidelity_model(rng)
    lp = cvxqreg.lower(prob)
    for reg in REGS:
        r = DualSolver(reg, backend="numpy")(lp, 1e-3)
        _check(r, F)
    c = certify(lp, rtol=1e-6, backend="numpy")
    assert c.certified and c.low <= F <= c.high


def classical_transport(rng, n=3):
    """Diagonal cost and marginals: the quantum value is the classical transport LP's value."""
    C = rng.uniform(size=(n, n))
    a, b = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    H = np.diag(C.reshape(-1)).astype(complex)
    A = Stacked([PartialTrace((n, n), 1), PartialTrace((n, n), 0)])
    q = np.concatenate([np.diag(a).reshape(-1), np.zeros(n * n), np.diag(b).reshape(-1)])
    q = np.concatenate([q, np.zeros(n * n)])
    # equality rows of the LP: row sums a, column sums b
    Aeq = np.vstack([np.kron(np.eye(n), np.ones(n)), np.kron(np.ones(n), np.eye(n))])
    lp_val = linprog(C.reshape(-1), A_eq=Aeq, b_eq=np.concatenate([a, b]), method="highs").fun
    return LoweredProblem(H, A, q), float(lp_val)


def test_classical_transport_bracketed(rng):
    lp, F0 = classical_transport(rng)
    for reg in REGS:
        for eps in (1e-1, 1e-3):
            _check(DualSolver(reg, backend="numpy")(lp, eps), F0, slack=1e-9)
    c = certify(lp, rtol=1e-6, backend="numpy")
    # linprog's HiGHS answer is itself good to ~1e-9
    assert c.certified and c.low <= F0 + 1e-9 and c.high >= F0 - 1e-9


# ---------------------------------------------------------------------------- random SDPs vs SCS
@pytest.fixture(scope="module")
def scs_references():
    rng = np.random.default_rng(2024)
    refs = []
    for make in (lambda: qot_problem(rng, n=2)[0], lambda: tomography_problem(rng, D=4)[0]):
        lp = make()
        ex = solve_exact(lp, "SCS", eps_abs=1e-10, eps_rel=1e-10)
        # SCS's own accuracy, from its residuals and gap: the slack of the comparison
        slack = 10 * (abs(ex.gap) + ex.primal_residual * np.abs(ex.alpha).sum() + 1e-9)
        refs.append((lp, ex.value, slack))
    return refs


@pytest.mark.parametrize("reg", REGS)
def test_random_sdps_against_scs(scs_references, reg):
    for lp, F0, slack in scs_references:
        for eps in (1.0, 1e-2, 1e-4):
            r = DualSolver(reg, backend="numpy")(lp, eps)
            _check(r, F0, slack)
            assert np.isfinite(r.bracket[1]), r.bound_note


def test_certify_random_sdps(scs_references):
    for lp, F0, slack in scs_references:
        c = certify(lp, rtol=1e-7, backend="numpy")
        assert c.certified, c.summary()
        assert c.low <= F0 + slack and c.high >= F0 - slack


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
    eps=st.sampled_from([1e-6, 1e-2, 10.0]),
    which=st.integers(0, 1),
)
def test_fuzz_any_dual_point_and_any_state(scs_references, seed, scale, eps, which):
    """L from a random dual point and U from a random (indefinite, infeasible) matrix, or from the
    state of a random dual point, always bracket F_0."""
    lp, F0, slack = scs_references[which]
    rng = np.random.default_rng(seed)
    oracle = DualOracle(lp, eps, cvxqreg.VonNeumann(), "numpy")
    ev = oracle.evaluate(scale * rng.normal(size=lp.n_rows))
    assert oracle.certified_lower_bound(ev) <= F0 + slack
    for X in (ev.X, scale * rand_herm(rng, lp.dim)):
        fb = feasible_upper_bound(lp, X)
        assert fb.available, fb.note
        assert fb.value >= F0 - slack
        # the returned state is positive semidefinite up to the rounding of forming it
        assert np.linalg.eigvalsh(fb.X)[0] >= -1e-13 * max(1.0, np.abs(fb.X).max())


# ---------------------------------------------------------------------------- pieces and edge cases
def test_restoration_meets_constraints(rng):
    lp, _, _ = qot_problem(rng, n=3)
    X = rand_state(rng, lp.dim)
    Xr, corr = restore_feasibility(lp, X)
    assert np.linalg.norm(lp.residual(Xr)) < 1e-14
    assert corr > 1e-3  # it did move
    assert np.allclose(Xr, Xr.conj().T)


def test_anchor_for_transport_is_the_product_state(rng):
    lp, rho, sigma = qot_problem(rng, n=3)
    a = anchor_state(lp)
    lam_prod = np.linalg.eigvalsh(rho)[0] * np.linalg.eigvalsh(sigma)[0]
    assert a.X is not None and a.lam_lower > 0
    # the maximum-entropy state (rho (x) sigma) or a better-centred projection of I / D
    assert a.lam_lower >= lam_prod * (1 - 1e-6)


def test_pure_marginal_is_bounded_on_its_face(rng):
    """A pure marginal forces the single coupling |0><0| (x) sigma: no positive definite coupling
    exists, the upper end comes from the face supp(rho) (x) supp(sigma), and the bracket holds
    the closed form F_0 = Tr[H (|0><0| (x) sigma)] (docs/bounds.md, 'Singular marginals')."""
    n = 3
    rho = np.zeros((n, n), complex)
    rho[0, 0] = 1.0
    sigma = rand_state(rng, n)
    X = cp.Variable((n * n, n * n), hermitian=True)
    H = rand_herm(rng, n * n)
    prob = cp.Problem(
        cp.Minimize(cp.real(cp.trace(H @ X))),
        [
            X >> 0,
            cp.partial_trace(X, [n, n], axis=1) == rho,
            cp.partial_trace(X, [n, n], axis=0) == sigma,
        ],
    )
    F0 = float(np.real(np.trace(H @ np.kron(rho, sigma))))
    lp = cvxqreg.lower(prob)
    r = DualSolver("von_neumann", backend="numpy", time_limit=30)(lp, 1e-2)
    lo, hi = r.bracket
    assert lo <= F0 <= hi < math.inf
    assert "supp(rho) (x) supp(sigma), of dimension 1 x 3" in r.bound_note
    c = certify(lp, rtol=1e-6, backend="numpy", time_limit=60)
    assert c.status == "certified" and c.low <= F0 <= c.high
    assert c.high - c.low <= 1e-6 * max(1.0, abs(c.low))
    # the state of the feasible end is the coupling, lifted from the face
    assert np.linalg.norm(c.X - np.kron(rho, sigma)) < 1e-6
    assert "dual end (lifted" in c.note


def test_no_strictly_feasible_state_is_reported():
    """Data that fix a pure state (Tr X = 1, <Z> = 1 forces |0><0|) leave no strictly feasible
    state and no face to reduce to: only L is guaranteed, U = inf with a reason."""
    X = cp.Variable((2, 2), hermitian=True)
    H = np.array([[0.3, 0.1j], [-0.1j, -0.2]])
    Z = np.diag([1.0, -1.0])
    prob = cp.Problem(
        cp.Minimize(cp.real(cp.trace(H @ X))),
        [X >> 0, cp.real(cp.trace(X)) == 1, cp.real(cp.trace(Z @ X)) == 1],
    )
    lp = cvxqreg.lower(prob)
    r = DualSolver("von_neumann", backend="numpy", time_limit=30)(lp, 1e-2)
    assert r.bracket[1] == math.inf and "strictly feasible" in r.bound_note
    assert np.isfinite(r.bracket[0]) and r.bracket[0] <= 0.3 + 1e-12
    c = certify(lp, rtol=1e-4, backend="numpy", max_stages=3)
    assert c.status == "no_upper_bound" and c.high == math.inf
    assert "strictly feasible" in c.message


def test_singular_marginal_skips_the_max_entropy_search(rng, monkeypatch):
    """For couplings of two marginals the product of the marginals is the maximum-entropy state:
    when it is singular no search for another anchor can succeed, and none is run (it cost 1.8 s
    of a 2.2 s solve on IM N = 3)."""
    import cvxqreg.bounds as bounds

    def no_search(*args, **kwargs):
        raise AssertionError("the maximum-entropy search ran")

    monkeypatch.setattr(bounds, "_centre_state", no_search)
    n = 3
    rho = np.diag([1.0, 0.0, 0.0]).astype(complex)
    sigma = rand_state(rng, n)
    X = cp.Variable((n * n, n * n), hermitian=True)
    prob = cp.Problem(
        cp.Minimize(cp.real(cp.trace(rand_herm(rng, n * n) @ X))),
        [
            X >> 0,
            cp.partial_trace(X, [n, n], axis=1) == rho,
            cp.partial_trace(X, [n, n], axis=0) == sigma,
        ],
    )
    a = anchor_state(cvxqreg.lower(prob))
    assert a.X is None and "strictly feasible" in a.note


def test_bracket_never_contradictory_at_the_float64_floor():
    """Quadratic at eps = 1e-9 stops at the float64 floor; the bracket's upper end is the energy
    of a feasible state, so it cannot fall below the certified lower bound (it did when the upper
    end was Tr[H X_eps])."""
    lp = cvxqreg.lower(cvxqreg.problems.wasserstein(5).problem)
    r = DualSolver("quadratic", backend="numpy", tol=1e-8, time_limit=60)(lp, 1e-9)
    lo, hi = r.bracket
    assert lo == r.certified_bound and hi == r.feasible_bound
    assert lo <= hi < lo + 1e-2


def test_certify_result_and_budget(rng):
    lp, _, _ = qot_problem(rng, n=2)
    seen = []
    c = certify(lp, rtol=1e-12, backend="numpy", max_stages=3, progress=seen.append)
    assert c.status in ("max_stages", "certified", "stalled") and len(c.stages) == len(seen) <= 3
    widths = c.history["width"]
    assert all(b <= a for a, b in zip(widths, widths[1:], strict=False))  # best-so-far
    assert "F_0 in [" in c.summary() and "CertifyResult(" in repr(c)
    with pytest.raises(cvxqreg.InvalidInputError):
        certify(lp, rtol=0)
    with pytest.raises(cvxqreg.InvalidInputError):
        certify(lp, ratio=1.0)


def test_cli_certify(tmp_path, capsys):
    from cvxqreg.cli import main

    model = tmp_path / "model.py"
    model.write_text(
        "import cvxpy as cp, numpy as np\n"
        "H = np.diag([1.0, 2.0, 3.0])\n"
        "X = cp.Variable((3, 3), hermitian=True)\n"
        "problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), [X >> 0, cp.trace(X) == 1])\n"
    )
    state = tmp_path / "X.npy"
    code = main(
        ["certify", str(model), "--rtol", "1e-6", "--backend", "numpy", "--save-state", str(state)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "status=certified" in out and "F_0 in [" in out
    X = np.load(state)
    assert np.linalg.eigvalsh(X)[0] > -1e-12 and abs(np.trace(X).real - 1) < 1e-12
    lo, hi = (float(v) for v in out.split("F_0 in [")[1].split("]")[0].split(","))
    assert lo <= 1.0 <= hi


def test_sweep_reports_feasible_bound_and_width(rng):
    lp, _, _ = qot_problem(rng, n=2)
    sw = cvxqreg.sweep(
        lp, eps=(1.0, 1e-2), reference=None, backend="numpy", regularizers=["von_neumann"]
    )
    for row in sw.rows:
        assert row.feasible_bound == row.bracket_high
        assert row.bracket_width == pytest.approx(row.bracket_high - row.bracket_low)
    assert "feas. bound" in sw.to_markdown() and "width" in sw.to_markdown()
    assert sw.rows[1].bracket_width < sw.rows[0].bracket_width


def test_benchmark_script_runs_small(tmp_path):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "certify.py"
    spec = importlib.util.spec_from_file_location("bench_certify", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "certify.md"
    rows = mod.main(
        [
            "--scale",
            "small",
            "--cases",
            "transport144",
            "im1024",
            "--no-scs",
            "--time-limit",
            "60",
            "--out",
            str(out),
        ]
    )
    assert [r["status"] for r in rows] == ["certified", "certified"]
    assert all(r["low"] <= r["high"] for r in rows)
    assert "| transport n=3 (D=9) |" in out.read_text()


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-2, 1.0, 10.0]))
def test_fuzz_maximize(seed, scale):
    """Helstrom (a Maximize): in minimization form F = -P; any dual point bounds it from below
    and any matrix, made feasible, from above; in the user's convention the roles swap."""
    prob, P = helstrom_model(np.random.default_rng(0))
    lp = cvxqreg.lower(prob)
    rng = np.random.default_rng(seed)
    oracle = DualOracle(lp, 1e-2, cvxqreg.Quadratic(), "numpy")
    ev = oracle.evaluate(scale * rng.normal(size=lp.n_rows))
    assert lp.user_value(oracle.certified_lower_bound(ev)) >= P - 1e-12
    fb = feasible_upper_bound(lp, scale * rand_herm(rng, lp.dim))
    assert fb.available and lp.user_value(fb.value) <= P + 1e-12


@pytest.mark.parametrize("reg", ["quadratic", "tsallis"])
def test_certify_other_regularizers(rng, reg):
    lp, F0 = classical_transport(rng)
    c = certify(lp, rtol=1e-5, regularizer=reg, backend="numpy")
    assert c.certified, c.summary()
    assert c.low <= F0 + 1e-9 and c.high >= F0 - 1e-9 and c.regularizer.startswith(reg[:4])


# ---------------------------------------------------------------------------- couplings
def test_shifted_product_anchor_is_a_near_optimal_coupling(rng):
    from cvxqreg.bounds import _shifted_product_state, anchor_states, coupling_marginals

    lp, rho, sigma = qot_problem(rng, n=4)
    dims, r0, s0 = coupling_marginals(lp)
    assert dims == (4, 4)
    np.testing.assert_allclose(r0, rho, atol=1e-14)
    np.testing.assert_allclose(s0, sigma, atol=1e-14)
    Y = _shifted_product_state(np.kron(rho, sigma), dims)
    assert np.linalg.norm(lp.residual(Y)) < 1e-14
    lam = np.linalg.eigvalsh(Y)[0]
    # any coupling has lambda_min <= min(lambda_min(rho) / n2, lambda_min(sigma) / n1)
    best = min(np.linalg.eigvalsh(rho)[0], np.linalg.eigvalsh(sigma)[0]) / 4
    assert 0.9 * best * (1 - 1e-9) <= lam <= best * (1 + 1e-9)
    lam_prod = np.linalg.eigvalsh(rho)[0] * np.linalg.eigvalsh(sigma)[0]
    anchors = anchor_states(lp, centre=True)
    assert anchors[0].lam_lower >= 0.9 * best * (1 - 1e-6) > lam_prod


def test_scaling_to_the_marginals_keeps_the_state_positive(rng):
    """Operator Sinkhorn: exact marginals to rounding, positive definite, close to the input."""
    from cvxqreg.bounds import coupling_marginals, scale_to_marginals

    lp, rho, sigma = qot_problem(rng, n=4)
    dims, rho, sigma = coupling_marginals(lp)
    X = np.kron(rand_state(rng, 4), rand_state(rng, 4))  # far from the marginals
    Y = scale_to_marginals(X, rho, sigma, dims)
    assert np.linalg.norm(lp.residual(Y)) < 1e-13
    assert np.linalg.eigvalsh(Y)[0] > 0
    # near a coupling the scaling moves the state by about the residual
    Z = np.kron(rho, sigma)
    W = Z + 1e-7 * rand_herm(rng, 16)
    V = scale_to_marginals(W, rho, sigma, dims)
    assert np.linalg.norm(V - W) <= 20 * np.linalg.norm(lp.residual(W))
    # a marginal that is not positive definite: no scaling
    assert scale_to_marginals(np.zeros((16, 16)), rho, sigma, dims) is None


def test_scaling_stops_at_a_share_of_a_wide_bracket(monkeypatch):
    """With a lower bound, operator Sinkhorn stops once its residual costs a small share of the
    bracket: at large eps (QWD n = 5, quadratic, eps = 10: a bracket of ~1 from the
    regularization gap) fewer rounds and a bound within that share of the one scaled to
    rounding; at small eps (eps = 1e-6, where the state's feasibility sets the bracket) the
    same bound as without it."""
    from cvxqreg import bounds, problems

    lp = cvxqreg.lower(problems.wasserstein(5).problem)
    rounds = []
    marginals = bounds._marginals
    monkeypatch.setattr(bounds, "_marginals", lambda X, d: rounds.append(1) or marginals(X, d))
    for eps, fewer in ((10.0, True), (1e-6, False)):
        r = DualSolver("quadratic", backend="numpy", tol=1e-3)(lp, eps)
        L = r.bracket[0]
        rounds.clear()
        full = feasible_upper_bound(lp, r.X)
        n_full = len(rounds)
        rounds.clear()
        early = feasible_upper_bound(lp, r.X, lower=L)
        assert "scaled to the marginals" in full.note and full.value > L
        if fewer:  # measured: 19 against 120 marginal computations, U wider by 0.05% of U - L
            assert len(rounds) < n_full / 2
            assert (
                0.0
                <= early.value - full.value
                <= 2 * bounds.SCALING_BRACKET_SHARE * (full.value - L)
            )
        else:
            assert len(rounds) == n_full and early.value == full.value


def test_coupling_upper_bound_is_tight_at_the_gradient_tolerance(rng):
    """Scaling instead of projecting: at tol 1e-6 the certified U lies within ~1e-6 of F_0
    (SCS at 1e-10), where projection plus mixing with rho (x) sigma was far looser."""
    lp, _, _ = qot_problem(rng, n=3)
    ex = solve_exact(lp, "SCS", eps_abs=1e-10, eps_rel=1e-10)
    res = DualSolver(backend="numpy", tol=1e-6)(lp, 1e-3)
    fb = feasible_upper_bound(lp, res.X)
    slack = 10 * (abs(ex.gap) + ex.primal_residual * np.abs(ex.alpha).sum() + 1e-9)
    assert fb.value >= ex.value - slack
    assert fb.value - ex.value <= 1e-5
    assert "scaled to the marginals" in fb.note or fb.t == 0.0


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
@pytest.mark.parametrize("scale", [1.0, 1e10, 1e100, 1e275])
def test_regularization_bound_is_rigorous_at_huge_alpha(rng, reg, scale):
    """Far from the optimum, ``alpha + s c`` cancels and the eigenvalues of ``W`` carry errors
    of ``u ||W||``: the dual value's rounding bound covers both, so the lower bounds stay below
    ``F_0 = lambda_min(H)`` (at 1e275 the value's error once made the bound 6e259)."""
    from cvxqreg.bounds import regularization_lower_bound
    from cvxqreg.regularizers import get_regularizer
    from cvxqreg.solvers.dual import DualOracle

    lp, lam0 = ground_state_problem(rng)
    oracle = DualOracle(lp, 1e-2, get_regularizer(reg), "numpy")
    with np.errstate(all="ignore"):
        ev = oracle.evaluate(np.array([2.7 * scale]))
        low = regularization_lower_bound(
            oracle.reg, oracle.eps, 1.0, lp.dim, ev.value - oracle.dual_rounding(ev)
        )
        shift = oracle.certified_lower_bound(ev)
    assert low <= lam0 and shift <= lam0


def test_bracket_after_a_stage_stopped_early_is_at_the_target_eps(rng, monkeypatch):
    """A ladder stopped in an intermediate stage (time limit) reports value, state and bracket at
    the target eps, not at the stage's: with the stage's dual value and the target's eps the
    regularization bound was above F_0. The time limit is simulated (no timing)."""
    import dataclasses

    from cvxqreg.results import Status
    from cvxqreg.solvers.regularized import DualSolver as DS

    lp, lam0 = ground_state_problem(rng, D=8)
    H = np.diag(np.linspace(0.0, 50.0, 8))
    lp = type(lp)(H, lp.A, lp.q)  # a cost spread of 50: several eps stages above 1e-3
    run = DS._run

    def stopped(self, oracle, x0, **kw):
        out = run(self, oracle, x0, **kw)
        return dataclasses.replace(out, status=Status.TIME_LIMIT)

    monkeypatch.setattr(DS, "_run", stopped)
    solver = DualSolver("quadratic", backend="numpy", time_limit=100.0)
    assert len(solver.ladder(lp, 1e-3)) > 2
    r = solver(lp, 1e-3)
    assert r.status == "time_limit"
    assert r.bracket[0] <= 0.0 <= r.bracket[1]  # F_0 = lambda_min(diag(0 .. 50)) = 0
    assert r.eps == 1e-3


@pytest.mark.parametrize("cplx", [False, True])
def test_cholesky_certificate_is_sound(rng, cplx):
    """``_certified_above(X, s)`` holds only when ``lambda_min(X) > s``: with the smallest
    eigenvalue known exactly (up to the rounding of forming ``X``), certified at half of it,
    never above it, never for an indefinite or singular matrix."""
    from cvxqreg.bounds import _certified_above

    D = 40
    G = rng.standard_normal((D, D)) + (1j * rng.standard_normal((D, D)) if cplx else 0.0)
    Q, _ = np.linalg.qr(G)
    w = np.geomspace(1e-6, 1.0, D)
    X = (Q * w) @ Q.conj().T
    X = 0.5 * (X + X.conj().T)
    lmin = float(np.linalg.eigvalsh(X)[0])
    assert _certified_above(X, 0.5 * lmin)
    assert _certified_above(X, 0.0)
    assert not _certified_above(X, lmin * (1 + 1e-6))
    assert not _certified_above(X, 2.0 * lmin)
    w[0] = -1e-9  # indefinite by a hair
    Xi = (Q * w) @ Q.conj().T
    assert not _certified_above(0.5 * (Xi + Xi.conj().T), 0.0)
    assert not _certified_above(np.zeros((D, D)), 0.0)


def test_cholesky_certificate_replaces_the_eigenvalue_solve(rng, monkeypatch):
    """Given an estimate of ``lambda_min(X)`` that predicts a positive definite restored state,
    the upper bound is certified by a Cholesky factorization: the same value as with the
    eigenvalue solve, no eigenvalue solve, and a certified ``lambda_min`` below the true one.
    A wrong estimate only costs the eigenvalue solve."""
    import cvxqreg.bounds as bounds

    lp, _ = tomography_problem(rng, D=6)
    r = DualSolver("von_neumann", backend="numpy", tol=1e-8)(lp, 1.0)
    X = r.X
    lmin = float(np.linalg.eigvalsh(X)[0])
    ref = feasible_upper_bound(lp, X)
    assert ref.t == 0.0
    calls = []
    real = bounds._lambda_min_lower
    monkeypatch.setattr(bounds, "_lambda_min_lower", lambda M: calls.append(1) or real(M))
    fb = feasible_upper_bound(lp, X, lam_estimate=lmin)
    assert not calls
    assert fb.value == ref.value and fb.t == 0.0
    true = float(np.linalg.eigvalsh(fb.X)[0])
    assert 0 < fb.lam_lower <= true
    fb = feasible_upper_bound(lp, X, lam_estimate=10.0)  # wrong: Cholesky fails, eigvalsh runs
    assert calls and fb.value == ref.value and fb.lam_lower == ref.lam_lower


def test_centre_anchor_stops_at_the_first_certified_stage(monkeypatch):
    """The maximum-entropy anchor is solved to the tolerances of ``CENTRE_TOLS`` in turn and
    kept at the first whose restored state is certified positive definite: QT1 on 3 qubits
    (``lambda_min`` about 0.018) at the first, with the same anchor as a solve to 1e-11; QT2 (a
    cat state, whose maximum-entropy state is singular to rounding) runs every stage and reports
    no anchor."""
    import cvxqreg.bounds as bounds
    import cvxqreg.solvers.newton as newton

    real = newton.newton_cg_maximize
    tols = []

    def spy(*args, **kwargs):
        tols.append(kwargs["tol"])
        return real(*args, **kwargs)

    monkeypatch.setattr(newton, "newton_cg_maximize", spy)
    qt1 = cvxqreg.lower(cvxqreg.problems.tomography("QT1", n_qubits=3).problem)
    a = anchor_state(qt1)
    assert tols == [bounds.CENTRE_TOLS[0]]
    assert a.source == "maximum-entropy feasible state" and a.lam_lower > 1e-3
    monkeypatch.setattr(bounds, "CENTRE_TOLS", (1e-11,))
    ref = anchor_state(cvxqreg.lower(cvxqreg.problems.tomography("QT1", n_qubits=3).problem))
    assert a.lam_lower == pytest.approx(ref.lam_lower, rel=1e-6)
    assert np.abs(a.X - ref.X).max() <= 1e-6
    monkeypatch.undo()
    monkeypatch.setattr(newton, "newton_cg_maximize", spy)
    tols.clear()
    qt2 = cvxqreg.lower(cvxqreg.problems.tomography("QT2", n_qubits=3).problem)
    assert anchor_state(qt2).X is None
    assert tols == list(bounds.CENTRE_TOLS)


def test_max_entropy_anchor_starts_from_a_von_neumann_solve(monkeypatch):
    """With ``H = 0`` a von Neumann solve's ``alpha / eps`` is the maximum-entropy dual point:
    the anchor search started there takes fewer Newton iterations and finds the same anchor; a
    start with a larger gradient than ``0`` is not taken."""
    import cvxqreg.bounds as bounds
    import cvxqreg.solvers.newton as newton

    real = newton.newton_cg_maximize
    iters = []

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        iters.append(out.iterations)
        return out

    monkeypatch.setattr(newton, "newton_cg_maximize", spy)

    def lowered():
        return cvxqreg.lower(cvxqreg.problems.tomography("QT1", n_qubits=3).problem)

    cold = anchor_state(lowered())
    n_cold = sum(iters)
    lp = lowered()
    r = DualSolver("von_neumann", backend="numpy", tol=1e-4)(lp, 0.5)
    del bounds._RESTORED_ANCHORS[lp]  # the solve's own state: the search would not run
    iters.clear()
    warm = anchor_state(lp, start=np.asarray(r.alpha) / 0.5)
    assert 0 < sum(iters) < n_cold
    assert warm.lam_lower == pytest.approx(cold.lam_lower, rel=1e-6)
    assert np.abs(warm.X - cold.X).max() <= 1e-6
    iters.clear()
    far = anchor_state(lowered(), start=np.full(lp.n_rows, 50.0))
    assert sum(iters) == n_cold and far.lam_lower == pytest.approx(cold.lam_lower, rel=1e-12)


def test_anchor_search_reuses_the_dual_point_of_an_earlier_von_neumann_solve(monkeypatch):
    """A von Neumann solve whose bound needs no anchor records ``alpha / eps`` and its restored
    state. A later solve of the same problem with another regularizer that needs an anchor
    mixes with that state (no search; its ``lambda_min`` certified by an eigenvalue solve, close
    to the maximum-entropy state's); without it, the search starts at the recorded point: fewer
    Newton iterations than from ``0``, the same anchor and the same bracket."""
    import cvxqreg.bounds as bounds
    import cvxqreg.solvers.newton as newton

    real = newton.newton_cg_maximize
    iters = []

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        if kwargs.get("tol") in bounds.CENTRE_TOLS:
            iters.append(out.iterations)
        return out

    monkeypatch.setattr(newton, "newton_cg_maximize", spy)

    def lowered():
        return cvxqreg.lower(cvxqreg.problems.tomography("QT1", n_qubits=3).problem)

    quad = DualSolver("quadratic", backend="numpy", tol=1e-8)
    cold_lp = lowered()
    cold = quad(cold_lp, 0.1)
    n_cold = sum(iters)
    assert n_cold > 0 and cold.feasible_bound < math.inf
    assert "maximum-entropy" in cold.bound_note
    lp = lowered()
    DualSolver("von_neumann", backend="numpy", tol=1e-8)(lp, 0.5)
    assert lp not in bounds._ANCHORS  # its own state was certified: no anchor needed
    eps, recorded, sharp = bounds._RESTORED_ANCHORS[lp]
    assert eps == 0.5 and not sharp  # certified by the bound; sharpened only when used
    iters.clear()
    warm = quad(lp, 0.1)
    assert iters == [] and "restored state of the von_neumann solve" in warm.bound_note
    assert warm.feasible_bound < math.inf
    eps, restored, sharp = bounds._RESTORED_ANCHORS[lp]
    assert sharp and restored.X is recorded.X and restored.lam_lower >= recorded.lam_lower
    assert restored.lam_lower > 0.5 * anchor_state(cold_lp).lam_lower
    assert restored.lam_lower <= float(np.linalg.eigvalsh(restored.X)[0])
    # without the restored state, the search from the recorded dual point
    lp2 = lowered()
    DualSolver("von_neumann", backend="numpy", tol=1e-8)(lp2, 0.5)
    del bounds._RESTORED_ANCHORS[lp2]
    iters.clear()
    warm2 = quad(lp2, 0.1)
    assert len(iters) >= 1 and sum(iters) < n_cold  # searched, from the recorded point
    assert warm2.feasible_bound == pytest.approx(cold.feasible_bound, rel=1e-9, abs=1e-12)
    a, b = anchor_state(lp2), anchor_state(cold_lp)
    assert a.lam_lower == pytest.approx(b.lam_lower, rel=1e-6)


def test_feasibility_problem_bound_from_a_known_anchor():
    """``H = 0``: once the problem has a certified strictly feasible state, a solve that does
    not return its state takes ``U = 0`` from it (no restoration); the bracket is the one the
    full path gives, and a problem with a cost never takes this path."""
    import cvxqreg.bounds as bounds

    lp = cvxqreg.lower(cvxqreg.problems.tomography("QT1", n_qubits=3).problem)
    assert lp.cost_norm == 0.0
    s = DualSolver("von_neumann", backend="numpy", tol=1e-8)
    first = s(lp, 0.5, return_state=False)  # nothing known yet: the full path
    assert not first.bound_note.startswith("H = 0") and lp in bounds._RESTORED_ANCHORS
    for reg in ("von_neumann", "quadratic"):
        s = DualSolver(reg, backend="numpy", tol=1e-8)
        short = s(lp, 0.05, return_state=False)
        full = s(lp, 0.05)
        assert short.bound_note.startswith("H = 0") and short.feasible_state is None
        assert not full.bound_note.startswith("H = 0") and full.feasible_state is not None
        assert short.feasible_bound == full.feasible_bound == 0.0
        assert short.certified_bound == full.certified_bound <= 0.0
    # a cost: the state is always restored
    lp2, _ = tomography_problem(np.random.default_rng(2), D=6, n_obs=12)
    s = DualSolver("von_neumann", backend="numpy", tol=1e-8)
    s(lp2, 0.5, return_state=False)
    r = s(lp2, 0.05, return_state=False)
    assert lp2.cost_norm > 0 and not r.bound_note.startswith("H = 0")
