"""The ``cvxqreg`` command line: ``demo``, ``solve``, ``sweep``, ``certify`` and ``info``.

Run ``cvxqreg --help`` (or ``python -m cvxqreg --help``) for the sub-commands and examples. Exit
codes: 0 success; 1 a solve did not converge, a solver failed, or the data are infeasible; 2 a usage
error (bad option, unreadable model file, invalid input, unsupported model).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import runpy
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import (
    BackendUnavailableError,
    CvxqregError,
    InfeasibleDataError,
    InvalidInputError,
    UnsupportedModelError,
)
from .lowering import lower
from .results import EXACT_ACCURACY
from .solvers import exact as _exact
from .solvers.dual import HESSIAN_PRODUCTS
from .solvers.preconditioner import PRECONDITIONERS
from .solvers.regularized import HESSIAN_MODES
from .sweep import DEFAULT_EPS as _DEFAULT_EPS
from .sweep import DEFAULT_REGULARIZERS as _DEFAULT_REGS

__all__ = ["build_parser", "load_model", "main"]

PROG = "cvxqreg"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """An error reported as ``cvxqreg: error: <message>`` with exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# small helpers: messages, progress bars, option parsing


def _err(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


class _NullBar:
    """Stands in for a tqdm bar when progress display is off or tqdm is missing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def set_description_str(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _progress_enabled(args) -> bool:
    """Progress bars only on an interactive stderr, without ``--quiet``."""
    if getattr(args, "quiet", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _bar(args, **kwargs):
    """A tqdm progress bar on stderr, or a no-op bar (not a TTY, ``--quiet``, no tqdm)."""
    if not _progress_enabled(args):
        return _NullBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NullBar()
    return tqdm(file=sys.stderr, leave=False, dynamic_ncols=True, **kwargs)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def _stage_reduction(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    v = _positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] or none, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return v


def _check_regularizer(text: str) -> str:
    from .regularizers import get_regularizer

    try:
        get_regularizer(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip().lower()


class _ListAction(argparse.Action):
    """``--opt a b`` or ``--opt a,b``: a flat list, each item checked by ``self.item``."""

    item = staticmethod(str)

    def __call__(self, parser, namespace, values, option_string=None):
        out = []
        for v in values:
            for tok in str(v).split(","):
                tok = tok.strip()
                if not tok:
                    continue
                try:
                    out.append(self.item(tok))
                except argparse.ArgumentTypeError as exc:
                    raise argparse.ArgumentError(self, str(exc)) from None
        if not out:
            raise argparse.ArgumentError(self, "needs at least one value")
        setattr(namespace, self.dest, out)


class _EpsList(_ListAction):
    item = staticmethod(_positive_float)


class _RegList(_ListAction):
    item = staticmethod(_check_regularizer)


# --------------------------------------------------------------------------------------------
# model files


def load_model(path: str | os.PathLike, name: str = "problem"):
    """Run a user's model file and return the CVXPY problem it defines.

    The file is executed with :func:`runpy.run_path` (as a module named ``__cvxqreg_model__``, so an
    ``if __name__ == "__main__":`` block does not run), with its directory first on ``sys.path`` so
    that it can import its neighbours. It must assign a :class:`cvxpy.Problem` (or a
    :class:`cvxqreg.problems.Instance`) to the variable ``name``.

    Raises
    ------
    CLIError
        (exit code 2) when the file is missing, does not compile, raises while running, or does not
        define ``name`` as a problem; the message names the file and, where known, the line.
    """
    import cvxpy as cp

    p = Path(path)
    if not p.exists():
        raise CLIError(f"model file not found: {path}")
    if not p.is_file():
        raise CLIError(f"model path is not a file: {path}")
    folder = str(p.resolve().parent)
    sys.path.insert(0, folder)
    try:
        namespace = runpy.run_path(str(p), run_name="__cvxqreg_model__")
    except SyntaxError as exc:
        where = f"{path}:{exc.lineno}" if exc.lineno else str(path)
        raise CLIError(f"{where}: syntax error in the model file: {exc.msg}") from None
    except SystemExit as exc:
        raise CLIError(f"{path} called sys.exit({exc.code!r}) while being loaded") from None
    except Exception as exc:  # the user's code failed: report its line, not our traceback
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if _same_file(f.filename, p)]
        where = f"{path}:{frames[-1].lineno}" if frames else str(path)
        raise CLIError(
            f"{where}: running the model file raised {type(exc).__name__}: {exc}"
        ) from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    if name not in namespace:
        found = [k for k, v in namespace.items() if isinstance(v, cp.Problem)]
        hint = (
            f" (it defines cvxpy.Problem {', '.join(found)}: pass --name {found[0]})"
            if found
            else ""
        )
        raise CLIError(
            f"{path} defines no variable named {name!r}; the model file must assign a "
            f"cvxpy.Problem to it, e.g. `{name} = cp.Problem(cp.Minimize(...), [X >> 0, ...])`"
            + hint
        )
    obj = namespace[name]
    inner = getattr(obj, "problem", None)  # a cvxqreg.problems.Instance
    if not isinstance(obj, cp.Problem) and isinstance(inner, cp.Problem):
        obj = inner
    if not isinstance(obj, cp.Problem):
        raise CLIError(f"{name!r} in {path} is a {type(obj).__name__}, not a cvxpy.Problem")
    return obj


def _same_file(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# the sub-commands


def _cmd_info(args) -> int:
    from importlib import metadata

    from . import __version__
    from .backend import available_backends, get_backend

    def version(dist: str, module: str | None = None) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
        try:
            mod = __import__(module or dist)
        except ImportError:
            return "not installed"
        return str(getattr(mod, "__version__", "installed"))

    def cupy_version() -> str:
        for dist in ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                return metadata.version(dist)
        return "not installed"

    rows = [
        ("cvxqreg", __version__),
        ("python", f"{sys.version.split()[0]} ({sys.executable})"),
        ("cvxpy", version("cvxpy")),
        ("scs", version("scs")),
        ("numpy", version("numpy")),
        ("scipy", version("scipy")),
        ("clarabel", version("clarabel") + "  (optional: --solver clarabel)"),
        ("matplotlib", version("matplotlib") + "  (optional: plots, pip install 'cvxqreg[plot]')"),
        ("tqdm", version("tqdm") + "  (optional: progress bars, pip install 'cvxqreg[cli]')"),
        ("cupy", cupy_version() + "  (optional: GPU backend, pip install 'cvxqreg[gpu]')"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    try:
        import cvxpy as cp

        print(f"{'solvers'.ljust(width)}  CVXPY sees: {', '.join(cp.installed_solvers())}")
    except Exception as exc:  # informational only
        print(f"{'solvers'.ljust(width)}  (cannot list: {exc})")
    print(f"{'backends'.ljust(width)}  {', '.join(available_backends())}")
    be = get_backend("auto")
    print(f"{'auto'.ljust(width)}  {be.name} on {be.device} -- {be.reason}")
    return EXIT_OK


def _cmd_solve(args) -> int:
    if args.exact:
        _reject_regularized_options(args)
    elif args.solver != _exact_default():
        raise CLIError("--solver chooses the conic solver of --exact; --eps solves by the dual")
    problem = load_model(args.model, args.name)
    lp = lower(problem)
    print(f"model {args.model}: {lp.describe()}")
    if args.exact:
        from .solvers.exact import solve_exact

        _say_exact(args, lp, args.solver)
        res = solve_exact(lp, args.solver, verbose=args.verbose)
        ok = res.converged
    else:
        from .solvers.regularized import DualSolver

        bar = _bar(args, desc=f"{args.regularizer} eps={args.eps:g}", unit="it")

        def progress(k, value, gnorm):
            bar.update(1)
            if k % 10 == 0:
                bar.set_postfix_str(f"D={value:.8g} |grad|={gnorm:.1e}", refresh=False)

        solver = DualSolver.from_options(
            {**_solver_options(args), "regularizer": args.regularizer, "progress": progress},
            where="cvxqreg solve",
        )
        try:
            res = solver(lp, args.eps)
        finally:
            bar.close()
        ok = res.converged
    print(res.summary())
    if args.save_state:
        if res.X is None:
            _note(f"no state to save (status {res.status}); {args.save_state} not written")
        else:
            _write(args.save_state, lambda p: np.save(p, res.X))
            print(f"state written to {args.save_state}")
    if not ok:
        msg = getattr(res, "message", "") or ""
        if args.exact:
            msg = f"measured accuracy {res.accuracy:.1e}, accepted at <= {EXACT_ACCURACY:g}"
        _err(f"the solve did not converge (status: {res.status}){': ' + msg if msg else ''}")
        return EXIT_FAILED
    return EXIT_OK


def _reject_regularized_options(args) -> None:
    """``solve --exact`` with an option of the regularized solver: a usage error, not a silent
    no-op (``--verbose`` applies to both)."""
    from .solvers.regularized import DualSolver

    defaults = DualSolver.defaults()
    given = [
        _flag(name)
        for name in _SOLVER_FLAGS
        if name != "verbose" and getattr(args, name) != defaults[name]
    ]
    if args.regularizer != defaults["regularizer"]:
        given.insert(0, "--regularizer")
    if given:
        raise CLIError(
            f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the regularized solve "
            "(--eps); the exact SDP (--exact) takes only --solver and --verbose"
        )


def _flag(name: str) -> str:
    """The command-line flag of DualSolver option ``name``."""
    return _SOLVER_FLAGS[name].get("flag", "--" + name.replace("_", "-"))


def _run_sweep(lp, args, label: str | None = None):
    """Reference solve plus regularized sweep with a progress bar; returns the SweepResult."""
    from .sweep import sweep

    ref = None
    if args.reference != "none":
        from .solvers.exact import solve_exact

        _say_exact(args, lp, args.reference)
        ref = solve_exact(lp, args.reference, verbose=args.verbose)
    bar = _bar(
        args, total=len(set(args.eps)) * len(args.regularizers), desc=label or "sweep", unit="solve"
    )

    def on_solve(name, eps, res):
        bar.update(1)
        bar.set_postfix_str(f"last: {name} eps={eps:.0e} {res.status}")

    try:
        out = sweep(
            lp,
            eps=args.eps,
            regularizers=args.regularizers,
            reference=ref,
            warm_start=not args.no_warm_start,
            on_solve=on_solve,
            **_solver_options(args),
        )
    finally:
        bar.close()
    return out


def _say_exact(args, lp, solver: str) -> None:
    """Say on stderr what the (possibly long, otherwise silent) exact solve is doing."""
    if args.quiet:
        return
    hint = "" if args.verbose else "; --verbose shows the solver's log"
    _note(
        f"solving the exact SDP (D={lp.dim}, m={lp.n_rows} rows) with {solver.upper()} to "
        f"tight tolerances: this can take minutes for D in the hundreds{hint}"
    )


def _report_sweep(result, args) -> int:
    """Print the table, write the requested files and plots; the exit code from the statuses."""
    print(result.to_markdown() if args.markdown else str(result))
    if args.csv:
        _write(args.csv, result.to_csv)
        print(f"CSV written to {args.csv}")
    if args.json:
        _write(args.json, result.to_json)
        print(f"JSON written to {args.json}")
    for path, kind in ((args.plot, "zero_temperature"), (args.convergence, "convergence")):
        if path:
            _plot(result, path, kind, required=args.command != "demo")
    failed = []
    ref = result.reference
    if ref is not None and not ref.converged:
        failed.append(f"reference {ref.solver}: {ref.status}, accuracy {ref.accuracy:.1e}")
    failed += [
        f"{r.regularizer} eps={r.eps:.0e}: {r.status}"
        for r in result.rows
        if r.status != "converged"
    ]
    if failed:
        n = len(result.rows) + (ref is not None)
        _err(f"{len(failed)} of {n} solves did not converge ({'; '.join(failed)})")
        return EXIT_FAILED
    return EXIT_OK


def _plot(result, path: str, kind: str, required: bool) -> None:
    try:
        import matplotlib
    except ImportError:
        msg = f"matplotlib is not installed, so {path} was not written: pip install 'cvxqreg[plot]'"
        if required:
            raise CLIError(msg, EXIT_FAILED) from None
        _note("note: " + msg)
        return
    matplotlib.use("Agg")  # never open a window from the command line
    import matplotlib.pyplot as plt

    from .plotting import plot_convergence, plot_zero_temperature

    if kind == "zero_temperature":
        fig = plot_zero_temperature(result)
    else:
        fig = plot_convergence(result, "grad_norm")
    try:
        _write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
    finally:
        plt.close(fig)
    what = "zero-temperature plot" if kind == "zero_temperature" else "convergence plot"
    print(f"{what} written to {path}")


def _write(path: str, writer) -> None:
    try:
        writer(path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED) from None
    except ValueError as exc:  # e.g. matplotlib: unknown file format
        raise CLIError(f"cannot write {path}: {exc}") from None


def _check_plot_paths(args) -> None:
    """Fail before solving when a requested plot cannot be written (no matplotlib, bad suffix).

    Without matplotlib the demo only notes that its plot is skipped; ``sweep`` stops (exit 2).
    """
    paths = [p for p in (args.plot, args.convergence) if p]
    if not paths:
        return
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        if args.command == "demo":
            return  # noted when the plot would be written
        raise CLIError(
            "--plot/--convergence need matplotlib, which is not installed: "
            "pip install 'cvxqreg[plot]'"
        ) from None
    supported = FigureCanvasBase.get_supported_filetypes()
    for p in paths:
        ext = Path(p).suffix.lower().lstrip(".")
        if ext not in supported:
            kinds = ", ".join(f".{e}" for e in ("png", "pdf", "svg") if e in supported)
            what = f"unknown plot format {ext!r}" if ext else "no file suffix"
            raise CLIError(f"cannot write {p}: {what}; use e.g. {kinds}")


def _cmd_sweep(args) -> int:
    _check_plot_paths(args)
    problem = load_model(args.model, args.name)
    lp = lower(problem)
    print(f"model {args.model}: {lp.describe()}")
    result = _run_sweep(lp, args)
    return _report_sweep(result, args)


def _cmd_certify(args) -> int:
    from .certification import certify

    problem = load_model(args.model, args.name)
    lp = lower(problem)
    print(f"model {args.model}: {lp.describe()}")
    show = _progress_enabled(args)

    def progress(st):
        if show:
            _note(
                f"eps={st.eps:.2e} tol={st.tol:.0e} {st.status}: [{st.low:.12g}, {st.high:.12g}]"
                f" width {st.width:.3e} ({st.time:.2f} s)"
            )

    res = certify(
        lp,
        rtol=args.rtol,
        regularizer=args.regularizer,
        backend=args.backend,
        time_limit=args.time_limit,
        max_stages=args.max_stages,
        progress=progress,
    )
    print(res.summary())
    if res.note:
        print(f"  feasible end: {res.note}")
    if args.save_state and res.X is not None:
        np.save(args.save_state, res.X)
        print(f"feasible state saved to {args.save_state}")
    return EXIT_OK if res.certified else EXIT_FAILED


def _demo_problem(args):
    """The demo's CVXPY problem, a description and its closed-form optimum (or None)."""
    from .problems import two_point, wasserstein

    if args.problem == "two-point":
        inst = two_point(1.0, 2.0, hbar=1.0)
        text = (
            "quantum optimal transport between two-point coherent-state mixtures [CGP] "
            "(a=1, b=2, hbar=1, equal masses)"
        )
        return inst.problem, text, inst.reference_value
    inst = wasserstein(n_levels=args.levels)
    text = (
        f"quantum Wasserstein distance between two Gaussian states, {args.levels} Fock levels "
        f"each (QWD, D={args.levels**2})"
    )
    return inst.problem, text, inst.reference_value


def _cmd_demo(args) -> int:
    t0 = time.perf_counter()
    if args.no_plot:
        args.plot = None
    _check_plot_paths(args)
    problem, text, closed_form = _demo_problem(args)
    lp = lower(problem)
    print(f"cvxqreg demo: {text}")
    print(f"  lowered: {lp.describe()}")
    print(
        f"  exact SDP with {args.reference.upper()}, then min Tr[HX] + eps Tr[phi(X)] by "
        f"{_OPTIMIZER_TEXT[args.optimizer]} on the dual for {', '.join(args.regularizers)} "
        "at eps = "
        f"{', '.join(f'{e:g}' for e in sorted(set(args.eps), reverse=True))}"
    )
    if closed_form is not None:
        print(f"  closed-form optimum: F_0 = {closed_form:.10f}")
    print()
    result = _run_sweep(lp, args, label="demo")
    code = _report_sweep(result, args)
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return code


def _cmd_batch(args) -> int:
    """``cvxqreg batch``: many model files, or one model over a parameter grid (cvxqreg.batch)."""
    from . import batch

    try:
        files = batch.model_files(args.models)
        grid = dict(batch.parse_param(p) for p in args.param or ())
        client = batch.cli_client(args.scheduler)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    if grid and len(files) != 1:
        raise CLIError("--param scans one model file; got " + str(len(files)))
    if args.exact:
        eps, options = None, {"solver": args.solver}
    else:
        eps = args.eps or [1e-3]
        options = dict(
            regularizer=args.regularizer,
            backend=args.backend,
            tol=args.tol,
            max_iter=args.max_iter,
            time_limit=args.time_limit,
        )
    common = dict(
        method="exact" if args.exact else "solve",
        client=client,
        progress=_progress_enabled(args),
        keep_states=False,
    )
    try:
        if grid:
            result = batch.scan(load_model(files[0], args.name), grid, eps, **common, **options)
        else:
            problems = [load_model(f, args.name) for f in files]
            labels = [Path(f).name for f in files]
            result = batch.solve_many(problems, eps, labels=labels, **common, **options)
    finally:
        if not isinstance(client, str):
            client.close()
    print(result.to_markdown() if args.markdown else str(result))
    for path, writer in ((args.csv, result.to_csv), (args.json, result.to_json)):
        if path:
            _write(path, writer)
            print(f"table written to {path}")
    bad = result.failed
    if bad:
        what = "; ".join(f"{r['label']}: {r['status']}" for r in bad[:5])
        _err(f"{len(bad)} of {len(result)} rows did not converge ({what})")
        return EXIT_FAILED
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# the parser

_MAIN_EPILOG = """\
examples:
  cvxqreg demo                                   # QOT example: exact vs regularized, plot
  cvxqreg solve model.py --exact                 # exact SDP with SCS
  cvxqreg solve model.py --eps 1e-3              # entropy-regularized (von Neumann)
  cvxqreg sweep model.py --eps 1 1e-2 1e-4 --plot limit.png --csv sweep.csv
  cvxqreg certify model.py --rtol 1e-4           # certified bracket [L, U] on the exact optimum
  cvxqreg info                                   # versions and backends

A model file is a Python file that assigns a cvxpy.Problem over one Hermitian (or real
symmetric) matrix variable to the name `problem`, for example:

  import cvxpy as cp, numpy as np
  H = np.diag([1.0, 2.0, 3.0])
  X = cp.Variable((3, 3), hermitian=True)
  problem = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), [X >> 0, cp.trace(X) == 1])

exit codes: 0 success; 1 a solve did not converge, a solver failed or the data are infeasible;
2 usage error (bad option, unreadable model file, invalid input, unsupported model).
Progress bars (tqdm) appear when stderr is a terminal; --quiet turns them off.
"""


def _eliminate(text: str):
    v = text.strip().lower()
    table = {"auto": "auto", "yes": True, "true": True, "no": False, "false": False}
    if v not in table:
        raise argparse.ArgumentTypeError(f"must be auto, yes or no, got {text!r}")
    return table[v]


def _nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


#: optimizer name -> how the CLI and the demo describe it
_OPTIMIZER_TEXT = {
    "newton": "regularized Newton with eps-continuation",
    "lbfgs": "L-BFGS with eps-continuation",
    "scipy": "SciPy's L-BFGS-B with eps-continuation",
}

#: command-line flag of each DualSolver option (the defaults come from DualSolver itself);
#: ``regularizer`` (--regularizer / --regularizers) and ``progress`` (the progress bar) are
#: handled by the sub-commands.
_SOLVER_FLAGS = {
    "backend": dict(
        type=str.lower,
        choices=("auto", "numpy", "cupy"),
        help="array backend of the regularized solver (auto = CuPy with a GPU)",
    ),
    "tol": dict(type=_positive_float, help="stop when ||grad D_eps||_2 < TOL"),
    "max_iter": dict(type=_positive_int, help="iteration cap per solve (all eps stages)"),
    "time_limit": dict(
        type=_positive_float, metavar="SECONDS", help="wall-time limit per regularized solve"
    ),
    "optimizer": dict(
        type=str.lower,
        choices=tuple(_OPTIMIZER_TEXT),
        help="newton: regularized Newton; lbfgs: L-BFGS (the paper's method); scipy: L-BFGS-B",
    ),
    "hessian": dict(type=str.lower, choices=HESSIAN_MODES, help="how Newton solves for its step"),
    "hessian_products": dict(
        type=str.lower,
        choices=HESSIAN_PRODUCTS,
        help="Hessian-vector products: full, or on the top eigenvalues only (low_rank)",
    ),
    "preconditioner": dict(
        type=str.lower,
        choices=PRECONDITIONERS,
        help="Newton-CG's preconditioner: marginal (bipartite marginal problems; marginal_dense: "
        "as a factored m x m matrix), pauli (Pauli rows) or none",
    ),
    "regularization": dict(
        type=_nonnegative_float, help="Newton's Levenberg-Marquardt constant kappa (0: plain)"
    ),
    "memory": dict(type=_positive_int, help="L-BFGS memory (correction pairs)"),
    "eliminate": dict(
        type=_eliminate, help="eliminate the trace row from the dual: auto, yes or no"
    ),
    "continuation": dict(flag="--no-continuation", help="solve the target eps directly"),
    "stage_tol": dict(type=_positive_float, help="gradient tolerance of intermediate eps stages"),
    "stage_reduction": dict(
        type=_stage_reduction,
        help="an intermediate eps stage also reduces ||grad D|| by this factor from its warm "
        "start: a number in (0, 1], or none",
    ),
    "ladder_ratio": dict(type=_positive_float, help="ratio between successive eps stages"),
    "predictor": dict(flag="--no-predictor", help="no secant warm start between eps stages"),
    "tangent_predictor": dict(
        flag="--no-tangent-predictor",
        help="do not try the path's tangent as the warm start of each eps stage",
    ),
    "marginal_scaling": dict(
        flag="--no-marginal-scaling",
        help="no operator-Sinkhorn steps between Newton steps on coupling problems",
    ),
    "facial_reduction": dict(
        flag="--no-facial-reduction",
        help="solve couplings with singular marginals in the full space, not on their face",
    ),
    "phase_gauge": dict(
        type=_eliminate,
        help="solve complex couplings that are real in a phase gauge as that real problem: "
        "auto (from D = 100 on), yes or no",
    ),
    "verbose": dict(flag="--verbose", help="print a solve log (stages, iterations, times)"),
}
_CLI_HANDLED = ("regularizer", "progress")


def _dual_solver_default(name: str):
    from .solvers.regularized import DualSolver

    return DualSolver.defaults()[name]


def _add_solver_options(p: argparse.ArgumentParser) -> None:
    from .solvers.regularized import DualSolver

    defaults = DualSolver.defaults()
    for name, spec in _SOLVER_FLAGS.items():
        spec = dict(spec)
        default = defaults[name]
        spec.pop("flag", None)
        flag = _flag(name)
        if isinstance(default, bool):
            action = "store_false" if default else "store_true"
            p.add_argument(flag, dest=name, action=action, default=default, **spec)
            continue
        shown = "none" if default is None else default
        spec["help"] = f"{spec['help']} (default: {shown})"
        p.add_argument(flag, dest=name, default=default, **spec)


def _solver_options(args) -> dict:
    """The DualSolver options given on the command line (all of them, defaults included)."""
    return {name: getattr(args, name) for name in _SOLVER_FLAGS}


def _add_sweep_options(p: argparse.ArgumentParser, plot_default: str | None) -> None:
    p.add_argument(
        "--eps",
        nargs="+",
        action=_EpsList,
        default=list(_DEFAULT_EPS),
        metavar="EPS",
        help="regularization strengths, space- or comma-separated (default: "
        f"{' '.join(f'{e:g}' for e in _DEFAULT_EPS)})",
    )
    p.add_argument(
        "--regularizers",
        nargs="+",
        action=_RegList,
        default=list(_DEFAULT_REGS),
        metavar="REG",
        help=f"von_neumann, quadratic, tsallis:ORDER (default: {' '.join(_DEFAULT_REGS)})",
    )
    p.add_argument(
        "--reference",
        default=_exact_default(),
        type=str.lower,
        choices=(*_exact_solvers(), "none"),
        help=f"conic solver of the exact reference F_0, or none (default: {_exact_default()})",
    )
    _add_solver_options(p)
    p.add_argument("--no-warm-start", action="store_true", help="solve every eps from alpha = 0")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--csv", metavar="FILE", help="write all rows as CSV")
    p.add_argument("--json", metavar="FILE", help="write rows and reference as JSON")
    if plot_default is None:
        p.add_argument(
            "--plot", metavar="FILE", help="write the zero-temperature plot (.png, .pdf, ...)"
        )
    else:
        p.add_argument(
            "--out",
            "--plot",
            dest="plot",
            metavar="FILE",
            default=plot_default,
            help=f"where to write the zero-temperature plot (default: {plot_default})",
        )
        p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument(
        "--convergence",
        metavar="FILE",
        help="also write the convergence plot (gradient norm per iteration, one panel per eps)",
    )


def _exact_default() -> str:
    """The exact solve's default conic solver (one place: ``solvers.exact.DEFAULT_SOLVER``)."""
    return _exact.DEFAULT_SOLVER.lower()


def _exact_solvers() -> tuple[str, ...]:
    return tuple(name.lower() for name in _exact.DEFAULT_SETTINGS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cvxqreg`` command (sub-commands demo, solve, sweep, info)."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or progress notes"
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Solve SDPs over density matrices written in CVXPY: exactly (SCS/Clarabel) and "
            "entropy-regularized (regularized Newton with eps-continuation on the dual by "
            "default, or L-BFGS), and compare the two as eps -> 0."
        ),
        epilog=_MAIN_EPILOG,
        formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=fmt,
        help="solve a small quantum optimal transport problem exactly and regularized",
        description=(
            "Solve a small quantum optimal transport problem exactly (SCS) and entropy-"
            "regularized over an eps ladder (von Neumann and quadratic), print the comparison "
            "table and write the zero-temperature plot."
        ),
        epilog="""\
examples:
  cvxqreg demo
  cvxqreg demo --eps 1 1e-2 --regularizers von_neumann --out demo.pdf
  cvxqreg demo --problem two-point --markdown --csv demo.csv --json demo.json
  cvxqreg demo --levels 3 --convergence demo-convergence.png
""",
    )
    demo.add_argument(
        "--problem",
        choices=("wasserstein", "two-point"),
        default="wasserstein",
        help="wasserstein (default): truncated quantum Wasserstein cost between two Gaussian "
        "states, D = LEVELS^2; two-point: the coherent-state example of Caglioti-Golse-Paul, "
        "D = 4, closed-form optimum (a - b)^2 = 1",
    )
    demo.add_argument(
        "--levels",
        type=_positive_int,
        default=4,
        help="Fock levels per factor for --problem wasserstein (D = LEVELS^2; default: 4)",
    )
    _add_sweep_options(demo, plot_default="cvxqreg-demo.png")
    demo.set_defaults(func=_cmd_demo)

    solve = sub.add_parser(
        "solve",
        parents=[common],
        formatter_class=fmt,
        help="solve the CVXPY problem of a model file (exact or regularized)",
        description=(
            "Load MODEL.py (a Python file assigning a cvxpy.Problem to `problem`), lower it to "
            "operator form and solve it: --exact with a conic solver, or regularized at --eps."
        ),
        epilog="""\
examples:
  cvxqreg solve model.py --exact
  cvxqreg solve model.py --exact --solver clarabel
  cvxqreg solve model.py --eps 1e-3 --regularizer quadratic --save-state X.npy

exit code 1 when the exact solution's measured accuracy (the largest relative primal residual,
dual infeasibility, duality gap or PSD violation) exceeds 1e-6, whatever status string the
conic solver reports, or when a regularized solve is not "converged" (||grad||_2 >= TOL).
""",
    )
    solve.add_argument("model", metavar="MODEL.py", help="the model file")
    solve.add_argument(
        "--name", default="problem", help="the variable holding the problem (default: problem)"
    )
    mode = solve.add_mutually_exclusive_group(required=True)
    mode.add_argument("--exact", action="store_true", help="solve the exact SDP (eps = 0)")
    mode.add_argument(
        "--eps", type=_positive_float, help="solve the regularized problem at this eps > 0"
    )
    solve.add_argument(
        "--solver",
        default=_exact_default(),
        type=str.lower,
        choices=_exact_solvers(),
        help=f"conic solver for --exact (default: {_exact_default()})",
    )
    solve.add_argument(
        "--regularizer",
        default=_dual_solver_default("regularizer"),
        type=_check_regularizer,
        help="von_neumann, quadratic or tsallis:ORDER "
        f"(default: {_dual_solver_default('regularizer')})",
    )
    _add_solver_options(solve)
    solve.add_argument(
        "--save-state", metavar="FILE.npy", help="save the optimal state X with numpy.save"
    )
    solve.set_defaults(func=_cmd_solve)

    sw = sub.add_parser(
        "sweep",
        parents=[common],
        formatter_class=fmt,
        help="regularized solves over an eps ladder, compared with the exact SDP",
        description=(
            "Load MODEL.py, solve the exact SDP for the reference F_0 and the regularized problem "
            "for every eps (largest first, warm-started) and regularizer, and print the table of "
            "|F_eps - F_0|, |Tr[H X_eps] - F_0|, ||X_eps - X_0||_1, certified bounds, status."
        ),
        epilog="""\
examples:
  cvxqreg sweep model.py
  cvxqreg sweep model.py --eps 1,1e-1,1e-2 --regularizers von_neumann --markdown
  cvxqreg sweep model.py --plot limit.pdf --convergence conv.png --csv rows.csv --json rows.json

exit code 1 when any solve (reference included) did not converge; the table is printed anyway.
""",
    )
    sw.add_argument("model", metavar="MODEL.py", help="the model file")
    sw.add_argument(
        "--name", default="problem", help="the variable holding the problem (default: problem)"
    )
    _add_sweep_options(sw, plot_default=None)
    sw.set_defaults(func=_cmd_sweep)

    bt = sub.add_parser(
        "batch",
        parents=[common],
        formatter_class=fmt,
        help="many model files, or one model over a parameter grid (serial or on Dask)",
        description=(
            "Solve every model file given (a folder contributes its *.py files), or one model "
            "for every point of a --param grid, and print the table: one row per (task, eps). "
            "Tasks run serially, on a LocalCluster (--scheduler local) or on a running Dask "
            "scheduler (--scheduler tcp://HOST:8786); see docs/batch.md."
        ),
        epilog="""\
examples:
  cvxqreg batch models/ --eps 1e-1 1e-3 --csv batch.csv
  cvxqreg batch models/ --exact --scheduler local --json batch.json
  cvxqreg batch model.py --param lam=0:1:11 --param mu=1,2 --eps 1e-3 --markdown

A scanned parameter is a cvxpy.Parameter of the model with that name (scalar values).
exit code 1 when any row did not converge (status "error" marks a task that raised).
""",
    )
    bt.add_argument("models", nargs="+", metavar="MODEL", help="model files or folders")
    bt.add_argument(
        "--name", default="problem", help="the variable holding the problem (default: problem)"
    )
    bt.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUES",
        help="scan a parameter: NAME=V1,V2,... or NAME=START:STOP:NUM (repeat for a grid)",
    )
    bmode = bt.add_mutually_exclusive_group()
    bmode.add_argument("--exact", action="store_true", help="solve the exact SDPs (eps = 0)")
    bmode.add_argument(
        "--eps",
        nargs="+",
        action=_EpsList,
        metavar="EPS",
        help="regularization strengths, solved largest first in each task (default: 1e-3)",
    )
    bt.add_argument(
        "--solver",
        default=_exact_default(),
        type=str.lower,
        choices=_exact_solvers(),
        help=f"conic solver for --exact (default: {_exact_default()})",
    )
    bt.add_argument(
        "--regularizer",
        default="von_neumann",
        type=_check_regularizer,
        help="(default: von_neumann)",
    )
    _add_solver_options(bt)
    bt.add_argument(
        "--scheduler",
        default="serial",
        help="serial (default), local (a LocalCluster, one worker per core) or a Dask scheduler "
        "address such as tcp://HOST:8786",
    )
    bt.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    bt.add_argument("--csv", metavar="FILE", help="write all columns as CSV")
    bt.add_argument("--json", metavar="FILE", help="write all columns as JSON")
    bt.set_defaults(func=_cmd_batch)
    cert = sub.add_parser(
        "certify",
        parents=[common],
        formatter_class=fmt,
        help="bracket the exact optimum to a relative width (certified bounds)",
        description=(
            "Load MODEL.py and drive eps down with warm-started regularized solves until the "
            "certified interval [L, U] that contains the exact optimum F_0 has relative width "
            "<= RTOL (L by weak duality, U from a feasible state; docs/bounds.md)."
        ),
        epilog="""\
examples:
  cvxqreg certify model.py --rtol 1e-4
  cvxqreg certify model.py --rtol 1e-6 --time-limit 600 --save-state X.npy

exit code 1 when the width was not reached (time limit, stages, no strictly feasible state).
""",
    )
    cert.add_argument("model", metavar="MODEL.py", help="the model file")
    cert.add_argument(
        "--name", default="problem", help="the variable holding the problem (default: problem)"
    )
    cert.add_argument(
        "--rtol", type=_positive_float, default=1e-4, help="target relative width (default 1e-4)"
    )
    cert.add_argument(
        "--regularizer",
        default="von_neumann",
        type=_check_regularizer,
        help="von_neumann (default), quadratic or tsallis:ORDER",
    )
    cert.add_argument(
        "--backend", default="auto", type=str.lower, choices=("auto", "numpy", "cupy")
    )
    cert.add_argument(
        "--time-limit", type=_positive_float, default=None, metavar="SECONDS", help="total time"
    )
    cert.add_argument(
        "--max-stages", type=_positive_int, default=60, help="at most this many solves"
    )
    cert.add_argument(
        "--save-state", metavar="FILE.npy", help="save the feasible state with numpy.save"
    )
    cert.set_defaults(func=_cmd_certify)

    info = sub.add_parser(
        "info",
        parents=[common],
        formatter_class=fmt,
        help="versions, solvers and array backends",
        description="Print the versions of cvxqreg and its dependencies and the usable backends.",
    )
    info.set_defaults(func=_cmd_info)
    return parser


def _code_for(exc: CvxqregError) -> int:
    if isinstance(exc, InfeasibleDataError):
        return EXIT_FAILED
    if isinstance(exc, (InvalidInputError, UnsupportedModelError, BackendUnavailableError)):
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cvxqreg`` command line and return its exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 success, 1 a solve did not converge / a solver failed / infeasible data, 2 usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed the message)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except CLIError as exc:
        _err(str(exc))
        return exc.code
    except CvxqregError as exc:
        _err(str(exc))
        return _code_for(exc)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # e.g. `cvxqreg sweep m.py | head`: stop quietly
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes stdout
        return EXIT_FAILED
