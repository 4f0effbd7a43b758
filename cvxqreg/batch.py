"""Batches and parameter scans: many independent solves, serially or on a Dask cluster.

A batch is a list of tasks ``t = 1..N``, each one lowered problem ``(H_t, A_t, q_t)`` solved on its
own: the regularized problem ``F_eps = min Tr[H_t X] + eps Tr[phi(X)]`` at one eps or down an eps
ladder (``method="solve"``, :func:`cvxqreg.solve`), or the exact SDP ``F_0`` (``method="exact"``,
:func:`cvxqreg.solve_exact`). :func:`solve_many` takes the problems; :func:`scan` takes one CVXPY
problem and values for its :class:`cvxpy.Parameter`\\ s. Both return a :class:`BatchResult`, one
row per (task, eps), in input order.

Lowering happens in the calling process (it needs the CVXPY problem); only the lowered data (without
the CVXPY back-references) travel to the workers, and each task is submitted as soon as it is
lowered, so lowering overlaps with solving. On Dask, a large operator or lowered problem that
several tasks share (one operator for all points of a scan, a repeated point, lowered problems
built on one ``A``) is scattered to the workers once (:data:`SCATTER_MIN_BYTES`, docs/batch.md).
Execution:

* ``client=None``: the Dask client already active in this process (``distributed.Client(...)``
  makes itself the default), otherwise a plain serial loop in this process;
* ``client=<distributed.Client>``: that cluster (local, SSH, dask-jobqueue, GPU workers);
* ``client="local"``: a ``LocalCluster`` sized to this machine (one single-threaded worker process
  per core), started for this call and closed after it;
* ``client="serial"``: the serial loop even when a client is active.

Dask is an optional dependency (``pip install "cvxqreg[distributed]"``); this module imports it only
when a cluster is used.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pickle
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .problem import LoweredProblem
from .table import Table, cell

__all__ = ["BatchResult", "scan", "solve_many"]

#: the status of a task that raised (its row's ``message`` holds the exception)
ERROR = "error"

#: on Dask, a lowered problem or operator that several tasks use and that pickles to at least this
#: many bytes is scattered to the workers once instead of travelling inside every task
SCATTER_MIN_BYTES = 1 << 20

#: columns of every row, in order; a scan puts one column per parameter after ``label``
BASE_COLUMNS = (
    "task",
    "label",
    "method",
    "regularizer",
    "eps",
    "status",
    "value",
    "energy",
    "dual_value",
    "certified_bound",
    "sense",
    "bracket_low",
    "bracket_high",
    "residual",
    "iterations",
    "time",
    "lower_time",
    "lowered",
    "warm_started",
    "message",
)

_SHOWN = (  # (column, header, format) of the Markdown / text table
    ("task", "task", "{}"),
    ("label", "label", "{}"),
    ("eps", "eps", "{:.0e}"),
    ("status", "status", "{}"),
    ("value", "value", "{:.10f}"),
    ("certified_bound", "cert. bound", "{:.10f}"),
    ("residual", "residual", "{:.1e}"),
    ("iterations", "iters", "{}"),
    ("time", "time[s]", "{:.3f}"),
)


# --------------------------------------------------------------------------------------------
# the result table


@dataclasses.dataclass(frozen=True)
class BatchResult(Table):
    """The rows of a batch, in input order, and the full result of each row.

    A :class:`~cvxqreg.table.Table` (the same column names and exports as
    :class:`~cvxqreg.SweepResult`): ``print(result)``, :meth:`to_markdown`, :meth:`to_csv`,
    :meth:`to_json` (with ``"scheduler"`` and ``"wall_time"``) and :meth:`to_pandas`.

    Attributes
    ----------
    rows : tuple of dict
        One per (task, eps) (one per task for ``method="exact"`` and for a task that raised), with
        the keys of :attr:`columns`: ``task`` (input index), ``label``, the parameter values of a
        scan, ``method``, ``regularizer``, ``eps``, ``status`` (the solver's, or ``"error"`` when
        the task raised), ``value``, ``energy`` (``Tr[H X]``), ``dual_value``,
        ``certified_bound`` (a rigorous bound on the exact optimum: lower for ``sense == 1``,
        upper for a maximization, ``sense == -1``), ``sense``, ``bracket_low``/``bracket_high``,
        ``residual``
        (``||A(X) - q||_2``), ``iterations``, ``time`` (solve seconds on the worker),
        ``lower_time`` (seconds spent lowering the task's model, in the calling process),
        ``lowered`` (how the task's data were made: ``"full"`` by :func:`cvxqreg.lower`,
        ``"given"`` a LoweredProblem passed in, ``"affine"`` interpolated in a scan, ``"shared"``
        a repeated point), ``warm_started`` and ``message``. Missing numbers are ``nan``.
    results : tuple
        The :class:`~cvxqreg.RegularizedResult` / :class:`~cvxqreg.ExactResult` of each row
        (``None`` for an error row), same order.
    columns : tuple of str
    parameters : tuple of str
        The parameter columns of a scan (empty for :func:`solve_many`).
    scheduler : str
        ``"serial"`` or the Dask scheduler's address.
    wall_time : float
        Seconds for the whole batch, lowering included.
    """

    rows: tuple[dict[str, Any], ...]
    results: tuple[Any, ...] = dataclasses.field(repr=False)
    columns: tuple[str, ...] = BASE_COLUMNS
    parameters: tuple[str, ...] = ()
    scheduler: str = "serial"
    wall_time: float = math.nan

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows whose status is not ``"converged"`` / ``"optimal"``."""
        return [r for r in self.rows if r["status"] not in ("converged", "optimal")]

    def column(self, name: str) -> np.ndarray:
        """One column as an array (e.g. ``result.column("value")``)."""
        if name not in self.columns:
            raise InvalidInputError(f"no column {name!r}; the columns are {self.columns}")
        return np.array([r[name] for r in self.rows])

    # -- the table (exports: cvxqreg.table.Table)
    def _table_columns(self) -> tuple[str, ...]:
        return self.columns

    def _table_rows(self) -> tuple[dict[str, Any], ...]:
        return self.rows

    def _table_shown(self):
        params = [(p, p, "{:.6g}") for p in self.parameters]
        return [*_SHOWN[:2], *params, *_SHOWN[2:]]

    def _table_header(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "wall_time": self.wall_time}


# --------------------------------------------------------------------------------------------
# the tasks (run on the workers; module-level so that they pickle by reference)


@dataclasses.dataclass(frozen=True)
class _Remote:
    """A task's lowered data whose large part was scattered (:meth:`_Executor.submit`): the whole
    problem (``problem``, the key of its scattered copy), or its operator ``A`` (``operator``)
    with the other fields of the :class:`LoweredProblem` in ``fields``."""

    problem: str | None = None
    operator: str | None = None
    fields: dict[str, Any] | None = None

    def resolve(self, shared: Mapping[str, Any]) -> LoweredProblem:
        if self.problem is not None:
            return shared[self.problem]
        return LoweredProblem(A=shared[self.operator], **self.fields)


@dataclasses.dataclass(frozen=True)
class _Task:
    index: int
    problem: LoweredProblem | _Remote
    method: str
    eps: tuple[float, ...]
    options: dict[str, Any]
    keep_states: bool
    alpha0: np.ndarray | None = None


_NAN_FIELDS = (
    "value",
    "energy",
    "dual_value",
    "certified_bound",
    "bracket_low",
    "bracket_high",
    "residual",
    "time",
)


def _error_row(message: str, method: str) -> dict[str, Any]:
    row = {k: math.nan for k in _NAN_FIELDS}
    row.update(
        method=method,
        regularizer="",
        eps=math.nan,
        status=ERROR,
        iterations=0,
        warm_started=False,
        message=message,
    )
    return row


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _run_task(task: _Task, shared: Mapping[str, Any] | None = None) -> list[tuple[dict, Any]]:
    """Solve one task; an exception becomes an error row (the batch goes on)."""
    try:
        if isinstance(task.problem, _Remote):
            task = dataclasses.replace(task, problem=task.problem.resolve(shared or {}))
        return _solve_task(task)
    except Exception as exc:
        return [(_error_row(_describe(exc), task.method), None)]


def _run_chunk(chunk: tuple[_Task, ...], shared=None) -> list[list[tuple[dict[str, Any], Any]]]:
    """Several tasks as one Dask task (each still independent: one failing does not stop them);
    ``shared`` maps keys to the scattered data the tasks refer to (Dask passes their values)."""
    return [_run_task(t, shared) for t in chunk]


def _solve_task(task: _Task) -> list[tuple[dict[str, Any], Any]]:
    from .solvers.exact import solve_exact
    from .solvers.regularized import solve

    lp, out = task.problem, []
    if task.method == "exact":
        res = solve_exact(lp, **task.options)
        row = {
            "method": "exact",
            "regularizer": "",
            "eps": 0.0,
            "status": res.status,
            "value": res.value,
            "energy": res.value,
            "dual_value": res.dual_value,
            "certified_bound": math.nan,
            "sense": res.sense,
            "bracket_low": math.nan,
            "bracket_high": math.nan,
            "residual": res.primal_residual,
            "iterations": -1 if res.iterations is None else int(res.iterations),
            "time": res.time,
            "warm_started": False,
            "message": f"{res.solver}, dual infeasibility {res.dual_residual:.1e}",
        }
        if not task.keep_states:
            res = dataclasses.replace(res, X=None)
        return [(row, res)]
    # the eps ladder of one task, largest first, each solve warm-started from the previous one
    alpha = task.alpha0
    for eps in task.eps:
        warm = alpha is not None
        try:
            res = solve(lp, eps, alpha0=alpha, **task.options)
        except Exception as exc:  # this eps fails alone; the next starts from the last good alpha
            row = _error_row(_describe(exc), "solve")
            row.update(eps=eps, warm_started=warm)
            out.append((row, None))
            continue
        if res.status not in ("failed", "infeasible") and np.all(np.isfinite(res.alpha)):
            alpha = res.alpha
        row = {
            "method": "solve",
            "regularizer": res.regularizer,
            "eps": res.eps,
            "status": res.status,
            "value": res.value,
            "energy": res.energy,
            "dual_value": res.dual_value,
            "certified_bound": res.certified_bound,
            "sense": res.sense,
            "bracket_low": res.bracket[0],
            "bracket_high": res.bracket[1],
            "residual": res.grad_norm,
            "iterations": res.iterations,
            "time": res.time,
            "warm_started": warm,
            "message": res.message,
        }
        if not task.keep_states:
            res = dataclasses.replace(res, X=None)
        out.append((row, res))
    return out


# --------------------------------------------------------------------------------------------
# execution


class _Executor:
    """Runs tasks serially or on a Dask client; results are collected in input order."""

    def __init__(self, client, n_tasks: int, progress, chunk_size: int = 1):
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise InvalidInputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        self.n_tasks = n_tasks
        self.progress = progress
        self.chunk_size = int(chunk_size)
        self._pending: list[tuple[_Task, str | None]] = []
        self._expected: dict[int, tuple[Any, int]] = {}  # id -> (object, number of tasks)
        self._shared: dict[int, tuple[str | None, Any]] = {}  # id -> (key, future) or (None, None)
        self._own_cluster = None
        self.client = self._resolve(client)
        self.scheduler = "serial" if self.client is None else _address(self.client)
        self._futures: dict[int, Any] = {}
        self._done: dict[int, list] = {}
        self._bar = None
        self._batch = uuid.uuid4().hex[:12]

    @staticmethod
    def _default_client():
        try:
            from distributed import default_client
        except ImportError:
            return None
        try:
            return default_client()
        except ValueError:  # no client in this process
            return None

    def _resolve(self, client):
        if client is None:
            return self._default_client()
        if isinstance(client, str):
            kind = client.lower()
            if kind == "serial":
                return None
            if kind == "local":
                return self._local_client()
            raise InvalidInputError(
                f"client must be a distributed.Client, 'local', 'serial' or None, got {client!r}"
            )
        if not (hasattr(client, "submit") and hasattr(client, "gather")):
            raise InvalidInputError(
                f"client must be a distributed.Client, 'local', 'serial' or None, got "
                f"{type(client).__name__}"
            )
        return client

    def _local_client(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError(
                "client='local' needs Dask: pip install 'cvxqreg[distributed]'"
            ) from exc
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        cluster = LocalCluster(
            n_workers=max(1, n or 1), threads_per_worker=1, processes=True, dashboard_address=None
        )
        self._own_cluster = cluster
        return Client(cluster)

    # -- progress
    def _tick(self, done: int) -> None:
        if callable(self.progress):
            self.progress(done, self.n_tasks)
        elif self._bar is not None:
            self._bar.update(1)

    def __enter__(self):
        if self.progress is True or (self.progress is None and _stderr_is_tty()):
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.n_tasks, unit="task", leave=False)
            except ImportError:
                self._bar = None
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.close()
        if self._own_cluster is not None:
            self.client.close()
            self._own_cluster.close()

    # -- data that several tasks share
    def expect(self, obj, n_tasks: int) -> None:
        """Announce that ``obj`` (a :class:`LoweredProblem` or its operator ``A``) serves
        ``n_tasks`` tasks, so that :meth:`submit` may scatter it once (see :meth:`_share`)."""
        if self.client is not None and n_tasks >= 2:
            self._expected[id(obj)] = (obj, int(n_tasks))

    @property
    def n_scattered(self) -> int:
        """How many objects were scattered to the workers."""
        return sum(key is not None for key, _ in self._shared.values())

    def _share(self, obj) -> str | None:
        """The key of ``obj``'s scattered copy, or ``None`` when it travels inside the tasks.

        An announced object is scattered (once, to every worker: ``broadcast=True``) when it
        pickles to at least :data:`SCATTER_MIN_BYTES` and serves at least as many Dask tasks
        (chunks) as there are workers, so that no more copies travel than inside the tasks (one
        per chunk, through the scheduler); a broadcast copy also survives a lost worker.
        """
        k = id(obj)
        if k in self._shared:
            return self._shared[k][0]
        entry = self._expected.get(k)
        if entry is None or entry[0] is not obj:
            return None
        chunks = math.ceil(entry[1] / self.chunk_size)
        workers = len(self.client.nthreads())
        key = fut = None
        if workers and chunks >= max(2, workers) and _pickled_size(obj) >= SCATTER_MIN_BYTES:
            fut = self.client.scatter(obj, broadcast=True, hash=False)
            key = f"shared-{len(self._shared)}"
        self._shared[k] = (key, fut)
        return key

    def _slim(self, task: _Task) -> tuple[_Task, str | None]:
        """The task as shipped: its problem or operator replaced by a key when scattered."""
        lp = task.problem
        key = self._share(lp)
        if key is not None:
            return dataclasses.replace(task, problem=_Remote(problem=key)), key
        key = self._share(lp.A)
        if key is not None:
            fields = {f.name: getattr(lp, f.name) for f in dataclasses.fields(lp) if f.name != "A"}
            return dataclasses.replace(task, problem=_Remote(operator=key, fields=fields)), key
        return task, None

    # -- tasks
    def submit(self, task: _Task) -> None:
        if self.client is None:
            self._done[task.index] = _run_task(task)
            self._tick(len(self._done))
        else:
            self._pending.append(self._slim(task))
            if len(self._pending) >= self.chunk_size:
                self._flush()

    def _flush(self) -> None:
        """Submit the pending tasks as one Dask task (a chunk; one task when chunk_size = 1)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        chunk = tuple(t for t, _ in pending)
        futures = {v[0]: v[1] for v in self._shared.values() if v[0] is not None}
        shared = {k: futures[k] for _, k in pending if k is not None}
        key = f"cvxqreg-batch-{self._batch}-{chunk[0].index}"
        args = (chunk, shared) if shared else (chunk,)
        self._futures[tuple(t.index for t in chunk)] = self.client.submit(
            _run_chunk, *args, key=key, pure=False
        )

    def first_alpha(self, index: int):
        """The ``alpha`` of a finished serial task at its first (largest) eps, else ``None``."""
        out = self._done.get(index)
        if not out:
            return None
        res = out[0][1]
        ok = res is not None and getattr(res, "status", "") not in (
            "failed",
            "infeasible",
            "unbounded",
        )
        return res.alpha if ok and res.alpha is not None else None

    def record(self, index: int, outcome: list) -> None:
        self._done[index] = outcome
        self._tick(len(self._done))

    def collect(self) -> dict[int, list]:
        self._flush()
        if self._futures:
            from distributed import as_completed

            indices_of = {f.key: idx for idx, f in self._futures.items()}
            for fut in as_completed(list(self._futures.values())):
                indices = indices_of[fut.key]
                try:
                    outcomes = fut.result()
                except Exception as exc:  # e.g. KilledWorker after the allowed retries
                    outcomes = [[(_error_row(_describe(exc), "?"), None)]] * len(indices)
                for i, outcome in zip(indices, outcomes, strict=True):
                    self._done[i] = outcome
                    self._tick(len(self._done))
        return self._done


class _ByteCounter:
    """A file that only counts what is written to it."""

    def __init__(self):
        self.n = 0

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.n += n
        return n


def _pickled_size(obj) -> int:
    """Bytes of ``obj`` pickled (as Dask would ship it), without keeping the bytes."""
    counter = _ByteCounter()
    pickle.Pickler(counter, protocol=5).dump(obj)
    return counter.n


def _address(client) -> str:
    try:
        return str(client.scheduler.address)
    except AttributeError:
        return type(client).__name__


def _stderr_is_tty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# the public entry points


def _check_method(method: str, eps) -> tuple[str, tuple[float, ...]]:
    from .solvers.dual import _check_eps

    if method not in ("solve", "exact"):
        raise InvalidInputError(f"method must be 'solve' or 'exact', got {method!r}")
    if method == "exact":
        if eps is not None:
            raise InvalidInputError("method='exact' solves eps = 0; do not pass eps")
        return method, ()
    if eps is None:
        raise InvalidInputError("method='solve' needs eps (a value > 0 or a list of them)")
    grid = [eps] if np.ndim(eps) == 0 else list(eps)
    grid = sorted({_check_eps(e) for e in grid}, reverse=True)
    if not grid:
        raise InvalidInputError("eps must list at least one value > 0")
    return method, tuple(grid)


def _ship(lowered: LoweredProblem) -> LoweredProblem:
    """The lowered data only (what a worker needs): no CVXPY back-references, and a fresh object,
    so that no cached derived array (e.g. ``row_stack``, ``m D^2`` entries) travels with it."""
    return dataclasses.replace(lowered, recovery=None)


def _lower(problem) -> tuple[LoweredProblem, float, str]:
    if isinstance(problem, LoweredProblem):
        return _ship(problem), 0.0, "given"
    from .lowering import lower

    t0 = time.perf_counter()
    lp = lower(problem)
    return _ship(lp), time.perf_counter() - t0, "full"


def _assemble(done, meta, parameters, scheduler, wall) -> BatchResult:
    rows, results = [], []
    columns = (*BASE_COLUMNS[:2], *parameters, *BASE_COLUMNS[2:])
    for i, (label, params, lower_time, method, how) in enumerate(meta):
        for row, res in done[i]:
            full = {"task": i, "label": label, **params, **row, "lower_time": lower_time}
            full["lowered"] = how
            if full["method"] == "?":
                full["method"] = method
            rows.append({c: full.get(c, math.nan) for c in columns})
            results.append(res)
    return BatchResult(
        rows=tuple(rows),
        results=tuple(results),
        columns=columns,
        parameters=tuple(parameters),
        scheduler=scheduler,
        wall_time=wall,
    )


def solve_many(
    problems: Iterable[Any],
    eps: float | Sequence[float] | None = None,
    *,
    method: str = "solve",
    labels: Sequence[str] | None = None,
    client=None,
    progress: bool | Callable[[int, int], None] | None = None,
    keep_states: bool = True,
    chunk_size: int = 1,
    **options,
) -> BatchResult:
    """Solve independent problems: ``F_eps(P_t)`` (or ``F_0(P_t)``) for ``t = 1..N``.

    Each problem is lowered once in this process (:func:`cvxqreg.lower`) and its lowered data are
    solved as one task: with ``method="solve"``, :func:`cvxqreg.solve` at every eps from the
    largest down, each warm-started from the previous eps's ``alpha``; with ``method="exact"``,
    :func:`cvxqreg.solve_exact`. Tasks are independent and deterministic, so the numbers do not
    depend on where they run.

    Parameters
    ----------
    problems : iterable of cvxpy.Problem or LoweredProblem
    eps : float or sequence of float
        Regularization strength(s) for ``method="solve"``; not allowed for ``"exact"``.
    method : {"solve", "exact"}
    labels : sequence of str, optional
        A name per problem (default: its index).
    client : distributed.Client, "local", "serial" or None
        Where the tasks run (see :mod:`cvxqreg.batch`): ``None`` uses the active Dask client if
        there is one and a serial loop otherwise.
    progress : bool or callable, optional
        ``True``: a tqdm bar (``None``: when stderr is a terminal); a callable gets
        ``progress(n_done, n_tasks)`` after each task.
    keep_states : bool
        Keep each result's state ``X``; ``False`` drops it on the worker (less memory and traffic).
    chunk_size : int
        On Dask, send this many consecutive tasks as one Dask task, to amortize the scheduler's
        per-task cost when the solves are short (each task in a chunk still fails alone; a chunk
        whose worker dies is retried as a whole). Ignored by the serial loop.
    **options
        Passed to :func:`cvxqreg.solve` (``regularizer``, ``backend``, ``tol``, ``max_iter``, ...)
        or to :func:`cvxqreg.solve_exact` (``solver``, solver settings).

    Returns
    -------
    BatchResult
        One row per (problem, eps), in input order. A task that raised (a lowering error included)
        has one row with status ``"error"`` and the exception in ``message``; the others are not
        affected. A task whose worker died is retried by Dask on another worker.
    """
    method, grid = _check_method(method, eps)
    problems = list(problems)
    if labels is not None and len(labels) != len(problems):
        raise InvalidInputError(f"{len(labels)} labels for {len(problems)} problems")
    t0 = time.perf_counter()
    meta = []
    uses: dict[int, list] = {}  # operators of the given LoweredProblems, by identity
    for p in problems:
        if isinstance(p, LoweredProblem):
            uses.setdefault(id(p.A), [p.A, 0])[1] += 1
    with _Executor(client, len(problems), progress, chunk_size) as ex:
        for A, n in uses.values():
            ex.expect(A, n)  # one operator serving several problems travels once
        for i, p in enumerate(problems):
            label = str(i) if labels is None else str(labels[i])
            try:
                lp, lower_time, how = _lower(p)
            except Exception as exc:
                meta.append((label, {}, math.nan, method, "failed"))
                ex.record(i, [(_error_row(_describe(exc), method), None)])
                continue
            meta.append((label, {}, lower_time, method, how))
            ex.submit(_Task(i, lp, method, grid, dict(options), keep_states))
        done = ex.collect()
        scheduler = ex.scheduler
    return _assemble(done, meta, (), scheduler, time.perf_counter() - t0)


def _points(problem, values) -> tuple[list, list[dict]]:
    """The scan's parameters (cp.Parameter objects) and one ``{name: value}`` dict per point."""
    by_name = {p.name(): p for p in problem.parameters()}

    def param(key):
        if isinstance(key, str):
            if key not in by_name:
                raise InvalidInputError(
                    f"the problem has no parameter named {key!r}; its parameters are "
                    f"{sorted(by_name)}"
                )
            return by_name[key]
        if not any(key is p for p in by_name.values()):
            raise InvalidInputError(f"{key!r} is not a parameter of the problem")
        return key

    if isinstance(values, Mapping):  # a grid: the Cartesian product, last key fastest
        keys = [param(k) for k in values]
        axes = [list(v) for v in values.values()]
        if any(not a for a in axes):
            raise InvalidInputError("every parameter of the grid needs at least one value")
        points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]
    else:
        points = [{param(k): v for k, v in point.items()} for point in values]
    if not points:
        raise InvalidInputError("the scan has no points")
    params = []
    for pt in points:
        for p in pt:
            if not any(p is q for q in params):
                params.append(p)
    return params, points


