"""Mapping results of the lowered problem back to the CVXPY model.

The lowered problem is ``min Tr[H X] + c`` s.t. ``X >= 0``, ``A(X) = q`` with dual
``max <alpha, q>`` s.t. ``A*(alpha) <= H``; its Lagrangian is
``Tr[H X] - <alpha, A(X) - q> - Tr[Z X]`` with ``Z = H - A*(alpha)``. Every extracted row is an
entry ``Re`` or ``Im`` of some constraint's ``expr - rhs`` (CVXPY's ``canonical form``); the row
multipliers ``lambda`` give CVXPY's dual values. The lowering drops dependent rows, so ``alpha``
fixes only the functional ``sum_i lambda_i Q_i = A*(alpha)``; of all ``lambda`` with that sum,
:meth:`Recovery.full_multipliers` returns the one of least norm (unique). Within a Hermitian matrix
equality (``cp.partial_trace(X, ...) == rho``) the rows of ``(j, k)`` and ``(k, j)`` repeat each
other, and the least-norm split makes the dual the Hermitian matrix that CVXPY's solvers return.
Where different constraints fix the same direction (both marginals of a coupling and a trace
constraint all fix ``Tr X``), the least-norm choice spreads that direction's multiplier over them;
any solver may split it differently (``Y_1 + t I``, ``Y_2 - t I`` give the same Lagrangian): this
*trace gauge* is the only freedom left. CVXPY's convention, checked against its solvers for
``Minimize`` and ``Maximize``, real and complex constraints, is

    dual_value = -(lambda_Re + i lambda_Im)   (reshaped column-major to the constraint's shape),
    dual_value of ``s X >> 0`` = Z / s,

the same for both senses (the negation of a ``Maximize`` cancels against CVXPY's sign flip).
CVXPY before 1.9 reported half of the dual matrix of a complex Hermitian PSD constraint (its
``Complex2Real`` missed the factor 2 of the real dilation); :meth:`Recovery.unpack` reproduces
what the installed version reports, :meth:`Recovery.psd_dual` always returns the true ``Z``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InvalidInputError
from .validate import constraint_label

__all__ = ["ConstraintInfo", "Recovery", "record_without_solution", "value_without_solution"]


@dataclasses.dataclass(frozen=True)
class ConstraintInfo:
    """How one CVXPY equality constraint was lowered.

    Attributes
    ----------
    index : int
        Position in ``problem.constraints``.
    constraint : cvxpy Constraint
        The user's constraint.
    shape : tuple of int
        Its shape.
    rows : range
        Its rows among all extracted rows (``Re`` rows, then ``Im`` rows).
    n_re, n_im : int
        Numbers of ``Re`` and ``Im`` rows.
    structure : str
        Which operator its rows went to (``PartialTrace(...)``, ``pauli``, ``dense``, ...).
    lowered_rows : ndarray of int
        Positions in the lowered ``q``/``alpha`` of its kept rows.
    """

    index: int
    constraint: object
    shape: tuple
    rows: range
    n_re: int
    n_im: int
    structure: str
    lowered_rows: np.ndarray

    @functools.cached_property
    def label(self) -> str:
        """``#index `text``` (truncated), for messages."""
        return constraint_label(self.index, self.constraint)


def _cvxpy_complex_psd_factor(real: bool) -> float:
    """``1/2`` for a complex PSD dual under CVXPY < 1.9 (see the module docstring), else ``1``."""
    from .compat import cvxpy_version

    return 0.5 if not real and cvxpy_version()[:2] < (1, 9) else 1.0


