"""cvxqreg as CVXPY users meet it: duals, solver_stats, return values, options, statuses.

Regression tests of issue 11 (defects 1-5, 7, 8, 10 and "one home for options"): each failed on
the code before the fix.
"""

from __future__ import annotations

import dataclasses
import re

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg import DualSolver, InvalidInputError
from cvxqreg.problems.pauli import pauli_matrix

from .conftest import rand_herm, rand_state

SCS_TIGHT = {"solver": cp.SCS, "eps": 1e-10, "max_iters": 200_000}


def _model(kind: str, sense: str, seed: int = 7):
    """A small model of each constraint kind; ``gauge`` when constraints share ``Tr X``."""
    rng = np.random.default_rng(seed)
    n = 2
    D = n * n
    X = cp.Variable((D, D), hermitian=True)
    if kind == "partial_trace":
        cons = [X >> 0, cp.partial_trace(X, [n, n], 1) == rand_state(rng, n)]
    elif kind == "real_partial_trace":
        X = cp.Variable((D, D), symmetric=True)
        cons = [X >> 0, cp.partial_trace(X, [n, n], 1) == rand_state(rng, n, real=True)]
    elif kind == "qot":  # both marginals fix Tr X: the trace gauge
        cons = [
            X >> 0,
            cp.partial_trace(X, [n, n], 1) == rand_state(rng, n),
            cp.partial_trace(X, [n, n], 0) == rand_state(rng, n),
        ]
    elif kind == "pauli":
        X0 = rand_state(rng, D)
        cons = [X >> 0, cp.trace(X) == 1]
        for s in ("ZZ", "XI", "IY", "XY"):
            P = pauli_matrix(s)
            cons.append(cp.real(cp.trace(P @ X)) == np.trace(P @ X0).real)
    elif kind == "dense":  # a Hermitian block of X (matrix equality) and the trace
        X0 = rand_state(rng, D)
        cons = [X >> 0, X[0:2, 0:2] == X0[0:2, 0:2], cp.trace(X) == 1]
    else:  # pragma: no cover
        raise ValueError(kind)
    if kind.startswith("real"):
        f = cp.trace(rand_herm(rng, D, real=True) @ X)
    else:
        f = cp.real(cp.trace(rand_herm(rng, D) @ X))
    objective = cp.Minimize(f) if sense == "min" else cp.Maximize(f)
    return cp.Problem(objective, cons), X, kind == "qot"


def _duals(problem):
    return [np.asarray(c.dual_value) for c in problem.constraints[1:]]


# ------------------------------------------------------------------------- defect 1: duals
@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("kind", ["partial_trace", "real_partial_trace", "pauli", "dense", "qot"])
def test_equality_duals_are_what_cvxpy_scs_returns(kind, sense):
    """Exact solve through cvxqreg vs plain CVXPY + SCS on the same model: every equality dual
    (matrix or scalar) equals SCS's, up to the documented trace gauge where constraints share
    Tr X. Before the fix a matrix dual sat in the lower triangle (not Hermitian)."""
    problem, X, gauge = _model(kind, sense)
    problem.solve(**SCS_TIGHT)
    ref = _duals(problem)
    cvxqreg.solve_exact(problem)
    ours = _duals(problem)
    for c, y in zip(problem.constraints[1:], ours, strict=True):
        if y.ndim == 2:
            assert np.allclose(y, y.conj().T, atol=1e-12), str(c)  # Hermitian / symmetric
    if gauge:  # Y_1 - R_1 = t I, Y_2 - R_2 = -t I for one t
        (y1, y2), (r1, r2) = ours, ref
        t = np.trace(y1 - r1).real / y1.shape[0]
        assert np.allclose(y1 - r1, t * np.eye(2), atol=1e-4)
        assert np.allclose(y2 - r2, -t * np.eye(2), atol=1e-4)
    else:
        for c, y, r in zip(problem.constraints[1:], ours, ref, strict=True):
            assert np.allclose(y, r, atol=1e-4), (str(c), y, r)


