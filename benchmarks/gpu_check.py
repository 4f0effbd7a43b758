"""One script for a machine with a GPU: the CuPy tests, the low-rank/full product crossover on
the device, and a paper-scale subset, within about 8 minutes; tables go to benchmarks/results/.

Steps (each with its own share of the budget; a step that runs out is reported, not hidden):

1. ``pytest -k "cupy or backend"``: every test parametrized over the CuPy backend.
2. ``benchmarks/low_rank_products.py --backend cupy``: time of the low-rank Hessian-vector product
   against the full one on the device (the measurement behind ``LOW_RANK_MAX_FRACTION["cupy"]``
   in ``cvxqreg/solvers/dual.py``), and the single-precision full product against the double one
   (behind ``SINGLE_PRECISION_RTOL["cupy"]``, off until measured), written to
   ``results/low_rank_products_cupy.md``.
3. ``benchmarks/paper_tables.py --scale paper --backend cupy`` for QWD n = 50 (D = 2500) and
   IM N = 5 (D = 1024), von Neumann, eps = 1e-2, tol 1e-6, no baseline, with a per-cell time
   limit, written to ``results/paper_tables_gpu.md``. (IM's marginals are singular, so it is
   solved on its 36-dimensional face; its cell measures the lift to D = 1024, QWD's the device.)

Without CuPy (or without a device) it prints why and exits with status 2; nothing is written.

Usage:  python benchmarks/gpu_check.py [--budget 480] [--skip-tests]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")


def _run(cmd, timeout, log):
    """Run ``cmd`` from the repository root with ``timeout`` seconds; returns a one-line verdict."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    print(f"$ {' '.join(cmd)}  (limit {timeout:.0f} s)", flush=True)
    try:
        p = subprocess.run(
            cmd, cwd=ROOT, env=env, timeout=max(timeout, 1), capture_output=True, text=True
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        log.append(f"- `{' '.join(cmd)}`: **timed out after {timeout:.0f} s**")
        print(out[-3000:], flush=True)
        return out
    dt = time.perf_counter() - t0
    out = p.stdout + p.stderr
    print(out[-6000:], flush=True)
    log.append(f"- `{' '.join(cmd)}`: exit status {p.returncode}, {dt:.0f} s")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all steps together")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from cvxqreg.backend import _cupy_status, available_backends

    if "cupy" not in available_backends():
        print(f"gpu_check: CuPy backend unavailable ({_cupy_status()[1]}); nothing to check.")
        return 2
    t_end = time.perf_counter() + args.budget
    os.makedirs(RESULTS, exist_ok=True)
    log = ["# GPU check\n", f"Command: `python benchmarks/gpu_check.py {' '.join(argv or [])}`\n"]
    py = sys.executable
    if not args.skip_tests:
        out = _run(
            [py, "-m", "pytest", "-q", "-k", "cupy or backend", "tests/"],
            min(150.0, t_end - time.perf_counter()),
            log,
        )
        summary = [ln for ln in out.splitlines() if " passed" in ln or " failed" in ln]
        log.append("  - " + (summary[-1] if summary else "no pytest summary line"))
    _run(
        [
            py,
            "benchmarks/low_rank_products.py",
            "--backend",
            "cupy",
            "--sizes",
            "16",
            "32",
            "50",
            "--out",
            os.path.join(RESULTS, "low_rank_products_cupy.md"),
        ],
        min(90.0, t_end - time.perf_counter()),
        log,
    )
    left = t_end - time.perf_counter()
    # two cells plus lowering (QWD n = 50 lowers in seconds) within what is left
    cell = max(30.0, (left - 40.0) / 2)
    _run(
        [
            py,
            "benchmarks/paper_tables.py",
            "--scale",
            "paper",
            "--backend",
            "cupy",
            "--instances",
            "IM",
            "QWD",
            "--regularizers",
            "von_neumann",
            "--eps",
            "1e-2",
            "--tols",
            "1e-6",
            "--no-baseline",
            "--no-reference",
            "--time-limit",
            f"{cell:.0f}",
            "--out",
            os.path.join(RESULTS, "paper_tables_gpu.md"),
        ],
        max(left, 1.0),
        log,
    )
    with open(os.path.join(RESULTS, "gpu_check.md"), "w") as fh:
        fh.write("\n".join(log) + "\n")
    print("\n".join(log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
