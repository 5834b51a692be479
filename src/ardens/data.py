"""Binary data sets: the embedded digits, named benchmark sets, and a user's own files.

Every loader returns a :class:`Dataset` of three ``uint8`` 0/1 matrices (``train``,
``valid``, ``test``, one example per row) or raises :class:`DataError` with one line
naming the file and the problem.

- ``"digits"``: the 8x8 handwritten digits packaged with ardens (no download), see
  :func:`load_digits`.
- Named benchmark sets (:data:`NAMED_SETS`): ``<name>.npz`` looked up in ``data_dir``,
  then ``$ARDENS_DATA``, then the user cache (``$XDG_CACHE_HOME/ardens`` or
  ``~/.cache/ardens``); shapes and array checksums are verified on load.
- A path: ``.npz`` (arrays ``train``/``valid``/``test``, or one array), ``.npy`` (one
  array), or 0/1 text (``.amat``, ``.txt``, ``.csv``: whitespace- or comma-separated).
  A single array is split by :func:`split_rows` (seeded shuffle, 80/10/10).

>>> data = load_dataset("digits")
>>> data.train.shape, data.valid.shape, data.test.shape, data.image_shape
((1197, 64), (300, 64), (300, 64), (8, 8))
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "SetInfo",
    "NAMED_SETS",
    "DIGITS_CHECKSUMS",
    "SPLITS",
    "array_checksum",
    "data_dirs",
    "default_data_dir",
    "load_dataset",
    "load_digits",
    "load_named",
    "load_file",
    "parse_binary_text",
    "split_rows",
    "validate_binary",
]

SPLITS = ("train", "valid", "test")
TEXT_SUFFIXES = (".amat", ".txt", ".csv")


class DataError(ValueError):
    """Bad or missing data; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class Dataset:
    """Three 0/1 ``uint8`` matrices of the same width, and what is known about them.

    ``image_shape`` is ``(rows, cols)`` when each example is an image; ``image_order`` is
    ``"C"`` (row-major) or ``"F"`` (column-major, as in MATLAB files) for reshaping.
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    image_shape: tuple[int, int] | None = None
    image_order: str = "C"
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

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


def array_checksum(arr: np.ndarray) -> str:
    """First 16 hex digits of sha256 of the C-contiguous ``uint8`` array.

    >>> array_checksum(np.zeros((2, 3), dtype=np.uint8)) == hashlib.sha256(bytes(6)).hexdigest()[:16]
    True
    """
    return hashlib.sha256(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).hexdigest()[:16]


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
def validate_binary(arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` as a C-contiguous ``uint8`` 0/1 matrix with at least one row, or a DataError.

    >>> validate_binary(np.array([[0., 1.]]), "x").dtype
    dtype('uint8')
    >>> validate_binary(np.array([[0, 2]]), "x.npy")
    Traceback (most recent call last):
    ...
    ardens.data.DataError: x.npy: expected 0/1 values; got 2 at row 0, column 1
    """
    arr = np.asarray(arr)
    if arr.dtype == object or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise DataError(f"{where}: expected a numeric array of 0/1 values; got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise DataError(f"{where}: expected real 0/1 values; got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise DataError(f"{where}: expected a 2-D array (examples, dimensions); got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: empty (no examples)")
    if arr.shape[1] == 0:
        raise DataError(f"{where}: examples have no dimensions; shape {arr.shape}")
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
def split_rows(arr: np.ndarray, seed: int = 0, where: str = "data") -> dict[str, np.ndarray]:
    """Split one array: shuffle rows with ``numpy.random.default_rng(seed)``; ``valid`` and
    ``test`` each get ``max(1, N // 10)`` rows, ``train`` the rest (about 80/10/10).

    >>> parts = split_rows(np.eye(20, dtype=np.uint8))
    >>> [len(parts[s]) for s in SPLITS]
    [16, 2, 2]
    """
    n = len(arr)
    k = max(1, n // 10)
    if n - 2 * k < 1:
        raise DataError(f"{where}: {n} example(s) are too few to split into train/valid/test (need at least 3)")
    perm = np.random.default_rng(seed).permutation(n)
    return {"train": arr[perm[: n - 2 * k]], "valid": arr[perm[n - 2 * k : n - k]], "test": arr[perm[n - k :]]}


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
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as err:
        raise DataError(f"{path}: unreadable or truncated .npz ({type(err).__name__}: {err})") from None


def load_file(path: str | os.PathLike, seed: int = 0, name: str | None = None) -> Dataset:
    """Load a user's data file (see the module docstring for formats)."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DataError(f"{where}: no such file")
    if path.is_dir():
        raise DataError(f"{where}: is a directory; expected a .npz, .npy or 0/1 text file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(path)
        present = [s for s in SPLITS if s in arrays]
        if present:
            missing = [s for s in SPLITS if s not in arrays]
            if missing:
                raise DataError(f"{where}: missing array(s) {', '.join(missing)}; has {', '.join(sorted(arrays))}")
            parts = {s: validate_binary(arrays[s], f"{where}[{s}]") for s in SPLITS}
        elif len(arrays) == 1:
            (key,) = arrays
            parts = split_rows(validate_binary(arrays[key], f"{where}[{key}]"), seed, where)
        else:
            keys = ", ".join(sorted(arrays)) or "none"
            raise DataError(f"{where}: expected arrays train, valid, test (or a single array); has {keys}")
    elif suffix == ".npy":
        try:
            with open(path, "rb") as f:
                magic = f.read(6)
        except OSError as err:
            raise DataError(f"{where}: unreadable ({err.strerror or err})") from None
        if magic != b"\x93NUMPY":
            raise DataError(f"{where}: unreadable .npy (not a NumPy array file)")
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:
            if "pickle" in str(err).lower():
                raise DataError(f"{where}: holds pickled objects, which ardens never loads") from None
            raise DataError(f"{where}: unreadable or truncated .npy ({err})") from None
        except (OSError, EOFError) as err:
            raise DataError(f"{where}: unreadable .npy ({err})") from None
        parts = split_rows(validate_binary(arr, where), seed, where)
    elif suffix in TEXT_SUFFIXES:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise DataError(f"{where}: unreadable ({err.strerror or err})") from None
        parts = split_rows(parse_binary_text(raw, where), seed, where)
    else:
        raise DataError(f"{where}: unknown file type {suffix or '(none)'!r}; expected .npz, .npy, .amat, .txt or .csv")
    _check_widths(parts, where)
    return Dataset(name or path.stem, parts["train"], parts["valid"], parts["test"], source=where)


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


def load_named(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """A named benchmark set from the first data directory holding ``<name>.npz``."""
    if name == "digits":
        return load_digits()
    if name not in NAMED_SETS:
        raise DataError(f"{name}: unknown data set; expected a file path, 'digits' or one of {', '.join(NAMED_SETS)}")
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


def load_dataset(spec: str | os.PathLike, data_dir: str | os.PathLike | None = None, seed: int = 0) -> Dataset:
    """``"digits"``, a name in :data:`NAMED_SETS`, or a path to a data file."""
    text = str(spec)
    if text == "digits" or text in NAMED_SETS:
        return load_named(text, data_dir)
    path = Path(text)
    if path.exists() or path.suffix.lower() in (".npz", ".npy", *TEXT_SUFFIXES) or os.sep in text:
        return load_file(path, seed=seed)
    raise DataError(
        f"{text}: unknown data set and no such file; expected a path, 'digits' or one of {', '.join(NAMED_SETS)}"
    )
