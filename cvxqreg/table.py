"""Result tables: rows of named columns, printed and exported the same way everywhere.

A table is a sequence of rows ``r_1..r_N``, each a mapping ``column -> value`` over the same
ordered columns. :class:`~cvxqreg.SweepResult` and :class:`~cvxqreg.BatchResult` are such tables;
where they report the same quantity they use the same column name with the same meaning:
``regularizer``, ``eps``, ``status``, ``value`` (``F_eps``), ``energy`` (``Tr[H X]``),
``dual_value``, ``certified_bound`` (a rigorous bound on the exact optimum ``F_0``: a lower bound
when ``sense == 1``, an upper bound when ``sense == -1``), ``sense``, ``bracket_low`` /
``bracket_high`` (the regularization bracket, :mod:`cvxqreg.bounds`), ``iterations`` and ``time``.

Every table exports the same way: ``str(table)`` (aligned text of the main columns),
:meth:`~Table.to_markdown` (the same columns), :meth:`~Table.to_csv` (all columns),
:meth:`~Table.to_json` (all columns, ``nan``/``inf`` as ``null``, a complex number as
``[re, im]``) and :meth:`~Table.to_pandas` (all columns; needs pandas).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Table"]

#: (column, header, format) of a shown column: ``format.format(value)``, ``"-"`` for a missing one
Shown = tuple[str, str, str]


class Table:
    """Exports shared by the result tables (a mixin of frozen dataclasses).

    A subclass provides :meth:`_table_columns` (all columns, in order), :meth:`_table_rows`
    (one mapping per row) and :meth:`_table_shown` (the columns of the text and Markdown tables);
    optionally :meth:`_table_title` (a line above the table) and :meth:`_table_header` (the JSON
    keys before ``"rows"``).
    """

    # -- what a table provides
    def _table_columns(self) -> Sequence[str]:
        raise NotImplementedError

    def _table_rows(self) -> Sequence[dict[str, Any]]:
        raise NotImplementedError

    def _table_shown(self) -> Sequence[Shown]:
        raise NotImplementedError

    def _table_title(self, markdown: bool) -> str | None:
        return None

    def _table_header(self) -> dict[str, Any]:
        return {}

    # -- the exports
    def _records(self) -> list[dict[str, Any]]:
        cols = list(self._table_columns())
        return [{c: cell(r[c]) for c in cols} for r in self._table_rows()]

    def to_markdown(self) -> str:
        """A Markdown table of the main columns (all columns: :meth:`to_csv`)."""
        shown = list(self._table_shown())
        title = self._table_title(True)
        lines = [] if title is None else [title + "\n"]
        lines.append("| " + " | ".join(h.replace("|", "\\|") for _, h, _ in shown) + " |")
        lines.append("|" + "|".join("---" for _ in shown) + "|")
        for r in self._table_rows():
            lines.append("| " + " | ".join(fmt(r[k], f) for k, _, f in shown) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | None = None) -> str:
        """CSV text of all columns; also written to ``path`` when given."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self._table_columns()))
        w.writeheader()
        w.writerows(self._records())
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as fh:
                fh.write(text)
        return text

    def to_json(self, path: str | None = None) -> str:
        """JSON text of all columns (``{..., "rows": [...]}``, ``nan`` as ``null``, a complex
        number as ``[re, im]``); also written to ``path`` when given."""
        data = {**self._table_header(), "rows": self._records()}
        text = json.dumps(jsonable(data), indent=2, allow_nan=False)
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text)
        return text

    def to_pandas(self):
        """All columns as a :class:`pandas.DataFrame` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                f"{type(self).__name__}.to_pandas needs pandas: pip install pandas"
            ) from exc
        return pd.DataFrame(self._records(), columns=list(self._table_columns()))

    def __str__(self) -> str:
        shown = list(self._table_shown())
        head = [h for _, h, _ in shown]
        body = [[fmt(r[k], f) for k, _, f in shown] for r in self._table_rows()]
        widths = [max([len(h), *(len(b[i]) for b in body)]) for i, h in enumerate(head)]
        title = self._table_title(False)
        out = [] if title is None else [title]
        out.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
        return "\n".join(out)


def cell(v):
    """A table cell: arrays (array-valued parameters) as nested lists, NumPy scalars as Python."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def fmt(v, spec: str) -> str:
    """A shown cell: ``spec.format(v)``; ``"-"`` for ``None``/``nan``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, np.ndarray):
        return str(v.tolist())
    try:
        return spec.format(v)
    except (TypeError, ValueError):
        return str(v)


def jsonable(v):
    """``v`` with ``nan``/``inf`` as ``None`` and complex numbers as ``[re, im]``, recursively."""
    v = cell(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, complex):
        return [jsonable(v.real), jsonable(v.imag)]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
