"""The zero-temperature comparison: regularized solves over an eps ladder against the exact SDP.

For each regularizer the solves run from the largest eps to the smallest, each warm-started from the
dual vector of the previous one (eps-continuation). With a reference ``F_0`` (SCS or Clarabel) each
row reports ``|F_eps - F_0|``, ``|Tr[H X_eps] - F_0|``, the trace distance ``||X_eps - X_0||_1`` and
``||alpha_eps - alpha_0||_2``; Theorem 2.7 of [CGMPP] says the first three go to 0 with eps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .regularizers import get_regularizer
from .results import ExactResult, RegularizedResult
from .solvers.dual import _check_eps
from .solvers.exact import DEFAULT_SOLVER, solve_exact
from .solvers.regularized import DualSolver
from .table import Table

__all__ = ["SweepResult", "SweepRow", "sweep"]

DEFAULT_EPS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)
DEFAULT_REGULARIZERS = ("von_neumann", "quadratic")


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One regularized solve of a sweep, compared with the reference (``nan`` without one).

    ``certified_bound`` is the certified bound of the solve on the exact optimum: a lower bound
    for a minimization (``sense == 1``), an upper bound for a maximization (``sense == -1``);
    ``bracket_low``/``bracket_high`` the certified bracket on the exact optimum and
    ``bracket_width`` its width (:mod:`cvxqreg.bounds`; ``feasible_bound`` is its end from a
    feasible state).
    """

    regularizer: str
    eps: float
    status: str
    value: float
    energy: float
    dual_value: float
    gap: float
    grad_norm: float
    certified_bound: float
    sense: int
    bracket_low: float
    bracket_high: float
    iterations: int
    time: float
    reference_value: float
    value_error: float
    energy_error: float
    state_distance: float
    dual_distance: float
    feasible_bound: float = math.nan
    bracket_width: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict."""
        return dataclasses.asdict(self)


_COLUMNS = [
    ("regularizer", "reg", "{}"),
    ("eps", "eps", "{:.0e}"),
    ("status", "status", "{}"),
    ("value", "F_eps", "{:.10f}"),
    ("energy", "Tr[HX]", "{:.10f}"),
    ("certified_bound", "cert. bound", "{:.10f}"),
    ("feasible_bound", "feas. bound", "{:.10f}"),
    ("bracket_width", "width", "{:.2e}"),
    ("value_error", "|F_eps-F_0|", "{:.2e}"),
    ("energy_error", "|Tr[HX]-F_0|", "{:.2e}"),
    ("state_distance", "||X-X_0||_1", "{:.2e}"),
    ("grad_norm", "||grad||", "{:.1e}"),
    ("iterations", "iters", "{}"),
    ("time", "time[s]", "{:.3f}"),
]


@dataclasses.dataclass(frozen=True)
class SweepResult(Table):
    """Rows of a sweep, the reference solve and the full results.

    A :class:`~cvxqreg.table.Table`: ``print(table)``, :meth:`to_markdown` (with the reference
    value above it), :meth:`to_csv`, :meth:`to_json` (with a ``"reference"`` summary) and
    :meth:`to_pandas` export its rows, one column per field of :class:`SweepRow`.

    Attributes
    ----------
    rows : tuple of SweepRow
        One per (regularizer, eps), regularizers in the given order, eps decreasing.
    reference : ExactResult or None
    results : tuple of RegularizedResult
        The full result of each row, same order.
    """

    rows: tuple[SweepRow, ...]
    reference: ExactResult | None
    results: tuple[RegularizedResult, ...] = dataclasses.field(repr=False)

    @property
    def reference_value(self) -> float:
        """``F_0`` from the reference, ``nan`` without one."""
        return math.nan if self.reference is None else self.reference.value

    def for_regularizer(self, name: str) -> list[SweepRow]:
        """The rows of one regularizer, eps decreasing."""
        return [r for r in self.rows if r.regularizer == name]

    # -- the table (exports: cvxqreg.table.Table)
    def _table_columns(self) -> list[str]:
        return [f.name for f in dataclasses.fields(SweepRow)]

    def _table_rows(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def _table_shown(self):
        return _COLUMNS

    def _table_title(self, markdown: bool) -> str | None:
        ref = self.reference
        if ref is None:
            return None
        if markdown:
            return (
                f"Reference F_0 = {ref.value:.10f} ({ref.solver}, status {ref.status}, "
                f"{ref.time:.2f} s)"
            )
        return f"Reference F_0 = {ref.value:.10f} ({ref.solver}, {ref.status})"

    def _table_header(self) -> dict[str, Any]:
        r = self.reference
        ref = None
        if r is not None:
            ref = {"solver": r.solver, "status": r.status, "value": r.value, "time": r.time}
        return {"reference": ref}


def sweep(
    problem,
    eps: Sequence[float] = DEFAULT_EPS,
    regularizers: Sequence[Any] | None = None,
    reference: str | ExactResult | None = DEFAULT_SOLVER,
    *,
    warm_start: bool = True,
    on_solve: Callable[[str, float, RegularizedResult], None] | None = None,
    **options,
) -> SweepResult:
    """Solve the regularized problem over an eps grid for several regularizers and compare.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
        A ``cvxpy.Problem`` is lowered first; nothing is written back into it (a sweep has no
        single solution).
    eps : sequence of float
        The grid (any order; solved from the largest down, warm-started).
    regularizers : sequence of str or Regularizer, optional
        Default ``("von_neumann", "quadratic")``; ``regularizer=...`` (one) is accepted too.
    reference : {"SCS", "CLARABEL"} (any case), ExactResult or None
        How to get ``F_0``: solve with that conic solver (default
        :data:`cvxqreg.solvers.exact.DEFAULT_SOLVER`), reuse a result, or skip.
    warm_start : bool
        Start each solve from the previous eps's dual vector.
    on_solve : callable, optional
        ``on_solve(regularizer_name, eps, result)`` after each solve.
    **options
        Any option of :class:`~cvxqreg.DualSolver` (``tol``, ``max_iter``, ``optimizer``,
        ``hessian``, ``progress``, ``verbose``, ...), used for every solve.

    Returns
    -------
    SweepResult
        Data no state satisfies raise :class:`~cvxqreg.errors.InfeasibleDataError` (the
        sweep's one exception: it has no single status to report).
    """
    from .lowering import lower_for_solve

    lp, _ = lower_for_solve(problem)
    grid = sorted({_check_eps(e) for e in eps}, reverse=True)
    if not grid:
        raise InvalidInputError("eps must list at least one value > 0")
    if "regularizer" in options:
        if regularizers is not None:
            raise InvalidInputError("give regularizers=[...] or regularizer=..., not both")
        regularizers = (options.pop("regularizer"),)
    regs = [
        get_regularizer(r) for r in (DEFAULT_REGULARIZERS if regularizers is None else regularizers)
    ]
    if not regs:
        raise InvalidInputError("regularizers must list at least one regularizer")
    DualSolver.from_options(options, where="cvxqreg.sweep")  # check the options before solving
    if reference is None or isinstance(reference, ExactResult):
        ref = reference
    elif isinstance(reference, str):
        ref = solve_exact(lp, reference, verbose=bool(options.get("verbose", False)))
    else:
        raise InvalidInputError(
            f"reference must be 'scs', 'clarabel', an ExactResult or None, got {reference!r}"
        )
    have_ref = ref is not None and ref.X is not None
    F0 = ref.value if have_ref else math.nan

    rows, results = [], []
    for reg in regs:
        solver = DualSolver.from_options({**options, "regularizer": reg}, where="cvxqreg.sweep")
        alpha = eps_prev = None
        for e in grid:
            if warm_start:
                res = solver(lp, e, alpha0=alpha, eps0=eps_prev)
            else:
                res = solver(lp, e)
            if res.status not in ("failed", "infeasible") and np.all(np.isfinite(res.alpha)):
                alpha, eps_prev = res.alpha, e
            results.append(res)
            rows.append(_row(res, ref if have_ref else None, F0))
            if on_solve is not None:
                on_solve(reg.name, e, res)
    return SweepResult(rows=tuple(rows), reference=ref, results=tuple(results))


def _row(res: RegularizedResult, ref: ExactResult | None, F0: float) -> SweepRow:
    state_distance = dual_distance = verr = eerr = math.nan
    if ref is not None:
        verr, eerr = abs(res.value - F0), abs(res.energy - F0)
        if res.X is not None and ref.X is not None:  # a failed solve may have no state
            dX = res.X - ref.X
            state_distance = float(np.abs(np.linalg.eigvalsh(0.5 * (dX + dX.conj().T))).sum())
        if res.alpha is not None and ref.alpha is not None and res.alpha.shape == ref.alpha.shape:
            dual_distance = float(np.linalg.norm(res.alpha - ref.alpha))
    return SweepRow(
        regularizer=res.regularizer,
        eps=res.eps,
        status=res.status,
        value=res.value,
        energy=res.energy,
        dual_value=res.dual_value,
        gap=res.gap,
        grad_norm=res.grad_norm,
        certified_bound=res.certified_bound,
        sense=res.sense,
        bracket_low=res.bracket[0],
        bracket_high=res.bracket[1],
        iterations=res.iterations,
        time=res.time,
        reference_value=F0,
        value_error=verr,
        energy_error=eerr,
        state_distance=state_distance,
        dual_distance=dual_distance,
        feasible_bound=res.feasible_bound,
        bracket_width=res.bracket_width,
    )
