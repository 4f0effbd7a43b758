"""Low-rank Hessian-vector products: equal to the full Daleckii-Krein product up to the
documented truncation, and to finite differences of the gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvxqreg import DualSolver, InvalidInputError
from cvxqreg.operators import Dense
from cvxqreg.problem import LoweredProblem
from cvxqreg.regularizers import Custom, Quadratic, Tsallis, VonNeumann
from cvxqreg.solvers.dual import LOW_RANK_GAP, DualOracle

from .conftest import BACKENDS, qot_problem, rand_herm, rand_state, tomography_problem

REGS = [VonNeumann(), Quadratic(), Tsallis(1.5), Tsallis(3.0)]


def _real_problem(rng, D=8, n_obs=6):
    rho = rand_state(rng, D, real=True)
    Qs = [np.eye(D)] + [rand_herm(rng, D, real=True) for _ in range(n_obs)]
    q = np.array([np.trace(Q @ rho) for Q in Qs])
    return LoweredProblem(rand_herm(rng, D, real=True), Dense(np.stack(Qs)), q, real=True)


PROBLEMS = {
    "partial_trace": lambda rng: qot_problem(rng, n=4)[0],  # spectral-native operator
    "dense_complex": lambda rng: tomography_problem(rng, D=12, n_obs=8)[0],
    "dense_real": _real_problem,
}


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("kind", sorted(PROBLEMS))
@pytest.mark.parametrize("eps", [5.0, 0.05, 0.005])
@pytest.mark.parametrize("eliminate", [True, False])
def test_low_rank_product_equals_full_product(rng, reg, kind, eps, eliminate):
    P = PROBLEMS[kind](rng)
    oracle = DualOracle(P, eps, reg, "numpy", eliminate=eliminate)
    # a centred iterate keeps the plain von Neumann dual finite at small eps
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    if not eliminate and not np.all(np.isfinite(ev.w)):
        pytest.skip("the plain dual overflows at this iterate (its true value is -inf)")
    full = oracle.hessian_operator(ev, "full")
    assert oracle.last_products == "full"
    low = oracle.hessian_operator(ev, "low_rank")
    r = int(oracle.last_products.split("=")[1].rstrip(")"))
    assert 1 <= r <= P.dim
    # the plain (non-eliminated) operator bounds the scale of every entry: the Schur complement
    # cancels against it, so its magnitude is the scale of the rounding error
    scale_op = DualOracle(P, eps, reg, "numpy", eliminate=False).hessian_operator(ev, "full")
    for v in rng.normal(size=(3, P.n_rows)):
        a, b = full(v), low(v)
        scale = np.abs(scale_op(v)).max() + np.abs(a).max()
        assert np.abs(a - b).max() <= 1e-12 * scale


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_low_rank_product_is_truncated_when_the_state_is_low_rank(rng, reg):
    """A state with a few dominant eigenvalues gives a small top block, and the product still
    matches finite differences of the gradient."""
    n = 4
    P, _, _ = qot_problem(rng, n=n)
    oracle = DualOracle(P, 0.01, reg, "numpy")
    alpha = rng.normal(size=P.n_rows) * 0.3
    ev = oracle.evaluate(alpha)
    neg_hess = oracle.hessian_operator(ev, "low_rank")
    r = int(oracle.last_products.split("=")[1].rstrip(")"))
    assert r < P.dim  # the bottom block really is dropped
    h = 1e-7
    for v in rng.normal(size=(3, P.n_rows)):
        fd = -(oracle.evaluate(alpha + h * v).grad - oracle.evaluate(alpha - h * v).grad) / (2 * h)
        np.testing.assert_allclose(neg_hess(v), fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())


COMPLEMENT_REGS = [Quadratic(), Tsallis(2.0)]


@pytest.mark.parametrize("reg", COMPLEMENT_REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("kind", sorted(PROBLEMS))
@pytest.mark.parametrize("eps", [500.0, 5.0, 0.05])
@pytest.mark.parametrize("eliminate", [True, False])
def test_complement_product_equals_full_product(rng, reg, kind, eps, eliminate):
    """``c E - (P + P^*)`` from the block without curvature is the Daleckii-Krein product,
    whatever the size of that block (``n = 0``: a full-rank state, ``c A(A*(v))``)."""
    P = PROBLEMS[kind](rng)
    oracle = DualOracle(P, eps, reg, "numpy", eliminate=eliminate)
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    n = P.dim - oracle._low_rank_split(ev)
    assert n == int(np.count_nonzero(reg.d2psi(ev.lam / eps) == 0))
    full, comp = oracle._full_product(ev), oracle._complement_product(ev, n)
    for v in rng.normal(size=(3, P.n_rows)):
        a, b = full(v), comp(v)
        assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_auto_products_take_the_smaller_block(rng, reg):
    """``auto``: low-rank on a small top block; with a constant curvature on the support and a
    top block above half of ``D``, the complement (exact: the same operator); else full."""
    P, _ = tomography_problem(rng, D=12, n_obs=20)
    seen = set()
    for eps in (1e3, 3.0, 1.0, 0.3, 0.01):
        oracle = DualOracle(P, eps, reg, "numpy")
        ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
        auto = oracle.hessian_operator(ev)
        r = oracle._low_rank_split(ev)
        kind = oracle.last_products.split("(")[0]
        seen.add(kind)
        if r <= P.dim // 2:
            assert oracle.last_products == f"low_rank(r={r})"
        elif reg.support_curvature is not None:
            assert oracle.last_products == f"complement(n={P.dim - r})"
        else:
            assert kind == "full"
        full = oracle.hessian_operator(ev, "full")
        for v in rng.normal(size=(2, P.n_rows)):
            a = full(v)
            assert np.abs(auto(v) - a).max() <= 1e-12 * np.abs(a).max() or kind == "low_rank"
    want = {"low_rank", "complement"} if reg.support_curvature is not None else {"full"}
    assert want <= seen


def test_support_curvature_only_where_psi_prime_is_affine():
    assert Quadratic().support_curvature == 1.0
    assert Tsallis(2.0).support_curvature == 0.5
    for reg in (VonNeumann(), Tsallis(1.5), Tsallis(3.0)):
        assert reg.support_curvature is None
    t = np.linspace(-3.0, 3.0, 13)
    for reg in COMPLEMENT_REGS:  # psi'' = c on the support, psi' constant off it
        d2 = reg.d2psi(t)
        assert set(np.unique(d2)) == {0.0, reg.support_curvature}
        assert np.ptp(reg.dpsi(t[d2 == 0])) == 0


def test_dropped_block_is_below_the_bound(rng):
    """Every divided difference with both eigenvalues under the cut is at most e^-gap times
    psi''(t_max) (von Neumann, Tsallis q < 2), or exactly zero (quadratic, Tsallis q >= 2)."""
    t = np.sort(rng.uniform(-200.0, 3.0, size=300))
    for reg in REGS:
        cut = reg.negligible_cut(t[-1], LOW_RANK_GAP)
        low = t[t <= cut]
        assert low.size > 10
        G = reg.divided_differences(low)
        top = float(reg.d2psi(t[-1:])[0])
        assert np.all(G >= 0)
        if isinstance(reg, Quadratic) or (isinstance(reg, Tsallis) and reg.order >= 2):
            assert np.all(G == 0)
        else:
            assert G.max() <= math.exp(-LOW_RANK_GAP) * top * (1 + 1e-12)
            # and the cut is not needlessly low: just above it the bound is nearly attained
            assert reg.d2psi(np.array([cut + 1.0]))[0] > math.exp(-LOW_RANK_GAP) * top


def test_von_neumann_divided_differences_are_accurate(rng):
    """The expm1 form has no cancellation at small gaps and no 0 * inf at large ones."""
    reg = VonNeumann()
    t = np.array([-800.0, -1.0, -1.0 + 1e-7, -1.0 + 1e-3, 0.5, 2.0])
    G = reg.divided_differences(t)
    assert np.all(np.isfinite(G))
    assert G[0, 5] == pytest.approx((math.exp(1.0) - 0.0) / 802.0, rel=1e-15)
    exact = math.exp(-2.0) * math.expm1(1e-7) / 1e-7
    assert G[1, 2] == pytest.approx(exact, rel=1e-15)
    exact = math.exp(-2.0) * math.expm1(1e-3) / 1e-3
    assert G[1, 3] == pytest.approx(exact, rel=1e-15)
    np.testing.assert_array_equal(G, G.T)
    np.testing.assert_allclose(np.diag(G), np.exp(t - 1.0), rtol=1e-15)
    # rows against a subset of columns are the same entries
    np.testing.assert_array_equal(reg.divided_differences(t[3:], t), G[3:])


def test_custom_regularizer_uses_the_full_product(rng):
    P, _ = tomography_problem(rng, D=5, n_obs=4)
    vn = VonNeumann()
    custom = Custom(phi_fn=vn.phi, psi_fn=vn.psi, dpsi_fn=vn.dpsi, d2psi_fn=vn.d2psi)
    oracle = DualOracle(P, 0.05, custom, "numpy")
    ev = oracle.evaluate(np.zeros(P.n_rows))
    oracle.hessian_operator(ev, "low_rank")
    assert oracle.last_products == "full"
    with pytest.raises(InvalidInputError, match="products"):
        oracle.hessian_operator(ev, "approximate")


@pytest.mark.parametrize("reg", ["von_neumann", "quadratic"])
def test_solves_agree_with_either_product(reg):
    """Newton-CG with low-rank products reaches the same optimum as with full products."""
    P, _, _ = qot_problem(np.random.default_rng(3), n=4)
    res = {}
    for products in ("full", "low_rank"):
        s = DualSolver(reg, backend="numpy", hessian="cg", tol=1e-9, hessian_products=products)
        res[products] = s(P, 0.02)
        assert ("low-rank" in res[products].message) == (products == "low_rank")
    assert res["full"].converged and res["low_rank"].converged
    assert abs(res["full"].dual_value - res["low_rank"].dual_value) < 1e-10


def test_solves_agree_with_the_complement_product(monkeypatch):
    """A quadratic solve whose states keep most of the spectrum: Newton-CG with the complement
    products (``auto``) reaches the full products' optimum in as many iterations."""
    P, _ = tomography_problem(np.random.default_rng(4), D=12, n_obs=20)
    built = []
    operator = DualOracle.hessian_operator

    def spy(self, *args, **kwargs):
        out = operator(self, *args, **kwargs)
        built.append(self.last_products)
        return out

    monkeypatch.setattr(DualOracle, "hessian_operator", spy)
    res = {}
    for products in ("full", "auto"):
        s = DualSolver(
            "quadratic", backend="numpy", hessian="cg", tol=1e-9, hessian_products=products
        )
        res[products] = s(P, 30.0)
        assert res[products].converged
    n_full = res["full"].iterations
    assert set(built[:n_full]) == {"full"}
    assert all(b.startswith("complement(n=") and b != "complement(n=0)" for b in built[n_full:])
    assert res["auto"].iterations == res["full"].iterations
    assert abs(res["full"].dual_value - res["auto"].dual_value) < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_complement_product_on_each_backend(rng, backend):
    """The complement product on a backend equals the full NumPy product."""
    P, _ = tomography_problem(rng, D=12, n_obs=20)
    alpha = rng.normal(size=P.n_rows) * 0.3
    ref_oracle = DualOracle(P, 100.0, Quadratic(), "numpy")
    ref = ref_oracle.hessian_operator(ref_oracle.evaluate(alpha), "full")
    oracle = DualOracle(P, 100.0, Quadratic(), backend)
    comp = oracle.hessian_operator(oracle.evaluate(alpha))
    assert oracle.last_products == "complement(n=1)"
    for v in rng.normal(size=(2, P.n_rows)):
        a = ref(v)
        assert np.abs(comp(v) - a).max() <= 1e-11 * np.abs(a).max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_low_rank_product_on_each_backend(rng, backend, reg):
    """The low-rank product on a backend equals the full NumPy product."""
    P, _, _ = qot_problem(rng, n=4)
    alpha = rng.normal(size=P.n_rows) * 0.3
    ref_oracle = DualOracle(P, 0.01, reg, "numpy")
    ref = ref_oracle.hessian_operator(ref_oracle.evaluate(alpha), "full")
    oracle = DualOracle(P, 0.01, reg, backend)
    low = oracle.hessian_operator(oracle.evaluate(alpha), "low_rank")
    assert oracle.last_products.startswith("low_rank")
    for v in rng.normal(size=(2, P.n_rows)):
        a = ref(v)
        assert np.abs(low(v) - a).max() <= 1e-11 * np.abs(a).max()