def test_regularized_matrix_dual_approaches_scs():
    """Through problem.solve(method="cvxqreg") the dual of a partial-trace equality is Hermitian
    and within eps (its trace-direction shift) of SCS's."""
    problem, X, _ = _model("partial_trace", "min")
    problem.solve(**SCS_TIGHT)
    (ref,) = _duals(problem)
    for eps in (1e-3, 1e-5):
        problem.solve(method="cvxqreg", eps=eps, tol=1e-9)
        (y,) = _duals(problem)
        assert np.allclose(y, y.conj().T, atol=1e-12)
        assert np.abs(y - ref).max() <= 2 * eps


# ------------------------------------------------------------------- defects 2, 3: stats, value
def test_solve_returns_value_and_sets_solver_stats():
    problem, X, _ = _model("qot", "min")
    problem.solve(solver=cp.SCS)  # stale stats must be replaced
    value = problem.solve(method="cvxqreg", eps=1e-3)
    res = problem.cvxqreg_result
    assert isinstance(value, float) and value == problem.value == pytest.approx(res.energy)
    st = problem.solver_stats
    assert st.solver_name == "cvxqreg"
    assert st.num_iters == res.iterations and st.solve_time == res.time
    assert st.setup_time is not None and st.setup_time > 0
    assert st.extra_stats["eps"] == 1e-3 and st.extra_stats["status"] == res.status
    assert problem.compilation_time == st.setup_time  # not the SCS solve's (was stale)
    exact = cvxqreg.solve_exact(problem)
    st = problem.solver_stats
    assert st.solver_name == "SCS" and st.num_iters == exact.iterations  # as CVXPY's own
    assert st.extra_stats["solved_by"] == "cvxqreg.solve_exact"
    assert st.extra_stats["accuracy"] == exact.accuracy
    assert problem.compilation_time == st.setup_time


# --------------------------------------------------------------------------- defect 4: options
def test_verbose_prints_a_solve_log(capsys):
    problem, _, _ = _model("qot", "min")
    problem.solve(method="cvxqreg", eps=1e-4, verbose=True)
    out = capsys.readouterr().out
    assert "stage 1/" in out and "||grad||=" in out and "eps=1.00e-04" in out
    assert re.search(r"converged after \d+ iterations, [\d.]+ s", out)


def test_warm_start_reuses_the_last_dual_point():
    problem, _, _ = _model("qot", "min")
    problem.solve(method="cvxqreg", eps=1e-4, tol=1e-8)
    cold = problem.cvxqreg_result
    problem.solve(method="cvxqreg", eps=1e-4, tol=1e-8, warm_start=True)
    warm = problem.cvxqreg_result
    assert warm.converged and warm.iterations <= 1 < cold.iterations
    assert np.allclose(warm.alpha, cold.alpha, atol=1e-7)
    problem.solve(method="cvxqreg", eps=1e-4, tol=1e-8, alpha0=cold.alpha)  # explicit, as solve()
    assert problem.cvxqreg_result.iterations <= 1


def test_solver_keyword_and_unknown_options():
    problem, _, _ = _model("qot", "min")
    problem.solve(method="cvxqreg", eps=1e-2, solver="cvxqreg")
    assert problem.status == "optimal"
    with pytest.raises(InvalidInputError, match=r"solve_exact\(problem, 'SCS'\)"):
        problem.solve(method="cvxqreg", eps=1e-2, solver="SCS")
    for call in (
        lambda: problem.solve(method="cvxqreg", eps=1e-2, foo=1),
        lambda: cvxqreg.solve(problem, 1e-2, foo=1),
        lambda: cvxqreg.sweep(problem, [1e-2], reference=None, foo=1),
    ):
        with pytest.raises(InvalidInputError, match=r"unknown option 'foo'.*valid options: .*tol"):
            call()
    # regularizer options are not routed silently: the order goes in the name or the instance
    with pytest.raises(InvalidInputError, match="unknown option 'order'"):
        cvxqreg.solve(problem, 1e-2, "tsallis", order=1.5)
    a = cvxqreg.solve(problem, 1e-2, "tsallis:1.5")
    b = cvxqreg.solve(problem, 1e-2, cvxqreg.Tsallis(1.5))
    assert a.regularizer == b.regularizer and a.value == pytest.approx(b.value, abs=1e-9)


