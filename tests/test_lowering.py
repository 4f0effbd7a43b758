"""Tests of cvxqreg.lowering: CVXPY model -> (H, A, q) and back.

The reference for every lowered row is CVXPY's own evaluation of the constraint residual
``(lhs - rhs).value`` at a random Hermitian point; the reference for the duals is CVXPY's solvers.
"""

from __future__ import annotations

import functools
import re

import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp

from cvxqreg.errors import InfeasibleDataError, InvalidInputError, UnsupportedModelError
from cvxqreg.lowering import (
    DUAL_KEY,
    PRIMAL_KEY,
    SUPPORTED_CVXPY,
    Lowering,
    Recovery,
    check_cvxpy_version,
    lower,
)
from cvxqreg.lowering.structure import partial_trace_rows
from cvxqreg.operators import Dense, PartialTrace, Pauli, Selected, Stacked
from cvxqreg.solvers.exact import solve_exact

_P1 = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1.0, -1.0]),
}


# ---------------------------------------------------------------------------------------- helpers
def pauli_matrix(label: str) -> np.ndarray:
    return functools.reduce(np.kron, [_P1[c] for c in label])


def rand_herm(rng, D, real=False):
    A = rng.normal(size=(D, D)) + (0 if real else 1j * rng.normal(size=(D, D)))
    return (A + A.conj().T) / 2


def rand_state(rng, D, real=False):
    G = rng.normal(size=(D, D)) + (0 if real else 1j * rng.normal(size=(D, D)))
    R = G @ G.conj().T + 0.5 * np.eye(D)
    return R / np.trace(R).real


def matrix_var(D, real):
    return cp.Variable((D, D), symmetric=True) if real else cp.Variable((D, D), hermitian=True)


def leaves(op):
    """The structured operators inside Selected/Stacked wrappers."""
    if isinstance(op, Selected):
        return leaves(op.base)
    if isinstance(op, Stacked):
        return [p for part in op.parts for p in leaves(part)]
    return [op]


def full_residual(L) -> np.ndarray:
    """CVXPY's residuals ``Re/Im vec_F(lhs - rhs)`` at the variable's current value, in the
    extracted row layout (blocks in constraint order, Re rows then Im rows)."""
    out = []
    for info in L.recovery.constraints:
        v = np.asarray(info.constraint.expr.value).reshape(-1, order="F")
        size = v.size
        assert info.n_re in (0, size) and info.n_im in (0, size)
        if info.n_re:
            out.append(v.real)
        if info.n_im:
            out.append(v.imag)
        else:  # CVXPY deemed the expression real: it must be
            assert np.allclose(v.imag, 0)
    return np.concatenate(out)


def check_round_trip(problem, X, X0):
    """Lowered residual and objective agree with CVXPY's at ``X0``."""
    L = lower(problem)
    X.value = X0
    ref = full_residual(L)
    got = L.residual(X0)
    assert np.allclose(got, ref[L.recovery.row_map], atol=1e-12, rtol=1e-12)
    assert L.objective(X0) == pytest.approx(problem.objective.value, abs=1e-11, rel=1e-11)
    # structured and plain dense forms of the operator agree
    dense = Dense(L.A.matrix(), dim=L.dim)
    assert np.allclose(dense.apply(X0), L.A.apply(X0), atol=1e-12)
    return L


def check_span(L, X, X0, rng):
    """The kept rows imply the dropped ones: moving X0 inside the null space of the lowered A
    leaves every CVXPY residual unchanged."""
    op = L.A
    M = op.matrix()
    G = (M @ M.T).toarray()
    Y = rand_herm(rng, L.dim, L.real)
    coef = np.linalg.lstsq(G, op.apply(Y), rcond=None)[0]
    delta = Y - op.adjoint(coef)
    if L.real:
        delta = delta.real
    assert np.abs(op.apply(delta)).max() < 1e-10
    X.value = X0
    r0 = full_residual(L)
    X.value = X0 + delta
    r1 = full_residual(L)
    assert np.allclose(r0, r1, atol=1e-9)


