r"""Tomography with error bars: Pauli expectations known only within confidence intervals.

Each Pauli string ``P_i`` (eigenvalues ``+-1``) is measured ``shots`` times on copies of the
generating state ``rho``; the estimate ``q^_i = (n_+ - n_-) / shots`` has mean ``Tr[P_i rho]``.
By Hoeffding's inequality for a mean of ``N`` variables in ``[-1, 1]``,
``P(|q^_i - Tr[P_i rho]| >= t) <= 2 exp(-N t^2 / 2)``, so with the union bound over ``M``
strings the half-width

.. math::  \delta = \sqrt{2 \log(2 M / \beta) / N}

makes all ``M`` intervals contain the truth with probability at least ``1 - beta``. The model
keeps every state consistent with the data,

.. math::  X \succeq 0,\quad \operatorname{Tr} X = 1,\quad
           q^_i - \delta \le \operatorname{Re}\operatorname{Tr}[P_i X] \le q^_i + \delta,

written as two inequalities per string (``cp.real(cp.trace(P @ X)) >= lo``, ``<= hi``), and
either

* ``objective="fidelity"``: minimizes the fidelity ``<psi|X|psi>`` with a target pure state (the
  generating state's leading eigenvector), a certified worst-case fidelity of the preparation; or
* ``objective="maxent"``: ``H = 0``; the regularized solve (von Neumann) then returns the
  maximum-entropy state within the error bars, the standard way to treat shot noise.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np

from cvxqreg.errors import InvalidInputError

from ._instance import Instance, _check_choice, _check_int, _check_real
from .pauli import pauli_expectations, pauli_matrix, random_pauli_labels
from .tomography import tomography_state

__all__ = ["hoeffding_halfwidth", "tomography_intervals"]

#: dense observables and CVXPY's canonicalization of 2 M inequalities: keep D small
_MAX_QUBITS = 6


def hoeffding_halfwidth(shots: int, n_strings: int, confidence: float) -> float:
    """``sqrt(2 log(2 M / beta) / N)``: all ``M`` intervals hold with probability
    ``>= confidence = 1 - beta`` (Hoeffding plus the union bound)."""
    beta = 1.0 - confidence
    return math.sqrt(2.0 * math.log(2.0 * n_strings / beta) / shots)


def tomography_intervals(
    n_qubits: int = 2,
    n_measurements: int | None = None,
    shots: int = 1000,
    *,
    confidence: float = 0.95,
    objective: str = "fidelity",
    kind: str = "QT1",
    seed: int = 0,
) -> Instance:
    r"""Confidence-interval tomography instance (see the module docstring).

    Parameters
    ----------
    n_qubits : int
        1 to 6; ``D = 2^n``.
    n_measurements : int, optional
        Number ``M`` of distinct non-identity Pauli strings (default ``min(2 D, 4^n - 1)``).
    shots : int
        Measurements per string ``N`` (>= 1).
    confidence : float
        Joint coverage ``1 - beta`` of the intervals, in ``(0, 1)``.
    objective : {"fidelity", "maxent"}
        Minimize the fidelity with the target pure state, or ``H = 0``.
    kind : {"QT1", "QT2", "QT3"}
        Generating state (:func:`~cvxqreg.problems.tomography_state`).
    seed : int
        Seed of the strings and of the simulated shots.

    Returns
    -------
    Instance
        ``problem``: ``X >> 0``, ``cp.trace(X) == 1`` and two inequalities per string.
        ``reference_value`` is ``None``. ``metadata``: ``n_qubits``, ``kind``, ``labels``,
        ``shots``, ``confidence``, ``halfwidth``, ``estimates`` (``q^``), ``lower``, ``upper``
        (the interval ends, clipped to ``[-1, 1]``), ``truth`` (``Tr[P_i rho]``), ``state``,
        ``truth_inside`` (whether the generating state satisfies every interval), ``target``
        (the target vector, fidelity objective) and ``truth_fidelity`` (``<psi|rho|psi>``, an
        upper bound on the optimum when ``truth_inside``).
    """
    n = _check_int("n_qubits", n_qubits, low=1, high=_MAX_QUBITS)
    D = 1 << n
    available = 4**n - 1
    M = (
        min(2 * D, available)
        if n_measurements is None
        else _check_int("n_measurements", n_measurements, low=1)
    )
    if M > available:
        raise InvalidInputError(
            f"n_measurements={M} exceeds the {available} distinct non-identity Pauli strings on "
            f"{n} qubits"
        )
    N = _check_int("shots", shots, low=1)
    conf = _check_real("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    obj = _check_choice("objective", objective, ("fidelity", "maxent"))
    kind = _check_choice("kind", kind, ("QT1", "QT2", "QT3"))
    seed = _check_int("seed", seed, low=0)

    rho = tomography_state(kind, n)
    labels = random_pauli_labels(n, M, seed)
    truth = pauli_expectations(rho, labels)
    rng = np.random.default_rng(seed + 1)
    plus = rng.binomial(N, np.clip((1.0 + truth) / 2.0, 0.0, 1.0))
    est = (2.0 * plus - N) / N
    delta = hoeffding_halfwidth(N, M, conf)
    lo, hi = np.maximum(est - delta, -1.0), np.minimum(est + delta, 1.0)

    X = cp.Variable((D, D), hermitian=True, name="X")
    cons = [X >> 0, cp.trace(X) == 1]
    for label, a, b in zip(labels, lo, hi, strict=True):
        P = pauli_matrix(label)
        cons.append(cp.real(cp.trace(P @ X)) >= float(a))
        cons.append(cp.real(cp.trace(P @ X)) <= float(b))
    w, V = np.linalg.eigh(rho)
    psi = V[:, -1]
    if obj == "fidelity":
        H = np.outer(psi, psi.conj())
        H = 0.5 * (H + H.conj().T)
    else:
        H = np.zeros((D, D))
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)
    inside = bool(np.all((truth >= lo) & (truth <= hi)))
    metadata = {
        "n_qubits": n,
        "kind": kind,
        "labels": labels,
        "shots": N,
        "confidence": conf,
        "halfwidth": delta,
        "estimates": est,
        "lower": lo,
        "upper": hi,
        "truth": truth,
        "state": rho,
        "truth_inside": inside,
        "objective": obj,
        "target": psi,
        "truth_fidelity": float(np.real(psi.conj() @ rho @ psi)),
        "seed": seed,
    }
    return Instance(
        name=f"QTI({kind}, n_qubits={n}, M={M}, shots={N}, {obj}, seed={seed})",
        problem=problem,
        X=X,
        H=H,
        dim=D,
        n_constraints=1 + 2 * M,
        metadata=metadata,
        reference_value=None,
    )
