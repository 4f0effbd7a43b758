r"""Quantum Wasserstein distance instance QWD of [CGMPP, section 6.2].

The quantum optimal transport problem between two Gaussian states of one mode,

.. math::  \min \{ \operatorname{Tr}[H \pi] : \pi \succeq 0,\ \operatorname{Tr}_2 \pi = \rho,\
           \operatorname{Tr}_1 \pi = \sigma \},  \qquad
           H = (X \otimes I - I \otimes X)^2 + (P \otimes I - I \otimes P)^2,

truncated to the first ``n`` Fock (harmonic-oscillator) levels of each factor, ``D = n^2``.

Conventions (all from [CGMPP, section 6.2]):

* Units ``hbar = 1``: :math:`(X\psi)(x) = x\psi(x)`, :math:`(P\psi)(x) = -i\psi'(x)`, so
  :math:`[X, P] = i`. Fock states are the Hermite functions, :math:`a = (X + iP)/\sqrt2`,
  :math:`|k\rangle = (a^\dagger)^k |0\rangle / \sqrt{k!}`, hence :math:`\langle k-1|a|k\rangle =
  \sqrt k` (real, positive).
* Covariance :math:`V_{ij} = \tfrac12 \operatorname{Tr}[\rho \{R_i - m_i, R_j - m_j\}]`,
  :math:`R = (X, P)`; the uncertainty principle is :math:`V + \tfrac{i}{2}\Omega \succeq 0`
  (equivalently ``V > 0`` and ``det V >= 1/4``), so the vacuum has ``V = I/2``.
* Truncation, eq. (6.8): :math:`H_{(ij)(kl)} = \langle i, j|\mathbf H|k, l\rangle`, the exact
  operator's matrix elements on the first ``n`` levels (the compression ``P_n H P_n``), *not*
  the polynomial in truncated ``X_n, P_n``. The two differ only through :math:`X^2` and
  :math:`P^2`: the exact :math:`\langle n-1|X^2|n-1\rangle = (2n-1)/2` while
  :math:`(X_n^2)_{n-1,n-1} = (n-1)/2`. Cross terms :math:`X\otimes X`, :math:`P\otimes P` are
  products of single-mode matrix elements and are exact either way. Expanded,
  :math:`H = (2N+1)\otimes I + I\otimes(2N+1) - 2(a\otimes a^\dagger + a^\dagger\otimes a)`, the
  compression of :math:`4 b^\dagger b + 2` with :math:`b = (a\otimes I - I\otimes a)/\sqrt2`;
  hence ``H >= 2``, and the minimal eigenvalue is exactly 2 (attained by the two-mode vacuum,
  degenerate with the other states whose relative mode ``b`` is in its vacuum).
* Marginals: :math:`\pi = P/\operatorname{Tr}P` with :math:`P_{ij} = \langle i|\rho_{m,V}|j
  \rangle`, ``i, j < n``: the exact infinite-dimensional Gaussian state projected on the first
  ``n`` levels and renormalized. Paper values: ``m_rho = (0, 0)``, ``V_rho = [[3, 1], [1, 3]]``,
  ``m_sigma = (1, 1)``, ``V_sigma = [[10, 2], [2, 10]]``, ``n = 50``.
"""

from __future__ import annotations

import math

import numpy as np

from cvxqreg.errors import InvalidInputError

from ..hermitian import hermitian_part
from ._instance import Instance, _check_int, _qot_problem

__all__ = ["gaussian_state_fock", "quadrature_matrices", "wasserstein", "wasserstein_cost"]

#: D = n^2 and H is dense D x D float64: n = 100 is D = 10^4, 800 MB
_MAX_LEVELS = 100
#: the Hermite-function recurrence stays in range of float64 for x^2 / 2 < 709
_MAX_STATE_LEVELS = 500

_DEFAULT_MEAN_RHO = (0.0, 0.0)
_DEFAULT_COV_RHO = ((3.0, 1.0), (1.0, 3.0))
_DEFAULT_MEAN_SIGMA = (1.0, 1.0)
_DEFAULT_COV_SIGMA = ((10.0, 2.0), (2.0, 10.0))