class Recovery:
    """Sets the CVXPY problem's values from a solution of the lowered problem.

    Built by :func:`cvxqreg.lowering.lower`; available as ``LoweredProblem.recovery``.

    Attributes
    ----------
    problem : cvxpy.Problem
        The source model.
    variable : cvxpy.Variable
        Its matrix variable ``X``.
    constraints : tuple of ConstraintInfo
        One entry per equality constraint, in order.
    row_map : ndarray of int
        Extracted row of each lowered row.
    n_extracted : int
        Number of extracted rows (before dropping dependent ones).
    dropped : dict
        ``{"zero": rows, "dependent": rows}`` (extracted row indices) that were dropped.
    timings : dict
        Seconds spent in each lowering stage.
    fast_path : tuple
        Constraint positions (and ``"objective"``) read directly off the expression tree rather
        than through CVXPY's canonicalization (see :mod:`cvxqreg.lowering.linear_form`).
    """

    def __init__(
        self,
        *,
        problem,
        variable,
        real,
        sense,
        H,
        operator,
        offset,
        row_map,
        n_extracted,
        constraints,
        psd,
        dropped,
        timings,
        rows,
        fast_path=(),
    ):
        self.problem = problem
        self.variable = variable
        self.real = bool(real)
        self.sense = int(sense)
        self._H = H
        self._offset = float(offset)
        self._operator = operator
        self.row_map = np.asarray(row_map, dtype=np.int64)
        self.n_extracted = int(n_extracted)
        self.constraints = tuple(constraints)
        self._psd = tuple(psd)  # (constraint, scale)
        self.dropped = dropped
        self.timings = timings
        self.fast_path = tuple(fast_path)
        self._rows = sp.csr_matrix(rows)  # the extracted rows Q_i (Dense layout), for the duals

    # ------------------------------------------------------------------ duals
    def full_multipliers(self, alpha) -> np.ndarray:
        """``lambda``, one multiplier per extracted row: the least-norm ``lambda`` with
        ``sum_i lambda_i Q_i = A*(alpha)`` (zero on identically zero rows; see the module
        docstring)."""
        alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
        if alpha.shape != self.row_map.shape:
            raise InvalidInputError(
                f"alpha has {alpha.size} entries but the lowered problem has "
                f"{self.row_map.size} rows"
            )
        if not np.all(np.isfinite(alpha)):
            raise InvalidInputError("alpha contains NaN or inf")
        lam = np.zeros(self.n_extracted)
        spread = self._spread
        if spread is None:
            lam[self.row_map] = alpha
            return lam
        dependent, WT, factor = spread
        mu = factor.solve(alpha)
        lam[self.row_map] = mu
        lam[dependent] = WT.T @ mu
        return lam

    @functools.cached_property
    def _spread(self):
        """``(dependent rows, W^T, LU of I + W^T W)`` with ``R_D = W R_K`` (dropped rows as
        combinations of the kept ones), or ``None`` when no nonzero row was dropped. All sparse:
        a dropped row depends on few kept ones (a repeated entry of a Hermitian equality, the
        shared trace), so ``W`` is sparse.

        The ``lambda`` with ``R^T lambda = R_K^T alpha`` are those with
        ``lambda_K + W^T lambda_D = alpha``; the least-norm one is ``lambda_K = mu``,
        ``lambda_D = W mu`` with ``(I + W^T W) mu = alpha``."""
        dependent = np.asarray(self.dropped.get("dependent", ()), dtype=np.int64)
        if dependent.size == 0:
            return None
        RK, RD = self._rows[self.row_map], self._rows[dependent]
        G = spla.splu((RK @ RK.T).tocsc())
        B = (RK @ RD.T).tocsc()
        blocks = []
        for lo in range(0, B.shape[1], 256):  # dense in column blocks: bounded memory
            block = G.solve(B[:, lo : lo + 256].toarray())
            block[np.abs(block) <= 1e-13 * max(1.0, float(np.abs(block).max(initial=0.0)))] = 0
            blocks.append(sp.csc_matrix(block))
        WT = sp.hstack(blocks, format="csr")
        M = (sp.identity(self.row_map.size, format="csc") + WT @ WT.T).tocsc()
        return dependent, WT, spla.splu(M)

    def dual_values(self, alpha) -> dict:
        """CVXPY dual values ``{constraint.id: value}`` of the equality constraints."""
        lam = self.full_multipliers(alpha)
        out = {}
        for info in self.constraints:
            block = lam[info.rows.start : info.rows.stop]
            re, im = block[: info.n_re], block[info.n_re :]
            if info.n_re and info.n_im:
                y = -(re + 1j * im)
            elif info.n_re:
                y = -re
            else:
                y = -1j * im
            out[info.constraint.id] = (
                y.item() if info.shape == () else y.reshape(info.shape, order="F")
            )
        return out

    def psd_dual(self, alpha) -> np.ndarray:
        """``Z = H - A*(alpha)``, the dual matrix of ``X >> 0`` (minimization form)."""
        alpha = np.asarray(alpha, dtype=np.float64)
        Z = self._H - np.asarray(self._operator.to_backend("numpy").adjoint(alpha))
        Z = 0.5 * (Z + Z.conj().T)
        return Z.real if self.real else Z

    # ------------------------------------------------------------------ solution
    def primal_value(self, X) -> np.ndarray:
        """``X`` checked (shape, finite) and made exactly Hermitian (real for a real variable)."""
        X = np.asarray(X)
        D = self.variable.shape[0]
        if X.shape != (D, D):
            raise InvalidInputError(f"X must have shape {(D, D)}, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InvalidInputError("X contains NaN or inf")
        X = 0.5 * (X + X.conj().T)
        return np.ascontiguousarray(X.real if self.real else X.astype(np.complex128))

    def to_solution(self, X, alpha=None, value: float | None = None, status: str = "optimal"):
        """A ``cvxpy.reductions.solution.Solution`` for the source problem.

        Parameters
        ----------
        X : ndarray, shape (D, D) or None
            Primal matrix (ignored unless the status carries a solution).
        alpha : ndarray, shape (m,), optional
            Dual vector of the lowered problem (kept rows only).
        value : float, optional
            The user's objective value (``Solution.opt_val``); by default ``sense (Tr[H X] + c)``
            and, for infeasible/unbounded statuses, ``+-inf`` as CVXPY reports. ``unpack``
            stores ``problem.value`` as CVXPY does: recomputed from ``X`` when a solution is
            present, this value otherwise.
        status : str
            A CVXPY status (``cvxpy.OPTIMAL``, ``OPTIMAL_INACCURATE``, ``USER_LIMIT``,
            ``INFEASIBLE``, ``UNBOUNDED``, ... and their ``_inaccurate`` forms).
        """
        import cvxpy.settings as s
        from cvxpy.reductions.solution import Solution

        status = str(status).lower()
        present = status in s.SOLUTION_PRESENT
        if not present and status not in s.INF_OR_UNB:
            raise InvalidInputError(
                f"status {status!r} is not a CVXPY status with a solution or certificate; use one "
                f"of {list(s.SOLUTION_PRESENT) + list(s.INF_OR_UNB)}"
            )
        primal, dual = {}, {}
        if present:
            if X is None:
                raise InvalidInputError(f"status {status!r} needs the primal matrix X")
            primal[self.variable.id] = self.primal_value(X)
        if alpha is not None and (present or status in s.INF_OR_UNB):
            dual.update(self.dual_values(alpha))
            if present and self._psd:
                Z = self.psd_dual(alpha) * _cvxpy_complex_psd_factor(self.real)
                for constraint, scale in self._psd:
                    dual[constraint.id] = Z / scale
        if value is None and present:
            Xh = primal[self.variable.id]
            value = self.sense * (float(np.real(np.vdot(self._H, Xh))) + self._offset)
        elif value is None:
            value = self._default_value(status, s)
        return Solution(status, float(value), primal, dual, {})

    def unpack(self, X, alpha=None, value: float | None = None, status: str = "optimal") -> None:
        """Set the source problem's state as ``problem.solve`` would.

        Sets ``variable.value`` (Hermitian/real symmetric), ``problem.value`` and
        ``problem.status`` (through CVXPY's ``Problem.unpack``), each equality constraint's
        ``dual_value`` in CVXPY's convention (see the module docstring) and the dual of
        ``X >> 0`` when ``alpha`` is given; constraints without a dual get ``None``. Arguments as
        in :meth:`to_solution`. A failed solve (``status="solver_error"``, or a status that
        promises a solution but ``X is None``) clears the values and records the status, with
        ``problem.value`` set to ``value`` (``None`` by default).
        """
        import cvxpy.settings as s

        status = str(status).lower()
        if status in s.ERROR or (status in s.SOLUTION_PRESENT and X is None):
            self._record_failure(status, value)
            return
        solution = self.to_solution(X, alpha, value, status)
        self.problem.unpack(solution)
        for c in self.problem.constraints:
            if c.id not in solution.dual_vars:
                for dv in c.dual_variables:
                    dv.save_value(None)

    def _record_failure(self, status: str, value) -> None:
        record_without_solution(self.problem, status, value)

    def _default_value(self, status, s) -> float:
        return value_without_solution(status, self.sense)

    # ------------------------------------------------------------------ reporting
    def describe(self) -> str:
        """One line per equality constraint: its rows, what they became, how many were kept."""
        lines = []
        for info in self.constraints:
            lines.append(
                f"{info.label}: rows {info.rows.start}..{info.rows.stop - 1} "
                f"(Re {info.n_re}, Im {info.n_im}) -> {info.structure}, "
                f"{info.lowered_rows.size} kept"
            )
        return "\n".join(lines)


def value_without_solution(status: str, sense: int) -> float:
    """CVXPY's ``problem.value`` for a status without a solution: ``+inf`` for an infeasible
    minimization (``-inf`` for a maximization), the opposite for an unbounded one, else ``nan``."""
    import cvxpy.settings as s

    if status in (s.INFEASIBLE, s.INFEASIBLE_INACCURATE):
        return -np.inf if sense == -1 else np.inf
    if status in (s.UNBOUNDED, s.UNBOUNDED_INACCURATE):
        return np.inf if sense == -1 else -np.inf
    return np.nan


def record_without_solution(problem, status: str, value=None) -> None:
    """Clear ``problem``'s variable and dual values (CVXPY's ``Problem._clear_solution``) and
    record ``status`` and ``value``."""
    problem._clear_solution()
    problem._status = status
    problem._value = value