# ------------------------------------------------------------------------ defect 5: infeasible
@pytest.mark.parametrize("sense", ["min", "max"])
def test_infeasible_data_is_a_status_at_every_solve_entry_point(sense):
    problem, X, _ = _model("qot", sense)
    bad = cp.Problem(problem.objective, problem.constraints + [cp.trace(X) == 2])
    inf = np.inf if sense == "min" else -np.inf
    assert bad.solve(method="cvxqreg", eps=0.1) == inf
    assert bad.status == "infeasible" and X.value is None
    assert "infeasible data" in bad.cvxqreg_result.message
    assert cvxqreg.solve(bad, 0.1).status == "infeasible" and bad.value == inf
    assert cvxqreg.solve_exact(bad).status == "infeasible" and bad.status == "infeasible"


# ------------------------------------------------------------------ defect 7: exact solve log
def test_exact_verbose_says_what_it_does(capsys):
    problem, _, _ = _model("qot", "min")
    cvxqreg.solve_exact(problem, verbose=True)
    out = capsys.readouterr().out
    assert "cvxqreg: exact SDP, D=4" in out and "SCS" in out  # before
    assert "measured accuracy" in out  # after
    assert "iter" in out.lower()  # the solver's own log in between


# ------------------------------------------------------------------ defect 8: user-facing text
def test_user_text_names_newton_the_default():
    from pathlib import Path

    from cvxqreg.cli import build_parser

    assert DualSolver().optimizer == "newton"
    assert "Newton" in build_parser().format_help()
    assert "(L-BFGS on the dual)" not in build_parser().format_help()
    assert "Newton" in cvxqreg.__doc__.split("\n\n")[1] or "Newton" in cvxqreg.__doc__
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    description = re.search(r'^description = "(.*)"', pyproject.read_text(), re.M).group(1)
    assert "Newton" in description


