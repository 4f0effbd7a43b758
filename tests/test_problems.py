"""Tests of the problem library ``cvxqreg.problems``.

Physical sanity of every generated instance (Hermitian costs, unit-trace PSD marginals, outcomes
that match the generating state), independent re-derivations of the closed forms (Pauli strings
from Kronecker products, Gaussian Fock matrix elements from coherent/thermal/squeezed formulas and
moments, the [CGP] 4 x 4 cost from a finite-difference discretization on a position grid), small
solves with SCS/Clarabel against the known optimal values, and argument validation.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import pathlib
import sys

import cvxpy as cp
import numpy as np
import pytest
from scipy.special import gammaln

from cvxqreg.errors import InvalidInputError
from cvxqreg.problems import (
    Instance,
    cat_state,
    coherent_pair_matrices,
    gaussian_state_fock,
    ising,
    ising_hamiltonian,
    pauli_expectation,
    pauli_expectations,
    pauli_matrix,
    pauli_sparse,
    quadrature_matrices,
    random_pauli_labels,
    tomography,
    tomography_state,
    two_point,
    two_point_cost,
    wasserstein,
    wasserstein_cost,
    zeta_state,
)
from cvxqreg.problems.wasserstein import _gaussian_block

SIGMA = {
    "I": np.eye(2),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]]),
    "Z": np.diag([1.0, -1.0]).astype(complex),
}


def kron_all(mats):
    return functools.reduce(np.kron, mats, np.eye(1))


def assert_density_matrix(rho, atol=1e-10):
    rho = np.asarray(rho)
    assert rho.shape[0] == rho.shape[1]
    np.testing.assert_allclose(rho, rho.conj().T, atol=atol)
    assert abs(np.trace(rho) - 1.0) < atol
    assert np.linalg.eigvalsh(rho).min() > -atol


def assert_feasible(inst: Instance, point, atol=1e-9):
    """Every constraint of ``inst.problem`` holds at ``X = point``."""
    inst.X.value = point
    try:
        for con in inst.problem.constraints:
            assert np.max(con.violation()) < atol, str(type(con))
    finally:
        inst.X.value = None


def solve(inst: Instance, solver="CLARABEL"):
    if solver not in cp.installed_solvers():
        pytest.skip(f"{solver} is not installed")
    if solver == "SCS":
        inst.problem.solve(solver="SCS", eps=1e-9, max_iters=200_000)
    else:
        inst.problem.solve(solver="CLARABEL")
    assert inst.problem.status in ("optimal", "optimal_inaccurate"), inst.problem.status
    return inst.problem.value


# ---------------------------------------------------------------------------------------------
# package hygiene


def test_subpackage_imports_only_numpy_scipy_cvxpy_and_errors():
    root = pathlib.Path(__file__).resolve().parents[1] / "cvxqreg" / "problems"
    allowed = {"numpy", "scipy", "cvxpy", "__future__"}
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:  # relative import inside the subpackage
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "cvxqreg":
                    assert name == "cvxqreg.errors", f"{path.name} imports {name}"
                else:
                    assert top in allowed or top in sys.stdlib_module_names, (
                        f"{path.name} imports {name}"
                    )


def test_instance_is_frozen_and_repr_is_short():
    inst = two_point(1.0, 2.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inst.dim = 5  # type: ignore[misc]
    text = repr(inst)
    assert text.startswith("Instance(name='CGP(") and len(text) < 200


SMALL = [
    ("qt1", lambda: tomography("QT1", n_qubits=2)),
    ("qt2", lambda: tomography("QT2", n_qubits=3, dense_observables=False)),
    ("qt3", lambda: tomography("QT3", n_qubits=2, seed=5)),
    ("qwd", lambda: wasserstein(3)),
    ("im", lambda: ising(1)),
    ("cgp", lambda: two_point(0.8, 1.5, 0.7)),
    ("cgp_eta", lambda: two_point(1.0, 1.0, eta=0.4)),
]


@pytest.mark.parametrize("make", [m for _, m in SMALL], ids=[k for k, _ in SMALL])
def test_instance_contract(make):
    inst = make()
    D = inst.dim
    assert inst.X.shape == (D, D) and inst.X.is_hermitian()
    assert inst.H.shape == (D, D)
    np.testing.assert_allclose(inst.H, inst.H.conj().T, atol=1e-12)
    assert isinstance(inst.problem, cp.Problem) and inst.problem.is_dcp()
    assert isinstance(inst.problem.objective, cp.Minimize)
    assert any(isinstance(c, cp.constraints.PSD) for c in inst.problem.constraints)
    assert inst.problem.variables() == [inst.X]
    assert isinstance(inst.n_constraints, int) and inst.n_constraints > 0
    # a known feasible point satisfies every constraint and the objective is Re Tr[H X]
    md = inst.metadata
    if "state" in md:
        point = md["state"]
    elif "psi" in md:
        point = np.outer(md["psi"], md["psi"])
    elif "toeplitz_coupling" in md:
        point = md["toeplitz_coupling"]
    else:
        point = np.kron(md["rho"], md["sigma"])
    assert_feasible(inst, point)
    inst.X.value = point
    assert abs(inst.problem.objective.value - np.real(np.vdot(inst.H, point))) < 1e-9
    inst.X.value = None


# ---------------------------------------------------------------------------------------------
# Pauli strings


def test_pauli_matrix_matches_kronecker_products():
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 4):
        for _ in range(10):
            label = "".join(rng.choice(list("IXYZ"), size=n))
            P = pauli_matrix(label)
            np.testing.assert_array_equal(P, kron_all(SIGMA[c] for c in label))
            np.testing.assert_array_equal(pauli_sparse(label).toarray(), P)
    assert pauli_matrix("xz").real.astype(int).tolist() == [
        [0, 0, 1, 0],
        [0, 0, 0, -1],
        [1, 0, 0, 0],
        [0, -1, 0, 0],
    ]


def test_pauli_expectations_match_dense_traces():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    rho = A @ A.conj().T
    labels = random_pauli_labels(3, 20, seed=3)
    expect = [np.trace(rho @ pauli_matrix(lab)).real for lab in labels]
    np.testing.assert_allclose(pauli_expectations(rho, labels), expect, atol=1e-12)
    assert abs(pauli_expectation(rho, "YIX") - np.trace(rho @ pauli_matrix("YIX")).real) < 1e-12


def test_random_pauli_labels_distinct_uniform_and_reproducible():
    every = random_pauli_labels(2, 15, seed=0)
    assert sorted(every) == sorted(a + b for a in "IXYZ" for b in "IXYZ" if a + b != "II")
    assert random_pauli_labels(4, 30, seed=7) == random_pauli_labels(4, 30, seed=7)
    assert random_pauli_labels(4, 30, seed=7) != random_pauli_labels(4, 30, seed=8)
    with_id = random_pauli_labels(1, 4, seed=0, include_identity=True)
    assert sorted(with_id) == ["I", "X", "Y", "Z"]
    # uniform: over many seeds every non-identity string on 1 qubit is drawn about equally often
    counts = {c: 0 for c in "XYZ"}
    for s in range(600):
        counts[random_pauli_labels(1, 1, seed=s)[0]] += 1
    assert all(150 < v < 250 for v in counts.values()), counts


@pytest.mark.parametrize(
    "call",
    [
        lambda: pauli_matrix("XQ"),
        lambda: pauli_matrix(""),
        lambda: pauli_matrix(3),
        lambda: pauli_matrix("X" * 14),
        lambda: random_pauli_labels(2, 16),
        lambda: random_pauli_labels(0, 1),
        lambda: random_pauli_labels(2, -1),
        lambda: random_pauli_labels(2, 3, seed=-1),
        lambda: random_pauli_labels(2.0, 3),
        lambda: pauli_expectations(np.eye(4), ["XYZ"]),
        lambda: pauli_expectations(np.ones(4), ["XY"]),
    ],
)
def test_pauli_validation(call):
    with pytest.raises(InvalidInputError):
        call()


# ---------------------------------------------------------------------------------------------
# tomography


@pytest.mark.parametrize("kind", ["QT1", "QT2", "QT3"])
def test_tomography_outcomes_come_from_the_state(kind):
    inst = tomography(kind, n_qubits=3, seed=11)
    md = inst.metadata
    D = 8
    assert inst.dim == D and md["n_measurements"] == 2 * D
    assert inst.n_constraints == 1 + 2 * D
    assert inst.reference_value == 0.0 and not np.any(inst.H)
    assert_density_matrix(md["state"])
    labels = md["labels"]
    assert len(set(labels)) == len(labels) and "III" not in labels
    assert all(len(lab) == 3 and set(lab) <= set("IXYZ") for lab in labels)
    q = [np.trace(md["state"] @ kron_all(SIGMA[c] for c in lab)).real for lab in labels]
    np.testing.assert_allclose(md["outcomes"], q, atol=1e-12)
    assert md["labels"] == random_pauli_labels(3, 16, seed=11)


def test_zeta_state_is_the_papers_rho1():
    p, th, om = 0.7, math.pi / 6, math.pi / 4
    rho = zeta_state(3, p, th, om)
    D = 8
    assert_density_matrix(rho)
    assert abs(rho[0, 0] - (p * math.cos(th) ** 2 + (1 - p) / D)) < 1e-14
    assert abs(rho[D - 1, D - 1] - (p * math.sin(th) ** 2 + (1 - p) / D)) < 1e-14
    assert abs(rho[0, D - 1] - p * math.cos(th) * math.sin(th) * np.exp(-1j * om)) < 1e-14
    assert abs(rho[3, 3] - (1 - p) / D) < 1e-14
    rest = rho.copy()
    rest[[0, 0, D - 1, D - 1], [0, D - 1, 0, D - 1]] = 0
    np.testing.assert_allclose(rest, (1 - p) / D * np.diag([0] + [1] * (D - 2) + [0]), atol=1e-15)


def test_cat_state_is_the_truncated_normalized_even_cat():
    beta = 2.0
    rho = cat_state(3, beta)
    assert_density_matrix(rho)
    w, v = np.linalg.eigh(rho)
    assert abs(w[-1] - 1) < 1e-12  # pure
    psi = v[:, -1] * np.sign(v[0, -1])
    lev = np.arange(8)
    expect = np.where(lev % 2 == 0, beta**lev / np.sqrt([math.factorial(k) for k in lev]), 0.0)
    np.testing.assert_allclose(psi, expect / np.linalg.norm(expect), atol=1e-12)
    inst = tomography("QT2", n_qubits=3)
    kept = sum(4 * math.exp(-4) * 4.0**k / math.factorial(k) for k in range(0, 8, 2))
    assert abs(inst.metadata["cat_norm_retained"] - kept / (2 * (1 + math.exp(-8)))) < 1e-12
    # complex beta and huge beta stay finite and normalized
    assert_density_matrix(cat_state(2, 1.5 - 0.5j))
    assert_density_matrix(cat_state(4, 40.0))


def test_qt3_is_the_mixture():
    rho3 = tomography_state("qt3", 2, t=0.25)
    np.testing.assert_allclose(
        rho3, 0.25 * tomography_state("QT1", 2) + 0.75 * tomography_state("QT2", 2), atol=1e-15
    )


def test_tomography_defaults_and_observable_forms():
    one = tomography("QT1", n_qubits=1)
    assert one.metadata["n_measurements"] == 3  # 2D = 4 capped at 4^1 - 1
    dense = tomography("QT3", n_qubits=2, n_measurements=5, seed=3, dense_observables=True)
    sparse = tomography("QT3", n_qubits=2, n_measurements=5, seed=3, dense_observables=False)
    assert dense.metadata["observables"] == "dense" and sparse.metadata["observables"] == "sparse"
    assert tomography("QT1", n_qubits=7, n_measurements=3).metadata["observables"] == "sparse"
    for inst in (dense, sparse):
        assert_feasible(inst, inst.metadata["state"])


@pytest.mark.parametrize("solver", ["CLARABEL", "SCS"])
def test_tomography_solves_to_zero_and_reproduces_outcomes(solver):
    inst = tomography("QT2", n_qubits=2, seed=2)
    assert abs(solve(inst, solver)) < 1e-9
    X = inst.X.value
    assert abs(np.trace(X) - 1) < 1e-6
    np.testing.assert_allclose(
        pauli_expectations(X, inst.metadata["labels"]), inst.metadata["outcomes"], atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "QT4"},
        {"kind": 1},
        {"n_qubits": 0},
        {"n_qubits": 13},
        {"n_qubits": 2.0},
        {"n_qubits": True},
        {"n_measurements": 0},
        {"n_qubits": 2, "n_measurements": 16},
        {"seed": -1},
        {"seed": 1.5},
        {"p": 1.5},
        {"t": -0.1},
        {"theta": float("nan")},
        {"beta": float("inf")},
        {"beta": "2"},
        {"dense_observables": "yes"},
    ],
)
def test_tomography_validation(kwargs):
    with pytest.raises(InvalidInputError) as err:
        tomography(**kwargs)
    name = next(iter(kwargs)) if "n_measurements" not in kwargs else "n_measurements"
    assert name in str(err.value)


# ---------------------------------------------------------------------------------------------
# quantum Wasserstein (Gaussian states, Fock truncation)


def test_quadrature_matrices_exact_elements():
    n = 7
    m = quadrature_matrices(n)
    X, P, X2, P2 = m["X"], m["P"], m["X2"], m["P2"]
    np.testing.assert_allclose(X, X.conj().T)
    np.testing.assert_allclose(P, P.conj().T)
    # exact compression of X^2 = compression of (X_{n+2})^2 (one more level is enough)
    big = quadrature_matrices(n + 2)
    np.testing.assert_allclose(X2, (big["X"] @ big["X"])[:n, :n], atol=1e-14)
    np.testing.assert_allclose(P2, (big["P"] @ big["P"])[:n, :n].real, atol=1e-14)
    # vs. products of truncated matrices: only the last diagonal entry differs
    diff = X2 - (X @ X).real
    assert abs(diff[-1, -1] - n / 2) < 1e-14
    diff[-1, -1] = 0
    assert np.abs(diff).max() < 1e-14
    comm = X @ P - P @ X  # [X, P] = i except at the truncation edge
    np.testing.assert_allclose(np.diag(comm)[:-1], 1j, atol=1e-14)


def test_wasserstein_cost_is_the_exact_operator_compression():
    n = 6
    H = wasserstein_cost(n)
    assert H.dtype == np.float64
    np.testing.assert_array_equal(H, H.T)
    a = quadrature_matrices(n)["a"]
    N1 = np.diag(2 * np.arange(n) + 1.0)
    eye = np.eye(n)
    expect = np.kron(N1, eye) + np.kron(eye, N1) - 2 * (np.kron(a, a.T) + np.kron(a.T, a))
    np.testing.assert_allclose(H, expect, atol=1e-12)
    # the compression of 4 b^+ b + 2 has smallest eigenvalue exactly 2, attained by the two-mode
    # vacuum (and by every state with the relative mode b in its vacuum)
    assert abs(np.linalg.eigvalsh(H)[0] - 2) < 1e-12
    vac = np.zeros(n * n)
    vac[0] = 1
    np.testing.assert_allclose(H @ vac, 2 * vac, atol=1e-14)


def test_gaussian_fock_matches_closed_forms():
    n = 25
    k = np.arange(n)
    # coherent state |alpha>, alpha = (x0 + i p0) / sqrt 2
    x0, p0 = 1.3, -0.7
    alpha = (x0 + 1j * p0) / math.sqrt(2)
    amp = np.exp(-(abs(alpha) ** 2) / 2 + k * np.log(abs(alpha)) - 0.5 * gammaln(k + 1))
    amp = amp * np.exp(1j * np.angle(alpha) * k)
    B = gaussian_state_fock((x0, p0), np.eye(2) / 2, n)
    np.testing.assert_allclose(B, np.outer(amp, amp.conj()), atol=1e-13)
    # thermal state, nbar = 2.5: V = (nbar + 1/2) I
    nb = 2.5
    B = gaussian_state_fock((0, 0), (nb + 0.5) * np.eye(2), n)
    np.testing.assert_allclose(B, np.diag(nb**k / (nb + 1) ** (k + 1)), atol=1e-13)
    # squeezed vacuum S(r)|0>, V = diag(e^{-2r}, e^{2r}) / 2
    r = 0.6
    j = np.arange(0, n, 2) // 2
    c = np.zeros(n)
    c[0::2] = (-np.tanh(r)) ** j * np.exp(0.5 * gammaln(2 * j + 1) - j * np.log(2) - gammaln(j + 1))
    c /= math.sqrt(math.cosh(r))
    B = gaussian_state_fock((0, 0), np.diag([math.exp(-2 * r), math.exp(2 * r)]) / 2, n)
    np.testing.assert_allclose(B, np.outer(c, c), atol=1e-13)


def test_gaussian_fock_quadrature_is_converged():
    for mean, cov in (((0, 0), [[3, 1], [1, 3]]), ((1, 1), [[10, 2], [2, 10]])):
        m, V = np.array(mean, float), np.array(cov, float)
        np.testing.assert_allclose(
            _gaussian_block(m, V, 40), _gaussian_block(m, V, 40, oversample=2.5), atol=1e-13
        )


def _moments(block):
    n = block.shape[0]
    q = quadrature_matrices(n)
    rho = block / np.trace(block).real
    ex = np.trace(rho @ q["X"]).real
    ep = np.trace(rho @ q["P"]).real
    vxx = np.trace(rho @ q["X2"]).real - ex**2
    vpp = np.trace(rho @ q["P2"]).real - ep**2
    vxp = 0.5 * np.trace(rho @ (q["X"] @ q["P"] + q["P"] @ q["X"])).real - ex * ep
    return np.array([ex, ep]), np.array([[vxx, vxp], [vxp, vpp]])


def test_gaussian_fock_moments_and_trace_convergence():
    # (mean, cov, large n for the moment check, tolerance, bound on 1 - trace at n = 80)
    cases = (
        ((0, 0), [[3, 1], [1, 3]], 80, 1e-6, 1e-8),
        ((1, 1), [[10, 2], [2, 10]], 200, 1e-4, 2e-3),
    )
    for mean, cov, n_big, tol, missing in cases:
        B = gaussian_state_fock(mean, cov, n_big)
        assert np.linalg.eigvalsh(B).min() > -1e-12
        m, V = _moments(B)
        np.testing.assert_allclose(m, mean, atol=tol)
        np.testing.assert_allclose(V, cov, atol=tol * 10)
        traces = [np.trace(gaussian_state_fock(mean, cov, n)).real for n in (5, 10, 20, 40, 80)]
        assert all(t2 > t1 for t1, t2 in zip(traces, traces[1:], strict=False)), traces
        assert 0 < traces[0] and traces[-1] < 1 and 1 - traces[-1] < missing


def test_wasserstein_instance_data():
    inst = wasserstein(8)
    md = inst.metadata
    assert inst.dim == 64 and inst.n_constraints == 2 * 64 and md["dims"] == (8, 8)
    assert inst.reference_value is None
    for key in ("rho", "sigma"):
        assert_density_matrix(md[key])
        assert np.linalg.eigvalsh(md[key]).min() > 0  # strictly positive marginals
    np.testing.assert_allclose(inst.H, wasserstein_cost(8))
    block = gaussian_state_fock((1, 1), [[10, 2], [2, 10]], 8)
    assert abs(md["trace_sigma_before"] - np.trace(block).real) < 1e-14
    np.testing.assert_allclose(md["sigma"], block / np.trace(block).real, atol=1e-14)
    traces = [wasserstein(n).metadata["trace_rho_before"] for n in (2, 4, 8, 16)]
    assert all(t2 > t1 for t1, t2 in zip(traces, traces[1:], strict=False)) and traces[-1] > 0.99


@pytest.mark.parametrize("solver", ["CLARABEL", "SCS"])
def test_wasserstein_small_solve_is_bracketed(solver):
    inst = wasserstein(3)
    value = solve(inst, solver)
    assert inst.metadata["lower_bound"] - 1e-7 <= value <= inst.metadata["product_value"] + 1e-7
    X = inst.X.value
    np.testing.assert_allclose(
        cp.partial_trace(X, [3, 3], axis=1).value, inst.metadata["rho"], atol=1e-6
    )
    np.testing.assert_allclose(
        cp.partial_trace(X, [3, 3], axis=0).value, inst.metadata["sigma"], atol=1e-6
    )


def test_wasserstein_solvers_agree():
    values = [solve(wasserstein(3), s) for s in ("CLARABEL", "SCS")]
    assert abs(values[0] - values[1]) < 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_levels": 0},
        {"n_levels": 101},
        {"n_levels": 4.0},
        {"cov_rho": [[1, 0.5], [0.4, 1]]},
        {"cov_sigma": [[0.1, 0], [0, 0.1]]},
        {"cov_rho": [[-1, 0], [0, -1]]},
        {"cov_rho": [1, 2, 3]},
        {"mean_sigma": (1, 2, 3)},
        {"mean_rho": (np.nan, 0)},
        {"mean_rho": (60.0, 0.0), "n_levels": 5},
    ],
)
def test_wasserstein_validation(kwargs):
    with pytest.raises(InvalidInputError):
        wasserstein(**kwargs)


# ---------------------------------------------------------------------------------------------
# transverse-field Ising


def test_ising_hamiltonian_matches_kronecker_construction():
    for L in (2, 3, 4):
        h, J = 0.37, 1.3
        H = np.zeros((2**L, 2**L), dtype=complex)
        for i in range(L - 1):  # open chain
            ops = [SIGMA["I"]] * L
            ops[i] = ops[i + 1] = SIGMA["Z"]
            H -= J * kron_all(ops)
        for i in range(L):
            ops = [SIGMA["I"]] * L
            ops[i] = SIGMA["X"]
            H -= h * kron_all(ops)
        np.testing.assert_allclose(ising_hamiltonian(L, h, J), H.real, atol=1e-14)
        np.testing.assert_allclose(ising_hamiltonian(L, h, J, sparse=True).toarray(), H.real)


@pytest.mark.parametrize("N", [1, 2])
def test_ising_marginals(N):
    inst = ising(N)
    md = inst.metadata
    assert md["level"] == "first_excited" and md["level_index"] == 1
    evals = np.linalg.eigvalsh(ising_hamiltonian(2 * N, 0.5))
    assert abs(md["energy"] - evals[1]) < 1e-12 and abs(md["lower_bound"] - evals[0]) < 1e-12
    assert inst.dim == 4**N and inst.n_constraints == 2 * 4**N
    psi = md["psi"]
    np.testing.assert_allclose(inst.H @ psi, md["energy"] * psi, atol=1e-10)
    pi = np.outer(psi, psi)
    d = 2**N
    np.testing.assert_allclose(cp.partial_trace(pi, [d, d], axis=1).value, md["rho"], atol=1e-14)
    np.testing.assert_allclose(cp.partial_trace(pi, [d, d], axis=0).value, md["sigma"], atol=1e-14)
    for key in ("rho", "sigma"):
        assert_density_matrix(md[key])


def test_ising_ground_level_solves_to_lambda0():
    inst = ising(2, level="ground")
    assert inst.reference_value == pytest.approx(np.linalg.eigvalsh(inst.H)[0], abs=1e-12)
    # SCS: Clarabel reports "optimal_inaccurate" here (the marginals have eigenvalues ~2e-5)
    assert abs(solve(inst, "SCS") - inst.reference_value) < 1e-6


def test_ising_first_excited_solve_is_bracketed():
    inst = ising(2)
    assert inst.reference_value is None
    value = solve(inst, "SCS")
    md = inst.metadata
    assert md["lower_bound"] - 1e-6 <= value <= md["feasible_value"] + 1e-6


def test_ising_levels_and_validation():
    assert ising(1, level=2).metadata["level_index"] == 2
    assert ising(1, level=0).reference_value is not None
    for kwargs in (
        {"n_per_side": 0},
        {"n_per_side": 7},
        {"n_per_side": 1.0},
        {"level": "excited"},
        {"level": 16, "n_per_side": 1},
        {"level": -1},
        {"level": 1.5},
        {"h": 0.0},  # degenerate ground doublet
        {"h": float("nan")},
        {"coupling": "1"},
    ):
        with pytest.raises(InvalidInputError):
            ising(**kwargs)


def test_ising_sparse_eigensolver_path(monkeypatch):
    # the function ising shadows the submodule of the same name as an attribute of the package
    ising_module = sys.modules["cvxqreg.problems.ising"]
    dense = ising(3)
    monkeypatch.setattr(ising_module, "_DENSE_EIGH_MAX_DIM", 16)  # D = 64 now takes eigsh
    sparse = ising(3)
    assert abs(dense.metadata["energy"] - sparse.metadata["energy"]) < 1e-10
    assert abs(dense.metadata["lower_bound"] - sparse.metadata["lower_bound"]) < 1e-10
    np.testing.assert_allclose(sparse.metadata["rho"], dense.metadata["rho"], atol=1e-8)
    np.testing.assert_allclose(sparse.metadata["sigma"], dense.metadata["sigma"], atol=1e-8)


@pytest.mark.slow
def test_paper_size_instances():
    """The sizes of [CGMPP, section 6] build (no solve) with consistent data (a few seconds)."""
    qt = tomography("QT3", n_qubits=9)
    assert qt.dim == 512 and qt.n_constraints == 1025 and qt.metadata["observables"] == "sparse"
    assert_density_matrix(qt.metadata["state"])
    labels = qt.metadata["labels"]
    assert len(set(labels)) == 1024
    for lab, q in list(zip(labels, qt.metadata["outcomes"], strict=True))[:32]:
        assert abs((pauli_sparse(lab) @ qt.metadata["state"]).trace().real - q) < 1e-12
    qwd = wasserstein(50)
    assert qwd.dim == 2500 and qwd.n_constraints == 5000
    assert abs(qwd.metadata["trace_rho_before"] - 0.9999992) < 1e-7
    assert abs(qwd.metadata["trace_sigma_before"] - 0.98767) < 1e-5
    for key in ("rho", "sigma"):
        assert_density_matrix(qwd.metadata[key])
    im = ising(5)
    assert im.dim == 1024 and im.n_constraints == 2048
    assert im.metadata["rho_rank"] == im.metadata["sigma_rank"] == 10
    np.testing.assert_allclose(
        im.H @ im.metadata["psi"], im.metadata["energy"] * im.metadata["psi"], atol=1e-9
    )


# ---------------------------------------------------------------------------------------------
# Caglioti-Golse-Paul two-point examples


def _fd1(F, axis, h):
    F = np.moveaxis(F, axis, 0)
    G = np.zeros_like(F)
    G[2:-2] = (-F[4:] + 8 * F[3:-1] - 8 * F[1:-3] + F[:-4]) / (12 * h)
    return np.moveaxis(G, 0, axis)


def _fd2(F, axis, h):
    F = np.moveaxis(F, axis, 0)
    G = np.zeros_like(F)
    G[2:-2] = (-F[4:] + 16 * F[3:-1] - 30 * F[2:-2] + 16 * F[1:-3] - F[:-4]) / (12 * h * h)
    return np.moveaxis(G, 0, axis)


def _grid_two_point(a, b, hbar, h=0.05):
    """4 x 4 cost and the marginals by direct discretization on a 2-D position grid.

    The basis functions phi_s(x) psi_t(y) are sampled on the grid, the cost operator
    C = (x - y)^2 - hbar^2 (d_x - d_y)^2 - 2 hbar is applied with 4th-order finite differences,
    and inner products are Riemann sums.
    """
    L = max(a, b) + 12 * math.sqrt(hbar)
    x = np.arange(-L, L + h / 2, h)

    def g(c):
        return (math.pi * hbar) ** -0.25 * np.exp(-((x - c) ** 2) / (2 * hbar))

    def pair(c):
        ov = np.sum(g(c) * g(-c)) * h  # <c|-c> from the grid, not from the closed form
        return [(g(c) + g(-c)) / math.sqrt(2 * (1 + ov)), (g(c) - g(-c)) / math.sqrt(2 * (1 - ov))]

    phi, psi = pair(a), pair(b)
    basis = [np.outer(phi[s], psi[t]) for s in range(2) for t in range(2)]
    xmy2 = (x[:, None] - x[None, :]) ** 2

    def apply_cost(F):
        lap = _fd2(F, 0, h) - 2 * _fd1(_fd1(F, 0, h), 1, h) + _fd2(F, 1, h)
        return xmy2 * F - hbar**2 * lap - 2 * hbar * F

    images = [apply_cost(F) for F in basis]
    C = np.array([[np.sum(basis[k] * images[j]) * h * h for j in range(4)] for k in range(4)])
    coords_a = np.array([[np.sum(f * g(c)) * h for c in (a, -a)] for f in phi])
    coords_b = np.array([[np.sum(f * g(c)) * h for c in (b, -b)] for f in psi])
    return C, coords_a, coords_b


@pytest.mark.parametrize("a,b,hbar", [(1.0, 2.0, 1.0), (0.7, 1.1, 0.5), (1.0, 1.0, 1.0)])
def test_two_point_cost_matches_grid_discretization(a, b, hbar):
    C_grid, coords_a, coords_b = _grid_two_point(a, b, hbar)
    C = two_point_cost(a, b, hbar)
    np.testing.assert_allclose(C, C_grid, atol=5e-6 * max(1.0, np.abs(C).max()))
    # the marginals too: R = sum_c m_c |c><c| in the phi basis, from grid overlaps
    eta = 0.3
    inst = two_point(a, b, hbar, eta=eta)
    m_R = [(1 + eta) / 2, (1 - eta) / 2]
    R = sum(m * np.outer(coords_a[:, t], coords_a[:, t]) for t, m in enumerate(m_R))
    S = sum(0.5 * np.outer(coords_b[:, t], coords_b[:, t]) for t in range(2))
    np.testing.assert_allclose(inst.metadata["R"], R, atol=1e-10)
    np.testing.assert_allclose(inst.metadata["S"], S, atol=1e-10)


def test_coherent_pair_matrices_closed_forms():
    # direct quadrature of the five Gaussian integrals
    c, hbar = 0.9, 0.6
    x = np.linspace(-15, 15, 30001)
    dx = x[1] - x[0]
    g = [(math.pi * hbar) ** -0.25 * np.exp(-((x - s) ** 2) / (2 * hbar)) for s in (c, -c)]
    dg = [-(x - s) / hbar * gi for s, gi in zip((c, -c), g, strict=True)]
    d2g = [(((x - s) / hbar) ** 2 - 1 / hbar) * gi for s, gi in zip((c, -c), g, strict=True)]
    ref = {
        "gram": [[np.sum(g[i] * g[j]) * dx for j in range(2)] for i in range(2)],
        "x": [[np.sum(g[i] * x * g[j]) * dx for j in range(2)] for i in range(2)],
        "x2": [[np.sum(g[i] * x * x * g[j]) * dx for j in range(2)] for i in range(2)],
        "d": [[np.sum(g[i] * dg[j]) * dx for j in range(2)] for i in range(2)],
        "d2": [[np.sum(g[i] * d2g[j]) * dx for j in range(2)] for i in range(2)],
    }
    mats = coherent_pair_matrices(c, hbar)
    for key, val in ref.items():
        np.testing.assert_allclose(mats[key], val, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("eta", [None, 0.35])
def test_two_point_marginals_and_toeplitz_coupling(eta):
    a, b, hbar = (1.2, 1.2, 0.8) if eta else (0.6, 1.7, 1.3)
    inst = two_point(a, b, hbar, eta=eta)
    md = inst.metadata
    for key in ("R", "S"):
        assert_density_matrix(md[key])
    Q = md["toeplitz_coupling"]
    assert np.linalg.eigvalsh(Q).min() > -1e-12
    np.testing.assert_allclose(cp.partial_trace(Q, [2, 2], axis=1).value, md["R"], atol=1e-13)
    np.testing.assert_allclose(cp.partial_trace(Q, [2, 2], axis=0).value, md["S"], atol=1e-13)
    # <c; c'| C |c; c'> = (c - c')^2 for coherent states, so a Toeplitz coupling costs exactly the
    # classical cost of its plan
    assert abs(np.trace(inst.H @ Q) - md["classical_cost"]) < 1e-12
    e = 0.0 if eta is None else eta
    assert md["classical_cost"] == pytest.approx((a - b) ** 2 + 2 * e * a * b)


@pytest.mark.parametrize(
    "a,b,hbar",
    [(1.0, 2.0, 1.0), (2.0, 0.5, 1.0), (0.5, 0.8, 0.3), (1.0, 1.0, 1.0), (0.3, 3.0, 2.0)],
)
def test_two_point_equal_masses_optimum_is_classical(a, b, hbar):
    inst = two_point(a, b, hbar)
    assert inst.reference_value == pytest.approx((a - b) ** 2, abs=1e-15)
    assert abs(solve(inst) - (a - b) ** 2) < 1e-7 * max(1.0, (a - b) ** 2)


def test_two_point_equal_masses_with_scs():
    inst = two_point(1.0, 2.0, 1.0)
    assert abs(solve(inst, "SCS") - 1.0) < 1e-6


@pytest.mark.parametrize("a,hbar,eta", [(1.0, 1.0, 0.5), (0.8, 1.0, 0.2), (1.5, 2.0, 0.9)])
def test_two_point_unequal_masses_quantum_is_cheaper(a, hbar, eta):
    inst = two_point(a, a, hbar, eta=eta)
    classical = 2 * eta * a * a
    assert inst.reference_value is None
    assert inst.metadata["classical_cost"] == pytest.approx(classical)
    value = solve(inst)
    assert 0.0 - 1e-8 <= value < classical - 1e-3
    assert abs(solve(inst, "SCS") - value) < 1e-5


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((0.0, 1.0), {}),
        ((-1.0, 1.0), {}),
        ((1.0, 2.0, 0.0), {}),
        ((1.0, 2.0), {"eta": 1.0}),
        ((1.0, 2.0), {"eta": -0.1}),
        ((1.0, 2.0), {"eta": "0.5"}),
        ((1e-5, 2.0), {}),
        ((30.0, 2.0), {}),
        (("1", 2.0), {}),
        ((1.0, float("inf")), {}),
    ],
)
def test_two_point_validation(args, kwargs):
    with pytest.raises(InvalidInputError):
        two_point(*args, **kwargs)