# ---------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_random_constraints(real, seed):
    rng = np.random.default_rng(seed)
    D = 6
    X = matrix_var(D, real)
    X0 = rand_herm(rng, D, real)
    Q = rand_herm(rng, D, real)
    B = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    C = rng.normal(size=(2, D))
    p = cp.Parameter(nonneg=True, value=0.7)
    H = rand_herm(rng, D, real)
    rho = rand_state(rng, 3, real)
    cons = [
        X >> 0,
        cp.trace(X) == 1,
        cp.real(cp.trace(Q @ X)) == 0.3,
        cp.trace(B @ X) == 0.1 + 0.2j,  # complex: Re and Im rows
        X[0, 1] == 0.05,  # one entry
        2.0 * X[3, 2] + X[4, 5] == 0.0,  # sums and scalings
        cp.partial_trace(X, [3, 2], axis=1) == rho,
        C @ X @ C.T + p * np.eye(2) == np.eye(2),  # matrix-valued, with a parameter
        cp.constraints.Zero(cp.diag(X)[1:3] - 0.1),  # vector-valued Zero constraint
    ]
    objective = cp.Minimize(cp.real(cp.trace(H @ X)) + 2.5 * p - 1.0)
    problem = cp.Problem(objective, cons)
    L = check_round_trip(problem, X, X0)
    assert L.real == real and L.sense == 1
    assert L.offset == pytest.approx(2.5 * 0.7 - 1.0)
    check_span(L, X, X0, rng)
    # parameters are read at their current values
    p.value = 0.2
    L2 = lower(problem)
    assert L2.offset == pytest.approx(2.5 * 0.2 - 1.0)
    assert not np.allclose(L2.q, L.q)


@pytest.mark.parametrize("real", [False, True])
def test_maximize_is_negated(real):
    rng = np.random.default_rng(5)
    D = 4
    X = matrix_var(D, real)
    H = rand_herm(rng, D, real)
    problem = cp.Problem(cp.Maximize(cp.real(cp.trace(H @ X)) + 3.0), [X >> 0, cp.trace(X) == 1])
    L = check_round_trip(problem, X, rand_herm(rng, D, real))
    assert L.sense == -1
    assert np.allclose(L.H, -H) and L.offset == pytest.approx(-3.0)


def test_non_hermitian_cost_inside_real_is_its_hermitian_part():
    rng = np.random.default_rng(7)
    D = 3
    X = cp.Variable((D, D), hermitian=True)
    Hn = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(Hn @ X))), [X >> 0, cp.trace(X) == 1])
    L = check_round_trip(problem, X, rand_herm(rng, D))
    assert np.allclose(L.H, (Hn + Hn.conj().T) / 2)


def test_complex_objective_is_refused_by_cvxpy():
    # CVXPY itself rejects a complex objective when the Minimize/Maximize is built, before any
    # lowering; the fix is to wrap it in cp.real (tested above).
    X = cp.Variable((3, 3), hermitian=True)
    H = np.diag([1.0, 2.0, 3.0]).astype(complex)
    with pytest.raises(ValueError, match="real"):
        cp.Minimize(cp.trace(H @ X))
    with pytest.raises(ValueError, match="real"):
        cp.Maximize(cp.trace(H @ X))


@pytest.mark.parametrize(
    "make",
    [
        lambda X: [X >> 0],
        lambda X: [0 << X],
        lambda X: [cp.constraints.PSD(X)],
        lambda X: [2.0 * X >> 0],
    ],
)
def test_psd_spellings(make):
    X = cp.Variable((4, 4), hermitian=True)
    L = lower(cp.Problem(cp.Minimize(cp.real(X[0, 0])), make(X) + [cp.trace(X) == 1]))
    assert L.n_rows == 1


@pytest.mark.parametrize("kwargs", [{"PSD": True}, {"PSD": True, "complex": True}])
def test_psd_attribute(kwargs):
    try:
        X = cp.Variable((4, 4), **kwargs)
    except ValueError:  # CVXPY < 1.7 has no complex PSD variables
        pytest.skip(f"cvxpy {cp.__version__} rejects Variable(**{kwargs})")
    L = lower(cp.Problem(cp.Minimize(cp.real(X[0, 0])), [cp.trace(X) == 1]))
    assert L.real == ("complex" not in kwargs)