# ------------------------------------------------------------------ the real reduction
def _imag_rows_problem(rng, real_data):
    """Two-qubit transport whose data are real (``real_data``) or have complex marginals."""
    from cvxqreg.operators import PartialTrace, Stacked

    n = 3
    if real_data:
        rho, sigma = rand_state(rng, n, real=True), rand_state(rng, n, real=True)
        H = rand_herm(rng, n * n, real=True)
    else:
        rho, sigma = rand_state(rng, n), rand_state(rng, n)
        H = rand_herm(rng, n * n)
    op = Stacked([PartialTrace((n, n), 1), PartialTrace((n, n), 0)])
    q = np.asarray(op.apply(np.kron(rho, sigma)))
    return LoweredProblem(H.astype(complex), op, q)


def test_real_reduction_detected_only_for_real_data(rng):
    P = _imag_rows_problem(rng, True)
    oracle = DualOracle(P, 0.1, VonNeumann(), "numpy")
    assert oracle.real and oracle.imag_rows is not None
    assert 0 < oracle.imag_rows.sum() < P.n_rows
    assert oracle.imag_rows is not None and not np.any(P.q[oracle.imag_rows])
    assert DualOracle(_imag_rows_problem(rng, False), 0.1, VonNeumann(), "numpy").imag_rows is None
    tomo, _ = tomography_problem(rng, D=4, n_obs=5)
    assert DualOracle(tomo, 0.1, VonNeumann(), "numpy").imag_rows is None


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_real_reduction_equals_the_complex_oracle(rng, reg, monkeypatch):
    import cvxqreg.solvers.dual as dual_mod

    P = _imag_rows_problem(rng, True)
    red = DualOracle(P, 0.1, reg, "numpy")
    with monkeypatch.context() as m:
        m.setattr(dual_mod, "_real_reduction", lambda problem: None)
        full = DualOracle(P, 0.1, reg, "numpy")
    assert not full.real
    alpha = rng.normal(size=P.n_rows)
    alpha[red.imag_rows] = 0.0
    a, b = red.evaluate(alpha), full.evaluate(alpha)
    assert abs(a.value - b.value) <= 1e-12 * (1 + abs(b.value))
    np.testing.assert_allclose(a.grad, b.grad, atol=1e-12)
    assert np.all(a.grad[red.imag_rows] == 0) or np.abs(a.grad[red.imag_rows]).max() < 1e-14
    assert np.iscomplexobj(a.X) and np.allclose(a.X, b.X, atol=1e-12)
    # the Hessian agrees on directions within the reduction
    Ha, Hb = red.hessian_operator(a), full.hessian_operator(b)
    for v in rng.normal(size=(2, P.n_rows)):
        v[red.imag_rows] = 0.0
        np.testing.assert_allclose(Ha(v), Hb(v), atol=1e-10 * np.abs(Hb(v)).max())
    # a point off the reduction is evaluated at its projection (a genuine dual point)
    off = alpha.copy()
    off[red.imag_rows] = 1.0
    assert red.evaluate(off).value == pytest.approx(a.value, abs=1e-12)
    assert np.array_equal(red.evaluate(off).alpha, a.alpha)


