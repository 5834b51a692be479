"""Encoding the context columns of a table for a conditional model ``p(x | c)``.

A conditional model (``context_features=C``) takes its context as a real vector of width ``C``
(see :mod:`ardens.base`). When the context comes from columns of a table (a class label, a
flag, a measurement), :func:`fit_context` learns how to turn those columns into that vector on
the training rows, and :class:`ContextEncoding` applies it again to any rows:

- a ``categorical`` column (text labels, or small non-negative integer codes) becomes a one-hot
  block with one position per category seen in training (text: sorted labels; codes:
  ``0..max``);
- a ``binary`` column (values 0/1) stays 0/1 (one position);
- a ``real`` column is standardized with the training rows' mean and population standard
  deviation (one position).

Kinds are inferred like data columns (:func:`ardens.tables.infer_column`: text is categorical,
0/1 is binary, non-negative integers up to 31 are categorical codes, anything else real) unless
given. The encoding is plain JSON (:meth:`ContextEncoding.to_meta`,
:meth:`ContextEncoding.from_meta`), stored in a checkpoint's metadata so that the same columns
of another file are encoded exactly as in training. Problems (a missing value, an unseen label,
a value that does not fit the kind) are one-line :class:`ContextError` naming the row and column.
This module reads no files.

>>> enc = fit_context([np.array(["b", "a", "c", "a"], dtype=object), np.array([1.5, 2.0, 3.0, 4.5])],
...                   ["label", "dose"])
>>> enc.width, [c.kind for c in enc.columns], enc.columns[0].categories
(4, ['categorical', 'real'], ['a', 'b', 'c'])
>>> enc.encode([np.array(["c"], dtype=object), np.array([2.75])]).tolist()
[[0.0, 0.0, 1.0, 0.0]]
>>> ContextEncoding.from_meta(enc.to_meta()) == enc
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ContextError", "ContextColumn", "ContextEncoding", "fit_context", "KINDS"]

KINDS = ("categorical", "binary", "real")


class ContextError(ValueError):
    """A context value that cannot be encoded (one line, naming the row and column)."""


@dataclass
class ContextColumn:
    """One context column: its ``name``, ``kind`` (``categorical``, ``binary``, ``real``), the
    ``categories`` of a categorical column (text labels or integer codes, in one-hot order),
    the ``loc``/``scale`` of a real one, and (optionally) its ``index`` in the file it came from."""

    name: str
    kind: str
    categories: list | None = None
    loc: float = 0.0
    scale: float = 1.0
    index: int | None = None

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1

    @property
    def labelled(self) -> bool:
        """A categorical column of text labels (not integer codes)."""
        return self.kind == "categorical" and any(isinstance(c, str) for c in self.categories or [])


def _default_cell(r: int, j: int, name: str) -> str:
    return f"row {r}, context column {name!r}"


@dataclass
class ContextEncoding:
    """How the context columns of a table become the context vector of a conditional model."""

    columns: list[ContextColumn] = field(default_factory=list)

    @property
    def width(self) -> int:
        """``C``: the width of the encoded context (the model's ``context_features``)."""
        return sum(c.width for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def describe(self) -> str:
        """``label=categorical(a|b|c), dose=real`` (for logs)."""
        parts = []
        for c in self.columns:
            cats = f"({'|'.join(map(str, c.categories))})" if c.kind == "categorical" else ""
            parts.append(f"{c.name}={c.kind}{cats}")
        return ", ".join(parts)

    def encode(
        self,
        columns: Sequence[Any],
        where: str = "context",
        cell: Callable[[int, int, str], str] | None = None,
    ) -> np.ndarray:
        """The ``(rows, width)`` float64 context of raw column values: one 1-D array (or list)
        per context column, in order; text labels as strings, everything else as numbers.
        ``cell(r, j, name)`` names a cell in messages (default ``row r, context column 'name'``);
        errors are ``ContextError("<where>: <problem> at <cell>")``."""
        cell = cell or _default_cell
        if len(columns) != len(self.columns):
            raise ContextError(f"{where}: {len(columns)} context columns given; expected {len(self.columns)}")
        n = len(columns[0]) if len(columns) else 0
        out = np.zeros((n, self.width))
        pos = 0
        for j, (col, values) in enumerate(zip(self.columns, columns)):
            values = list(values)
            if len(values) != n:
                raise ContextError(f"{where}: context columns of different lengths ({len(values)} and {n})")
            for r, v in enumerate(values):
                if _missing(v):
                    raise ContextError(f"{where}: missing context value at {cell(r, j, col.name)}")
            if col.kind == "categorical":
                lookup = {_key(c): k for k, c in enumerate(col.categories)}
                for r, v in enumerate(values):
                    k = lookup.get(_key(v))
                    if k is None:
                        shown = ", ".join(repr(c) for c in col.categories[:10])
                        more = ", ..." if len(col.categories) > 10 else ""
                        what = "label" if isinstance(v, str) else "value"
                        raise ContextError(
                            f"{where}: {what} {v!r} was not seen in training at {cell(r, j, col.name)}"
                            f" (known: {shown}{more})"
                        )
                    out[r, pos + k] = 1.0
            else:
                nums = np.empty(n)
                for r, v in enumerate(values):
                    if isinstance(v, str) or not isinstance(v, (numbers.Real, np.bool_)) or not math.isfinite(v):
                        raise ContextError(
                            f"{where}: value {v!r} at {cell(r, j, col.name)}; expected a finite number ({col.kind})"
                        )
                    nums[r] = float(v)
                if col.kind == "binary":
                    bad = (nums != 0) & (nums != 1)
                    if bad.any():
                        r = int(np.argmax(bad))
                        raise ContextError(
                            f"{where}: value {nums[r]:g} at {cell(r, j, col.name)}; expected 0 or 1 (binary)"
                        )
                    out[:, pos] = nums
                else:
                    out[:, pos] = (nums - col.loc) / col.scale
            pos += col.width
        return out

    def to_meta(self) -> dict[str, Any]:
        """A JSON-serializable description (the checkpoint's ``context`` entry)."""
        cols = []
        for c in self.columns:
            entry: dict[str, Any] = {"name": c.name, "kind": c.kind}
            if c.kind == "categorical":
                entry["categories"] = list(c.categories)
            if c.kind == "real":
                entry["loc"], entry["scale"] = c.loc, c.scale
            if c.index is not None:
                entry["index"] = c.index
            cols.append(entry)
        return {"columns": cols, "width": self.width}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> ContextEncoding:
        cols = []
        for e in meta["columns"]:
            cats = e.get("categories")
            cols.append(
                ContextColumn(
                    name=str(e["name"]),
                    kind=e["kind"],
                    categories=list(cats) if cats is not None else None,
                    loc=float(e.get("loc", 0.0)),
                    scale=float(e.get("scale", 1.0)),
                    index=e.get("index"),
                )
            )
        return cls(cols)


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(v != v)
    except (TypeError, ValueError):
        return True


def _key(v: Any) -> Any:
    """Labels compare as text; codes as numbers (``1``, ``1.0`` and ``True`` are one code)."""
    if isinstance(v, str):
        return ("s", v)
    if isinstance(v, (numbers.Real, np.bool_)):
        return ("n", float(v))
    return ("o", v)


def fit_context(
    columns: Sequence[Any],
    names: Sequence[str],
    kinds: Sequence[str | None] | None = None,
    categories: Sequence[list | None] | None = None,
    indices: Sequence[int | None] | None = None,
    where: str = "context",
) -> ContextEncoding:
    """The encoding of context columns fitted on their training rows (``columns``: one 1-D
    array of raw values per column; text labels as strings). ``kinds``: ``categorical``,
    ``binary`` or ``real`` per column (None: inferred). ``categories``: the categories of a
    categorical column (None: from the training rows). ``indices``: the columns' places in
    their file, kept in the metadata."""
    from .tables import infer_column

    k = len(columns)
    kinds = list(kinds) if kinds is not None else [None] * k
    categories = list(categories) if categories is not None else [None] * k
    indices = list(indices) if indices is not None else [None] * k
    out = []
    for j, (values, name, kind, cats, index) in enumerate(zip(columns, names, kinds, categories, indices)):
        values = list(values)
        if not values:
            raise ContextError(f"{where}: context column {name!r} has no training rows")
        for r, v in enumerate(values):
            if _missing(v):
                raise ContextError(f"{where}: missing context value at {_default_cell(r, j, name)}")
        text = [isinstance(v, str) for v in values]
        if kind is not None and kind not in KINDS:
            raise ContextError(f"{where}: context column {name!r}: kind {kind!r}; expected one of {', '.join(KINDS)}")
        if any(text):
            if kind not in (None, "categorical"):
                raise ContextError(f"{where}: context column {name!r} holds text labels, so it cannot be {kind}")
            if not all(text):
                r = text.index(False)
                raise ContextError(f"{where}: number {values[r]!r} among text labels at {_default_cell(r, j, name)}")
            col = ContextColumn(str(name), "categorical", list(cats) if cats else sorted(set(values)), index=index)
        else:
            nums = np.array([float(v) for v in values])
            if not np.isfinite(nums).all():
                r = int(np.argmax(~np.isfinite(nums)))
                raise ContextError(f"{where}: value {nums[r]} at {_default_cell(r, j, name)}; expected a finite number")
            inferred = infer_column(nums).partition(":")[0]
            kind = kind or inferred
            if kind == "categorical":
                if cats:
                    cats = list(cats)
                elif inferred == "real":
                    raise ContextError(
                        f"{where}: context column {name!r} is not integer codes 0..31; it cannot be categorical"
                    )
                else:
                    cats = list(range(int(nums.max()) + 1))
                col = ContextColumn(str(name), "categorical", cats, index=index)
            elif kind == "binary":
                if inferred != "binary":
                    raise ContextError(f"{where}: context column {name!r} holds values other than 0/1")
                col = ContextColumn(str(name), "binary", index=index)
            else:
                scale = float(nums.std())
                if not scale > 0:
                    raise ContextError(
                        f"{where}: context column {name!r} is constant ({nums[0]:g}) in the training rows;"
                        " a real context needs some spread"
                    )
                col = ContextColumn(str(name), "real", loc=float(nums.mean()), scale=scale, index=index)
        out.append(col)
    return ContextEncoding(out)
