"""Regenerate ``src/ardens/data_files/digits8x8.npz`` from scikit-learn's copy of the digits.

Provenance: the 8x8 handwritten digits are the test part of the UCI "Optical Recognition
of Handwritten Digits" data set (Alpaydin & Kaynak, 1998; CC BY 4.0), as shipped with
scikit-learn (``sklearn.datasets.load_digits``: 1,797 images, pixel values 0..16).

Binarization: pixel >= 8 -> 1, else 0. Split: a permutation from
``numpy.random.default_rng(0)``; the first 1,197 rows are ``train``, the next 300
``valid``, the last 300 ``test``. Labels are kept as ``*_labels`` (unused by the models).

scikit-learn is needed only here, never at run time:

    .venv/bin/pip install scikit-learn && .venv/bin/python scripts/make_digits.py

The array checksums it prints must equal ``ardens.data.DIGITS_CHECKSUMS``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parents[1] / "src" / "ardens" / "data_files" / "digits8x8.npz"
THRESHOLD = 8
SIZES = {"train": 1197, "valid": 300, "test": 300}


def main() -> None:
    digits = load_digits()
    x = (digits.data >= THRESHOLD).astype(np.uint8)
    y = digits.target.astype(np.uint8)
    assert x.shape == (1797, 64), x.shape
    perm = np.random.default_rng(0).permutation(len(x))
    arrays, start = {}, 0
    for split, size in SIZES.items():
        rows = perm[start : start + size]
        arrays[split] = np.ascontiguousarray(x[rows])
        arrays[f"{split}_labels"] = y[rows]
        start += size
    assert start == len(x)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    for split in SIZES:
        a = arrays[split]
        print(split, a.shape, hashlib.sha256(a.tobytes()).hexdigest()[:16])
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