def test_real_reduction_solve_matches_the_complex_solve(monkeypatch):
    import cvxqreg.solvers.dual as dual_mod

    P = _imag_rows_problem(np.random.default_rng(5), True)
    r_red = DualSolver(backend="numpy", tol=1e-9)(P, 0.05)
    with monkeypatch.context() as m:
        m.setattr(dual_mod, "_real_reduction", lambda problem: None)
        r_full = DualSolver(backend="numpy", tol=1e-9)(P, 0.05)
    assert r_red.converged and r_full.converged
    assert abs(r_red.dual_value - r_full.dual_value) < 1e-10
    assert abs(r_red.certified_bound - r_full.certified_bound) < 1e-8
    assert np.iscomplexobj(r_red.X) and np.allclose(r_red.X, r_full.X, atol=1e-6)


def test_real_reduction_dense_hessian_matches_products(rng):
    P = _imag_rows_problem(rng, True)
    oracle = DualOracle(P, 0.3, VonNeumann(), "numpy")
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    Hm = oracle.hessian_matrix(ev)
    for products in ("full", "low_rank"):
        op = oracle.hessian_operator(ev, products)
        cols = np.column_stack([op(e) for e in np.eye(P.n_rows)])
        np.testing.assert_allclose(Hm, cols, rtol=1e-10, atol=1e-12 * np.abs(cols).max())


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("kind", sorted(PROBLEMS))
@pytest.mark.parametrize("eps", [5.0, 0.005])
@pytest.mark.parametrize("eliminate", [True, False])
def test_dense_low_rank_hessian_is_the_matrix_of_the_products(rng, reg, kind, eps, eliminate):
    """The dense Hessian built from the sparse rows and the top block equals the operator of
    the (low-rank or full) products applied to the unit vectors."""
    P = PROBLEMS[kind](rng)
    oracle = DualOracle(P, eps, reg, "numpy", eliminate=eliminate)
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    if not np.all(np.isfinite(ev.w)):
        pytest.skip("the plain dual overflows at this iterate (its true value is -inf)")
    for products in ("full", "low_rank"):
        op = oracle.hessian_operator(ev, products)
        cols = np.column_stack([op(e) for e in np.eye(P.n_rows)])
        cost = oracle.low_rank_dense_cost(ev, products)
        assert cost is not None and cost[1] > 0
        r = cost[0]
        assert r == P.dim if products == "full" else r <= P.dim
        Hm = oracle.low_rank_hessian_matrix(ev, r)
        assert np.array_equal(Hm, Hm.T)
        scale = np.abs(cols).max()
        assert np.abs(Hm - cols).max() <= 1e-12 * scale, products


