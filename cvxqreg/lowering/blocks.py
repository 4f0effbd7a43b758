"""Several PSD matrix variables: lowered to one block-diagonal variable.

A model over ``X_1, ..., X_k`` (each square Hermitian, or each real symmetric, each with
``X_j >> 0`` or ``PSD=True``) coupled by affine equalities and inequalities, e.g. a POVM
``M_1 + ... + M_k == I``, is the model over

    Y = [[X_1, *, ...], [*, X_2, ...], ...]   (D = n_1 + ... + n_k),   Y >> 0,

whose objective and constraints read only the diagonal blocks ``X_j = Y[b_j, b_j]``. The two
are equivalent: ``Y >> 0`` implies every ``X_j >> 0``, and ``diag(X_1, ..., X_k) >> 0`` is feasible
for ``Y`` whenever the ``X_j`` are; hence every ``Q_i`` and ``H`` of the lowered problem are block
diagonal, so is ``W = A*(alpha) - H``, and the regularized state ``psi'(W / eps)`` is block
diagonal too. The dual oracle then decomposes ``W`` one block at a time
(:func:`cvxqreg.operators.blocks.block_eigh`, ``LoweredProblem.blocks``); docs/theory.md,
'Several PSD variables: block-diagonal lowering'.

The model is rewritten by substituting ``Y[b_j, b_j]`` for each ``X_j`` (constraints keep their
ids, so dual values map back to the user's constraint objects) and lowered by
:func:`cvxqreg.lowering.lower`; :class:`BlockRecovery` writes each block to its variable's
``.value`` and the corresponding block of the PSD dual to each ``X_j >> 0``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import UnsupportedModelError
from .recovery import Recovery, _cvxpy_complex_psd_factor
from .validate import constraint_label

__all__ = ["BlockRecovery", "lower_blocks"]

#: attributes a block variable may carry
_ALLOWED = {"hermitian", "symmetric", "PSD", "complex"}


def lower_blocks(problem, lower):
    """Lower a model over several PSD matrix variables (see the module docstring); ``lower`` is
    the single-variable lowering."""
    import cvxpy as cp
    from cvxpy.constraints import PSD

    variables = sorted(problem.variables(), key=lambda v: v.id)
    complex_ = [_check_block_variable(v) for v in variables]
    if len(set(complex_)) > 1:
        names = ", ".join(
            f"{v.name()} ({'complex' if c else 'real'})"
            for v, c in zip(variables, complex_, strict=True)
        )
        raise UnsupportedModelError(
            f"the variables mix real symmetric and complex Hermitian matrices ({names}); declare "
            "all of them with hermitian=True (a real block is then a Hermitian block whose "
            "imaginary part you fix with cp.imag(X) == 0)"
        )
    real = not complex_[0]
    sizes = tuple(int(v.shape[0]) for v in variables)
    D = sum(sizes)
    offsets = np.cumsum((0,) + sizes[:-1])
    name = "blockdiag(" + ", ".join(v.name() for v in variables) + ")"
    Y = (
        cp.Variable((D, D), symmetric=True, name=name)
        if real
        else cp.Variable((D, D), hermitian=True, name=name)
    )
    blocks = {
        v.id: (k, slice(int(o), int(o) + n))
        for k, (v, o, n) in enumerate(zip(variables, offsets, sizes, strict=True))
    }
    sub = {vid: Y[sl, sl] for vid, (_, sl) in blocks.items()}

    constraints = [Y >> 0]
    block_psd = []  # (constraint, scale, slice)
    covered = {v.id for v in variables if v.attributes.get("PSD")}
    for i, c in enumerate(problem.constraints):
        if isinstance(c, PSD):
            vid, scale = _psd_of_one_variable(i, c, variables)
            block_psd.append((c, scale, blocks[vid][1]))
            covered.add(vid)
            continue
        constraints.append(c.copy([_substitute(a, sub) for a in c.args]))
    missing = [v.name() for v in variables if v.id not in covered]
    if missing:
        raise UnsupportedModelError(
            f"the variable(s) {', '.join(missing)} have no PSD constraint; cvxqreg lowers SDPs "
            "whose matrix variables are all positive semidefinite: add `X >> 0` for each (or "
            "declare it with PSD=True), or substitute the variable away"
        )
    objective = type(problem.objective)(_substitute(problem.objective.expr, sub))
    lowered = lower(cp.Problem(objective, constraints))
    rec = BlockRecovery.from_recovery(
        lowered.recovery,
        problem=problem,
        variables=[(v, blocks[v.id][1]) for v in variables],
        block_psd=block_psd,
    )
    return dataclasses.replace(lowered, recovery=rec, blocks=sizes)


def _check_block_variable(v) -> bool:
    """Checks one variable; returns whether it is complex (Hermitian)."""
    if v.ndim != 2 or v.shape[0] != v.shape[1]:
        raise UnsupportedModelError(
            f"the variable {v.name()} has shape {v.shape}; with several variables each must be a "
            "square PSD matrix (scalar or vector variables: gather them into a diagonal block, or "
            "substitute them away)"
        )
    attrs = {k for k, val in v.attributes.items() if val is not None and val is not False}
    if attrs & {"integer", "boolean"}:
        raise UnsupportedModelError(
            f"the variable {v.name()} is integer/boolean; cvxqreg solves continuous SDPs"
        )
    extra = sorted(attrs - _ALLOWED)
    if extra:
        raise UnsupportedModelError(
            f"the variable {v.name()} has attribute(s) {extra} that cvxqreg cannot represent; "
            "declare it hermitian=True (or symmetric=True) and state the rest as constraints"
        )
    if v.is_complex() and not v.is_hermitian():
        raise UnsupportedModelError(
            f"the variable {v.name()} is complex but not Hermitian; declare it hermitian=True"
        )
    if not v.is_complex() and not v.is_symmetric():
        raise UnsupportedModelError(
            f"the variable {v.name()} is real but not symmetric; declare it symmetric=True (or "
            "PSD=True)"
        )
    return bool(v.is_complex())


def _psd_of_one_variable(index, constraint, variables):
    """``(variable id, s)`` with ``arg = s X_j`` (``s > 0``) for a PSD constraint, decided by value
    at two random points of ``X_j`` and at ``X_j = 0`` (an affine map is fixed by these up to the
    rounding of the check, ``1e-12`` relative)."""
    arg = constraint.args[0]
    own = arg.variables()
    bad = UnsupportedModelError(
        f"PSD constraint {constraint_label(index, constraint)} is not on one variable itself; "
        "with several variables cvxqreg needs `X_j >> 0` for each X_j (a matrix inequality "
        "between variables or with a constant, e.g. M_1 << I or X >> c*I, is not a supported "
        "form: introduce a slack variable S >> 0 with an equality such as M_1 + S == I)"
    )
    if len(own) != 1 or own[0].shape != arg.shape:
        raise bad
    X = own[0]
    saved = X.value
    rng = np.random.default_rng(12345)
    try:
        X.value = np.zeros(X.shape)
        c0 = np.asarray(arg.value)
        scales = []
        for _ in range(2):
            R = rng.normal(size=X.shape)
            if X.is_complex():
                R = R + 1j * rng.normal(size=X.shape)
            R = 0.5 * (R + R.conj().T)
            X.value = R
            V = np.asarray(arg.value) - c0
            s = float(np.real(np.vdot(R, V)) / np.real(np.vdot(R, R)))
            if not np.abs(V - s * R).max() <= 1e-12 * max(1.0, abs(s)) * np.abs(R).max():
                raise bad
            scales.append(s)
    finally:
        X.value = saved
    s = scales[0]
    if not (s > 0 and abs(scales[1] - s) <= 1e-12 * s and np.abs(c0).max() <= 1e-12 * s):
        raise bad
    return X.id, s


def _substitute(expr, sub):
    """``expr`` with every variable whose id is in ``sub`` replaced by ``sub[id]``."""
    from cvxpy.expressions.variable import Variable

    if isinstance(expr, Variable):
        return sub.get(expr.id, expr)
    if not expr.args:
        return expr
    args = [_substitute(a, sub) for a in expr.args]
    if all(n is o for n, o in zip(args, expr.args, strict=True)):
        return expr
    return expr.copy(args)


class BlockRecovery(Recovery):
    """:class:`Recovery` of the block-diagonal lowering: the diagonal block ``Y[b_j, b_j]`` goes to
    variable ``X_j``, the block ``Z[b_j, b_j] / s`` of the PSD dual to each ``s X_j >> 0``; the
    equality and inequality duals are those of the substituted constraints (same ids)."""

    @classmethod
    def from_recovery(cls, base: Recovery, *, problem, variables, block_psd):
        out = cls.__new__(cls)
        out.__dict__.update(base.__dict__)
        out.problem = problem
        out.block_variables = tuple(variables)
        out.block_psd = tuple(block_psd)
        return out

    def to_solution(self, X, alpha=None, value: float | None = None, status: str = "optimal"):
        from cvxpy.reductions.solution import Solution

        sol = super().to_solution(X, alpha, value, status)
        primal = {}
        Y = sol.primal_vars.get(self.variable.id)
        if Y is not None:
            for v, sl in self.block_variables:
                primal[v.id] = np.ascontiguousarray(Y[sl, sl])
        dual = {k: v for k, v in sol.dual_vars.items() if k != self._y_psd_id()}
        if Y is not None and alpha is not None:
            Z = self.psd_dual(alpha) * _cvxpy_complex_psd_factor(self.real)
            for c, scale, sl in self.block_psd:
                dual[c.id] = np.ascontiguousarray(Z[sl, sl]) / scale
        return Solution(sol.status, sol.opt_val, primal, dual, {})

    def _y_psd_id(self):
        return self._psd[0][0].id if self._psd else None
