"""Data sets: the embedded digits, named benchmark sets, and a user's own files.

Every loader returns a :class:`Dataset` of three matrices (``train``, ``valid``, ``test``,
one example per row) or raises :class:`DataError` with one line naming the file and the
problem (and the row and column, where there is one).

- ``"digits"``: the 8x8 handwritten digits packaged with ardens (no download), see
  :func:`load_digits`.
- Named binary benchmark sets (:data:`NAMED_SETS`): ``<name>.npz`` looked up in ``data_dir``,
  then ``$ARDENS_DATA``, then the user cache (``$XDG_CACHE_HOME/ardens`` or
  ``~/.cache/ardens``); shapes and array checksums are verified on load.
- Named real-valued sets (:data:`REAL_SETS`: ``red_wine``, ``white_wine``, ``parkinsons``):
  ``real/<file>.npz`` in the same directories, in 10 folds (``fold=1..10``), see
  :func:`load_real`.
- A path: ``.npz`` (arrays ``train``/``valid``/``test``, or one array, optionally with a
  ``columns`` array of names), ``.npy`` (one array), or a text table (``.csv``, ``.tsv``,
  ``.txt``, ``.amat``, ``.data``; see :mod:`ardens.tables`). A single array is split by
  :func:`split_rows` (seeded shuffle, 80/10/10).
- All rows of a user's file, unsplit, read for a trained model, missing cells allowed (NaN):
  :func:`load_rows` / :func:`read_rows` (what ``ardens score`` and ``ardens impute`` read).

Binary data (every column 0/1) is held as ``uint8`` with ``columns=None``, exactly as
before; pure 0/1 text keeps its fast parser (:func:`parse_binary_text`). Any other data is
``float64`` with one column spec per column in ``columns`` (``binary`` 0/1, ``categorical:K``
codes ``0..K-1``, ``real:C``); the types are inferred on the whole file before splitting
and can be overridden (``columns=``, the ``--columns`` grammar of
:func:`ardens.tables.parse_columns_spec`). Binary data can be regrouped into categorical
columns by one-hot groups (``one_hot_groups=``, :func:`ardens.tables.find_one_hot_groups`).

>>> data = load_dataset("digits")
>>> data.train.shape, data.valid.shape, data.test.shape, data.image_shape
((1197, 64), (300, 64), (300, 64), (8, 8))
>>> data.columns is None and data.column_specs[:2] == ["binary", "binary"]
True
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from tokenize import TokenError
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "Rows",
    "SetInfo",
    "NAMED_SETS",
    "REAL_SETS",
    "RealSetInfo",
    "N_FOLDS",
    "DIGITS_CHECKSUMS",
    "SPLITS",
    "align_to_model",
    "split_context",
    "context_load_columns",
    "array_checksum",
    "data_dirs",
    "default_data_dir",
    "load_dataset",
    "load_digits",
    "load_named",
    "load_real",
    "load_file",
    "load_rows",
    "read_rows",
    "fold_indices",
    "one_hot_report",
    "parse_binary_text",
    "split_rows",
    "validate_binary",
]

SPLITS = ("train", "valid", "test")
TEXT_SUFFIXES = (".amat", ".txt", ".csv", ".tsv", ".data")


class DataError(ValueError):
    """Bad or missing data; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class Dataset:
    """Three matrices of the same width, and what is known about them.

    Binary data: ``uint8`` 0/1 matrices and ``columns=None``. Otherwise ``float64`` matrices
    and ``columns``, one spec per column (``"binary"``, ``"categorical:K"``: codes 0..K-1,
    ``"real:C"``). ``column_names``: from the file's header (or ``columns`` array), if any.
    ``categories``: for categorical columns whose file values were text labels, the labels
    by column index (code k is ``categories[j][k]``). ``fold``: the fold (1..10) of a set
    with folds. ``one_hot_groups``: the ``(start, stop, has_none)`` groups of binary file
    columns that became categorical columns (see :func:`ardens.tables.regroup`).
    ``split_seed``: the seed of the train/valid/test split of a single-array file (None when
    the file or the named set fixes the split), stored with trained models so that evaluation
    and ``--resume`` split the file the same way.
    ``image_shape`` is ``(rows, cols)`` when each example is an image; ``image_order`` is
    ``"C"`` (row-major) or ``"F"`` (column-major, as in MATLAB files) for reshaping.

    Conditional data (for a model ``p(x | c)``, see :mod:`ardens.context`): ``context_train``,
    ``context_valid``, ``context_test`` are float64 ``(rows, C)`` context matrices, one row per
    row of the split (None for data without context); ``context_names`` the context columns'
    names; ``context_encoding`` how they were encoded from a table
    (:meth:`ardens.context.ContextEncoding.to_meta`), or None when the context was given as is.
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, int] | None = None
    image_order: str = "C"
    source: str = ""
    columns: tuple[str, ...] | None = None
    column_names: tuple[str, ...] | None = None
    categories: dict[int, list[str]] | None = None
    fold: int | None = None
    one_hot_groups: tuple[tuple[int, int, bool], ...] | None = None
    split_seed: int | None = None
    context_train: np.ndarray | None = None
    context_valid: np.ndarray | None = None
    context_test: np.ndarray | None = None
    context_names: tuple[str, ...] | None = None
    context_encoding: dict | None = None

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    @property
    def context_width(self) -> int:
        """``C``: the width of the context (0 for data without context)."""
        return 0 if self.context_train is None else int(self.context_train.shape[1])

    def context(self, name: str) -> np.ndarray | None:
        """The context rows of split ``name`` (None for data without context)."""
        if name not in SPLITS:
            raise DataError(f"split: expected one of {', '.join(SPLITS)}; got {name!r}")
        return getattr(self, f"context_{name}")

    @property
    def column_specs(self) -> list[str]:
        """One spec per column: ``columns``, or ``"binary"`` for every column when it is None."""
        return list(self.columns) if self.columns is not None else ["binary"] * self.dim

    def split(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise DataError(f"split: expected one of {', '.join(SPLITS)}; got {name!r}")
        return getattr(self, name)


@dataclass(frozen=True)
class SetInfo:
    """Expected shapes (rows, dim) and array checksums of a named set's splits."""

    shapes: dict[str, tuple[int, int]]
    checksums: dict[str, str]
    image_shape: tuple[int, int] | None = None
    image_order: str = "C"


def _info(dim, sizes, sums, image_shape=None, order="C") -> SetInfo:
    return SetInfo(
        shapes={s: (n, dim) for s, n in zip(SPLITS, sizes)},
        checksums=dict(zip(SPLITS, sums)),
        image_shape=image_shape,
        image_order=order,
    )


