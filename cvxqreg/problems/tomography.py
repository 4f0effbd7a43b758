r"""Quantum state tomography instances QT1, QT2, QT3 of [CGMPP, section 6.1].

Find a state consistent with measured Pauli expectations:

.. math::  \min \{ 0 : X \succeq 0,\ \operatorname{Tr} X = 1,\ \operatorname{Tr}[P_i X] = q_i,\
           i = 1..M \}, \qquad q_i = \operatorname{Tr}[\rho_j P_i],

on ``n`` qubits (``D = 2^n``), with ``M`` Pauli strings drawn uniformly without repetition among the
non-identity strings, and one of three generating states ``rho_j``.
"""

from __future__ import annotations

import math
import numbers

import cvxpy as cp
import numpy as np

from cvxqreg.errors import InvalidInputError

from ..hermitian import hermitian_part
from ._instance import Instance, _check_choice, _check_int, _check_real
from .pauli import pauli_expectations, pauli_matrix, pauli_sparse, random_pauli_labels

__all__ = ["cat_state", "tomography", "tomography_state", "zeta_state"]

#: ``tomography`` builds a dense D x D state and M = 2D constraints; 12 qubits is D = 4096
_MAX_QUBITS = 12
#: observables enter CVXPY as dense arrays up to this D, as sparse CSR arrays above
_DENSE_OBSERVABLES_MAX_DIM = 64
_KINDS = ("QT1", "QT2", "QT3")


def zeta_state(
    n_qubits: int, p: float = 0.7, theta: float = math.pi / 6, omega: float = math.pi / 4
) -> np.ndarray:
    r"""The QT1 state :math:`\rho_1 = p\,|\zeta\rangle\langle\zeta| + \frac{1-p}{D} I`.

    With :math:`|\zeta(\theta, \omega)\rangle = \cos\theta\,|1\rangle + \sin\theta\,e^{i\omega}
    |D\rangle` in the canonical basis :math:`|1\rangle, \dots, |D\rangle` of [CGMPP, section 6.1]
    (0-based: indices ``0`` and ``D - 1``), ``D = 2^n``. Paper values: ``p = 0.7``,
    ``theta = pi/6``, ``omega = pi/4``.

    Parameters
    ----------
    n_qubits : int
        Number of qubits, 1 to 12.
    p : float
        Mixing weight in ``[0, 1]``.
    theta, omega : float
        Angles (radians).

    Returns
    -------
    numpy.ndarray
        ``(D, D)`` complex128 density matrix (Hermitian, PSD, unit trace).
    """
    n = _check_int("n_qubits", n_qubits, low=1, high=_MAX_QUBITS)
    p = _check_real("p", p, low=0.0, high=1.0)
    theta = _check_real("theta", theta)
    omega = _check_real("omega", omega)
    D = 1 << n
    zeta = np.zeros(D, dtype=np.complex128)
    zeta[0] = math.cos(theta)
    zeta[D - 1] = math.sin(theta) * np.exp(1j * omega)
    rho = p * np.outer(zeta, zeta.conj()) + (1.0 - p) / D * np.eye(D)
    return hermitian_part(rho)


def _cat_amplitudes(D: int, beta: complex) -> tuple[np.ndarray, float]:
    """Normalized amplitudes of |beta> + |-beta> on Fock levels 0..D-1, and the retained norm^2."""
    amp = np.zeros(D, dtype=np.complex128)
    if beta == 0:
        amp[0] = 1.0
        return amp, 1.0
    r, phi = abs(beta), np.angle(beta)
    levels = np.arange(0, D, 2)  # odd levels cancel: beta^l + (-beta)^l = 0
    # |beta>_l = exp(-r^2/2) beta^l / sqrt(l!), in logs and shifted by the largest term: no
    # overflow or underflow for any r or D
    logmag = -0.5 * r * r + levels * math.log(r)
    logmag = logmag - 0.5 * np.array([math.lgamma(k + 1.0) for k in levels])
    top = float(np.max(logmag))
    amp[levels] = np.exp(logmag - top) * np.exp(1j * phi * levels)
    kept_scaled = float(np.sum(np.abs(amp) ** 2))
    # retained squared norm 4 sum_l |beta>_l^2 over the full one 2 (1 + exp(-2 r^2))
    log_fraction = (
        math.log(4.0 * kept_scaled) + 2.0 * top - math.log(2.0 * (1.0 + math.exp(-2.0 * r * r)))
    )
    return amp / math.sqrt(kept_scaled), math.exp(min(log_fraction, 0.0))


