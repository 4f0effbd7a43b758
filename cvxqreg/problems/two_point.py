r"""The two-point quantum optimal transport examples of Caglioti, Golse and Paul [CGP].

Two mixtures of coherent states with zero momentum on the line,

.. math::  R = m_+ |a\rangle\langle a| + m_- |{-a}\rangle\langle{-a}|, \qquad
           S = \tfrac12 |b\rangle\langle b| + \tfrac12 |{-b}\rangle\langle{-b}|, \qquad
           \langle x|c\rangle = (\pi\hbar)^{-1/4} e^{-(x - c)^2 / (2\hbar)},

are coupled at the cost ([CGP, section 1], ``d = 1``)

.. math::  C = (\hat q\otimes I - I\otimes\hat q)^2 + (\hat p\otimes I - I\otimes\hat p)^2 - 2\hbar
             = (x - y)^2 - \hbar^2 (\partial_x - \partial_y)^2 - 2\hbar,

with :math:`\hat p = -i\hbar\partial`.

A coupling of ``R`` and ``S`` is supported on :math:`\operatorname{ran} R \otimes \operatorname{ran}
S`, the span of :math:`\phi_\pm \otimes \psi_\pm` with

.. math::  \phi_\pm = \frac{|a\rangle \pm |{-a}\rangle}{\sqrt{2(1 \pm \lambda)}}, \quad
           \psi_\pm = \frac{|b\rangle \pm |{-b}\rangle}{\sqrt{2(1 \pm \mu)}}, \quad
           \lambda = \langle a|{-a}\rangle = e^{-a^2/\hbar}, \quad \mu = e^{-b^2/\hbar},

so the infinite-dimensional problem *is* the 4 x 4 SDP on that span (basis order
``phi_+ psi_+, phi_+ psi_-, phi_- psi_+, phi_- psi_-``, i.e. ``np.kron`` order with ``+`` first).

Every entry is derived here from closed-form Gaussian integrals between coherent states
(:math:`g_c(x) g_{c'}(x) = \langle c|c'\rangle\, \mathcal N(x; \bar c, \hbar/2)` with
:math:`\bar c = (c + c')/2`):

.. math::  \langle c|c'\rangle = e^{-(c - c')^2/(4\hbar)}, \quad
           \langle c|x|c'\rangle = \langle c|c'\rangle \bar c, \quad
           \langle c|x^2|c'\rangle = \langle c|c'\rangle (\bar c^2 + \hbar/2),

.. math::  \langle c|\partial|c'\rangle = -\langle c|c'\rangle \frac{c - c'}{2\hbar}, \quad
           \langle c|\partial^2|c'\rangle = \langle c|c'\rangle
           \Big(\frac{(c - c')^2}{4\hbar^2} - \frac{1}{2\hbar}\Big),

then :math:`C = x^2\otimes I + I\otimes y^2 - 2\,x\otimes y - \hbar^2(\partial^2\otimes I +
I\otimes\partial^2) + 2\hbar^2\,\partial\otimes\partial - 2\hbar` in the ``phi, psi`` bases.
(The paper's printed matrix (7) and its unequal-mass ``R`` are not used.)

Known values: with equal masses (``m_\pm = 1/2``) the optimal quantum cost equals the classical
one, :math:`(a - b)^2` ([CGP, eq. (13)]). With ``m_\pm = (1 \pm \eta)/2`` and ``a = b`` the
classical cost is :math:`2\eta a^2` and the quantum optimum is strictly smaller ([CGP, eq. (21)]);
the paper gives no closed form for it.
"""

from __future__ import annotations

import math

import numpy as np

from cvxqreg.errors import InvalidInputError

from ..hermitian import hermitian_part
from ._instance import Instance, _check_real, _qot_problem

__all__ = ["coherent_pair_matrices", "two_point", "two_point_cost"]


def coherent_pair_matrices(c: float, hbar: float = 1.0) -> dict[str, np.ndarray]:
    r"""Matrices of :math:`1, x, x^2, \partial, \partial^2` on the pair ``|c>, |-c>``.

    Entry ``[s, t]`` is :math:`\langle c_s| O |c_t\rangle` with ``c_0 = c``, ``c_1 = -c``, from
    the closed-form Gaussian integrals in the module docstring.

    Returns
    -------
    dict
        ``"gram"``, ``"x"``, ``"x2"``, ``"d"``, ``"d2"``: ``(2, 2)`` float64 (``"d"``
        antisymmetric, the others symmetric).
    """
    centers = np.array([c, -c], dtype=float)
    ci, cj = centers[:, None], centers[None, :]
    diff = ci - cj
    mid = 0.5 * (ci + cj)
    gram = np.exp(-(diff**2) / (4.0 * hbar))
    return {
        "gram": gram,
        "x": gram * mid,
        "x2": gram * (mid**2 + 0.5 * hbar),
        "d": -gram * diff / (2.0 * hbar),
        "d2": gram * (diff**2 / (4.0 * hbar**2) - 1.0 / (2.0 * hbar)),
    }


