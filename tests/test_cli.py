"""The ``cvxqreg`` command line: sub-commands, files written, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cvxqreg import cli
from cvxqreg.cli import main
from cvxqreg.errors import InfeasibleDataError, InvalidInputError, UnsupportedModelError

QOT_MODEL = """\
import cvxpy as cp
import numpy as np

# two-qubit quantum optimal transport: cost (Z (x) I - I (x) Z)^2 + (X (x) I - I (x) X)^2
Z = np.diag([1.0, -1.0])
P = np.array([[0.0, 1.0], [1.0, 0.0]])
I = np.eye(2)
H = sum((np.kron(A, I) - np.kron(I, A)) @ (np.kron(A, I) - np.kron(I, A)) for A in (Z, P))
rho = np.array([[0.7, 0.2], [0.2, 0.3]])
sigma = np.array([[0.4, -0.1j], [0.1j, 0.6]])
X = cp.Variable((4, 4), hermitian=True)
problem = cp.Problem(
    cp.Minimize(cp.real(cp.trace(H @ X))),
    [
        X >> 0,
        cp.partial_trace(X, [2, 2], axis=1) == rho,
        cp.partial_trace(X, [2, 2], axis=0) == sigma,
    ],
)

if __name__ == "__main__":
    raise SystemExit("the __main__ block of a model file must not run")
