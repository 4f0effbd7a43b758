"""cvxqreg: exact and entropy-regularized SDPs over density matrices, from CVXPY models.

    F_0   = min { Tr[H X] : X >= 0, Tr[Q_i X] = q_i }                     (exact, SCS)
    F_eps = min { Tr[H X] + eps Tr[phi(X)] : X >= 0, Tr[Q_i X] = q_i }   (regularized, dual)

Typical use::

    import cvxpy as cp, cvxqreg
    lowered = cvxqreg.lower(problem)           # operator form (H, A, q), structure kept
    exact = cvxqreg.solve_exact(problem)        # SCS reference
    reg = cvxqreg.solve(problem, eps=1e-3)      # Newton (or L-BFGS) on the dual, NumPy or CuPy
    value = problem.solve(method="cvxqreg", eps=1e-3)  # the same through CVXPY

The regularized problem is solved through its dual by regularized Newton with eps-continuation
(``optimizer="newton"``, the default) or L-BFGS (``optimizer="lbfgs"``, the paper's method).
"""

from . import operators, plotting, problems, regularizers
from .backend import Backend, available_backends, get_backend
from .batch import BatchResult, scan, solve_many
from .certification import CertifyResult, certify
from .cvxpy_method import register as _register
from .errors import (
    BackendUnavailableError,
    CvxqregError,
    InfeasibleDataError,
    InvalidInputError,
    UnsupportedModelError,
)
from .lowering import lower
from .problem import LoweredProblem
from .regularizers import Custom, Quadratic, Regularizer, Tsallis, VonNeumann, get_regularizer
from .results import ExactResult, History, RegularizedResult, Status
from .solvers.exact import solve_exact
from .solvers.regularized import DualSolver, solve
from .sweep import SweepResult, SweepRow, sweep

__version__ = "0.1.0"

_register()

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BatchResult",
    "CertifyResult",
    "Custom",
    "CvxqregError",
    "DualSolver",
    "ExactResult",
    "History",
    "InfeasibleDataError",
    "InvalidInputError",
    "LoweredProblem",
    "Quadratic",
    "RegularizedResult",
    "Regularizer",
    "Status",
    "SweepResult",
    "SweepRow",
    "Tsallis",
    "UnsupportedModelError",
    "VonNeumann",
    "available_backends",
    "certify",
    "get_backend",
    "get_regularizer",
    "lower",
    "operators",
    "plotting",
    "problems",
    "regularizers",
    "scan",
    "solve",
    "solve_exact",
    "solve_many",
    "sweep",
]
