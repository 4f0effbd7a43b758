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


def test_scaling_subset(tmp_path):
    out = tmp_path / "scaling.md"
    load("scaling").main(
        ["--families", "wasserstein", "--min-dim", "9", "--max-dim", "16", "--time-limit", "60"]
        + ["--out", str(out)]
    )
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| wasserstein")]
    assert [r.split("|")[2].strip() for r in rows] == ["9", "16"]
    assert "tomography" not in out.read_text().split("|---")[1]


def test_low_rank_products_small(tmp_path):
    out = tmp_path / "lr.md"
    load("low_rank_products").main(
        ["--sizes", "4", "--fractions", "0.25", "1.0", "--out", str(out)]
    )
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| partial")]
    assert len(rows) == 2  # the von Neumann table and the quadratic complement table
    # the relative differences in brackets are at rounding level (single precision's last)
    diffs = [float(c.split("(")[1].rstrip(") ")) for c in rows[0].split("|")[4:7]]
    assert max(diffs[:2]) < 1e-13 and diffs[2] < 1e-5
    diffs = [float(c.split("(")[1].rstrip(") ")) for c in rows[1].split("|")[3:5]]
    assert max(diffs) < 1e-13


def test_gpu_check_without_cupy(capsys):
    import cvxqreg

    if "cupy" in cvxqreg.available_backends():
        pytest.skip("a GPU is present: the script would run its full check")
    assert load("gpu_check").main([]) == 2
    assert "CuPy backend unavailable" in capsys.readouterr().out


def test_face_benchmark_small(tmp_path):
    out = tmp_path / "face.md"
    text = load("face").main(
        ["--n", "3", "--eps", "1e-2", "--regularizers", "quadratic", "--out", str(out)]
    )
    assert out.read_text() == text
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| IM N = 3")]
    assert [r[6].strip() for r in rows] == ["face", "full space"]
    assert rows[0][3].strip() == "36" and rows[0][7].strip() == "converged"


def test_threads_benchmark_small(tmp_path):
    from cvxqreg import backend

    before = backend.SMALL_DIM
    text = load("threads").main(["--levels", "3", "--transport", "2", "--repeats", "1"])
    assert backend.SMALL_DIM == before  # restored
    rows = [r for r in text.splitlines() if r.startswith("| QWD") or r.startswith("| transport")]
    assert len(rows) == 2 and all("converged" in r for r in rows)


def test_eigh_driver_benchmark_small(tmp_path):
    out = tmp_path / "eigh.md"
    text = load("eigh_driver").main(["--dims", "16", "--repeats", "1", "--out", str(out)])
    assert out.read_text() == text
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| 16 |")]
    assert [r[2].strip() for r in rows] == ["real", "complex"]
    # both drivers orthonormal and accurate on the QWD iterate
    assert all(float(r[k]) < 1e-11 for r in rows for k in (6, 7, 8, 9))


def test_phase_gauge_benchmark_small(tmp_path):
    out = tmp_path / "gauge.md"
    text = load("phase_gauge").main(
        ["--levels", "4", "--eigh-levels", "5", "--repeats", "1", "--out", str(out)]
    )
    assert out.read_text() == text
    (row,) = [r.split("|") for r in text.splitlines() if r.startswith("| 4 |")]
    assert row[6].strip() == row[10].strip() == "converged"
    # the gauged and the complex solve reach the same dual optimum
    assert abs(float(row[8]) - float(row[12])) < 1e-8
    (eigh_only,) = [r.split("|") for r in text.splitlines() if r.startswith("| 5 | 25 |")]
    assert float(eigh_only[4]) > 0 and float(eigh_only[5]) > 0 and eigh_only[6].strip() == "-"


def test_pauli_products_benchmark_small(tmp_path):
    """The sparse Pauli products agree with gathering and scattering by index."""
    out = tmp_path / "pauli.md"
    text = load("pauli_products").main(["--qubits", "3", "4", "--repeats", "1", "--out", str(out)])
    assert out.read_text() == text
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| 3 ") or r.startswith("| 4 ")]
    assert len(rows) == 2
    assert all(float(r[10]) < 1e-12 for r in rows)


def test_small_overhead_benchmark(tmp_path):
    """Direct LAPACK calls give the same decompositions, steps and Newton iterations as SciPy's
    high-level wrappers (the code before them), and the report has its table."""
    out = tmp_path / "small.md"
    mod = load("small_overhead")
    text = mod.main(["--sizes", "16", "--rows", "33", "--repeats", "1", "--out", str(out)])
    assert out.read_text() == text
    micro = [
        r.split("|") for r in text.splitlines() if r.startswith("| eigh") or r.startswith("| Ch")
    ]
    assert len(micro) == 3 and all(float(r[6]) < 1e-12 for r in micro)
    grid = {r.split("|")[1].strip(): r.split("|") for r in text.splitlines() if r.startswith("| w")}
    grid.update(
        {r.split("|")[1].strip(): r.split("|") for r in text.splitlines() if r.startswith("| d")}
    )
    assert int(grid["wrappers"][4]) == int(grid["direct"][4]) > 0
    # the patched-in wrappers were removed again
    from cvxqreg import backend
    from cvxqreg.solvers import newton

    assert backend._syevd is mod._new_syevd and newton._dense_step is mod._new_dense_step


def test_eigh_threads_benchmark_small(tmp_path):
    out = tmp_path / "threads.md"
    args = ["--dims", "16", "--tomography", "8", "--repeats", "1", "--out", str(out)]
    text = load("eigh_threads").main(args)
    assert out.read_text() == text
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| Q")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [
        ("QWD, complex", "16"),
        ("QWD real part", "16"),
        ("QT1, complex", "8"),
    ]
    assert all(float(c) > 0 for r in rows for c in r[3:-1])


def test_newton_steps_benchmark_compares_single_precision_thresholds():
    """One row per threshold, the module constant restored afterwards; the counts of a tiny QT1
    case do not depend on the threshold (its products are few and the solve converges)."""
    from cvxqreg.solvers import dual

    before = dual.SINGLE_PRECISION_RTOL["numpy"]
    text = load("newton_steps").main(["--cases", "qt6", "--single-rtol", "None", "0.1"])
    assert dual.SINGLE_PRECISION_RTOL["numpy"] == before
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| QT1")]
    assert [r[-2].strip() for r in rows] == ["None", "0.1"]
    assert all(r[6].strip() == "converged" for r in rows)


def test_dense_hessian_cost_small(tmp_path):
    out = tmp_path / "dense.md"
    text = load("dense_hessian_cost").main(
        ["--levels", "3", "--ranks", "2", "4", "--repeats", "1", "--out", str(out)]
    )
    assert out.read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| 3 |")]
    assert len(rows) == 2
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert int(cells[3]) < int(cells[2])  # the gauge's real arithmetic drops rows
        assert float(cells[7]) > 0 and float(cells[8]) > float(cells[9]) > 0
