r"""Multi-marginal quantum optimal transport: ``N`` parties, one marginal each.

.. math::  \min \{ \operatorname{Tr}[H X] : X \succeq 0,\ \operatorname{Tr}_{\neq j} X = \rho_j
           \ (j = 1..N) \},  \qquad
           H = \sum_{i < j} (A^{(i)} - A^{(j)})^2,

on :math:`(\mathbb{C}^d)^{\otimes N}`, where :math:`A^{(i)}` is the observable ``A`` acting on
factor ``i`` (the pairwise quadratic cost of multi-marginal transport; with ``A`` the truncated
position quadrature it is the quantum analogue of :math:`\sum_{i<j} |x_i - x_j|^2`). Marginal
``j`` is written the way users write it, as nested ``cp.partial_trace`` calls that trace out the
other factors one at a time, from the last to the first; the middle marginal of three parties is
``cp.partial_trace(cp.partial_trace(X, [d, d, d], axis=2), [d, d], axis=0)``. The lowering
recognises each of them as one partial trace over a set of factors (O(D^2) per application).

``H`` is positive semidefinite and vanishes on the states :math:`|k k \dots k\rangle` of the
common eigenbasis of ``A``, so when all marginals equal one state that is diagonal in that basis,
:math:`\rho = \sum_k p_k |k\rangle\langle k|`, the coupling :math:`\sum_k p_k |k\dots k\rangle
\langle k\dots k|` is feasible and optimal, with value 0 (``marginals="diagonal"``).
"""

from __future__ import annotations

import functools

import cvxpy as cp
import numpy as np

from cvxqreg.errors import InvalidInputError

from ..hermitian import hermitian_part
from ._instance import Instance, _check_choice, _check_int
from .wasserstein import quadrature_matrices

__all__ = ["marginal_expression", "multi_marginal", "multi_marginal_cost"]

#: D = d^N and H is dense: keep it below 4096 (128 MB)
_MAX_DIM = 4096


def multi_marginal_cost(d: int, n_parties: int, observable: np.ndarray | None = None) -> np.ndarray:
    r"""``H = sum_{i<j} (A^{(i)} - A^{(j)})^2`` on ``(C^d)^{(x) N}`` (``np.kron`` order).

    ``A`` defaults to the position quadrature ``X`` on the first ``d`` Fock levels
    (:func:`~cvxqreg.problems.quadrature_matrices`). Real symmetric PSD, ``(d^N, d^N)``.
    """
    d = _check_int("d", d, low=2)
    N = _check_int("n_parties", n_parties, low=2)
    A = quadrature_matrices(d)["X"] if observable is None else np.asarray(observable)
    eye = np.eye(d)

    def on(i, M):
        return functools.reduce(np.kron, [M if k == i else eye for k in range(N)])

    D = d**N
    H = np.zeros((D, D), dtype=np.result_type(A, float))
    for i in range(N):
        for j in range(i + 1, N):
            Dij = on(i, A) - on(j, A)
            H += Dij @ Dij
    return hermitian_part(H)


def marginal_expression(X, d: int, n_parties: int, j: int):
    """``Tr_{all but j}(X)`` as nested ``cp.partial_trace`` calls (last factor traced first)."""
    dims = [d] * n_parties
    expr = X
    for axis in reversed(range(n_parties)):
        if axis == j:
            continue
        expr = cp.partial_trace(expr, dims, axis=axis)
        dims.pop(axis)
    return expr


def multi_marginal(
    d: int = 3, n_parties: int = 3, *, marginals: str = "random", seed: int = 0
) -> Instance:
    r"""Multi-marginal transport instance (see the module docstring).

    Parameters
    ----------
    d : int
        Levels per party (>= 2).
    n_parties : int
        Number of parties ``N`` (>= 2); ``D = d^N`` at most 4096.
    marginals : {"random", "diagonal"}
        ``"random"``: independent random full-rank complex states (seeded); ``"diagonal"``: one
        random state diagonal in the eigenbasis of the observable, shared by all parties (value
        0 in closed form).
    seed : int
        Seed of the random marginals.

    Returns
    -------
    Instance
        ``problem``: ``X >> 0`` and one ``marginal_expression(X, d, N, j) == rho_j`` per party.
        ``reference_value``: ``0.0`` for ``marginals="diagonal"``, else ``None``.
        ``metadata``: ``d``, ``n_parties``, ``dims``, ``marginals`` (list of arrays),
        ``observable`` (``A``), ``kind``, ``seed``, ``lower_bound`` (0.0, ``H >= 0``) and
        ``product_value`` (``Tr[H (rho_1 (x) ... (x) rho_N)]``, an upper bound).
    """
    d = _check_int("d", d, low=2)
    N = _check_int("n_parties", n_parties, low=2)
    kind = _check_choice("marginals", marginals, ("random", "diagonal"))
    seed = _check_int("seed", seed, low=0)
    D = d**N
    if D > _MAX_DIM:
        raise InvalidInputError(
            f"d**n_parties = {D} exceeds {_MAX_DIM}; use fewer levels or parties"
        )
    rng = np.random.default_rng(seed)
    A = quadrature_matrices(d)["X"]
    if kind == "random":
        rhos = []
        for _ in range(N):
            G = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
            r = G @ G.conj().T
            rhos.append(hermitian_part(r / np.trace(r).real))
        reference = None
    else:
        w, U = np.linalg.eigh(A)
        p = rng.uniform(0.2, 1.0, size=d)
        p /= p.sum()
        rho = hermitian_part((U * p) @ U.conj().T)
        rhos = [rho] * N
        reference = 0.0
    H = multi_marginal_cost(d, N, A)
    X = cp.Variable((D, D), hermitian=True, name="X")
    cons = [X >> 0] + [marginal_expression(X, d, N, j) == rhos[j] for j in range(N)]
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)
    product = float(np.real(np.vdot(H, functools.reduce(np.kron, rhos))))
    metadata = {
        "d": d,
        "n_parties": N,
        "dims": (d,) * N,
        "marginals": rhos,
        "observable": A,
        "kind": kind,
        "seed": seed,
        "lower_bound": 0.0,
        "product_value": product,
    }
    return Instance(
        name=f"MMOT(d={d}, n_parties={N}, marginals={kind}, seed={seed})",
        problem=problem,
        X=X,
        H=H,
        dim=D,
        n_constraints=N * d * d,
        metadata=metadata,
        reference_value=reference,
    )