def scan(
    problem,
    values: Mapping[Any, Sequence[Any]] | Sequence[Mapping[Any, Any]],
    eps: float | Sequence[float] | None = None,
    *,
    method: str = "solve",
    client=None,
    warm_start: bool = False,
    lowering: str = "auto",
    progress: bool | Callable[[int, int], None] | None = None,
    keep_states: bool = True,
    chunk_size: int = 1,
    **options,
) -> BatchResult:
    """Solve one CVXPY problem for many values ``theta_1..theta_N`` of its parameters.

    Each point is solved as one task on the lowered data
    ``(H(theta_t), A, q(theta_t), c(theta_t))``, as in :func:`solve_many`. How those data are
    made (``lowering``):

    * ``"each"``: set the parameters and call :func:`cvxqreg.lower` at every point (identical
      points share one lowering);
    * ``"affine"`` / ``"auto"``: lower once per structure. For a DPP problem
      (:meth:`cvxpy.Problem.is_dpp`) CVXPY's problem data are affine in the parameters, so when
      the lowering keeps the same operator ``A`` the lowered ``H, q, c`` are affine in ``theta``
      too. The points are lowered at an affine basis of the scan (``r + 1`` points for an
      ``r``-dimensional scan), every other point is interpolated from them
      (``H(theta) = H_0 + sum_k c_k (H_k - H_0)``, the same for ``q`` and ``c``), and one more
      point is lowered in full to check the interpolation (relative 1e-10). ``"auto"`` falls back
      to ``"each"`` when the problem is not DPP, ``A`` changes, the check fails, or it would not
      save a lowering; ``"affine"`` raises instead. The ``lowered`` column says which rows were
      interpolated; they agree with a full lowering to rounding, not bit for bit.

    Parameters
    ----------
    problem : cvxpy.Problem
    values : mapping or sequence of mappings
        ``{param: [v1, v2, ...], ...}`` scans the Cartesian product of the lists (last key
        varying fastest); a list of ``{param: value, ...}`` scans those points. Keys are
        :class:`cvxpy.Parameter` objects or their names; values may be arrays.
    eps, method, client, progress, keep_states, chunk_size, **options
        As in :func:`solve_many`.
    warm_start : bool
        Serial loop only: start each point's first (largest) eps from the previous point's
        ``alpha`` at that eps when the shapes agree (no eps-continuation ladder then, since the
        start is taken as close). On a Dask cluster every point starts cold, so its numbers do not
        depend on the scheduling; the ``warm_started`` column says which rows were warm-started.
    lowering : {"auto", "affine", "each"}

    Returns
    -------
    BatchResult
        One row per (point, eps) in the order of the points, with one column per parameter.
        The parameters' values are restored afterwards.
    """
    import cvxpy as cp

    if not isinstance(problem, cp.Problem):
        raise InvalidInputError(f"scan needs a cvxpy.Problem, got {type(problem).__name__}")
    if lowering not in ("auto", "affine", "each"):
        raise InvalidInputError(f"lowering must be 'auto', 'affine' or 'each', got {lowering!r}")
    method, grid = _check_method(method, eps)
    params, points = _points(problem, values)
    names = [p.name() for p in params]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"the scanned parameters need distinct names, got {names}")
    saved = [p.value for p in params]
    t0 = time.perf_counter()
    meta, cache = [], {}

    def lower_at(pt):
        for p, v in pt.items():
            p.value = v
        return _lower(problem)

    try:
        plan = None
        if lowering != "each":
            plan = _AffinePlan.build(problem, params, points, lower_at)
            if plan is None and lowering == "affine":
                raise InvalidInputError(
                    "lowering='affine' is not possible for this scan: the problem is not DPP, "
                    "its operator A depends on the parameters, the interpolation check failed, "
                    "or the scan has too few points; use lowering='auto' or 'each'"
                )
        keys = [tuple((p.id, np.asarray(v).tobytes()) for p, v in pt.items()) for pt in points]
        repeats = Counter(keys)
        with _Executor(client, len(points), progress, chunk_size) as ex:
            warm = warm_start and ex.client is None and method == "solve"
            if plan is not None:  # one operator for all points: it travels once
                ex.expect(plan.base.A, len(points))
            for i, pt in enumerate(points):
                shown = {p.name(): cell(np.asarray(v)) if np.ndim(v) else v for p, v in pt.items()}
                key = keys[i]
                try:
                    if plan is not None:
                        lp, lower_time, how = plan.get(i)
                    elif key in cache:
                        lp, lower_time, how = cache[key], 0.0, "shared"
                    else:
                        lp, lower_time, how = lower_at(pt)
                        cache[key] = lp
                        ex.expect(lp, repeats[key])  # a repeated point's data travel once
                except Exception as exc:
                    meta.append((str(i), shown, math.nan, method, "failed"))
                    ex.record(i, [(_error_row(_describe(exc), method), None)])
                    continue
                meta.append((str(i), shown, lower_time, method, how))
                alpha0 = ex.first_alpha(i - 1) if warm and i > 0 else None
                if alpha0 is not None and alpha0.shape != (lp.n_rows,):
                    alpha0 = None
                ex.submit(_Task(i, lp, method, grid, dict(options), keep_states, alpha0))
            done = ex.collect()
            scheduler = ex.scheduler
    finally:
        for p, v in zip(params, saved, strict=True):
            p.value = v
    return _assemble(done, meta, names, scheduler, time.perf_counter() - t0)