def test_newton_switches_to_the_dense_low_rank_hessian(rng):
    """When CG needs more products than forming the matrix costs, Newton factors the dense
    low-rank Hessian; the optimum is the same as with CG only."""
    P, _, _ = qot_problem(rng, n=7)  # D = 49: above the size where the full dense form is used
    runs = {}
    for hessian in ("auto", "cg"):
        # plain CG (the marginal preconditioner would make CG cheap enough not to switch)
        res = DualSolver(backend="numpy", tol=1e-9, hessian=hessian, preconditioner="none")(P, 1e-3)
        assert res.status == "converged"
        runs[hessian] = res
    assert "low-rank Hessian factorizations" in runs["auto"].message
    assert "factorizations" not in runs["cg"].message
    a, c = runs["auto"], runs["cg"]
    assert abs(a.dual_value - c.dual_value) <= 1e-9 * max(1.0, abs(c.dual_value))
    assert np.linalg.norm(P.residual(a.X)) <= 1e-8


def test_capped_cg_switches_to_the_dense_low_rank_hessian(rng, monkeypatch):
    """A CG solve that stops at its cap gives an inexact Newton step; then Newton forms the dense
    low-rank Hessian (exact steps) if it costs at most CAPPED_DENSE_FACTOR caps. The quadratic
    regularizer's semismooth dual needs those exact steps: with the rule off, truncated CG
    crawls."""
    from cvxqreg.solvers import newton

    P, _, _ = qot_problem(rng, n=7)  # D = 49: above the size where the full dense form is used
    runs = {}
    for factor in (0, 8):
        monkeypatch.setattr(newton, "CAPPED_DENSE_FACTOR", factor)
        oracle = DualOracle(P, 1.0, Quadratic(), "numpy")
        out = newton.newton_cg_maximize(
            oracle,
            np.zeros(P.n_rows),
            tol=1e-9,
            max_iter=400,
            hessian="auto",
            preconditioner="none",
            cg_max_iter=10,  # CG stops at the cap
        )
        ev = oracle.evaluate(out.x)
        cost = oracle.low_rank_dense_cost(ev)
        assert cost is not None and 10 < cost[1] <= 8 * 10  # only the capped rule can switch
        runs[factor] = (out, ev)
    (off, _), (on, ev) = runs[0], runs[8]
    assert "low-rank Hessian factorizations" in on.message
    assert "factorizations" not in off.message
    assert on.status == "converged", on.message
    ref = DualSolver("quadratic", backend="numpy", tol=1e-9)(P, 1.0)
    assert abs(ev.value - ref.dual_value) <= 1e-9 * max(1.0, abs(ref.dual_value))
    assert on.iterations < off.iterations


