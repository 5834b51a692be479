"""Column types of a data set: reading text tables, inferring each column's type, the
``--columns`` overrides, and one-hot groups of binary columns.

**Text tables** (:func:`read_text_table`): ``.csv``, ``.tsv``, ``.txt``, ``.amat``, ``.data``.
UTF-8, with or without a byte-order mark. The separator is the first of tab, semicolon and
comma that occurs on the first row and on at least half of the first 50 rows, else runs of
whitespace; fields may be quoted (``"..."``). Blank lines and lines starting with ``#`` are skipped. The first row is a
header when none of its cells is a number and some column holds numbers below it (a file
of text labels only has no detectable header). A pandas-style index column (header cell
empty or ``Unnamed: 0``, values 0..N-1) is dropped. A last column left empty on every row
(each line ends with the separator) is dropped. ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``
and empty cells are missing values, which are refused (one line naming the row and column),
unless the reader is asked to keep them (``missing=True``: NaN in ``values``, the cells' text in
``cells``; :func:`ardens.data.read_rows`).
In messages, the rows of a text file are its 1-based line numbers; the rows of an array are
its 0-based row indices.

**Inference** (:func:`infer_column`), on the whole file before it is split: a column whose
values are all 0 or 1 is ``binary``; non-negative integers with maximum M <= 31 are
``categorical:M+1`` (the values are the codes); other numbers are ``real`` (``real:10``); a
column of text labels only is ``categorical:K`` with K the number of distinct labels, coded
0..K-1 in sorted label order (a column holding one label gets K = 2, code 1 unused). A
column mixing numbers and text is refused, naming the first cell of the rarer kind.

**Overrides** (:func:`parse_columns_spec`, the ``--columns`` option): comma-separated
entries, either one ``KIND`` per column, in order (exactly as many as there are columns),
or ``KEY=KIND`` overrides of the inferred types, applied left to right (a later entry wins),
where ``KEY`` is a column name (from the header), a 0-based column index, or ``*`` (every
column). ``KIND`` is ``binary``, ``categorical:K``, ``categorical`` (K = largest code + 1, or
the number of labels), ``real`` (10 mixture components) or ``real:C``. An override is
checked against every value (:func:`resolve_columns`): a binary column holds only 0/1, a
categorical one only integer codes 0..K-1 or text labels (at most K of them), a real one
only numbers.

>>> parse_columns_spec("real, real, categorical:3", 3)
['real:10', 'real:10', 'categorical:3']
>>> parse_columns_spec("*=real:2,quality=categorical", 3, ["pH", "alcohol", "quality"])
['real:2', 'real:2', 'categorical']
>>> parse_columns_spec("1=binary", 3)
[None, 'binary', None]
>>> t = read_text_table(b"size,on,colour\\n1.5,0,red\\n2.5,1,blue\\n0.5,1,red\\n", "t.csv")
>>> t.names, resolve_columns(t), t.labels
(['size', 'on', 'colour'], ['real:10', 'binary', 'categorical:2'], {2: ['blue', 'red']})
>>> t.values[:, 2].tolist()
[1.0, 0.0, 1.0]
>>> resolve_columns(t, parse_columns_spec("on=categorical", 3, t.names))
['real:10', 'categorical:2', 'categorical:2']
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .data import DataError, check_matrix
from .heads import parse_column

__all__ = [
    "MISSING_TOKENS",
    "MAX_INFERRED_LEVELS",
    "Table",
    "read_text_table",
    "table_from_array",
    "infer_column",
    "parse_columns_spec",
    "resolve_columns",
    "check_spread",
    "check_finite",
    "normalize_groups",
    "find_one_hot_groups",
    "regroup",
    "ungroup",
]

#: Cells read as missing values in text files (after stripping spaces and quotes).
MISSING_TOKENS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL"})
#: Non-negative integer columns with a maximum up to this are inferred categorical.
MAX_INFERRED_LEVELS = 32
_SEPARATORS = ("\t", ";", ",")
_MISSING_NOTE = "missing values are not supported by this command yet"


@dataclass
class Table:
    """A numeric matrix with what is needed to name its cells in messages.

    ``values``: float64 ``(rows, columns)``; a text-label column holds its codes.
    ``names``: column names (from a header) or None. ``labels``: the sorted labels of the
    text-label columns, by column index. ``rows``: the number each row has in messages.
    ``wheres``/``starts``: the file (or ``file[split]``) of each block of rows, and where each
    block starts. ``cells``: only when read with ``missing=True`` from text, each row's cells as
    written (one string per column, surrounding spaces kept, quotes removed).
    """

    values: np.ndarray
    names: list[str] | None
    labels: dict[int, list[str]] = field(default_factory=dict)
    rows: np.ndarray | None = None
    wheres: list[str] = field(default_factory=lambda: ["data"])
    starts: list[int] = field(default_factory=lambda: [0])
    cells: list[list[str]] | None = None

    def column(self, j: int) -> str:
        """``column J (name)``, or ``column J`` when the column has no name."""
        name = self.names[j] if self.names else ""
        return f"column {j} ({name})" if name else f"column {j}"

    def where(self, r: int = 0) -> str:
        """The file (``file[split]``) holding row ``r``."""
        return self.wheres[int(np.searchsorted(self.starts, r, side="right")) - 1]

    def cell(self, r: int, j: int) -> str:
        """``row R, column J (name)`` for the matrix cell ``(r, j)``."""
        row = int(self.rows[r]) if self.rows is not None else r
        return f"row {row}, {self.column(j)}"

    def error(self, r: int, j: int, problem: str, tail: str = "") -> DataError:
        """``DataError("<file>: <problem> at row R, column J (name)<tail>")``."""
        return DataError(f"{self.where(r)}: {problem} at {self.cell(r, j)}{tail}")


# -- reading ------------------------------------------------------------------------------
def _detect_separator(lines: Sequence[str]) -> str | None:
    for sep in _SEPARATORS:
        if sep in lines[0] and 2 * sum(sep in line for line in lines) >= len(lines):
            return sep
    return None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_text_table(raw: bytes, where: str, missing: bool = False) -> Table:
    """Parse a text table (see the module docstring) into a :class:`Table`, or raise a
    one-line :class:`~ardens.data.DataError` (ragged rows, missing values, text in a numeric
    column, infinities).

    ``missing=True`` (opt-in) keeps missing cells as NaN instead of refusing them, and keeps
    each row's cell text in ``cells``.

    >>> t = read_text_table(b"a,b\\n1.5,x\\n,y\\n2.5,NA\\n", "m.csv", missing=True)
    >>> t.values.tolist(), t.labels, t.cells
    ([[1.5, 0.0], [nan, 1.0], [2.5, nan]], {1: ['x', 'y']}, [['1.5', 'x'], ['', 'y'], ['2.5', 'NA']])

    >>> t = read_text_table(b"\\xef\\xbb\\xbf;x;y\\n0;1.5;a\\n1;2.5;b\\n", "p.csv")
    >>> t.names, t.values.tolist(), t.rows.tolist()
    (['x', 'y'], [[1.5, 0.0], [2.5, 1.0]], [2, 3])
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{where}: not a text table (undecodable bytes at offset {err.start}; expected UTF-8)"
        ) from None
    if "\x00" in text:
        raise DataError(f"{where}: not a text table (undecodable bytes: NUL characters)")
    content = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and line.lstrip()[0] != "#"]
    if not content:
        raise DataError(f"{where}: empty (no rows)")
    sep = _detect_separator([line for _, line in content[:50]])
    quoted: list[list[str]] | None = None
    if sep is not None and '"' in text:
        quoted = list(csv.reader((line for _, line in content), delimiter=sep, skipinitialspace=True))
        if len(quoted) != len(content):
            raise DataError(f"{where}: a quoted field spans lines, which is not supported")

    def tokens(i: int) -> list[str]:
        if quoted is not None:
            return quoted[i]
        line = content[i][1]
        return line.split(sep) if sep is not None else line.split()

    first = tokens(0)
    width = len(first)
    if sep is None and len(content) > 1 and len(tokens(1)) == width + 1 and not any(map(_is_number, first)):
        first = ["", *first]  # a whitespace-separated header without its (empty) index cell
        width += 1
    n = len(content)
    values = np.empty((n, width))
    strings: dict[int, dict[int, str]] = {}
    last_empty = sep is not None and width > 1
    kept: list[list[str]] | None = [] if missing else None
    for i in range(n):
        toks = first if i == 0 else tokens(i)
        if kept is not None:
            kept.append(list(toks))
        if len(toks) != width:
            raise DataError(
                f"{where}: line {content[i][0]} has {len(toks)} values; earlier rows have {width} (ragged rows)"
            )
        try:
            values[i] = [float(t) for t in toks]
        except ValueError:
            for j, t in enumerate(toks):
                try:
                    values[i, j] = float(t)
                except ValueError:
                    values[i, j] = np.nan
                    s = t.strip().strip('"')
                    if s not in MISSING_TOKENS:
                        strings.setdefault(j, {})[i] = s
        if last_empty and toks[-1].strip():
            last_empty = False
    lines = np.array([lineno for lineno, _ in content], dtype=np.int64)
    names: list[str] | None = None
    if last_empty:
        values = values[:, :-1]
        strings.pop(width - 1, None)
        first = first[:-1]
        width -= 1
        if kept is not None:
            kept = [row[:-1] for row in kept]

    # header: no number in the first row, and some column with text there has numbers below
    if n > 1 and np.isnan(values[0]).all():
        header = any(
            0 in cells and len(cells) == 1 and not np.isnan(values[1:, j]).all() for j, cells in strings.items()
        )
        if header:
            names = [t.strip().strip('"') for t in first]
            values, lines = values[1:], lines[1:]
            kept = kept[1:] if kept is not None else None
            strings = {j: {i - 1: s for i, s in cells.items() if i} for j, cells in strings.items()}
            strings = {j: cells for j, cells in strings.items() if cells}
            n -= 1
            if names[0] in ("", "Unnamed: 0") and 0 not in strings and width > 1:
                if np.array_equal(values[:, 0], np.arange(n)):
                    values, names = values[:, 1:], names[1:]
                    strings = {j - 1: cells for j, cells in strings.items()}
                    width -= 1
                    kept = [row[1:] for row in kept] if kept is not None else None
    table = Table(values, names, {}, lines, [where], [0], kept)

    # text: a column of labels only, or a stray cell in a numeric column
    for j in sorted(strings):
        cells = strings[j]
        col = values[:, j]
        numeric = ~np.isnan(col)
        n_num = int(numeric.sum())
        if n_num == 0:
            labels = sorted(set(cells.values()))
            code = {s: k for k, s in enumerate(labels)}
            idx = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
            col[idx] = np.fromiter((code[s] for s in cells.values()), dtype=np.float64, count=len(cells))
            table.labels[j] = labels
        elif len(cells) <= n_num:
            r = min(cells)
            hint = "; a first row is a header only if none of its cells is a number" if r == 0 and names is None else ""
            raise table.error(r, j, f"text {cells[r]!r} in a numeric column", hint)
        else:
            r = int(np.argmax(numeric))
            raise table.error(r, j, f"number {col[r]:g} in a column of text labels")
    check_finite(table, missing)
    return table


