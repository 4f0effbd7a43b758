r"""A preconditioner for Newton-CG on Pauli-string constraints (tomography).

The negative dual Hessian is ``-Hess D = (1/eps) A L_G A*`` with the Daleckii-Krein operator
``L_G(M) = U (G o (U^* M U)) U^*``, ``G_kl = (psi'(t_k) - psi'(t_l)) / (t_k - t_l)`` the divided
differences at ``t = lambda / eps`` (docs/theory.md, 'Daleckii-Krein Hessian'). Replacing each
divided difference by the mean of its two endpoints' curvatures, ``G_kl ~ (g_k + g_l) / 2`` with
``g = psi''(t)``, turns ``L_G`` into the Jordan product with ``Y = U diag(g) U^*``:

    L_G(M) ~ (Y M + M Y) / 2,     P_kl = (1/eps) Re Tr[Q_k (Y Q_l + Q_l Y) / 2]
                                      = (c_k c_l / eps) Re Tr[Y P_k P_l].

For Pauli rows ``Q_k = c_k P_k`` the product ``P_k P_l`` is a phased Pauli string, so the whole
``m x m`` matrix is read from the ``4^n`` expectations of ``Y``, one Walsh-Hadamard transform
(:meth:`cvxqreg.operators.Pauli.jordan_matrix`; ``O(D^2 sqrt(D) + m^2)``, about one Hessian-vector
product at ``D = 512``), and factored by Cholesky (``O(m^3 / 3)``).

How good it is: for von Neumann ``psi'' = exp`` and ``G_kl`` is the logarithmic mean of
``g_k, g_l``, which lies between their geometric and arithmetic means, so ``P >= -Hess D`` and
``P^{-1/2} (-Hess D) P^{-1/2}`` has its spectrum in ``[min_kl LM/AM, 1]``: the ratio of the
logarithmic to the arithmetic mean falls only like ``2 / log(g_k / g_l)``, so states whose
eigenvalues span twelve orders of magnitude (tomography of a pure state) keep CG's condition
number near ``14`` where the plain Hessian's is ``1e12``. Measured on QT2 with 9 qubits (von
Neumann, eps 1e-2, tol 1e-6, benchmarks/results/pauli_preconditioner.md, counts that include
the bound's anchor solve): 233 CG products without it, 125 with it, in the same 13 Newton
steps. For the quadratic regularizer ``g`` is the support's indicator and the approximation is
coarser, but still an SPD matrix with the Hessian's range.

Newton-CG (:mod:`cvxqreg.solvers.newton`) builds it once a plain CG solve has needed
:data:`START_PRODUCTS` products (under ``preconditioner="auto"``; ``"pauli"`` from the first step):
near the maximally mixed state, where tomography starts, the Hessian is already a multiple of the
identity on Pauli rows and one product solves the step.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..operators.pauli import Pauli
from ..operators.stacked import Selected
from .preconditioner import projected_inverse, schur_complement

__all__ = ["START_PRODUCTS", "PauliStructure", "pauli_preconditioner", "pauli_structure"]

#: under ``preconditioner="auto"`` the Pauli preconditioner starts after a plain CG solve that
#: needed at least this many Hessian-vector products (building it costs about one)
START_PRODUCTS = 3
#: the preconditioner is a dense m x m matrix with an m x m index and weights: not used above
#: this many rows (about 20 m^2 bytes: 350 MB at 4200 rows, tomography of 11 qubits)
MAX_ROWS = 4200
#: nor above this many qubits: the table of all 4^n expectations takes about 50 D^2 bytes while
#: it is built (800 MB at 12 qubits)
MAX_QUBITS = 12


@dataclasses.dataclass(frozen=True)
class PauliStructure:
    """The oracle's rows as Pauli strings: the operator ``base`` and the rows of it kept
    (``None``: all)."""

    base: Pauli
    rows: np.ndarray | None


def pauli_structure(oracle) -> PauliStructure | None:
    """The Pauli structure of the oracle's rows, or ``None`` when the preconditioner does not
    apply: rows other than Pauli strings (possibly a subset of them), several PSD blocks, more
    than :data:`MAX_ROWS` rows or more than :data:`MAX_QUBITS` qubits."""
    if oracle.problem.blocks is not None or oracle.q.size > MAX_ROWS:
        return None
    A, rows = oracle.A, None
    if isinstance(A, Selected):
        A, rows = A.base, np.asarray(A.rows)
    if not isinstance(A, Pauli) or A.n_qubits > MAX_QUBITS:
        return None
    return PauliStructure(A, rows)


def pauli_preconditioner(structure: PauliStructure, oracle, ev, mu: float):
    """``r -> P_mu^{-1} r`` for the Jordan approximation ``P`` of ``-Hess D`` (module docstring)
    at the state of ``ev``, with the oracle's Schur complement along ``c``, the directions on
    which ``D`` is flat put at ``P``'s mean curvature and the shift ``mu I``
    (:func:`~cvxqreg.solvers.preconditioner.projected_inverse`); ``None`` when it cannot be
    factored."""
    be, eps = oracle.be, oracle.eps
    xp = be.xp
    m = oracle.q.size
    # rows the real reduction drops are flat directions of D: left out of P
    kept = (
        np.arange(m)
        if oracle.imag_rows is None
        else np.flatnonzero(~np.asarray(oracle.imag_rows, bool))
    )
    rows = kept if structure.rows is None else structure.rows[kept]
    U = ev.U
    g = xp.maximum(oracle.reg.d2psi(ev.lam / eps), 0.0)
    Y = (U * g[None, :]) @ U.conj().T
    P = np.asarray(be.to_host(structure.base.jordan_matrix(Y, rows)), dtype=np.float64) / eps
    c = None if oracle.c is None else oracle.c[kept]
    P = schur_complement(P, c)  # symmetric as built: both entries read one table entry
    N = np.zeros((kept.size, 0)) if c is None else (c / np.linalg.norm(c))[:, None]
    return projected_inverse(P, kept, m, N, mu)