# ---------------------------------------------------------------------- structure detection
@pytest.mark.parametrize(
    ("dims", "axis", "expect"),
    [
        ((2, 3), 0, ((2, 3), 0)),
        ((2, 3), 1, ((2, 3), 1)),
        ((3, 2), 1, ((3, 2), 1)),
        ((2, 3, 2), 0, ((2, 6), 0)),
        ((2, 3, 2), 1, ((2, 3, 2), 1)),
        ((2, 3, 2), 2, ((6, 2), 1)),
        ((2, 2, 2, 2), 2, ((4, 2, 2), 1)),
    ],
)
@pytest.mark.parametrize("real", [False, True])
def test_partial_trace_detected(dims, axis, expect, real):
    rng = np.random.default_rng(11)
    D = int(np.prod(dims))
    n = D // dims[axis]
    X = matrix_var(D, real)
    X0 = rand_herm(rng, D, real)
    rho = rand_state(rng, n, real)
    cons = [X >> 0, 2.5 * cp.partial_trace(X, dims, axis=axis) == rho]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, X0)
    (op,) = leaves(L.A)
    assert isinstance(op, PartialTrace)
    assert (op.dims, op.axis, op.real) == (expect[0], expect[1], real)
    assert op.scale == pytest.approx(2.5, rel=1e-14)
    assert "PartialTrace" in L.recovery.constraints[0].structure
    # Hermitian marginal: n^2 independent real rows out of 2 n^2 (n^2 for a real one)
    assert L.n_rows == (n * (n + 1) // 2 if real else n * n)
    check_span(L, X, X0, rng)


def test_partial_trace_rows_match_operator_matrix():
    for dims, axis in [((2, 3), 0), ((3, 2), 1), ((2, 3, 2), 1), ((2, 2, 3), 2)]:
        for real in (False, True):
            ours = partial_trace_rows(dims, axis, real=real)
            ref = PartialTrace(dims, axis, real=real).matrix()
            assert abs(ours - ref).max() == 0.0


def test_partial_trace_negative_scale_and_qot_structure():
    rng = np.random.default_rng(2)
    n = 8
    D = n * n
    X = cp.Variable((D, D), hermitian=True)
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    cons = [
        X >> 0,
        cp.Constant(rho) == cp.partial_trace(X, [n, n], 1),
        cp.partial_trace(X, [n, n], 0) == sigma,
    ]
    H = rand_herm(rng, D)
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)
    L = check_round_trip(problem, X, rand_herm(rng, D))
    ops = leaves(L.A)
    assert [type(o) for o in ops] == [PartialTrace, PartialTrace]
    assert ops[0].scale == -1.0 and (ops[0].dims, ops[0].axis) == ((n, n), 1)
    assert (ops[1].dims, ops[1].axis, ops[1].scale) == ((n, n), 0, 1.0)
    assert L.n_rows == 2 * n * n - 1  # both marginals fix the trace: one row dropped


def test_partial_trace_near_miss_is_dense():
    rng = np.random.default_rng(4)
    X = cp.Variable((6, 6), hermitian=True)
    expr = cp.partial_trace(X, [2, 3], 1) + 1e-9 * X[0:2, 0:2]
    L = check_round_trip(
        cp.Problem(cp.Minimize(0), [X >> 0, expr == np.eye(2) / 2]), X, rand_herm(rng, 6)
    )
    assert all(isinstance(o, Dense) for o in leaves(L.A))


def test_pauli_strings_detected():
    rng = np.random.default_rng(8)
    n = 3
    D = 2**n
    labels = ["XYZ", "IIZ", "YYI", "ZXY", "XIX", "YII"]
    coefs = [1.0, 0.5, -2.0, 1.0, 3.0, 1.0]
    X = cp.Variable((D, D), hermitian=True)
    cons = [X >> 0, cp.trace(X) == 1]
    for lab, c in zip(labels[:3], coefs[:3], strict=True):
        cons.append(c * cp.real(cp.trace(pauli_matrix(lab) @ X)) == 0.01)
    # complex spelling: the identically zero Im row is dropped without breaking the run
    cons.append(cp.trace(pauli_matrix(labels[3]) @ X) == 0.02)
    # elementwise spelling
    cons.append(coefs[4] * cp.real(cp.sum(cp.multiply(pauli_matrix(labels[4]).T, X))) == 0.0)
    cons.append(cp.real(cp.trace(pauli_matrix(labels[5]) @ X)) == 0.0)
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D))
    (op,) = leaves(L.A)
    assert isinstance(op, Pauli)
    assert op.labels == ["III"] + labels
    assert np.allclose(op.coefficients, [1.0] + coefs)
    assert L.recovery.constraints[4].structure == "pauli"  # the complex spelling