def check_finite(table: Table, missing: bool = False) -> None:
    """Refuse missing values (NaN) and infinities, naming the first such cell; with
    ``missing=True`` (opt-in) only infinities."""
    values = table.values
    finite = np.isfinite(values)
    if finite.all():
        return
    nan = np.isnan(values)
    if nan.any() and not missing:
        r, j = np.argwhere(nan)[0]
        raise DataError(f"{table.where(r)}: missing value at {table.cell(r, j)}; {_MISSING_NOTE}")
    infinite = ~finite & ~nan
    if infinite.any():
        r, j = np.argwhere(infinite)[0]
        raise table.error(r, j, f"infinite value {values[r, j]}")


def table_from_array(
    arrays: np.ndarray | Sequence[np.ndarray],
    where: str | Sequence[str],
    names: Sequence[str] | None = None,
    source: str | None = None,
    missing: bool = False,
) -> Table:
    """A :class:`Table` of one array, or of several stacked (a file's splits; ``where`` then
    names each, ``source`` the file). Rows are numbered from 0 within each array; NaN and
    infinities are refused (``missing=True``, opt-in: NaN is kept as a missing value).

    >>> table_from_array(np.array([[0.0, 1.0], [np.nan, 2.0]]), "x.npy")
    Traceback (most recent call last):
    ...
    ardens.data.DataError: x.npy: missing value at row 1, column 0; missing values are not supported by this command yet
    """
    if isinstance(arrays, np.ndarray):
        arrays, where = [arrays], [str(where)]
    source = source or where[0]
    arrays = [check_matrix(a, w) for a, w in zip(arrays, where)]
    widths = {w.removeprefix(source).strip("[]") or w: a.shape[1] for a, w in zip(arrays, where)}
    if len(set(widths.values())) > 1:
        raise DataError(f"{source}: splits have different numbers of dimensions: {widths}")
    if len(arrays) > 1:
        values = np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays])
    else:
        values = np.array(arrays[0], dtype=np.float64)
    rows = np.concatenate([np.arange(len(a)) for a in arrays])
    starts = np.cumsum([0] + [len(a) for a in arrays[:-1]]).tolist()
    if names is not None and len(names) != values.shape[1]:
        raise DataError(f"{source}: {len(names)} column names for {values.shape[1]} columns")
    table = Table(values, list(names) if names is not None else None, {}, rows, list(where), starts)
    check_finite(table, missing)
    return table