@pytest.mark.parametrize("kind", ["transport", "lowered QWD", "lowered IM (real)"])
def test_dense_low_rank_hessian_from_marginal_entries_matches_the_sparse_rows(rng, kind):
    """Rows that read entries of partial traces form all J_i from one product per marginal; the
    matrix equals the one built from the sparse rows (complex, lowered with a Selected subset,
    and under the real reduction)."""
    import cvxqreg
    from cvxqreg import problems

    if kind == "transport":
        P = qot_problem(rng, n=4)[0]
    elif kind == "lowered QWD":
        P = cvxqreg.lower(problems.wasserstein(4).problem)
    else:
        P = cvxqreg.lower(problems.ising(2).problem)
    for reg in (Quadratic(), VonNeumann()):
        oracle = DualOracle(P, 0.3, reg, "numpy")
        assert oracle._marginal_rows() is not None
        ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
        r = P.dim // 2
        structured = oracle.low_rank_hessian_matrix(ev, r)
        oracle._shared["marginal_rows"] = None  # the generic path: sparse rows
        sparse = oracle.low_rank_hessian_matrix(ev, r)
        del oracle._shared["marginal_rows"]  # shared with the problem's other oracles
        assert np.abs(structured - sparse).max() <= 1e-13 * np.abs(sparse).max()


