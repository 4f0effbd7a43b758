"""Figures of cvxqreg.plotting on small hand-built problems (no CVXPY lowering needed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cvxqreg import CvxqregError  # noqa: E402
from cvxqreg.plotting import (  # noqa: E402
    MissingDependencyError,
    plot_convergence,
    plot_zero_temperature,
)
from cvxqreg.sweep import sweep  # noqa: E402

from .conftest import qot_problem  # noqa: E402

EPS = (1.0, 1e-1, 1e-2)


@pytest.fixture(scope="module")
def swept():
    """A converged sweep of a 2x2 quantum optimal transport problem, SCS reference."""
    P, _, _ = qot_problem(np.random.default_rng(7), n=2)
    return sweep(P, eps=EPS, backend="numpy", tol=1e-6)


@pytest.fixture(scope="module")
def unconverged():
    """The same problem with an iteration cap of 2: every row ends with status max_iter."""
    P, _, _ = qot_problem(np.random.default_rng(7), n=2)
    return sweep(P, eps=EPS, regularizers=["von_neumann"], backend="numpy", max_iter=2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawn_lines(ax):
    """Lines with a visible line style (not marker-only overlays)."""
    return [ln for ln in ax.get_lines() if ln.get_linestyle() not in ("None", "none", "")]


def _legend_texts(fig):
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def test_sweep_fixture_converged(swept):
    assert all(r.status == "converged" for r in swept.rows)
    assert swept.reference is not None and swept.reference.optimal


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_zero_temperature_writes_file(swept, tmp_path, suffix):
    path = tmp_path / f"limit.{suffix}"
    fig = plot_zero_temperature(swept, path=path)
    assert path.is_file() and path.stat().st_size > 1000
    head = path.read_bytes()[:5]
    assert head.startswith(b"\x89PNG" if suffix == "png" else b"%PDF")
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # 2 regularizers x 3 quantities, plus the eps log D guide of von Neumann
    assert len(_drawn_lines(ax)) == 2 * 3 + 1
    texts = _legend_texts(fig)
    assert "von Neumann" in texts and "quadratic" in texts
    assert not any("not converged" in t for t in texts)


def test_zero_temperature_lines_follow_the_data(swept):
    fig = plot_zero_temperature(swept, guide=False, quantities=["value_error"])
    (ax,) = fig.axes
    lines = _drawn_lines(ax)
    assert len(lines) == 2
    by_color = {ln.get_color(): ln for ln in lines}
    vn = by_color["C0"]
    rows = sorted(swept.for_regularizer("von_neumann"), key=lambda r: r.eps)
    np.testing.assert_allclose(vn.get_xdata(), [r.eps for r in rows])
    np.testing.assert_allclose(vn.get_ydata(), [r.value_error for r in rows])


def test_zero_temperature_hollow_markers_for_unconverged(unconverged):
    assert all(r.status == "max_iter" for r in unconverged.rows)
    fig = plot_zero_temperature(unconverged)
    (ax,) = fig.axes
    hollow = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() in ("white", "w", "none")]
    assert len(hollow) == 3  # one per quantity
    assert any("not converged" in t and "max_iter" in t for t in _legend_texts(fig))


def test_zero_temperature_into_given_axes_and_without_reference(swept):
    no_ref = sweep(
        qot_problem(np.random.default_rng(7), n=2)[0],
        eps=(1.0, 0.1),
        reference=None,
        backend="numpy",
    )
    fig, (a1, a2) = plt.subplots(1, 2)
    out = plot_zero_temperature(swept, ax=a1)
    assert out is fig and a1.get_legend() is not None
    plot_zero_temperature(no_ref, ax=a2)
    assert "no exact reference" in a2.get_title()
    # without F_0 only the bracket width can be drawn: for von Neumann on unit-trace states the
    # lower end is at least D_eps, the upper end the energy of a feasible state near X_eps, so the
    # width is about Tr[H X] - D_eps = eps S(X_eps) <= eps log D, plus the cost of feasibility
    assert len(_drawn_lines(a2)) == 2
    vn = next(ln for ln in _drawn_lines(a2) if ln.get_color() == "C0")
    eps = np.asarray(vn.get_xdata())
    rows = sorted(no_ref.for_regularizer("von_neumann"), key=lambda r: r.eps)
    widths = [r.bracket_high - r.bracket_low for r in rows]
    np.testing.assert_allclose(vn.get_ydata(), widths, rtol=1e-12)
    extra = np.array([r.bracket_high - r.energy for r in rows])
    assert np.all(np.asarray(vn.get_ydata()) <= eps * np.log(4) + np.maximum(extra, 0) + 1e-12)
    assert any("bracket width" in t for t in _legend_texts(fig))


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_convergence_writes_file(swept, tmp_path, suffix):
    path = tmp_path / f"conv.{suffix}"
    fig = plot_convergence(swept, path=path)
    assert path.is_file() and path.stat().st_size > 1000
    assert len(fig.axes) == len(EPS)  # one panel per eps, unused grid cells removed
    for ax, eps in zip(fig.axes, sorted(EPS, reverse=True), strict=True):
        assert ax.get_yscale() == "log"
        assert f"{eps:.0e}" in ax.get_title()
        # von Neumann and quadratic histories plus the tolerance line
        assert len(_drawn_lines(ax)) == 2 + 1


def test_convergence_dual_gap_and_input_forms(swept, unconverged):
    by_eps = {}
    for r in swept.results:
        by_eps.setdefault(r.eps, {})[r.regularizer] = r
    fig = plot_convergence(by_eps, quantity="dual_gap", ncols=2)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(_drawn_lines(ax)) == 2  # no tolerance line for the dual gap
    vn = next(r for r in swept.results if r.regularizer == "von_neumann" and r.eps == 1.0)
    line = next(ln for ln in _drawn_lines(fig.axes[0]) if ln.get_color() == "C0")
    expected = np.abs(vn.history.dual_value - vn.dual_value)
    shown = np.asarray(line.get_ydata(), dtype=float)
    ok = expected > 0
    np.testing.assert_allclose(shown[ok], expected[ok])

    # a flat list, and a fixed d*: every point is drawn
    fig = plot_convergence(list(unconverged.results), "dual_gap", reference_value=1e3)
    assert len(fig.axes) == 3
    assert any("not converged" in t for t in _legend_texts(fig))

    single = plot_convergence({0.5: swept.results[0]}, x="time")
    assert len(single.axes) == 1 and "time" in single.axes[0].get_xlabel()


def test_convergence_rejects_bad_arguments(swept):
    with pytest.raises(ValueError, match="grad_norm"):
        plot_convergence(swept, quantity="energy")
    with pytest.raises(ValueError, match="no results"):
        plot_convergence({})
    with pytest.raises(TypeError, match="RegularizedResult"):
        plot_convergence([1.0, 2.0])
    with pytest.raises(TypeError, match="SweepResult"):
        plot_zero_temperature(list(swept.results))
    with pytest.raises(ValueError, match="unknown quantity"):
        plot_zero_temperature(swept, quantities=["nope"])


def test_missing_matplotlib_message(swept, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cvxqreg\[plot\]'") as info:
        plot_zero_temperature(swept)
    assert isinstance(info.value, CvxqregError) and isinstance(info.value, ImportError)
    with pytest.raises(MissingDependencyError):
        plot_convergence(swept)