# -- types ----------------------------------------------------------------------------------
def infer_column(values: np.ndarray) -> str:
    """The type of a numeric column (no NaN), by the rule in the module docstring.

    >>> [infer_column(np.array(v, dtype=float)) for v in ([0, 1, 1], [0, 2, 1], [3, 40], [0.5, 1])]
    ['binary', 'categorical:3', 'real:10', 'real:10']
    """
    v = np.asarray(values, dtype=np.float64)
    if ((v == 0) | (v == 1)).all():
        return "binary"
    if v.min() >= 0 and v.max() < MAX_INFERRED_LEVELS and (v == np.floor(v)).all():
        return f"categorical:{int(v.max()) + 1}"
    return parse_column("real").spec()


def _parse_kind(kind: str, entry: str) -> str:
    k = kind.strip().lower()
    if k in ("categorical", "cat", "c"):
        return "categorical"
    try:
        return parse_column(k).spec()
    except ValueError as err:
        raise DataError(f"--columns: {entry.strip()!r}: {err}") from None


def parse_columns_spec(text: str, n: int, names: Sequence[str] | None = None) -> list[str | None]:
    """The ``--columns`` option (grammar in the module docstring) for ``n`` columns named
    ``names``: one entry per column, a canonical spec (``binary``, ``categorical:K``,
    ``categorical`` for K to infer, ``real:C``) or None (infer the type).

    >>> parse_columns_spec("0=real,2=cat:4", 3)
    ['real:10', None, 'categorical:4']
    >>> parse_columns_spec("b=real", 2, ["a", "c"])
    Traceback (most recent call last):
    ...
    ardens.data.DataError: --columns: 'b' is not a column name or a column index 0..1 (columns: a, c)
    """
    out: list[str | None] = [None] * n
    if not text or not text.strip():
        return out
    entries = [e.strip() for e in text.split(",")]
    if any(not e for e in entries):
        raise DataError(f"--columns: empty entry in {text!r}; expected KIND,KIND,... or KEY=KIND,...")
    keyed = ["=" in e for e in entries]
    if not any(keyed):
        if len(entries) != n:
            raise DataError(
                f"--columns: {len(entries)} KIND entries for {n} columns; give one per column, or KEY=KIND overrides"
            )
        return [_parse_kind(e, e) for e in entries]
    if not all(keyed):
        bad = entries[keyed.index(False)]
        raise DataError(f"--columns: {bad!r} has no KEY=; use KEY=KIND for every entry, or KIND for every column")
    for entry in entries:
        key, _, kind = entry.rpartition("=")
        key = key.strip()
        spec = _parse_kind(kind, entry)
        if key == "*":
            out = [spec] * n
            continue
        matches = [j for j, name in enumerate(names or ()) if name == key]
        if len(matches) > 1:
            raise DataError(f"--columns: {key!r} names columns {', '.join(map(str, matches))}; use an index")
        if matches:
            j = matches[0]
        elif key.isdigit() and int(key) < n:
            j = int(key)
        else:
            listed = ""
            if names:
                shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
                listed = f" (columns: {shown})"
            raise DataError(f"--columns: {key!r} is not a column name or a column index 0..{n - 1}{listed}")
        out[j] = spec
    return out


