"""Shared fixtures: random Hermitian data and small hand-built lowered problems."""

from __future__ import annotations

import numpy as np
import pytest

from cvxqreg.backend import available_backends
from cvxqreg.operators import Dense, PartialTrace, Stacked
from cvxqreg.problem import LoweredProblem

BACKENDS = [
    "numpy",
    pytest.param(
        "cupy",
        marks=pytest.mark.skipif("cupy" not in available_backends(), reason="no CuPy/GPU"),
    ),
]


def rand_herm(rng, D, real=False):
    A = rng.normal(size=(D, D))
    if not real:
        A = A + 1j * rng.normal(size=(D, D))
    return (A + A.conj().T) / 2


def rand_state(rng, D, rank=None, real=False):
    G = rng.normal(size=(D, rank or D))
    if not real:
        G = G + 1j * rng.normal(size=(D, rank or D))
    r = G @ G.conj().T
    return r / np.trace(r).real


def vec_rows(M):
    """Rows [Re vec_F(M), Im vec_F(M)] (the PartialTrace layout)."""
    v = np.asarray(M).reshape(-1, order="F")
    return np.concatenate([v.real, v.imag])


def qot_problem(rng, n=3, extra_trace=False):
    """Quantum optimal transport on C^n (x) C^n with random marginals and cost (hand-built)."""
    D = n * n
    rho, sigma = rand_state(rng, n), rand_state(rng, n)
    H = rand_herm(rng, D)
    parts = [PartialTrace((n, n), 1), PartialTrace((n, n), 0)]
    q = [vec_rows(rho), vec_rows(sigma)]
    if extra_trace:
        parts.append(Dense(np.eye(D)))
        q.append(np.array([1.0]))
    return LoweredProblem(H, Stacked(parts), np.concatenate(q)), rho, sigma


def tomography_problem(rng, D=4, n_obs=6, with_trace=True):
    """Random Hermitian observables with expectations from a full-rank state."""
    rho = rand_state(rng, D)
    Qs = [rand_herm(rng, D) for _ in range(n_obs)]
    if with_trace:
        Qs = [np.eye(D)] + Qs
    q = np.array([np.trace(Q @ rho).real for Q in Qs])
    return LoweredProblem(rand_herm(rng, D), Dense(np.stack(Qs)), q), rho


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
