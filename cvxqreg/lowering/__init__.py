"""Lowering CVXPY SDPs over one Hermitian matrix variable to operator form.

``lower(problem)`` turns

    minimize/maximize f(X)  subject to  X >> 0,  g_k(X) == B_k

(``X`` Hermitian or real symmetric, ``f`` real affine, ``g_k`` affine, any shape, real or complex)
into a :class:`~cvxqreg.problem.LoweredProblem` ``min Tr[H X] + c, X >= 0, A(X) = q`` whose rows
``A(X)_i = Re Tr[Q_i X]`` are the entries ``Re``/``Im vec_F(g_k(X) - B_k)``, with partial traces
and Pauli strings recognised by value, and linearly dependent rows removed after checking their
right-hand sides. ``lowered.recovery.unpack(X, alpha, value, status)`` writes results back into the
CVXPY problem (variable value, status, objective value, dual values).
"""

from .compat import SUPPORTED_CVXPY, check_cvxpy_version
from .recovery import ConstraintInfo, Recovery
from .reduction import DUAL_KEY, PRIMAL_KEY, Lowering, lower, lower_for_solve, sense_of

__all__ = [
    "DUAL_KEY",
    "PRIMAL_KEY",
    "SUPPORTED_CVXPY",
    "ConstraintInfo",
    "Lowering",
    "Recovery",
    "check_cvxpy_version",
    "lower",
    "lower_for_solve",
    "sense_of",
]