def test_pauli_near_misses_are_dense():
    rng = np.random.default_rng(9)
    D = 8
    P = pauli_matrix("XZY")
    extra = np.zeros((D, D))
    extra[0, 0] = 1e-9  # one entry too many
    bent = P.copy()
    r, c = np.argwhere(np.abs(P) > 0)[3]
    bent[r, c] *= 1 + 1e-9  # a value slightly off (kept Hermitian)
    bent[c, r] = np.conj(bent[r, c])
    X = cp.Variable((D, D), hermitian=True)
    cons = [X >> 0, cp.trace(X) == 1]
    cons += [cp.real(cp.trace(M @ X)) == 0.0 for M in (P + extra, bent, 1j * P)]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D))
    ops = leaves(L.A)
    assert [type(o) for o in ops] == [Pauli, Dense]
    assert ops[0].n_rows == 1 and ops[1].n_rows == 2  # Re Tr[iP X] = 0: a dropped zero row
    assert [info.structure for info in L.recovery.constraints] == [
        "pauli",
        "dense",
        "dense",
        "dropped",
    ]


def test_structure_runs_keep_row_order():
    rng = np.random.default_rng(10)
    D = 4
    X = cp.Variable((D, D), hermitian=True)
    cons = [
        X >> 0,
        cp.real(cp.trace(pauli_matrix("XZ") @ X)) == 0.1,
        cp.real(X[0, 1]) == 0.05,
        cp.partial_trace(X, [2, 2], 0) == np.eye(2) / 2,
        cp.real(cp.trace(pauli_matrix("ZZ") @ X)) == 0.2,
    ]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D))
    assert [type(o) for o in leaves(L.A)] == [Pauli, Dense, PartialTrace, Pauli]
    assert np.all(np.diff(L.recovery.row_map) > 0)
    assert "PartialTrace" in L.describe()


# ------------------------------------------------------------------------- dependent rows
def _qot(n, rng, extra=()):
    D = n * n
    X = cp.Variable((D, D), hermitian=True)
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    cons = [X >> 0, cp.partial_trace(X, [n, n], 1) == rho, cp.partial_trace(X, [n, n], 0) == sigma]
    cons += [f(X) for f in extra]
    H = rand_herm(rng, D)
    return X, cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_redundant_trace_is_dropped():
    rng = np.random.default_rng(12)
    n = 3
    X, problem = _qot(n, rng, [lambda X: cp.trace(X) == 1])
    L = check_round_trip(problem, X, rand_herm(rng, n * n))
    assert L.n_rows == 2 * n * n - 1
    # per marginal n^2 - n repeated off-diagonal rows; one diagonal row of the second marginal
    # (the shared trace) and the trace row itself
    assert L.recovery.dropped["dependent"].size == 2 * (n * n - n) + 2
    assert L.recovery.constraints[2].structure == "dropped"
    assert L.recovery.dropped["zero"].size == 2 * n  # Im of the marginals' diagonals
    # the lowered data (redundant rows dropped) and the source model (with them) give the same
    # optimum; judged by measured residuals and gap, not by Clarabel's status string
    exact = solve_exact(L, "CLARABEL")
    assert exact.converged, exact.summary()
    problem.solve(solver=cp.CLARABEL)
    assert problem.value == pytest.approx(exact.value, abs=1e-6)
    assert max(np.abs(c.violation()).max() for c in problem.constraints[1:]) < 1e-7
    assert np.linalg.eigvalsh(X.value).min() > -1e-7


def test_inconsistent_trace_is_infeasible():
    rng = np.random.default_rng(12)
    _, problem = _qot(3, rng, [lambda X: cp.trace(X) == 2])
    with pytest.raises(InfeasibleDataError, match=r"(?i)#3 `trace") as err:
        lower(problem)
    assert "#1" in str(err.value) or "#2" in str(err.value)


def test_marginals_with_different_traces_are_infeasible():
    rng = np.random.default_rng(13)
    n = 3
    X = cp.Variable((n * n, n * n), hermitian=True)
    cons = [
        X >> 0,
        cp.partial_trace(X, [n, n], 1) == rand_state(rng, n),
        cp.partial_trace(X, [n, n], 0) == 2 * rand_state(rng, n),
    ]
    with pytest.raises(InfeasibleDataError, match="#1.*#2|#2.*#1"):
        lower(cp.Problem(cp.Minimize(0), cons))


@pytest.mark.parametrize(
    "bad",
    [
        np.diag([0.5 + 0.1j, 0.5]),  # Im of a diagonal entry: identically zero row
        np.array([[0.5, 0.1], [0.2, 0.5]]),  # (0,1) and (1,0) disagree
    ],
)
def test_non_hermitian_marginal_is_infeasible(bad):
    X = cp.Variable((4, 4), hermitian=True)
    cons = [X >> 0, cp.partial_trace(X, [2, 2], 1) == bad]
    with pytest.raises(InfeasibleDataError, match="#1"):
        lower(cp.Problem(cp.Minimize(0), cons))


