"""Pairwise quantum transport costs of a set of random qubit (or qutrit) states, as one batch.

For ``N`` random mixed states ``rho_1..rho_N`` on ``C^d`` (``d = 2`` qubits, ``d = 3`` qutrits) the
script computes the matrix of quantum optimal transport costs

    W_ij = min { Tr[H X] : X >= 0 on C^d (x) C^d,  Tr_2 X = rho_i,  Tr_1 X = rho_j },
    H = sum_k (S_k (x) I - I (x) S_k)^2,

with ``S_x, S_y, S_z`` the spin-``(d-1)/2`` operators (the quadratic cost of [CGMPP] with the spin
observables in place of position and momentum). ``H`` is invariant under swapping the two factors,
so ``W_ij = W_ji`` and only the ``N (N + 1) / 2`` pairs ``i <= j`` are solved. The diagonal is not
zero: moving a quantum state onto itself has a positive cost, so ``W`` is a cost matrix, not a
metric.

The model is written once, with ``rho`` and ``sigma`` as Hermitian :class:`cvxpy.Parameter`\\ s,
and all pairs go to :func:`cvxqreg.scan` as one batch, twice: the von Neumann-regularized problem
at each eps (largest first, warm-started within each pair) and the exact SDP (SCS). The scan
lowers the model in full only at an affine basis of the pairs (the data are affine in ``rho`` and
``sigma``) and interpolates the others. With
``--client local`` the pairs run on a Dask ``LocalCluster`` (one worker per core); the default runs
them in a serial loop. For a unit-trace problem on ``C^D``, ``D = d^2``, the regularized optimum
satisfies ``F_0 - eps log D <= F_eps <= F_0``.

What it prints:

1. the batch: number of pairs, ``D``, where it ran, the wall time of each batch and how many pairs
   were lowered in full;
2. the matrix ``W`` from the regularized solves at the smallest eps (``*`` marks a pair whose
   solve did not converge);
3. ``max |F_eps - F_0|`` over the pairs at each eps, next to ``eps log D``, and how many SCS values
   lie inside the certified bracket of their regularized solve;
4. where the heatmap (PNG, needs matplotlib; ``--no-plot`` skips it) and the table (CSV) went: the
   folder ``--out-dir`` (default ``out/qwd_matrix``).

``main`` returns ``{"W": ndarray, "W_exact": ndarray, "batch": BatchResult, "exact": BatchResult,
"plot": path or None, "csv": path}``.

Run ``python examples/qwd_matrix.py`` (six qubit states, 21 pairs, a few seconds),
``--dim 3`` for qutrits, ``--client local`` for Dask, or ``--small`` (three states).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cvxpy as cp
import numpy as np

import cvxqreg

EPS = (1e-1, 1e-3)


def spin_operators(d: int) -> list[np.ndarray]:
    """``S_x, S_y, S_z`` of spin ``j = (d - 1)/2`` in the basis ``m = j, j-1, ..., -j``."""
    j = (d - 1) / 2
    m = j - np.arange(d)
    Sz = np.diag(m).astype(complex)
    Sp = np.zeros((d, d), dtype=complex)  # S_+ |m> = sqrt(j(j+1) - m(m+1)) |m+1>
    for k in range(1, d):
        Sp[k - 1, k] = math.sqrt(j * (j + 1) - m[k] * (m[k] + 1))
    Sx = (Sp + Sp.conj().T) / 2
    Sy = (Sp - Sp.conj().T) / 2j
    return [Sx, Sy, Sz]


def transport_cost(d: int) -> np.ndarray:
    """``H = sum_k (S_k (x) I - I (x) S_k)^2`` on ``C^d (x) C^d``."""
    eye = np.eye(d)
    H = np.zeros((d * d, d * d), dtype=complex)
    for S in spin_operators(d):
        T = np.kron(S, eye) - np.kron(eye, S)
        H += T @ T
    return 0.5 * (H + H.conj().T)


def random_states(n: int, d: int, seed: int) -> list[np.ndarray]:
    """``n`` random mixed states (Ginibre, rank ``d``), reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        G = rng.standard_normal((d, d)) + 1j * rng.standard_normal((d, d))
        r = G @ G.conj().T
        out.append(r / np.trace(r).real)
    return out


def transport_problem(H: np.ndarray, rho: np.ndarray, sigma: np.ndarray) -> cp.Problem:
    """The coupling SDP between ``rho`` and ``sigma`` at cost ``H``."""
    d = rho.shape[0]
    X = cp.Variable((d * d, d * d), hermitian=True)
    constraints = [
        X >> 0,
        cp.partial_trace(X, [d, d], axis=1) == rho,
        cp.partial_trace(X, [d, d], axis=0) == sigma,
    ]
    return cp.Problem(cp.Minimize(cp.real(cp.trace(H @ X))), constraints)


def transport_model(H: np.ndarray, d: int):
    """The coupling SDP with the marginals as Hermitian :class:`cvxpy.Parameter`\\ s.

    Returns ``(problem, rho, sigma)``; :func:`cvxqreg.scan` sets ``rho`` and ``sigma``.
    """
    rho = cp.Parameter((d, d), hermitian=True, name="rho")
    sigma = cp.Parameter((d, d), hermitian=True, name="sigma")
    return transport_problem(H, rho, sigma), rho, sigma