def cat_state(n_qubits: int, beta: complex = 2.0) -> np.ndarray:
    r"""The QT2 state :math:`\rho_2 = |\mathrm{cat}_\beta\rangle\langle\mathrm{cat}_\beta|`.

    :math:`|\mathrm{cat}_\beta\rangle \propto |\beta\rangle + |-\beta\rangle` with the coherent
    state :math:`|\beta\rangle = e^{-|\beta|^2/2} \sum_l \beta^l / \sqrt{l!}\, |l\rangle`,
    truncated to the first ``D = 2^n`` Fock levels ``l = 0..D-1`` (level ``l`` is canonical basis
    vector ``l``) and then normalized, as in [CGMPP, section 6.1] (the paper's sum runs to
    ``l = D``, one level more than fits in ``C^D``; we keep ``D`` levels). Odd levels vanish.
    Paper value: ``beta = 2``.

    Parameters
    ----------
    n_qubits : int
        Number of qubits, 1 to 12.
    beta : complex
        Coherent amplitude.

    Returns
    -------
    numpy.ndarray
        ``(D, D)`` complex128 rank-one density matrix.
    """
    n = _check_int("n_qubits", n_qubits, low=1, high=_MAX_QUBITS)
    b = _check_complex("beta", beta)
    amp, _ = _cat_amplitudes(1 << n, b)
    return hermitian_part(np.outer(amp, amp.conj()))


def tomography_state(
    kind: str,
    n_qubits: int,
    *,
    p: float = 0.7,
    theta: float = math.pi / 6,
    omega: float = math.pi / 4,
    beta: complex = 2.0,
    t: float = 0.5,
) -> np.ndarray:
    r"""The generating state of QT1, QT2 or QT3.

    ``"QT1"``: :func:`zeta_state` :math:`\rho_1(p, \theta, \omega)`; ``"QT2"``: :func:`cat_state`
    :math:`\rho_2(\beta)`; ``"QT3"``: :math:`\rho_3 = t \rho_1 + (1 - t) \rho_2` with
    ``t in [0, 1]`` (paper: ``t = 0.5``).
    """
    kind = _check_choice("kind", kind, _KINDS)
    t = _check_real("t", t, low=0.0, high=1.0)
    if kind == "QT1":
        return zeta_state(n_qubits, p, theta, omega)
    if kind == "QT2":
        return cat_state(n_qubits, beta)
    return hermitian_part(
        t * zeta_state(n_qubits, p, theta, omega) + (1 - t) * cat_state(n_qubits, beta)
    )