def test_consistent_duplicates_are_dropped_and_scaled_copies_checked():
    X = cp.Variable((3, 3), hermitian=True)
    base = [X >> 0, cp.trace(X) == 1, cp.real(X[0, 0]) == 0.2]
    L = lower(cp.Problem(cp.Minimize(0), base + [2 * cp.trace(X) == 2, X[0, 0] == 0.2]))
    assert L.n_rows == 2
    assert [i.structure for i in L.recovery.constraints] == ["dense", "dense", "dropped", "dropped"]
    with pytest.raises(InfeasibleDataError, match="#3"):
        lower(cp.Problem(cp.Minimize(0), base + [2 * cp.trace(X) == 2.001]))


# ---------------------------------------------------------------------------- bad input
def _ok_parts(D=3):
    X = cp.Variable((D, D), hermitian=True)
    return X, [X >> 0, cp.trace(X) == 1]


def _bad_models():
    X, ok = _ok_parts()
    Y = cp.Variable((3, 3), hermitian=True)
    Z = cp.Variable((3, 3), complex=True)
    R = cp.Variable((3, 3))
    Ri = cp.Variable((3, 3), integer=True)
    Rn = cp.Variable((3, 3), nonneg=True)
    zero = cp.Minimize(0)
    return {
        "two variables": cp.Problem(zero, ok + [cp.trace(Y) == 1]),
        "non-Hermitian complex": cp.Problem(zero, [cp.trace(Z) == 1]),
        "real non-symmetric": cp.Problem(zero, [cp.trace(R) == 1]),
        "integer": cp.Problem(zero, [Ri >> 0, cp.trace(Ri) == 1]),
        "nonneg attribute": cp.Problem(zero, [Rn >> 0, cp.trace(Rn) == 1]),
        "no PSD": cp.Problem(zero, [cp.trace(X) == 1]),
        "shifted PSD": cp.Problem(zero, [X >> 0.1 * np.eye(3), cp.trace(X) == 1]),
        "NSD": cp.Problem(zero, [X << 0, cp.trace(X) == 1]),
        "PSD of a block": cp.Problem(zero, ok + [X[0:2, 0:2] >> 0]),
        "PSD of another map": cp.Problem(zero, ok + [X.T >> 0]),
        "NonNeg": cp.Problem(zero, ok + [cp.constraints.NonNeg(cp.real(X[0, 0]) - 0.5)]),
        "only inequalities": cp.Problem(zero, [X >> 0, cp.real(cp.trace(X)) <= 1]),
        "second-order cone": cp.Problem(zero, ok + [cp.SOC(cp.real(X[0, 0]), cp.real(X[1]))]),
        "non-affine constraint": cp.Problem(zero, ok + [cp.square(cp.real(X[0, 0])) == 0.25]),
        "non-affine objective": cp.Problem(cp.Minimize(cp.norm(X, "fro")), ok),
        "no equality": cp.Problem(zero, [X >> 0]),
        "only zero rows": cp.Problem(zero, [X >> 0, cp.imag(cp.trace(X)) == 0]),
    }


@pytest.mark.parametrize("name", list(_bad_models()))
def test_unsupported_models(name):
    with pytest.raises(UnsupportedModelError):
        lower(_bad_models()[name])


def test_unsupported_messages_say_what_to_write():
    models = _bad_models()
    for name, hint in [
        ("two variables", "no PSD constraint"),
        ("non-Hermitian complex", "hermitian=True"),
        ("real non-symmetric", "symmetric=True"),
        ("shifted PSD", "X = Y + c"),
        ("NonNeg", "`expr >= 0`"),
        ("only inequalities", "cp.trace(X) == 1"),
        ("second-order cone", "affine inequalities (<=, >=)"),
        ("no PSD", "X >> 0"),
        ("no equality", "cp.trace(X) == 1"),
    ]:
        with pytest.raises(UnsupportedModelError, match=re.escape(hint)):
            lower(models[name])


def test_invalid_data():
    X, ok = _ok_parts()
    with pytest.raises(InvalidInputError, match="NaN"):
        lower(cp.Problem(cp.Minimize(0), ok + [X[0, 1] == np.nan]))
    H = np.eye(3)
    H[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        lower(cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), ok))
    p = cp.Parameter()
    with pytest.raises(InvalidInputError, match="no value"):
        lower(cp.Problem(cp.Minimize(0), ok + [cp.real(X[0, 0]) == p]))
    with pytest.raises(InvalidInputError):
        lower("not a problem")