def _flat(point: Mapping[Any, Any], params) -> np.ndarray:
    """The point as one real vector (complex entries as real and imaginary parts)."""
    parts = []
    for p in params:
        v = np.asarray(point[p])
        parts.append(v.real.ravel().astype(float))
        if np.iscomplexobj(v):
            parts.append(v.imag.ravel().astype(float))
    return np.concatenate(parts) if parts else np.zeros(0)


def _same_operator(a: LoweredProblem, b: LoweredProblem) -> bool:
    if (a.dim, a.n_rows, a.sense, a.real, a.row_labels, a.blocks) != (
        b.dim,
        b.n_rows,
        b.sense,
        b.real,
        b.row_labels,
        b.blocks,
    ) or a.A.describe() != b.A.describe():
        return False
    if not np.array_equal(_rows_flag(a), _rows_flag(b)):
        return False
    return (a.A.matrix() != b.A.matrix()).nnz == 0


def _rows_flag(lp: LoweredProblem) -> np.ndarray:
    """The inequality flag of each row (all ``False`` without inequalities)."""
    if lp.inequality is None:
        return np.zeros(lp.n_rows, dtype=bool)
    return np.asarray(lp.inequality, dtype=bool)


@dataclasses.dataclass
class _AffinePlan:
    """Lowered data of a scan from full lowerings at an affine basis of its points."""

    base: LoweredProblem
    diffs: np.ndarray  # theta_t - theta_0, one row per point
    basis: list[int]  # the points lowered in full (point 0 first)
    deltas: list[tuple[np.ndarray, np.ndarray, float]]  # (H_k - H_0, q_k - q_0, c_k - c_0)
    full: dict[int, tuple[LoweredProblem, float, str]]

    @classmethod
    def build(cls, problem, params, points, lower_at) -> _AffinePlan | None:
        if len(points) < 3 or any(len(pt) != len(params) for pt in points):
            return None
        if not problem.is_dpp():
            return None
        thetas = np.array([_flat(pt, params) for pt in points])
        diffs = thetas - thetas[0]
        scale = max(1.0, float(np.abs(thetas).max()))
        basis, Q = [0], np.zeros((0, thetas.shape[1]))
        for i in range(1, len(points)):
            d = diffs[i] - Q.T @ (Q @ diffs[i])
            d = d - Q.T @ (Q @ d)  # twice is enough (Gram-Schmidt)
            nd = float(np.linalg.norm(d))
            if nd > 1e-9 * scale:
                basis.append(i)
                Q = np.vstack([Q, d / nd])
        check = next((i for i in range(len(points)) if i not in basis), None)
        if check is None or len(basis) + 1 >= len(points):
            return None  # no lowering saved
        try:
            full = {i: lower_at(points[i]) for i in (*basis, check)}
        except Exception:
            return None  # lower point by point: the error then belongs to its point
        lp0 = full[0][0]
        if not all(_same_operator(lp0, full[i][0]) for i in full):
            return None
        # one operator object for every point (equal by the check above): shared on a cluster
        full = {i: (dataclasses.replace(lp, A=lp0.A), t, how) for i, (lp, t, how) in full.items()}
        lp0 = full[0][0]
        deltas = [
            (full[i][0].H - lp0.H, full[i][0].q - lp0.q, full[i][0].offset - lp0.offset)
            for i in basis[1:]
        ]
        plan = cls(lp0, diffs, basis, deltas, full)
        got, _, _ = plan._interpolate(check)
        ref = full[check][0]
        for a, b in ((got.H, ref.H), (got.q, ref.q), (got.offset, ref.offset)):
            if np.max(np.abs(np.asarray(a) - b), initial=0.0) > 1e-10 * (
                1.0 + np.max(np.abs(b), initial=0.0)
            ):
                return None
        return plan

    def _interpolate(self, i: int) -> tuple[LoweredProblem, float, str]:
        t0 = time.perf_counter()
        B = self.diffs[self.basis[1:]]
        c = np.linalg.lstsq(B.T, self.diffs[i], rcond=None)[0]
        lp = self.base
        H, q, off = lp.H.copy(), lp.q.copy(), lp.offset
        for ck, (dH, dq, doff) in zip(c, self.deltas, strict=True):
            H += ck * dH
            q += ck * dq
            off += ck * doff
        # everything but (H, q, offset) as at the base point: A, sense, inequality rows, blocks
        out = dataclasses.replace(lp, H=H, q=q, offset=off)
        return out, time.perf_counter() - t0, "affine"

    def get(self, i: int) -> tuple[LoweredProblem, float, str]:
        return self.full[i] if i in self.full else self._interpolate(i)


