"""The marginal scaling step (cvxqreg/solvers/scaling.py): exact on product states, applied only
to von Neumann couplings, and an ascent step inside Newton-CG."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.regularizers import get_regularizer
from cvxqreg.solvers.dual import DualOracle
from cvxqreg.solvers.scaling import marginal_scaling

from .conftest import rand_herm


def _coupling(H, rho, sigma):
    n1, n2 = rho.shape[0], sigma.shape[0]
    X = cp.Variable((n1 * n2, n1 * n2), hermitian=True)
    return cp.Problem(
        cp.Minimize(cp.real(cp.trace(H @ X))),
        [
            X >> 0,
            cp.partial_trace(X, [n1, n2], axis=1) == rho,
            cp.partial_trace(X, [n1, n2], axis=0) == sigma,
        ],
    )


def _spread_state(rng, n, smallest):
    """A random density matrix with eigenvalues from ``smallest`` to about 1 (log-spaced)."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    w = np.logspace(np.log10(smallest), 0, n)
    r = (Q * w) @ Q.conj().T
    return 0.5 * (r + r.conj().T) / w.sum()


def _marginals(X, n1, n2):
    T = X.reshape(n1, n2, n1, n2)
    return np.einsum("ajbj->ab", T), np.einsum("iaib->ab", T)


def test_scaling_step_fixes_a_marginal_exactly_for_additive_costs(rng):
    """With H = H_A (x) I + I (x) H_B the state is a product at every alpha, and one scaling step
    makes its marginal equal the target (docs/theory.md, 'The marginal scaling step')."""
    n1, n2 = 3, 4
    rho, sigma = _spread_state(rng, n1, 1e-6), _spread_state(rng, n2, 1e-4)
    H = np.kron(rand_herm(rng, n1), np.eye(n2)) + np.kron(np.eye(n1), rand_herm(rng, n2))
    lp = cvxqreg.lower(_coupling(H, rho, sigma))
    # eps large enough that no eigenvalue weight of X falls below the factor's cutoff (a cut
    # weight would make the marginal of the computed state differ from exp's)
    oracle = DualOracle(lp, 2.0, get_regularizer("von_neumann"), "numpy")
    x = np.zeros(lp.n_rows)
    ev = oracle.evaluate(x)
    steps = list(marginal_scaling(oracle)(ev))
    # a marginal of the state that is numerically singular has no logarithm: no step for it
    assert 1 <= len(steps) <= 2
    fixed = set()
    for d in steps:
        X = oracle.evaluate(x + d).X
        XA, XB = _marginals(X, n1, n2)
        err_a, err_b = np.linalg.norm(XA - rho), np.linalg.norm(XB - sigma)
        assert min(err_a, err_b) < 1e-11
        fixed.add("A" if err_a < err_b else "B")
    assert len(fixed) == len(steps)
    # and before the step both marginals were far off
    XA, XB = _marginals(ev.X, n1, n2)
    assert np.linalg.norm(XA - rho) > 1e-2 and np.linalg.norm(XB - sigma) > 1e-2


def test_scaling_applies_only_to_von_neumann_couplings(rng):
    lp = cvxqreg.lower(problems.wasserstein(4).problem)
    vn = DualOracle(lp, 0.1, get_regularizer("von_neumann"), "numpy")
    assert marginal_scaling(vn) is not None
    assert marginal_scaling(DualOracle(lp, 0.1, get_regularizer("quadratic"), "numpy")) is None
    qt = cvxqreg.lower(problems.tomography("QT1", n_qubits=2).problem)
    assert marginal_scaling(DualOracle(qt, 0.1, get_regularizer("von_neumann"), "numpy")) is None


@pytest.mark.parametrize("eps", [1e-1, 1e-2])
def test_newton_with_scaling_steps_is_monotone_and_agrees(rng, eps):
    """Scaling steps are kept only when they raise D: within every eps stage the dual values
    recorded by Newton-CG never fall, and the run ends at least as high as without them."""
    n1 = n2 = 4
    rho, sigma = _spread_state(rng, n1, 1e-7), _spread_state(rng, n2, 1e-5)
    lp = cvxqreg.lower(_coupling(rand_herm(rng, n1 * n2), rho, sigma))
    kw = dict(backend="numpy", tol=1e-8, hessian="cg")
    on = cvxqreg.DualSolver(**kw)(lp, eps)
    off = cvxqreg.DualSolver(marginal_scaling=False, **kw)(lp, eps)
    assert on.status == off.status == "converged"
    assert "marginal scaling steps" not in off.message
    # marginal eigenvalues of 1e-7 leave D flat along their dual variables, so ||grad|| <= 1e-8
    # pins D only to about 1e-6 here; the run with scaling steps ends at least as high
    assert on.dual_value >= off.dual_value - 1e-9
    assert abs(on.dual_value - off.dual_value) <= 1e-5
    assert on.grad_norm < 1e-8
    h = on.history
    for e in np.unique(h.eps):
        v = h.dual_value[h.eps == e]
        assert np.all(np.diff(v) >= -1e-12 * np.maximum(1.0, np.abs(v[1:])))
