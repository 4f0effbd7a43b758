"""Which CVXPY models the lowering accepts.

The accepted form is

    minimize / maximize  f(X)   subject to  X >> 0,  g_k(X) == B_k  (k = 1..K),
                                            h_l(X) <= C_l  (l = 1..L, optional),

with one Hermitian (or real symmetric) matrix variable ``X``, a real affine objective ``f``,
affine equalities ``g_k`` of any shape, real or complex, and real affine inequalities ``h_l``
(``<=`` or ``>=``, elementwise; CVXPY stores both as ``expr <= 0``). Everything else is rejected
here, with an :class:`~cvxqreg.errors.UnsupportedModelError` naming the construct and what to
write instead.
Whether a PSD constraint really is ``X >> 0`` is decided later, by value
(:func:`cvxqreg.lowering.extract.extract`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InvalidInputError, UnsupportedModelError

__all__ = ["ModelParts", "constraint_label", "split_model"]

#: variable attributes that the lowering represents (everything else adds constraints it cannot)
_ALLOWED_ATTRS = {"hermitian", "symmetric", "PSD", "complex"}


@dataclasses.dataclass(frozen=True)
class ModelParts:
    """The pieces of an accepted model.

    Attributes
    ----------
    variable : cvxpy.Variable
        The matrix variable ``X``.
    real : bool
        ``X`` is real symmetric (``False``: complex Hermitian).
    equalities : tuple of (int, Constraint)
        The equality and inequality constraints (the ones that become rows) with their index in
        ``problem.constraints``, in model order.
    inequalities : frozenset of int
        Positions (in ``problem.constraints``) of the inequalities among them.
    psd : tuple of (int, Constraint)
        The PSD constraints (each must turn out to be ``X >> 0``).
    psd_attribute : bool
        ``X`` was declared with ``PSD=True``.
    """

    variable: object
    real: bool
    equalities: tuple
    psd: tuple
    psd_attribute: bool
    inequalities: frozenset = frozenset()


def constraint_label(index: int, constraint, width: int = 60) -> str:
    """``"#3 `trace(X) == 1.0`"``: the constraint's position and its (truncated) text."""
    try:
        text = " ".join(str(constraint).split())
    except Exception:  # CVXPY 1.9 cannot print some complex sparse constants
        text = f"{type(constraint).__name__} of shape {tuple(constraint.shape)}"
    if len(text) > width:
        text = text[: width - 3] + "..."
    return f"#{index} `{text}`"


def split_model(problem) -> ModelParts:
    """Check ``problem`` against the accepted form and sort its constraints.

    Raises
    ------
    UnsupportedModelError
        For any construct outside the accepted form (the message says what to write instead).
    InvalidInputError
        For a parameter without a value or with NaN/inf entries.
    """
    import cvxpy as cp
    from cvxpy.constraints import PSD, Equality, Inequality, Zero

    if not isinstance(problem, cp.Problem):
        raise InvalidInputError(f"expected a cvxpy.Problem, got {type(problem).__name__}")
    X = _the_variable(problem)
    _check_parameters(problem)

    obj = problem.objective.expr
    if obj.size != 1:
        raise UnsupportedModelError(f"the objective must be scalar, got shape {obj.shape}")
    if not obj.is_affine():
        raise UnsupportedModelError(
            "the objective is not affine in X; cvxqreg lowers linear SDPs, write it as "
            "cp.real(cp.trace(H @ X)) + c with a Hermitian H"
        )
    if not obj.is_real():  # CVXPY's Minimize/Maximize already refuse this; kept for safety
        raise UnsupportedModelError(
            "the objective is complex; wrap it as cp.real(cp.trace(H @ X)) with a Hermitian H"
        )

    equalities, psd, inequalities = [], [], set()
    for i, c in enumerate(problem.constraints):
        if isinstance(c, Inequality):
            if not c.expr.is_affine():
                raise UnsupportedModelError(
                    f"constraint {constraint_label(i, c)} is not affine in X; only affine "
                    "inequalities such as cp.real(cp.trace(P @ X)) <= v are supported"
                )
            equalities.append((i, c))
            inequalities.add(i)
        elif isinstance(c, (Equality, Zero)):
            if not c.expr.is_affine():
                raise UnsupportedModelError(
                    f"constraint {constraint_label(i, c)} is not affine in X; only affine "
                    "equalities are supported"
                )
            equalities.append((i, c))
        elif isinstance(c, PSD):
            psd.append((i, c))
        else:
            raise UnsupportedModelError(_unsupported_constraint_message(i, c))

    psd_attr = bool(X.attributes.get("PSD"))
    if not psd and not psd_attr:
        raise UnsupportedModelError(
            "the model has no PSD constraint on X; add `X >> 0` (or declare the variable with "
            "PSD=True) — cvxqreg solves SDPs over positive semidefinite X"
        )
    if len(equalities) == len(inequalities):
        raise UnsupportedModelError(
            "the model has no equality constraints; add at least a normalization such as "
            "`cp.trace(X) == 1` (without one the SDP is unbounded or trivial)"
        )
    return ModelParts(
        X, not X.is_complex(), tuple(equalities), tuple(psd), psd_attr, frozenset(inequalities)
    )


