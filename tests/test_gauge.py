"""The phase gauge of coupling problems (cvxqreg.face.coupling_gauge; docs/theory.md, 'Real
data, and real data in a phase gauge'): complex data that are real in a diagonal unitary basis
are solved as that real problem, and the results agree with the complex solve."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.face import coupling_gauge
from cvxqreg.solvers.dual import _real_reduction

from .conftest import rand_herm, rand_state
from .test_face import _coupling


def _phases(rng, n):
    return np.exp(2j * np.pi * rng.random(n))


def _gauged(M, g):
    """``diag(g) M diag(g)^*``: real data dressed in phases."""
    return g[:, None] * M * g.conj()[None, :]


def _real_in_disguise(rng, n1, n2, diagonal_rho=False):
    """A coupling problem with real data seen through random phases ``g1 (x) g2``."""
    H = rand_herm(rng, n1 * n2, real=True)
    rho = rand_state(rng, n1, real=True)
    if diagonal_rho:  # the marginal's graph falls apart: the phases must come from H
        rho = np.diag(np.diag(rho))
    sigma = rand_state(rng, n2, real=True)
    g1, g2 = _phases(rng, n1), _phases(rng, n2)
    g = np.kron(g1, g2)
    return (H, rho, sigma), (_gauged(H, g), _gauged(rho, g1), _gauged(sigma, g2))


def _agree(a, b, tol):
    """Two solves of the same problem agree: dual values (the optimum of a strictly concave
    dual is unique) and brackets to ``tol`` relative."""
    scale = max(1.0, abs(a.dual_value))
    assert abs(a.dual_value - b.dual_value) < tol * scale
    for x, y in zip(a.bracket, b.bracket, strict=True):
        assert abs(x - y) < 1e-6 * scale


@pytest.mark.parametrize("diagonal_rho", [False, True])
def test_gauge_found_and_solve_agrees(rng, diagonal_rho):
    real, dressed = _real_in_disguise(rng, 3, 2, diagonal_rho)
    lp = cvxqreg.lower(_coupling(*dressed))
    gauge = coupling_gauge(lp)
    assert gauge is not None and gauge.kind == "gauge" and gauge.problem.dim == 6
    g = np.kron(np.diag(gauge.V1), np.diag(gauge.V2))
    H_g = g.conj()[:, None] * dressed[0] * g[None, :]
    assert np.abs(H_g.imag).max() < 1e-13 * np.abs(H_g).max()
    kw = dict(eps=0.05, backend="numpy", tol=1e-9)
    r = cvxqreg.solve(lp, phase_gauge=True, **kw)
    assert "gauge" not in cvxqreg.solve(lp, **kw).extras  # "auto": D = 6 is below GAUGE_MIN_DIM
    plain = cvxqreg.solve(lp, phase_gauge=False, **kw)
    ref = cvxqreg.solve(cvxqreg.lower(_coupling(*real)), **kw)  # the real problem itself
    assert r.status == "converged" and r.extras.get("gauge")
    assert "phase gauge" in r.message and "gauge" not in plain.extras
    _agree(r, plain, 1e-10)
    _agree(r, ref, 1e-10)
    # the state is the complex one of the data as given: feasible, PSD, Hermitian
    T = r.X.reshape(3, 2, 3, 2)
    resid = np.hypot(
        np.linalg.norm(np.einsum("ajbj->ab", T) - dressed[1]),
        np.linalg.norm(np.einsum("iaib->ab", T) - dressed[2]),
    )
    assert resid < 1e-8 and np.abs(r.X.imag).max() > 1e-3
    assert np.linalg.eigvalsh(r.X)[0] > -1e-12
    assert np.linalg.norm(r.X - plain.X) < 1e-6
    lo, hi = r.bracket
    assert lo <= hi


def test_gauge_lower_bound_below_the_exact_value(rng):
    """The lower end of the bracket, from the dual vector mapped back, stays below SCS's exact
    value on the data as given."""
    _, dressed = _real_in_disguise(rng, 2, 2)
    prob = _coupling(*dressed)
    exact = prob.solve(solver=cp.SCS, eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
    lp = cvxqreg.lower(prob)
    assert coupling_gauge(lp) is not None
    r = cvxqreg.solve(lp, eps=1e-3, backend="numpy", tol=1e-9, phase_gauge=True)
    assert r.extras.get("gauge")
    lo, hi = r.bracket
    assert lo <= exact + 1e-6 <= hi + 2e-6
    assert r.certified_bound <= exact + 1e-6


def test_warm_start_round_trip(rng):
    _, dressed = _real_in_disguise(rng, 3, 3)
    lp = cvxqreg.lower(_coupling(*dressed))
    kw = dict(eps=0.1, backend="numpy", tol=1e-9, phase_gauge=True)
    r = cvxqreg.solve(lp, **kw)
    again = cvxqreg.solve(lp, alpha0=r.alpha, **kw)
    assert r.extras.get("gauge") and again.extras.get("gauge")
    assert again.status == "converged" and again.iterations <= 2
    assert abs(again.dual_value - r.dual_value) < 1e-12 * max(1.0, abs(r.dual_value))


def test_no_gauge_for_generic_complex_or_real_data(rng):
    # generic complex data: no diagonal unitary makes them real (a cycle of the graph carries
    # a phase)
    lp = cvxqreg.lower(_coupling(rand_herm(rng, 6), rand_state(rng, 3), rand_state(rng, 2)))
    assert coupling_gauge(lp) is None
    # real data: nothing to do (the oracle's real reduction applies directly)
    real = _coupling(rand_herm(rng, 4, real=True), *(rand_state(rng, 2, real=True),) * 2)
    assert coupling_gauge(cvxqreg.lower(real)) is None


def test_almost_gauge_real_is_rejected(rng):
    """A perturbation far above rounding breaks the gauge: solved as given, not approximated."""
    _, (H, rho, sigma) = _real_in_disguise(rng, 2, 3)
    E = rand_herm(rng, 6)
    lp = cvxqreg.lower(_coupling(H + 1e-9 * E, rho, sigma))
    assert coupling_gauge(lp) is None
    r = cvxqreg.solve(lp, eps=0.1, backend="numpy", phase_gauge=True)
    assert "gauge" not in r.extras


def test_qwd_is_real_in_a_gauge():
    """The paper's QWD instance: the joint phase rotation by pi/4 makes it real."""
    w = problems.wasserstein(10)  # D = 100: the default "auto" gauges it
    lp = cvxqreg.lower(w.problem)
    gauge = coupling_gauge(lp)
    assert gauge is not None and _real_reduction(gauge.problem) is not None
    d = np.angle(np.diag(gauge.V1)[1:] / np.diag(gauge.V1)[:-1])
    # phases of the form theta k up to signs (mod pi): the joint rotation
    assert np.allclose(np.mod(np.diff(d) + 0.5 * np.pi, np.pi) - 0.5 * np.pi, 0, atol=1e-10)
    kw = dict(eps=0.05, backend="numpy", tol=1e-8)
    r = cvxqreg.solve(lp, **kw)
    plain = cvxqreg.solve(lp, phase_gauge=False, **kw)
    assert r.extras.get("gauge") and "gauge" not in plain.extras
    _agree(r, plain, 1e-10)


@pytest.mark.parametrize(
    "regularizer, maximize", [("von_neumann", True), ("quadratic", False), ("tsallis", True)]
)
def test_gauge_other_regularizers_and_maximization(rng, regularizer, maximize):
    """A unitary change of basis keeps every spectral regularizer and the sense: the gauged
    solve agrees with the complex one."""
    _, dressed = _real_in_disguise(rng, 3, 3)
    lp = cvxqreg.lower(_coupling(*dressed, maximize=maximize))
    kw = dict(eps=0.1, backend="numpy", tol=1e-8, regularizer=regularizer)
    r = cvxqreg.solve(lp, phase_gauge=True, **kw)
    plain = cvxqreg.solve(lp, phase_gauge=False, **kw)
    assert r.extras.get("gauge") and r.status == plain.status == "converged"
    _agree(r, plain, 1e-9)
    assert abs(r.value - plain.value) < 1e-7 * max(1.0, abs(plain.value))
    lo, hi = r.bracket
    assert lo <= hi