"""


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "qot.py"
    path.write_text(QOT_MODEL)
    return path


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---------------------------------------------------------------------------------- basics


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("cvxqreg", "cvxpy", "scs", "numpy", "scipy", "backends", "auto"):
        assert word in out
    assert "numpy" in out.split("backends", 1)[1]


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("demo", "solve", "sweep", "info", "examples:", "exit codes"):
        assert word in out
    for sub in ("demo", "solve", "sweep", "info"):
        assert main([sub, "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
    assert main([]) == 2  # a sub-command is required
    assert main(["frobnicate"]) == 2
    assert main(["solve", "m.py"]) == 2  # neither --exact nor --eps
    assert main(["solve", "m.py", "--exact", "--eps", "1"]) == 2
    assert main(["solve", "m.py", "--eps", "-1"]) == 2
    assert main(["solve", "m.py", "--eps", "nan"]) == 2
    assert main(["sweep", "m.py", "--eps", "1,abc"]) == 2
    assert main(["sweep", "m.py", "--regularizers", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown regularizer 'bogus'" in err
    assert "must be a finite number > 0" in err


def test_python_dash_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "cvxqreg", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: cvxqreg" in proc.stdout and "sweep" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "cvxqreg" in capsys.readouterr().out


# ------------------------------------------------------------------------------ model files


def test_invalid_model_files(tmp_path, capsys):
    no_problem = _write(
        tmp_path,
        "noproblem.py",
        """\
        import cvxpy as cp
        X = cp.Variable((2, 2), hermitian=True)
        prob = cp.Problem(cp.Minimize(cp.real(cp.trace(X))), [X >> 0, cp.trace(X) == 1])
        """,
    )
    assert main(["solve", no_problem, "--exact"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvxqreg: error: ")
    assert "defines no variable named 'problem'" in err and "--name prob" in err
    assert "Traceback" not in err

    syntax = _write(
        tmp_path, "syntax.py", "import cvxpy as cp\nX = cp.Variable((2, 2) hermitian=True)\n"
    )
    assert main(["solve", syntax, "--exact"]) == 2
    err = capsys.readouterr().err
    assert "syntax.py:2: syntax error" in err and "Traceback" not in err

    raising = _write(tmp_path, "raises.py", "x = 1\ny = 1 / 0\n")
    assert main(["sweep", raising]) == 2
    err = capsys.readouterr().err
    assert "raises.py:2" in err and "ZeroDivisionError" in err and "Traceback" not in err

    wrong_type = _write(tmp_path, "wrong.py", "problem = 42\n")
    assert main(["solve", wrong_type, "--eps", "0.1"]) == 2
    assert "is a int, not a cvxpy.Problem" in capsys.readouterr().err

    assert main(["solve", str(tmp_path / "missing.py"), "--exact"]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["solve", str(tmp_path), "--exact"]) == 2
    assert "not a file" in capsys.readouterr().err


def test_load_model_runs_file_like_a_script(tmp_path, model):
    import cvxpy as cp

    (tmp_path / "helper_data.py").write_text("VALUE = 3.0\n")
    path = _write(
        tmp_path,
        "uses_helper.py",
        """\
        import cvxpy as cp
        from helper_data import VALUE
        X = cp.Variable((2, 2), hermitian=True)
        my_problem = cp.Problem(cp.Minimize(VALUE * cp.real(cp.trace(X))), [X >> 0])
        """,
    )
    assert isinstance(cli.load_model(path, "my_problem"), cp.Problem)
    assert isinstance(cli.load_model(model), cp.Problem)  # __main__ block not run
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (InvalidInputError("bad data"), 2),
        (UnsupportedModelError("log_det is not supported"), 2),
        (InfeasibleDataError("inconsistent marginals"), 1),
    ],
)
def test_library_errors_map_to_exit_codes(model, monkeypatch, capsys, exc, code):
    def fail(problem):
        raise exc

    monkeypatch.setattr(cli, "lower", fail)
    assert main(["solve", str(model), "--exact"]) == code
    err = capsys.readouterr().err
    assert err.strip() == f"cvxqreg: error: {exc}"


def test_progress_bars(monkeypatch):
    args = cli.build_parser().parse_args(["info"])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert isinstance(cli._bar(args), cli._NullBar)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    pytest.importorskip("tqdm")
    bar = cli._bar(args, total=2)
    assert not isinstance(bar, cli._NullBar)
    bar.close()
    args.quiet = True
    assert isinstance(cli._bar(args), cli._NullBar)
    args.quiet = False
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert isinstance(cli._bar(args), cli._NullBar)  # degrades without tqdm


# ------------------------------------------------------------------------ solves (lowering)


@pytest.mark.parametrize("solver", ["scs", "clarabel"])
def test_solve_exact(model, capsys, solver):
    import cvxpy as cp

    if solver.upper() not in cp.installed_solvers():
        pytest.skip(f"{solver} is not installed")
    assert main(["solve", str(model), "--exact", "--solver", solver, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"exact SDP ({solver.upper()}): status=optimal" in out and "F_0 =" in out
    assert "D=4" in out and "accepted at <= 1e-06: yes" in out


def test_solve_exact_judged_by_measured_accuracy(model, monkeypatch, capsys):
    """Exit 0 for an 'optimal_inaccurate' status with tiny residuals and gap, exit 1 for an
    'optimal' status whose measured accuracy is poor: the measurement decides, not the string."""
    import dataclasses

    from cvxqreg.solvers import exact

    real = exact.solve_exact

    def relabel(status, accuracy):
        def fake(*args, **kwargs):
            return dataclasses.replace(real(*args, **kwargs), status=status, accuracy=accuracy)

        return fake

    monkeypatch.setattr(exact, "solve_exact", relabel("optimal_inaccurate", 1e-10))
    assert main(["solve", str(model), "--exact", "--quiet"]) == 0
    monkeypatch.setattr(exact, "solve_exact", relabel("optimal", 1e-3))
    assert main(["solve", str(model), "--exact", "--quiet"]) == 1
    assert "measured accuracy 1.0e-03" in capsys.readouterr().err


def test_exact_solve_says_what_it_is_doing(model, capsys):
    """Without a terminal (no progress bar) the exact solve still announces itself on stderr, and
    --verbose forwards the conic solver's log; --quiet silences the note."""
    assert main(["solve", str(model), "--exact"]) == 0
    err = capsys.readouterr().err
    assert "solving the exact SDP (D=4, m=7 rows) with SCS" in err and "--verbose" in err
    assert main(["solve", str(model), "--exact", "--verbose"]) == 0
    captured = capsys.readouterr()
    assert "cvxqreg: exact SDP, D=4" in captured.out and "measured accuracy" in captured.out
    assert main(["solve", str(model), "--exact", "--quiet"]) == 0
    assert "solving the exact SDP" not in capsys.readouterr().err


