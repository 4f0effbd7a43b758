"""Regularizers: Fenchel-Young, derivatives, normalizing shift, Tsallis -> von Neumann."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvxqreg.errors import InvalidInputError
from cvxqreg.regularizers import (
    Custom,
    Quadratic,
    Regularizer,
    Tsallis,
    VonNeumann,
    get_regularizer,
)

REGS = [VonNeumann(), Quadratic(), Tsallis(1.5), Tsallis(2.0), Tsallis(3.0)]
floats = st.floats(-30, 5, allow_nan=False)
nonneg = st.floats(0, 50, allow_nan=False)


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@settings(max_examples=200, deadline=None)
@given(t=floats, x=nonneg)
def test_fenchel_young(reg: Regularizer, t, x):
    t_, x_ = np.array([t]), np.array([x])
    lhs = reg.phi(x_) + reg.psi(t_)
    assert lhs[0] >= t * x - 1e-9 * (1 + abs(t * x))
    xs = reg.dpsi(t_)
    eq = reg.phi(xs) + reg.psi(t_) - t * xs
    assert abs(eq[0]) <= 1e-9 * (1 + abs(t * xs[0]))


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
def test_derivatives_by_finite_differences(reg):
    t = np.linspace(-3, 3, 61) + 0.0123  # avoid the kinks at exactly 0 / -1/(q-1)
    h = 1e-6
    fd1 = (reg.psi(t + h) - reg.psi(t - h)) / (2 * h)
    fd2 = (reg.dpsi(t + h) - reg.dpsi(t - h)) / (2 * h)
    np.testing.assert_allclose(reg.dpsi(t), fd1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(reg.d2psi(t), fd2, rtol=1e-5, atol=1e-6)


def test_tsallis_tends_to_von_neumann():
    t = np.linspace(-5, 3, 41)
    vn = VonNeumann()
    errs = [np.max(np.abs(Tsallis(1 + d).dpsi(t) - vn.dpsi(t))) for d in (1e-1, 1e-2, 1e-3)]
    # first-order convergence in (q - 1): each factor 10 in q - 1 gains a factor ~10
    assert errs[2] < 0.05
    assert 8 < errs[1] / errs[2] < 12 and 5 < errs[0] / errs[1] < 12
    x = np.linspace(0, 3, 31)
    assert np.max(np.abs(Tsallis(1 + 1e-4).phi(x) - vn.phi(x))) < 1e-3


@pytest.mark.parametrize("reg", REGS, ids=lambda r: r.name)
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_normalizing_shift(reg, scale):
    rng = np.random.default_rng(0)
    t = rng.normal(size=50) * scale
    t -= t.max()  # centred, as the dual oracle passes it
    for total in (1.0, 0.3, 7.0):
        u = reg.normalizing_shift(t, total)
        # the sum's sensitivity to u is sum psi''; a rounding-level u error costs that much
        cond = 1 + np.sum(reg.d2psi(t + u)) * max(1.0, abs(u)) / total
        np.testing.assert_allclose(np.sum(reg.dpsi(t + u)), total, rtol=1e-14 * cond + 1e-14)


def test_generic_shift_matches_closed_forms():
    rng = np.random.default_rng(1)
    t = rng.normal(size=30)
    for reg in (VonNeumann(), Quadratic()):
        generic = Regularizer.normalizing_shift(reg, t, 2.0)
        assert abs(generic - reg.normalizing_shift(t, 2.0)) < 1e-12


def test_custom_regularizer_and_names():
    # phi(x) = x^2 (i.e. twice the quadratic): psi(t) = max(t,0)^2/4, psi'(t) = max(t,0)/2
    reg = Custom(
        phi_fn=lambda x: x * x,
        psi_fn=lambda t: np.maximum(t, 0) ** 2 / 4,
        dpsi_fn=lambda t: np.maximum(t, 0) / 2,
        label="double_quadratic",
    )
    t = np.linspace(-2, 2, 9)
    assert np.all(reg.phi(reg.dpsi(t)) + reg.psi(t) - t * reg.dpsi(t) < 1e-14)
    u = reg.normalizing_shift(t, 1.0)  # bisection path (no psi'')
    assert abs(np.sum(reg.dpsi(t + u)) - 1.0) < 1e-12
    assert get_regularizer("tsallis:1.5").order == 1.5
    assert get_regularizer("tsallis", order=3).order == 3
    assert isinstance(get_regularizer("von_neumann"), VonNeumann)
    with pytest.raises(InvalidInputError, match="unknown regularizer"):
        get_regularizer("renyi")
    with pytest.raises(InvalidInputError, match="order"):
        Tsallis(1.0)
    with pytest.raises(InvalidInputError, match="callable"):
        Custom(phi_fn=None)


def test_divided_differences():
    reg = VonNeumann()
    t = np.array([0.0, 1e-12, 1.0, 3.0])
    G = reg.divided_differences(t)
    assert abs(G[0, 1] - reg.d2psi(t[:1])[0]) < 1e-9
    assert abs(G[2, 3] - (reg.dpsi(t[2:3]) - reg.dpsi(t[3:4]))[0] / (1.0 - 3.0)) < 1e-14


def test_custom_without_second_derivative_has_an_explicit_contract():
    """No psi'': has_curvature is False, asking for psi'' or a Hessian raises, the normalizing
    shift (bisection) and first-order evaluation still work."""
    from cvxqreg.solvers.dual import DualOracle

    from .conftest import qot_problem

    vn_clone = Custom(
        phi_fn=VonNeumann().phi,
        psi_fn=lambda t: np.exp(t - 1.0),
        dpsi_fn=lambda t: np.exp(t - 1.0),
        label="vn_without_d2",
    )
    assert not vn_clone.has_curvature
    assert all(reg.has_curvature for reg in REGS)
    assert Custom(vn_clone.phi_fn, vn_clone.psi_fn, vn_clone.dpsi_fn, np.exp).has_curvature

    class NoSecondDerivative(Regularizer):
        def dpsi(self, t):
            return np.exp(t - 1.0)

    assert not NoSecondDerivative().has_curvature

    t = np.linspace(-8.0, 0.0, 7)
    with pytest.raises(InvalidInputError, match="d2psi_fn"):
        vn_clone.d2psi(t)
    with pytest.raises(InvalidInputError, match="d2psi_fn"):
        vn_clone.divided_differences(t)
    shift = vn_clone.normalizing_shift(t, 2.0)  # bisection, no psi''
    assert abs(shift - VonNeumann().normalizing_shift(t, 2.0)) < 1e-12

    P, _, _ = qot_problem(np.random.default_rng(3), n=2)
    oracle = DualOracle(P, 0.1, vn_clone, "numpy")
    ev = oracle.evaluate(np.zeros(P.n_rows))
    reference = DualOracle(P, 0.1, VonNeumann(), "numpy").evaluate(np.zeros(P.n_rows))
    assert abs(ev.value - reference.value) < 1e-12
    with pytest.raises(InvalidInputError, match="d2psi_fn"):
        oracle.hessian_operator(ev)
    with pytest.raises(InvalidInputError, match="d2psi_fn"):
        oracle.hessian_matrix(ev)


def test_array_module_and_to_host_on_the_host():
    from cvxqreg.backend import array_module, to_host

    a = np.arange(3.0)
    assert array_module(a) is np and array_module(1.5) is np
    assert to_host(a) is a and isinstance(to_host([1.0, 2.0]), np.ndarray)
