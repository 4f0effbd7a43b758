"""Pauli rows: the sparse matrix-vector products of :class:`cvxqreg.operators.Pauli` against
gathering and scattering by index (the form it replaced).

For ``K`` Pauli strings on ``n`` qubits (``D = 2^n``) each map touches ``K D`` entries:

* ``apply``   ``A(X)_k = c_k Re Tr[P_k X]``: sparse ``(K x D^2) @ vec(X)``, against
  ``take`` of the ``K D`` entries (``K x D``) and a weighted row sum;
* ``adjoint`` ``A*(a) = sum_k a_k c_k P_k``: sparse ``(D^2 x K) @ a``, against two
  ``bincount`` scatters (real and imaginary parts).

Both forms are checked to agree before timing. Median of ``--repeats`` runs; the strings are the
tomography instances' (``cvxqreg.problems.tomography``, ``M = 2 D`` random strings).

Usage:  python benchmarks/pauli_products.py [--qubits 6 7 8 9] [--repeats 21]
            [--out benchmarks/results/pauli_products.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import cvxqreg
from cvxqreg import problems
from cvxqreg.backend import blas_threads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import write_report  # noqa: E402


def gather_scatter(op):
    """``(apply, adjoint)`` by index gathering and ``bincount``, from the operator's entries."""
    D, K = op.dim, op.n_rows
    fwd = op._apply_csr.tocoo()  # (k, c*D + r) -> c_k P_k[r, c]: D entries per row, in row order
    gather, weights = fwd.col.reshape(K, D), fwd.data.reshape(K, D)
    bwd = op._adjoint_host.tocoo()  # (r*D + c, k) -> c_k P_k[r, c]

    def apply(X):
        vals = np.take(X.reshape(-1), gather)
        return np.real(np.sum(weights * vals, axis=1))

    def adjoint(a):
        contrib = a[bwd.col] * bwd.data
        re = np.bincount(bwd.row, weights=contrib.real, minlength=D * D)
        im = np.bincount(bwd.row, weights=contrib.imag, minlength=D * D)
        return (re + 1j * im).reshape(D, D)

    return apply, adjoint


def median_ms(f, arg, repeats):
    """Median milliseconds of ``f(arg)``."""
    f(arg)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(arg)
        ts.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qubits", type=int, nargs="+", default=[6, 7, 8, 9])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cmd = sys.argv[1:] if argv is None else argv
    rng = np.random.default_rng(0)
    rows = []
    for n in args.qubits:
        lp = cvxqreg.lower(problems.tomography("QT1", n_qubits=n).problem)
        op = lp.A
        D, K = op.dim, op.n_rows
        G = rng.normal(size=(D, D)) + 1j * rng.normal(size=(D, D))
        X = G + G.conj().T
        a = rng.normal(size=K)
        ref_apply, ref_adjoint = gather_scatter(op)
        err = max(
            float(np.max(np.abs(op.apply(X) - ref_apply(X)))) / float(np.max(np.abs(X))),
            float(np.max(np.abs(op.adjoint(a) - ref_adjoint(a)))) / float(np.max(np.abs(a))),
        )
        t = [
            median_ms(op.apply, X, args.repeats),
            median_ms(ref_apply, X, args.repeats),
            median_ms(op.adjoint, a, args.repeats),
            median_ms(ref_adjoint, a, args.repeats),
        ]
        row = (
            f"| {n} | {D} | {K} | {t[0]:.3f} | {t[1]:.3f} | {t[1] / t[0]:.2f} | {t[2]:.3f} | "
            f"{t[3]:.3f} | {t[3] / t[2]:.2f} | {err:.1e} |"
        )
        print(row, flush=True)
        rows.append(row)
    head = [
        "# Pauli rows: sparse products against gather/scatter",
        "",
        f"Command: `python benchmarks/pauli_products.py {' '.join(cmd)}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}; BLAS threads: {blas_threads()}; median of {args.repeats}",
        "",
        "| qubits | D | strings | apply sparse [ms] | apply gather [ms] | ratio | "
        "adjoint sparse [ms] | adjoint bincount [ms] | ratio | max rel. difference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    return write_report(head + rows, args.out)


if __name__ == "__main__":
    main()
