"""Quantum optimal transport is cheaper: the two-point examples of Caglioti, Golse and Paul.

Two mixtures of coherent states on the line, ``R = (1+eta)/2 |a><a| + (1-eta)/2 |-a><-a|`` and
``S = (|b><b| + |-b><-b|)/2`` (width ``hbar``), are coupled at the quadratic cost
``(x - y)^2 + (p - p')^2 - 2 hbar`` (:func:`cvxqreg.problems.two_point`, a 4 x 4 SDP). Classically
the monotone plan moves mass ``eta/2`` from ``+a`` to ``-b`` and costs ``(a - b)^2 + 2 eta a b``.
With equal masses (``eta = 0``) the quantum cost equals the classical one, ``(a - b)^2``; with
``a = b`` and ``eta > 0`` the quantum optimum is strictly smaller [CGP, eq. (21)], and the saving
vanishes as ``hbar -> 0`` (the semiclassical limit).

For every ``(hbar, eta)`` of two one-parameter scans (``eta`` at ``hbar = 1``, then ``hbar`` at
``eta = 0.5``) the script solves the exact SDP with SCS (:func:`cvxqreg.solve_exact`) and the
von Neumann-regularized problem at each ``eps`` (:func:`cvxqreg.solve`, warm-started down the eps
ladder). For a unit-trace problem on ``C^4`` the regularized optimum satisfies
``F_0 - eps log 4 <= F_eps <= F_0``, so the regularized values approach the SCS value from below.

What it prints:

1. the equal-mass check ``a = 1, b = 2``: classical cost, quantum cost (SCS) and their difference;
2. one table per scan with columns ``hbar``, ``eta``, ``classical`` (the classical cost),
   ``quantum F_0`` (SCS), ``saving`` (classical minus quantum), one column ``F_eps`` per eps
   (regularized optimum; ``*`` marks a solve that did not converge) and ``|F_eps-F_0|`` at the
   smallest eps;
3. the line ``F_0 - eps log 4 <= F_eps <= F_0 ...`` with the bracket width ``eps log 4`` for each
   eps;
4. where the plot went: cost against ``eta`` and against ``hbar`` (PNG, written when matplotlib is
   installed, to ``--out PATH`` or by default ``qot_is_cheaper.png`` in a ``cvxqreg-examples``
   folder of the system's temporary directory, never into the current directory unasked;
   ``--no-plot`` skips it).

``main`` returns ``{"equal_mass": {...}, "rows": [...], "plot": path or None}``, one row (a dict)
per ``(hbar, eta)`` point.

Run ``python examples/qot_is_cheaper.py`` (about ten seconds) or ``--small`` (a few points).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile

import cvxqreg
from cvxqreg import problems

ETAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
HBARS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
EPS = (1e-1, 1e-2, 1e-3)


def solve_point(a: float, b: float, hbar: float, eta: float, eps_values) -> dict:
    """Classical cost, exact quantum cost (SCS) and regularized values for one instance.

    Returns
    -------
    dict
        ``hbar``, ``eta``, ``classical``, ``quantum`` (SCS value), ``scs_status``, ``saving``
        (classical minus quantum), ``eps`` (tuple), ``F_eps`` (tuple, one per eps), ``status``
        (tuple of the regularized statuses) and ``error`` (``|F_eps - F_0|`` at the smallest eps).
    """
    inst = problems.two_point(a, b, hbar, eta)
    lowered = cvxqreg.lower(inst.problem)
    exact = cvxqreg.solve_exact(lowered)
    values, statuses, alpha = [], [], None
    for eps in sorted(eps_values, reverse=True):
        res = cvxqreg.solve(lowered, eps, "von_neumann", backend="numpy", alpha0=alpha)
        alpha = res.alpha  # warm start the next, smaller eps
        values.append(res.value)
        statuses.append(res.status)
    classical = inst.metadata["classical_cost"]
    return {
        "hbar": hbar,
        "eta": eta,
        "classical": classical,
        "quantum": exact.value,
        "scs_status": exact.status,
        "saving": classical - exact.value,
        "eps": tuple(sorted(eps_values, reverse=True)),
        "F_eps": tuple(values),
        "status": tuple(statuses),
        "error": abs(values[-1] - exact.value),
    }


def format_table(rows) -> str:
    """The rows of one scan as an aligned text table."""
    eps = rows[0]["eps"]
    head = ["hbar", "eta", "classical", "quantum F_0", "saving"]
    head += [f"F_eps({e:.0e})" for e in eps] + [f"|F_eps-F_0|({eps[-1]:.0e})"]
    body = []
    for r in rows:
        cells = [
            f"{r['hbar']:g}",
            f"{r['eta']:g}",
            f"{r['classical']:.6f}",
            f"{r['quantum']:.6f}",
            f"{round(r['saving'], 6) + 0.0:.6f}",  # + 0.0: no "-0.000000"
        ]
        for v, st in zip(r["F_eps"], r["status"], strict=True):
            cells.append(f"{v:.6f}" + ("" if st == "converged" else "*"))
        cells.append(f"{r['error']:.2e}")
        body.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) for cells in body]
    return "\n".join(lines)


def plot(eta_rows, hbar_rows, path: str, a: float = 1.0) -> str | None:
    """Cost against eta and against hbar; returns the path, or ``None`` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_eta, ax_hbar = fig.subplots(1, 2)
    for ax, rows, key in ((ax_eta, eta_rows, "eta"), (ax_hbar, hbar_rows, "hbar")):
        x = [r[key] for r in rows]
        ax.plot(x, [r["classical"] for r in rows], "k-", label="classical")
        ax.plot(x, [r["quantum"] for r in rows], "o-", color="C0", label="quantum (SCS)")
        for j, eps in enumerate(rows[0]["eps"]):
            y = [r["F_eps"][j] for r in rows]
            ax.plot(x, y, "--", color=f"C{j + 1}", label=f"regularized, eps={eps:g}")
        ax.set_ylabel("transport cost")
    ax_eta.set_xlabel("mass imbalance eta")
    ax_eta.set_title(f"a = b = {a:g}, hbar = {eta_rows[0]['hbar']:g}")
    ax_hbar.set_xlabel("hbar")
    ax_hbar.set_xscale("log")
    ax_hbar.set_title(f"eta = {hbar_rows[0]['eta']:g}")
    ax_hbar.legend(fontsize="small")
    fig.savefig(path, dpi=120)
    return path


