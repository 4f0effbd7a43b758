"""Constraint operators: apply/adjoint against the dense form, adjointness, structure."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from cvxqreg.backend import get_backend
from cvxqreg.errors import InvalidInputError
from cvxqreg.operators import Dense, PartialTrace, Pauli, Selected, Stacked

from .conftest import BACKENDS, rand_herm

PAULI = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]]),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1.0, -1.0]),
}


def kron_label(label):
    return functools.reduce(np.kron, [PAULI[c] for c in label])


def explicit_partial_trace(X, dims, axis):
    """Tr_axis via explicit sums of (I (x) <k| (x) I) X (I (x) |k> (x) I)."""
    out = 0
    for k in range(dims[axis]):
        factors = [np.eye(d) for d in dims]
        factors[axis] = np.eye(dims[axis])[k : k + 1]
        B = functools.reduce(np.kron, factors)
        out = out + B @ X @ B.conj().T
    return out


def operators(rng):
    return [
        PartialTrace((2, 3), 1),
        PartialTrace((3, 2), 0, scale=-2.5),
        PartialTrace((2, 3, 2), 1),
        PartialTrace((2, 2, 3), 2, real=True),
        Pauli(["XYZ", "YYI", "ZIZ", "III", "XIZ"], coefficients=[1, 2, -3, 4, 0.5]),
        Dense(np.stack([rand_herm(rng, 6) for _ in range(4)])),
        Dense(np.eye(5)),
        Stacked([PartialTrace((2, 3), 1), PartialTrace((2, 3), 0), Dense(np.eye(6))]),
        Selected(PartialTrace((2, 3), 1), [0, 3, 5, 7]),
    ]


@pytest.mark.parametrize("k", range(9))
def test_apply_adjoint_match_dense(rng, k):
    op = operators(rng)[k]
    Q = op.to_dense()
    assert np.allclose(Q, Q.conj().transpose(0, 2, 1)), "rows must be Hermitian"
    for _ in range(3):
        X = rand_herm(rng, op.dim)
        a = rng.normal(size=op.n_rows)
        ref = np.einsum("ijk,kj->i", Q, X).real
        np.testing.assert_allclose(op.apply(X), ref, atol=1e-12)
        np.testing.assert_allclose(op.adjoint(a), np.einsum("i,ijk->jk", a, Q), atol=1e-12)
        # adjointness <a, A X> = Re Tr[A*(a) X]
        assert abs(a @ op.apply(X) - np.trace(op.adjoint(a) @ X).real) < 1e-10


@pytest.mark.parametrize("dims,axis", [((2, 3), 0), ((2, 3), 1), ((3, 2, 2), 1), ((2, 2, 2), 2)])
def test_partial_trace_equals_explicit(rng, dims, axis):
    op = PartialTrace(dims, axis, scale=1.5)
    X = rand_herm(rng, op.dim)
    np.testing.assert_allclose(
        op.marginal(X), 1.5 * explicit_partial_trace(X, dims, axis), atol=1e-12
    )


@pytest.mark.parametrize("real", [False, True])
def test_partial_trace_row_entries_and_stacked_split(rng, real):
    """``row_entries`` names the marginal entry each row reads, and ``Stacked.split_rows``
    assigns selected rows of a stack to their parts."""
    dims = (3, 2)
    parts = [PartialTrace(dims, 1, scale=2.0, real=real), PartialTrace(dims, 0, real=real)]
    X = rand_herm(rng, 6)
    if real:
        X = X.real
    for part in parts:
        imag, i, j = part.row_entries(np.arange(part.n_rows))
        Y = part.marginal(X)
        vals = np.where(imag == 1, Y[i, j].imag, Y[i, j].real)
        np.testing.assert_allclose(part.apply(X), vals, atol=1e-12)
    stack = Stacked(parts)
    rows = np.array([stack.n_rows - 1, 0, stack.offsets[1], 2])
    split = stack.split_rows(rows)
    for k, (pos, local) in enumerate(split):
        np.testing.assert_array_equal(rows[pos], local + stack.offsets[k])
    assert sorted(np.concatenate([pos for pos, _ in split])) == list(range(rows.size))


def test_pauli_strings_equal_kron(rng):
    labels = ["XYZ", "YYI", "ZIZ", "XII", "IIY", "YXZ"]
    op = Pauli(labels, coefficients=np.arange(1, 7))
    Q = op.to_dense()
    for k, lab in enumerate(labels):
        np.testing.assert_allclose(Q[k], (k + 1) * kron_label(lab), atol=0)
    assert op.labels == labels


def test_pauli_many_strings_same_x_mask(rng):
    # all 4 strings with x = 0b10 on 2 qubits: XI, XZ, YI, YZ share their support
    labels = ["XI", "XZ", "YI", "YZ", "ZZ", "IZ"]
    op = Pauli(labels)
    a = rng.normal(size=len(labels))
    ref = sum(ak * kron_label(lab) for ak, lab in zip(a, labels, strict=True))
    np.testing.assert_allclose(op.adjoint(a), ref, atol=1e-14)


def test_gram_and_matrix(rng):
    op = Stacked([PartialTrace((2, 2), 1), Pauli(["XZ", "YY"])])
    Q = op.to_dense().reshape(op.n_rows, -1)
    G = np.real(Q.conj() @ Q.T)
    np.testing.assert_allclose(op.gram(), G, atol=1e-13)


def test_bad_operator_input():
    with pytest.raises(InvalidInputError, match="Hermitian"):
        Dense(np.array([[[0, 1], [0, 0]]], dtype=float))
    with pytest.raises(InvalidInputError, match="NaN"):
        Dense(np.array([[[np.nan, 0], [0, 0]]]))
    with pytest.raises(InvalidInputError, match="invalid character"):
        Pauli(["XQ"])
    with pytest.raises(InvalidInputError, match="out of range"):
        PartialTrace((2, 2), 2)
    with pytest.raises(InvalidInputError, match="different dimensions"):
        Stacked([Dense(np.eye(2)), Dense(np.eye(3))])


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_agree(rng, backend):
    be = get_backend(backend)
    for op in operators(rng):
        dev = op.to_backend(be)
        X = rand_herm(rng, op.dim)
        a = rng.normal(size=op.n_rows)
        np.testing.assert_allclose(be.to_host(dev.apply(be.asarray(X))), op.apply(X), atol=1e-12)
        np.testing.assert_allclose(
            be.to_host(dev.adjoint(be.asarray(a))), op.adjoint(a), atol=1e-12
        )


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_structured_matrix_equals_generic(rng, k):
    """PartialTrace/Pauli build sparse rows directly; they equal the generic m-adjoint build."""
    from cvxqreg.operators.base import ConstraintOperator

    op = operators(rng)[k]
    fast = op.matrix().toarray()
    generic = ConstraintOperator.matrix(op).toarray()
    np.testing.assert_allclose(fast, generic, atol=1e-15)


@pytest.mark.parametrize("k", range(9))
def test_apply_spectral_equals_apply_of_product(rng, k):
    """A(V V^*) from the factor (partial traces never form V V^*) equals apply(V V^*)."""
    op = operators(rng)[k]
    for r in (1, 3, op.dim):
        V = rng.normal(size=(op.dim, r)) + 1j * rng.normal(size=(op.dim, r))
        np.testing.assert_allclose(op.apply_spectral(V), op.apply(V @ V.conj().T), atol=1e-11)


@pytest.mark.parametrize("shape", [(7, 3), (6, 6), (5, 0)])
@pytest.mark.parametrize("real", [True, False])
def test_backend_outer(rng, shape, real):
    be = get_backend("numpy")
    V = rng.normal(size=shape) + (0 if real else 1j * rng.normal(size=shape))
    X = be.outer(V)
    np.testing.assert_allclose(X, V @ V.conj().T, atol=1e-13)
    assert np.array_equal(X, X.conj().T)


def test_bit_parity_matches_counting_and_the_problem_library():
    from cvxqreg.operators.pauli import bit_parity
    from cvxqreg.problems.pauli import _parity

    rng = np.random.default_rng(5)
    a = np.concatenate([np.arange(1 << 12), rng.integers(0, 2**62, size=2000), [2**63 - 1]])
    want = np.array([bin(int(v)).count("1") % 2 for v in a])
    assert np.array_equal(bit_parity(a), want)
    assert np.array_equal(_parity(a.astype(np.int64)), want)  # the library's independent copy
    assert int(bit_parity(6)) == 0 and int(bit_parity(7)) == 1


@pytest.mark.parametrize("k", range(10))
def test_factored_adjoint_and_apply_equal_the_dense_forms(rng, k):
    """``A*(a) V`` and ``A(L R^* + R L^*)`` from the factors (partial traces never form a
    ``D x D`` matrix) equal the products with the formed matrices."""
    op = (operators(rng) + [PartialTrace((2, 3, 2), (0, 2))])[k]
    for r in (1, 3, op.dim):
        V, L, R = (rng.normal(size=(op.dim, r)) + 1j * rng.normal(size=(op.dim, r)) for _ in "VLR")
        a = rng.normal(size=op.n_rows)
        np.testing.assert_allclose(op.adjoint_times(a, V), op.adjoint(a) @ V, atol=1e-12)
        M = L @ R.conj().T
        np.testing.assert_allclose(op.apply_sym_product(L, R), op.apply(M + M.conj().T), atol=1e-11)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("evr_min_dim", [1, 10**9])
def test_backend_eigh_both_drivers(rng, monkeypatch, complex_, evr_min_dim):
    """Both LAPACK drivers (MRRR above EVR_MIN_DIM for complex input, divide and conquer
    otherwise) return an orthonormal eigenbasis that reconstructs the matrix, and the same
    eigenvalues as NumPy."""
    from cvxqreg import backend

    monkeypatch.setattr(backend, "EVR_MIN_DIM", evr_min_dim)
    D = 40
    A = rng.standard_normal((D, D)) + (1j * rng.standard_normal((D, D)) if complex_ else 0)
    A = A + A.conj().T
    A[:10, :10] = np.eye(10)  # a degenerate cluster
    A[:10, 10:] = A[10:, :10] = 0
    w, U = get_backend("numpy").eigh(A)
    assert np.max(np.abs(U.conj().T @ U - np.eye(D))) < 1e-12
    assert np.max(np.abs((U * w) @ U.conj().T - A)) < 1e-12 * np.max(np.abs(A))
    np.testing.assert_allclose(w, np.linalg.eigvalsh(A), rtol=0, atol=1e-12 * np.max(np.abs(w)))


def test_real_paths_match_the_complex_ones():
    """``adjoint_real`` is ``Re A*``, a real state takes Pauli's real rows, and
    ``adjoint_times(..., real=True)`` has the real part of the full product (real ``V``)."""
    from cvxqreg.operators import PartialTrace, Pauli, Selected, Stacked

    rng = np.random.default_rng(11)
    pauli = Pauli(["XY", "ZZ", "YI", "IX", "YY"], 2, coefficients=rng.normal(size=5))
    ptr = PartialTrace((2, 2), 1)
    ops = [pauli, Selected(pauli, [0, 2, 3]), Stacked([pauli, ptr]), ptr]
    X = rng.normal(size=(4, 4))
    X = X + X.T
    V = rng.normal(size=(4, 3))
    for op in ops:
        a = rng.normal(size=op.n_rows)
        np.testing.assert_allclose(op.adjoint_real(a), op.adjoint(a).real, atol=1e-14)
        assert not np.iscomplexobj(op.adjoint_real(a))
        np.testing.assert_allclose(op.apply(X), op.apply(X.astype(complex)), atol=1e-13)
        np.testing.assert_allclose(
            np.real(op.adjoint_times(a, V, real=True)), (op.adjoint(a) @ V).real, atol=1e-13
        )
