r"""Transverse-field Ising instance IM of [CGMPP, section 6.2].

Quantum optimal transport on :math:`2N` qubits split ``N | N``, with the Ising Hamiltonian as cost
and the marginals of one of its eigenvectors:

.. math::  H = -J \sum_{i=1}^{2N-1} Z_i Z_{i+1} - h \sum_{i=1}^{2N} X_i, \qquad
           \rho = \operatorname{Tr}_2 |\psi_k\rangle\langle\psi_k|, \quad
           \sigma = \operatorname{Tr}_1 |\psi_k\rangle\langle\psi_k|,

.. math::  \min \{ \operatorname{Tr}[H\pi] : \pi \succeq 0,\ \operatorname{Tr}_2\pi = \rho,\
           \operatorname{Tr}_1\pi = \sigma \}.

Readings of the paper, stated once:

* Open chain: the coupling sum runs over :math:`i = 1, \dots, 2N - 1` ("Hamiltonian of the
  two-dimensional Ising model" in the text is a one-dimensional chain with these sums).
* The cost *is* :math:`H_{\mathrm{Ising}}` ("The corresponding Hamiltonian matrix ... defines a
  Hermitian cost operator for the QOT problem (6.6)"), on all :math:`2N` qubits; subsystem 1 is
  qubits ``1..N`` (the leftmost tensor factors), subsystem 2 is qubits ``N+1..2N``.
* Which eigenvector: the paper orders :math:`\lambda_1 \le \dots \le \lambda_{2^{2N}}` (1-based)
  and then selects "the eigenstate corresponding to the first excited energy level,
  :math:`|\psi_1\rangle`". The words say first excited (second-lowest); the 1-based label
  :math:`\psi_1` would be the ground state. Both are supported; the default ``"first_excited"``
  follows the words (and the label read 0-based).
* Uniform :math:`J_{i,i+1} = J = 1` and :math:`h_i = h = 0.5`, ``N = 5`` (``D = 1024``) in the
  paper.

Since :math:`|\psi_k\rangle\langle\psi_k|` is itself a feasible coupling, the optimum lies in
:math:`[\lambda_{\min}(H), \lambda_k]`; for the ground state both ends coincide, so the optimal
value is exactly :math:`\lambda_0`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cvxqreg.errors import InvalidInputError

from ._instance import Instance, _check_choice, _check_int, _check_real, _qot_problem

__all__ = ["ising", "ising_hamiltonian"]

#: D = 4^N; N = 6 is D = 4096 (a dense cost of 128 MB)
_MAX_PER_SIDE = 6
#: dense eigendecomposition up to this D, sparse Lanczos (eigsh) above
_DENSE_EIGH_MAX_DIM = 1024
_LEVEL_NAMES = {"ground": 0, "first_excited": 1}


def ising_hamiltonian(
    n_qubits: int, h: float = 0.5, coupling: float = 1.0, *, sparse: bool = False
) -> np.ndarray | sp.csr_array:
    r"""Open transverse-field Ising chain :math:`-J\sum_{i} Z_i Z_{i+1} - h \sum_i X_i`.

    Qubit ``0`` is the leftmost tensor factor (most significant bit of a basis index, ``np.kron``
    order), the coupling sum runs over neighbours ``(i, i+1)``, ``i = 0..n-2`` (open boundary).

    Parameters
    ----------
    n_qubits : int
        Chain length, 1 to 14.
    h : float
        Transverse field.
    coupling : float
        Nearest-neighbour coupling ``J``.
    sparse : bool
        Return a SciPy CSR array instead of a dense ``float64`` array.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_array
        ``(2^n, 2^n)`` real symmetric.
    """
    L = _check_int("n_qubits", n_qubits, low=1, high=14)
    h = _check_real("h", h)
    J = _check_real("coupling", coupling)
    D = 1 << L
    r = np.arange(D, dtype=np.int64)
    spins = 1 - 2 * ((r[:, None] >> (L - 1 - np.arange(L))[None, :]) & 1)  # z_i = +-1, (D, L)
    diag = -J * np.sum(spins[:, :-1] * spins[:, 1:], axis=1).astype(float)
    rows = [r]
    cols = [r]
    vals = [diag]
    for i in range(L):
        rows.append(r)
        cols.append(r ^ (1 << (L - 1 - i)))
        vals.append(np.full(D, -h))
    H = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(D, D)
    )
    H.sum_duplicates()
    return H if sparse else H.toarray()


def _level_index(level) -> tuple[int, str]:
    if isinstance(level, str):
        name = _check_choice("level", level, tuple(_LEVEL_NAMES))
        return _LEVEL_NAMES[name], name
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        k = _check_int("level", level, low=0)
        return k, {0: "ground", 1: "first_excited"}.get(k, f"index {k}")
    raise InvalidInputError(
        f"level must be 'ground', 'first_excited' or a 0-based eigenvalue index, got {level!r}"
    )


def ising(
    n_per_side: int = 2,
    h: float = 0.5,
    level: str | int = "first_excited",
    *,
    coupling: float = 1.0,
) -> Instance:
    r"""IM instance: optimal transport with the Ising cost between the marginals of an eigenvector.

    :math:`\min\{\operatorname{Tr}[H\pi] : \pi \succeq 0,\ \operatorname{Tr}_2\pi = \rho,\
    \operatorname{Tr}_1\pi = \sigma\}` on :math:`\mathbb{C}^{2^N} \otimes \mathbb{C}^{2^N}` with
    ``H`` the open transverse-field Ising chain on ``2N`` qubits (:func:`ising_hamiltonian`) and
    ``rho``, ``sigma`` the reduced states of its ``level``-th eigenvector over the ``N | N`` split
    (see the module docstring for how the paper is read).

    Parameters
    ----------
    n_per_side : int
        ``N``, qubits per side, 1 to 6. ``D = 4^N`` (paper: ``N = 5``, ``D = 1024``) and
        ``n_constraints = 2 * 4^N``.
    h : float
        Transverse field (paper: 0.5). ``h = 0`` makes the ground level degenerate and is rejected
        for ``level`` 0 or 1.
    level : {"first_excited", "ground"} or int
        Which eigenvector, by ascending eigenvalue: ``"ground"`` is index 0, ``"first_excited"``
        (default, the paper's words) index 1, an int is a 0-based index. The level must be
        non-degenerate, otherwise its eigenvector (and the marginals) is not unique.
    coupling : float
        ``J`` (paper: 1).

    Returns
    -------
    Instance
        ``problem``: ``X >> 0``, ``cp.partial_trace(X, [2^N, 2^N], axis=1) == rho``,
        ``cp.partial_trace(X, [2^N, 2^N], axis=0) == sigma``. ``reference_value`` is
        ``lambda_0`` for the ground level (exact: ``|psi_0><psi_0|`` is feasible and no state does
        better) and ``None`` otherwise. ``metadata``: ``n_per_side``, ``n_qubits`` (``2N``),
        ``h``, ``coupling``, ``boundary`` (``"open"``), ``level`` (name), ``level_index``,
        ``energy`` (``lambda_k``), ``eigenvalues`` (the lowest ones computed, ascending),
        ``gap_below``, ``gap_above``, ``psi`` (the eigenvector, sign fixed so that its largest
        entry is positive), ``rho``, ``sigma`` (real symmetric), ``rho_min_eigenvalue``,
        ``sigma_min_eigenvalue``, ``rho_rank``, ``sigma_rank`` (numerical ranks, eigenvalues above
        ``1e-12`` times the largest; strong duality with a dual maximizer [CGMPP, Thm 5.5] wants
        full rank, but the paper's ``N = 5`` marginals have rank 10 of 32), ``dims``,
        ``lower_bound`` (``lambda_0``) and ``feasible_value`` (``lambda_k``, the value of
        ``|psi_k><psi_k|``).
    """
    N = _check_int("n_per_side", n_per_side, low=1, high=_MAX_PER_SIDE)
    h = _check_real("h", h)
    J = _check_real("coupling", coupling)
    k, level_name = _level_index(level)
    L = 2 * N
    D = 1 << L
    if k >= D:
        raise InvalidInputError(f"level={k} is out of range: the chain has {D} eigenvalues")
    Hs = ising_hamiltonian(L, h, J, sparse=True)
    if D <= _DENSE_EIGH_MAX_DIM or k + 2 >= D - 1:
        evals, evecs = np.linalg.eigh(Hs.toarray())
    else:
        evals, evecs = spla.eigsh(Hs, k=k + 2, which="SA", tol=1e-12)
        order = np.argsort(evals)
        evals, evecs = evals[order], evecs[:, order]
    lam = float(evals[k])
    gap_below = float(lam - evals[k - 1]) if k > 0 else float("inf")
    gap_above = float(evals[k + 1] - lam) if k + 1 < evals.size else float("inf")
    tol = 1e-8 * max(1.0, abs(lam))
    if min(gap_below, gap_above) < tol:
        raise InvalidInputError(
            f"level {k} of the Ising chain (N={N}, h={h}, coupling={J}) is degenerate (gap "
            f"{min(gap_below, gap_above):.3g}): its eigenvector, hence the marginals, is not "
            "unique; pick another level or h != 0"
        )
    psi = np.array(evecs[:, k], dtype=float)
    psi /= np.linalg.norm(psi)
    if psi[np.argmax(np.abs(psi))] < 0:
        psi = -psi
    side = 1 << N
    Psi = psi.reshape(side, side)  # Psi[i, j] = <i, j|psi>
    rho = Psi @ Psi.T  # Tr_2
    sigma = Psi.T @ Psi  # Tr_1
    rho = 0.5 * (rho + rho.T)
    sigma = 0.5 * (sigma + sigma.T)
    w_rho, w_sigma = np.linalg.eigvalsh(rho), np.linalg.eigvalsh(sigma)
    H = Hs.toarray()
    problem, X, n_rows = _qot_problem(H, rho, sigma)
    metadata = {
        "n_per_side": N,
        "n_qubits": L,
        "h": h,
        "coupling": J,
        "boundary": "open",
        "level": level_name,
        "level_index": k,
        "energy": lam,
        "eigenvalues": np.array(evals, dtype=float),
        "gap_below": gap_below,
        "gap_above": gap_above,
        "psi": psi,
        "rho": rho,
        "sigma": sigma,
        "rho_min_eigenvalue": float(w_rho[0]),
        "sigma_min_eigenvalue": float(w_sigma[0]),
        "rho_rank": int(np.sum(w_rho > 1e-12 * w_rho[-1])),
        "sigma_rank": int(np.sum(w_sigma > 1e-12 * w_sigma[-1])),
        "dims": (side, side),
        "lower_bound": float(evals[0]),
        "feasible_value": lam,
    }
    return Instance(
        name=f"IM(n_per_side={N}, h={h:g}, level={level_name})",
        problem=problem,
        X=X,
        H=H,
        dim=D,
        n_constraints=n_rows,
        metadata=metadata,
        reference_value=float(evals[0]) if k == 0 else None,
    )