def quadrature_matrices(n_levels: int) -> dict[str, np.ndarray]:
    r"""Exact matrix elements of :math:`a, X, P, X^2, P^2` on the first ``n`` Fock levels.

    With :math:`a|k\rangle = \sqrt k |k-1\rangle`, :math:`X = (a + a^\dagger)/\sqrt2`,
    :math:`P = -i(a - a^\dagger)/\sqrt2` (``hbar = 1``):

    .. math::  \langle k|X^2|k\rangle = \langle k|P^2|k\rangle = k + \tfrac12, \qquad
               \langle k|X^2|k+2\rangle = -\langle k|P^2|k+2\rangle = \tfrac12\sqrt{(k+1)(k+2)}.

    ``X2`` and ``P2`` are the compressions of the exact operators :math:`X^2, P^2`, which differ
    from ``X @ X`` and ``P @ P`` in the last diagonal entry.

    Returns
    -------
    dict
        ``"a"`` (real), ``"X"`` (real), ``"P"`` (complex, purely imaginary), ``"X2"``, ``"P2"``
        (real), each ``(n, n)``.
    """
    n = _check_int("n_levels", n_levels, low=1)
    k = np.arange(n, dtype=float)
    a = np.diag(np.sqrt(k[1:]), 1)
    X = (a + a.T) / math.sqrt(2.0)
    P = -1j * (a - a.T) / math.sqrt(2.0)
    off2 = 0.5 * np.sqrt((k[:-2] + 1.0) * (k[:-2] + 2.0))
    X2 = np.diag(k + 0.5) + np.diag(off2, 2) + np.diag(off2, -2)
    P2 = np.diag(k + 0.5) - np.diag(off2, 2) - np.diag(off2, -2)
    return {"a": a, "X": X, "P": P, "X2": X2, "P2": P2}


def wasserstein_cost(n_levels: int) -> np.ndarray:
    r"""The QWD cost :math:`(X\otimes I - I\otimes X)^2 + (P\otimes I - I\otimes P)^2`, truncated.

    Matrix elements :math:`H_{(ij)(kl)} = \langle i, j|\mathbf H|k, l\rangle` of the exact operator
    ([CGMPP, eq. (6.8)]), ``i, j, k, l < n``, in ``np.kron`` order (row ``i n + j``), computed as
    :math:`X^2\otimes I - 2X\otimes X + I\otimes X^2 + P^2\otimes I - 2P\otimes P + I\otimes P^2`
    with the exact ``X2``, ``P2`` of :func:`quadrature_matrices`. Real symmetric, ``H >= 2``.

    Parameters
    ----------
    n_levels : int
        Fock levels per factor, 1 to 100; ``D = n^2`` (``n = 50``: ``D = 2500``, 50 MB).

    Returns
    -------
    numpy.ndarray
        ``(n^2, n^2)`` float64.
    """
    n = _check_int("n_levels", n_levels, low=1, high=_MAX_LEVELS)
    m = quadrature_matrices(n)
    eye = np.eye(n)
    X, X2, P2 = m["X"], m["X2"], m["P2"]
    Pi = m["P"].imag  # P = i * Pi with Pi real antisymmetric, so P (x) P = -Pi (x) Pi
    H = np.kron(X2, eye) + np.kron(eye, X2) - 2.0 * np.kron(X, X)
    H += np.kron(P2, eye) + np.kron(eye, P2) + 2.0 * np.kron(Pi, Pi)
    return 0.5 * (H + H.T)


def _check_gaussian(name: str, mean, cov) -> tuple[np.ndarray, np.ndarray]:
    try:
        m = np.asarray(mean, dtype=float)
        V = np.asarray(cov, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"mean_{name} and cov_{name} must be real arrays: {exc}") from None
    if m.shape != (2,) or not np.all(np.isfinite(m)):
        raise InvalidInputError(f"mean_{name} must be a finite real pair (<X>, <P>), got {mean!r}")
    if V.shape != (2, 2) or not np.all(np.isfinite(V)):
        raise InvalidInputError(f"cov_{name} must be a finite real 2 x 2 matrix, got {cov!r}")
    if abs(V[0, 1] - V[1, 0]) > 1e-12 * max(1.0, np.abs(V).max()):
        raise InvalidInputError(f"cov_{name} must be symmetric, got {V.tolist()}")
    V = 0.5 * (V + V.T)
    det = V[0, 0] * V[1, 1] - V[0, 1] ** 2
    if V[0, 0] <= 0 or det < 0.25 * (1 - 1e-12):
        raise InvalidInputError(
            f"cov_{name}={V.tolist()} violates the uncertainty principle V + (i/2) Omega >= 0 "
            f"(needs V[0,0] > 0 and det V >= 1/4, vacuum = I/2 with hbar = 1); det V = {det:.6g}"
        )
    return m, V