#: The benchmark sets of Larochelle & Murray (2011) / Germain et al. (2015), and Caltech-101
#: silhouettes. Checksums: first 16 hex digits of sha256 of the C-contiguous uint8 array.
NAMED_SETS: dict[str, SetInfo] = {
    "binarized_mnist": _info(
        784, (50000, 10000, 10000), ("43490d4d6ac90027", "069b4f0beb389b77", "ca0294c3b8d984c7"), (28, 28)
    ),
    "adult": _info(123, (5000, 1414, 26147), ("51f7e476ddebd27c", "e7e7fe06cb496ce3", "854d8abe5242d2ee")),
    "connect4": _info(126, (16000, 4000, 47557), ("66f16f5e05571499", "fd3490a0962bd898", "e75937488dbd4d68")),
    "dna": _info(180, (1400, 600, 1186), ("425f2f6eb1b989bd", "99063a569f2e3733", "183aa2a8acb410c9")),
    "mushrooms": _info(112, (2000, 500, 5624), ("bdc96ef5b74d908a", "a02bb4bbe086e127", "02d2b76d77c88d8f")),
    "nips": _info(500, (400, 100, 1240), ("d3533784ce37bd8c", "b389c16873bbb94a", "7163c55ede1f8077")),
    "ocr_letters": _info(
        128, (32152, 10000, 10000), ("2ceb795f4645b9dc", "6a479926457c272a", "d143c4f6d68c4735"), (16, 8)
    ),
    "caltech101_silhouettes_28": _info(
        784, (4100, 2264, 2307), ("e16c69228270895e", "67a4e3a2ee22d8dc", "4abecf7121e7eeb9"), (28, 28), "F"
    ),
}

#: Array checksums of the packaged digits (see ``scripts/make_digits.py``).
DIGITS_CHECKSUMS = {"train": "437fe3edbb964bcf", "valid": "2ba8930d4917011a", "test": "8439f1dd0e2d75af"}
DIGITS_INFO = _info(64, (1197, 300, 300), tuple(DIGITS_CHECKSUMS.values()), (8, 8))


@dataclass(frozen=True)
class RealSetInfo:
    """A named real-valued set: ``real/<file>`` in a data directory, ``rows`` x ``raw_dim``
    ``data``, the columns used (``select``: the name of an index array, or all), and the
    sha256/16 of the arrays' bytes as stored (``arrays``). ``folds``: ``"rnade"`` (the
    published RNADE folds, ``rnade_perm`` and ``rnade_fold_edges``) or ``"seeded"``."""

    file: str
    rows: int
    raw_dim: int
    dim: int
    arrays: dict[str, str]
    folds: str
    select: str | None = None


#: Real-valued sets of RNADE (Uria, Murray & Larochelle 2013); see ``real/README.md`` of the
#: shared data. Every column ``real``; 10 folds, see :func:`fold_indices`.
REAL_SETS: dict[str, RealSetInfo] = {
    "red_wine": RealSetInfo(
        "red_wine.npz",
        1599,
        11,
        11,
        {
            "data": "ab2aa5638286d12c",
            "columns": "d604b05201ce23e9",
            "rnade_perm": "e48631c28f79a1c4",
            "rnade_fold_edges": "9ddcb01ded44fd32",
        },
        "rnade",
    ),
    "white_wine": RealSetInfo(
        "white_wine.npz", 4898, 11, 11, {"data": "dc5cfcd61f876406", "columns": "d604b05201ce23e9"}, "seeded"
    ),
    "parkinsons": RealSetInfo(
        "parkinsons_telemonitoring.npz",
        5875,
        22,
        15,
        {"data": "cb7b8507d8514598", "columns": "7887c6df4cbaa59f", "rnade15_idx": "f5575d2b6fa50c35"},
        "seeded",
        "rnade15_idx",
    ),
}
N_FOLDS = 10


def array_checksum(arr: np.ndarray) -> str:
    """First 16 hex digits of sha256 of the C-contiguous array: as ``uint8`` for boolean and
    integer arrays with values in 0..255 (binary data), else as ``float64``.

    >>> array_checksum(np.zeros((2, 3), dtype=np.uint8)) == hashlib.sha256(bytes(6)).hexdigest()[:16]
    True
    >>> array_checksum(np.zeros((2, 3))) == hashlib.sha256(bytes(48)).hexdigest()[:16]
    True
    """
    arr = np.asarray(arr)
    small = arr.dtype == bool or (
        np.issubdtype(arr.dtype, np.integer) and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255))
    )
    dtype = np.uint8 if small else np.float64
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=dtype).tobytes()).hexdigest()[:16]


def _bytes_checksum(arr: np.ndarray) -> str:
    """First 16 hex digits of sha256 of the array's bytes as stored (any dtype)."""
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]


# -- where named sets live --------------------------------------------------------------
def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/ardens`` if that variable is set, else ``~/.cache/ardens``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ardens"


