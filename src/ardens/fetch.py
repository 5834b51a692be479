"""Download binarized MNIST (Larochelle's ``.amat`` files) into a data directory.

The three files ``binarized_mnist_{train,valid,test}.amat`` (whitespace-separated 0/1
rows) are downloaded to a temporary folder inside the target directory, parsed, checked
against the expected shapes and array checksums, and written as ``binarized_mnist.npz``
with a temporary file and ``os.replace``: a failed fetch never touches an existing file.

The base URL is :data:`MNIST_URL`, overridable by the ``base_url`` argument or the
``ARDENS_MNIST_URL`` environment variable.

>>> expected_for("binarized_mnist")["test"]
((10000, 784), 'ca0294c3b8d984c7')
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import NAMED_SETS, SPLITS, DataError, array_checksum, parse_binary_text, write_dir

__all__ = ["MNIST_URL", "FETCHABLE", "fetch", "expected_for"]

MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
FETCHABLE = ("binarized_mnist",)
Expected = dict[str, tuple[tuple[int, int], str]]


def expected_for(name: str) -> Expected:
    """``{split: (shape, array checksum)}`` of a named set."""
    info = NAMED_SETS[name]
    return {s: (info.shapes[s], info.checksums[s]) for s in SPLITS}


def _download(url: str, dest: Path, progress: bool, timeout: float) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress, leave=False
            ) as bar:
                got = 0
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            if total is not None and got != total:
                raise DataError(f"{url}: download truncated ({got} of {total} bytes)")
    except urllib.error.HTTPError as err:
        raise DataError(f"{url}: server answered HTTP {err.code} ({err.reason})") from None
    except urllib.error.URLError as err:
        raise DataError(f"{url}: cannot connect ({err.reason})") from None
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{url}: download failed ({err})") from None


def fetch(
    name: str = "binarized_mnist",
    data_dir: str | os.PathLike | None = None,
    *,
    base_url: str | None = None,
    expected: Expected | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download set ``name`` into ``data_dir`` (default: ``$ARDENS_DATA``, else the cache).

    Returns the path of the written ``.npz``. ``expected`` overrides the known shapes and
    checksums (for tests against small fixture files).
    """
    if name not in FETCHABLE:
        others = ", ".join(n for n in NAMED_SETS if n not in FETCHABLE)
        raise DataError(
            f"{name}: cannot be fetched (only {', '.join(FETCHABLE)}); for {others}, "
            "copy <name>.npz into a data directory or set ARDENS_DATA"
        )
    expected = expected or expected_for(name)
    base = base_url or os.environ.get("ARDENS_MNIST_URL") or MNIST_URL
    if not base.endswith("/"):
        base += "/"
    target_dir = write_dir(data_dir)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"{target_dir}: cannot create data directory ({err.strerror or err})") from None
    target = target_dir / f"{name}.npz"
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target_dir))
    try:
        arrays = {}
        for split in SPLITS:
            url = f"{base}{name}_{split}.amat"
            part = work / f"{split}.amat"
            _download(url, part, progress, timeout)
            arr = parse_binary_text(part.read_bytes(), url)
            shape, checksum = expected[split]
            if arr.shape != tuple(shape):
                raise DataError(f"{url}: shape {arr.shape}; expected {tuple(shape)} (truncated or different file)")
            got = array_checksum(arr)
            if got != checksum:
                raise DataError(f"{url}: checksum {got} does not match the expected {checksum}")
            arrays[split] = arr
            part.unlink()
        tmp = work / f"{name}.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
