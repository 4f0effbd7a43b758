"""The result tables (cvxqreg.table): sweep and batch share column meanings and exports."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest

import cvxqreg
from cvxqreg.table import Table

from .conftest import rand_state
from .test_batch import qot_problem

#: the columns both tables have, with the same meaning
SHARED = (
    "regularizer",
    "eps",
    "status",
    "value",
    "energy",
    "dual_value",
    "certified_bound",
    "sense",
    "bracket_low",
    "bracket_high",
    "iterations",
)


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(3)
    prob = qot_problem(rand_state(rng, 2), rand_state(rng, 2))
    # a maximization: the certified bound is an upper bound, sense -1, in both tables
    prob = cvxqreg_max(prob)
    eps = [1e-1, 1e-2]
    opts = dict(backend="numpy", tol=1e-9)
    sw = cvxqreg.sweep(prob, eps, regularizers=["von_neumann"], reference=None, **opts)
    ba = cvxqreg.solve_many([prob], eps, regularizer="von_neumann", client="serial", **opts)
    F0 = cvxqreg.solve_exact(prob).value
    return sw, ba, F0


def cvxqreg_max(prob):
    import cvxpy as cp

    return cp.Problem(cp.Maximize(-prob.objective.expr), prob.constraints)


def _exports(table: Table):
    cols = list(table._table_columns())
    return cols, table.to_csv(), json.loads(table.to_json()), table.to_markdown(), str(table)


def test_both_tables_export_the_same_way(tables, tmp_path):
    for table in tables[:2]:
        assert isinstance(table, Table)
        cols, text, data, md, shown = _exports(table)
        n = len(table.rows)
        # CSV: all columns, in order, one line per row; reading it back gives the rows
        back = list(csv.DictReader(io.StringIO(text)))
        assert text.splitlines()[0].split(",") == cols and len(back) == n
        for got, row in zip(back, table._table_rows(), strict=True):
            assert float(got["value"]) == row["value"] and got["status"] == row["status"]
        # JSON: the rows last, all columns, missing numbers (nan) as null
        assert list(data)[-1] == "rows" and [list(r) for r in data["rows"]] == [cols] * n
        for got, row in zip(data["rows"], table._table_rows(), strict=True):
            for c in cols:
                v = row[c]
                if isinstance(v, float) and math.isnan(v):
                    assert got[c] is None
                elif isinstance(v, (int, float, str)):
                    assert got[c] == v
        # Markdown and text: header, rule, one line per row, same headers
        md_lines = [ln for ln in md.splitlines() if ln.startswith("|")]
        assert len(md_lines) == 2 + n and "| cert. bound |" in md_lines[0]
        heads = [h for _, h, _ in table._table_shown()]
        assert shown.splitlines()[0].split() == [w for h in heads for w in h.split()]
        # files: the same text
        assert table.to_csv(str(tmp_path / "t.csv")) == (tmp_path / "t.csv").read_bytes().decode()
        assert table.to_json(str(tmp_path / "t.json")) == (tmp_path / "t.json").read_text()
    pd = pytest.importorskip("pandas")
    for table in tables[:2]:
        df = table.to_pandas()
        assert isinstance(df, pd.DataFrame) and list(df.columns) == list(table._table_columns())
        assert np.array_equal(df["value"].to_numpy(), [r["value"] for r in table._table_rows()])


def test_shared_columns_mean_the_same(tables):
    sw, ba, F0 = tables
    srows = [r.as_dict() for r in sw.rows]
    assert len(srows) == len(ba.rows) == 2
    for s, b in zip(srows, ba.rows, strict=True):
        assert set(SHARED) <= set(s) and set(SHARED) <= set(b)
        assert s["status"] == b["status"] == "converged"
        assert s["sense"] == b["sense"] == -1
        for c in ("eps", "value", "energy", "dual_value", "certified_bound"):
            assert s[c] == pytest.approx(b[c], rel=1e-7, abs=1e-9), c
        # a maximization: the certified bound is an upper bound on the exact optimum F_0
        assert b["certified_bound"] >= F0 - 1e-6


def test_empty_table_prints():
    empty = cvxqreg.solve_many([], 1e-1, client="serial")
    assert len(empty) == 0 and str(empty).splitlines()[0].split()[:2] == ["task", "label"]
    assert json.loads(empty.to_json())["rows"] == []