def test_convergence_plot_title_names_the_optimizer(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    problem, _, _ = _model("qot", "min")
    lp = cvxqreg.lower(problem)
    newton = cvxqreg.solve(lp, 1e-2, backend="numpy")
    lbfgs = cvxqreg.solve(lp, 1e-2, backend="numpy", optimizer="lbfgs")
    for res, name in ((newton, "Newton"), (lbfgs, "L-BFGS")):
        fig = cvxqreg.plotting.plot_convergence([res])
        assert fig._suptitle.get_text().startswith(f"Dual {name} convergence")
        plt.close(fig)


# -------------------------------------------------------------------- defect 10: sweep column
def test_sweep_column_is_the_certified_bound_with_its_sense():
    problem, _, _ = _model("qot", "max")
    table = cvxqreg.sweep(problem, [1e-2], regularizers=["von_neumann"], backend="numpy")
    (row,) = table.rows
    assert not hasattr(row, "lower_bound")
    assert row.sense == -1 and row.certified_bound >= table.reference_value - 1e-6  # upper
    assert "certified_bound" in table.to_csv().splitlines()[0]


# ------------------------------------------------------------- one home for options (step 3)
#: a non-default value of every DualSolver option
OPTION_VALUES = {
    "regularizer": "quadratic",
    "backend": "numpy",
    "tol": 1e-5,
    "max_iter": 500,
    "time_limit": 100.0,
    "memory": 5,
    "eliminate": False,
    "optimizer": "lbfgs",
    "continuation": False,
    "stage_tol": 1e-2,
    "stage_reduction": None,
    "ladder_ratio": 3.0,
    "hessian": "cg",
    "hessian_products": "full",
    "preconditioner": "none",
    "regularization": 0.0,
    "predictor": False,
    "tangent_predictor": False,
    "marginal_scaling": False,
    "facial_reduction": False,
    "phase_gauge": True,
    "progress": True,
    "verbose": True,
}

#: how the command line spells each option
CLI_ARGS = {
    "regularizer": ["--regularizer", "quadratic"],
    "backend": ["--backend", "numpy"],
    "tol": ["--tol", "1e-5"],
    "max_iter": ["--max-iter", "500"],
    "time_limit": ["--time-limit", "100"],
    "memory": ["--memory", "5"],
    "eliminate": ["--eliminate", "no"],
    "optimizer": ["--optimizer", "lbfgs"],
    "continuation": ["--no-continuation"],
    "stage_tol": ["--stage-tol", "1e-2"],
    "stage_reduction": ["--stage-reduction", "none"],
    "ladder_ratio": ["--ladder-ratio", "3"],
    "hessian": ["--hessian", "cg"],
    "hessian_products": ["--hessian-products", "full"],
    "preconditioner": ["--preconditioner", "none"],
    "regularization": ["--regularization", "0"],
    "predictor": ["--no-predictor"],
    "tangent_predictor": ["--no-tangent-predictor"],
    "marginal_scaling": ["--no-marginal-scaling"],
    "facial_reduction": ["--no-facial-reduction"],
    "phase_gauge": ["--phase-gauge", "yes"],
    "progress": [],  # the command line supplies its own progress bar
    "verbose": ["--verbose"],
}


def test_option_tables_cover_dual_solver():
    assert set(OPTION_VALUES) == set(DualSolver.option_names()) == set(CLI_ARGS)
    defaults = DualSolver.defaults()
    for name, value in OPTION_VALUES.items():
        if name != "progress":
            assert value != defaults[name], name


@pytest.fixture
def spy(monkeypatch):
    """Records the DualSolver each solve runs with."""
    seen = []
    call = DualSolver.__call__

    def spy_call(self, *args, **kwargs):
        seen.append(self)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(DualSolver, "__call__", spy_call)
    return seen


def _check_forwarded(solver: DualSolver, name: str, value) -> None:
    got = getattr(solver, name)
    if name == "regularizer":
        assert got.name == value
    elif name == "backend":
        assert got.name == value
    elif name == "progress":
        assert callable(got)
    else:
        assert got == value, (name, got, value)


@pytest.mark.parametrize("entry", ["solve", "sweep", "method", "cli"])
@pytest.mark.parametrize("name", list(OPTION_VALUES))
def test_every_entry_point_forwards_every_option(entry, name, spy, tmp_path, capsys):
    value = OPTION_VALUES[name]
    problem, _, _ = _model("qot", "min")
    kw = {name: value}
    if entry == "solve":
        cvxqreg.solve(problem, 1e-2, **kw)
    elif entry == "sweep":
        cvxqreg.sweep(problem, [1e-2], reference=None, **kw)
    elif entry == "method":
        problem.solve(method="cvxqreg", eps=1e-2, **kw)
    else:
        from cvxqreg.cli import main

        path = tmp_path / "model.py"
        path.write_text(
            "import numpy as np, cvxpy as cp\n"
            "X = cp.Variable((4, 4), hermitian=True)\n"
            "rho = np.diag([0.7, 0.3])\n"
            "H = np.diag([1.0, 2.0, 3.0, 4.0])\n"
            "problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), "
            "[X >> 0, cp.partial_trace(X, [2, 2], 1) == rho])\n"
        )
        main(["solve", str(path), "--eps", "1e-2", "--quiet", *CLI_ARGS[name]])
    assert spy, "no solve ran"
    _check_forwarded(spy[-1], name, value)
    if name == "progress":
        assert "it " in capsys.readouterr().out or entry == "cli"


def test_progress_true_prints_iterations(capsys):
    problem, _, _ = _model("qot", "min")
    res = cvxqreg.solve(problem, 1e-2, progress=True, backend="numpy")
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("it ")]
    assert res.converged and len(lines) >= res.iterations


def test_defaults_are_written_once():
    """solve(), sweep() and the method declare no defaults of their own."""
    import inspect

    from cvxqreg.cli import build_parser
    from cvxqreg.cvxpy_method import solve_method

    names = set(DualSolver.option_names())
    for fn in (cvxqreg.solve, cvxqreg.sweep, solve_method):
        declared = set(inspect.signature(fn).parameters) & names
        assert declared <= {"regularizer"}, (fn.__name__, declared)
    args = build_parser().parse_args(["solve", "m.py", "--eps", "1"])
    for name, default in DualSolver.defaults().items():
        if hasattr(args, name):
            assert getattr(args, name) == default, name


