"""The teaching examples in ``examples/`` run at their small size and print what they promise.

Each example is a script with ``main(argv=None)``; here it is imported from its file and run with
``--small`` in a temporary directory. The assertions check the printed report and the returned
data against the mathematics each example illustrates, not only that it ran.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAMES = [
    "qot_is_cheaper",
    "maxent_tomography",
    "noisy_tomography",
    "ising_marginals",
    "custom_regularizer",
    "tomography_error_bars",
    "multi_marginal_transport",
    "state_discrimination",
]


def load(name: str):
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.parametrize("name", NAMES)
def test_example_is_a_documented_script(name):
    source = (EXAMPLES / f"{name}.py").read_text()
    module = load(name)
    doc = module.__doc__ or ""
    assert "What it prints" in doc or "What it does and prints" in doc, name
    assert "--small" in doc, name
    assert callable(module.main)
    assert 'if __name__ == "__main__":\n    main()' in source


def test_qot_is_cheaper(capsys, tmp_path, monkeypatch):
    import tempfile

    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    out_png = tmp / "cvxqreg-examples" / "qot_is_cheaper.png"
    result = load("qot_is_cheaper").main(["--small"])
    assert list(cwd.iterdir()) == []  # nothing written into the current directory
    out = capsys.readouterr().out
    assert "-> not cheaper" in out and "cost against eta" in out and "cost against hbar" in out
    # equal masses: the quantum cost is the classical (a - b)^2 = 1
    eq = result["equal_mass"]
    assert eq["classical"] == pytest.approx(1.0, abs=1e-12)
    assert eq["quantum"] == pytest.approx(1.0, abs=1e-6)
    for row in result["rows"]:
        assert row["scs_status"] == "optimal"
        assert row["quantum"] <= row["classical"] + 1e-6  # never more expensive
        assert set(row["status"]) == {"converged"}
        # von Neumann on C^4, unit trace: F_0 - eps log 4 <= F_eps <= F_0 (up to tolerances)
        for eps, value in zip(row["eps"], row["F_eps"], strict=True):
            assert row["quantum"] - eps * math.log(4) - 1e-6 <= value <= row["quantum"] + 1e-6
        errors = [abs(v - row["quantum"]) for v in row["F_eps"]]
        assert errors == sorted(errors, reverse=True)  # approaching F_0 as eps decreases
    strict = [r for r in result["rows"] if r["eta"] == 0.5 and r["hbar"] == 1.0]
    assert strict and strict[0]["saving"] > 0.3  # strictly cheaper: 1 vs 0.6926
    semiclassical = [r for r in result["rows"] if r["hbar"] == 0.1]
    assert semiclassical and semiclassical[0]["saving"] < 1e-3  # the saving vanishes as hbar -> 0
    # every row of both tables is printed with its numbers
    for row in result["rows"]:
        assert f"{row['quantum']:.6f}" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result["plot"] is None and "skipped" in out
    else:
        assert result["plot"] == str(out_png) and out_png.stat().st_size > 1000
        assert f"plot: {out_png}" in out


def test_maxent_tomography(capsys):
    rows = load("maxent_tomography").main(["--small"])
    out = capsys.readouterr().out
    assert out.startswith("QT1 state on 2 qubits (D = 4)")
    assert [r["M"] for r in rows] == [3, 6, 15]
    for r in rows:
        assert set(r["statuses"]) == {"converged"}
        # Remark 6.2: with H = 0 the state does not depend on eps; the duals scale with eps
        assert r["dX_vn"] < 1e-5 and r["dX_quad"] < 1e-5
        assert r["dalpha_vn"] < 1e-4 and r["dalpha_quad"] < 1e-4
        # the true state is consistent with the data: max entropy / min purity bound it
        assert r["S_vn"] >= r["S_true"] - 1e-6
        assert r["P_quad"] <= r["P_true"] + 1e-6
        for key in ("F_vn", "F_quad", "F_scs"):
            assert 0.0 < r[key] <= 1.0 + 1e-6
    full = rows[-1]  # all 15 strings: the state is determined
    assert full["F_vn"] == pytest.approx(1.0, abs=1e-5)
    assert full["F_quad"] == pytest.approx(1.0, abs=1e-5)
    match = re.search(r"Remark 6\.2: max \|\|X_eps - X_eps'\|\|_1 over all rows = (\S+)", out)
    assert match and float(match.group(1)) < 1e-5
    assert "F(vN)" in out and "F(quad)" in out


def test_noisy_tomography(capsys):
    result = load("noisy_tomography").main(["--small"])
    out = capsys.readouterr().out
    by_r = {row["r"]: row for row in result["example_6_1"]}
    assert set(by_r) == {0.6, 1.0, 1.1}
    for r in (0.6, 1.0):  # inside and on the boundary of the Bloch disk
        assert by_r[r]["scs"] == "optimal"
        assert by_r[r]["von_neumann"]["status"] == "converged"
        assert by_r[r]["quadratic"]["status"] == "converged"
    # the only consistent state is pure; a Gibbs state gets there only as |alpha|/eps -> inf, so
    # lambda_min(X) is of the order of the residual tolerance
    assert 0.0 <= by_r[1.0]["von_neumann"]["lambda_min"] < 1e-5
    outside = by_r[1.1]
    assert outside["scs"] == "infeasible" and outside["cvxpy"] == "infeasible"
    for reg in ("von_neumann", "quadratic"):
        assert outside[reg]["status"] == "infeasible"
        assert "the constraints are infeasible" in outside[reg]["message"]
    # the certificate: the dual value exceeds the bound on F_eps over all states (0 for vN, H = 0)
    assert outside["von_neumann"]["dual_value"] > 1e-9
    assert outside["quadratic"]["dual_value"] > 1e-2 / 2
    assert "exceeds" in result["message"] and result["message"] in out
    noisy = {(r["shots"], r["shrink"]): r for r in result["shot_noise"]}
    assert noisy[(1000, 1.0)]["scs"] == "infeasible"
    assert noisy[(1000, 1.0)]["status"] == "infeasible"
    assert noisy[(1000, 0.9)]["scs"] == "optimal"
    assert noisy[(1000, 0.9)]["status"] == "converged"
    assert "Example 6.1" in out and "Shot noise" in out


def test_ising_marginals(capsys):
    result = load("ising_marginals").main(["--small"])
    out = capsys.readouterr().out
    assert set(result) == {"ground", "first_excited"}
    for level, r in result.items():
        assert "PartialTrace(dims=(2, 2), axis=1)" in r["describe"]
        assert r["lambda_0"] - 1e-6 <= r["F_0"] <= r["lambda_k"] + 1e-6, level
        rows = r["sweep"].rows
        assert {row.status for row in rows} == {"converged"}
        for row in rows:
            assert row.certified_bound <= r["F_0"] + 1e-6  # certified lower bound on F_0
        vn = r["sweep"].for_regularizer("von_neumann")
        assert vn[-1].value_error <= vn[-1].eps * math.log(4) + 1e-6
        assert vn[-1].value_error < vn[0].value_error
    assert result["ground"]["F_0"] == pytest.approx(result["ground"]["lambda_0"], abs=1e-6)
    assert out.count("lambda_0 <= F_0 <= lambda_k: True") == 2
    assert "IM(n_per_side=1, h=0.5, level=ground)" in out


def test_custom_regularizer(capsys):
    module = load("custom_regularizer")
    result = module.main(["--small"])
    out = capsys.readouterr().out
    fy = result["fenchel_young"]
    assert fy["violation"] <= 1e-12  # phi(x) + psi(t) >= t x
    assert fy["equality"] < 1e-12  # equality at x = psi'(t)
    assert fy["dpsi_error"] < 1e-6 and fy["d2psi_error"] < 1e-6
    res = result["solve"]
    assert res.regularizer == "fermi_dirac" and res.converged
    assert res.energy == pytest.approx(1.0, abs=1e-5)  # F_0 = (a - b)^2 = 1
    assert res.certified_bound <= 1.0 + 1e-8
    eig = np.linalg.eigvalsh(res.X)
    assert eig.min() > -1e-12 and eig.max() < 1 - 1e-3  # Fermi-Dirac occupations in [0, 1)
    table = result["sweep"]
    fd = table.for_regularizer("fermi_dirac")
    assert len(fd) == 2 and {row.status for row in fd} == {"converged"}
    assert fd[-1].value_error < fd[0].value_error
    assert "fermi_dirac eps=0.01: status=converged" in out
    assert "Fenchel-Young" in out and "Sweep:" in out


def test_tomography_error_bars(capsys):
    result = load("tomography_error_bars").main(["--small"])
    out = capsys.readouterr().out
    assert "Worst-case fidelity" in out and "maximum-entropy state" in out
    rows = result["rows"]
    for r in rows:
        assert r["status"] == "converged"
        # certified bound <= exact worst case <= the true state's fidelity (truth inside)
        assert r["bound"] <= r["exact"] + 1e-7
        if r["inside"]:
            assert r["exact"] <= r["true"] + 1e-7
        assert abs(r["reg"] - r["exact"]) < 1e-3
    # more shots: narrower intervals, a larger certified fidelity
    assert rows[-1]["delta"] < rows[0]["delta"] and rows[-1]["exact"] > rows[0]["exact"]
    assert result["maxent_status"] == "converged"
    assert 0 < result["maxent_entropy"] < math.log(result["dim"])


def test_multi_marginal_transport(capsys):
    result = load("multi_marginal_transport").main(["--small"])
    out = capsys.readouterr().out
    assert "PartialTrace(dims=(2, 2, 2), axis=(0, 2))" in out
    assert "Dense" not in result["structure"]
    assert abs(result["diagonal_exact"]) < 1e-6  # equal diagonal marginals: value 0
    for r in result["rows"]:
        assert r["status"] == "converged"
        assert r["bound"] <= r["exact"] + 1e-7
        assert r["exact"] <= r["product"] + 1e-7


def test_state_discrimination(capsys):
    result = load("state_discrimination").main(["--small"])
    out = capsys.readouterr().out
    assert "closed form" in out and "(3, 3, 3)" in out
    for r in result["rows"]:
        assert r["status"] == "converged"
        assert r["povm_error"] < 1e-7
        assert r["bound"] >= r["exact"] - 1e-7  # a maximization: the bound is an upper bound
        assert abs(r["reg"] - r["exact"]) < 1e-4
        if r["reference"] is not None:
            assert abs(r["exact"] - r["reference"]) < 1e-7