def test_cvxpy_version_check(monkeypatch):
    assert SUPPORTED_CVXPY == (">=1.6", "<1.10")
    check_cvxpy_version()  # the installed version is supported
    X, ok = _ok_parts()
    for version in ("1.5.4", "1.10.0", "2.0.0"):
        monkeypatch.setattr(cp, "__version__", version)
        with pytest.raises(UnsupportedModelError, match=version):
            lower(cp.Problem(cp.Minimize(0), ok))


def test_cvxpy_range_is_stated_once():
    """pyproject.toml's requirement (what pip enforces) equals SUPPORTED_CVXPY (what the lowering
    checks)."""
    import pathlib

    text = (pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    found = re.findall(r'^\s*"cvxpy([^"]*)",?\s*$', text, flags=re.M)
    assert found == [",".join(SUPPORTED_CVXPY)]


# ------------------------------------------------------------------------------- duals
def _lowered_dual(L):
    """Solve ``max <alpha, q> s.t. H - A*(alpha) >> 0`` of the lowered data with Clarabel.

    Uses only ``(H, A, q)``: the Q_i are taken from the operator, independently of CVXPY's
    solution of the source model."""
    Q = L.A.to_dense()
    m, D = Q.shape[0], L.dim
    if L.real:
        Q, H = Q.real, L.H.real
    else:
        H = L.H
    a = cp.Variable(m)
    S = matrix_var(D, L.real)
    prob = cp.Problem(cp.Maximize(a @ L.q), [S == H - sum(a[i] * Q[i] for i in range(m)), S >> 0])
    prob.solve(solver=cp.CLARABEL)
    # judged by the returned point (Clarabel may say "optimal_inaccurate" at a 1e-10 gap)
    assert prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE), prob.status
    assert np.linalg.eigvalsh(S.value).min() > -1e-7
    assert prob.constraints[0].violation().max() < 1e-7
    return a.value, prob.value


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("sense", ["min", "max"])
def test_duals_match_cvxpy(real, sense):
    """Unique-dual model (independent rows, strictly feasible, generic cost): CVXPY's duals
    from SCS and Clarabel on the source model equal the recovery's map of the alpha that solves
    the lowered dual. The two solves share nothing but the model, so the check is not circular."""
    rng = np.random.default_rng(21 if real else 22)
    D = 4
    X = matrix_var(D, real)
    X0 = rand_state(rng, D, real)
    Qs = [rand_herm(rng, D, real) for _ in range(2)]
    B = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
    H = rand_herm(rng, D, real)
    cons = [X >> 0, cp.trace(X) == 1]
    cons += [cp.real(cp.trace(Q @ X)) == np.trace(Q @ X0).real for Q in Qs]
    cons += [cp.trace(B @ X) == np.trace(B @ X0), 2 * X[1, 0] == 2 * X0[1, 0]]
    f = cp.real(cp.trace(H @ X)) + 0.5
    problem = cp.Problem(cp.Minimize(f) if sense == "min" else cp.Maximize(-f), cons)
    L = lower(problem)
    alpha, dual_value = _lowered_dual(L)
    assert L.user_value(dual_value) == pytest.approx(problem.solve(solver=cp.CLARABEL), abs=1e-6)
    ours = L.recovery.dual_values(alpha)
    # what unpack would set for X >> 0 (CVXPY's convention of the installed version)
    Z = L.recovery.to_solution(np.eye(D) / D, alpha).dual_vars[cons[0].id]
    # interior-point and first-order solvers give duals to ~1e-5 and ~1e-4 here; a sign, scale or
    # layout error in the mapping would be O(1)
    for solver, tol in [(cp.CLARABEL, 1e-3), (cp.SCS, 3e-3)]:
        kw = {"eps": 1e-9, "max_iters": 100_000} if solver == cp.SCS else {}
        problem.solve(solver=solver, **kw)
        for c in cons[1:]:
            assert np.shape(ours[c.id]) == np.shape(c.dual_value)
            assert np.iscomplexobj(ours[c.id]) == np.iscomplexobj(c.dual_value)
            assert np.allclose(ours[c.id], c.dual_value, atol=tol), (solver, str(c))
        assert np.allclose(Z, cons[0].dual_value, atol=10 * tol)