# ------------------------------------------------------------------ write-back at the edge
def test_write_back_only_into_cvxpy_problems():
    """A cvxpy.Problem given to solve or solve_exact gets the solution written back; a
    LoweredProblem (even one with a recovery) leaves the source model alone."""
    problem, X, _ = _model("qot", "min")
    lp = cvxqreg.lower(problem)
    cvxqreg.solve(lp, 1e-2)
    cvxqreg.solve_exact(lp)
    assert X.value is None and problem.status is None
    res = cvxqreg.solve(problem, 1e-2)
    assert problem.status == "optimal" and np.allclose(X.value, res.X)
    assert problem.cvxqreg_result is res
    exact = cvxqreg.solve_exact(problem)
    assert problem.status == exact.status and np.allclose(X.value, exact.X)
    assert problem.cvxqreg_result is exact


def test_dataclass_replace_keeps_options():
    s = DualSolver(tol=1e-7, hessian="cg")
    t = dataclasses.replace(s, max_iter=5)
    assert t.tol == 1e-7 and t.hessian == "cg" and t.max_iter == 5


# ------------------------------------------------------------------ review: option values
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_iter", 2.5),
        ("max_iter", float("nan")),
        ("max_iter", True),
        ("memory", 0),
        ("stage_tol", -1.0),
        ("stage_reduction", 0.0),
        ("stage_reduction", 1.5),
        ("stage_reduction", "half"),
        ("ladder_ratio", 1.0),
        ("ladder_ratio", 0.5),
        ("regularization", -1.0),
        ("regularization", float("inf")),
        ("tol", "small"),
        ("time_limit", -np.inf),
        ("time_limit", float("nan")),
        ("hessian", "exact"),
        ("eliminate", "maybe"),
        ("phase_gauge", "sometimes"),
        ("continuation", "no"),
        ("verbose", 1),
    ],
)
def test_bad_option_values_are_rejected_before_solving(name, value):
    """Each bad value is an InvalidInputError naming the option, at every entry point, before
    any solve (before, max_iter=2.5 ran 2 iterations, ladder_ratio=1 divided by zero,
    ladder_ratio=0.5 climbed 60 eps stages upwards, hessian='exact' was a late ValueError)."""
    problem, X, _ = _model("qot", "min")
    with pytest.raises(InvalidInputError, match=name):
        problem.solve(method="cvxqreg", eps=1e-2, **{name: value})
    with pytest.raises(InvalidInputError, match=name):
        cvxqreg.solve(problem, 1e-2, **{name: value})
    with pytest.raises(InvalidInputError, match=name):
        cvxqreg.sweep(problem, [1e-2], reference=None, **{name: value})
    assert X.value is None and problem.status is None


def test_integral_float_counts_are_accepted():
    s = DualSolver(max_iter=1e4, memory=5.0, time_limit=np.inf)
    assert s.max_iter == 10000 and isinstance(s.max_iter, int) and s.memory == 5
    assert s.time_limit is None  # inf: no limit


def test_solve_exact_options_as_cvxpy_spells_them():
    """``eps=`` (CVXPY's SCS spelling) sets both SCS tolerances and the recorded settings say
    so (before: ``settings`` showed eps_abs=1e-9 while SCS ran at eps); an option the conic
    solver rejects is an InvalidInputError naming it (before: SCS's bare TypeError)."""
    problem, X, _ = _model("qot", "min")
    res = cvxqreg.solve_exact(problem, eps=1e-5)
    assert "eps" not in res.settings
    assert res.settings["eps_abs"] == res.settings["eps_rel"] == 1e-5
    tight = cvxqreg.solve_exact(problem)
    assert tight.accuracy < res.accuracy  # the looser tolerance was really used
    problem, X, _ = _model("qot", "min")
    with pytest.raises(InvalidInputError, match="foo"):
        cvxqreg.solve_exact(problem, foo=1)
    assert X.value is None and problem.status is None