def tomography(
    kind: str = "QT1",
    n_qubits: int = 3,
    n_measurements: int | None = None,
    seed: int = 0,
    *,
    p: float = 0.7,
    theta: float = math.pi / 6,
    omega: float = math.pi / 4,
    beta: complex = 2.0,
    t: float = 0.5,
    dense_observables: bool | None = None,
) -> Instance:
    r"""Tomography instance: :math:`\min\{0 : X \succeq 0,\ \operatorname{Tr}X = 1,\
    \operatorname{Tr}[P_i X] = \operatorname{Tr}[\rho P_i],\ i = 1..M\}`.

    ``H = 0``; ``P_i`` are ``M`` distinct non-identity Pauli strings on ``n`` qubits drawn
    uniformly without repetition (:func:`~cvxqreg.problems.pauli.random_pauli_labels` with
    ``seed``), and ``rho`` is the generating state of ``kind`` (:func:`tomography_state`), which is
    feasible, so the optimal value is 0. [CGMPP, section 6.1] uses ``n = 9`` (``D = 512``),
    ``M = 2D = 1024``.

    Parameters
    ----------
    kind : {"QT1", "QT2", "QT3"}
        Generating state: ``rho_1`` (pure-plus-noise, :func:`zeta_state`), ``rho_2`` (cat state,
        :func:`cat_state`), ``rho_3 = t rho_1 + (1 - t) rho_2``. Case-insensitive.
    n_qubits : int
        Number of qubits ``n``, 1 to 12; ``D = 2^n``.
    n_measurements : int, optional
        Number ``M`` of Pauli strings, ``1 <= M <= 4^n - 1``. Default ``2D`` as in the paper
        (capped at ``4^n - 1`` for ``n = 1``).
    seed : int
        Seed of the draw of the strings (non-negative).
    p, theta, omega, beta, t : float
        State parameters; defaults are the paper's ``p = 0.7``, ``theta = pi/6``,
        ``omega = pi/4``, ``beta = 2``, ``t = 0.5``.
    dense_observables : bool, optional
        Put ``P_i`` into the CVXPY constraints as dense NumPy arrays (``True``) or as SciPy CSR
        arrays (``False``). Default: dense for ``D <= 64``, sparse above (dense would need
        ``32 D^3`` bytes, 4.3 GB at the paper's ``n = 9``). CVXPY 1.9 cannot *print* expressions
        holding complex sparse constants, so ``str(problem)`` fails for sparse observables with a
        ``Y``; solving and canonicalizing work.

    Returns
    -------
    Instance
        ``problem`` has constraints ``X >> 0``, ``cp.trace(X) == 1`` and, for each string,
        ``cp.real(cp.trace(P_i @ X)) == q_i``; ``n_constraints = 1 + M``; ``H`` is the zero
        ``float64`` matrix; ``reference_value = 0.0``. ``metadata`` holds ``kind``, ``n_qubits``,
        ``n_measurements``, ``seed``, ``state`` (the generating ``rho``), ``labels`` (list of str,
        e.g. ``"XZIY"``, in constraint order), ``outcomes`` (the vector ``q``), ``q0`` (1.0),
        ``params`` (the state parameters used), ``observables`` (``"dense"`` or ``"sparse"``) and,
        for QT2/QT3, ``cat_norm_retained`` (squared norm of the cat vector kept by the truncation,
        before renormalization).

    Notes
    -----
    Cost: the state is ``D x D`` dense; computing ``q`` is O(M D). Building the CVXPY problem is
    fast, but CVXPY's own canonicalization of ``M = 2D`` trace constraints takes about 4 s at
    ``n = 7`` and about 4 min at ``n = 9``.

    Examples
    --------
    >>> inst = tomography("QT2", n_qubits=2, seed=1)
    >>> inst.dim, inst.n_constraints, inst.reference_value
    (4, 9, 0.0)
    """
    kind = _check_choice("kind", kind, _KINDS)
    n = _check_int("n_qubits", n_qubits, low=1, high=_MAX_QUBITS)
    D = 1 << n
    available = 4**n - 1
    if n_measurements is None:
        M = min(2 * D, available)
    else:
        M = _check_int("n_measurements", n_measurements, low=1)
        if M > available:
            raise InvalidInputError(
                f"n_measurements={M} exceeds the {available} distinct non-identity Pauli strings "
                f"on {n} qubits; pass n_measurements <= {available}"
            )
    seed_int = _check_int("seed", seed, low=0)
    if dense_observables is not None and not isinstance(dense_observables, (bool, np.bool_)):
        raise InvalidInputError(
            f"dense_observables must be True, False or None, got {dense_observables!r}"
        )
    dense = (
        D <= _DENSE_OBSERVABLES_MAX_DIM if dense_observables is None else bool(dense_observables)
    )
    # every state parameter is checked, also those the chosen kind does not use
    p = _check_real("p", p, low=0.0, high=1.0)
    theta = _check_real("theta", theta)
    omega = _check_real("omega", omega)
    beta = _check_complex("beta", beta)
    t = _check_real("t", t, low=0.0, high=1.0)

    rho = tomography_state(kind, n, p=p, theta=theta, omega=omega, beta=beta, t=t)
    labels = random_pauli_labels(n, M, seed_int)
    q = pauli_expectations(rho, labels)

    X = cp.Variable((D, D), hermitian=True, name="X")
    constraints = [X >> 0, cp.trace(X) == 1]
    for label, qi in zip(labels, q, strict=True):
        P = pauli_matrix(label) if dense else pauli_sparse(label)
        constraints.append(cp.real(cp.trace(P @ X)) == float(qi))
    H = np.zeros((D, D))
    problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), constraints)

    params: dict[str, object] = {}
    if kind in ("QT1", "QT3"):
        params.update(p=p, theta=theta, omega=omega)
    if kind in ("QT2", "QT3"):
        params["beta"] = beta if beta.imag != 0 else beta.real
    if kind == "QT3":
        params["t"] = t
    metadata: dict[str, object] = {
        "kind": kind,
        "n_qubits": n,
        "n_measurements": M,
        "seed": seed_int,
        "state": rho,
        "labels": labels,
        "outcomes": q,
        "q0": 1.0,
        "params": params,
        "observables": "dense" if dense else "sparse",
    }
    if kind in ("QT2", "QT3"):
        metadata["cat_norm_retained"] = _cat_amplitudes(D, beta)[1]
    return Instance(
        name=f"{kind}(n_qubits={n}, M={M}, seed={seed_int})",
        problem=problem,
        X=X,
        H=H,
        dim=D,
        n_constraints=1 + M,
        metadata=metadata,
        reference_value=0.0,
    )


def _check_complex(name: str, value: object) -> complex:
    if isinstance(value, bool) or not isinstance(value, numbers.Complex):
        raise InvalidInputError(
            f"{name} must be a real or complex number, got {value!r} ({type(value).__name__})"
        )
    v = complex(value)
    if not (math.isfinite(v.real) and math.isfinite(v.imag)):
        raise InvalidInputError(f"{name} must be finite, got {v}")
    return v
