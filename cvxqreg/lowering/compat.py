"""The CVXPY versions the lowering is tested against.

The lowering uses CVXPY's own reductions (``EvalParams``, ``Complex2Real``) and its coefficient
extraction (``CoeffExtractor`` over the SciPy canonicalization backend). Those are internal APIs, so
the range below is the one that was checked; outside it :func:`check_cvxpy_version` raises.
:data:`SUPPORTED_CVXPY` is the one statement of the range: ``pyproject.toml`` repeats it for pip and
a test keeps the two equal. tests/test_lowering.py passed on 1.4.4, 1.5.4, 1.6.7, 1.7.5, 1.8.2 and
1.9.3; the whole suite was run on 1.6.7 and 1.9.3 with current NumPy/SciPy, and CVXPY 1.4 fails with
current SciPy (its ``lambda_max`` passes the removed ``eigvals`` keyword to
``scipy.linalg.eigvalsh``), so the floor is 1.6. Differences met inside the range:
``Complex2Real.accepts`` returns ``None`` before 1.8 (the module-level ``accepts`` is used), the
coefficient tensor may carry a complex dtype, complex PSD variables exist only from 1.7, and the
reported dual of a complex PSD constraint is halved before 1.9.
"""

from __future__ import annotations

import re

import cvxpy.atoms.affine.trace as _trace_mod

from ..errors import UnsupportedModelError

__all__ = ["SUPPORTED_CVXPY", "TRACE_ATOM", "check_cvxpy_version", "cvxpy_version"]

#: ``(lower bound, upper bound)`` in pip syntax; ``pyproject.toml`` states the same range.
SUPPORTED_CVXPY = (">=1.6", "<1.10")

_LOW, _HIGH = (tuple(int(x) for x in bound.lstrip("<>=").split(".")) for bound in SUPPORTED_CVXPY)

#: CVXPY's trace atom class (``Trace`` since 1.8, ``trace`` before)
TRACE_ATOM = (
    _trace_mod.Trace if isinstance(getattr(_trace_mod, "Trace", None), type) else _trace_mod.trace
)


def cvxpy_version() -> tuple[int, int, int]:
    """The installed CVXPY version as ``(major, minor, patch)`` (pre-release tags ignored)."""
    import cvxpy

    nums = [int(x) for x in re.findall(r"\d+", cvxpy.__version__)[:3]]
    return tuple((nums + [0, 0, 0])[:3])


def check_cvxpy_version() -> None:
    """Raise :class:`~cvxqreg.errors.UnsupportedModelError` unless the installed CVXPY is in
    :data:`SUPPORTED_CVXPY`."""
    import cvxpy

    v = cvxpy_version()
    if not (_LOW <= v[:2] < _HIGH):
        raise UnsupportedModelError(
            f"cvxqreg's CVXPY lowering supports cvxpy {','.join(SUPPORTED_CVXPY)}, but cvxpy "
            f"{cvxpy.__version__} is installed; install a supported version "
            f"(pip install 'cvxpy{','.join(SUPPORTED_CVXPY)}') or build a LoweredProblem "
            "directly from (H, operator, q)."
        )
