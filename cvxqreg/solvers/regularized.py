"""The regularized solver: Newton-CG or L-BFGS on the (normalization-eliminated) dual.

    F_eps = min { Tr[H X] + eps Tr[phi(X)] : X >= 0, A(X) = q }
          = max_alpha D_eps(alpha)            (strong duality; docs/theory.md, 'The problems')

A :class:`DualSolver` is configured once (regularizer, backend, tolerances) and called on problems.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from ..bounds import bracket_of_solve, user_bracket
from ..errors import InfeasibleDataError, InvalidInputError
from ..problem import LoweredProblem
from ..regularizers import Regularizer, get_regularizer
from ..results import History, RegularizedResult, Status
from .bounded import bounded_lbfgs_maximize, projected_newton_maximize
from .continuation import chain, eps_ladder, stage_start
from .dual import HESSIAN_PRODUCTS, DualOracle, _check_eps
from .lbfgs import lbfgs_maximize_hz
from .newton import newton_cg_maximize
from .preconditioner import PRECONDITIONERS
from .scipy_lbfgs import scipy_lbfgs_maximize


def _newton(solver: DualSolver, oracle: DualOracle, x0, **common):
    """``optimizer="newton"``: :func:`cvxqreg.solvers.newton.newton_cg_maximize`."""
    return newton_cg_maximize(
        oracle,
        x0,
        hessian=solver.hessian,
        regularization=solver.regularization,
        products=solver.hessian_products,
        preconditioner=solver.preconditioner,
        scaling=solver.marginal_scaling,
        **common,
    )


def _lbfgs(solver: DualSolver, oracle: DualOracle, x0, **common):
    """``optimizer="lbfgs"``: :func:`cvxqreg.solvers.lbfgs.lbfgs_maximize_hz`."""
    return lbfgs_maximize_hz(
        fun_of(oracle), x0, memory=solver.memory, unit=oracle.value_unit(), **common
    )


def _scipy(solver: DualSolver, oracle: DualOracle, x0, **common):
    """``optimizer="scipy"``: :func:`cvxqreg.solvers.scipy_lbfgs.scipy_lbfgs_maximize`."""
    return scipy_lbfgs_maximize(fun_of(oracle), x0, memory=solver.memory, **common)


#: ``optimizer=`` name -> driver ``(solver, oracle, x0, **common) -> RunOutcome``; each name is
#: its module's (newton.py, lbfgs.py, scipy_lbfgs.py). Problems with inequality rows use the
#: bound-constrained drivers of :mod:`cvxqreg.solvers.bounded` instead.
OPTIMIZERS = {"newton": _newton, "lbfgs": _lbfgs, "scipy": _scipy}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
HESSIAN_MODES = ("auto", "dense", "cg")

__all__ = ["DualSolver", "infeasible_result", "print_progress", "solve", "solve_with"]


@dataclasses.dataclass(frozen=True)
class DualSolver:
    """Maximizes the regularized dual ``D_eps`` (Newton-CG or L-BFGS).

    Parameters
    ----------
    regularizer : str or Regularizer
        ``"von_neumann"`` (``z log z``), ``"quadratic"`` (``z^2/2``), ``"tsallis"`` (order via
        ``"tsallis:1.5"`` or a :class:`~cvxqreg.regularizers.Tsallis`), or any
        :class:`~cvxqreg.regularizers.Regularizer`.
    backend : {"auto", "numpy", "cupy"} or Backend
        ``"auto"`` uses CuPy when a GPU is present.
    tol : float
        Stop when ``||grad D_eps||_2 < tol`` (the paper's rule).
    max_iter : int
        Iteration cap over all eps stages of a solve (the paper uses 10000); a ladder that reaches
        it in an intermediate stage stops there with status ``max_iter``, its last iterate
        evaluated at the target eps.
    time_limit : float, optional
        Seconds, over all eps stages of a solve (likewise).
    memory : int
        L-BFGS memory (correction pairs).
    optimizer : {"newton", "lbfgs", "scipy"}
        ``"newton"`` (default): regularized Newton with the Daleckii-Krein Hessian
        (:mod:`cvxqreg.solvers.newton`). ``"lbfgs"``: L-BFGS, the paper's method, with an
        approximate-Wolfe line search that keeps converging when dual values stop resolving
        progress (:mod:`cvxqreg.solvers.lbfgs`). ``"scipy"``: SciPy's L-BFGS-B on the same dual,
        which stalls there. The default is the fastest configuration measured on the paper's
        workloads (``benchmarks/results/paper_tables_small.md``, ``optimizers.md``); L-BFGS can be
        faster on problems whose marginals are numerically rank deficient (Ising at ``D = 64``),
        where the dual optimum drifts to infinity. Starting each stage with L-BFGS and switching
        to Newton was measured too, and was slower on every instance tried.
    continuation : bool
        Solve down the eps ladder of :meth:`ladder`, each stage warm-started from the previous
        one and solved to ``stage_tol``, before the target eps (eps-scaling; docs/theory.md,
        'Continuation (eps-scaling)').
    stage_tol : float
        Gradient tolerance of the intermediate stages.
    stage_reduction : float or None
        From the second stage on, an intermediate stage also runs until ``||grad D||`` is at most
        this fraction of its value at the stage's warm start (or ``tol``), so that every stage
        moves its warm start towards the stage's optimum. ``None``: ``stage_tol`` alone, under
        which a start that already met ``stage_tol`` was passed down unchanged; on Ising such a
        start lay far from the optimum along a nearly flat direction of the dual, and the last
        stage stalled there (benchmarks/results/stage_reduction_vn.md,
        stage_reduction_quadratic.md).
    hessian : {"auto", "dense", "cg"}
        How Newton solves for its step: the dense ``m x m`` Hessian, factored (``"auto"`` when
        ``m D^3 <= 4e6``: small problems), or conjugate gradients on Hessian-vector products.
    hessian_products : {"auto", "full", "low_rank"}
        Newton-CG's Hessian-vector products: on the top block of eigenvalues only (``r x D``
        factors, exact to ``e^-37``; ``"auto"`` when that block is small), or the full product.
        ``"auto"`` also takes, for a regularizer with a constant curvature on its support
        (quadratic), the exact product from the block off the support when that block is small
        (a state of high rank).
    preconditioner : {"auto", "none", "marginal", "marginal_dense", "pauli"}
        Newton-CG's preconditioner: ``"marginal"``, the Kubo-Mori metrics of the two marginals
        of a bipartite marginal (transport) problem under the von Neumann regularizer, exact for
        product states, inverted in closed form (``O(n^3)`` per CG iteration) where the rows
        are coordinates of the marginals and else formed as an ``m x m`` matrix and factored;
        ``"marginal_dense"``: always the factored matrix (:mod:`cvxqreg.solvers.preconditioner`);
        ``"pauli"``: on Pauli rows (tomography), the Hessian with each divided difference
        replaced by the mean of its endpoints, an ``m x m`` matrix read from one Walsh-Hadamard
        transform and factored (:mod:`cvxqreg.solvers.pauli_preconditioner`); plain CG where
        they do not apply or fail; ``"none"``: plain CG; ``"auto"``: ``"marginal"`` where it
        applies, else ``"pauli"`` once a plain CG solve has needed 3 products.
    regularization : float
        ``kappa`` of Newton's Levenberg-Marquardt shift ``mu = kappa ||grad|| / max(eps, s)``
        (``s`` the cost's spread); 0 gives plain Newton.
    marginal_scaling : bool
        On a coupling problem (two positive definite marginals) under the von Neumann
        regularizer, follow each Newton step that did not halve ``||grad D||`` by a trial of the
        marginal scaling step, an operator-Sinkhorn step on the dual variable of the marginal
        that is further off (:mod:`cvxqreg.solvers.scaling`), kept when it raises ``D_eps`` and
        lowers ``||grad D||``. Newton's step gains a fixed amount of the exponent where a marginal
        is off by a large factor on a weakly weighted eigenvector (marginals with tiny
        eigenvalues, as QWD with many Fock levels); the scaling step corrects the factor at once.
    facial_reduction : bool
        Solve a coupling problem whose marginals are singular (eigenvalues at most ``1e-10`` of
        the largest) on its face ``supp(rho) (x) supp(sigma)`` (:mod:`cvxqreg.face`), where the
        dual optimum is attained, and lift the state back; status and ``grad_norm`` are judged
        on the data as given (docs/bounds.md, 'Singular marginals: the face of the couplings').
        Without it the dual drifts to infinity along the marginals' kernels and Newton needs
        hundreds of iterations at small eps (Ising, ``benchmarks/results/face.md``).
    phase_gauge : {"auto", True, False}
        Solve a coupling problem with complex data that are real in a diagonal phase gauge
        ``diag(g1) (x) diag(g2)`` (:func:`cvxqreg.face.coupling_gauge`) as that real problem, the
        same problem in another basis, and map the state and dual vector back: real instead of
        complex eigendecompositions (the paper's QWD instances;
        ``benchmarks/results/phase_gauge.md``). ``"auto"``: from
        :data:`cvxqreg.face.GAUGE_MIN_DIM` on, where that pays for finding the gauge and mapping
        back.
    predictor : bool
        With continuation, warm-start each stage from the secant extrapolation of the last two
        stages' ``alpha`` when that has the larger dual value
        (:func:`cvxqreg.solvers.continuation.predict`), where the tangent predictor gives no
        candidate (switched off, or its step rejected): with one, the secant never started a
        stage in the measured cases (docs/solvers.md, 'Optimizers and continuation').
    tangent_predictor : bool
        With continuation, also try the first-order step along the path of optima,
        ``alpha + (eps - eps_last) d alpha / d eps`` (one linear solve with the last stage's
        Hessian, :func:`cvxqreg.solvers.continuation.tangent`), and start each stage from the
        candidate with the largest dual value (benchmarks/results/stage_reduction_vn.md,
        stage_reduction_quadratic.md).
    progress : callable or bool, optional
        ``progress(k, D_k, ||grad_k||)`` after each iteration; ``True`` prints one line per
        iteration (:func:`print_progress`).
    verbose : bool
        Print a solve log: the problem's size, then one line per eps stage (eps, iterations,
        ``||grad||``, dual value, status, time) and the outcome.

    Notes
    -----
    Every entry point (:func:`solve`, :func:`cvxqreg.sweep`, the command line, and
    ``problem.solve(method="cvxqreg")``) builds its solver with :meth:`from_options` from the same
    keywords; the defaults above are the only ones. Every value is checked when the solver is
    built: a bad one raises :class:`~cvxqreg.errors.InvalidInputError` naming the option.
    """

    regularizer: Any = "von_neumann"
    backend: Any = "auto"
    tol: float = 1e-6
    max_iter: int = 10000
    time_limit: float | None = None
    memory: int = 10
    eliminate: bool | str = "auto"
    optimizer: str = "newton"
    continuation: bool = True
    stage_tol: float = 1e-3
    stage_reduction: float | None = 0.1
    ladder_ratio: float = 5.0
    hessian: str = "auto"
    hessian_products: str = "auto"
    preconditioner: str = "auto"
    regularization: float = 1e-3
    marginal_scaling: bool = True
    facial_reduction: bool = True
    phase_gauge: bool | str = "auto"
    predictor: bool = True
    tangent_predictor: bool = True
    progress: Any = None
    verbose: bool = False

    def __post_init__(self):
        object.__setattr__(self, "regularizer", get_regularizer(self.regularizer))
        object.__setattr__(self, "backend", get_backend(self.backend))
        if self.progress is True:
            object.__setattr__(self, "progress", print_progress)
        elif self.progress is False:
            object.__setattr__(self, "progress", None)
        elif self.progress is not None and not callable(self.progress):
            raise InvalidInputError(
                f"progress must be a callable progress(k, D_k, grad_norm), True or None, "
                f"got {self.progress!r}"
            )
        for name, low in (("tol", 0.0), ("stage_tol", 0.0), ("ladder_ratio", 1.0)):
            object.__setattr__(self, name, _number(name, getattr(self, name), above=low))
        if self.stage_reduction is not None:
            red = self.stage_reduction
            try:
                red = _number("stage_reduction", red, above=0.0)
            except InvalidInputError:
                red = np.nan
            if not red <= 1.0:
                raise InvalidInputError(
                    f"stage_reduction must be a number in (0, 1] or None, "
                    f"got {self.stage_reduction!r}"
                )
            object.__setattr__(self, "stage_reduction", red)
        object.__setattr__(self, "regularization", _number("regularization", self.regularization))
        if self.time_limit is not None:  # inf: no limit, as None
            limit = (
                None if self.time_limit == np.inf else _number("time_limit", self.time_limit, 0.0)
            )
            object.__setattr__(self, "time_limit", limit)
        for name in ("max_iter", "memory"):
            object.__setattr__(self, name, _count(name, getattr(self, name)))
        for name, choices in (
            ("optimizer", OPTIMIZER_NAMES),
            ("hessian", HESSIAN_MODES),
            ("hessian_products", HESSIAN_PRODUCTS),
            ("preconditioner", PRECONDITIONERS),
            ("eliminate", ("auto", True, False)),
            ("phase_gauge", ("auto", True, False)),
        ):
            _check_choice(name, getattr(self, name), choices)
        for name in (
            "continuation",
            "predictor",
            "tangent_predictor",
            "verbose",
            "facial_reduction",
            "marginal_scaling",
        ):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InvalidInputError(
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The names of the options, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}`` (the one place the defaults are written)."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    @classmethod
    def from_options(
        cls, options: dict[str, Any], where: str = "cvxqreg.solve", also: tuple[str, ...] = ()
    ) -> DualSolver:
        """A solver from keyword options; an unknown keyword raises
        ``InvalidInputError("unknown option 'x' of <where> (did you mean ...?); valid options:
        ...")``, the list naming the entry point's own keywords ``also`` after the options."""
        import difflib

        names = cls.option_names()
        for key in options:
            if key not in names:
                valid = names + tuple(also)
                close = difflib.get_close_matches(str(key), valid, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInputError(
                    f"unknown option {key!r} of {where}{hint}; valid options: {', '.join(valid)}"
                )
        return cls(**options)

    def ladder(self, problem: LoweredProblem, eps: float, eps0: float | None = None) -> list[float]:
        """The eps values solved in turn: ``[eps]``, or with continuation the geometric ladder
        ``eps r^K, ..., eps r^2, eps r, eps`` (``r = ladder_ratio``) whose top ``eps r^K`` is the
        largest such value not above the cost's spread ``s = lambda_max(H) - lambda_min(H)``
        (:func:`cvxqreg.solvers.continuation.eps_ladder`)."""
        if not self.continuation:
            return [eps]
        return eps_ladder(problem.cost_spread, eps, self.ladder_ratio, eps0)

    def _run(self, oracle: DualOracle, x0, *, tol, max_iter, time_limit):
        common = dict(
            tol=tol,
            max_iter=max_iter,
            time_limit=time_limit,
            callback=self.progress,
            stop_above=oracle.primal_upper_bound(),
        )
        if oracle.problem.has_inequalities:  # sign-constrained multipliers: a box-constrained dual
            if self.optimizer == "newton" and self._has_curvature:
                return projected_newton_maximize(
                    oracle, x0, hessian=self.hessian, regularization=self.regularization, **common
                )
            return bounded_lbfgs_maximize(
                fun_of(oracle), x0, oracle.problem, memory=self.memory, **common
            )
        name = self.optimizer
        if name == "newton" and not self._has_curvature:
            name = "lbfgs"
        return OPTIMIZERS[name](self, oracle, x0, **common)

    def _recession_certificate(self, problem: LoweredProblem) -> dict | None:
        """An approximate certificate that the SDP is unbounded, or ``None`` (not found).

        Without a fixed trace the SDP is unbounded exactly when, besides a feasible state, a
        recession direction ``R >= 0``, ``A(R) = 0`` (``<= 0`` on inequality rows),
        ``Tr[H R] < 0`` exists (docs/solvers.md, 'Unbounded problems'). The probe

            v* = min { Tr[H R] : R >= 0, Tr R = 1, A(R) = 0 (<= 0 on inequality rows) }

        has a fixed trace, so it is solved by this same dual machinery (entropy-regularized at
        ``1e-3 ||H||``). Its state ``R`` is an approximate certificate, in the sense SCS uses,
        when it passes :func:`recession_check`. A probe found infeasible, one whose certified
        bound is ``>= 0``, or an unresolved one give ``None``: the solve goes on as usual.
        """
        from ..operators import Dense, Stacked

        D, m, scale = problem.dim, problem.n_rows, problem.cost_norm
        if scale == 0.0:
            return None
        ineq = None if problem.inequality is None else np.append(problem.inequality, False)
        probe = LoweredProblem(
            problem.H,
            Stacked([problem.A, Dense(np.eye(D))]),
            np.append(np.zeros(m), 1.0),
            real=problem.real,
            inequality=ineq,
            blocks=problem.blocks,
        )
        solver = dataclasses.replace(
            self,
            regularizer="von_neumann",
            tol=1e-9,
            max_iter=min(self.max_iter, 300),
            progress=None,
            verbose=False,
        )
        r = solver(probe, 1e-3 * scale)
        if r.status == Status.INFEASIBLE or not r.certified_bound < 0 or r.X is None:
            return None
        cert = recession_check(problem, r.X)
        if cert is not None:
            cert.update(probe_iterations=r.iterations, probe_evals=r.n_evals)
        return cert

    @property
    def _has_curvature(self) -> bool:
        """Newton needs ``psi''``; a regularizer without it (a Custom without ``d2psi_fn``) is
        solved by L-BFGS."""
        return self.regularizer.has_curvature

    def __call__(
        self,
        problem: LoweredProblem,
        eps: float,
        alpha0=None,
        return_state: bool = True,
        eps0: float | None = None,
    ) -> RegularizedResult:
        """Solve ``problem`` at regularization ``eps``, warm-started from ``alpha0``.

        With continuation, ``eps0`` (the eps at which ``alpha0`` was computed) starts the ladder
        below ``eps0``; an ``alpha0`` without ``eps0`` is taken as close: no ladder."""
        with self.backend.threads_for(problem.dim):
            try:
                return self._solve(problem, eps, alpha0, return_state, eps0)
            except InfeasibleDataError as exc:  # data no X can satisfy: an honest status
                if self.verbose:
                    print(f"cvxqreg: infeasible data: {exc}")
                return infeasible_result(
                    str(exc), eps, self.regularizer.name, self.tol, problem.sense, problem.n_rows
                )

    def _solve(self, problem, eps, alpha0, return_state, eps0) -> RegularizedResult:
        eps = _check_eps(eps)
        be: Backend = self.backend
        reg: Regularizer = self.regularizer
        t0 = time.perf_counter()
        if problem.trace_value is None:  # X is not bounded by the constraints: is the SDP?
            unbounded = self._recession_certificate(problem)
            if unbounded is not None:
                return unbounded_result(unbounded, eps, self, problem, time.perf_counter() - t0)
        if self.facial_reduction and not problem.has_inequalities and _vanishes_at_zero(reg):
            from ..face import coupling_face

            face = coupling_face(problem)
            if face is not None:
                return self._solve_on_face(problem, face, eps, alpha0, return_state, eps0, t0)
        from ..face import GAUGE_MIN_DIM, coupling_gauge

        gauge_on = self.phase_gauge is True or (
            self.phase_gauge == "auto" and problem.dim >= GAUGE_MIN_DIM
        )
        if gauge_on and not problem.has_inequalities:
            gauge = coupling_gauge(problem)
            if gauge is not None:
                return self._solve_on_face(problem, gauge, eps, alpha0, return_state, eps0, t0)
        oracle = DualOracle(problem, eps, reg, be, eliminate=self.eliminate)
        m = problem.n_rows
        if alpha0 is None:
            x0 = np.zeros(m)
        else:
            x0 = np.asarray(alpha0, dtype=np.float64).reshape(-1)
            if x0.shape != (m,):
                raise InvalidInputError(f"alpha0 has {x0.size} entries, the problem has {m} rows")
            if not np.all(np.isfinite(x0)):
                raise InvalidInputError("alpha0 contains NaN or inf")

        # a warm start of unknown origin is taken as close to the answer: no ladder
        ladder = [eps] if alpha0 is not None and eps0 is None else self.ladder(problem, eps, eps0)
        log = print if self.verbose else _silent
        log(
            f"cvxqreg: {reg.name} eps={eps:.3g}, D={problem.dim} "
            f"({'real' if problem.real else 'Hermitian'}), m={m} rows, optimizer {self.optimizer}"
            f", tol {self.tol:g}, {len(ladder)} eps stage{'s' if len(ladder) > 1 else ''}"
            f"{', warm start' if alpha0 is not None else ''}, backend {be.name}"
        )
        outs, extra_evals = [], 0
        x = x0
        solved: list[tuple[float, np.ndarray]] = []  # (eps, alpha) of the finished stages
        for i, e in enumerate(ladder):
            final = i == len(ladder) - 1
            orc = oracle if final else oracle.with_eps(e)
            stage_tol = max(self.tol, self.stage_tol)
            used = sum(o.iterations for o in outs)
            if used >= self.max_iter:  # the cap counts the iterations of all stages
                outs[-1] = dataclasses.replace(outs[-1], status=Status.MAX_ITER)
                break
            if solved:
                last_eval = outs[-1].evaluation
                x, g0 = stage_start(
                    orc,
                    solved,
                    last_eval,
                    self.predictor,
                    self.tangent_predictor,
                    self.preconditioner,
                )
                if self.stage_reduction is not None and np.isfinite(g0):
                    stage_tol = max(self.tol, min(self.stage_tol, self.stage_reduction * g0))
            left = None if self.time_limit is None else self.time_limit - (time.perf_counter() - t0)
            out = self._run(
                orc,
                x,
                tol=self.tol if final else stage_tol,
                max_iter=self.max_iter - used,
                time_limit=None if left is None else max(left, 1e-3),
            )
            outs.append(out)
            extra_evals += 0 if final else orc.n_evals
            grad = float(out.history_grad[-1]) if len(out.history_grad) else float("nan")
            value = float(out.history_value[-1]) if len(out.history_value) else float("nan")
            log(
                f"  stage {i + 1}/{len(ladder)}  eps={e:.2e}  {out.iterations:5d} it  "
                f"||grad||={grad:.2e}  D={problem.user_value(value):.10g}  {out.status}  "
                f"{time.perf_counter() - t0:.3f} s"
            )
            x = out.x
            solved.append((e, x))
            if not final and out.status in (
                Status.FAILED,
                Status.INFEASIBLE,
                Status.TIME_LIMIT,
                Status.MAX_ITER,
            ):
                break
        out = chain(outs, ladder)
        # the driver's last evaluation (Newton keeps it) is at out.x: only the state is missing;
        # a ladder stopped before its last stage (time limit) ended at another eps, and the
        # value, state and bounds reported are those at the target eps: evaluate there
        if out.evaluation is None or len(outs) < len(ladder):
            ev = oracle.evaluate(out.x)
        else:
            ev = oracle.with_state(out.evaluation)
        status, message = out.status, out.message
        # stages saw what was left of the limit and the cap: report the user's, and the gradient
        # at the target eps (a stopped ladder's last stage had another eps)
        gnorm = float(np.linalg.norm(problem.projected_gradient(ev.alpha, ev.grad)))
        stages = f"[{len(outs)} of {len(ladder)} continuation stages]"
        if status == Status.TIME_LIMIT:
            message = (
                f"time limit of {self.time_limit:g} s reached with ||grad||_2 = {gnorm:.3e} "
                + stages
            )
        elif status == Status.MAX_ITER and len(ladder) > 1:
            message = f"{self.max_iter} iterations reached with ||grad||_2 = {gnorm:.3e} " + stages
        if not np.isfinite(ev.value):
            status, message = Status.FAILED, "the dual value is not finite at the last iterate"
            if problem.trace_value is None:
                message += (
                    "; the constraints do not fix the trace, and the regularized optimum is "
                    "beyond float64: the SDP is probably unbounded (see docs/solvers.md, "
                    "'Unbounded problems'; check with cvxqreg.solve_exact)"
                )
        energy, entropy = oracle.primal_parts(ev)
        if problem.trace_value is None and status != Status.INFEASIBLE and ev.X is not None:
            # the probe missed it, but the state itself may be a recession direction (a huge
            # X with Tr[H X] -> -inf and A(X) ~ q): never report that as a near-optimal value
            cert = recession_check(problem, be.to_host(ev.X))
            if cert is not None:
                cert.update(iterations=out.iterations, n_evals=oracle.n_evals + extra_evals)
                return unbounded_result(cert, eps, self, problem, time.perf_counter() - t0)
        usable = status not in (Status.FAILED, Status.INFEASIBLE)
        # L <= F_0 <= U (min form)
        lb, ub = bracket_of_solve(oracle, ev, usable=usable, need_state=return_state)
        bracket = user_bracket(problem, lb, ub.value)
        be.synchronize()
        elapsed = time.perf_counter() - t0
        log(f"cvxqreg: {status} after {out.iterations} iterations, {elapsed:.3f} s: {message}")
        sense, user = problem.sense, problem.user_value
        hist = History(
            iteration=out.history_iter,
            dual_value=np.array([user(v) for v in out.history_value]),
            grad_norm=out.history_grad,
            time=out.history_time,
            eps=out.history_eps
            if out.history_eps is not None
            else np.full(len(out.history_iter), eps),
        )
        return RegularizedResult(
            status=status,
            message=message,
            eps=eps,
            regularizer=reg.name,
            tol=self.tol,
            value=user(energy + eps * entropy),
            energy=user(energy),
            dual_value=user(ev.value),
            entropy=entropy,
            grad_norm=gnorm,
            certified_bound=user(lb),
            bracket=bracket,
            feasible_bound=user(ub.value),
            bound_note=ub.note,
            iterations=out.iterations,
            n_evals=oracle.n_evals + extra_evals,
            time=elapsed,
            alpha=ev.alpha,
            X=be.to_host(ev.X) if return_state else None,
            feasible_state=ub.X if return_state else None,
            history=hist,
            backend=be.name,
            sense=sense,
            extras={
                "eliminated": oracle.c is not None,
                "optimizer": (
                    (
                        "projected newton"
                        if self.optimizer == "newton" and self._has_curvature
                        else "scipy L-BFGS-B"
                    )
                    + " (inequality rows: bound-constrained dual)"
                    if problem.has_inequalities
                    else self.optimizer
                    if self.optimizer != "newton" or self._has_curvature
                    else "lbfgs (the regularizer has no psi'')"
                ),
                "trace": oracle.tau,
                "device": be.device,
                "bound_time": ub.time,  # seconds spent on the feasible bound (cvxqreg.bounds)
            },
        )

    def _solve_on_face(self, problem, face, eps, alpha0, return_state, eps0, t0):
        """:meth:`_solve` for a coupling problem with singular marginals: solve its face problem
        (positive definite marginals, dimension ``r1 r2``), lift the state ``X = V Y V^*`` and
        judge it on the data as given (``||q - A(X)||``); the lower end is the face's dual vector
        lifted to the original data (:func:`cvxqreg.face.lifted_lower_bound`, rigorous), the
        upper end the face's feasible state lifted (exact for the marginals with the dropped
        eigenvalues set to zero).

        The same for a phase gauge (``face.kind == "gauge"``, :func:`cvxqreg.face.coupling_gauge`):
        ``V`` is a diagonal unitary, nothing is dropped, and the problem solved is the given
        one in another basis."""
        from ..bounds import _host_op
        from ..face import lifted_lower_bound, restrict_dual

        a0 = None
        if alpha0 is not None:
            x0 = np.asarray(alpha0, dtype=np.float64).reshape(-1)
            if x0.shape != (problem.n_rows,) or not np.all(np.isfinite(x0)):
                raise InvalidInputError(
                    f"alpha0 must hold {problem.n_rows} finite entries, one per row of the problem"
                )
            a0 = restrict_dual(problem, face, x0)
        where = "on the face" if face.kind == "face" else "in a real phase gauge"
        if self.verbose:
            reduction = "facial reduction" if face.kind == "face" else "phase gauge"
            print(f"cvxqreg: {reduction}: {face.describe()}")
        sub = self(face.problem, eps, alpha0=a0, return_state=True, eps0=eps0)
        if sub.X is None or sub.status == Status.INFEASIBLE:
            return dataclasses.replace(sub, sense=problem.sense, time=time.perf_counter() - t0)

        def residual(Y):
            X = face.lift(Y)
            AX = _host_op(problem).apply(X.real if problem.real else X)
            return X, float(np.linalg.norm(problem.q - np.asarray(AX, dtype=np.float64)))

        X, gnorm = residual(sub.X)
        # the face's rows are not the original's (another redundant row is dropped, another
        # basis), so ||grad|| < tol there can leave ||q - A(X)|| just above tol here (measured:
        # 1.06e-3 against 9.9e-4): tighten the face's tolerance, warm-started, while the dropped
        # eigenvalues leave room
        iterations, n_evals = sub.iterations, sub.n_evals
        tightened, capped = None, False
        for _ in range(3):
            if not (sub.status == Status.CONVERGED and gnorm >= self.tol):
                break
            if not face.dropped * math.sqrt(2 * sum(face.dims)) < 0.25 * self.tol:
                break
            tighter = dataclasses.replace(self, tol=0.5 * self.tol * min(1.0, self.tol / gnorm))
            left = None if self.time_limit is None else self.time_limit - (time.perf_counter() - t0)
            if left is not None and left <= 0:
                break
            if left is not None:
                tighter = dataclasses.replace(tighter, time_limit=left)
            if iterations >= self.max_iter:  # the cap covers the re-solves too
                capped = True
                break
            tighter = dataclasses.replace(tighter, max_iter=self.max_iter - iterations)
            again = tighter(face.problem, eps, alpha0=sub.alpha, return_state=True)
            if again.X is None or again.status not in (Status.CONVERGED, Status.PRECISION_LIMIT):
                break
            iterations, n_evals = iterations + again.iterations, n_evals + again.n_evals
            sub, tightened = again, tighter.tol
            X, gnorm = residual(sub.X)
        # the face's values are in minimization form without offset, as the problem's internal
        # ones; the lift cannot beat the face's own bound: stop within 1e-9 relative of it
        target = sub.certified_bound - 1e-9 * max(1.0, abs(sub.certified_bound))
        usable = sub.status not in (Status.FAILED, Status.INFEASIBLE)
        if usable:
            low, alpha = lifted_lower_bound(problem, face, sub.alpha, target=target)
        else:
            low, alpha = -np.inf, lifted_lower_bound(problem, face, sub.alpha, golden=0)[1]
        high = sub.feasible_bound
        status, message = sub.status, sub.message
        if status == Status.CONVERGED and not gnorm < self.tol and capped:
            status = Status.MAX_ITER
            message = (
                f"{self.max_iter} iterations reached {where} with ||q - A(X)||_2 = {gnorm:.3e} "
                "on the data as given"
            )
        elif status == Status.CONVERGED and not gnorm < self.tol:
            status = Status.PRECISION_LIMIT
            message = (
                f"converged {where} (||grad||_2 = {sub.grad_norm:.3e}), but on the data as "
                f"given ||q - A(X)||_2 = {gnorm:.3e} >= tol: "
                + (
                    f"the marginals' eigenvalues below the cut (at most {face.dropped:.1e}) are "
                    "not matched"
                    if face.kind == "face"
                    else f"the gauged marginals' imaginary rounding (at most {face.dropped:.1e}) "
                    "was dropped"
                )
            )
        if tightened is not None:
            message += (
                f" (the face's tolerance tightened to {tightened:.1e} so that ||q - A(X)||_2 = "
                f"{gnorm:.3e} on the data as given)"
            )
        message += f" [solved {where}: {face.describe()}]"
        user = problem.user_value
        hist = sub.history
        hist = dataclasses.replace(hist, dual_value=np.array([user(v) for v in hist.dual_value]))
        fs = sub.feasible_state
        return dataclasses.replace(
            sub,
            iterations=iterations,
            n_evals=n_evals,
            status=status,
            message=message,
            value=user(sub.value),
            energy=user(sub.energy),
            dual_value=user(sub.dual_value),
            grad_norm=gnorm,
            certified_bound=user(low),
            bracket=user_bracket(problem, low, high),
            feasible_bound=user(high),
            bound_note=(
                f"{face.describe()}; upper end on that face (exact for the marginals with those "
                f"eigenvalues set to zero): {sub.bound_note}; lower end: the face's dual vector "
                "lifted to the data as given"
                if face.kind == "face"
                else f"{face.describe()}; upper end in that gauge: {sub.bound_note}; lower end: "
                "the gauge's dual vector mapped back and scored on the data as given"
            ),
            time=time.perf_counter() - t0,
            alpha=alpha,
            X=X if return_state else None,
            feasible_state=None if (fs is None or not return_state) else face.lift(fs),
            history=hist,
            sense=problem.sense,
            extras=(
                {**sub.extras, "face": face.describe(), "face_dim": face.problem.dim}
                if face.kind == "face"
                else {**sub.extras, "gauge": face.describe()}
            ),
        )


def _vanishes_at_zero(reg: Regularizer) -> bool:
    """Whether ``phi(0) = 0``: then ``Tr[phi(V Y V^*)] = Tr[phi(Y)]`` and the regularized problem
    on a face is the same problem."""
    try:
        with np.errstate(all="ignore"):
            return float(np.asarray(reg.phi(np.zeros(1)), dtype=np.float64)[0]) == 0.0
    except Exception:  # a user-defined phi that rejects arrays: no facial reduction
        return False


def solve(
    problem, eps: float, regularizer=None, *, alpha0=None, eps0: float | None = None, **options
) -> RegularizedResult:
    """Solve ``min Tr[H X] + eps Tr[phi(X)]`` s.t. ``X >= 0, A(X) = q`` through its dual.

    The dual ``D_eps(alpha) = <alpha, q> - eps Tr[psi((A*(alpha) - H)/eps)]`` is maximized
    (Newton-CG with eps-continuation by default, L-BFGS with ``optimizer="lbfgs"``) until
    ``||grad D_eps||_2 < tol``; the state is ``X = psi'((A*(alpha) - H)/eps)``.

    Parameters
    ----------
    problem : cvxpy.Problem or LoweredProblem
        A CVXPY problem is lowered first (:func:`cvxqreg.lower`) and, as after
        ``problem.solve(method="cvxqreg")``, its variable, value, status, duals and
        ``solver_stats`` are set from the result; a :class:`LoweredProblem` is left as it is.
    eps : float
        Regularization strength ``> 0``.
    regularizer : str or Regularizer, optional
        ``"von_neumann"`` (the default), ``"quadratic"``, ``"tsallis:1.5"``, or a
        :class:`~cvxqreg.regularizers.Regularizer` such as ``Tsallis(1.5)``.
    alpha0 : array_like, optional
        Warm start (e.g. the ``alpha`` of a solve at a larger ``eps``).
    eps0 : float, optional
        The eps at which ``alpha0`` was computed: continuation then starts below it (see
        :meth:`DualSolver.__call__`).
    **options
        Any option of :class:`DualSolver` (``tol``, ``max_iter``, ``time_limit``, ``optimizer``,
        ``hessian``, ``progress``, ``verbose``, ...); an unknown keyword raises
        :class:`~cvxqreg.errors.InvalidInputError` listing the valid ones.

    Returns
    -------
    RegularizedResult
        Data no state satisfies (inconsistent right-hand sides, a trace that cannot be met) give
        status ``"infeasible"`` with the reason in ``message``, as a dual that grows without
        bound does.
    """
    if regularizer is not None:
        options["regularizer"] = regularizer
    solver = DualSolver.from_options(options, where="cvxqreg.solve")
    return solve_with(solver, problem, eps, alpha0=alpha0, eps0=eps0)


def solve_with(
    solver: DualSolver, problem, eps: float, alpha0=None, eps0=None, warm_from=None
) -> RegularizedResult:
    """``solver`` on ``problem`` (a ``cvxpy.Problem`` is lowered, and the result written back
    into it); ``warm_from``, a previous :class:`RegularizedResult` of the same problem, supplies
    ``alpha0``/``eps0`` when its dual vector still fits. The body of :func:`solve` and of
    ``problem.solve(method="cvxqreg")``."""
    from ..cvxpy_method import write_back
    from ..lowering import lower_for_solve, sense_of

    eps = _check_eps(eps)
    try:
        lowered, recovery = lower_for_solve(problem)
    except InfeasibleDataError as exc:  # cvxpy.Problem only: lowered data cannot be inconsistent
        reg, sense = solver.regularizer.name, sense_of(problem)
        result = infeasible_result(str(exc), eps, reg, solver.tol, sense, 0)
        write_back(problem, None, result)
        return result
    if alpha0 is None and warm_from is not None:
        alpha = np.asarray(getattr(warm_from, "alpha", np.zeros(0)))
        if alpha.shape == (lowered.n_rows,) and np.all(np.isfinite(alpha)):
            alpha0, eps0 = alpha, getattr(warm_from, "eps", None)
    result = solver(lowered, eps, alpha0=alpha0, eps0=eps0)
    if recovery is not None:
        write_back(problem, recovery, result)
    return result


#: relative tolerance of the approximate unboundedness certificate (SCS's ``eps_infeas`` is 1e-7)
UNBOUNDED_TOL = 1e-6


def recession_check(problem: LoweredProblem, R) -> dict | None:
    """``{"recession_direction": R / |Tr[H R]|, "recession_residual": ...}`` when the PSD
    matrix ``R`` is an approximate recession direction of ``problem``, else ``None``.

    With ``R^ = R / Tr R`` and ``rel = -Tr[H R^] / ||H||_2``, the test is scale-free:
    ``rel >= UNBOUNDED_TOL`` and ``|<Q_i, R^>| <= UNBOUNDED_TOL rel ||Q_i||_F`` for every row
    (on inequality rows only a positive ``<Q_i, R^>`` counts)."""
    R = np.asarray(R)
    scale = problem.cost_norm
    size = float(np.real(np.trace(R))) if R.ndim == 2 else 0.0
    if scale == 0.0 or not (size > 0 and np.all(np.isfinite(R))):
        return None
    Rn = R / size
    rel = -float(np.real(np.vdot(problem.H, Rn))) / scale
    if not rel >= UNBOUNDED_TOL:
        return None
    AR = np.asarray(problem.A.to_backend("numpy").apply(np.asarray(Rn, dtype=np.complex128)))
    if problem.inequality is not None:  # A(R)_i <= 0 is allowed on inequality rows
        AR[problem.inequality] = np.maximum(AR[problem.inequality], 0.0)
    M = problem.A.matrix()
    row_norms = np.sqrt(np.asarray(M.multiply(M).sum(axis=1)).ravel())
    if not np.all(np.abs(AR) <= UNBOUNDED_TOL * rel * row_norms):
        return None
    energy = rel * scale  # |Tr[H R^]|
    return {
        "recession_direction": Rn / energy,  # Tr[H R] = -1
        "recession_residual": float(np.linalg.norm(AR)) / energy,
    }


def unbounded_result(cert: dict, eps, solver, problem, elapsed) -> RegularizedResult:
    """The :class:`RegularizedResult` of an SDP certified unbounded (by the probe, before any
    dual iteration, or from the final state of the dual solve):
    status ``"unbounded"``, value ``-inf`` in minimization form (``+inf`` for a ``Maximize``), no
    state; the certificate ``R`` (``Tr[H R] = -1``) is in ``extras["recession_direction"]``."""
    nan, empty = float("nan"), np.zeros(0)
    cert = dict(cert)
    iterations = cert.pop("iterations", 0)  # found from the final state of a dual solve
    n_evals = cert.pop("n_evals", cert.get("probe_evals", 0))
    value = problem.sense * -np.inf
    message = (
        "the SDP is unbounded: R >= 0 with Tr[H R] = -1 and ||A(R)|| = "
        f"{cert['recession_residual']:.1e} (extras['recession_direction']) is a recession "
        "direction. The regularized problem at this eps has a finite optimum, but it tends to "
        "-inf as eps -> 0 (see docs/solvers.md, 'Unbounded problems')"
    )
    if solver.verbose:
        print(f"cvxqreg: {message}")
    return RegularizedResult(
        status=Status.UNBOUNDED,
        message=message,
        eps=float(eps),
        regularizer=solver.regularizer.name,
        tol=solver.tol,
        value=value,
        energy=value,
        dual_value=nan,
        entropy=nan,
        grad_norm=nan,
        certified_bound=nan,
        bracket=(nan, nan),
        iterations=iterations,
        n_evals=n_evals,
        time=elapsed,
        alpha=np.full(problem.n_rows, nan),
        X=None,
        history=History(empty, empty, empty, empty, empty),
        backend=solver.backend.name,
        sense=problem.sense,
        extras=cert,
    )


def infeasible_result(message, eps, regularizer, tol, sense, m) -> RegularizedResult:
    """The :class:`RegularizedResult` of data that no state satisfies (found before any
    iteration): status ``"infeasible"``, no state, ``nan`` values."""
    nan = float("nan")
    empty = np.zeros(0)
    return RegularizedResult(
        status=Status.INFEASIBLE,
        message=f"infeasible data: {message}",
        eps=float(eps),
        regularizer=regularizer,
        tol=tol,
        value=nan,
        energy=nan,
        dual_value=nan,
        entropy=nan,
        grad_norm=nan,
        certified_bound=nan,
        bracket=(nan, nan),
        iterations=0,
        n_evals=0,
        time=0.0,
        alpha=np.full(m, nan),
        X=None,
        history=History(empty, empty, empty, empty, empty),
        backend="none",
        sense=sense,
    )


def _number(name: str, value, above: float | None = None) -> float:
    """``value`` as a finite float, ``> above`` (``>= 0`` when ``above`` is None), else
    :class:`InvalidInputError`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = float("nan")
    if (
        isinstance(value, bool)
        or not np.isfinite(x)
        or not (x > above if above is not None else x >= 0)
    ):
        need = f"a finite number > {above:g}" if above is not None else "a finite number >= 0"
        raise InvalidInputError(f"{name} must be {need}, got {value!r}")
    return x


def _check_choice(name: str, value, choices: tuple) -> None:
    """``value`` is one of ``choices`` (a bool matches only a bool, a string only a string)."""
    if isinstance(value, (bool, np.bool_)):
        ok = bool(value) in [c for c in choices if isinstance(c, bool)]
    else:
        ok = isinstance(value, str) and value in choices
    if not ok:
        raise InvalidInputError(f"{name} must be one of {choices}, got {value!r}")


def _count(name: str, value) -> int:
    """``value`` as an ``int >= 1`` (an integral float such as ``1e4`` is accepted), else
    :class:`InvalidInputError`."""
    x = _number(name, value, above=0.0)
    if x < 1 or x != int(x):
        raise InvalidInputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(x)


def print_progress(k: int, value: float, grad_norm: float) -> None:
    """The default ``progress`` (``progress=True``): one line per iteration."""
    print(f"    it {k:5d}  D = {value:.12g}  ||grad|| = {grad_norm:.3e}", flush=True)


def _silent(*args, **kwargs) -> None:
    pass


def fun_of(oracle: DualOracle):
    """``alpha -> (D(alpha), grad D(alpha))`` for the L-BFGS drivers."""

    def fun(alpha):
        ev = oracle.evaluate(alpha, want_state=False)
        return ev.value, ev.grad

    return fun