# --------------------------------------------------------------------------------------------
# helpers of the ``cvxqreg batch`` command


def parse_param(text: str) -> tuple[str, list[float]]:
    """``"NAME=V1,V2,..."`` (or ``"NAME=START:STOP:NUM"``, NumPy's ``linspace``) -> name, values."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise InvalidInputError(f"expected NAME=V1,V2,... or NAME=START:STOP:NUM, got {text!r}")
    try:
        if ":" in rest:
            start, stop, num = rest.split(":")
            values = [float(v) for v in np.linspace(float(start), float(stop), int(num))]
        else:
            values = [float(v) for v in rest.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"cannot read the values of {text!r} as numbers") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise InvalidInputError(f"{text!r} needs at least one finite value")
    return name, values


def model_files(paths: Sequence[str]) -> list[str]:
    """Model files from files and folders (a folder contributes its ``*.py`` files, sorted)."""
    from pathlib import Path

    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.py") if f.is_file())
            if not found:
                raise InvalidInputError(f"no *.py model files in {p}")
            out += [str(f) for f in found]
        else:
            out.append(str(p))
    return out


def cli_client(scheduler: str):
    """``--scheduler``: ``serial``, ``local`` or a Dask scheduler address (``tcp://host:8786``)."""
    if scheduler in ("serial", "local"):
        return scheduler
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError(
            f"--scheduler {scheduler} needs Dask: pip install 'cvxqreg[distributed]'"
        ) from exc
    return Client(scheduler)