def test_qot_duals_match_cvxpy_up_to_gauge():
    """Marginal duals are unique only up to the shared trace direction and anti-Hermitian parts;
    the Kronecker sum Herm(Y1) (x) I + I (x) Herm(Y2) and the PSD dual are unique."""
    rng = np.random.default_rng(31)
    n = 3
    X, problem = _qot(n, rng)
    L = lower(problem)
    alpha, _ = _lowered_dual(L)
    ours = L.recovery.dual_values(alpha)
    problem.solve(solver=cp.SCS, eps=1e-9, max_iters=100_000)
    c1, c2 = problem.constraints[1], problem.constraints[2]

    def kron_sum(Y1, Y2):
        h = lambda Y: (Y + Y.conj().T) / 2  # noqa: E731
        return np.kron(h(Y1), np.eye(n)) + np.kron(np.eye(n), h(Y2))

    ref = kron_sum(c1.dual_value, c2.dual_value)
    got = kron_sum(ours[c1.id], ours[c2.id])
    assert np.allclose(got, ref, atol=1e-3)
    Z = L.recovery.to_solution(np.eye(n * n) / n**2, alpha).dual_vars[problem.constraints[0].id]
    assert np.allclose(Z, problem.constraints[0].dual_value, atol=1e-3)


# ------------------------------------------------------------------------------- recovery
def test_unpack_sets_problem_state():
    rng = np.random.default_rng(41)
    n = 2
    X, problem = _qot(n, rng)
    ref = problem.solve(solver=cp.CLARABEL)
    X_opt = X.value.copy()
    L = lower(problem)
    alpha, _ = _lowered_dual(L)
    X.value = None
    problem._status = None
    rec = L.recovery
    assert isinstance(rec, Recovery)
    rec.unpack(X_opt + 1e-14j * rng.normal(size=X_opt.shape), alpha, status=cp.OPTIMAL)
    assert problem.status == cp.OPTIMAL
    assert problem.value == pytest.approx(ref, abs=1e-6)
    assert np.allclose(X.value, X.value.conj().T, atol=0)
    assert problem.constraints[1].dual_value.shape == (n, n)
    # a certificate-only status: no primal, value +inf for a minimization
    rec.unpack(None, status=cp.INFEASIBLE)
    assert problem.status == cp.INFEASIBLE and problem.value == np.inf and X.value is None
    assert problem.constraints[1].dual_value is None
    # a failed solve clears the state and records the status
    for failed in (cp.SOLVER_ERROR, cp.USER_LIMIT):
        rec.unpack(X_opt, alpha, status=cp.OPTIMAL)
        rec.unpack(None, None, None, failed)
        assert problem.status == failed and problem.value is None and X.value is None
        assert problem.constraints[1].dual_value is None
    with pytest.raises(InvalidInputError):
        rec.unpack(X_opt, status="converged")
    with pytest.raises(InvalidInputError):
        rec.to_solution(None, status=cp.OPTIMAL)
    with pytest.raises(InvalidInputError):
        rec.unpack(np.eye(3), status=cp.OPTIMAL)


def test_maximize_unpack_value_sign():
    X = cp.Variable((2, 2), symmetric=True)
    problem = cp.Problem(cp.Maximize(cp.trace(X)), [X >> 0, cp.trace(X) == 1])
    L = lower(problem)
    L.recovery.unpack(None, status=cp.INFEASIBLE)
    assert problem.value == -np.inf
    L.recovery.unpack(np.eye(2) / 2, np.array([-1.0]), status=cp.OPTIMAL)
    assert problem.value == pytest.approx(1.0)
    assert problem.constraints[1].dual_value == pytest.approx(1.0)  # = CVXPY's own answer
    problem.solve(solver=cp.CLARABEL)
    assert problem.constraints[1].dual_value == pytest.approx(1.0, abs=1e-7)


def test_reduction_apply_invert():
    from cvxpy.reductions.solution import Solution

    rng = np.random.default_rng(51)
    X, problem = _qot(2, rng)
    red = Lowering()
    assert red.accepts(problem)
    assert not red.accepts(cp.Problem(cp.Minimize(0), [X >> 0]))
    lowered, inverse = red.apply(problem)
    assert inverse is lowered.recovery
    alpha, value = _lowered_dual(lowered)
    problem.solve(solver=cp.CLARABEL)
    X_opt = X.value.copy()
    sol = Solution(cp.OPTIMAL, value, {PRIMAL_KEY: X_opt}, {DUAL_KEY: alpha}, {})
    back = red.invert(sol, inverse)
    assert np.allclose(back.primal_vars[X.id], X_opt)
    assert back.opt_val == pytest.approx(lowered.user_value(value), abs=1e-6)
    assert inverse.to_solution(X_opt).opt_val == pytest.approx(problem.objective.value, abs=1e-12)
    assert set(back.dual_vars) == {c.id for c in problem.constraints}
    problem.unpack(back)
    assert problem.value == pytest.approx(lowered.user_value(value), abs=1e-6)