def test_unknown_option_suggests_the_close_name():
    """A CVXPY/SCS spelling (``max_iters``) gets a pointer to ours; the method's message lists
    its own keywords too."""
    problem, _, _ = _model("qot", "min")
    with pytest.raises(InvalidInputError, match=r"did you mean 'max_iter'\?.*warm_start"):
        problem.solve(method="cvxqreg", eps=1e-2, max_iters=5)
    with pytest.raises(InvalidInputError, match=r"did you mean 'tol'\?"):
        cvxqreg.solve(problem, 1e-2, tol_=1e-8)
    with pytest.raises(InvalidInputError, match=r"unknown option 'zzz' of cvxqreg.sweep;"):
        cvxqreg.sweep(problem, [1e-2], reference=None, zzz=1)


@pytest.mark.parametrize("sense", ["min", "max"])
@pytest.mark.parametrize("kind", ["partial_trace", "real_partial_trace", "pauli", "dense"])
def test_method_duals_converge_to_scs_at_rate_eps(kind, sense):
    """problem.solve(method="cvxqreg") on every constraint kind, both senses: the equality duals
    and the dual of X >> 0 differ from plain CVXPY + SCS by O(eps) (measured: at most ~4 eps on
    these models, at eps = 1e-3 and 1e-5), so a sign or scale slip (Maximize, real symmetric,
    the PSD dual) cannot hide behind the regularization."""
    problem, _, _ = _model(kind, sense)
    problem.solve(**SCS_TIGHT)
    ref, ref_psd = _duals(problem), np.asarray(problem.constraints[0].dual_value)
    for eps in (1e-3, 1e-5):
        problem.solve(method="cvxqreg", eps=eps, tol=1e-9)
        assert problem.status in ("optimal", "optimal_inaccurate")  # judged by the duals below
        for y, r in zip(_duals(problem), ref, strict=True):
            assert np.abs(y - r).max() <= 10 * eps
        assert np.abs(problem.constraints[0].dual_value - ref_psd).max() <= 10 * eps


def test_summary_says_which_side_the_certified_bound_is_on():
    """For a Maximize the certified bound is an upper bound and the summary says so (before:
    'certified bound on eps=0 value' for both senses)."""
    lines = {}
    for sense in ("min", "max"):
        problem, _, _ = _model("qot", sense)
        res = cvxqreg.solve(problem, 1e-2)
        lines[sense] = res.summary()
        F0 = cvxqreg.solve_exact(problem).value
        assert res.sense * (F0 - res.certified_bound) >= -1e-8
    assert "certified F_0 >= " in lines["min"] and "certified F_0 <= " in lines["max"]


def test_method_warns_and_raises_as_cvxpy_does():
    """As CVXPY's own solve: an inaccurate status (here user_limit) warns "Solution may be
    inaccurate", a failure raises cvxpy.error.SolverError (before: status 'solver_error' and a
    silent None); the status and problem.cvxqreg_result are recorded first."""
    from cvxpy.error import SolverError

    from cvxqreg.regularizers import Custom

    problem, X, _ = _model("qot", "min")
    with pytest.warns(UserWarning, match="may be inaccurate"):
        problem.solve(method="cvxqreg", eps=1e-3, max_iter=2)
    assert problem.status == "user_limit" and X.value is not None
    nan_psi = Custom(
        phi_fn=lambda x: x * np.log(np.maximum(x, 1e-300)),
        psi_fn=lambda t: np.full_like(t, np.nan),  # a broken conjugate: the dual value is NaN
        dpsi_fn=lambda t: np.exp(t - 1),
        d2psi_fn=lambda t: np.exp(t - 1),
    )
    with pytest.raises(SolverError, match="cvxqreg failed"):
        problem.solve(method="cvxqreg", eps=1e-2, regularizer=nan_psi)
    assert problem.status == "solver_error" and X.value is None
    assert problem.cvxqreg_result.status == "failed"
