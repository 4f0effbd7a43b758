"""Constraint operators ``A(X) = (Re Tr[Q_i X])_i`` and their adjoints, with structure kept."""

from .base import ConstraintOperator
from .dense import Dense
from .partial_trace import PartialTrace
from .pauli import Pauli, pauli_label_to_masks, pauli_masks_to_label
from .stacked import Selected, Stacked

__all__ = [
    "ConstraintOperator",
    "Dense",
    "PartialTrace",
    "Pauli",
    "Selected",
    "Stacked",
    "pauli_label_to_masks",
    "pauli_masks_to_label",
]
