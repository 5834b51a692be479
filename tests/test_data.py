"""Data loading: the embedded digits, user files, named sets, and one-line errors for bad data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ardens.data import (
    NAMED_SETS,
    SPLITS,
    DataError,
    array_checksum,
    data_dirs,
    default_data_dir,
    load_dataset,
    load_digits,
    load_file,
    split_rows,
)

SHARED = Path(os.environ.get("ARDENS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def test_digits_shapes_values_and_split_are_fixed():
    d = load_digits()
    assert (d.train.shape, d.valid.shape, d.test.shape) == ((1197, 64), (300, 64), (300, 64))
    assert d.train.dtype == np.uint8 and set(np.unique(d.train)) == {0, 1}
    assert d.image_shape == (8, 8)
    # the splits are disjoint as row sets only up to duplicate images; check no identical split
    assert not np.array_equal(d.valid, d.test)
    assert 0.2 < d.train.mean() < 0.4


def test_digits_match_the_generator_when_sklearn_is_installed():
    sklearn = pytest.importorskip("sklearn.datasets", reason="scikit-learn not installed (only needed here)")
    raw = sklearn.load_digits()
    x = (raw.data >= 8).astype(np.uint8)
    perm = np.random.default_rng(0).permutation(len(x))
    d = load_digits()
    np.testing.assert_array_equal(d.train, x[perm[:1197]])
    np.testing.assert_array_equal(d.test, x[perm[1497:]])


def test_split_rows_is_seeded_and_covers_every_row():
    x = np.arange(50)[:, None] % 2
    a, b, c = split_rows(x, seed=3), split_rows(x, seed=3), split_rows(x, seed=4)
    assert all(np.array_equal(a[s], b[s]) for s in SPLITS)
    assert [len(a[s]) for s in SPLITS] == [40, 5, 5]
    assert any(not np.array_equal(a[s], c[s]) for s in SPLITS)
    with pytest.raises(DataError, match="too few"):
        split_rows(np.zeros((2, 3)), where="tiny.npy")


def _rand(n, d, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.3).astype(np.uint8)


def test_user_npz_with_splits(tmp_path):
    path = tmp_path / "mine.npz"
    arrays = {"train": _rand(30, 7), "valid": _rand(5, 7, 1), "test": _rand(6, 7, 2), "train_labels": np.arange(30)}
    np.savez(path, **arrays)
    d = load_dataset(path)
    assert d.name == "mine" and d.dim == 7
    np.testing.assert_array_equal(d.test, arrays["test"])


def test_user_single_array_formats_agree(tmp_path):
    x = _rand(40, 5)
    np.save(tmp_path / "a.npy", x.astype(np.float32))
    np.savez_compressed(tmp_path / "b.npz", data=x)
    np.savetxt(tmp_path / "c.amat", x, fmt="%d")
    np.savetxt(tmp_path / "d.csv", x, fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "e.txt", x.astype(float), fmt="%.1f")
    loaded = [load_dataset(tmp_path / name, seed=1) for name in ("a.npy", "b.npz", "c.amat", "d.csv", "e.txt")]
    for d in loaded[1:]:
        for s in SPLITS:
            np.testing.assert_array_equal(d.split(s), loaded[0].split(s))
    assert sum(len(loaded[0].split(s)) for s in SPLITS) == 40


BAD_CASES = {
    "nan": (
        lambda p: np.save(p, np.array([[0, 1], [np.nan, 0], [1, 1]])),
        "x.npy",
        r"missing value at row 1, column 0; missing values are not supported",
    ),
    "ragged": (lambda p: p.write_text("0 1 1\n1 0\n0 0 0\n"), "x.txt", "line 2 has 2 values"),
    "text-token": (
        lambda p: p.write_text("0,1\n1,a\n0,0\n"),
        "x.csv",
        "text 'a' in a numeric column at row 2, column 1",
    ),
    "inf": (lambda p: np.save(p, np.array([[0.5, 1], [np.inf, 0], [1, 1]])), "x.npy", "infinite value inf at row 1"),
    "strings": (lambda p: np.save(p, np.array([["a", "b"]] * 3)), "x.npy", "expected a numeric array"),
    "empty-text": (lambda p: p.write_text("\n\n"), "x.txt", "empty"),
    "empty-split": (
        lambda p: np.savez(p, train=np.zeros((3, 2)), valid=np.zeros((0, 2)), test=np.zeros((2, 2))),
        "x.npz",
        r"x.npz\[valid\]: empty",
    ),
    "missing-key": (lambda p: np.savez(p, train=np.zeros((3, 2)), valid=np.zeros((2, 2))), "x.npz", "missing array"),
    "many-keys": (lambda p: np.savez(p, a=np.zeros((3, 2)), b=np.zeros((3, 2))), "x.npz", "expected arrays train"),
    "widths": (
        lambda p: np.savez(p, train=np.zeros((3, 2)), valid=np.zeros((2, 3)), test=np.zeros((2, 2))),
        "x.npz",
        "different numbers of dimensions",
    ),
    "one-dim": (lambda p: np.save(p, np.zeros(5)), "x.npy", "expected a 2-D array"),
    "truncated-npy": (lambda p: (np.save(p, np.zeros((50, 50))), _truncate(p)), "x.npy", "unreadable"),
    "truncated-npz": (lambda p: (np.savez(p, data=np.zeros((50, 50))), _truncate(p)), "x.npz", "unreadable"),
    "garbage-npz": (lambda p: p.write_bytes(b"not a zip file at all"), "x.npz", "unreadable"),
    "pickled": (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "x.npy", "pickle"),
    "binary-text": (lambda p: p.write_bytes(b"\xff\xfe\x00 1"), "x.txt", "undecodable"),
    "suffix": (lambda p: p.write_text("0 1"), "x.json", "unknown file type"),
}


def test_non_binary_arrays_load_typed_and_a_binary_override_refuses_them(tmp_path):
    # formerly refused as "expected 0/1 values"; now typed: codes 0..2 are categorical:3, 0.5 makes a column real
    np.save(tmp_path / "x.npy", np.array([[0, 1], [2, 0], [1, 1]] * 4))
    d = load_dataset(tmp_path / "x.npy")
    assert d.columns == ("categorical:3", "binary") and d.train.dtype == np.float64
    with pytest.raises(DataError, match=r"x.npy: value 2 in a column declared binary \(0/1\) at row 1, column 0$"):
        load_dataset(tmp_path / "x.npy", columns="*=binary")
    (tmp_path / "x.amat").write_text("0 1\n1 0.5\n0 0\n" * 4)
    d = load_dataset(tmp_path / "x.amat")
    assert d.columns == ("binary", "real:10") and d.dim == 2


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_raise_one_line_naming_the_file(tmp_path, case):
    make, name, pattern = BAD_CASES[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)), message


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "nope.npz")
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("no_such_set")


def test_missing_named_set_lists_every_directory_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("ARDENS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        load_dataset("binarized_mnist", data_dir=tmp_path / "given")
    message = str(info.value)
    for d in ("given", "env", str(Path("cache") / "ardens")):
        assert str(tmp_path / d) in message
    assert "ardens fetch binarized_mnist" in message and "ARDENS_DATA" in message
    assert default_data_dir() == tmp_path / "cache" / "ardens"
    assert data_dirs()[0] == tmp_path / "env"


def test_named_set_with_wrong_contents_is_rejected(tmp_path):
    x = np.zeros((400, 500), dtype=np.uint8)
    np.savez(tmp_path / "nips.npz", train=x, valid=x[:100], test=np.zeros((1240, 500), dtype=np.uint8))
    with pytest.raises(DataError, match="checksum .* does not match"):
        load_dataset("nips", data_dir=tmp_path)
    np.savez(tmp_path / "dna.npz", train=x, valid=x, test=x)
    with pytest.raises(DataError, match=r"shape \(400, 500\); expected \(1400, 180\)"):
        load_dataset("dna", data_dir=tmp_path)


def test_array_checksum_is_of_the_uint8_bytes():
    x = np.array([[0, 1], [1, 0]])
    assert array_checksum(x) == array_checksum(x.astype(np.uint8)) == array_checksum(np.asfortranarray(x))


def test_array_checksum_of_float_arrays_is_of_the_float64_bytes():
    import hashlib

    x = np.array([[0.5, 1.0], [2.0, 0.0]])
    expected = hashlib.sha256(x.astype(np.float64).tobytes()).hexdigest()[:16]
    assert array_checksum(x) == array_checksum(x.astype(np.float32)) == expected
    assert array_checksum(x) != array_checksum(np.array([[0.5, 1.0], [2.0, 1.0]]))


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared benchmark data not found at {SHARED} (set ARDENS_DATA)")
@pytest.mark.parametrize("name", sorted(NAMED_SETS))
def test_shared_named_sets_load_with_expected_shapes_and_checksums(name):
    if not (SHARED / f"{name}.npz").is_file():
        pytest.skip(f"{name}.npz not in {SHARED}")
    d = load_dataset(name, data_dir=SHARED)
    info = NAMED_SETS[name]
    for s in SPLITS:
        assert d.split(s).shape == info.shapes[s]
        assert array_checksum(d.split(s)) == info.checksums[s]
    assert d.image_shape == info.image_shape
