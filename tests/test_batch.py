"""Batches and parameter scans (cvxqreg.batch): serial loop and Dask, same numbers, in order."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest

import cvxqreg
from cvxqreg.batch import ERROR, BatchResult, parse_param
from cvxqreg.errors import InvalidInputError
from cvxqreg.operators import Dense
from cvxqreg.problem import LoweredProblem

from .conftest import rand_state

ROOT = Path(__file__).resolve().parents[1]
OPTS = dict(backend="numpy", tol=1e-8)


def qot_problem(rho, sigma):
    """Two-qubit quantum transport: min Tr[H X], Tr_2 X = rho, Tr_1 X = sigma."""
    Z, Xp, eye = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), np.eye(2)
    H = sum(
        (np.kron(P, eye) - np.kron(eye, P)) @ (np.kron(P, eye) - np.kron(eye, P)) for P in (Z, Xp)
    )
    X = cp.Variable((4, 4), hermitian=True)
    cons = [
        X >> 0,
        cp.partial_trace(X, [2, 2], axis=1) == rho,
        cp.partial_trace(X, [2, 2], axis=0) == sigma,
    ]
    return cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), cons)


def make_problems(n, seed=0):
    rng = np.random.default_rng(seed)
    return [qot_problem(rand_state(rng, 2), rand_state(rng, 2)) for _ in range(n)]


class BrokenDense(Dense):
    """A constraint operator whose adjoint raises: a task that fails inside the solver."""

    def adjoint(self, alpha):
        raise RuntimeError("broken operator")


def broken_problem():
    Q = np.eye(2)[None]
    return LoweredProblem(H=np.diag([1.0, 2.0]), A=BrokenDense(Q), q=np.array([1.0]))


def values(result):
    return [(r["task"], r["eps"], r["status"], r["value"], r["iterations"]) for r in result.rows]


def same_numbers(a, b, rtol=1e-10):
    """The rows of two batch runs agree: tasks, eps, statuses and iterations exactly, values to
    ``rtol`` (relative to ``1 + |value|``). Not bit for bit: a solve in a worker thread need not
    run with the BLAS thread count of the same solve in the main thread (measured with OpenBLAS
    0.3.30/0.3.31: once the main thread has set a count, ``openblas_set_num_threads`` from another
    thread is ignored, so the solver's one-thread section does not hold there), and BLAS with
    another thread count rounds differently: a D = 24 solve at tol 1e-8 gave values 1e-14 apart
    (relative)."""
    va, vb = values(a), values(b)
    if len(va) != len(vb):
        return False
    for (*ka, xa, ia), (*kb, xb, ib) in zip(va, vb, strict=True):
        if ka != kb or ia != ib:
            return False
        if (xa is None) != (xb is None):
            return False
        both_nan = xa is not None and np.isnan(xa) and np.isnan(xb)  # a failed task
        if xa is not None and not both_nan and not abs(xa - xb) <= rtol * (1.0 + abs(xb)):
            return False
    return True


# --------------------------------------------------------------------------------------------
# without Dask


def test_import_does_not_load_dask():
    code = (
        "import sys, cvxqreg; "
        "print(sorted(m for m in ('dask', 'distributed', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_lowered_problem_pickles_and_solves_the_same():
    lp = cvxqreg.lower(make_problems(1)[0])
    shipped = pickle.loads(pickle.dumps(lp))  # the Backend of the operator pickles by name
    a = cvxqreg.solve(lp, 1e-2, **OPTS)
    b = cvxqreg.solve(shipped, 1e-2, **OPTS)
    assert a.value == b.value and np.array_equal(a.alpha, b.alpha)


def test_serial_batch_without_dask(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    probs = make_problems(3)
    res = cvxqreg.solve_many(probs, [1e-1, 1e-3], **OPTS)
    assert res.scheduler == "serial"
    assert [(r["task"], r["eps"]) for r in res.rows] == [
        (t, e) for t in range(3) for e in (1e-1, 1e-3)
    ]
    for r, full, p in zip(res.rows, res.results, [p for p in probs for _ in range(2)], strict=True):
        direct = cvxqreg.solve(p, r["eps"], **OPTS)
        assert r["status"] == "converged" and r["residual"] < 1e-8
        # warm-started from the larger eps: the same optimum within the tolerance
        assert abs(r["value"] - direct.value) < 1e-6
        # the certified bracket contains the exact optimum (SCS at tight tolerances)
        f0 = cvxqreg.solve_exact(p).value
        assert r["bracket_low"] - 1e-7 <= f0 <= r["bracket_high"] + 1e-7 and full.X is not None
    assert [r["warm_started"] for r in res.rows] == [False, True] * 3
    with pytest.raises(ImportError, match="distributed"):
        cvxqreg.solve_many(probs, 1e-2, client="local")


def test_exact_batch_and_error_rows():
    probs = make_problems(2)
    res = cvxqreg.solve_many([probs[0], "not a problem", broken_problem(), probs[1]], 1e-2, **OPTS)
    assert [r["task"] for r in res.rows] == [0, 1, 2, 3]
    assert [r["status"] for r in res.rows][1:3] == [ERROR, ERROR]
    assert "broken operator" in res.rows[2]["message"]
    assert res.rows[0]["status"] == res.rows[3]["status"] == "converged"
    assert res.results[1] is None and len(res.failed) == 2
    exact = cvxqreg.solve_many(probs, method="exact")
    for r, p in zip(exact.rows, probs, strict=True):
        assert r["status"] == "optimal"
        assert r["value"] == pytest.approx(cvxqreg.solve_exact(p).value, abs=1e-12)
    reg = cvxqreg.solve_many(probs, 1e-4, **OPTS)
    for e, r in zip(exact.rows, reg.rows, strict=True):  # the bracket holds the exact value
        assert r["bracket_low"] - 1e-6 <= e["value"] <= r["bracket_high"] + 1e-6


def test_bad_arguments():
    probs = make_problems(1)
    with pytest.raises(InvalidInputError, match="needs eps"):
        cvxqreg.solve_many(probs)
    with pytest.raises(InvalidInputError, match="do not pass eps"):
        cvxqreg.solve_many(probs, 1e-2, method="exact")
    with pytest.raises(InvalidInputError, match="labels"):
        cvxqreg.solve_many(probs, 1e-2, labels=["a", "b"])
    with pytest.raises(InvalidInputError, match="client"):
        cvxqreg.solve_many(probs, 1e-2, client="cluster")
    with pytest.raises(InvalidInputError, match="eps"):
        cvxqreg.solve_many(probs, [-1.0])


def scan_model():
    lam = cp.Parameter(name="lam", value=0.3)
    mu = cp.Parameter(name="mu", value=0.0)
    X = cp.Variable((3, 3), hermitian=True)
    H = np.array([[1.0, 0.5, 0.0], [0.5, -1.0, 0.2], [0.0, 0.2, 0.3]])
    cost = H + lam * np.diag([0.0, 1.0, 0.0]) + mu * np.diag([0.0, 0.0, 1.0])
    p = cp.Problem(
        cp.Minimize(cp.real(cp.trace(cost @ X))),
        [X >> 0, cp.trace(X) == 1, cp.real(X[0, 1]) == 0.1],
    )
    return p, lam, mu, H


def test_scan_grid_order_values_and_restore():
    p, lam, mu, H = scan_model()
    grid = {lam: [0.0, 1.0], "mu": [0.0, 0.5, 1.0]}
    res = cvxqreg.scan(p, grid, 1e-3, lowering="each", **OPTS)
    assert res.parameters == ("lam", "mu") and set(res.column("lowered")) == {"full"}
    assert [(r["lam"], r["mu"]) for r in res.rows] == [
        (a, b) for a in (0.0, 1.0) for b in (0.0, 0.5, 1.0)
    ]
    assert lam.value == 0.3 and mu.value == 0.0  # restored
    for r in res.rows:
        lam.value, mu.value = r["lam"], r["mu"]
        assert r["value"] == cvxqreg.solve(p, 1e-3, **OPTS).value  # same lowering, same solve
    # lowered once per structure: points 0, 1, 3 (an affine basis) and 2 (the check) in full
    affine = cvxqreg.scan(p, grid, 1e-3, **OPTS)
    assert list(affine.column("lowered")) == ["full"] * 4 + ["affine"] * 2
    assert np.max(np.abs(affine.column("value") - res.column("value"))) < 1e-7
    assert set(affine.column("status")) == {"converged"}
    warm = cvxqreg.scan(
        p, [{"lam": v} for v in (0.0, 0.1, 0.2)], 1e-3, warm_start=True, lowering="each", **OPTS
    )
    assert [r["warm_started"] for r in warm.rows] == [False, True, True]
    for r in warm.rows:
        lam.value = r["lam"]
        assert r["status"] == "converged"
        assert abs(r["value"] - cvxqreg.solve(p, 1e-3, **OPTS).value) < 1e-6
    with pytest.raises(InvalidInputError, match="no parameter named"):
        cvxqreg.scan(p, {"nu": [1.0]}, 1e-3)


def test_scan_lowering_falls_back_when_not_affine():
    lam = cp.Parameter(name="lam", value=1.0)
    X = cp.Variable((2, 2), hermitian=True)
    H = np.array([[1.0, 0.5], [0.5, -1.0]])
    cons = [X >> 0, cp.trace(X) == 1]
    grid = {lam: [0.5, 1.0, 1.5, 2.0]}
    not_dpp = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X)) + lam * lam * cp.real(X[0, 0])), cons)
    in_a = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), [*cons, lam * cp.real(X[0, 0]) == 0.3])
    for prob in (not_dpp, in_a):
        res = cvxqreg.scan(prob, grid, 1e-2, **OPTS)
        assert set(res.column("lowered")) == {"full"}
        with pytest.raises(InvalidInputError, match="affine"):
            cvxqreg.scan(prob, grid, 1e-2, lowering="affine", **OPTS)
    # lam enters A: X_00 = a = 0.3 / lam, X_11 = 1 - a, Re X_01 = -sqrt(a (1 - a)) at the optimum
    exact = cvxqreg.scan(in_a, grid, method="exact")
    for r in exact.rows:
        a = 0.3 / r["lam"]
        assert r["value"] == pytest.approx(2 * a - 1 - np.sqrt(a * (1 - a)), abs=1e-6)


def test_scan_affine_keeps_inequality_rows():
    """An interpolated point keeps the inequality flags (and blocks) of the lowered data."""
    lam = cp.Parameter(name="lam", value=0.0)
    X = cp.Variable((2, 2), hermitian=True)
    H = np.array([[1.0, 0.5], [0.5, -1.0]])
    cons = [X >> 0, cp.trace(X) == 1, cp.real(X[1, 1]) <= 0.99]  # inactive at every point
    prob = cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X)) + lam * cp.real(X[0, 1])), cons)
    grid = {lam: [0.0, 0.5, 1.0, 1.5]}
    exact = cvxqreg.scan(prob, grid, method="exact")
    assert "affine" in set(exact.column("lowered"))
    for r in exact.rows:  # ground energy of H + lam/2 sigma_x
        assert r["value"] == pytest.approx(-np.hypot(1.0, 0.5 + r["lam"] / 2), abs=1e-6)
    reg = cvxqreg.scan(prob, grid, 1e-2, **OPTS)
    each = cvxqreg.scan(prob, grid, 1e-2, lowering="each", **OPTS)
    assert np.allclose(reg.column("value"), each.column("value"), rtol=0, atol=1e-9)


def test_table_exports(tmp_path):
    p, lam, mu, _ = scan_model()
    res = cvxqreg.scan(p, {lam: [0.0, 1.0]}, [1e-1, 1e-2], **OPTS)
    assert isinstance(res, BatchResult) and len(res) == 4
    md = res.to_markdown().splitlines()
    assert md[0].startswith("| task | label | lam | eps |") and len(md) == 2 + 4
    text = res.to_csv(str(tmp_path / "t.csv"))
    assert (tmp_path / "t.csv").read_bytes().decode() == text
    assert text.splitlines()[0].split(",") == list(res.columns)
    data = json.loads(res.to_json(str(tmp_path / "t.json")))
    assert [row["value"] for row in data["rows"]] == list(res.column("value"))
    pd = pytest.importorskip("pandas")
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(res.columns)
    assert np.array_equal(df["value"].to_numpy(), res.column("value"))


def test_parse_param():
    assert parse_param("lam=0:1:3") == ("lam", [0.0, 0.5, 1.0])
    assert parse_param(" mu = 1, 2 ") == ("mu", [1.0, 2.0])
    for bad in ("lam", "=1", "lam=", "lam=a", "lam=nan"):
        with pytest.raises(InvalidInputError):
            parse_param(bad)


def test_cli_batch_folder_and_grid(tmp_path, capsys):
    from cvxqreg.cli import main

    model = (
        "import cvxpy as cp, numpy as np\n"
        "lam = cp.Parameter(name='lam', value=0.0)\n"
        "X = cp.Variable((2, 2), hermitian=True)\n"
        "H = np.array([[1.0, B], [B, -1.0]])\n"
        "problem = cp.Problem(cp.Minimize(cp.real(cp.trace((H + lam * np.diag([0, 1.0])) @ X))),"
        " [X >> 0, cp.trace(X) == 1])\n"
    )
    (tmp_path / "a.py").write_text(model.replace("B", "0.5"))
    (tmp_path / "b.py").write_text(model.replace("B", "0.2"))
    csv_path = tmp_path / "out.csv"
    assert main(["batch", str(tmp_path), "--eps", "1e-3", "--csv", str(csv_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "a.py" in out and "b.py" in out and csv_path.exists()
    lines = csv_path.read_text().splitlines()
    assert len(lines) == 3
    # min eigenvalue of [[1, b], [b, -1]] is -sqrt(1 + b^2); eps = 1e-3 is within eps log 2
    v = [float(line.split(",")[lines[0].split(",").index("value")]) for line in lines[1:]]
    assert v == pytest.approx([-np.sqrt(1.25), -np.sqrt(1.04)], abs=1e-3 * np.log(2) + 1e-9)
    assert main(["batch", str(tmp_path / "a.py"), "--param", "lam=0,1", "--exact", "-q"]) == 0
    assert main(["batch", str(tmp_path), "--param", "lam=0,1", "-q"]) == 2
    assert main(["batch", str(tmp_path / "a.py"), "--param", "nu=1", "-q"]) == 2


def test_example_qwd_matrix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    spec = importlib.util.spec_from_file_location("ex_qwd", ROOT / "examples" / "qwd_matrix.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "What it prints" in module.__doc__ and "--small" in module.__doc__
    out_dir = tmp_path / "o"
    res = module.main(["--small", "--out-dir", str(out_dir)])
    text = capsys.readouterr().out
    W, W0 = res["W"], res["W_exact"]
    assert W.shape == (3, 3) and np.array_equal(W, W.T)
    # von Neumann, unit trace on C^4: F_0 - eps log 4 <= F_eps <= F_0 (SCS accuracy 1e-6)
    assert np.all(W <= W0 + 1e-6) and np.all(W >= W0 - 1e-3 * np.log(4) - 1e-6)
    assert "6 of 6" in text and (out_dir / "qwd_matrix.csv").exists()
    if res["plot"] is not None:
        assert Path(res["plot"]).parent == out_dir


def test_benchmark_runs_small(tmp_path):
    pytest.importorskip("distributed")
    spec = importlib.util.spec_from_file_location("bench_batch", ROOT / "benchmarks" / "batch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "b.md"
    report = module.main(
        [
            "--tasks",
            "6",
            "--repeat",
            "1",
            "--in-process",
            "--scan-states",
            "4",
            "--warm-points",
            "3",
            "--out",
            str(out),
        ]
    )
    assert report["same_numbers"] and out.read_text().startswith("# Batch")
    sc = report["scan"]
    assert sc["points"] == 10 and sc["auto"]["full"] <= sc["each"]["full"] == 10
    assert sc["max_diff"] < 1e-9 and "## Scan" in out.read_text()


# --------------------------------------------------------------------------------------------
# with Dask


@pytest.fixture(scope="module")
def inproc_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_in_process_same_numbers_in_order(inproc_client):
    probs = make_problems(6, seed=3)
    lowered = [cvxqreg.lower(p) for p in probs]
    items = [probs[0], lowered[1], probs[2], broken_problem(), lowered[4], probs[5]]
    serial = cvxqreg.solve_many(items, [1e-1, 1e-3], client="serial", **OPTS)
    ticks = []
    dask = cvxqreg.solve_many(
        items,
        [1e-1, 1e-3],
        client=inproc_client,
        progress=lambda done, total: ticks.append((done, total)),
        **OPTS,
    )
    assert dask.scheduler.startswith("inproc://")
    assert same_numbers(dask, serial)  # in input order
    assert dask.rows[6]["status"] == ERROR and "broken operator" in dask.rows[6]["message"]
    assert ticks[-1] == (6, 6) and len(ticks) == 6
    chunked = cvxqreg.solve_many(items, [1e-1, 1e-3], client=inproc_client, chunk_size=4, **OPTS)
    assert same_numbers(chunked, serial)  # the broken task fails alone inside its chunk
    with pytest.raises(InvalidInputError, match="chunk_size"):
        cvxqreg.solve_many(items, 1e-2, client=inproc_client, chunk_size=0)
    # the active client is the default one (client=None)
    again = cvxqreg.solve_many(probs[:2], 1e-2, **OPTS)
    assert again.scheduler == dask.scheduler
    exact_serial = cvxqreg.solve_many(probs, method="exact", client="serial")
    exact_dask = cvxqreg.solve_many(probs, method="exact", client=inproc_client)
    assert same_numbers(exact_dask, exact_serial)


def test_dask_scan_starts_cold(inproc_client):
    p, lam, _, _ = scan_model()
    grid = {lam: [0.0, 0.2, 0.4]}
    dask = cvxqreg.scan(p, grid, 1e-3, client=inproc_client, warm_start=True, **OPTS)
    cold = cvxqreg.scan(p, grid, 1e-3, client="serial", **OPTS)
    assert not any(r["warm_started"] for r in dask.rows)
    assert same_numbers(dask, cold)


def _spy(client, monkeypatch):
    """Record the client's scatter calls and the chunks it is given to run."""
    scattered, chunks = [], []
    scatter, submit = client.scatter, client.submit

    def spy_scatter(data, **kw):
        scattered.append((data, kw))
        return scatter(data, **kw)

    def spy_submit(fn, *args, **kw):
        chunks.append(args[0])
        return submit(fn, *args, **kw)

    monkeypatch.setattr(client, "scatter", spy_scatter)
    monkeypatch.setattr(client, "submit", spy_submit)
    return scattered, chunks


def test_dask_one_large_operator_is_scattered_once(inproc_client, monkeypatch):
    from cvxqreg.batch import SCATTER_MIN_BYTES, _Remote

    rng = np.random.default_rng(7)
    D, m = 24, 120  # m complex D x D matrices: about 1.1 MB, over the scatter threshold
    Q = rng.normal(size=(m, D, D)) + 1j * rng.normal(size=(m, D, D))
    Q = Q + Q.conj().transpose(0, 2, 1)
    Q[0] = np.eye(D)  # Tr X = 1: a bounded problem
    A = Dense(Q)
    rho = rand_state(rng, D)
    q = np.real(A.apply(rho))
    H = [(lambda G: G + G.conj().T)(rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D)))]
    H += [H[0] + t * np.diag(rng.normal(size=D)) for t in (0.5, 1.0, 1.5)]
    problems = [LoweredProblem(H=h, A=A, q=q) for h in H]
    a_bytes = len(pickle.dumps(A, protocol=5))
    assert a_bytes >= SCATTER_MIN_BYTES
    serial = cvxqreg.solve_many(problems, 1e-1, client="serial", **OPTS)
    scattered, chunks = _spy(inproc_client, monkeypatch)
    dask = cvxqreg.solve_many(problems, 1e-1, client=inproc_client, **OPTS)
    assert same_numbers(dask, serial) and all(r["status"] == "converged" for r in dask.rows)
    assert len(scattered) == 1 and scattered[0][0] is A and scattered[0][1]["broadcast"]
    assert len(chunks) == 4
    for chunk in chunks:  # the tasks carry H and q, not the operator
        assert isinstance(chunk[0].problem, _Remote) and chunk[0].problem.operator
        assert len(pickle.dumps(chunk, protocol=5)) < a_bytes / 10
    # as many Dask tasks as workers at least, or the operator travels inside them
    scattered.clear()
    cvxqreg.solve_many(problems[:2], 1e-1, client=inproc_client, chunk_size=2, **OPTS)
    assert scattered == []


