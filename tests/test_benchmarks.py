"""The benchmark scripts run (a fast subset; the measured tables live in benchmarks/results/)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_tables_tiny(tmp_path, capsys):
    out = tmp_path / "tables.md"
    load("paper_tables").main(
        [
            "--scale",
            "tiny",
            "--instances",
            "QT1",
            "QWD",
            "--eps",
            "1e1",
            "1e-2",
            "--tols",
            "1e-3",
            "--max-iter",
            "500",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert "## QT1" in text and "## QWD" in text and "Total time" in text
    rows = [
        ln for ln in text.splitlines() if ln.startswith("| von_neumann") or ln.startswith("| quad")
    ]
    assert len(rows) == 2 * 2 * 2  # instances x regularizers x eps
    assert all(r.count("|") >= 11 for r in rows)
    assert "Yes" in text


def test_oracle_cost_small(tmp_path):
    out = tmp_path / "cost.md"
    load("oracle_cost").main(["--sizes", "16", "--repeats", "2", "--out", str(out)])
    text = out.read_text()
    for structure in ("pauli", "partial_trace", "dense"):
        assert f"| {structure}" in text


@pytest.mark.slow
def test_elimination_benchmark(tmp_path):
    out = tmp_path / "elim.md"
    load("elimination").main(["--eps", "1", "--out", str(out)])
    assert out.read_text().count("converged") >= 8


def test_optimizers_benchmark_small(tmp_path):
    out = tmp_path / "opt.md"
    load("optimizers").main(
        ["--instances", "IM", "--regularizers", "quadratic", "--eps", "1e-2", "--out", str(out)]
    )
    row = [ln for ln in out.read_text().splitlines() if ln.startswith("| IM |")]
    assert len(row) == 1 and row[0].count("converged") == 3  # all three configurations


def test_bounded_dual_small(tmp_path):
    out = tmp_path / "bounded.md"
    rows = load("bounded_dual").main(["--qubits", "2", "--eps", "1e-3", "--out", str(out)])
    assert out.read_text().count("| QTI n=2 |") == 2
    assert all(r["status"] == "converged" and abs(r["err"]) < 1e-5 for r in rows)


def test_block_eigh_small(tmp_path):
    out = tmp_path / "blocks.md"
    rows = load("block_eigh").main(["--cases", "3x8", "--repeats", "1", "--out", str(out)])
    assert "| 3 | 8 | 24 |" in out.read_text()
    assert rows[0]["blocks"] > 0 and rows[0]["full"] > 0
