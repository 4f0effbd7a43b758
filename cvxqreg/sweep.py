"""The zero-temperature comparison: regularized solves over an eps ladder against the exact SDP.

For each regularizer the solves run from the largest eps to the smallest, each warm-started from the
dual vector of the previous one (eps-continuation). With a reference ``F_0`` (SCS or Clarabel) each
row reports ``|F_eps - F_0|``, ``|Tr[H X_eps] - F_0|``, the trace distance ``||X_eps - X_0||_1`` and
``||alpha_eps - alpha_0||_2``; Theorem 2.7 of [CGMPP] says the first three go to 0 with eps.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .problem import LoweredProblem
from .regularizers import get_regularizer
from .results import ExactResult, RegularizedResult
from .solvers.dual import _check_eps
from .solvers.exact import solve_exact
from .solvers.regularized import DualSolver

__all__ = ["SweepResult", "SweepRow", "sweep"]

DEFAULT_EPS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One regularized solve of a sweep, compared with the reference (``nan`` without one).

    ``lower_bound`` is the certified bound of the solve (a lower bound on the exact optimum for a
    minimization, an upper bound for a maximization); ``bracket_low``/``bracket_high`` the
    certified bracket on the exact optimum and ``bracket_width`` its width (:mod:`cvxqreg.bounds`;
    ``feasible_bound`` is its end from a feasible state).
    """

    regularizer: str
    eps: float
    status: str
    value: float
    energy: float
    dual_value: float
    gap: float
    grad_norm: float
    lower_bound: float
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
    ("lower_bound", "cert. bound", "{:.10f}"),
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
class SweepResult:
    """Rows of a sweep, the reference solve and the full results.

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

    def to_markdown(self) -> str:
        """A Markdown table (with the reference value above it)."""
        lines = []
        if self.reference is not None:
            ref = self.reference
            lines.append(
                f"Reference F_0 = {ref.value:.10f} ({ref.solver}, status {ref.status}, "
                f"{ref.time:.2f} s)\n"
            )
        lines.append("| " + " | ".join(h.replace("|", "\\|") for _, h, _ in _COLUMNS) + " |")
        lines.append("|" + "|".join("---" for _ in _COLUMNS) + "|")
        for r in self.rows:
            lines.append("| " + " | ".join(_fmt(r, k, f) for k, _, f in _COLUMNS) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | None = None) -> str:
        """CSV text of all row fields; also written to ``path`` when given."""
        buf = io.StringIO()
        names = [f.name for f in dataclasses.fields(SweepRow)]
        w = csv.DictWriter(buf, fieldnames=names)
        w.writeheader()
        for r in self.rows:
            w.writerow(r.as_dict())
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as fh:
                fh.write(text)
        return text

    def to_json(self, path: str | None = None) -> str:
        """JSON text (rows, reference summary); also written to ``path`` when given."""
        ref = None
        if self.reference is not None:
            r = self.reference
            ref = {"solver": r.solver, "status": r.status, "value": r.value, "time": r.time}
        text = json.dumps(
            {"reference": ref, "rows": [_jsonable(r.as_dict()) for r in self.rows]}, indent=2
        )
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text)
        return text

    def __str__(self) -> str:
        head = [h for _, h, _ in _COLUMNS]
        body = [[_fmt(r, k, f) for k, _, f in _COLUMNS] for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        out = []
        if self.reference is not None:
            ref = self.reference
            out.append(f"Reference F_0 = {ref.value:.10f} ({ref.solver}, {ref.status})")
        out.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        out.append("  ".join("-" * w for w in widths))
        for b in body:
            out.append("  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)))
        return "\n".join(out)


def _fmt(row: SweepRow, key: str, fmt: str) -> str:
    v = getattr(row, key)
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return fmt.format(v)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def sweep(
    problem,
    eps: Sequence[float] = DEFAULT_EPS,
    regularizers: Sequence[Any] = ("von_neumann", "quadratic"),
    reference: str | ExactResult | None = "scs",
    *,
    backend="auto",
    tol: float = 1e-6,
    max_iter: int = 10000,
    time_limit: float | None = None,
    warm_start: bool = True,
    progress: Callable[[str, float, RegularizedResult], None] | None = None,
) -> SweepResult:
    """Solve the regularized problem over an eps grid for several regularizers and compare.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
    eps : sequence of float
        The grid (any order; solved from the largest down, warm-started).
    regularizers : sequence of str or Regularizer
    reference : {"scs", "clarabel"}, ExactResult or None
        How to get ``F_0``: solve with that conic solver, reuse a result, or skip.
    backend, tol, max_iter, time_limit
        Passed to :class:`~cvxqreg.DualSolver` for every solve.
    warm_start : bool
        Start each solve from the previous eps's dual vector.
    progress : callable, optional
        ``progress(regularizer_name, eps, result)`` after each solve.

    Returns
    -------
    SweepResult
    """
    if isinstance(problem, LoweredProblem):
        lp = problem
    else:
        from .lowering import lower

        lp = lower(problem)
    grid = sorted({_check_eps(e) for e in eps}, reverse=True)
    if not grid:
        raise InvalidInputError("eps must list at least one value > 0")
    regs = [get_regularizer(r) for r in regularizers]
    if not regs:
        raise InvalidInputError("regularizers must list at least one regularizer")
    if reference is None or isinstance(reference, ExactResult):
        ref = reference
    elif isinstance(reference, str):
        ref = solve_exact(lp, reference)
    else:
        raise InvalidInputError(
            f"reference must be 'scs', 'clarabel', an ExactResult or None, got {reference!r}"
        )
    have_ref = ref is not None and ref.X is not None
    F0 = ref.value if have_ref else math.nan

    rows, results = [], []
    for reg in regs:
        solver = DualSolver(reg, backend=backend, tol=tol, max_iter=max_iter, time_limit=time_limit)
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
            if progress is not None:
                progress(reg.name, e, res)
    return SweepResult(rows=tuple(rows), reference=ref, results=tuple(results))


def _row(res: RegularizedResult, ref: ExactResult | None, F0: float) -> SweepRow:
    if ref is not None:
        dX = res.X - ref.X
        state_distance = float(np.abs(np.linalg.eigvalsh(0.5 * (dX + dX.conj().T))).sum())
        dual_distance = float(np.linalg.norm(res.alpha - ref.alpha))
        verr, eerr = abs(res.value - F0), abs(res.energy - F0)
    else:
        state_distance = dual_distance = verr = eerr = math.nan
    return SweepRow(
        regularizer=res.regularizer,
        eps=res.eps,
        status=res.status,
        value=res.value,
        energy=res.energy,
        dual_value=res.dual_value,
        gap=res.gap,
        grad_norm=res.grad_norm,
        lower_bound=res.certified_bound,
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