def _even_odd_basis(c: float, hbar: float) -> tuple[np.ndarray, float]:
    """``T`` with columns the coefficients of ``phi_+, phi_-`` on ``|c>, |-c>``, and the overlap."""
    lam = math.exp(-c * c / hbar)
    T = np.array(
        [
            [1.0 / math.sqrt(2.0 * (1.0 + lam)), 1.0 / math.sqrt(2.0 * (1.0 - lam))],
            [1.0 / math.sqrt(2.0 * (1.0 + lam)), -1.0 / math.sqrt(2.0 * (1.0 - lam))],
        ]
    )
    return T, lam


def _single_mode(c: float, hbar: float) -> dict[str, np.ndarray]:
    """Matrices of 1, x, x^2, d, d^2 in the orthonormal basis phi_+, phi_- built on |c>, |-c>."""
    T, lam = _even_odd_basis(c, hbar)
    mats = coherent_pair_matrices(c, hbar)
    out = {key: T.T @ M @ T for key, M in mats.items()}
    out["coords"] = T.T @ mats["gram"]  # column t: coordinates of |c_t> on (phi_+, phi_-)
    out["overlap"] = lam
    return out


def two_point_cost(a: float, b: float, hbar: float = 1.0) -> np.ndarray:
    r"""The 4 x 4 cost :math:`C` of [CGP] on the span of :math:`\phi_\pm\otimes\psi_\pm`.

    Built from the coherent-state moments of :func:`coherent_pair_matrices` (see the module
    docstring), including the shift :math:`-2\hbar`. Basis order ``np.kron`` with ``+`` first:
    ``phi_+ psi_+, phi_+ psi_-, phi_- psi_+, phi_- psi_-``.

    Returns
    -------
    numpy.ndarray
        ``(4, 4)`` float64, symmetric.
    """
    a, b, hbar = _check_points(a, b, hbar)
    return _cost(_single_mode(a, hbar), _single_mode(b, hbar), hbar)


def _cost(A: dict, B: dict, hbar: float) -> np.ndarray:
    eye = np.eye(2)
    C = np.kron(A["x2"], eye) + np.kron(eye, B["x2"]) - 2.0 * np.kron(A["x"], B["x"])
    # (p (x) I - I (x) p)^2 with p = -i hbar d: p^2 = -hbar^2 d^2 and p (x) p = -hbar^2 d (x) d
    C -= hbar**2 * (np.kron(A["d2"], eye) + np.kron(eye, B["d2"]))
    C += 2.0 * hbar**2 * np.kron(A["d"], B["d"])
    C -= 2.0 * hbar * np.eye(4)
    return 0.5 * (C + C.T)


def _check_points(a, b, hbar) -> tuple[float, float, float]:
    a = _check_real("a", a, low=0.0, low_open=True)
    b = _check_real("b", b, low=0.0, low_open=True)
    hbar = _check_real("hbar", hbar, low=0.0, low_open=True)
    for name, c in (("a", a), ("b", b)):
        if c * c / hbar < 1e-6:
            raise InvalidInputError(
                f"{name}**2 / hbar = {c * c / hbar:.3g} is too small: the coherent states at "
                f"+{name} and -{name} are numerically identical (overlap exp(-{name}^2/hbar) ~ 1) "
                f"and phi_- is undefined; pass {name} >= 1e-3 * sqrt(hbar)"
            )
        if c * c / hbar > 700.0:
            raise InvalidInputError(
                f"{name}**2 / hbar = {c * c / hbar:.3g} is too large for float64 overlaps "
                f"(exp(-{name}^2/hbar) underflows); rescale so that {name}**2 / hbar <= 700"
            )
    return a, b, hbar


