"""The lowering: a CVXPY problem to :class:`~cvxqreg.problem.LoweredProblem`.

    min/max f(X)  s.t.  X >> 0,  g_k(X) == B_k      (CVXPY)
        -->   min Tr[H X] + c  s.t.  X >= 0,  A(X) = q,   user objective = sense * (...)

Stages: :mod:`.validate` (accepted form), :mod:`.extract` (rows ``Q_i``, ``q``, ``H``, ``c``),
:mod:`.dependence` (independent rows, consistent right-hand sides), :mod:`.structure` (partial
traces, Pauli strings, dense rest). :class:`~.recovery.Recovery` maps results back.
"""

from __future__ import annotations

import time

import numpy as np
from cvxpy.reductions.reduction import Reduction

from ..errors import CvxqregError, InfeasibleDataError, UnsupportedModelError
from ..problem import LoweredProblem
from .compat import check_cvxpy_version
from .dependence import RHS_RTOL, ZERO_RTOL, Dependence, independent_rows
from .extract import extract
from .recovery import ConstraintInfo, Recovery
from .structure import build_operator
from .validate import split_model

__all__ = ["DUAL_KEY", "PRIMAL_KEY", "Lowering", "lower", "lower_for_solve", "sense_of"]

#: key of the matrix in ``Solution.primal_vars`` of a lowered solution (see :meth:`Lowering.invert`)
PRIMAL_KEY = "X"
#: key of the dual vector in ``Solution.dual_vars`` of a lowered solution
DUAL_KEY = "alpha"


def lower(problem) -> LoweredProblem:
    """Lower a CVXPY SDP over one Hermitian matrix to operator form.

    Parameters
    ----------
    problem : cvxpy.Problem
        ``Minimize``/``Maximize`` of a real affine function of one Hermitian (``hermitian=True``)
        or real symmetric (``symmetric=True``) variable ``X``, subject to ``X >> 0`` (or
        ``PSD=True``) and affine equalities. Parameters are read at their current values.

    Returns
    -------
    LoweredProblem
        ``H``, ``A``, ``q``, ``offset``, ``sense``; ``A`` keeps partial-trace and Pauli structure
        and has independent rows; ``recovery`` is a :class:`~.recovery.Recovery`.

    Raises
    ------
    UnsupportedModelError
        The model is outside the accepted form (the message says what to write instead), or the
        installed CVXPY version is unsupported.
    InvalidInputError
        NaN/inf data or a parameter without a value.
    InfeasibleDataError
        Linearly dependent equalities with inconsistent right-hand sides.
    """
    check_cvxpy_version()
    if _several_variables(problem):  # X_1, ..., X_k >> 0: one block-diagonal variable
        from .blocks import lower_blocks

        return lower_blocks(problem, lower)
    t0 = time.perf_counter()
    parts = split_model(problem)
    ext = extract(problem, parts)
    t1 = time.perf_counter()
    starts = np.array([b.start for b in ext.blocks])

    def describe(row):
        blk = ext.blocks[int(np.searchsorted(starts, row, side="right")) - 1]
        return blk.index, blk.label, blk.row_name(row)

    ineq_full = np.zeros(ext.rows.shape[0], dtype=bool)
    for blk in ext.blocks:
        if blk.index in parts.inequalities:
            ineq_full[blk.start : blk.stop] = True
    dep = _independent_rows(ext.rows, ext.q, ineq_full, describe)
    if not dep.keep[~ineq_full].any():
        raise UnsupportedModelError(
            "every equality row is identically zero on Hermitian X; add at least a "
            "normalization such as `cp.trace(X) == 1`"
        )
    t2 = time.perf_counter()
    st = build_operator(ext.rows, ext.blocks, dep.keep, ext.dim)
    t3 = time.perf_counter()

    row_map = st.row_map
    infos = []
    for blk, structure in zip(ext.blocks, st.block_structure, strict=True):
        lo, hi = np.searchsorted(row_map, [blk.start, blk.stop])
        infos.append(
            ConstraintInfo(
                index=blk.index,
                constraint=blk.constraint,
                shape=blk.shape,
                rows=range(blk.start, blk.stop),
                n_re=blk.n_re,
                n_im=blk.n_im,
                structure=structure,
                lowered_rows=np.arange(lo, hi),
            )
        )
    block_of = np.searchsorted(starts, row_map, side="right") - 1
    labels = tuple(
        f"constraint #{ext.blocks[b].index} {ext.blocks[b].row_name(r)}"
        for b, r in zip(block_of, row_map, strict=True)
    )
    recovery = Recovery(
        problem=problem,
        variable=parts.variable,
        real=ext.real,
        sense=ext.sense,
        H=ext.H,
        offset=ext.offset,
        operator=st.operator,
        row_map=row_map,
        n_extracted=ext.rows.shape[0],
        constraints=infos,
        psd=[(c, s) for (_, c), s in zip(parts.psd, ext.psd_scales, strict=True)],
        dropped={"zero": dep.zero, "dependent": dep.dependent},
        timings={"extract": t1 - t0, "dependence": t2 - t1, "structure": t3 - t2},
        fast_path=ext.fast,
        rows=ext.rows,
    )
    lowered = LoweredProblem(
        H=ext.H,
        A=st.operator,
        q=ext.q[row_map],
        offset=ext.offset,
        sense=ext.sense,
        real=ext.real,
        row_labels=labels,
        recovery=recovery,
        inequality=ineq_full[row_map],
    )
    recovery.timings["total"] = time.perf_counter() - t0
    return lowered