def test_solve_regularized_and_save_state(model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_progress_enabled", lambda args: True)  # exercise the callback
    state = tmp_path / "X.npy"
    code = main(
        ["solve", str(model), "--eps", "1e-2", "--regularizer", "quadratic", "--save-state",
         str(state), "--backend", "numpy"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "quadratic eps=0.01: status=converged" in out
    X = np.load(state)
    assert X.shape == (4, 4)
    np.testing.assert_allclose(np.trace(X).real, 1.0, atol=1e-5)


def test_solve_not_converged_exits_1(model, capsys):
    assert main(["solve", str(model), "--eps", "1e-3", "--max-iter", "2", "-q"]) == 1
    captured = capsys.readouterr()
    assert "NOT CONVERGED" in captured.out
    assert "did not converge (status: max_iter)" in captured.err


def test_solve_unsupported_model_exits_2(tmp_path, capsys):
    path = _write(
        tmp_path,
        "logdet.py",
        """\
        import cvxpy as cp
        X = cp.Variable((3, 3), hermitian=True)
        problem = cp.Problem(cp.Maximize(cp.log_det(X)), [X >> 0, cp.trace(X) == 1])
        """,
    )
    assert main(["solve", path, "--eps", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvxqreg: error: ") and "Traceback" not in err


def test_sweep_writes_csv_and_json(model, tmp_path, capsys):
    csv_path, json_path = tmp_path / "rows.csv", tmp_path / "rows.json"
    code = main(
        ["sweep", str(model), "--eps", "1,1e-2", "--regularizers", "von_neumann", "quadratic",
         "--csv", str(csv_path), "--json", str(json_path), "--markdown", "-q"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| reg | eps |" in out and "Reference F_0" in out
    lines = csv_path.read_text().strip().splitlines()
    assert len(lines) == 1 + 4 and lines[0].startswith("regularizer,eps,status")
    data = json.loads(json_path.read_text())
    assert data["reference"]["status"] == "optimal"
    assert [(r["regularizer"], r["eps"]) for r in data["rows"]] == [
        ("von_neumann", 1.0),
        ("von_neumann", 0.01),
        ("quadratic", 1.0),
        ("quadratic", 0.01),
    ]
    assert all(r["status"] == "converged" for r in data["rows"])


def test_sweep_plot_and_failure_exit(model, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot = tmp_path / "limit.png"
    code = main(
        ["sweep", str(model), "--eps", "1", "0.1", "--regularizers", "von_neumann",
         "--max-iter", "2", "--reference", "none", "--plot", str(plot), "-q"]
    )  # fmt: skip
    assert code == 1  # the table and the plot are written, but the solves did not converge
    captured = capsys.readouterr()
    assert "max_iter" in captured.out
    assert "2 of 2 solves did not converge" in captured.err
    assert plot.is_file() and plot.stat().st_size > 1000


def test_sweep_rejects_unknown_plot_format_before_solving(model, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")

    def never(*a, **k):
        raise AssertionError("must fail before loading the model")

    monkeypatch.setattr(cli, "load_model", never)
    assert main(["sweep", str(model), "--plot", str(tmp_path / "x.foo")]) == 2
    assert "unknown plot format 'foo'" in capsys.readouterr().err


def test_demo_tiny(tmp_path, capsys):
    out_png = tmp_path / "demo.png"
    csv_path = tmp_path / "demo.csv"
    code = main(
        ["demo", "--problem", "two-point", "--eps", "1", "1e-2", "--regularizers", "von_neumann",
         "--out", str(out_png), "--csv", str(csv_path), "-q"]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "closed-form optimum: F_0 = 1.0000000000" in out
    assert "Reference F_0" in out and "von_neumann" in out
    assert "by regularized Newton with eps-continuation on the dual" in out  # the default
    assert csv_path.is_file()
    if _has_matplotlib():
        assert out_png.is_file() and out_png.stat().st_size > 1000
        assert "plot written to" in out


def test_demo_without_matplotlib_skips_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backend_bases", None)
    out_png = tmp_path / "demo.png"
    code = main(
        ["demo", "--problem", "two-point", "--eps", "1", "--regularizers", "quadratic",
         "--out", str(out_png), "-q"]
    )  # fmt: skip
    assert code == 0
    assert not out_png.exists()
    assert "pip install 'cvxqreg[plot]'" in capsys.readouterr().err


def test_demo_default(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("converged") == 10
    if _has_matplotlib():
        assert (tmp_path / "cvxqreg-demo.png").is_file()


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--exact", "--tol", "1e-3"], "--tol"),
        (["--exact", "--no-continuation"], "--no-continuation"),
        (["--exact", "--regularizer", "quadratic"], "--regularizer"),
        (["--eps", "1e-2", "--solver", "clarabel"], "--solver"),
    ],
)
def test_solve_rejects_options_of_the_other_mode(model, capsys, extra, named):
    """``solve --exact --tol 1e-3`` used to ignore --tol silently (and --eps ignored --solver)."""
    assert main(["solve", str(model), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cvxqreg: error: ") and named in err


def test_solve_exact_takes_verbose(model, capsys):
    assert main(["solve", str(model), "--exact", "--verbose", "--quiet"]) == 0
    assert "measured accuracy" in capsys.readouterr().out
