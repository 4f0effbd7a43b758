"""Blockwise Hermitian parts and defects (cvxqreg.hermitian) and their uses in the lowering."""

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

import cvxqreg
from cvxqreg import hermitian
from cvxqreg.errors import InvalidInputError
from cvxqreg.hermitian import hermitian_defect, hermitian_part
from cvxqreg.lowering import linear_form
from cvxqreg.lowering.linear_form import random_point, validate_forms


@pytest.fixture(params=[3, 256])
def block_rows(request, monkeypatch):
    """Blocks smaller than the matrices (several blocks, a ragged last one) and larger."""
    monkeypatch.setattr(hermitian, "BLOCK_ROWS", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_defect_and_part_match_the_whole_matrix_formulas(block_rows, dtype):
    rng = np.random.default_rng(3)
    for D in (1, 7, 10):
        B = rng.standard_normal((D, D)).astype(dtype)
        if dtype == np.complex128:
            B = B + 1j * rng.standard_normal((D, D))
        want = np.abs(B - B.conj().T).max()
        assert hermitian_defect(B) == want
        P = hermitian_part(B)
        assert np.array_equal(P, 0.5 * (B + B.conj().T))
        assert P is not B or want == 0  # (D = 1 real: already Hermitian)


def test_an_exactly_hermitian_matrix_is_returned_as_is(block_rows):
    rng = np.random.default_rng(4)
    G = rng.standard_normal((11, 11)) + 1j * rng.standard_normal((11, 11))
    H = 0.5 * (G + G.conj().T)
    assert hermitian_defect(H) == 0.0
    assert hermitian_part(H) is H
    # one entry off by one unit in the last place is seen
    H2 = H.copy()
    H2[2, 9] = np.nextafter(H2[2, 9].real, np.inf) + 1j * H2[2, 9].imag
    assert hermitian_defect(H2) == pytest.approx(abs(H2[2, 9] - np.conj(H2[9, 2])), rel=0, abs=0)
    assert hermitian_part(H2) is not H2
    # a defect the caller already knows is not measured again
    assert hermitian_part(G, np.inf) is not G
    H2[4, 4] = np.nan
    assert np.isnan(hermitian_defect(H2))
    with pytest.raises(ValueError, match="square"):
        hermitian_defect(np.zeros((2, 3)))


def test_lowered_problem_still_rejects_a_skew_cost():
    D = 4
    H = np.diag(np.arange(D, dtype=float)).astype(complex)
    H[0, 1] = 1j  # H[1, 0] stays 0: not Hermitian
    A = cvxqreg.operators.Dense(np.eye(D)[None].astype(complex))
    with pytest.raises(InvalidInputError, match="not Hermitian"):
        cvxqreg.LoweredProblem(H, A, np.array([1.0]))
    H[1, 0] = -1j + 1e-13  # within rounding: symmetrized
    P = cvxqreg.LoweredProblem(H, A, np.array([1.0]))
    assert hermitian_defect(P.H) == 0.0


def test_random_point_is_the_hermitian_part_of_its_draws(block_rows):
    """The blockwise symmetrization gives the point the whole-matrix formula gave."""
    X = cp.Variable((9, 9), hermitian=True)
    rng = np.random.default_rng(12345)
    R = np.empty((9, 9), dtype=np.complex128)
    R.real, R.imag = rng.random((9, 9)), rng.random((9, 9))
    R -= 0.5 + 0.5j
    G = 0.5 * (R + R.conj().T)
    G[np.diag_indices(9)] += np.linalg.norm(G) + 1.0
    assert np.array_equal(random_point(X), G)


def test_values_at_skips_cvxpys_check_only_for_plain_variables():
    assert linear_form._plain_hermitian(cp.Variable((3, 3), hermitian=True))
    assert linear_form._plain_hermitian(cp.Variable((3, 3), PSD=True))
    assert linear_form._plain_hermitian(cp.Variable((3, 3)))
    assert not linear_form._plain_hermitian(cp.Variable((3, 3), nonneg=True))
    assert not linear_form._plain_hermitian(cp.Variable((3, 3), diag=True))
    X = cp.Variable((3, 3), hermitian=True)
    X0 = random_point(X)
    old = np.eye(3)
    X.value = old
    (v,) = linear_form.values_at(X, X0, [cp.real(cp.trace(X))])
    assert v == pytest.approx(np.trace(X0).real, rel=1e-15)
    assert np.array_equal(X.value, old)  # restored


def test_dense_forms_are_checked_by_row_blocks(block_rows):
    """A dense form is accepted when right and rejected when off by 1e-6 (the check is not
    loosened by the blockwise sums)."""
    rng = np.random.default_rng(5)
    D = 8
    X = cp.Variable((D, D), hermitian=True)
    C = rng.standard_normal((D, D)) + 1j * rng.standard_normal((D, D))
    C = C + C.conj().T
    expr = cp.real(cp.trace(C @ X))
    wrong = C.copy()
    wrong[3, 5] += 1e-6
    wrong[5, 3] += 1e-6
    flags = validate_forms(
        X, [(expr, (C, 0j)), (expr, (wrong, 0j)), (expr, (sp.csr_matrix(C), 0j))]
    )
    assert flags == [True, False, True]


def test_the_problem_owns_its_cost_and_right_hand_side():
    """An exactly Hermitian H is no longer symmetrized into a new array, so the problem copies
    it: changing the caller's arrays afterwards does not change the problem."""
    H = np.diag([1.0, 2.0]).astype(complex)
    q = np.array([1.0])
    A = cvxqreg.operators.Dense(np.eye(2)[None].astype(complex))
    P = cvxqreg.LoweredProblem(H, A, q)
    H[0, 0], q[0] = 5.0, 7.0
    assert P.H[0, 0] == 1.0 and P.q[0] == 1.0