@pytest.mark.parametrize("kind", ["transport", "QWD in its phase gauge (real, rows dropped)"])
@pytest.mark.parametrize("marginal", [True, False], ids=["marginal rows", "sparse rows"])
@pytest.mark.parametrize("block", [None, 1], ids=["one block", "blocks of one eigenvector"])
def test_dense_low_rank_hessian_by_blocks_is_the_matrix_of_the_products(
    rng, kind, marginal, block, monkeypatch
):
    """The dense low-rank Hessian is accumulated over blocks of the top eigenvectors and forms
    only the rows that can enter (in real arithmetic those with a real part); whatever the
    blocks and the path, it is the operator of the low-rank products on the unit vectors, and
    zero on the rows that do not enter."""
    import cvxqreg
    import cvxqreg.solvers.dual as dual_mod
    from cvxqreg import problems
    from cvxqreg.face import coupling_gauge

    if kind == "transport":
        P = qot_problem(rng, n=4)[0]
    else:
        P = coupling_gauge(cvxqreg.lower(problems.wasserstein(4).problem)).problem
    if block is not None:
        monkeypatch.setattr(dual_mod, "_LOW_RANK_BLOCK_ENTRIES", block)
    oracle = DualOracle(P, 0.3, Quadratic(), "numpy")
    keep = oracle._entering_rows()
    assert (keep.size < P.n_rows) == (kind != "transport")
    if not marginal:
        monkeypatch.setitem(oracle._shared, "marginal_rows", None)
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    r = P.dim // 2
    Hm = oracle.low_rank_hessian_matrix(ev, r)
    op = oracle._low_rank_product(ev, r)
    cols = np.column_stack([op(e) for e in np.eye(P.n_rows)])
    along = oracle._trace_curvature(ev, r)
    if along is not None:
        cols -= np.outer(along[0], along[0]) / along[1]
    np.testing.assert_allclose(Hm, cols, rtol=1e-10, atol=1e-12 * np.abs(cols).max())
    out = np.setdiff1d(np.arange(P.n_rows), keep)
    assert np.all(Hm[out] == 0.0) and np.all(Hm[:, out] == 0.0)


