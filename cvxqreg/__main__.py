"""``python -m cvxqreg``: the same command line as the ``cvxqreg`` script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
