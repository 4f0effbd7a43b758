"""Serial loop against a Dask LocalCluster on one batch of small transport problems, in one run.

``N`` quantum transport problems between random states on ``C^d`` (``D = d^2``, cost of
examples/qwd_matrix.py) are lowered once, then solved by :func:`cvxqreg.solve_many` twice with the
same lowered data: in the serial loop and on a ``LocalCluster`` of ``k`` single-threaded worker
processes (started and warmed up by one untimed run of the batch; its start-up time is reported
apart), best of ``--repeat`` runs each.
Reported: wall times, speed-up ``T_serial / T_dask``, the summed solve time of the tasks, and the
overhead per task, ``(T_serial - sum t_i) / N`` for the loop and ``(k T_dask - sum t_i) / N``
(worker-seconds per task not spent solving: scheduling, transfers, idle workers at the end) for
Dask (also with ``chunk_size=--chunk`` tasks per Dask task); and whether all runs gave the same
numbers bit for bit. Then, with ``--scan-states n``, the
lowering time of a :func:`cvxqreg.scan` over the ``n (n + 1) / 2`` pairs of ``n`` states with
``lowering="each"`` against ``"auto"`` (lowered once per structure, interpolated); and, with
``--warm-points n``, the iterations of a serial scan of ``n`` neighbouring points, cold against
``warm_start=True``.

Usage:  OPENBLAS_NUM_THREADS=1 python benchmarks/batch.py [--tasks 64] [--dim 3] [--eps 1e-3]
            [--workers 2] [--repeat 3] [--chunk 8] [--scan-states 12] [--warm-points 21]
            [--in-process]
            [--out benchmarks/results/batch.md]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np

import cvxqreg


def transport_problems(n: int, d: int, seed: int = 0):
    """``n`` transport problems between random states on ``C^d`` (examples/qwd_matrix.py)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "qwd_matrix.py"
    spec = importlib.util.spec_from_file_location("qwd_matrix", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    H = ex.transport_cost(d)
    states = ex.random_states(2 * n, d, seed)
    return [ex.transport_problem(H, states[2 * t], states[2 * t + 1]) for t in range(n)]


def scan_lowering(n_states: int, d: int, eps) -> dict:
    """Pairwise scan of ``n_states`` states: ``lowering="each"`` against ``"auto"`` (affine)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "qwd_matrix.py"
    spec = importlib.util.spec_from_file_location("qwd_matrix", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    model, rho, sigma = ex.transport_model(ex.transport_cost(d), d)
    states = ex.random_states(n_states, d, 1)
    points = [
        {rho: states[i], sigma: states[j]} for i in range(n_states) for j in range(i, n_states)
    ]
    out = {}
    for mode in ("each", "auto"):
        res = cvxqreg.scan(
            model, points, eps, client="serial", lowering=mode, backend="numpy", keep_states=False
        )
        tasks = {r["task"]: (r["lowered"], r["lower_time"]) for r in res.rows}
        out[mode] = {
            "wall": res.wall_time,
            "lower": sum(t for _, t in tasks.values()),
            "full": sum(h == "full" for h, _ in tasks.values()),
            "values": res.column("value"),
        }
    out["points"] = len(points)
    out["max_diff"] = float(np.max(np.abs(out["auto"]["values"] - out["each"]["values"])))
    return out


def scan_warm_start(d: int, eps, n_points: int = 21) -> dict:
    """Iterations of a serial scan along a segment of first marginals, cold and warm-started."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "qwd_matrix.py"
    spec = importlib.util.spec_from_file_location("qwd_matrix", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    model, rho, sigma = ex.transport_model(ex.transport_cost(d), d)
    a, b, c = ex.random_states(3, d, 5)
    points = [{rho: (1 - t) * a + t * b, sigma: c} for t in np.linspace(0, 1, n_points)]
    out = {}
    for warm in (False, True):
        res = cvxqreg.scan(model, points, eps, warm_start=warm, backend="numpy", keep_states=False)
        out["warm" if warm else "cold"] = {
            "iterations": int(res.column("iterations").sum()),
            "time": float(res.column("time").sum()),
            "statuses": sorted(set(res.column("status"))),
        }
    return out


def _shape(lp) -> tuple[int, int]:
    return lp.dim, lp.n_rows


def _key(result):
    return [(r["task"], r["eps"], r["status"], r["value"], r["iterations"]) for r in result.rows]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--dim", type=int, default=3, help="d: states on C^d, D = d^2 (default 3)")
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-3])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is shown")
    ap.add_argument("--chunk", type=int, default=8, help="also run with this chunk_size (1: no)")
    ap.add_argument("--in-process", action="store_true", help="threads, not processes (tests)")
    ap.add_argument(
        "--scan-states", type=int, default=12, help="states of the scan part (0: skip it)"
    )
    ap.add_argument(
        "--warm-points", type=int, default=21, help="points of the warm-start scan (0: skip it)"
    )
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args(argv)
    from distributed import Client, LocalCluster

    N, k = args.tasks, args.workers
    load0 = os.getloadavg()[0]
    models = transport_problems(N, args.dim)
    t0 = time.perf_counter()
    lowered = [cvxqreg.lower(m) for m in models]
    t_lower = time.perf_counter() - t0
    opts = dict(backend="numpy", keep_states=False)

    def best(client):
        runs = [cvxqreg.solve_many(lowered, args.eps, client=client, **opts) for _ in range(R)]
        return min(runs, key=lambda r: r.wall_time)

    R = args.repeat
    cvxqreg.solve_many(lowered, args.eps, client="serial", **opts)  # warm-up
    serial = best("serial")
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=k, threads_per_worker=1, processes=not args.in_process, dashboard_address=None
    )
    client = Client(cluster)
    t_start = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        cvxqreg.solve_many(lowered, args.eps, client=client, **opts)  # warm-up: imports, caches
        t_warm = time.perf_counter() - t0
        dask = best(client)
        chunked = best_chunked = None
        if args.chunk > 1:
            runs = [
                cvxqreg.solve_many(lowered, args.eps, client=client, chunk_size=args.chunk, **opts)
                for _ in range(R)
            ]
            chunked = min(runs, key=lambda r: r.wall_time)
            best_chunked = chunked.wall_time
        t_ship = math.inf  # the same lowered data through Dask, no solve: the floor (best of R)
        for _ in range(R + 1):
            t0 = time.perf_counter()
            client.gather(client.map(_shape, lowered, pure=False))
            t_ship = min(t_ship, time.perf_counter() - t0)
    finally:
        client.close()
        cluster.close()

    sum_serial = float(np.nansum(serial.column("time")))
    sum_dask = float(np.nansum(dask.column("time")))
    same = _key(serial) == _key(dask)
    speedup = serial.wall_time / dask.wall_time
    over_serial = (serial.wall_time - sum_serial) / N
    over_dask = (k * dask.wall_time - sum_dask) / N
    statuses = sorted({r["status"] for r in serial.rows})
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# Batch: serial loop against a Dask LocalCluster\n",
        f"Command: `OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} "
        f"python benchmarks/batch.py {cmd}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
        f"Python {platform.python_version()}. Load average {load0:.1f} before the run, "
        f"{os.getloadavg()[0]:.1f} after (the benchmark itself loads the cores; a reading well "
        "above the worker count before the run means other jobs shared them).\n",
        f"{N} transport problems on C^{args.dim} (x) C^{args.dim} (D = {args.dim**2}), "
        f"eps = {', '.join(f'{e:g}' for e in args.eps)} (von Neumann, default solver options); "
        f"statuses: {', '.join(statuses)}. Lowering (done once, before all runs): "
        f"{t_lower:.2f} s, {1e3 * t_lower / N:.1f} ms per problem.\n",
        "| run | wall [s] | sum of solve times [s] | overhead per task [ms] | speed-up |",
        "|---|---|---|---|---|",
        f"| serial loop | {serial.wall_time:.3f} | {sum_serial:.3f} | "
        f"{1e3 * over_serial:.2f} | 1 |",
        f"| LocalCluster, {k} {'threads' if args.in_process else 'processes'} | "
        f"{dask.wall_time:.3f} | {sum_dask:.3f} | {1e3 * over_dask:.2f} | {speedup:.2f} |",
    ]
    if chunked is not None:
        sum_chunk = float(np.nansum(chunked.column("time")))
        lines.append(
            f"| LocalCluster, {k} {'threads' if args.in_process else 'processes'}, "
            f"chunk_size={args.chunk} | {best_chunked:.3f} | {sum_chunk:.3f} | "
            f"{1e3 * (k * best_chunked - sum_chunk) / N:.2f} | "
            f"{serial.wall_time / best_chunked:.2f} |"
        )
        same = same and _key(chunked) == _key(serial)
    lines += [
        "",
        f"Best of {R} runs each, after one untimed warm-up run of the whole batch (serial, and on "
        f"the cluster: {t_warm:.2f} s); cluster start-up {t_start:.2f} s, not included. "
        f"Shipping the {N} lowered problems to the workers and back through Dask without "
        f"solving took {t_ship:.3f} s ({1e3 * t_ship / N:.2f} ms per task, best of {R + 1}). "
        "Overhead per task: serial `(T - sum t_i)/N`; Dask "
        f"`({k} T - sum t_i)/N` (worker-seconds per task not spent solving). Same numbers in "
        f"all runs (task, eps, status, value, iterations): {'yes' if same else 'NO'}.",
    ]
    sc = None
    if args.scan_states:
        sc = scan_lowering(args.scan_states, args.dim, args.eps)
        e, a = sc["each"], sc["auto"]
        lines += [
            "",
            "## Scan: lowering every point against lowering once per structure\n",
            f"Pairwise transport costs of {args.scan_states} random states on C^{args.dim} as one "
            f"`cvxqreg.scan` over the marginals (Hermitian parameters), {sc['points']} points, "
            "serial loop, one run each.\n",
            "| lowering | points lowered in full | lowering time [s] | wall [s] |",
            "|---|---|---|---|",
            f"| each | {e['full']} | {e['lower']:.2f} | {e['wall']:.2f} |",
            f"| auto (affine) | {a['full']} | {a['lower']:.2f} | {a['wall']:.2f} |",
            "",
            f"Largest difference of the values between the two: {sc['max_diff']:.1e}.",
        ]
    if args.warm_points:
        ws = scan_warm_start(args.dim, args.eps, args.warm_points)
        lines += [
            "",
            "## Scan: warm start from the neighbouring point (serial loop)\n",
            f"{args.warm_points} transport problems on C^{args.dim} (x) C^{args.dim} whose first "
            "marginal moves along a segment, one `cvxqreg.scan`, one run each.\n",
            "| start | iterations (sum) | solve time (sum) [s] | statuses |",
            "|---|---|---|---|",
        ]
        for name in ("cold", "warm"):
            w = ws[name]
            lines.append(
                f"| {name} | {w['iterations']} | {w['time']:.3f} | {', '.join(w['statuses'])} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    return {
        "serial": serial,
        "dask": dask,
        "speedup": speedup,
        "overhead_serial": over_serial,
        "overhead_dask": over_dask,
        "same_numbers": same,
        "scan": sc,
    }


if __name__ == "__main__":
    main()