def resolve_columns(table: Table, overrides: Sequence[str | None] | None = None) -> list[str]:
    """Each column's spec: its override, checked against every value, or the inferred type.

    ``overrides``: from :func:`parse_columns_spec` (or None: infer every column).
    """
    values = table.values
    d = values.shape[1]
    overrides = list(overrides) if overrides is not None else [None] * d
    if len(overrides) != d:
        raise DataError(f"{table.where()}: {len(overrides)} column types for {d} columns")
    specs: list[str] = []
    for j, spec in enumerate(overrides):
        col = values[:, j]
        labels = table.labels.get(j)
        if spec is None:
            specs.append(f"categorical:{max(2, len(labels))}" if labels is not None else infer_column(col))
            continue
        spec = "categorical" if spec in ("categorical", "cat", "c") else parse_column(spec).spec()
        kind = spec.partition(":")[0]
        if labels is not None:
            if kind != "categorical":
                shown = ", ".join(repr(s) for s in labels[:3]) + (", ..." if len(labels) > 3 else "")
                raise DataError(
                    f"{table.where()}: {table.column(j)} holds text labels ({shown}), so it cannot be {kind}; "
                    "declare it categorical"
                )
            levels = max(2, len(labels)) if spec == "categorical" else int(spec.partition(":")[2])
            if levels < len(labels):
                raise DataError(f"{table.where()}: {table.column(j)} has {len(labels)} labels; {spec} allows {levels}")
            specs.append(f"categorical:{levels}")
            continue
        if kind == "binary":
            bad = (col != 0) & (col != 1)
            if bad.any():
                r = int(np.argmax(bad))
                raise table.error(r, j, f"value {col[r]:g} in a column declared binary (0/1)")
        elif kind == "categorical":
            bad = (col != np.floor(col)) | (col < 0)
            if bad.any():
                r = int(np.argmax(bad))
                raise table.error(r, j, f"value {col[r]:g} in a column declared {spec} (codes are integers 0..K-1)")
            levels = max(2, int(col.max()) + 1) if spec == "categorical" else int(spec.partition(":")[2])
            bad = col >= levels
            if bad.any():
                r = int(np.argmax(bad))
                raise table.error(r, j, f"value {col[r]:g} out of range for {spec} (codes 0..{levels - 1})")
            spec = f"categorical:{levels}"
        specs.append(spec)
    return specs