def main(argv=None) -> dict:
    """Run the scans, print the tables, save the plot; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", type=float, default=1.0, help="position of the points +-a = +-b")
    ap.add_argument("--eps", type=float, nargs="+", default=list(EPS))
    ap.add_argument("--small", action="store_true", help="three eta and two hbar values")
    ap.add_argument(
        "--out",
        "--plot",
        dest="plot",
        default=None,
        help="where to save the PNG (default: <temp dir>/cvxqreg-examples/qot_is_cheaper.png)",
    )
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    a = args.a
    etas, hbars = ((0.0, 0.5, 0.9), (0.1, 1.0)) if args.small else (ETAS, HBARS)

    eq = solve_point(a, 2 * a, 1.0, None, args.eps)
    print(f"Equal masses, a = {a:g}, b = {2 * a:g}, hbar = 1:")
    print(
        f"  classical (a-b)^2 = {eq['classical']:.10f}   quantum (SCS) = {eq['quantum']:.10f}   "
        f"difference = {eq['saving']:.2e}   -> not cheaper"
    )

    eta_rows = [solve_point(a, a, 1.0, eta, args.eps) for eta in etas]
    print(f"\nUnequal masses, a = b = {a:g}, hbar = 1: cost against eta")
    print(format_table(eta_rows))
    hbar_rows = [solve_point(a, a, hbar, 0.5, args.eps) for hbar in hbars]
    print(f"\nUnequal masses, a = b = {a:g}, eta = 0.5: cost against hbar")
    print(format_table(hbar_rows))
    print(
        "\nF_0 - eps log 4 <= F_eps <= F_0 (von Neumann, unit trace, D = 4); "
        f"eps log 4 = {', '.join(f'{e * math.log(4):.1e}' for e in sorted(args.eps, reverse=True))}"
    )

    path = None
    if not args.no_plot:
        target = args.plot
        if target is None:
            folder = os.path.join(tempfile.gettempdir(), "cvxqreg-examples")
            os.makedirs(folder, exist_ok=True)
            target = os.path.join(folder, "qot_is_cheaper.png")
        path = plot(eta_rows, hbar_rows, target, a)
        print(f"plot: {path}" if path else "plot: skipped (matplotlib is not installed)")
    return {"equal_mass": eq, "rows": eta_rows + hbar_rows, "plot": path}


if __name__ == "__main__":
    main()
