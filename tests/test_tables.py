"""Typed data: text tables, column type inference, --columns overrides, real-valued sets in folds,
one-hot groups."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from ardens.data import SPLITS, DataError, Dataset, load_dataset, one_hot_report
from ardens.tables import (
    find_one_hot_groups,
    infer_column,
    parse_columns_spec,
    read_text_table,
    regroup,
    ungroup,
)

SHARED = Path(os.environ.get("ARDENS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
REAL = SHARED / "real"


def _real_file(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {REAL} (set ARDENS_DATA to the shared data directory)")
    return path


def _shared_file(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {SHARED} (set ARDENS_DATA to the shared data directory)")
    return path


def _all_rows(d: Dataset) -> np.ndarray:
    return np.concatenate([d.split(s) for s in SPLITS])


def _sorted_rows(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])]


# -- text tables --------------------------------------------------------------------------------
ROWS = [(0.25 * i - 1.0, i % 4, i % 2, ("blue", "green", "red")[i % 3]) for i in range(30)]
NAMES = ["size", "level", "on", "colour"]


def _table_text(sep: str, header: bool, index: bool) -> str:
    lines = []
    if header:
        lines.append(sep.join(([""] if index else []) + NAMES))
    for i, row in enumerate(ROWS):
        lines.append(sep.join(([str(i)] if index else []) + [str(v) for v in row]))
    return "\n".join(lines) + "\n"


FORMATS = {
    "header.csv": lambda: _table_text(",", True, False).encode(),
    "noheader.csv": lambda: _table_text(",", False, False).encode(),
    "bom.csv": lambda: b"\xef\xbb\xbf" + _table_text(",", True, False).encode(),
    "semicolons.csv": lambda: _table_text(";", True, False).encode(),
    "tabs.tsv": lambda: _table_text("\t", True, False).encode(),
    "index.csv": lambda: _table_text(",", True, True).encode(),
    "unnamed-index.csv": lambda: _table_text(",", True, True).replace(",size", "Unnamed: 0,size", 1).encode(),
    "spaces-index.txt": lambda: _table_text(" ", True, True).encode(),  # pandas: header lacks the index cell
    "quoted.data": lambda: _table_text(",", True, False).replace("red", '"red"').encode(),
    "crlf.csv": lambda: _table_text(",", True, False).replace("\n", "\r\n").encode(),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_text_formats_read_the_same_table(tmp_path, name):
    raw = FORMATS[name]()
    if name == "spaces-index.txt":
        raw = raw[1:]  # ' size level ...' -> 'size level ...' (one cell fewer than the rows)
    table = read_text_table(raw, name)
    assert table.values.shape == (30, 4)
    assert table.names == (None if name.startswith("noheader") else NAMES)
    expected = np.array([[r[0], r[1], r[2], {"blue": 0, "green": 1, "red": 2}[r[3]]] for r in ROWS])
    np.testing.assert_array_equal(table.values, expected)
    assert table.labels == {3: ["blue", "green", "red"]}
    path = tmp_path / name
    path.write_bytes(raw)
    d = load_dataset(path, seed=3)
    assert d.columns == ("real:10", "categorical:4", "binary", "categorical:3")
    assert d.categories == {3: ["blue", "green", "red"]} and d.train.dtype == np.float64
    assert d.column_names == (None if name.startswith("noheader") else tuple(NAMES))
    np.testing.assert_array_equal(_sorted_rows(_all_rows(d)), _sorted_rows(expected))


def test_index_column_is_kept_unless_it_counts_rows():
    text = ",a,b\n5,1.5,2\n6,2.5,3\n7,3.5,4\n"
    table = read_text_table(text.encode(), "x.csv")
    assert table.names == ["", "a", "b"] and table.values[:, 0].tolist() == [5, 6, 7]


def test_header_is_detected_only_when_the_first_row_has_no_number():
    table = read_text_table(b"x1,x2\n1.5,2\n2.5,3\n", "h.csv")
    assert table.names == ["x1", "x2"] and table.rows.tolist() == [2, 3]
    with pytest.raises(DataError, match=r"h.csv: text 'x1' in a numeric column at row 1, column 0; a first row"):
        read_text_table(b"x1,2\n1.5,2\n2.5,3\n", "h.csv")
    # comments and blank lines are skipped; rows keep their file line numbers
    table = read_text_table(b"# a comment\n\n1.5 2\n\n2.5 3\n", "c.txt")
    assert table.names is None and table.rows.tolist() == [3, 5]


def test_pure_binary_text_keeps_the_fast_parser_and_uint8(tmp_path):
    x = (np.random.default_rng(0).random((50, 6)) < 0.4).astype(np.uint8)
    np.savetxt(tmp_path / "b.amat", x, fmt="%d")
    d = load_dataset(tmp_path / "b.amat")
    assert d.train.dtype == np.uint8 and d.columns is None and d.column_specs == ["binary"] * 6
    # a header over 0/1 values: still binary uint8, with names
    (tmp_path / "h.csv").write_text("a,b\n" + "".join(f"{i % 2},{(i // 2) % 2}\n" for i in range(20)))
    d = load_dataset(tmp_path / "h.csv")
    assert d.train.dtype == np.uint8 and d.columns is None and d.column_names == ("a", "b")


# -- inference ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values,kind",
    [
        ([0, 1, 1, 0], "binary"),
        ([0, 0, 0], "binary"),
        ([0, 1, 2], "categorical:3"),
        ([2, 2, 5], "categorical:6"),
        ([0, 31, 3], "categorical:32"),
        ([0, 32, 3], "real:10"),
        ([-1, 0, 1], "real:10"),
        ([0.5, 1, 2], "real:10"),
    ],
)
def test_infer_column(values, kind):
    assert infer_column(np.array(values, dtype=float)) == kind


def test_text_label_columns_are_categorical_in_sorted_label_order():
    table = read_text_table(b"a,b\n1.5,yes\n2.5,no\n3.5,maybe\n4.5,no\n", "l.csv")
    assert table.labels == {1: ["maybe", "no", "yes"]} and table.values[:, 1].tolist() == [2, 1, 0, 1]
    table = read_text_table(b"a,b\n1.5,same\n2.5,same\n", "one.csv")
    from ardens.tables import resolve_columns

    assert resolve_columns(table) == ["real:10", "categorical:2"] and table.labels == {1: ["same"]}


# -- overrides ------------------------------------------------------------------------------------
def test_parse_columns_spec_positional_and_keyed():
    assert parse_columns_spec("real,binary,categorical:3", 3) == ["real:10", "binary", "categorical:3"]
    assert parse_columns_spec(" r:2 , cat , b ", 3) == ["real:2", "categorical", "binary"]
    names = ["pH", "alcohol", "quality"]
    assert parse_columns_spec("*=real:3,quality=categorical:7", 3, names) == ["real:3", "real:3", "categorical:7"]
    assert parse_columns_spec("2=binary,*=real", 3, names) == ["real:10"] * 3  # later entries win
    assert parse_columns_spec("alcohol=real", 3, names) == [None, "real:10", None]
    assert parse_columns_spec("", 2) == [None, None]


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("real,real", "2 KIND entries for 3 columns"),
        ("real,0=binary,real", "has no KEY="),
        ("nope=real", "'nope' is not a column name or a column index 0..2"),
        ("3=real", "'3' is not a column name"),
        ("0=gaussian", "expected binary, categorical:K or real"),
        ("0=categorical:1", "at least 2 levels"),
        ("0=real,,1=real", "empty entry"),
        ("dup=real", "names columns 0, 1; use an index"),
    ],
)
def test_parse_columns_spec_errors(text, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        parse_columns_spec(text, 3, ["dup", "dup", "c"])
    assert str(info.value).startswith("--columns: ") and "\n" not in str(info.value)


def test_overrides_are_applied_and_checked_against_the_data(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("x,k,t\n" + "".join(f"{i * 0.5},{i % 3},{'ab'[i % 2]}\n" for i in range(30)))
    d = load_dataset(path)
    assert d.columns == ("real:10", "categorical:3", "categorical:2")
    d = load_dataset(path, columns="x=real:2,k=categorical:5,t=categorical:4")
    assert d.columns == ("real:2", "categorical:5", "categorical:4") and d.categories == {2: ["a", "b"]}
    assert load_dataset(path, columns="real,real,categorical").columns == ("real:10", "real:10", "categorical:2")
    assert load_dataset(path, columns=[None, "real:1", None]).columns == ("real:10", "real:1", "categorical:2")
    bad = {
        "k=categorical:2": r"value 2 out of range for categorical:2 \(codes 0..1\) at row 4, column 1 \(k\)",
        "k=binary": r"value 2 in a column declared binary \(0/1\) at row 4, column 1 \(k\)",
        "x=categorical": r"value 0.5 in a column declared categorical .* at row 3, column 0 \(x\)",
        "t=real": r"column 2 \(t\) holds text labels \('a', 'b'\), so it cannot be real",
        "t=categorical:1": "at least 2 levels",
    }
    for spec, pattern in bad.items():
        with pytest.raises(DataError, match=pattern) as info:
            load_dataset(path, columns=spec)
        assert "\n" not in str(info.value)


def test_overrides_on_arrays_and_named_sets(tmp_path):
    np.save(tmp_path / "a.npy", np.array([[0, 1], [1, 0], [0, 0], [1, 1]] * 5))
    d = load_dataset(tmp_path / "a.npy", columns="0=categorical")
    assert d.columns == ("categorical:2", "binary") and d.train.dtype == np.float64
    d = load_dataset("digits", columns="20=real")
    assert d.columns[20] == "real:10" and d.columns.count("binary") == 63 and d.image_shape == (8, 8)
    np.testing.assert_array_equal(d.train, load_dataset("digits").train)
    with pytest.raises(DataError, match=r"digits8x8.npz: real column 0 is constant in the training split"):
        load_dataset("digits", columns="0=real")  # a blank corner pixel


# -- bad inputs -----------------------------------------------------------------------------------
BAD_TEXT = {
    "stray-text": ("a,b\n1.5,2\n2.5,x\n3.5,4\n", r"bad.csv: text 'x' in a numeric column at row 3, column 1 \(b\)$"),
    "stray-number": ("a,b\n1.5,x\n2.5,y\n3.5,4\n", r"number 4 in a column of text labels at row 4, column 1 \(b\)$"),
    "inf": ("a,b\n1.5,2\n2.5,-inf\n3.5,4\n", r"infinite value -inf at row 3, column 1 \(b\)$"),
    "empty-cell": ("a,b\n1.5,2\n2.5,\n3.5,4\n", r"missing value at row 3, column 1 \(b\); missing values are not"),
    "NA": ("a,b\n1.5,2\n2.5,3\nNA,4\n", r"missing value at row 4, column 0 \(a\); missing values are not supported"),
    "nan-no-header": ("1.5 2\n2.5 nan\n3.5 4\n", r"missing value at row 2, column 1; missing values are not supported"),
    "missing-label": ("a,b\n1.5,x\n2.5,NaN\n3.5,y\n", r"missing value at row 3, column 1 \(b\)"),
    "ragged": ("a,b\n1.5,2\n2.5\n3.5,4\n", r"line 3 has 1 values; earlier rows have 2 \(ragged rows\)"),
    "constant": ("a,b\n" + "".join(f"{i}.5,40\n" for i in range(20)), r"real column 1 \(b\) is constant"),
    "too-few": ("a,b\n1.5,2\n2.5,3\n", "too few to split"),
    "undecodable": ("a,b\n1.5,\udcff\n", "undecodable"),
}


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_bad_text_tables_raise_one_line(tmp_path, case):
    text, pattern = BAD_TEXT[case]
    path = tmp_path / "bad.csv"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert "ragged" not in message or case == "ragged"


def test_missing_and_infinite_values_in_arrays(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 3))
    x[7, 2] = np.nan
    np.savez(tmp_path / "m.npz", data=x, columns=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match=r"m.npz\[data\]: missing value at row 7, column 2 \(c\); missing values"):
        load_dataset(tmp_path / "m.npz")
    x[7, 2] = np.inf
    splits = {"train": x[:12], "valid": x[12:16], "test": x[:4]}
    np.savez(tmp_path / "s.npz", **splits)
    with pytest.raises(DataError, match=r"s.npz\[train\]: infinite value inf at row 7, column 2$"):
        load_dataset(tmp_path / "s.npz")
    x[7, 2] = 0.5
    np.savez(tmp_path / "s.npz", train=x[:12], valid=x[12:16], test=x[:4])
    d = load_dataset(tmp_path / "s.npz")
    assert d.columns == ("real:10",) * 3
    np.testing.assert_array_equal(d.valid, x[12:16])


# -- real-valued sets in folds ---------------------------------------------------------------------
def test_red_wine_uses_the_published_rnade_folds():
    raw = np.load(_real_file("red_wine.npz"))
    rows = raw["data"][raw["rnade_perm"]].astype(np.float64)
    edges = raw["rnade_fold_edges"]
    d = load_dataset("red_wine", data_dir=SHARED)
    assert d.fold == 1 and (d.train.shape, d.valid.shape, d.test.shape) == ((1272, 11), (168, 11), (159, 11))
    assert d.columns == ("real:10",) * 11 and d.column_names[0] == "fixed acidity" and d.train.dtype == np.float64
    np.testing.assert_array_equal(d.valid, rows[edges[9] : edges[10]])
    np.testing.assert_array_equal(d.train, rows[edges[1] : edges[9]])
    for k in (1, 4, 10):
        d = load_dataset("red_wine", data_dir=SHARED, fold=k)
        np.testing.assert_array_equal(d.test, rows[edges[k - 1] : edges[k]])
    assert (len(d.train), len(d.valid)) == (1272, 159)  # fold 10 validates on chunk 9


def test_white_wine_test_folds_partition_the_rows():
    raw = np.load(_real_file("white_wine.npz"))["data"].astype(np.float64)
    folds = [load_dataset("white_wine", data_dir=SHARED, fold=k) for k in range(1, 11)]
    tests = np.concatenate([d.test for d in folds])
    np.testing.assert_array_equal(_sorted_rows(tests), _sorted_rows(raw))
    for k, d in enumerate(folds):
        assert sum(len(d.split(s)) for s in SPLITS) == 4898 and len(d.test) in (489, 490)
        np.testing.assert_array_equal(d.valid, folds[(k + 1) % 10].test)  # the next fold validates
        np.testing.assert_array_equal(_sorted_rows(_all_rows(d)), _sorted_rows(raw))
    perm = np.random.default_rng(0).permutation(4898)
    np.testing.assert_array_equal(folds[0].test, raw[perm[:490]])


def test_parkinsons_has_rnade_15_columns():
    _real_file("parkinsons_telemonitoring.npz")
    d = load_dataset("parkinsons", data_dir=SHARED, fold=3)
    assert d.dim == 15 and d.fold == 3 and sum(len(d.split(s)) for s in SPLITS) == 5875
    assert d.column_names[:3] == ("test_time", "motor_UPDRS", "total_UPDRS") and d.column_names[-1] == "PPE"
    assert "Jitter:RAP" not in d.column_names and "sex" not in d.column_names


def test_real_set_checks_folds_checksums_and_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ARDENS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError) as info:
        load_dataset("white_wine", data_dir=tmp_path / "given")
    message = str(info.value)
    assert "white_wine.npz" in message and "--data-dir" in message and "ARDENS_DATA" in message
    for d in ("given", "env", "cache/ardens"):
        assert str(tmp_path / d / "real") in message
    (tmp_path / "given" / "real").mkdir(parents=True)
    data = np.ones((4898, 11), dtype=np.float32)
    names = np.array(["c"] * 11)
    np.savez(tmp_path / "given" / "real" / "white_wine.npz", data=data, columns=names)
    with pytest.raises(DataError, match=r"white_wine.npz: array 'data' checksum [0-9a-f]{16} does not match"):
        load_dataset("white_wine", data_dir=tmp_path / "given")
    with pytest.raises(DataError, match="fold 11 does not exist; expected 1..10"):
        load_dataset("white_wine", data_dir=tmp_path / "given", fold=11)
    with pytest.raises(DataError, match="digits: has no folds"):
        load_dataset("digits", fold=2)
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    with pytest.raises(DataError, match="x.npy: a file has no folds"):
        load_dataset(tmp_path / "x.npy", fold=1)


def test_real_set_checksums_are_of_the_stored_bytes():
    raw = np.load(_real_file("red_wine.npz"))
    digest = hashlib.sha256(raw["data"].tobytes()).hexdigest()[:16]
    assert raw["data"].dtype == np.float32 and digest == "ab2aa5638286d12c"


# -- one-hot groups ------------------------------------------------------------------------------
def test_find_one_hot_groups_is_greedy_and_decides_none():
    x = np.array(
        [
            # group 0:3 (with none) | 3:5 (exactly one) | 5 lone | 6:8 conflicts in row 2
            [1, 0, 0, 1, 0, 1, 1, 0],
            [0, 1, 0, 0, 1, 1, 0, 1],
            [0, 0, 1, 1, 0, 0, 1, 1],
            [0, 0, 0, 0, 1, 1, 0, 0],
        ]
    )
    assert find_one_hot_groups(x) == [(0, 3, True), (3, 5, False)]
    assert find_one_hot_groups(x, min_width=3) == [(0, 3, True)]
    assert find_one_hot_groups(np.eye(4, dtype=np.uint8)) == [(0, 4, False)]
    assert find_one_hot_groups(np.ones((3, 4))) == []


def test_regroup_and_ungroup_round_trip():
    rng = np.random.default_rng(0)
    n = 200
    a = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, n)]  # exactly one of 4
    b = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, n)][:, :3]  # at most one of 3
    lone = rng.integers(0, 2, (n, 2)).astype(np.uint8)
    x = np.concatenate([lone[:, :1], a, b, lone[:, 1:]], axis=1)
    groups = find_one_hot_groups(x)
    assert groups == [(1, 5, False), (5, 8, True)]
    codes, specs = regroup(x, groups)
    assert specs == ["binary", "categorical:4", "categorical:4", "binary"] and codes.dtype == np.float64
    np.testing.assert_array_equal(codes[:, 1], a.argmax(1))
    np.testing.assert_array_equal(codes[:, 2], np.where(b.sum(1) == 0, 0, b.argmax(1) + 1))
    np.testing.assert_array_equal(ungroup(codes, groups, x.shape[1]), x)
    assert ungroup(codes, groups, x.shape[1]).dtype == np.uint8


def test_regroup_refuses_rows_that_break_a_group():
    with pytest.raises(DataError, match=r"v: row 1 has 2 ones in one-hot group 0:3 \(columns 0..2\)"):
        regroup(np.array([[1, 0, 0], [0, 1, 1]]), [(0, 3, True)], "v")
    with pytest.raises(DataError, match="v: row 1 has no one in one-hot group 0:3"):
        regroup(np.array([[1, 0, 0], [0, 0, 0]]), [(0, 3, False)], "v")
    with pytest.raises(DataError, match="at least 2 columns"):
        regroup(np.zeros((2, 3)), [(0, 1, True)])
    with pytest.raises(DataError, match="must be integers 0..2"):
        ungroup(np.array([[3.0]]), [(0, 3, False)], 3)


def test_load_dataset_with_one_hot_groups(tmp_path):
    rng = np.random.default_rng(1)
    x = np.concatenate([np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 60)], rng.integers(0, 2, (60, 1))], axis=1)
    x[:, 3] = x[:, 3] & x[:, 0]  # column 3 meets column 0: not part of the group
    np.save(tmp_path / "g.npy", x)
    d = load_dataset(tmp_path / "g.npy", one_hot_groups="auto")
    assert d.one_hot_groups == ((0, 3, False),) and d.columns == ("categorical:3", "binary")
    plain = load_dataset(tmp_path / "g.npy")
    for s in SPLITS:
        np.testing.assert_array_equal(ungroup(d.split(s), d.one_hot_groups, 4), plain.split(s))
    d = load_dataset(tmp_path / "g.npy", one_hot_groups=[(0, 2)])  # has_none decided on train
    assert d.one_hot_groups == ((0, 2, True),) and d.columns == ("categorical:3", "binary", "binary")
    with pytest.raises(DataError, match=r"g.npy\[train\]: row \d+ has no one in one-hot group 1:3"):
        load_dataset(tmp_path / "g.npy", one_hot_groups=[(1, 3, False)])
    np.save(tmp_path / "r.npy", np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(DataError, match="r.npy: one-hot groups apply to binary columns only"):
        load_dataset(tmp_path / "r.npy", one_hot_groups="auto")


def test_uci_sets_one_hot_groups():
    _shared_file("dna.npz")
    report = one_hot_report(SHARED, names=("dna", "connect4", "ocr_letters"))
    assert report["dna"] == [(3 * i, 3 * i + 3, True) for i in range(60)]
    if "connect4" in report:
        assert report["connect4"] == [(3 * i, 3 * i + 3, False) for i in range(42)]
    if "ocr_letters" in report:
        assert report["ocr_letters"] == []
    d = load_dataset("dna", data_dir=SHARED, one_hot_groups="auto")
    assert d.columns == ("categorical:4",) * 60 and d.train.shape == (1400, 60)


def test_dataset_defaults_keep_old_constructor_calls():
    x = np.zeros((3, 2), dtype=np.uint8)
    d = Dataset("x", x, x, x, None, "C", "src")
    assert d.columns is None and d.column_specs == ["binary", "binary"] and d.fold is None
    assert d.categories is None and d.column_names is None and d.one_hot_groups is None