def check_spread(train: np.ndarray, specs: Sequence[str], where: str, names: Sequence[str] | None = None) -> None:
    """Refuse a real column that is constant in the training split (zero standard deviation)."""
    for j, spec in enumerate(specs):
        if spec.startswith("real"):
            col = train[:, j]
            if not (col.std() > 0):
                name = f" ({names[j]})" if names and names[j] else ""
                raise DataError(
                    f"{where}: real column {j}{name} is constant in the training split (every value {col[0]:g}); "
                    "remove it or declare it binary/categorical with --columns"
                )


# -- one-hot groups -------------------------------------------------------------------------
def find_one_hot_groups(binary_train: np.ndarray, min_width: int = 2) -> list[tuple[int, int, bool]]:
    """Runs of consecutive binary columns that look like one-hot codes of one variable.

    The rule, greedy from left to right: a run starts at the first column not yet placed and
    takes the next column while, in every row, at most one column of the run is 1. A run of
    at least ``min_width`` (>= 2) columns is a group ``(start, stop, has_none)`` (columns
    ``start..stop-1``; ``has_none``: some row has no 1 in it, so the group needs a "none"
    level); the next run starts at ``stop``. A shorter run places only its first column, and
    the next run starts one column later. Groups are decided on the training split.

    On the named UCI binary sets (training splits, min_width 2; see
    :func:`ardens.data.one_hot_report`):

    - ``adult`` (123 columns): 14 groups covering every column, widths 5, 8, 5, 16, 5, 7, 14,
      6, 5, 2, 2, 2, 5, 41: ``(0, 5)``, ``(5, 13, none)``, ``(13, 18)``, ``(18, 34)``,
      ``(34, 39)``, ``(39, 46)``, ``(46, 60, none)``, ``(60, 66)``, ``(66, 71)``, ``(71, 73)``,
      ``(73, 75)``, ``(75, 77)``, ``(77, 82)``, ``(82, 123, none)`` (the 14 attributes of the
      a9a encoding; "none" where the attribute is sometimes unknown).
    - ``connect4`` (126): 42 groups of 3 columns ``(3i, 3i+3)``, no "none": the 42 board
      cells (x, o, blank).
    - ``dna`` (180): 60 groups of 3 ``(3i, 3i+3)``, all with "none": the 60 nucleotides,
      one of them coded 000.
    - ``mushrooms`` (112): 20 groups, no "none", covering every column but 77 (constant):
      ``(0, 6)``, ``(6, 10)``, ``(10, 20)``, ``(20, 22)``, ``(22, 31)``, ``(31, 33)``, ``(33, 35)``,
      ``(35, 37)``, ``(37, 49)``, ``(49, 51)``, ``(51, 55)``, ``(55, 59)``, ``(59, 68)``,
      ``(68, 77)``, ``(78, 82)``, ``(82, 85)``, ``(85, 90)``, ``(90, 99)``, ``(99, 105)``, ``(105, 112)``.
    - ``nips`` (500 word counts): one spurious group ``(259, 261, none)``: two words that
      never meet in the 400 training documents, though 4 test documents hold both, so
      ``one_hot_groups="auto"`` refuses nips' test split.
    - ``ocr_letters`` (128 pixels): none.
    In all these sets every group found on the training split also holds on the valid and
    test splits, except nips'.

    >>> x = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]])
    >>> find_one_hot_groups(x)
    [(0, 3, True), (3, 5, False)]
    """
    if min_width < 2:
        raise ValueError(f"min_width: expected at least 2; got {min_width}")
    x = np.asarray(binary_train) != 0
    d = x.shape[1]
    groups: list[tuple[int, int, bool]] = []
    start = 0
    while start < d:
        on = x[:, start].copy()
        stop = start + 1
        while stop < d and not (on & x[:, stop]).any():
            on |= x[:, stop]
            stop += 1
        if stop - start >= min_width:
            groups.append((start, stop, bool((~on).any())))
            start = stop
        else:
            start += 1
    return groups