def data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for ``<name>.npz``, in order: ``data_dir``, ``$ARDENS_DATA``, cache."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("ARDENS_DATA"):
        dirs.append(Path(os.environ["ARDENS_DATA"]))
    dirs.append(default_data_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def write_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where ``fetch`` writes: ``data_dir``, else ``$ARDENS_DATA``, else the cache."""
    return data_dirs(data_dir)[0]


# -- checks -----------------------------------------------------------------------------
def check_matrix(arr: np.ndarray, where: str, what: str | None = None) -> np.ndarray:
    """``arr`` as a real numeric 2-D array with at least one row and one column, or a DataError
    (``what`` names the values expected, e.g. ``"0/1 values"``)."""
    arr = np.asarray(arr)
    if arr.dtype == object or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"{where}: expected a numeric array{f' of {what}' if what else ''}; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise DataError(f"{where}: expected real {what or 'numbers'}; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{where}: expected a 2-D array (examples, dimensions); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: empty (no examples)")
    if arr.shape[1] == 0:
        raise DataError(f"{where}: examples have no dimensions; shape {arr.shape}")
    return arr


def validate_binary(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as a C-contiguous ``uint8`` 0/1 matrix with at least one row, or a DataError.

    >>> validate_binary(np.array([[0., 1.]]), "x").dtype
    dtype('uint8')
    >>> validate_binary(np.array([[0, 2]]), "x.npy")
    Traceback (most recent call last):
    ...
    ardens.data.DataError: x.npy: expected 0/1 values; got 2 at row 0, column 1
    """
    arr = check_matrix(arr, where, "0/1 values")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(f"{where}: expected 0/1 values; got {arr[row, col]} at row {row}, column {col}")
    if arr.dtype != bool:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            value = arr[row, col].item()
            raise DataError(f"{where}: expected 0/1 values; got {value!r} at row {row}, column {col}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _check_widths(arrays: dict[str, np.ndarray], where: str) -> None:
    widths = {k: a.shape[1] for k, a in arrays.items()}
    if len(set(widths.values())) > 1:
        raise DataError(f"{where}: splits have different numbers of dimensions: {widths}")


def _verify(arrays: dict[str, np.ndarray], info: SetInfo, where: str) -> None:
    for split in SPLITS:
        arr = arrays[split]
        if arr.shape != info.shapes[split]:
            raise DataError(f"{where}: split {split!r} has shape {arr.shape}; expected {info.shapes[split]}")
        got = array_checksum(arr)
        if got != info.checksums[split]:
            raise DataError(
                f"{where}: split {split!r} checksum {got} does not match the expected {info.checksums[split]} "
                "(corrupt or different file)"
            )


# -- splitting a single array -------------------------------------------------------------
def _split_indices(n: int, seed: int, where: str) -> dict[str, np.ndarray]:
    k = max(1, n // 10)
    if n - 2 * k < 1:
        raise DataError(f"{where}: {n} example(s) are too few to split into train/valid/test (need at least 3)")
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": perm[: n - 2 * k], "valid": perm[n - 2 * k : n - k], "test": perm[n - k :]}


def split_rows(arr: np.ndarray, seed: int = 0, where: str = "data") -> dict[str, np.ndarray]:
    """Split one array: shuffle rows with ``numpy.random.default_rng(seed)``; ``valid`` and
    ``test`` each get ``max(1, N // 10)`` rows, ``train`` the rest (about 80/10/10).

    >>> parts = split_rows(np.eye(20, dtype=np.uint8))
    >>> [len(parts[s]) for s in SPLITS]
    [16, 2, 2]
    """
    return {s: arr[idx] for s, idx in _split_indices(len(arr), seed, where).items()}


# -- files ------------------------------------------------------------------------------
def parse_binary_text(raw: bytes, where: str) -> np.ndarray:
    """Rows of 0/1 values separated by whitespace or commas (``.amat``, ``.txt``, ``.csv``).

    Blank lines and lines starting with ``#`` are skipped.

    >>> parse_binary_text(b"0 1 1\\n1,0,0\\n", "x.txt")
    array([[0, 1, 1],
           [1, 0, 0]], dtype=uint8)
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DataError(f"{where}: not a text file of 0/1 values (undecodable bytes)") from None
    rows: list[np.ndarray] = []
    width = None
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.replace(",", " ").split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            raise DataError(f"{where}: line {lineno} has {len(tokens)} values; earlier rows have {width} (ragged rows)")
        joined = "".join(tokens)
        if len(joined) == width and joined.strip("01") == "":
            rows.append(np.frombuffer(joined.encode(), dtype=np.uint8) - 48)
            continue
        try:
            values = np.array([float(t) for t in tokens])
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise DataError(f"{where}: line {lineno}: expected 0/1 values; got {bad!r}") from None
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            raise DataError(f"{where}: line {lineno}: expected 0/1 values; got {tokens[int(np.argmax(bad))]!r}")
        rows.append(values.astype(np.uint8))
    if not rows:
        raise DataError(f"{where}: empty (no rows of 0/1 values)")
    return np.stack(rows)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: unreadable .npz (not a zip archive, or truncated)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise DataError(f"{path}: holds pickled objects, which ardens never loads") from None
        raise DataError(f"{path}: unreadable .npz ({err})") from None
    # damaged archives reach zipfile's and numpy's parsers, which raise many kinds of errors
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError, SyntaxError, TokenError) as err:
        raise DataError(f"{path}: unreadable or truncated .npz ({type(err).__name__}: {err})") from None


def _read_npy(path: Path) -> np.ndarray:
    where = str(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as err:
        raise DataError(f"{where}: unreadable ({err.strerror or err})") from None
    if magic != b"\x93NUMPY":
        raise DataError(f"{where}: unreadable .npy (not a NumPy array file)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise DataError(f"{where}: holds pickled objects, which ardens never loads") from None
        raise DataError(f"{where}: unreadable or truncated .npy ({err})") from None
    except (OSError, EOFError, SyntaxError, TokenError) as err:  # a damaged header reaches numpy's header parser
        raise DataError(f"{where}: unreadable .npy ({type(err).__name__}: {err})") from None


def _as_binary(arr: np.ndarray) -> np.ndarray | None:
    """``arr`` as a ``uint8`` matrix if it is a non-empty 2-D numeric array of 0/1 values, else None."""
    arr = np.asarray(arr)
    if arr.ndim != 2 or 0 in arr.shape or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        return None
    if np.iscomplexobj(arr) or (arr.dtype != bool and ((arr != 0) & (arr != 1)).any()):
        return None
    return np.ascontiguousarray(arr, dtype=np.uint8)


ColumnTypes = str | Sequence[str | None] | None


def _overrides(columns, n: int, names: Sequence[str] | None, defaults: Sequence[str] | None = None):
    from .tables import parse_columns_spec

    if columns is None:
        out: list[str | None] = [None] * n
    elif isinstance(columns, str):
        out = parse_columns_spec(columns, n, names)
    else:
        out = list(columns)
        if len(out) != n:
            raise DataError(f"columns: {len(out)} column types for {n} columns")
    if defaults is not None:
        out = [o if o is not None else dflt for o, dflt in zip(out, defaults)]
    return out


def _from_table(
    name: str,
    table,
    columns,
    source: str,
    split_idx: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    defaults: Sequence[str] | None = None,
    **fields,
) -> Dataset:
    """Types (inferred, or ``columns``), split (``split_idx``, or :func:`split_rows`), checks."""
    from .tables import check_spread, resolve_columns

    values = table.values
    specs = resolve_columns(table, _overrides(columns, values.shape[1], table.names, defaults))
    if split_idx is None:
        split_idx = _split_indices(len(values), seed, source)
        fields = {**fields, "split_seed": int(seed)}
    binary = all(spec == "binary" for spec in specs)
    dtype = np.uint8 if binary else np.float64
    parts = {s: np.ascontiguousarray(values[split_idx[s]], dtype=dtype) for s in SPLITS}
    if not binary:
        check_spread(parts["train"], specs, source, table.names)
    return Dataset(
        name,
        parts["train"],
        parts["valid"],
        parts["test"],
        source=source,
        columns=None if binary else tuple(specs),
        column_names=tuple(table.names) if table.names is not None else None,
        categories={j: list(labels) for j, labels in table.labels.items()} or None,
        **fields,
    )


def _contiguous(sizes: Sequence[int]) -> dict[str, np.ndarray]:
    edges = np.cumsum([0, *sizes])
    return {s: np.arange(edges[i], edges[i + 1]) for i, s in enumerate(SPLITS)}


def load_file(path: str | os.PathLike, seed: int = 0, name: str | None = None, columns: ColumnTypes = None) -> Dataset:
    """Load a user's data file (see the module docstring for formats).

    ``columns``: the ``--columns`` text (see :mod:`ardens.tables`) or one spec (or None) per
    column; None infers every column's type.
    """
    from .tables import Table, read_text_table, table_from_array

    path = Path(path)
    where = str(path)
    name = name or path.stem
    if not path.exists():
        raise DataError(f"{where}: no such file")
    if path.is_dir():
        raise DataError(f"{where}: is a directory; expected a .npz, .npy or text file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(path)
        names = None
        if "columns" in arrays and arrays["columns"].dtype.kind == "U" and arrays["columns"].ndim == 1:
            names = [str(c) for c in arrays.pop("columns")]
        present = [s for s in SPLITS if s in arrays]
        if present:
            missing = [s for s in SPLITS if s not in arrays]
            if missing:
                raise DataError(f"{where}: missing array(s) {', '.join(missing)}; has {', '.join(sorted(arrays))}")
            binary = {s: _as_binary(arrays[s]) for s in SPLITS} if columns is None else {}
            if binary and all(b is not None for b in binary.values()):
                _check_widths(binary, where)
                if names is not None and len(names) != binary["train"].shape[1]:
                    names = None
                parts = binary
            else:
                wheres = [f"{where}[{s}]" for s in SPLITS]
                table = table_from_array([arrays[s] for s in SPLITS], wheres, names, source=where)
                sizes = [len(arrays[s]) for s in SPLITS]
                return _from_table(name, table, columns, where, _contiguous(sizes))
        elif len(arrays) == 1:
            ((key, arr),) = arrays.items()
            binary = _as_binary(arr) if columns is None else None
            if binary is None:
                table = table_from_array(arr, f"{where}[{key}]", names, source=where)
                return _from_table(name, table, columns, where, seed=seed)
            parts = split_rows(binary, seed, where)
            if names is not None and len(names) != binary.shape[1]:
                names = None
        else:
            keys = ", ".join(sorted(arrays)) or "none"
            raise DataError(f"{where}: expected arrays train, valid, test (or a single array); has {keys}")
    elif suffix == ".npy":
        arr = _read_npy(path)
        binary = _as_binary(arr) if columns is None else None
        if binary is None:
            return _from_table(name, table_from_array(arr, where), columns, where, seed=seed)
        parts, names = split_rows(binary, seed, where), None
    elif suffix in TEXT_SUFFIXES:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError(f"{where}: unreadable ({err.strerror or err})") from None
        try:
            arr = parse_binary_text(raw, where)  # the fast path: pure 0/1 text
        except DataError:
            table = read_text_table(raw, where)
            return _from_table(name, table, columns, where, seed=seed)
        if columns is not None:
            table = Table(arr.astype(np.float64), None, {}, np.arange(1, len(arr) + 1), [where], [0])
            return _from_table(name, table, columns, where, seed=seed)
        parts, names = split_rows(arr, seed, where), None
    else:
        raise DataError(
            f"{where}: unknown file type {suffix or '(none)'!r}; expected .npz, .npy, or a text table "
            f"({', '.join(TEXT_SUFFIXES)})"
        )
    _check_widths(parts, where)
    seeded = {"split_seed": int(seed)} if not (suffix == ".npz" and present) else {}
    return Dataset(
        name, parts["train"], parts["valid"], parts["test"], source=where, column_names=_tuple_or_none(names), **seeded
    )


def _tuple_or_none(names: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(names) if names is not None else None


def load_digits() -> Dataset:
    """The packaged 8x8 digits: 1,797 images, binarized at pixel >= 8 (of 0..16).

    Provenance: the UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin &
    Kaynak, 1998; CC BY 4.0) as shipped by scikit-learn's ``load_digits``. Fixed split by
    a ``default_rng(0)`` permutation: 1,197 train, 300 valid, 300 test. Regenerate with
    ``scripts/make_digits.py``; the array checksums are verified on every load.

    >>> load_digits().train.mean().round(3)
    np.float64(0.322)
    """
    ref = resources.files("ardens") / "data_files" / "digits8x8.npz"
    where = f"ardens/data_files/{ref.name}"
    try:
        raw = ref.read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as f:
            arrays = {s: f[s] for s in SPLITS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataError(f"{where}: packaged digits unreadable ({err}); reinstall ardens") from None
    _verify(arrays, DIGITS_INFO, where)
    return Dataset("digits", *(arrays[s] for s in SPLITS), image_shape=(8, 8), source=where)


def load_named(
    name: str, data_dir: str | os.PathLike | None = None, fold: int | None = None, columns: ColumnTypes = None
) -> Dataset:
    """A named set: ``digits``, a binary set from the first data directory holding
    ``<name>.npz``, or a real-valued set (:func:`load_real`). ``fold``: only for sets with folds."""
    if name in REAL_SETS:
        return load_real(name, data_dir, fold, columns)
    if name != "digits" and name not in NAMED_SETS:
        raise DataError(
            f"{name}: unknown data set; expected a file path, 'digits' or one of {', '.join([*NAMED_SETS, *REAL_SETS])}"
        )
    if fold is not None:
        raise DataError(f"{name}: has no folds; a fold applies only to {', '.join(REAL_SETS)}")
    data = load_digits() if name == "digits" else _load_binary_named(name, data_dir)
    return _retype(data, columns) if columns is not None else data


def _load_binary_named(name: str, data_dir: str | os.PathLike | None) -> Dataset:
    info = NAMED_SETS[name]
    tried = data_dirs(data_dir)
    for d in tried:
        path = d / f"{name}.npz"
        if path.is_file():
            break
    else:
        how = f"run 'ardens fetch {name}', or " if name == "binarized_mnist" else ""
        raise DataError(
            f"{name}: {name}.npz not found in {', '.join(str(d) for d in tried)}; "
            f"{how}copy {name}.npz into one of them or set ARDENS_DATA to its directory"
        )
    arrays = _read_npz(path)
    missing = [s for s in SPLITS if s not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    parts = {s: validate_binary(arrays[s], f"{path}[{s}]") for s in SPLITS}
    _verify(parts, info, str(path))
    return Dataset(name, *(parts[s] for s in SPLITS), info.image_shape, info.image_order, str(path))


def _retype(data: Dataset, columns: ColumnTypes) -> Dataset:
    """``data`` with its column types overridden by ``columns`` (the others kept)."""
    from .tables import table_from_array

    source = data.source or data.name
    splits = [data.split(s) for s in SPLITS]
    table = table_from_array(splits, [f"{source}[{s}]" for s in SPLITS], data.column_names, source=source)
    return _from_table(
        data.name,
        table,
        columns,
        source,
        _contiguous([len(a) for a in splits]),
        defaults=data.column_specs,
        image_shape=data.image_shape,
        image_order=data.image_order,
        fold=data.fold,
    )


# -- real-valued sets, in folds -----------------------------------------------------------------
def fold_indices(
    n: int, fold: int, perm: np.ndarray | None = None, edges: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """Row indices of each split of fold ``fold`` (1..10) of ``n`` rows.

    With ``perm`` and ``edges`` (RNADE's published folds): chunk i is
    ``perm[edges[i-1]:edges[i]]``; fold k tests on chunk k; of the other nine chunks, in
    order, the first eight train and the ninth validates. Otherwise: ``perm =
    numpy.random.default_rng(0).permutation(n)`` cut into 10 contiguous near-equal chunks
    (``numpy.array_split``); fold k tests on chunk k, validates on the next chunk (cyclically:
    chunk 1 after chunk 10) and trains on the other eight, in order.

    >>> {s: len(i) for s, i in fold_indices(25, 10).items()}
    {'train': 20, 'valid': 3, 'test': 2}
    """
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= N_FOLDS:
        raise DataError(f"fold: expected an integer 1..{N_FOLDS}; got {fold!r}")
    k = int(fold) - 1
    if edges is not None:
        if perm is None:
            raise DataError("fold_indices: edges need perm")
        chunks = [np.asarray(perm[edges[i] : edges[i + 1]]) for i in range(N_FOLDS)]
        others = [c for i, c in enumerate(chunks) if i != k]
        return {"train": np.concatenate(others[:8]), "valid": others[8], "test": chunks[k]}
    chunks = np.array_split(np.random.default_rng(0).permutation(n), N_FOLDS)
    v = (k + 1) % N_FOLDS
    train = np.concatenate([c for i, c in enumerate(chunks) if i not in (k, v)])
    return {"train": train, "valid": chunks[v], "test": chunks[k]}


def load_real(
    name: str, data_dir: str | os.PathLike | None = None, fold: int | None = None, columns: ColumnTypes = None
) -> Dataset:
    """A named real-valued set (:data:`REAL_SETS`), fold ``fold`` (1..10, default 1).

    ``red_wine``: the published RNADE folds. ``white_wine``, ``parkinsons`` (the 15 columns
    RNADE used): seeded folds; see :func:`fold_indices`. The file is ``real/<file>`` in the
    first data directory holding it (``data_dir``, ``$ARDENS_DATA``, cache); the arrays'
    checksums are verified. Every column is ``real:10`` unless ``columns`` overrides it.
    """
    from .tables import Table

    info = REAL_SETS[name]
    fold = 1 if fold is None else fold
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 1 <= fold <= N_FOLDS:
        raise DataError(f"{name}: fold {fold!r} does not exist; expected 1..{N_FOLDS}")
    tried = data_dirs(data_dir)
    for d in tried:
        path = d / "real" / info.file
        if path.is_file():
            break
    else:
        raise DataError(
            f"{name}: {info.file} not found in {', '.join(str(d / 'real') for d in tried)}; "
            f"copy it to DIR/real/{info.file} and pass --data-dir DIR (data_dir=DIR) or set ARDENS_DATA=DIR"
        )
    where = str(path)
    arrays = _read_npz(path)
    for key, expected in info.arrays.items():
        if key not in arrays:
            raise DataError(f"{where}: missing array {key!r}; has {', '.join(sorted(arrays))}")
        got = _bytes_checksum(arrays[key])
        if got != expected:
            raise DataError(
                f"{where}: array {key!r} checksum {got} does not match the expected {expected} "
                "(corrupt or different file)"
            )
    data = arrays["data"]
    if data.shape != (info.rows, info.raw_dim):
        raise DataError(f"{where}: array 'data' has shape {data.shape}; expected {(info.rows, info.raw_dim)}")
    names = [str(c) for c in arrays["columns"]]
    values = np.asarray(data, dtype=np.float64)
    if info.select is not None:
        idx = np.asarray(arrays[info.select], dtype=np.int64)
        values, names = np.ascontiguousarray(values[:, idx]), [names[i] for i in idx]
    if info.folds == "rnade":
        split_idx = fold_indices(info.rows, fold, arrays["rnade_perm"], arrays["rnade_fold_edges"].tolist())
    else:
        split_idx = fold_indices(info.rows, fold)
    table = Table(values, names, {}, np.arange(info.rows), [where], [0])
    real = ["real:10"] * values.shape[1]
    return _from_table(name, table, columns, where, split_idx, defaults=real, fold=int(fold))


# -- one-hot groups --------------------------------------------------------------------------
def _apply_one_hot(data: Dataset, spec) -> Dataset:
    """``data`` (binary) with its one-hot groups (``"auto"``: found on train) made categorical."""
    from .tables import find_one_hot_groups, normalize_groups, regroup

    source = data.source or data.name
    if data.columns is not None and any(c != "binary" for c in data.columns):
        raise DataError(
            f"{source}: one-hot groups apply to binary columns only; this set has {', '.join(data.columns)}"
        )
    if isinstance(spec, str):
        if spec != "auto":
            raise DataError(f"one_hot_groups: expected 'auto' or a list of (start, stop[, has_none]); got {spec!r}")
        groups = find_one_hot_groups(data.train)
    else:
        groups = normalize_groups(spec, data.dim, source, data.train)
    if not groups:
        return replace(data, one_hot_groups=())
    parts = {}
    for s in SPLITS:
        parts[s], specs = regroup(data.split(s), groups, f"{source}[{s}]")
    names = None
    if data.column_names is not None:
        names, pos = [], 0
        for start, stop, _ in groups:
            names += data.column_names[pos:start]
            names.append(f"{data.column_names[start]}..{data.column_names[stop - 1]}")
            pos = stop
        names += data.column_names[pos:]
    return replace(
        data,
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        image_shape=None,
        columns=tuple(specs),
        column_names=_tuple_or_none(names),
        one_hot_groups=tuple((int(a), int(b), bool(h)) for a, b, h in groups),
    )


#: The named binary sets from UCI (see :func:`one_hot_report`).
UCI_SETS = ("adult", "connect4", "dna", "mushrooms", "nips", "ocr_letters")


def one_hot_report(
    data_dir: str | os.PathLike | None = None, names: Sequence[str] = UCI_SETS
) -> dict[str, list[tuple[int, int, bool]]]:
    """The one-hot groups :func:`ardens.tables.find_one_hot_groups` finds on the training
    split of each named set that is present (absent ones are left out). The findings for
    the UCI sets are listed in that function's docstring."""
    from .tables import find_one_hot_groups

    report = {}
    for name in names:
        try:
            data = load_named(name, data_dir)
        except DataError:
            continue
        report[name] = find_one_hot_groups(data.train)
    return report


def load_dataset(
    spec: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    fold: int | None = None,
    columns: ColumnTypes = None,
    one_hot_groups: str | Sequence[Sequence[int]] | None = None,
) -> Dataset:
    """``"digits"``, a name in :data:`NAMED_SETS` or :data:`REAL_SETS`, or a path to a data file.

    ``seed``: the split of a single-array file. ``fold``: 1..10 for the sets with folds
    (:data:`REAL_SETS`; default 1), an error for the others. ``columns``: column types, the
    ``--columns`` grammar of :func:`ardens.tables.parse_columns_spec` or one spec (or None)
    per column. ``one_hot_groups``: ``"auto"`` or a list of ``(start, stop[, has_none])``:
    binary columns regrouped into categorical ones (:func:`ardens.tables.regroup`).
    """
    text = str(spec)
    if text in REAL_SETS:
        data = load_real(text, data_dir, fold, columns)
    elif text == "digits" or text in NAMED_SETS:
        data = load_named(text, data_dir, fold, columns)
    else:
        path = Path(text)
        if not (path.exists() or path.suffix.lower() in (".npz", ".npy", *TEXT_SUFFIXES) or os.sep in text):
            raise DataError(
                f"{text}: unknown data set and no such file; expected a path, 'digits' or one of "
                f"{', '.join([*NAMED_SETS, *REAL_SETS])}"
            )
        if fold is not None:
            raise DataError(f"{text}: a file has no folds; a fold applies only to {', '.join(REAL_SETS)}")
        data = load_file(path, seed=seed, columns=columns)
    if one_hot_groups is not None:
        data = _apply_one_hot(data, one_hot_groups)
    return data


def align_to_model(data: Dataset, meta: dict, where: str | None = None) -> Dataset:
    """``data`` read for a trained model whose checkpoint header is ``meta``: the header's
    column names must match (when both have them), and categorical labels are re-coded with
    the model's label order (a label the model never saw is an error naming row and column)."""
    where = where or data.source or data.name
    names = meta.get("column_names")
    if names and data.column_names and list(data.column_names) != list(names):
        first = next((j for j, (a, b) in enumerate(zip(data.column_names, names)) if a != b), min(len(names), data.dim))
        got = data.column_names[first] if first < data.dim else "(none)"
        want = names[first] if first < len(names) else "(none)"
        raise DataError(
            f"{where}: header does not match the model's columns: column {first} is {got!r}, expected {want!r}"
        )
    stored = {int(k): list(v) for k, v in (meta.get("categories") or {}).items()}
    if not stored or not data.categories:
        return data
    splits = {s: np.array(data.split(s), dtype=np.float64, copy=True) for s in SPLITS}
    for j, labels in data.categories.items():
        if j not in stored or list(labels) == stored[j]:
            continue
        index = {label: k for k, label in enumerate(stored[j])}
        for s, arr in splits.items():
            for row, code in enumerate(arr[:, j].astype(np.int64)):
                if labels[code] not in index:
                    raise DataError(
                        f"{where}: row {row} of the {s} split, column {j}: label {labels[code]!r}"
                        " was not seen in training"
                    )
            arr[:, j] = [index[labels[c]] for c in arr[:, j].astype(np.int64)]
    cats = {**data.categories, **{j: stored[j] for j in data.categories if j in stored}}
    return replace(data, train=splits["train"], valid=splits["valid"], test=splits["test"], categories=cats)


# -- context columns of a conditional model ---------------------------------------------------------
def _resolve_context_keys(data: Dataset, keys: Sequence[Any], where: str) -> list[int]:
    """The column indices of ``keys`` (header names, or 0-based indices as ints or digit text)."""
    names = list(data.column_names) if data.column_names else None
    out: list[int] = []
    for key in keys:
        text = str(key).strip()
        if names is not None and text in names:
            j = names.index(text)
        elif isinstance(key, (int, np.integer)) or text.isdigit():
            j = int(text)
            if not 0 <= j < data.dim:
                raise DataError(
                    f"{where}: context column {text}: no such column (the file has {data.dim}, 0..{data.dim - 1})"
                )
        else:
            shown = (
                f" (columns: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''})"
                if names
                else " (the file has no header: use 0-based indices)"
            )
            raise DataError(f"{where}: context column {text!r}: no such column{shown}")
        if j in out:
            raise DataError(f"{where}: context column {text!r} is given twice")
        out.append(j)
    return out


def _raw_context(data: Dataset, split: str, j: int) -> list:
    """Column ``j`` of a split as raw context values: text labels as strings, else numbers."""
    col = np.asarray(data.split(split))[:, j].astype(np.float64)
    labels = (data.categories or {}).get(j)
    if labels is not None:
        return [labels[int(v)] if v == v else float("nan") for v in col]
    return col.tolist()


def split_context(
    data: Dataset, keys: Sequence[Any] | None = None, encoding: dict | None = None, where: str | None = None
) -> Dataset:
    """``data`` with some columns taken out of ``x`` as the context of a conditional model.

    ``keys``: the context columns (header names or 0-based indices); with ``encoding`` (a
    checkpoint's ``context`` entry, :meth:`ardens.context.ContextEncoding.to_meta`) they are that
    encoding's columns, found by name (or by their stored index in a file without a header), and
    encoded exactly as in training (an unseen label is an error naming the split, row and column).
    Without it the encoding is fitted on the training split (:func:`ardens.context.fit_context`;
    the kinds follow the columns' types: text labels and ``categorical:K`` one-hot, ``binary``
    0/1, ``real`` standardized). The remaining columns keep their types, names and labels; when
    they are all binary the data becomes ``uint8`` with ``columns=None``.
    """
    from .context import ContextEncoding, ContextError, fit_context

    where = where or data.source or data.name
    if data.one_hot_groups:
        raise DataError(f"{where}: context columns cannot be combined with one-hot groups")
    stored = ContextEncoding.from_meta(encoding) if encoding is not None else None
    if stored is not None:
        names = list(data.column_names) if data.column_names else None
        keys = [c.name if names is not None or c.index is None else c.index for c in stored.columns]
    if not keys:
        raise DataError(f"{where}: no context columns given")
    idx = _resolve_context_keys(data, keys, where)
    rest = [j for j in range(data.dim) if j not in idx]
    if not rest:
        raise DataError(f"{where}: every column is a context column; nothing is left to model")
    specs = data.column_specs
    names = [data.column_names[j] if data.column_names else str(j) for j in idx]
    try:
        if stored is None:
            kinds = [specs[j].partition(":")[0] for j in idx]
            cats: list[list | None] = []
            for j, kind in zip(idx, kinds):
                labels = (data.categories or {}).get(j)
                if kind == "categorical":
                    cats.append(list(labels) if labels is not None else list(range(int(specs[j].partition(":")[2]))))
                else:
                    cats.append(None)
            columns = [_raw_context(data, "train", j) for j in idx]
            stored = fit_context(columns, names, kinds, cats, indices=idx, where=f"{where}[train]")
        contexts = {}
        for s in SPLITS:

            def cell(r: int, k: int, name: str, s: str = s) -> str:
                return f"row {r} of the {s} split, column {idx[k]} ({name})"

            raw = [_raw_context(data, s, j) for j in idx]
            contexts[s] = stored.encode(raw, where=where, cell=cell)
    except ContextError as err:
        raise DataError(str(err)) from None
    meta = stored.to_meta()
    meta["file_width"] = data.dim
    x_specs = [specs[j] for j in rest]
    binary = all(spec == "binary" for spec in x_specs)
    parts = {
        s: np.ascontiguousarray(np.asarray(data.split(s))[:, rest], dtype=np.uint8 if binary else np.float64)
        for s in SPLITS
    }
    cats_x = {k: list(data.categories[j]) for k, j in enumerate(rest) if data.categories and j in data.categories}
    return replace(
        data,
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        columns=None if binary else tuple(x_specs),
        column_names=tuple(data.column_names[j] for j in rest) if data.column_names else None,
        categories=cats_x or None,
        image_shape=None,
        context_train=contexts["train"],
        context_valid=contexts["valid"],
        context_test=contexts["test"],
        context_names=tuple(names),
        context_encoding=meta,
    )


def context_load_columns(meta: dict, x_columns: Sequence[str | None] | None) -> list[str | None] | None:
    """The column types to load a conditional model's file with: ``x_columns`` (the model's,
    or None for all-binary) at the model's columns, None (inferred) at the context columns, in
    the file's layout of the checkpoint's ``context`` entry."""
    ctx = meta["context"]
    width = int(ctx["file_width"])
    places = [int(c["index"]) for c in ctx["columns"]]
    rest = [j for j in range(width) if j not in places]
    out: list[str | None] = [None] * width
    for k, j in enumerate(rest):
        out[j] = x_columns[k] if x_columns is not None else "binary"
    return out


# -- all rows of a file, for a trained model, missing values allowed ------------------------------
@dataclass(frozen=True)
class Rows:
    """All rows of a file read for a trained model (:func:`read_rows`).

    ``x``: float64 ``(rows, n)`` in the model's columns and codes (labels mapped to the model's
    codes, one-hot groups regrouped), NaN where a value is missing. ``names``: the model's column
    names (else the file's, regrouped), or None. ``numbers``: each row's number in messages (its
    1-based line in a text file, its 0-based index in an array). ``file_values``: float64
    ``(rows, file columns)`` as read (text labels as the model's codes; one-hot files: the binary
    columns), NaN where missing. ``file_names``: the file's header (or ``columns`` array), or
    None. ``cells``: text files only, each row's cells as written. ``file_specs``: the type of
    each file column (``binary`` for the columns of a one-hot group). ``labels``: the model's
    labels by model column. ``groups``: the model's one-hot groups, or ``()``.
    """

    x: np.ndarray
    names: list[str] | None
    numbers: np.ndarray
    file_values: np.ndarray
    file_names: list[str] | None
    cells: list[list[str]] | None
    file_specs: list[str]
    labels: dict[int, list[str]]
    groups: tuple[tuple[int, int, bool], ...]
    where: str
    context: np.ndarray | None = None
    context_values: list[list] | None = None

    @property
    def missing(self) -> np.ndarray:
        """``(rows, n)`` boolean: the model columns with no value."""
        return np.isnan(self.x)

    def row(self, r: int) -> str:
        """``row N`` as messages name row ``r`` (1-based line of a text file, index of an array)."""
        return f"row {int(self.numbers[r])}"

    def column(self, j: int) -> str:
        """``column J (name)`` of the model's columns."""
        name = self.names[j] if self.names and j < len(self.names) else ""
        return f"column {j} ({name})" if name else f"column {j}"


def _model_specs(meta: dict, columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    if meta.get("columns"):
        return list(meta["columns"])
    config = meta.get("config") or {}
    if config.get("columns"):
        return list(config["columns"])
    if config.get("n_inputs"):
        return ["binary"] * int(config["n_inputs"])
    raise DataError("model: its header names no column types; pass columns=")


def _grouped_names(names: Sequence[str], groups: Sequence[Sequence[int]]) -> list[str]:
    out, pos = [], 0
    for start, stop, *_ in groups:
        out += names[pos:start]
        out.append(f"{names[start]}..{names[stop - 1]}")
        pos = stop
    return out + list(names[pos:])


def _read_any_table(path: Path, where: str):
    """The file as a :class:`ardens.tables.Table` with missing values kept (NaN)."""
    from .tables import read_text_table, table_from_array

    if not path.exists():
        raise DataError(f"{where}: no such file")
    if path.is_dir():
        raise DataError(f"{where}: is a directory; expected a .csv/.tsv/.txt, .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError(f"{where}: unreadable ({err.strerror or err})") from None
        return read_text_table(raw, where, missing=True)
    if suffix == ".npy":
        return table_from_array(_read_npy(path), where, missing=True)
    if suffix == ".npz":
        arrays = _read_npz(path)
        names = None
        if "columns" in arrays and arrays["columns"].dtype.kind == "U" and arrays["columns"].ndim == 1:
            names = [str(c) for c in arrays.pop("columns")]
        key = next((k for k in ("x", "data") if k in arrays), None)
        if key is None and len(arrays) == 1:
            key = next(iter(arrays))
        if key is None:
            has = ", ".join(sorted(arrays)) or "none"
            raise DataError(f"{where}: expected a single array, or an array named 'x' or 'data'; has {has}")
        arr = arrays[key]
        if names is not None and (np.ndim(arr) != 2 or len(names) != np.shape(arr)[1]):
            names = None
        return table_from_array(arr, f"{where}[{key}]", names, source=where, missing=True)
    raise DataError(
        f"{where}: unknown file type {suffix or '(none)'!r}; expected a text table ({', '.join(TEXT_SUFFIXES)}), "
        ".npy or .npz"
    )


def _check_codes(table, j: int, spec: str) -> None:
    """The present values of column ``j`` must be valid for ``spec`` (binary, categorical:K, real)."""
    col = table.values[:, j]
    present = ~np.isnan(col)
    kind = spec.partition(":")[0]
    if kind == "binary":
        bad = present & (col != 0) & (col != 1)
        if bad.any():
            r = int(np.argmax(bad))
            raise table.error(r, j, f"value {col[r]:g} in a column the model reads as binary (0/1)")
    elif kind == "categorical":
        levels = int(spec.partition(":")[2])
        bad = present & ((col != np.floor(col)) | (col < 0) | (col >= levels))
        if bad.any():
            r = int(np.argmax(bad))
            raise table.error(r, j, f"value {col[r]:g} in a column the model reads as {spec} (codes 0..{levels - 1})")


def read_rows(
    path: str | os.PathLike, meta: dict, where: str | None = None, columns: Sequence[str] | None = None
) -> Rows:
    """Every row of a user's file, in file order and unsplit, read in the column types and labels
    of a trained model whose checkpoint header is ``meta`` (``columns``, ``column_names``,
    ``categories``, ``one_hot_groups``, as :func:`ardens.train.table_meta` writes them; an
    all-binary model's width comes from its ``config``). Missing cells (empty, ``NA``, ``NaN``,
    ``nan``, ... in text; NaN in arrays) become NaN.

    ``columns``: the model's column specs, if ``meta`` lacks them. Formats: text tables
    (:mod:`ardens.tables`), ``.npy`` (one array), ``.npz`` (one array, or an array named ``x`` or
    ``data``; an optional ``columns`` array of names). Every present value is checked against the
    model's column type; text labels are mapped to the model's codes (a label the model never saw
    is an error naming the row and column; arrays give codes); a header must match the model's
    column names. A one-hot-group model reads the binary file and regroups it: a row with a missing
    cell in a group has the whole group missing. Errors: one-line :class:`DataError` naming the
    file, the row (1-based line in a text file) and the column.

    >>> import tempfile
    >>> meta = {"columns": ["real:10", "categorical:2"], "column_names": ["a", "b"],
    ...         "categories": {"1": ["no", "yes"]}}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = Path(d, "f.csv").write_text("a,b\\n1.5,yes\\n,no\\n2,\\n")
    ...     rows = read_rows(Path(d, "f.csv"), meta, where="f.csv")
    >>> rows.x.tolist(), rows.numbers.tolist()
    ([[1.5, 1.0], [nan, 0.0], [2.0, nan]], [2, 3, 4])
    """
    path = Path(path)
    where = where or str(path)
    specs = _model_specs(meta, columns)
    n = len(specs)
    groups = tuple((int(g[0]), int(g[1]), bool(g[2])) for g in (meta.get("one_hot_groups") or ()))
    width = int(meta.get("one_hot_groups_width") or n) if groups else n
    table = _read_any_table(path, where)
    table.wheres = [where if w == str(path) else w for w in table.wheres]
    context = context_values = None
    if (meta.get("context") or {}).get("columns"):  # a conditional model's context columns, encoded as stored
        context, context_values, table = take_context(table, meta["context"], where, keep_rest=True)
    d = table.values.shape[1]
    if d != width:
        what = f"{width} binary columns (regrouped into {n})" if groups else f"{n}"
        raise DataError(f"{where}: {d} columns; the model expects {what}")
    model_names = list(meta["column_names"]) if meta.get("column_names") else None
    file_names = list(table.names) if table.names is not None else None
    names = _grouped_names(file_names, groups) if file_names is not None and groups else file_names
    if model_names and names and names != model_names:
        first = next(j for j, (a, b) in enumerate(zip(names, model_names)) if a != b)
        raise DataError(
            f"{where}: header does not match the model's columns: column {first} is {names[first]!r}, "
            f"expected {model_names[first]!r}"
        )
    names = model_names or names
    stored = {int(k): list(v) for k, v in (meta.get("categories") or {}).items()}
    values = table.values
    file_specs = ["binary"] * d if groups else specs
    for j in range(d):
        spec = file_specs[j]
        labels = table.labels.get(j)
        if labels is not None:
            if j not in stored:
                r = int(np.argmax(~np.isnan(values[:, j])))
                label = labels[int(values[r, j])]
                raise table.error(r, j, f"text {label!r} in a column the model reads as {spec}")
            index = {label: k for k, label in enumerate(stored[j])}
            codes = values[:, j]
            present = ~np.isnan(codes)
            for r in np.flatnonzero(present):
                label = labels[int(codes[r])]
                if label not in index:
                    raise table.error(r, j, f"label {label!r} was not seen in training")
            codes[present] = [index[labels[int(c)]] for c in codes[present]]
        elif j in stored and table.cells is not None and not np.isnan(values[:, j]).all():
            r = int(np.argmax(~np.isnan(values[:, j])))
            shown = ", ".join(map(repr, stored[j][:3])) + (", ..." if len(stored[j]) > 3 else "")
            raise table.error(r, j, f"number {values[r, j]:g} in a column of text labels ({shown})")
        _check_codes(table, j, spec)
    if groups:
        x = np.empty((len(values), n))
        pos = k = 0
        for start, stop, has_none in groups:
            x[:, k : k + start - pos] = values[:, pos:start]
            k += start - pos
            block = values[:, start:stop]
            gone = np.isnan(block).any(1)
            count = np.where(gone, 0, np.nan_to_num(block).sum(1))
            for bad, what in ((count > 1, "more than one 1"), (~gone & (count == 0) & (not has_none), "no 1")):
                if bad.any():
                    r = int(np.argmax(bad))
                    tail = "; a group allows at most one" if count[r] > 1 else ", whose training split always has one"
                    raise DataError(
                        f"{where}: row {int(table.rows[r])} has {what} in one-hot group {start}:{stop} "
                        f"(columns {start}..{stop - 1}){tail}"
                    )
            code = np.nan_to_num(block).argmax(1).astype(np.float64) + (1 if has_none else 0)
            code = np.where(count == 0, 0.0, code)
            x[:, k] = np.where(gone, np.nan, code)
            k += 1
            pos = stop
        x[:, k:] = values[:, pos:]
    else:
        x = values.copy()
    return Rows(
        x=np.ascontiguousarray(x, dtype=np.float64),
        names=names,
        numbers=np.asarray(table.rows if table.rows is not None else np.arange(len(values))),
        file_values=values,
        file_names=file_names,
        cells=table.cells,
        file_specs=file_specs,
        labels={j: stored[j] for j in stored if not groups},
        groups=groups,
        where=where,
        context=context,
        context_values=context_values,
    )


def take_context(table, encoding: dict, where: str, keep_rest: bool = False):
    """``(context, raw values, rest)``: the context columns of a :class:`ardens.tables.Table`
    encoded with a checkpoint's ``context`` entry, each column's raw values, and (``keep_rest``)
    the table of the other columns (else None).

    The columns are found by name in a header that has them all, else by their place in the
    training file (a table of the training file's width), else in order (a table of exactly the
    context columns). Missing cells, unseen labels and values that do not fit are one-line
    :class:`DataError` naming the file, row and column."""
    from .context import ContextEncoding, ContextError
    from .tables import Table

    enc = ContextEncoding.from_meta(encoding)
    d = table.values.shape[1]
    names = list(table.names) if table.names is not None else None
    wanted = enc.names
    if names is None and len(table.values) > 1 and table.labels and len(table.labels) == d:
        # a file of text labels only has no detectable header: a first row of the context names is one
        first = [
            table.labels[j][int(table.values[0, j])] if table.values[0, j] == table.values[0, j] else None
            for j in range(d)
        ]
        if set(wanted) <= set(first) and len(set(first)) == d:
            names = [str(f) for f in first]
            keep = np.arange(1, len(table.values))
            table = Table(
                table.values[keep],
                names,
                table.labels,
                None if table.rows is None else table.rows[keep],
                table.wheres,
                table.starts,
                None if table.cells is None else table.cells[1:],
            )
    width = int(encoding.get("file_width", d))
    if names is not None:
        absent = [n for n in wanted if n not in names]
        if absent:
            raise DataError(
                f"{where}: no context column {absent[0]!r} in its header (columns: {', '.join(names[:20])});"
                f" the model is conditioned on {', '.join(wanted)}"
            )
        idx = [names.index(n) for n in wanted]
    elif d == width and all(c.index is not None for c in enc.columns):
        idx = [int(c.index) for c in enc.columns]
    elif d == len(wanted) and not keep_rest:
        idx = list(range(d))
    else:
        raise DataError(
            f"{where}: {d} columns and no header; expected the training file's {width} columns"
            f" (context {', '.join(wanted)} at {', '.join(str(c.index) for c in enc.columns)})"
        )
    raw = []
    for j in idx:
        col = table.values[:, j]
        labels = table.labels.get(j)
        if labels is not None:
            raw.append([labels[int(v)] if v == v else float("nan") for v in col])
        else:
            raw.append(col.tolist())

    def cell(r: int, k: int, name: str) -> str:
        return table.cell(r, idx[k])

    try:
        context = enc.encode(raw, where=where, cell=cell)
    except ContextError as err:
        raise DataError(str(err)) from None
    rest = None
    if keep_rest:
        keep = [j for j in range(d) if j not in idx]
        relabel = {k: table.labels[j] for k, j in enumerate(keep) if j in table.labels}
        rest = Table(
            np.ascontiguousarray(table.values[:, keep]),
            [names[j] for j in keep] if names is not None else None,
            relabel,
            table.rows,
            table.wheres,
            table.starts,
            [[row[j] for j in keep] for row in table.cells] if table.cells is not None else None,
        )
    return context, raw, rest


def load_rows(
    path: str | os.PathLike, meta: dict, where: str | None = None, columns: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """``(x, names)``: every row of a file read for a trained model, NaN where a value is missing
    (see :func:`read_rows`, which also gives row numbers and the cells' text)."""
    rows = read_rows(path, meta, where, columns)
    return rows.x, rows.names
