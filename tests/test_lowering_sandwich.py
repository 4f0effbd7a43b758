"""Matrix-valued equalities read off the tree (``sum_t c_t L_t X R_t + C == 0``: partial traces)
give the same rows, layout and right-hand sides as CVXPY's canonicalization."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import cvxqreg.lowering.extract as extract_mod
from cvxqreg.lowering import lower
from cvxqreg.lowering.linear_form import random_point, sandwich_form

from .test_lowering import check_round_trip, matrix_var, rand_herm, rand_state


def _models(rng, real):
    """Constraints with consistent data: every right-hand side is the left-hand side's value at
    one random state."""
    D = 12
    X = matrix_var(D, real)
    A = rng.normal(size=(3, D)) + (0 if real else 1j * rng.normal(size=(3, D)))
    lhs = [
        cp.partial_trace(X, [3, 4], axis=1),
        cp.partial_trace(X, [3, 4], axis=0),
        cp.partial_trace(X, [2, 3, 2], axis=1) / 2.0,
        -cp.partial_trace(2 * X, [2, 6], axis=0),
        A @ X @ A.conj().T,  # a general sandwich
    ]
    X.value = rand_state(rng, D, real)
    rhs = [np.asarray(e.value) for e in lhs]
    X.value = None
    cons = [X >> 0] + [e == r for e, r in zip(lhs, rhs, strict=True)]
    H = rand_herm(rng, D, real)
    return X, cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)


@pytest.mark.parametrize("real", [False, True])
def test_sandwich_path_agrees_with_cvxpy_path(monkeypatch, real):
    rng = np.random.default_rng(7)
    X, problem = _models(rng, real)
    fast = check_round_trip(problem, X, rand_herm(rng, 12, real))
    assert set(fast.recovery.fast_path) >= {1, 2, 3, 4, 5}
    with monkeypatch.context() as m:
        m.setattr(extract_mod, "sandwich_form", lambda expr, X: None)
        slow = check_round_trip(problem, X, rand_herm(rng, 12, real))
    assert not set(slow.recovery.fast_path) & {1, 2, 3, 4, 5}
    assert np.array_equal(fast.recovery.row_map, slow.recovery.row_map)
    assert [(i.n_re, i.n_im) for i in fast.recovery.constraints] == [
        (i.n_re, i.n_im) for i in slow.recovery.constraints
    ]
    assert abs(fast.A.matrix() - slow.A.matrix()).max() < 1e-14
    np.testing.assert_allclose(fast.q, slow.q, atol=1e-15)
    assert fast.A.describe() == slow.A.describe()  # the partial-trace structure is still found


def test_sandwich_form_declines_what_it_does_not_know():
    X = cp.Variable((4, 4), hermitian=True)
    assert sandwich_form(X.T - np.eye(4), X) is None  # transpose of X
    assert sandwich_form(cp.conj(X) - np.eye(4), X) is None
    assert sandwich_form(cp.diag(cp.diag(X)) - np.eye(4), X) is None
    assert sandwich_form(cp.trace(X) - 1, X) is None  # scalars belong to the scalar path
    terms, C = sandwich_form(2 * X - np.eye(4), X)
    assert len(terms) == 1 and terms[0][0] == 2 and np.array_equal(C, -np.eye(4))
    # a model mixing both: the unknown part goes through CVXPY, the rest is read off the tree
    cons = [X >> 0, cp.partial_trace(X, [2, 2], 1) == np.eye(2) / 2, X.T[0:2, 0:2] == np.eye(2) / 4]
    L = lower(cp.Problem(cp.Minimize(cp.real(cp.trace(X))), cons))
    assert L.recovery.fast_path == (1, "objective")


def test_random_point_is_positive_definite():
    for X in (cp.Variable((30, 30), hermitian=True), cp.Variable((30, 30), symmetric=True)):
        X0 = random_point(X, np.random.default_rng(1))
        assert np.allclose(X0, X0.conj().T) and np.linalg.eigvalsh(X0).min() > 0


@pytest.mark.parametrize("real", [False, True])
def test_validate_sandwich_accepts_the_rows_and_rejects_a_perturbed_value(real):
    """The check gathers, for each nonzero of the rows, the one entry of X0 it reads: exact rows
    pass, a value off by 1e-6 in one entry fails, and rows with no nonzeros (an identically zero
    entry of the expression) are read as zero."""
    from cvxqreg.lowering.linear_form import sandwich_rows, validate_sandwich

    rng = np.random.default_rng(11)
    D = 6
    X = matrix_var(D, real)
    X0 = random_point(X, rng)
    for expr in (cp.partial_trace(X, [2, 3], axis=0), cp.partial_trace(X, [3, 2], axis=1)):
        terms, C = sandwich_form(expr - np.eye(expr.shape[0]), X)
        G_re, G_im = sandwich_rows(terms, D, real=real)
        X.value = X0
        value = np.asarray((expr - np.eye(expr.shape[0])).value)
        X.value = None
        assert validate_sandwich(X0, value, G_re, G_im, C)
        bad = value.copy()
        bad[1, 0] += 1e-6
        assert not validate_sandwich(X0, bad, G_re, G_im, C)
        # rows without nonzeros (as the imaginary rows under a real X) read as zero: the last
        # entry is then checked against C alone, which it is not
        Z = sp.csr_matrix((1, G_re.shape[1]))
        n = value.size
        G_re2, G_im2 = sp.vstack([G_re[: n - 1], Z]), sp.vstack([G_im[: n - 1], Z])
        assert abs(value[-1, -1] - C[-1, -1]) > 1e-3
        assert not validate_sandwich(X0, value, G_re2, G_im2, C)
        zero_last = value.copy()
        zero_last[-1, -1] = C[-1, -1]  # (the last entry in vec_F order)
        assert validate_sandwich(X0, zero_last, G_re2, G_im2, C)