def lower_for_solve(problem) -> tuple[LoweredProblem, Recovery | None]:
    """``(lowered, recovery)`` for a solve entry point: a ``cvxpy.Problem`` is lowered and its
    :class:`~.recovery.Recovery` returned, so that the entry point writes the result back into
    it; a :class:`~cvxqreg.problem.LoweredProblem` is used as it is, with ``recovery=None``
    (nothing is written back, whatever ``lowered.recovery`` holds)."""
    if isinstance(problem, LoweredProblem):
        return problem, None
    lowered = lower(problem)
    return lowered, lowered.recovery


def sense_of(problem) -> int:
    """``-1`` for a CVXPY ``Maximize`` (or a lowered maximization), else ``1``."""
    if isinstance(problem, LoweredProblem):
        return problem.sense
    from cvxpy.problems.objective import Maximize

    return -1 if isinstance(getattr(problem, "objective", None), Maximize) else 1


def _several_variables(problem) -> bool:
    import cvxpy as cp

    return isinstance(problem, cp.Problem) and len(problem.variables()) > 1


def _independent_rows(rows, q, ineq, describe):
    """:func:`.dependence.independent_rows` on the equality rows; inequality rows are all kept
    (two inequalities on the same functional, ``l <= f(X) <= u``, are both needed) except the
    identically zero ones, which are dropped when ``0 <= q_i`` holds and are infeasible data
    otherwise."""
    if not ineq.any():
        return independent_rows(rows, q, describe)
    eq_idx, in_idx = np.flatnonzero(~ineq), np.flatnonzero(ineq)
    sub = independent_rows(rows[eq_idx], q[eq_idx], lambda i: describe(int(eq_idx[i])))
    keep = np.zeros(rows.shape[0], dtype=bool)
    keep[eq_idx[sub.keep]] = True
    sq = rows[in_idx].multiply(rows[in_idx]).sum(axis=1)
    norms = np.sqrt(np.asarray(sq).ravel())
    big = max(norms.max(), np.sqrt(rows.multiply(rows).sum(axis=1).max()))
    zero_in = norms <= ZERO_RTOL * big
    for i in in_idx[zero_in]:
        if q[i] < -RHS_RTOL * (1.0 + abs(q[i])):
            _, label, part = describe(int(i))
            raise InfeasibleDataError(
                f"inequality {label} ({part}) reads 0 <= {q[i]:.6g} for every X: the data are "
                "infeasible"
            )
    keep[in_idx[~zero_in]] = True
    return Dependence(
        keep=keep,
        zero=np.sort(np.concatenate([eq_idx[sub.zero], in_idx[zero_in]])),
        dependent=eq_idx[sub.dependent],
    )


class Lowering(Reduction):
    """CVXPY-style reduction from a CVXPY SDP to a :class:`~cvxqreg.problem.LoweredProblem`.

    ``apply(problem) -> (lowered, inverse_data)`` where ``inverse_data`` is the
    :class:`~.recovery.Recovery` (also ``lowered.recovery``). ``invert(solution, inverse_data)``
    maps a ``Solution`` of the lowered problem (primal ``{PRIMAL_KEY: X}``, dual
    ``{DUAL_KEY: alpha}``) to a ``Solution`` of the source problem, for ``problem.unpack``.
    """

    def accepts(self, problem) -> bool:
        """Whether :func:`lower` succeeds on ``problem`` (runs the lowering)."""
        try:
            lower(problem)
        except CvxqregError:
            return False
        return True

    def apply(self, problem):
        """Lower ``problem``; returns ``(LoweredProblem, Recovery)``."""
        lowered = lower(problem)
        return lowered, lowered.recovery

    def invert(self, solution, inverse_data):
        """Map a lowered ``Solution`` to a ``Solution`` of the source problem."""
        X = solution.primal_vars.get(PRIMAL_KEY) if solution.primal_vars else None
        alpha = solution.dual_vars.get(DUAL_KEY) if solution.dual_vars else None
        return inverse_data.to_solution(X, alpha, solution.opt_val, solution.status)