def normalize_groups(
    groups: Sequence[Sequence[int]], d: int, where: str = "data", train: np.ndarray | None = None
) -> list[tuple[int, int, bool | None]]:
    """Check one-hot groups of ``d`` binary columns (sorted, disjoint, at least 2 columns each)
    and return ``(start, stop, has_none)`` triples; a missing ``has_none`` is decided on
    ``train`` (some row with no 1 in the group) when given, else left None."""
    out: list[tuple[int, int, bool | None]] = []
    last = 0
    for g in groups:
        g = tuple(g)
        if len(g) not in (2, 3):
            raise DataError(f"{where}: one-hot group {g!r}: expected (start, stop) or (start, stop, has_none)")
        start, stop = int(g[0]), int(g[1])
        if not (last <= start and start + 2 <= stop <= d):
            raise DataError(
                f"{where}: one-hot group {g!r}: expected sorted, non-overlapping groups of at least 2 columns "
                f"within 0..{d}"
            )
        has_none = bool(g[2]) if len(g) == 3 else None
        if has_none is None and train is not None:
            has_none = bool((np.asarray(train)[:, start:stop] != 0).sum(1).min() == 0)
        out.append((start, stop, has_none))
        last = stop
    return out


def regroup(binary: np.ndarray, groups: Sequence[Sequence[int]], where: str = "data") -> tuple[np.ndarray, list[str]]:
    """Replace each one-hot group of binary columns by one categorical column.

    ``groups``: ``(start, stop, has_none)`` (from :func:`find_one_hot_groups` on the training
    split), or ``(start, stop)`` to decide ``has_none`` on ``binary`` itself. A group with
    "none" becomes ``categorical:W+1`` (W = stop - start): code 0 is "no column on", code i
    is "column start+i-1 on"; without, ``categorical:W``, code i is "column start+i on".
    Other columns stay binary, in place. Returns float64 codes and the column specs. A row
    with two 1s in a group, or with none in a group without "none", is refused.

    >>> codes, specs = regroup(np.array([[1, 0, 0, 1], [0, 0, 1, 0]]), [(0, 3, False)])
    >>> codes.tolist(), specs
    ([[0.0, 1.0], [2.0, 0.0]], ['categorical:3', 'binary'])
    >>> regroup(np.array([[1, 1, 0], [0, 0, 1]]), [(0, 2, True)], "x[valid]")
    Traceback (most recent call last):
    ...
    ardens.data.DataError: x[valid]: row 0 has 2 ones in one-hot group 0:2 (columns 0..1); a group allows at most one
    """
    x = np.asarray(binary)
    if x.ndim != 2:
        raise DataError(f"{where}: expected a 2-D array; got shape {x.shape}")
    n, d = x.shape
    checked = normalize_groups(groups, d, where)
    cols: list[np.ndarray] = []
    specs: list[str] = []
    pos = 0
    for start, stop, has_none in checked:
        for j in range(pos, start):
            cols.append(x[:, j].astype(np.float64))
            specs.append("binary")
        block = x[:, start:stop] != 0
        count = block.sum(1)
        if (count > 1).any():
            r = int(np.argmax(count > 1))
            raise DataError(
                f"{where}: row {r} has {count[r]} ones in one-hot group {start}:{stop} "
                f"(columns {start}..{stop - 1}); a group allows at most one"
            )
        if has_none is None:
            has_none = bool((count == 0).any())
        if not has_none and (count == 0).any():
            r = int(np.argmax(count == 0))
            raise DataError(
                f"{where}: row {r} has no one in one-hot group {start}:{stop} (columns {start}..{stop - 1}), "
                "whose training split always has one"
            )
        code = block.argmax(1).astype(np.float64)
        if has_none:
            code = np.where(count == 0, 0.0, code + 1)
        cols.append(code)
        specs.append(f"categorical:{stop - start + int(has_none)}")
        pos = stop
    for j in range(pos, d):
        cols.append(x[:, j].astype(np.float64))
        specs.append("binary")
    codes = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
    return np.ascontiguousarray(codes, dtype=np.float64), specs


