"""Figures of the zero-temperature comparison and of the dual solver's convergence.

Two functions, both returning a :class:`matplotlib.figure.Figure` and optionally saving it:

* :func:`plot_zero_temperature` -- the errors of a :func:`cvxqreg.sweep` against ``eps`` (log-log):
  ``|F_eps - F_0|``, ``|Tr[H X_eps] - F_0|`` and the gap between ``F_0`` and the certified bound,
  one colour per regularizer and one line style per quantity.
* :func:`plot_convergence` -- the per-iteration history of the dual solves (the paper's convergence
  figures): ``||grad D_eps(alpha_k)||_2`` or ``|D_eps(alpha_k) - d*|`` against the iteration, one
  panel per ``eps``.

Matplotlib is an optional dependency (``pip install 'cvxqreg[plot]'``); it is imported only when a
function here is called. Without a display, the non-interactive Agg backend is selected.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import MissingDependencyError
from .results import RegularizedResult, Status
from .sweep import SweepResult

__all__ = ["MissingDependencyError", "plot_convergence", "plot_zero_temperature"]

INSTALL_HINT = "pip install 'cvxqreg[plot]'"

#: Line style and marker of each quantity of :func:`plot_zero_temperature`.
_QUANTITY_STYLE = {
    "value_error": ("-", "o", r"$|F_\varepsilon - F_0|$"),
    "energy_error": ("--", "s", r"$|\mathrm{Tr}[H X_\varepsilon] - F_0|$"),
    "certified_gap": (":", "^", r"$|F_0 - \mathrm{certified\ bound}|$"),
    "bracket_width": ("-.", "D", "bracket width"),
}

_NICE_NAMES = {"von_neumann": "von Neumann", "quadratic": "quadratic"}


def _pyplot():
    """Import ``matplotlib.pyplot``, choosing Agg when no display is available."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(
            f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None
    headless = (
        sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    )
    if headless and "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _nice(name: str) -> str:
    return _NICE_NAMES.get(name, name)


def _colors(names: Sequence[str]) -> dict[str, str]:
    """One colour of the default cycle per regularizer, in order of first appearance."""
    out: dict[str, str] = {}
    for n in names:
        if n not in out:
            out[n] = f"C{len(out) % 10}"
    return out


def _positive(y: np.ndarray) -> np.ndarray:
    """``y`` with non-finite and non-positive entries masked (not drawable on a log axis)."""
    y = np.asarray(y, dtype=float)
    return np.where(np.isfinite(y) & (y > 0), y, np.nan)


def _save(fig, path) -> None:
    if path is not None:
        fig.savefig(os.fspath(path), dpi=150, bbox_inches="tight")


def _row_quantity(row, key: str, F0: float) -> float:
    if key == "value_error":
        return row.value_error
    if key == "energy_error":
        return row.energy_error
    if key == "certified_gap":
        return abs(F0 - row.certified_bound) if math.isfinite(F0) else math.nan
    if key == "bracket_width":
        # the upper end is reported for converged solves only; otherwise the distance from the
        # certified bound to the energy of the last iterate (drawn hollow)
        if math.isfinite(row.bracket_high):
            return row.bracket_high - row.bracket_low
        return abs(row.energy - row.certified_bound)
    raise ValueError(f"unknown quantity {key!r}")


