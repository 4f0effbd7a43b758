"""The marginal scaling step: one operator-Sinkhorn step in the dual of a coupling problem.

For constraints ``Tr_2 X = rho``, ``Tr_1 X = sigma`` and the von Neumann regularizer the state is
``X = exp((A*(alpha) - H)/eps)`` (normalized), and the dual Newton step is poor where a marginal
of ``X`` is off by a large *factor* on an eigenvector of small weight (the marginal residual
``q - A(X)`` is then linear in ``exp`` of the dual variable: Newton gains a fixed amount of
the exponent per step, whatever the factor). The scaling step corrects the exponent itself:

    A*(d) = eps (log rho - log Tr_2 X) (x) I        (or I (x) eps (log sigma - log Tr_1 X)),

which gives ``Tr_2 X = rho`` exactly when ``X`` is a product state (or the two commute), as one
half-step of Sinkhorn's algorithm does for classical transport. Newton-CG
(:mod:`cvxqreg.solvers.newton`) tries it after a step that did not halve ``||grad D||`` and keeps
it only when it raises ``D_eps`` (docs/theory.md, 'The marginal scaling step').
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["marginal_scaling"]


def _log_h(M: np.ndarray) -> np.ndarray | None:
    """The matrix logarithm of a Hermitian positive definite ``M`` (``None`` if it is not)."""
    w, V = np.linalg.eigh(0.5 * (M + M.conj().T))
    if not w[0] > 0:
        return None
    return (V * np.log(w)) @ V.conj().T


def marginal_scaling(oracle) -> Callable | None:
    """``steps(ev)``: an iterator over the scaling steps ``d`` of both marginals at the evaluation
    ``ev``, the one whose marginal is further off first (a marginal of the state that is not
    numerically positive definite gives none); ``None`` when the oracle's problem is not a
    coupling of two positive definite marginals under the von Neumann regularizer."""
    from ..bounds import coupling_marginals
    from ..face import _rows_of

    if getattr(oracle.reg, "name", None) != "von_neumann" or oracle.problem.blocks is not None:
        return None
    if oracle.problem.has_inequalities:
        return None
    marg = coupling_marginals(oracle.problem)
    if marg is None:
        return None
    (n1, n2), rho, sigma = marg
    log_rho, log_sigma = _log_h(rho), _log_h(sigma)
    if log_rho is None or log_sigma is None:
        return None
    problem, be = oracle.problem, oracle.be

    def steps(ev) -> Iterator[np.ndarray]:
        V = np.asarray(be.to_host(oracle.factor(ev.U, ev.w)))
        T = V.reshape(n1, n2, -1)
        XA = np.einsum("ajk,bjk->ab", T, T.conj())  # Tr_2 X
        XB = np.einsum("iak,ibk->ab", T, T.conj())  # Tr_1 X
        off = [
            (float(np.linalg.norm(XA - rho)), log_rho, XA, True),
            (float(np.linalg.norm(XB - sigma)), log_sigma, XB, False),
        ]
        off.sort(key=lambda p: -p[0])
        # lazily: the Gram solve of the second step is not needed when the first is kept
        for _, log_t, cur, first in off:
            log_c = _log_h(cur)
            if log_c is None:
                continue
            delta = oracle.eps * (log_t - log_c)
            M = np.kron(delta, np.eye(n2)) if first else np.kron(np.eye(n1), delta)
            yield _rows_of(problem, M)

    return steps
