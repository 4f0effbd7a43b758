"""The layout of cvxqreg.solvers: each ``optimizer=`` name runs the driver of the module with that
name, from one table."""

from __future__ import annotations

import numpy as np
import pytest

from cvxqreg import DualSolver
from cvxqreg.solvers import regularized

from .conftest import qot_problem

#: optimizer= name -> module of cvxqreg.solvers holding its driver
MODULES = {"newton": "newton", "lbfgs": "lbfgs", "scipy": "scipy_lbfgs"}
DRIVERS = ("newton_cg_maximize", "lbfgs_maximize_hz", "scipy_lbfgs_maximize")


def test_one_table_names_every_optimizer():
    assert tuple(regularized.OPTIMIZERS) == tuple(MODULES)
    assert regularized.OPTIMIZER_NAMES == tuple(MODULES)


@pytest.mark.parametrize("optimizer", list(MODULES))
def test_each_optimizer_runs_the_driver_of_its_module(monkeypatch, optimizer):
    called = []
    for name in DRIVERS:
        real = getattr(regularized, name)

        def spy(*args, _real=real, **kwargs):
            called.append(_real.__module__)
            return _real(*args, **kwargs)

        monkeypatch.setattr(regularized, name, spy)
    P, _, _ = qot_problem(np.random.default_rng(1), n=3)
    r = DualSolver(backend="numpy", optimizer=optimizer, continuation=False)(P, 0.1)
    assert r.converged
    assert called == [f"cvxqreg.solvers.{MODULES[optimizer]}"]