def test_dask_scan_scatters_shared_data(inproc_client, monkeypatch):
    import cvxqreg.batch as batch

    monkeypatch.setattr(batch, "SCATTER_MIN_BYTES", 0)  # the small model stands for a large one
    p, lam, _, _ = scan_model()
    grid = {lam: [0.0, 0.2, 0.4, 0.6, 0.8]}
    serial = cvxqreg.scan(p, grid, [1e-1, 1e-3], client="serial", **OPTS)
    scattered, chunks = _spy(inproc_client, monkeypatch)
    affine = cvxqreg.scan(p, grid, [1e-1, 1e-3], client=inproc_client, **OPTS)
    assert "affine" in set(affine.column("lowered"))
    assert len(scattered) == 1 and len(chunks) == 5  # one operator for every point
    assert all(c[0].problem.operator for c in chunks)
    assert np.allclose(affine.column("value"), serial.column("value"), rtol=0, atol=1e-12)
    # repeated points (lowered point by point): the whole lowered problem travels once
    scattered.clear(), chunks.clear()
    points = [{lam: 0.1}, {lam: 0.5}, {lam: 0.1}, {lam: 0.1}]
    each = cvxqreg.scan(p, points, 1e-2, lowering="each", client=inproc_client, **OPTS)
    ref = cvxqreg.scan(p, points, 1e-2, lowering="each", client="serial", **OPTS)
    assert same_numbers(each, ref) and list(each.column("lowered")).count("shared") == 2
    assert len(scattered) == 1 and sum(isinstance(c[0].problem, batch._Remote) for c in chunks) == 3