def ungroup(codes: np.ndarray, groups: Sequence[Sequence[int]], n_binary: int) -> np.ndarray:
    """The inverse of :func:`regroup`: ``n_binary`` 0/1 columns (``uint8``) from the codes.

    ``groups`` must be ``(start, stop, has_none)`` triples.

    >>> ungroup(np.array([[0.0, 1.0], [2.0, 0.0]]), [(0, 3, False)], 4).tolist()
    [[1, 0, 0, 1], [0, 0, 1, 0]]
    """
    c = np.asarray(codes)
    checked = normalize_groups(groups, n_binary, "ungroup")
    if any(h is None for _, _, h in checked):
        raise DataError("ungroup: groups must be (start, stop, has_none) triples")
    expected = n_binary - sum(stop - start - 1 for start, stop, _ in checked)
    if c.ndim != 2 or c.shape[1] != expected:
        raise DataError(f"ungroup: expected codes with {expected} columns for these groups; got shape {c.shape}")
    out = np.zeros((c.shape[0], n_binary), dtype=np.uint8)
    k = 0
    pos = 0
    rows = np.arange(c.shape[0])
    for start, stop, has_none in checked:
        width = start - pos
        out[:, pos:start] = c[:, k : k + width]
        k += width
        code = c[:, k]
        levels = stop - start + int(has_none)
        if ((code != np.floor(code)) | (code < 0) | (code >= levels)).any():
            raise DataError(f"ungroup: codes of group {start}:{stop} must be integers 0..{levels - 1}")
        code = code.astype(np.int64)
        if has_none:
            on = code > 0
            out[rows[on], start + code[on] - 1] = 1
        else:
            out[rows, start + code] = 1
        k += 1
        pos = stop
    out[:, pos:] = c[:, k:]
    return out