def _hermite_functions(x: np.ndarray, n: int) -> np.ndarray:
    """``h_k(x)``, ``k < n``, as columns: the normalized Fock states in position representation."""
    out = np.empty((x.size, n))
    out[:, 0] = math.pi**-0.25 * np.exp(-0.5 * x * x)
    if n > 1:
        out[:, 1] = math.sqrt(2.0) * x * out[:, 0]
    for k in range(1, n - 1):
        out[:, k + 1] = (
            math.sqrt(2.0 / (k + 1)) * x * out[:, k] - math.sqrt(k / (k + 1)) * out[:, k - 1]
        )
    return out


def gaussian_state_fock(mean, cov, n_levels: int) -> np.ndarray:
    r"""Fock block :math:`P_{jk} = \langle j|\rho_{m,V}|k\rangle`, ``j, k < n``, of a Gaussian.

    The Gaussian state :math:`\rho_{m,V}` is given by its mean and covariance.

    The state has Wigner function :math:`W(x, p) = \mathcal N((x, p); m, V)` (``hbar = 1``,
    vacuum ``V = I/2``). Its position kernel follows by integrating out ``p``: with
    :math:`q = (x + x')/2`, :math:`y = x - x'`,

    .. math::  \rho(x, x') = \int W(q, p)\, e^{i p y}\, dp
               = \frac{e^{-(q - m_x)^2 / (2 V_{xx})}}{\sqrt{2\pi V_{xx}}}
                 \exp\Big(i\big(m_p + \tfrac{V_{xp}}{V_{xx}}(q - m_x)\big) y
                 - \tfrac{\det V}{2 V_{xx}} y^2\Big),

    and :math:`P_{jk} = \iint h_j(x) \rho(x, x') h_k(x')\,dx\,dx'` with the Hermite functions
    :math:`h_j` (the Fock states). The double integral is evaluated by the trapezoidal rule on a
    uniform grid covering the Hermite functions (:math:`|x| \le \sqrt{2n+1} + 10`) with spacing
    :math:`2\pi / (1.2\,k_{max})`, where
    :math:`k_{max} = \sqrt{2n+1} + 10 + |m_p| + 10\sqrt{V_{pp}}` bounds the integrand's spatial
    frequencies; for such band-limited, Gaussian-tailed integrands the rule is exact up to terms
    below double precision (checked against coherent, thermal and squeezed closed forms). The
    result is *not* renormalized: its trace is the weight of the first ``n`` levels, which tends
    to 1 as ``n`` grows.

    Parameters
    ----------
    mean : array_like
        :math:`m = (\langle X\rangle, \langle P\rangle)`.
    cov : array_like
        Real symmetric ``2 x 2`` covariance with ``V + (i/2) Omega >= 0``.
    n_levels : int
        Number of Fock levels, 1 to 500.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` complex128 Hermitian positive semidefinite block (a compression of a state).
    """
    n = _check_int("n_levels", n_levels, low=1, high=_MAX_STATE_LEVELS)
    m, V = _check_gaussian("", mean, cov)
    return _gaussian_block(m, V, n)


def _gaussian_block(m: np.ndarray, V: np.ndarray, n: int, oversample: float = 1.2) -> np.ndarray:
    mx, mp = float(m[0]), float(m[1])
    vxx, vxp, vpp = float(V[0, 0]), float(V[0, 1]), float(V[1, 1])
    det = vxx * vpp - vxp * vxp
    xt = math.sqrt(2.0 * n + 1.0)
    half_width = xt + 10.0
    kmax = xt + 10.0 + abs(mp) + 10.0 * math.sqrt(vpp)
    dx = 2.0 * math.pi / (oversample * kmax)
    n_pts = 2 * math.ceil(half_width / dx) + 1
    x = np.linspace(-half_width, half_width, n_pts)
    dx = x[1] - x[0]
    hf = _hermite_functions(x, n)
    q = 0.5 * (x[:, None] + x[None, :])
    y = x[:, None] - x[None, :]
    kernel = np.exp(-((q - mx) ** 2) / (2.0 * vxx) - det / (2.0 * vxx) * y * y)
    kernel = kernel * np.exp(1j * (mp + vxp / vxx * (q - mx)) * y)
    kernel /= math.sqrt(2.0 * math.pi * vxx)
    block = (hf.T @ kernel @ hf) * (dx * dx)
    return hermitian_part(block)