def _hollow_handle(label: str):
    """Legend entry for the hollow markers of non-converged solves."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none", marker="o", mfc="white", mec="0.2", mew=1.5, label=label)


def plot_zero_temperature(
    sweep_result: SweepResult,
    ax=None,
    path=None,
    *,
    quantities: Sequence[str] | None = None,
    guide: bool = True,
    title: str | None = None,
):
    """Show how the regularized solutions approach the exact optimum as ``eps -> 0`` (log-log).

    For every regularizer of the sweep (one colour each) and every quantity (one line style each)
    the values are drawn against ``eps``. Solves whose status is not ``"converged"`` get hollow
    markers, and the legend says so. For von Neumann regularization the guide line
    ``eps log D`` (the width of its regularization bracket, see :mod:`cvxqreg.bounds`) is drawn in
    grey.

    Parameters
    ----------
    sweep_result : SweepResult
        The output of :func:`cvxqreg.sweep`.
    ax : matplotlib.axes.Axes, optional
        Draw into this axes (its legend goes inside it); a new figure otherwise (legend outside).
    path : str or path-like, optional
        Save the figure there; the format follows the suffix (``.png``, ``.pdf``, ``.svg``, ...).
    quantities : sequence of str, optional
        Any of ``"value_error"`` (``|F_eps - F_0|``), ``"energy_error"`` (``|Tr[H X_eps] - F_0|``),
        ``"certified_gap"`` (``|F_0 - certified bound|``) and ``"bracket_width"``. Default: the
        first three when the sweep has a reference ``F_0``, only ``"bracket_width"`` without one.
    guide : bool
        Draw the ``eps log D`` line when von Neumann is among the regularizers (not together
        with ``"bracket_width"``, whose von Neumann line it would duplicate).
    title : str, optional
        Axes title; by default one naming ``F_0`` and ``D``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    MissingDependencyError
        When matplotlib is not installed.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    if not isinstance(sweep_result, SweepResult):
        raise TypeError(
            f"plot_zero_temperature needs a SweepResult (from cvxqreg.sweep), "
            f"got {type(sweep_result).__name__}"
        )
    F0 = sweep_result.reference_value
    have_ref = math.isfinite(F0)
    if quantities is None:
        quantities = (
            ("value_error", "energy_error", "certified_gap") if have_ref else ("bracket_width",)
        )
    for q in quantities:
        if q not in _QUANTITY_STYLE:
            raise ValueError(f"unknown quantity {q!r}; choose from {sorted(_QUANTITY_STYLE)}")

    own_figure = ax is None
    if own_figure:
        fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    else:
        fig = ax.figure

    names = [r.regularizer for r in sweep_result.rows]
    colors = _colors(names)
    any_hollow = False
    unconverged: set[str] = set()
    for name, color in colors.items():
        rows = sorted(sweep_result.for_regularizer(name), key=lambda r: r.eps)
        eps = np.array([r.eps for r in rows])
        ok = np.array([r.status == Status.CONVERGED for r in rows], dtype=bool)
        unconverged.update(r.status for r in rows if r.status != Status.CONVERGED)
        for q in quantities:
            ls, marker, _ = _QUANTITY_STYLE[q]
            y = _positive([_row_quantity(r, q, F0) for r in rows])
            ax.plot(eps, y, ls=ls, color=color, lw=1.5)
            ax.plot(eps[ok], y[ok], ls="none", marker=marker, color=color, ms=5.5)
            if np.any(~ok & np.isfinite(y)):
                any_hollow = True
                ax.plot(
                    eps[~ok],
                    y[~ok],
                    ls="none",
                    marker=marker,
                    ms=6.5,
                    mfc="white",
                    mec=color,
                    mew=1.5,
                )

    dim = _dimension(sweep_result)
    show_guide = (
        guide
        and "von_neumann" in colors
        and dim is not None
        and dim > 1
        and "bracket_width" not in quantities  # von Neumann's bracket width *is* eps log D
    )
    if show_guide:
        e = np.array(sorted({r.eps for r in sweep_result.rows}))
        ax.plot(e, e * math.log(dim), color="0.55", lw=1.0, ls=(0, (1, 2)), zorder=0)

    ax.set_xscale("log")
    plotted = [ln.get_ydata() for ln in ax.get_lines()]
    if any(np.any(np.isfinite(y) & (np.asarray(y) > 0)) for y in plotted):
        ax.set_yscale("log")
    else:  # nothing to show on a log axis (e.g. every solve failed): say so, keep a linear axis
        ax.text(0.5, 0.5, "no finite positive values", transform=ax.transAxes, ha="center")
    ax.set_xlabel(r"regularization $\varepsilon$")
    ax.set_ylabel("error / gap")
    ax.grid(True, which="major", alpha=0.3)
    if title is None:
        parts = []
        if have_ref:
            ref = sweep_result.reference
            parts.append(f"$F_0$ = {F0:.8g} ({ref.solver})")
        else:
            parts.append("no exact reference")
        if dim is not None:
            parts.append(f"D = {dim}")
        title = "Zero-temperature limit: " + ", ".join(parts)
    ax.set_title(title, fontsize=10)

    handles = [Line2D([], [], color=c, lw=2, label=_nice(n)) for n, c in colors.items()]
    for q in quantities:
        ls, marker, label = _QUANTITY_STYLE[q]
        handles.append(Line2D([], [], color="0.2", ls=ls, marker=marker, ms=5, label=label))
    if show_guide:
        handles.append(
            Line2D([], [], color="0.55", lw=1.0, ls=(0, (1, 2)), label=r"$\varepsilon\,\log D$")
        )
    if any_hollow:
        handles.append(
            _hollow_handle("hollow: not converged\n(" + ", ".join(sorted(unconverged)) + ")")
        )
    if own_figure:
        fig.legend(handles=handles, loc="outside right upper", fontsize=9, frameon=False)
    else:
        ax.legend(handles=handles, fontsize=8, loc="best")
    _save(fig, path)
    return fig


