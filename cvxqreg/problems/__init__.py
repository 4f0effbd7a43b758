r"""Reference problem library: the workloads of [CGMPP, section 6] and the examples of [CGP].

Every generator returns an :class:`Instance` holding a CVXPY problem

.. math::  \min \{ \operatorname{Re}\operatorname{Tr}[H X] : X \succeq 0,\
           \text{affine equalities} \}

over one Hermitian variable, written the way a user would write it, plus the data it was built from
(``H``, the generating state or marginals, parameters) and, where one is known, the optimal value in
closed form.

===================  ==============================================  ===========================
generator            problem                                         ``reference_value``
===================  ==============================================  ===========================
:func:`tomography`   QT1/QT2/QT3: ``H = 0``, trace and Pauli         ``0.0``
                     expectations of a generating state
:func:`wasserstein`  QWD: quantum Wasserstein cost between two       ``None``
                     Gaussian states, ``n`` Fock levels, ``D = n^2``
:func:`ising`        IM: Ising chain cost, marginals of an           ``lambda_0`` (ground level)
                     eigenvector, ``D = 4^N``
:func:`two_point`    [CGP] two-point coherent-state transport,       ``(a - b)^2`` (equal masses)
                     ``D = 4``
:func:`tomography_intervals` Pauli expectations within Hoeffding   ``None``
                     intervals (inequalities); worst-case fidelity
                     or maximum entropy
:func:`state_discrimination` ``k`` states, POVM ``M_1..M_k >> 0``,     Helstrom (``k = 2``),
                     ``sum M_j == I`` (several variables)           symmetric pure states
:func:`multi_marginal` ``N``-party transport, pairwise quadratic     ``0.0`` (equal diagonal
                     cost, ``D = d^N``                                marginals), else ``None``
===================  ==============================================  ===========================

References
----------
[CGMPP] Caputo, Gerolin, Monina, Pelikh, Portinale, *Quantum thermodynamics and semidefinite
programming: regularization and algorithms* (2026), section 6.
[CGP] Caglioti, Golse, Paul, *Quantum optimal transport is cheaper*, hal-02214344 (2019);
J. Stat. Phys. 181 (2020).

This subpackage depends only on NumPy, SciPy and CVXPY (and :mod:`cvxqreg.errors`).
"""

from ._instance import Instance
from .discrimination import helstrom_value, state_discrimination
from .ising import ising, ising_hamiltonian
from .multi_marginal import marginal_expression, multi_marginal, multi_marginal_cost
from .pauli import (
    pauli_expectation,
    pauli_expectations,
    pauli_matrix,
    pauli_sparse,
    random_pauli_labels,
)
from .tomography import cat_state, tomography, tomography_state, zeta_state
from .tomography_intervals import hoeffding_halfwidth, tomography_intervals
from .two_point import coherent_pair_matrices, two_point, two_point_cost
from .wasserstein import gaussian_state_fock, quadrature_matrices, wasserstein, wasserstein_cost

__all__ = [
    "Instance",
    "cat_state",
    "coherent_pair_matrices",
    "gaussian_state_fock",
    "helstrom_value",
    "hoeffding_halfwidth",
    "ising",
    "ising_hamiltonian",
    "marginal_expression",
    "multi_marginal",
    "multi_marginal_cost",
    "pauli_expectation",
    "pauli_expectations",
    "pauli_matrix",
    "pauli_sparse",
    "quadrature_matrices",
    "random_pauli_labels",
    "state_discrimination",
    "tomography",
    "tomography_intervals",
    "tomography_state",
    "two_point",
    "two_point_cost",
    "wasserstein",
    "wasserstein_cost",
    "zeta_state",
]