def wasserstein(
    n_levels: int = 10,
    *,
    mean_rho=_DEFAULT_MEAN_RHO,
    cov_rho=_DEFAULT_COV_RHO,
    mean_sigma=_DEFAULT_MEAN_SIGMA,
    cov_sigma=_DEFAULT_COV_SIGMA,
) -> Instance:
    r"""QWD instance: :math:`\min\{\operatorname{Tr}[H\pi] : \pi \succeq 0,\
    \operatorname{Tr}_2\pi = \rho,\ \operatorname{Tr}_1\pi = \sigma\}`, truncated Wasserstein cost.

    ``H`` is :func:`wasserstein_cost` (the exact operator :math:`(X\otimes I - I\otimes X)^2 +
    (P\otimes I - I\otimes P)^2` compressed to the first ``n`` Fock levels of each factor) and
    ``rho``, ``sigma`` are the Gaussian states of the given means and covariances projected on the
    first ``n`` levels and renormalized ([CGMPP, section 6.2]; see the module docstring for the
    conventions: ``hbar = 1``, vacuum covariance ``I/2``).

    Parameters
    ----------
    n_levels : int
        Fock levels per factor ``n``, 1 to 100. ``D = n^2`` and ``n_constraints = 2 n^2``: the
        paper's ``n = 50`` gives ``D = 2500``, 5000 rows and a dense 50 MB cost.
    mean_rho, cov_rho : array_like
        First marginal: mean ``(<X>, <P>)`` and covariance; default ``(0, 0)``,
        ``[[3, 1], [1, 3]]``.
    mean_sigma, cov_sigma : array_like
        Second marginal. Default ``(1, 1)``, ``[[10, 2], [2, 10]]``.

    Returns
    -------
    Instance
        ``problem``: ``X >> 0``, ``cp.partial_trace(X, [n, n], axis=1) == rho``,
        ``cp.partial_trace(X, [n, n], axis=0) == sigma``. ``reference_value`` is ``None`` (no
        closed form for the truncated problem). ``metadata``: ``n_levels``, ``dims`` ``(n, n)``,
        ``hbar`` (1.0), ``rho``, ``sigma`` (renormalized marginals), ``trace_rho_before``,
        ``trace_sigma_before`` (weights of the first ``n`` levels before renormalization; they
        tend to 1 as ``n`` grows: 0.9999992 and 0.98767 at ``n = 50`` for the defaults),
        ``mean_rho``, ``cov_rho``, ``mean_sigma``, ``cov_sigma``, ``rho_min_eigenvalue``,
        ``sigma_min_eigenvalue`` (positive: compressions of full-rank states), ``truncation``
        (``"exact-operator"``), ``lower_bound`` (2.0 = the smallest eigenvalue of ``H``) and
        ``product_value`` (``Tr[H (rho (x) sigma)]``, an upper bound on the optimum).
    """
    n = _check_int("n_levels", n_levels, low=1, high=_MAX_LEVELS)
    m_rho, V_rho = _check_gaussian("rho", mean_rho, cov_rho)
    m_sigma, V_sigma = _check_gaussian("sigma", mean_sigma, cov_sigma)
    marginals = []
    traces = []
    for label, m, V in (("rho", m_rho, V_rho), ("sigma", m_sigma, V_sigma)):
        block = _gaussian_block(m, V, n)
        tr = float(np.real(np.trace(block)))
        if not tr > 1e-12:
            raise InvalidInputError(
                f"the Gaussian state {label} (mean {m.tolist()}, cov {V.tolist()}) has weight "
                f"{tr:.3g} on the first {n} Fock levels, too little to renormalize; increase "
                "n_levels or move the mean closer to the origin"
            )
        marginals.append(hermitian_part(block / tr))
        traces.append(tr)
    rho, sigma = marginals
    H = wasserstein_cost(n)
    problem, X, n_rows = _qot_problem(H, rho, sigma)
    product = float(np.real(np.vdot(H, np.kron(rho, sigma))))
    metadata = {
        "n_levels": n,
        "dims": (n, n),
        "hbar": 1.0,
        "rho": rho,
        "sigma": sigma,
        "trace_rho_before": traces[0],
        "trace_sigma_before": traces[1],
        "mean_rho": m_rho,
        "cov_rho": V_rho,
        "mean_sigma": m_sigma,
        "cov_sigma": V_sigma,
        "rho_min_eigenvalue": float(np.linalg.eigvalsh(rho)[0]),
        "sigma_min_eigenvalue": float(np.linalg.eigvalsh(sigma)[0]),
        "truncation": "exact-operator",
        "lower_bound": 2.0,
        "product_value": product,
    }
    return Instance(
        name=f"QWD(n_levels={n})",
        problem=problem,
        X=X,
        H=H,
        dim=n * n,
        n_constraints=n_rows,
        metadata=metadata,
        reference_value=None,
    )