def _dimension(sweep_result: SweepResult) -> int | None:
    for res in sweep_result.results:
        if res.X is not None:
            return int(np.shape(res.X)[0])
    if sweep_result.reference is not None and sweep_result.reference.X is not None:
        return int(np.shape(sweep_result.reference.X)[0])
    return None


def _group_by_eps(results) -> dict[float, list[RegularizedResult]]:
    """``{eps: [results]}`` from a SweepResult, a mapping or a flat sequence of results."""
    groups: dict[float, list[RegularizedResult]] = {}

    def add(res, key=None):
        if not isinstance(res, RegularizedResult):
            raise TypeError(
                f"expected RegularizedResult objects, got {type(res).__name__}; pass a "
                "SweepResult, a sequence of results or a mapping {eps: result(s)}"
            )
        groups.setdefault(float(res.eps if key is None else key), []).append(res)

    if isinstance(results, SweepResult):
        for r in results.results:
            add(r)
    elif isinstance(results, RegularizedResult):
        add(results)
    elif isinstance(results, Mapping):
        for key, val in results.items():
            if isinstance(val, RegularizedResult):
                add(val, key)
            elif isinstance(val, Mapping):
                for r in val.values():
                    add(r, key)
            else:
                for r in val:
                    add(r, key)
    else:
        for r in results:
            add(r)
    if not groups:
        raise ValueError("no results to plot")
    return dict(sorted(groups.items(), key=lambda kv: -kv[0]))


def _target(reference_value: Any, res: RegularizedResult) -> float:
    """``d*`` for one result: the given value (float, or a mapping by (regularizer, eps) / eps),
    else the final dual value of the solve."""
    if reference_value is None:
        return float(res.dual_value)
    if isinstance(reference_value, Mapping):
        for key in ((res.regularizer, res.eps), res.eps, res.regularizer):
            if key in reference_value:
                return float(reference_value[key])
        return float(res.dual_value)
    return float(reference_value)


