"""Solvers: the exact conic reference, the dual oracle and the optimizers that maximize it."""
