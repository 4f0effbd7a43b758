r"""Minimum-error discrimination of ``k`` quantum states: an SDP over ``k`` PSD variables.

.. math::  \max \Big\{ \sum_j p_j \operatorname{Re}\operatorname{Tr}[\rho_j M_j] :
           M_j \succeq 0,\ \sum_j M_j = I \Big\}

over POVMs ``(M_1, ..., M_k)`` on ``C^d``: the largest probability of naming correctly which of
the states ``rho_j`` (prior ``p_j``) was prepared. Closed forms:

* ``k = 2`` (Helstrom): :math:`\tfrac12 (1 + \| p_1 \rho_1 - p_2 \rho_2 \|_1)`.
* symmetric pure states ``|psi_j> = sum_l c_l w^{j l} |l>`` (``d = k``, ``w = e^{2 pi i / k}``,
  equal priors; the orbit of ``|psi_0>`` under ``diag(w^l)``): the square-root measurement is
  optimal and succeeds with probability :math:`(\sum_l |c_l|)^2 / k` (Ban, Kurokawa, Momose,
  Hirota, Int. J. Theor. Phys. 36, 1997).

The ``k`` variables are lowered to one block-diagonal variable whose blocks the dual oracle
decomposes one at a time.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from cvxqreg.errors import InvalidInputError

from ..hermitian import hermitian_part
from ._instance import Instance, _check_choice, _check_int

__all__ = ["helstrom_value", "state_discrimination"]


def helstrom_value(rho0: np.ndarray, rho1: np.ndarray, p0: float = 0.5) -> float:
    """``(1 + ||p0 rho0 - (1 - p0) rho1||_1) / 2``, the optimal success probability for two
    states."""
    G = hermitian_part(p0 * np.asarray(rho0) - (1.0 - p0) * np.asarray(rho1))
    return 0.5 * (1.0 + float(np.abs(np.linalg.eigvalsh(G)).sum()))


def state_discrimination(
    k: int = 3,
    d: int | None = None,
    *,
    kind: str = "random",
    priors=None,
    seed: int = 0,
) -> Instance:
    """State-discrimination instance (see the module docstring).

    Parameters
    ----------
    k : int
        Number of states (>= 2).
    d : int, optional
        Dimension (default ``k``; ``kind="symmetric"`` needs ``d = k``).
    kind : {"random", "symmetric"}
        ``"random"``: independent random full-rank complex states; ``"symmetric"``: the symmetric
        pure states of the module docstring with random positive ``c_l``.
    priors : array_like, optional
        Prior probabilities (default equal; ``"symmetric"`` needs equal priors).
    seed : int

    Returns
    -------
    Instance
        ``problem``: ``Maximize(sum_j p_j Re Tr[rho_j M_j])`` with ``M_j >> 0`` and
        ``sum_j M_j == I``; ``X`` is ``M_1`` (all of them in ``metadata["variables"]``).
        ``H`` is the block-diagonal cost ``diag(-p_j rho_j)`` of the minimization form.
        ``reference_value``: Helstrom for ``k = 2``, the square-root-measurement value for
        symmetric states, else ``None``. ``metadata``: ``k``, ``d``, ``kind``, ``states``,
        ``priors``, ``variables``, ``seed``.
    """
    k = _check_int("k", k, low=2)
    d = k if d is None else _check_int("d", d, low=1)
    kind = _check_choice("kind", kind, ("random", "symmetric"))
    seed = _check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    if priors is None:
        p = np.full(k, 1.0 / k)
    else:
        p = np.asarray(priors, dtype=float).reshape(-1)
        if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise InvalidInputError(f"priors must be {k} nonnegative numbers adding up to 1")
    if kind == "symmetric":
        if d != k or not np.allclose(p, 1.0 / k):
            raise InvalidInputError('kind="symmetric" needs d = k and equal priors')
        c = rng.uniform(0.2, 1.0, size=k)
        c /= np.linalg.norm(c)
        w = np.exp(2j * np.pi / k)
        states = []
        for j in range(k):
            psi = c * w ** (j * np.arange(k))
            states.append(np.outer(psi, psi.conj()))
        reference = float(np.sum(np.abs(c)) ** 2 / k)
    else:
        states = []
        for _ in range(k):
            G = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
            r = G @ G.conj().T
            states.append(hermitian_part(r / np.trace(r).real))
        reference = helstrom_value(states[0], states[1], float(p[0])) if k == 2 else None
    Ms = [cp.Variable((d, d), hermitian=True, name=f"M{j}") for j in range(k)]
    objective = cp.Maximize(
        cp.real(sum(float(p[j]) * cp.trace(states[j] @ Ms[j]) for j in range(k)))
    )
    constraints = [M >> 0 for M in Ms] + [sum(Ms) == np.eye(d)]
    H = np.zeros((k * d, k * d), dtype=complex)
    for j in range(k):
        H[j * d : (j + 1) * d, j * d : (j + 1) * d] = -p[j] * states[j]
    return Instance(
        name=f"SD(k={k}, d={d}, {kind}, seed={seed})",
        problem=cp.Problem(objective, constraints),
        X=Ms[0],
        H=H,
        dim=k * d,
        n_constraints=d * d,
        metadata={
            "k": k,
            "d": d,
            "kind": kind,
            "states": states,
            "priors": p,
            "variables": Ms,
            "seed": seed,
        },
        reference_value=reference,
    )