def test_describe_reports_structure():
    rng = np.random.default_rng(61)
    X, problem = _qot(2, rng, [lambda X: cp.trace(X) == 1])
    L = lower(problem)
    text = L.recovery.describe()
    assert "#1" in text and "PartialTrace(dims=(2, 2), axis=1)" in text
    assert "dropped" in text
    assert L.row_labels[0].startswith("constraint #1 Re[0, 0]")
    assert set(L.recovery.timings) >= {"extract", "dependence", "structure", "total"}


def test_lowered_operator_matrix_is_sparse_and_hermitian():
    rng = np.random.default_rng(71)
    X, problem = _qot(3, rng)
    L = lower(problem)
    M = L.A.matrix()
    assert sp.issparse(M)
    Dense(M, dim=L.dim)  # checks every Q_i is Hermitian


def test_small_complex_parts_are_kept():
    """CVXPY calls a complex constant real (or imaginary) when the other part is below 1e-5 and
    Complex2Real then drops that part; the lowering splits constants first, so nothing is lost."""
    rng = np.random.default_rng(81)
    D = 3
    X = cp.Variable((D, D), hermitian=True)
    B = rng.normal(size=(D, D)) + 1e-8j * rng.normal(size=(D, D))
    cons = [X >> 0, cp.trace(X) == 1, cp.trace(B @ X) == 0.1 + 1e-7j, X[0, 1] == 2e-7j]
    L = check_round_trip(cp.Problem(cp.Minimize(0), cons), X, rand_herm(rng, D))
    assert np.any(np.isclose(L.q, 1e-7, rtol=1e-12, atol=0))
    assert np.any(np.isclose(L.q, 2e-7, rtol=1e-12, atol=0))


def test_fast_path_agrees_with_cvxpy_path(monkeypatch):
    """Scalar forms read off the tree give the same rows, layout, cost and offset as CVXPY's
    canonicalization (forced here by disabling the fast path)."""
    import cvxqreg.lowering.extract as extract_mod

    rng = np.random.default_rng(91)
    for real in (False, True):
        D = 5
        X = matrix_var(D, real)
        Q = rand_herm(rng, D, real)
        B, B2, B3 = (rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D)) for _ in range(3))
        H = rand_herm(rng, D, real)
        cons = [
            X >> 0,
            cp.trace(X) == 1,
            cp.real(cp.trace(Q @ X)) == 0.3,
            cp.trace(B @ X) == 0.1 + 0.2j,
            cp.trace(X @ B2) / 2.0 == 0.1,
            cp.real(cp.sum(cp.multiply(B3, X))) - 0.5 * X[1, 2] == 0.0,
            cp.conj(X[0, 1]) + cp.imag(X[2, 3]) == 0.05,
            cp.sum(cp.multiply(B3, X.T)) == 1j,
            cp.sum(X) == 2.0,
        ]
        f = cp.real(cp.trace(H @ X)) - 2 * cp.real(X[0, 0]) + 1.5
        problem = cp.Problem(cp.Maximize(f), cons)
        fast = check_round_trip(problem, X, rand_herm(rng, D, real))
        assert len(fast.recovery.fast_path) == len(cons)  # all 8 equalities and the objective
        with monkeypatch.context() as m:
            m.setattr(extract_mod, "scalar_form", lambda expr, X: None)
            slow = check_round_trip(problem, X, rand_herm(rng, D, real))
        assert slow.recovery.fast_path == ()
        assert np.array_equal(fast.recovery.row_map, slow.recovery.row_map)
        assert [(i.n_re, i.n_im) for i in fast.recovery.constraints] == [
            (i.n_re, i.n_im) for i in slow.recovery.constraints
        ]
        assert abs(fast.A.matrix() - slow.A.matrix()).max() < 1e-14
        assert np.allclose(fast.q, slow.q, atol=1e-15) and np.allclose(fast.H, slow.H, atol=1e-15)
        assert fast.offset == pytest.approx(slow.offset, abs=1e-15)


def test_fast_path_falls_back_on_unknown_atoms():
    X = cp.Variable((4, 4), hermitian=True)
    cons = [X >> 0, cp.trace(X) == 1, cp.sum(cp.diag(X)[1:3]) == 0.5]
    L = lower(cp.Problem(cp.Minimize(cp.real(cp.sum(cp.diag(X)))), cons))
    assert L.recovery.fast_path == (1,)  # only trace(X) == 1; diag(...) goes through CVXPY
    assert L.n_rows == 2