@pytest.mark.slow
def test_dask_local_cluster_sized_to_machine():
    pytest.importorskip("distributed")
    probs = make_problems(4, seed=5)
    local = cvxqreg.solve_many(probs, 1e-2, client="local", **OPTS)
    assert local.scheduler.startswith("tcp://")
    assert same_numbers(local, cvxqreg.solve_many(probs, 1e-2, client="serial", **OPTS))


def test_dask_worker_processes_survive_a_killed_worker():
    distributed = pytest.importorskip("distributed")
    probs = make_problems(24, seed=11)
    serial = cvxqreg.solve_many(probs, [1e-1, 1e-4], client="serial", **OPTS)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=env,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)  # {worker address: pid}
        scheduler = cluster.scheduler  # a LocalCluster's scheduler lives in this process
        lost = []

        def kill_one(done, total):
            if lost:
                return
            # after the first result: kill a worker that holds tasks in flight
            busy = [w for w in scheduler.workers.values() if w.processing]
            if busy:
                lost.append(len(busy[0].processing))
                os.kill(pids[busy[0].address], signal.SIGKILL)

        res = cvxqreg.solve_many(probs, [1e-1, 1e-4], client=client, progress=kill_one, **OPTS)
        assert lost and lost[0] >= 1  # tasks were running or queued on the killed worker
        assert set(client.run(os.getpid).values()) != set(pids.values())  # nanny restarted it
    assert same_numbers(res, serial)  # complete, in order, the same numbers