def plot_convergence(
    results_by_eps,
    quantity: str = "grad_norm",
    reference_value=None,
    path=None,
    *,
    x: str = "iteration",
    ncols: int | None = None,
    show_tol: bool = True,
):
    """Show the dual solver's progress per iteration: one panel per ``eps``, log-scale y.

    As in the convergence figures of [CGMPP]: the gradient norm ``||grad D_eps(alpha_k)||_2`` (the
    primal residual; used for tomography) or the dual gap ``|D_eps(alpha_k) - d*|`` (used for
    transport) against the iteration ``k``, every regularizer of a panel drawn together (von
    Neumann and quadratic, one colour each). The last point of a solve that did not converge is
    drawn as a hollow circle.

    Parameters
    ----------
    results_by_eps : SweepResult, mapping or sequence
        A :class:`~cvxqreg.sweep.SweepResult` (its results are grouped by ``eps``); a mapping
        ``{eps: result}``, ``{eps: [results]}`` or ``{eps: {regularizer: result}}``; or a sequence
        of :class:`~cvxqreg.results.RegularizedResult` (grouped by their ``eps``).
    quantity : {"grad_norm", "dual_gap"}
        What to draw on the y axis.
    reference_value : float or mapping, optional
        ``d*`` for ``"dual_gap"``: one number for every solve, or a mapping keyed by
        ``(regularizer, eps)`` or by ``eps``. Default: the final dual value of each solve (whose
        own last point is then 0 and not drawn).
    path : str or path-like, optional
        Save the figure there (format from the suffix).
    x : {"iteration", "time"}
        The x axis: iteration index or wall time in seconds.
    ncols : int, optional
        Panels per row (default: up to 3).
    show_tol : bool
        With ``"grad_norm"``, draw the stopping tolerance as a grey horizontal line.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per ``eps``, largest ``eps`` first.

    Raises
    ------
    MissingDependencyError
        When matplotlib is not installed.
    """
    if quantity not in ("grad_norm", "dual_gap"):
        raise ValueError(f"quantity must be 'grad_norm' or 'dual_gap', got {quantity!r}")
    if x not in ("iteration", "time"):
        raise ValueError(f"x must be 'iteration' or 'time', got {x!r}")
    plt = _pyplot()
    from matplotlib.lines import Line2D

    groups = _group_by_eps(results_by_eps)
    n = len(groups)
    ncols = min(n, 3) if ncols is None else max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(3.9 * ncols + 0.4, 3.0 * nrows + 0.5),
        layout="constrained",
        squeeze=False,
    )
    flat = list(axes.ravel())
    for extra in flat[n:]:
        extra.remove()
    colors = _colors([r.regularizer for rs in groups.values() for r in rs])
    any_hollow = False
    tols: set[float] = set()
    for ax, (eps, rs) in zip(flat, groups.items(), strict=False):
        for res in rs:
            h = res.history
            xs = np.asarray(h.iteration if x == "iteration" else h.time, dtype=float)
            if quantity == "grad_norm":
                y = _positive(h.grad_norm)
                tols.add(float(res.tol))
            else:
                y = _positive(
                    np.abs(np.asarray(h.dual_value, dtype=float) - _target(reference_value, res))
                )
            color = colors[res.regularizer]
            ax.plot(xs, y, color=color, lw=1.4)
            if not res.converged and len(xs):
                last = np.flatnonzero(np.isfinite(y))
                if last.size:
                    i = last[-1]
                    any_hollow = True
                    ax.plot(
                        xs[i], y[i], ls="none", marker="o", ms=6, mfc="white", mec=color, mew=1.5
                    )
        if quantity == "grad_norm" and show_tol:
            for t in sorted({float(r.tol) for r in rs}):
                ax.axhline(t, color="0.55", lw=0.9, ls="--", zorder=0)
        ax.set_yscale("log")
        ax.set_title(rf"$\varepsilon$ = {eps:.0e}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    ylabel = (
        r"$\|\nabla D_\varepsilon(\alpha_k)\|_2$"
        if quantity == "grad_norm"
        else r"$|D_\varepsilon(\alpha_k) - d^*|$"
    )
    xlabel = "iteration $k$" if x == "iteration" else "time [s]"
    for i, ax in enumerate(flat[:n]):
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
        if i + ncols >= n:  # bottom panel of its column
            ax.set_xlabel(xlabel)

    handles = [Line2D([], [], color=c, lw=2, label=_nice(nm)) for nm, c in colors.items()]
    if quantity == "grad_norm" and show_tol and tols:
        tol_txt = ", ".join(f"{t:.0e}" for t in sorted(tols))
        handles.append(Line2D([], [], color="0.55", lw=0.9, ls="--", label=f"tol = {tol_txt}"))
    if quantity == "dual_gap":
        d_label = "final $D_\\varepsilon$" if reference_value is None else "given value"
        handles.append(Line2D([], [], ls="none", label=f"$d^*$ = {d_label}"))
    if any_hollow:
        handles.append(_hollow_handle("not converged (last iterate)"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 4),
        fontsize=9,
        frameon=False,
    )
    what = "gradient norm" if quantity == "grad_norm" else "dual gap"
    fig.suptitle(f"Dual {_optimizer_name(groups)} convergence: {what} per iteration", fontsize=11)
    _save(fig, path)
    return fig


def _optimizer_name(groups) -> str:
    """The optimizer(s) that produced the plotted results, as named in their ``extras``."""
    names = {
        str(r.extras.get("optimizer", "")).split(" ")[0]
        for rs in groups.values()
        for r in rs
        if getattr(r, "extras", None)
    }
    nice = {"newton": "Newton", "lbfgs": "L-BFGS", "scipy": "SciPy L-BFGS-B"}
    found = [nice.get(n, n) for n in sorted(names) if n]
    return " / ".join(found) if found else "solver"