def _the_variable(problem):
    variables = problem.variables()
    if len(variables) != 1:
        names = ", ".join(v.name() for v in variables) or "none"
        raise UnsupportedModelError(
            f"cvxqreg lowers SDPs over exactly one matrix variable, found {len(variables)} "
            f"({names}); substitute the others away or gather them into one block matrix variable"
        )
    X = variables[0]
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise UnsupportedModelError(
            f"the variable {X.name()} must be a square matrix, got shape {X.shape}"
        )
    attrs = {k for k, v in X.attributes.items() if v is not None and v is not False}
    if attrs & {"integer", "boolean"}:
        raise UnsupportedModelError(
            f"the variable {X.name()} is integer/boolean; cvxqreg solves continuous SDPs, declare "
            "it as cp.Variable((D, D), hermitian=True)"
        )
    extra = sorted(attrs - _ALLOWED_ATTRS)
    if extra:
        raise UnsupportedModelError(
            f"the variable {X.name()} has attribute(s) {extra} that cvxqreg cannot represent; "
            "declare cp.Variable((D, D), hermitian=True) (or symmetric=True for a real variable) "
            "and state anything else as equality constraints"
        )
    if X.is_complex() and not X.is_hermitian():
        raise UnsupportedModelError(
            f"the variable {X.name()} is complex but not Hermitian; declare it with "
            "hermitian=True (a density matrix is Hermitian)"
        )
    if not X.is_complex() and not X.is_symmetric():
        raise UnsupportedModelError(
            f"the variable {X.name()} is real but not symmetric; declare it with symmetric=True "
            "(or hermitian=True for a complex Hermitian variable)"
        )
    return X


def _check_parameters(problem) -> None:
    for p in problem.parameters():
        if p.value is None:
            raise InvalidInputError(
                f"parameter {p.name()} has no value; set {p.name()}.value before lowering"
            )
        if not np.all(np.isfinite(np.asarray(p.value))):
            raise InvalidInputError(f"parameter {p.name()} contains NaN or inf")


def _unsupported_constraint_message(i: int, c) -> str:
    kind = type(c).__name__
    label = constraint_label(i, c)
    if kind in {"NonNeg", "NonPos"}:
        return (
            f"constraint {label} ({kind}) is not supported; write it with an operator instead, "
            "`expr >= 0` or `expr <= 0` (affine inequalities are supported in that form)"
        )
    if kind in {"SOC", "ExpCone", "PowCone3D", "PowConeND", "RelEntrConeQuad", "OpRelEntrConeQuad"}:
        return (
            f"constraint {label} is a {kind} cone constraint; cvxqreg supports X >> 0, affine "
            "equalities and affine inequalities (<=, >=) on real expressions such as "
            "cp.real(cp.trace(P @ X)); a nonlinear function of X has no place in the linear SDP"
        )
    return (
        f"constraint {label} ({kind}) is not supported; cvxqreg supports X >> 0, affine "
        "equalities and affine inequalities (<=, >=)"
    )