def two_point(a: float, b: float, hbar: float = 1.0, eta: float | None = None) -> Instance:
    r"""[CGP] two-point instance: :math:`\min\{\operatorname{Tr}[C Q] : Q \succeq 0,\
    \operatorname{Tr}_2 Q = R,\ \operatorname{Tr}_1 Q = S\}` on the 4-dimensional span.

    ``R = (1+eta)/2 |a><a| + (1-eta)/2 |-a><-a|`` (``eta = None`` or 0: equal masses),
    ``S = (|b><b| + |-b><-b|)/2``, coherent states of width ``hbar``, cost ``C`` of
    :func:`two_point_cost` (with the paper's ``-2 hbar`` shift, so ``C >= 0`` and the quantum cost
    of two coincident points is 0).

    Parameters
    ----------
    a, b : float
        Positive positions of the points ``+-a`` (first marginal) and ``+-b`` (second marginal);
        ``a^2/hbar`` and ``b^2/hbar`` must lie in ``[1e-6, 700]``.
    hbar : float
        Planck constant (positive), the squared width of the coherent states.
    eta : float, optional
        Mass imbalance in ``[0, 1)``: mass ``(1+eta)/2`` at ``+a`` and ``(1-eta)/2`` at ``-a``.
        ``None`` (default) or 0 is the equal-mass case of [CGP, section 2]; ``eta > 0`` with
        ``a == b`` is the unequal-mass case of [CGP, section 3] (``a != b`` is accepted too).

    Returns
    -------
    Instance
        ``problem``: ``X >> 0`` (4 x 4), ``cp.partial_trace(X, [2, 2], axis=1) == R``,
        ``cp.partial_trace(X, [2, 2], axis=0) == S``, both marginals in the orthonormal bases
        ``phi_+-``, ``psi_+-``; ``n_constraints = 8``. ``reference_value``: ``(a - b)^2`` for equal
        masses ([CGP, eq. (13)]), ``None`` for ``eta > 0`` (no closed form is known). ``metadata``:
        ``a``, ``b``, ``hbar``, ``eta`` (0.0 for equal masses), ``masses_R``, ``masses_S``
        (weights at ``(+a, -a)`` and ``(+b, -b)``), ``lambda``, ``mu`` (overlaps), ``R``, ``S``,
        ``dims`` ``(2, 2)``, ``classical_cost`` (the 1-D Wasserstein cost of the point masses,
        ``(a - b)^2 + 2 eta a b``; ``2 eta a^2`` when ``a == b``), ``toeplitz_coupling`` (the
        coupling ``sum p_ij |x_i; y_j><x_i; y_j|`` of the classical optimal plan, whose cost is
        ``classical_cost``) and ``basis`` (the basis labels).

    Examples
    --------
    >>> inst = two_point(1.0, 2.0)
    >>> inst.reference_value
    1.0
    """
    a, b, hbar = _check_points(a, b, hbar)
    if eta is None:
        e = 0.0
    else:
        e = _check_real("eta", eta, low=0.0, high=1.0, high_open=True)
    A = _single_mode(a, hbar)
    B = _single_mode(b, hbar)
    C = _cost(A, B, hbar)
    m_R = np.array([(1.0 + e) / 2.0, (1.0 - e) / 2.0])  # at (+a, -a)
    m_S = np.array([0.5, 0.5])  # at (+b, -b)
    u, v = A["coords"], B["coords"]  # columns: |+a>, |-a> (resp. |+b>, |-b>) in the phi/psi basis
    R = hermitian_part(sum(m_R[t] * np.outer(u[:, t], u[:, t]) for t in range(2)))
    S = hermitian_part(sum(m_S[t] * np.outer(v[:, t], v[:, t]) for t in range(2)))
    # classical optimal plan (monotone rearrangement on the line); index 0 = +point, 1 = -point
    plan = np.array([[0.5, e / 2.0], [0.0, (1.0 - e) / 2.0]])  # plan[i, j]: mass from x_i to y_j
    toeplitz = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            if plan[i, j] > 0:
                w = np.kron(u[:, i], v[:, j])
                toeplitz += plan[i, j] * np.outer(w, w)
    classical = (a - b) ** 2 + 2.0 * e * a * b
    problem, X, n_rows = _qot_problem(C, R, S)
    metadata = {
        "a": a,
        "b": b,
        "hbar": hbar,
        "eta": e,
        "masses_R": m_R,
        "masses_S": m_S,
        "lambda": A["overlap"],
        "mu": B["overlap"],
        "R": R,
        "S": S,
        "dims": (2, 2),
        "classical_cost": classical,
        "toeplitz_coupling": toeplitz,
        "basis": ("phi+ psi+", "phi+ psi-", "phi- psi+", "phi- psi-"),
    }
    equal = e == 0.0
    tag = "equal" if equal else f"eta={e:g}"
    return Instance(
        name=f"CGP(a={a:g}, b={b:g}, hbar={hbar:g}, {tag})",
        problem=problem,
        X=X,
        H=C,
        dim=4,
        n_constraints=n_rows,
        metadata=metadata,
        reference_value=(a - b) ** 2 if equal else None,
    )