@pytest.mark.parametrize("kind", ["transport", "lowered QWD", "QWD in its phase gauge"])
def test_marginal_rows_vectorized_gather_matches_row_by_row(rng, kind):
    """The vectorized gather (the default off NumPy) and the row-by-row sums give the same rows,
    complex with imaginary coefficients and real with rows dropped; and J_i times its factor is
    U_T^* Q_i U from the sparse rows."""
    import cvxqreg
    from cvxqreg import problems
    from cvxqreg.face import coupling_gauge
    from cvxqreg.solvers.dual import _marginal_basis_rows

    if kind == "transport":
        P = qot_problem(rng, n=3)[0]
    else:
        P = cvxqreg.lower(problems.wasserstein(3).problem)
        if "gauge" in kind:
            P = coupling_gauge(P).problem
    oracle = DualOracle(P, 0.3, Quadratic(), "numpy")
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    U = np.ascontiguousarray(ev.U)
    D, r = P.dim, 4
    UT, W = U[:, D - r :], rng.random((r, D))
    marg, keep = oracle._marginal_rows(), oracle._entering_rows()
    K1, o1, s1 = _marginal_basis_rows(marg, UT, U, keep, weight=W, rowwise=True)
    K2, o2, s2 = _marginal_basis_rows(marg, UT, U, keep, weight=W, rowwise=False)
    assert np.array_equal(o1, o2) and np.array_equal(s1, s2)
    np.testing.assert_allclose(K1, K2, rtol=0, atol=1e-15)
    assert sorted(o1) == list(keep)
    Qs = P.row_stack
    for t in range(0, o1.size, 3):
        Q = Qs[o1[t]].real if oracle.real else Qs[o1[t]]
        J = UT.conj().T @ Q @ U
        np.testing.assert_allclose(K1[t].reshape(r, D) * s1[t], W * J, atol=1e-13)


@pytest.mark.parametrize(
    "kind",
    ["QT1 (Pauli)", "QT2 (Pauli, real reduction)", "QWD (marginals)", "IM (marginals, real)"],
)
@pytest.mark.parametrize("reg", [VonNeumann(), Quadratic()], ids=lambda r: r.name)
def test_dense_hessian_from_row_structure_matches_the_row_stack(rng, kind, reg, monkeypatch):
    """The dense Hessian forms ``Q_i U`` by gathering rows of ``U`` for Pauli strings and all
    ``J_i`` from one product per marginal for partial-trace entries, and contracts only the
    upper triangles of the Hermitian ``J_i``: the same matrix as the dense row stack, and as the
    Hessian-vector products applied to the unit vectors."""
    import cvxqreg
    import cvxqreg.solvers.dual as dual_mod
    from cvxqreg import problems

    make = {
        "QT1 (Pauli)": lambda: problems.tomography("QT1", n_qubits=4),
        "QT2 (Pauli, real reduction)": lambda: problems.tomography("QT2", n_qubits=3),
        "QWD (marginals)": lambda: problems.wasserstein(3),
        "IM (marginals, real)": lambda: problems.ising(2),
    }
    P = cvxqreg.lower(make[kind]().problem)
    monkeypatch.setattr(dual_mod, "_MARGINAL_ROWS_FLOPS", 0.0)  # the structured path at any size
    oracle = DualOracle(P, 0.3, reg, "numpy")
    assert (oracle._pauli_rows() is not None) == kind.startswith("QT")
    assert (oracle._marginal_rows() is not None) == (not kind.startswith("QT"))
    assert (oracle.imag_rows is not None) == ("real" in kind)
    ev = oracle.evaluate(rng.normal(size=P.n_rows) * 0.3)
    structured = oracle.hessian_matrix(ev)
    saved = dict(oracle._shared)
    oracle._shared["pauli_rows"] = None  # neither structure: the row stack
    oracle._shared["marginal_rows"] = None
    plain = oracle.hessian_matrix(ev)
    oracle._shared.clear()
    oracle._shared.update(saved)  # shared with the problem's other oracles
    scale = np.abs(plain).max()
    assert np.abs(structured - plain).max() <= 1e-13 * scale
    op = oracle.hessian_operator(ev, "full")
    cols = np.column_stack([op(e) for e in np.eye(P.n_rows)])
    np.testing.assert_allclose(structured, cols, rtol=1e-10, atol=1e-12 * scale)
    if oracle.imag_rows is not None:  # D(P alpha) is flat along the dropped rows
        assert not np.any(structured[oracle.imag_rows])
        assert not np.any(structured[:, oracle.imag_rows])
