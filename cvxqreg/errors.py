"""Exceptions raised by cvxqreg.

Every error the package raises on purpose derives from :class:`CvxqregError`, so a caller can catch
all of them at once. The subclasses say *what* was wrong; the messages say *how to fix it*.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CvxqregError",
    "InfeasibleDataError",
    "InvalidInputError",
    "MissingDependencyError",
    "UnsupportedModelError",
]


class CvxqregError(Exception):
    """Base class of every error raised by cvxqreg."""


class InvalidInputError(CvxqregError, ValueError):
    """Bad data or arguments: wrong shape, non-Hermitian matrix, NaN, ``eps <= 0``, ..."""


class UnsupportedModelError(CvxqregError, ValueError):
    """A CVXPY model uses a construct that cvxqreg cannot lower to operator form."""


class InfeasibleDataError(CvxqregError, ValueError):
    """The constraint data admit no state: dependent rows with inconsistent right-hand sides,
    or marginals/expectations outside the state space."""


class BackendUnavailableError(CvxqregError, RuntimeError):
    """The requested array backend (e.g. CuPy) is not installed or has no usable device."""


class MissingDependencyError(CvxqregError, ImportError):
    """An optional dependency (e.g. matplotlib for plotting) is not installed."""