def heatmap(W: np.ndarray, path: Path, title: str) -> str | None:
    """The matrix as an annotated heatmap; returns the path, or ``None`` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    n = W.shape[0]
    fig = Figure(figsize=(1.0 + 0.8 * n, 0.6 + 0.8 * n), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(W, cmap="viridis")
    mid = 0.5 * (np.nanmin(W) + np.nanmax(W))
    for i in range(n):
        for j in range(n):
            color = "k" if W[i, j] > mid else "w"  # readable on the light and the dark colours
            ax.text(j, i, f"{W[i, j]:.2f}", ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(n), [f"rho_{k + 1}" for k in range(n)], rotation=45)
    ax.set_yticks(range(n), [f"rho_{k + 1}" for k in range(n)])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="transport cost")
    fig.savefig(path, dpi=120)
    return str(path)


def main(argv=None) -> dict:
    """Build the pairs, solve both batches, print the matrix and write the outputs."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--states", type=int, default=6, help="number of states N (default 6)")
    ap.add_argument("--dim", type=int, default=2, choices=(2, 3), help="2 qubits, 3 qutrits")
    ap.add_argument("--eps", type=float, nargs="+", default=list(EPS))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--client", default="serial", choices=("serial", "local"))
    ap.add_argument("--out-dir", default="out/qwd_matrix", help="folder for the PNG and CSV")
    ap.add_argument("--small", action="store_true", help="three states")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    n, d = (3 if args.small else args.states), args.dim
    D = d * d

    H = transport_cost(d)
    states = random_states(n, d, args.seed)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    model, rho, sigma = transport_model(H, d)
    points = [{rho: states[i], sigma: states[j]} for i, j in pairs]

    client = "serial"
    if args.client == "local":  # one cluster for both batches: one worker process per core
        from distributed import Client, LocalCluster

        client = Client(LocalCluster(threads_per_worker=1, dashboard_address=None))
    try:
        batch = cvxqreg.scan(
            model, points, args.eps, client=client, backend="numpy", keep_states=False
        )
        exact = cvxqreg.scan(model, points, method="exact", client=client, keep_states=False)
    finally:
        if client != "serial":
            client.close()
            client.cluster.close()
    kind = "qubit" if d == 2 else "qutrit"
    how = {r["task"]: r["lowered"] for r in batch.rows}
    n_full = sum(v == "full" for v in how.values())
    print(
        f"{len(pairs)} pairs of {n} random {kind} states (D = {D}) on {batch.scheduler}: "
        f"regularized {batch.wall_time:.2f} s, exact (SCS) {exact.wall_time:.2f} s; "
        f"{n_full} pairs lowered in full, {len(pairs) - n_full} interpolated (cvxqreg.scan)"
    )

    eps_min = min(args.eps)
    W, W0 = np.full((n, n), np.nan), np.full((n, n), np.nan)
    flags = np.full((n, n), "", dtype=object)
    for row in batch.rows:
        if row["eps"] == eps_min:
            i, j = pairs[row["task"]]
            W[i, j] = W[j, i] = row["value"]
            flags[i, j] = flags[j, i] = "" if row["status"] == "converged" else "*"
    for row in exact.rows:
        i, j = pairs[row["task"]]
        W0[i, j] = W0[j, i] = row["value"]

    print(f"\nW (von Neumann, eps = {eps_min:g}):")
    print("       " + "".join(f"{f'rho_{k + 1}':>10}" for k in range(n)))
    for i in range(n):
        cells = "".join(f"{f'{W[i, j]:.5f}{flags[i, j]}':>10}" for j in range(n))
        print(f"{f'rho_{i + 1}':>7}{cells}")

    print("\neps      max |F_eps - F_0|   eps log D   SCS value inside the certified bracket")
    by_task = {r["task"]: r["value"] for r in exact.rows}
    for e in sorted(args.eps, reverse=True):
        rows = [r for r in batch.rows if r["eps"] == e]
        err = max(abs(r["value"] - by_task[r["task"]]) for r in rows)
        inside = sum(
            r["bracket_low"] - 1e-6 <= by_task[r["task"]] <= r["bracket_high"] + 1e-6 for r in rows
        )
        print(f"{e:<8.0e} {err:>17.2e}   {e * math.log(D):>9.2e}   {inside} of {len(rows)}")

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "qwd_matrix.csv"
    batch.to_csv(str(csv_path))
    path = None
    if not args.no_plot:
        title = f"transport costs of {n} random {kind} states (eps = {eps_min:g})"
        path = heatmap(W, out / "qwd_matrix.png", title)
        print(f"\nheatmap: {path}" if path else "\nheatmap: skipped (matplotlib is not installed)")
    print(f"table: {csv_path}")
    return {"W": W, "W_exact": W0, "batch": batch, "exact": exact, "plot": path, "csv": csv_path}


if __name__ == "__main__":
    main()
