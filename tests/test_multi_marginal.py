"""Partial traces over any set of factors: the operator, its detection, the 3-party generator."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import problems
from cvxqreg.errors import InvalidInputError
from cvxqreg.lowering import lower
from cvxqreg.operators import Dense, PartialTrace

from .conftest import rand_herm, rand_state
from .test_lowering import check_round_trip, check_span, leaves, matrix_var


def einsum_partial_trace(X, dims, axes):
    """``Tr_axes(X)`` by an explicit index contraction (reference)."""
    k = len(dims)
    letters = "abcdefghijklmnop"
    left = list(letters[:k])
    right = list(letters[k : 2 * k])
    for a in axes:
        right[a] = left[a]
    kept = [j for j in range(k) if j not in axes]
    out = "".join(left[j] for j in kept) + "".join(right[j] for j in kept)
    Y = np.einsum("".join(left) + "".join(right) + "->" + out, X.reshape(dims + dims))
    n = int(np.prod([dims[j] for j in kept]))
    return Y.reshape(n, n)


CASES = [
    ((2, 3, 2), (0, 2)),
    ((3, 2, 2), (0, 1)),
    ((2, 2, 2, 2), (1, 3)),
    ((2, 3, 2, 2), (0, 2, 3)),
    ((2, 3), (1,)),
]


@pytest.mark.parametrize("dims,axes", CASES)
@pytest.mark.parametrize("real", [False, True])
def test_operator_matches_explicit_trace(dims, axes, real):
    rng = np.random.default_rng(3)
    op = PartialTrace(dims, axes, scale=-1.5, real=real)
    D = op.dim
    X = rand_herm(rng, D, real)
    Y = -1.5 * einsum_partial_trace(X, dims, axes)
    np.testing.assert_allclose(op.marginal(X), Y, atol=1e-13)
    y = Y.reshape(-1, order="F")
    expect = y.real if real else np.concatenate([y.real, y.imag])
    np.testing.assert_allclose(op.apply(X), expect, atol=1e-13)
    # adjoint, row matrix and the spectral product agree with the definition
    a = rng.normal(size=op.n_rows)
    assert np.vdot(op.adjoint(a), X).real == pytest.approx(a @ op.apply(X), rel=1e-12)
    M = op.matrix()
    np.testing.assert_allclose(
        M @ np.ascontiguousarray(X, complex).reshape(-1).view(float), op.apply(X), atol=1e-12
    )
    V = rng.normal(size=(D, 3)) + (0 if real else 1j * rng.normal(size=(D, 3)))
    np.testing.assert_allclose(op.apply_spectral(V), op.apply(V @ V.conj().T), atol=1e-12)


def test_operator_rejects_bad_axes():
    with pytest.raises(InvalidInputError, match="every factor"):
        PartialTrace((2, 2), (0, 1))
    with pytest.raises(InvalidInputError, match="distinct"):
        PartialTrace((2, 2, 2), (0, 0))
    with pytest.raises(InvalidInputError, match="out of range"):
        PartialTrace((2, 2, 2), (0, 3))


def nested_marginal(X, dims, keep):
    """Trace out every factor not in ``keep`` with nested cp.partial_trace (last first)."""
    dims = list(dims)
    expr = X
    for axis in reversed(range(len(dims))):
        if axis in keep:
            continue
        expr = cp.partial_trace(expr, dims, axis=axis)
        dims.pop(axis)
    return expr


@pytest.mark.parametrize(
    "dims,keep,expect",
    [
        ((3, 3, 3), (1,), ((3, 3, 3), (0, 2))),  # the middle marginal of the issue
        ((2, 3, 2), (0, 2), ((2, 3, 2), 1)),
        ((2, 2, 2, 2), (0, 2), ((2, 2, 2, 2), (1, 3))),
        ((2, 2, 2, 2), (1, 2), ((2, 4, 2), (0, 2))),  # adjacent traced/kept factors merged
        ((2, 3, 2), (1, 2), ((2, 6), 0)),
    ],
)
@pytest.mark.parametrize("real", [False, True])
def test_nested_partial_traces_detected(dims, keep, expect, real):
    rng = np.random.default_rng(5)
    D = int(np.prod(dims))
    n = int(np.prod([dims[j] for j in keep]))
    X = matrix_var(D, real)
    rho = rand_state(rng, n, real=real)
    cons = [X >> 0, 0.5 * nested_marginal(X, dims, keep) == rho]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D, real))
    (op,) = leaves(L.A)
    assert isinstance(op, PartialTrace), L.describe()
    assert (op.dims, op.axis, op.real) == (expect[0], expect[1], real)
    assert op.scale == pytest.approx(0.5, rel=1e-14)
    check_span(L, X, rand_herm(rng, D, real), rng)


def test_three_party_marginals_all_structured():
    inst = problems.multi_marginal(3, 3, seed=2)
    L = lower(inst.problem)
    ops = leaves(L.A)
    assert [type(o) for o in ops] == [PartialTrace] * 3, L.describe()
    assert [(o.dims, o.axis) for o in ops] == [((3, 9), 1), ((3, 3, 3), (0, 2)), ((9, 3), 0)]
    assert not any(isinstance(o, Dense) for o in ops)
    assert L.n_rows == 3 * 9 - 2  # each marginal fixes the trace: two rows are dependent


def test_near_miss_stays_dense():
    rng = np.random.default_rng(8)
    d = 2
    D = d**3
    X = cp.Variable((D, D), hermitian=True)
    P = np.eye(d * d)
    P[0, 0] = 1 + 1e-9  # not a partial trace: one entry off
    expr = nested_marginal(X, (d, d, d), (1, 2))
    cons = [X >> 0, expr + P @ expr - expr == rand_state(rng, d * d)]
    L = lower(cp.Problem(cp.Minimize(0), cons))
    assert not any(isinstance(o, PartialTrace) for o in leaves(L.A)), L.describe()


@pytest.mark.parametrize("n_parties,d", [(3, 2), pytest.param(3, 3, marks=pytest.mark.slow)])
def test_multi_marginal_exact_matches_direct_solver(n_parties, d):
    inst = problems.multi_marginal(d, n_parties, seed=4)
    direct = inst.problem.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=200_000)
    res = cvxqreg.solve_exact(inst.problem)
    assert res.status == "optimal"
    assert res.primal_residual < 1e-7 and res.dual_residual < 1e-7
    assert abs(res.value - res.dual_value) < 1e-7 * (1 + abs(direct))
    assert abs(res.value - direct) < 1e-7 * (1 + abs(direct))
    assert 0.0 - 1e-7 <= res.value <= inst.metadata["product_value"] + 1e-7
    # regularized: the certified bound is below the exact value, the energy within eps log D
    eps = 1e-3
    reg = cvxqreg.solve(inst.problem, eps=eps)
    assert reg.status == "converged"
    assert reg.certified_bound <= direct + 1e-6
    assert abs(reg.energy - direct) <= eps * np.log(inst.dim) + 1e-5


def test_multi_marginal_diagonal_reference_value():
    inst = problems.multi_marginal(3, 3, marginals="diagonal", seed=1)
    assert inst.reference_value == 0.0
    res = cvxqreg.solve_exact(inst.problem)
    assert abs(res.value) < 1e-6
    for j, rho in enumerate(inst.metadata["marginals"]):
        np.testing.assert_allclose(
            problems.marginal_expression(inst.X, 3, 3, j).value, rho, atol=1e-6
        )


def test_multi_marginal_arguments_checked():
    with pytest.raises(InvalidInputError):
        problems.multi_marginal(1, 3)
    with pytest.raises(InvalidInputError):
        problems.multi_marginal(3, 3, marginals="pure")
    with pytest.raises(InvalidInputError, match="exceeds"):
        problems.multi_marginal(5, 6)


@pytest.mark.parametrize("seed", range(6))
def test_random_factor_subsets_detected(seed):
    """Random factor sizes (2-4 factors) and a random nonempty proper subset traced out, traced in
    a random order: always one PartialTrace whose rows equal the extracted ones."""
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(2, 5))
    dims = tuple(int(d) for d in rng.integers(2, 4, size=k))
    while int(np.prod(dims)) > 48:
        dims = dims[:-1]
        k -= 1
    traced = sorted(rng.choice(k, size=int(rng.integers(1, k)), replace=False).tolist())
    D = int(np.prod(dims))
    X = cp.Variable((D, D), hermitian=True)
    expr, cur = X, list(range(k))
    for j in rng.permutation(traced):
        pos = cur.index(int(j))
        expr = cp.partial_trace(expr, [dims[a] for a in cur], axis=pos)
        cur.pop(pos)
    n = int(np.prod([dims[a] for a in cur]))
    cons = [X >> 0, expr == rand_state(rng, n)]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D))
    (op,) = leaves(L.A)
    assert isinstance(op, PartialTrace), (dims, traced, L.describe())
    # the same map as the partial trace over the chosen factors (merged groups are equivalent)
    Y = rand_herm(rng, D)
    ref = einsum_partial_trace(Y, dims, traced)
    np.testing.assert_allclose(op.marginal(Y), ref, atol=1e-12)


@pytest.mark.parametrize("regularizer", ["von_neumann", "quadratic", "tsallis"])
def test_multi_marginal_regularizers(regularizer):
    inst = problems.multi_marginal(2, 3, seed=6)
    exact = cvxqreg.solve_exact(inst.problem)
    r = cvxqreg.solve(inst.problem, eps=1e-4, regularizer=regularizer)
    assert r.status == "converged", r.message
    assert r.certified_bound <= exact.value + 1e-7
    lo, hi = r.bracket
    assert lo <= exact.value + 1e-7 and exact.value <= hi + 1e-6
    assert abs(r.energy - exact.value) < 1e-3
    # the state's marginals are the prescribed ones
    for j, rho in enumerate(inst.metadata["marginals"]):
        inst.X.value = r.X
        np.testing.assert_allclose(
            problems.marginal_expression(inst.X, 2, 3, j).value, rho, atol=1e-5
        )
