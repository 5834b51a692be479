"""``ardens score``, ``ardens impute`` and ``evaluate --all-rows`` on files with missing cells: the
scores are the model's own ``log_prob`` / ``marginal_log_prob``, imputation keeps every observed
cell as written, and bad input is a one-line error that overwrites nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import ardens
from ardens.data import DataError, load_rows, read_rows
from ardens.evaluate import log_likelihoods
from ardens.serialization import read_metadata
from test_cli import assert_user_error, call

LABELS = ("ash", "oak", "yew")  # the model's codes 0, 1, 2 (sorted labels)
HEADER = "alpha,kind,flag"
TRAIN = ["--hidden", "16", "16", "--epochs", "2", "--batch-size", "100", "--quiet"]


def table_lines(rows: int, seed: int = 0) -> list[str]:
    """Data lines of a mixed table: a real column, a text-label column, a 0/1 column."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, rows)
    alpha = rng.normal(2.0 * kind, 1.0)
    flag = (rng.random(rows) < 0.2 + 0.3 * kind).astype(int)
    return [f"{alpha[i]:.4f},{LABELS[kind[i]]},{flag[i]}" for i in range(rows)]


def values(line: str) -> list[float]:
    """A data line as the model's numbers (NaN where the cell is empty)."""
    a, k, f = line.split(",")
    return [float(a) if a else math.nan, float(LABELS.index(k)) if k else math.nan, float(f) if f else math.nan]


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def blank(lines: list[str], holes: dict[int, list[int]]) -> list[str]:
    """``lines`` with the cells ``holes[row]`` (column indices) emptied."""
    out = list(lines)
    for r, cols in holes.items():
        cells = out[r].split(",")
        for j in cols:
            cells[j] = ""
        out[r] = ",".join(cells)
    return out


def read_csv(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("queries")
    csv = write(folder / "train.csv", table_lines(300))
    out = {"csv": csv, "folder": folder}
    for kind, extra in (("deepnade", ["--num-masks", "2"]), ("made", [])):
        run = folder / kind
        proc = call("train", "--model", kind, "--data", str(csv), "--out", str(run), *TRAIN, *extra)
        assert proc.returncode == 0, proc.stderr
        assert "columns: alpha=real:10, kind=categorical:3, flag=binary" in proc.stdout
        out[kind] = run
    return out


def model_of(run: Path):
    return ardens.load(run / "best.safetensors")


# holes in every column, in pairs, and a row with nothing observed
HOLES = {1: [0], 3: [1], 4: [2], 6: [0, 2], 8: [1, 2], 9: [0, 1], 11: [0, 1, 2]}


def test_score_writes_log_prob_of_complete_rows_and_marginals_of_the_others(runs, tmp_path):
    lines = blank(table_lines(20, seed=5), HOLES)
    data = write(tmp_path / "holes.csv", lines)
    before = data.read_bytes()
    out = tmp_path / "scores.csv"
    proc = call("score", str(runs["deepnade"]), "--data", str(data), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "scored 20 of 20 rows (7 with missing cells marginalized)" in proc.stdout
    assert data.read_bytes() == before  # the input is never modified
    table = read_csv(out)
    assert table[0] == ["row", "log_likelihood", "observed_columns", "exact"]
    assert len(table) == 1 + len(lines)  # one line per input row, in file order
    assert [int(r[0]) for r in table[1:]] == list(range(2, 22))  # 1-based lines of the file
    assert {r[3] for r in table[1:]} == {"yes"}
    ll = np.array([float(r[1]) for r in table[1:]])
    x = np.array([values(line) for line in lines])
    observed = ~np.isnan(x)
    assert [int(r[2]) for r in table[1:]] == observed.sum(1).tolist()
    complete = observed.all(1)
    model = model_of(runs["deepnade"])
    with torch.no_grad():
        full = model.log_prob(torch.as_tensor(x[complete])).double().numpy()
        marginal = model.marginal_log_prob(torch.as_tensor(x[~complete]), torch.as_tensor(observed[~complete]))
    np.testing.assert_allclose(ll[complete], full, rtol=1e-9)
    np.testing.assert_allclose(ll[~complete], marginal.double().numpy(), rtol=1e-9)
    assert ll[11] == 0.0 and not np.allclose(ll[~complete], 0)  # nothing observed: log p(empty set) = 0
    assert f"mean log-likelihood {ll.mean():.4f} nats" in proc.stdout
    # --masks 1: ordering 0 alone
    one = tmp_path / "one.csv"
    assert call("score", str(runs["deepnade"]), "--data", str(data), "--out", str(one), "--masks", "1").returncode == 0
    ll1 = np.array([float(r[1]) for r in read_csv(one)[1:]])
    with torch.no_grad():
        m0 = model.marginal_log_prob(torch.as_tensor(x), torch.as_tensor(observed), mask=0).double().numpy()
    np.testing.assert_allclose(ll1, m0, rtol=1e-6)


def test_made_marginalizes_only_a_prefix_of_its_ordering(runs, tmp_path):
    """MADE in the natural ordering: a missing last column is exact, a missing first one is not."""
    base = table_lines(12, seed=6)
    last = write(tmp_path / "last.csv", blank(base, {2: [2], 5: [1, 2]}))
    out = tmp_path / "last-scores.csv"
    proc = call("score", str(runs["made"]), "--data", str(last), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    x = np.array([values(line) for line in blank(base, {2: [2], 5: [1, 2]})])
    model = model_of(runs["made"])
    with torch.no_grad():
        want = model.marginal_log_prob(torch.as_tensor(x), torch.as_tensor(~np.isnan(x))).double().numpy()
    np.testing.assert_allclose([float(r[1]) for r in read_csv(out)[1:]], want, rtol=1e-9)

    first = write(tmp_path / "first.csv", blank(base, {3: [0], 7: [1]}))
    bad = tmp_path / "first-scores.csv"
    proc = call("score", str(runs["made"]), "--data", str(first), "--out", str(bad))
    assert_user_error(proc, "first.csv: row 5", "column 0 (alpha)", "DeepNADE", "--skip-inexact", "1 more row")
    assert not bad.exists()
    proc = call("score", str(runs["made"]), "--data", str(first), "--out", str(bad), "--skip-inexact")
    assert proc.returncode == 0, proc.stderr
    table = read_csv(bad)
    assert table[4][1:] == ["", "2", "no"] and table[8][1:] == ["", "2", "no"]
    assert all(r[3] == "yes" and r[1] for i, r in enumerate(table[1:], 1) if i not in (4, 8))

    filled = tmp_path / "filled.csv"
    proc = call("impute", str(runs["made"]), "--data", str(first), "--out", str(filled))
    assert_user_error(proc, "first.csv: row 5", "column 0 (alpha)", "DeepNADE")
    assert not filled.exists()
    proc = call("impute", str(runs["made"]), "--data", str(last), "--out", str(filled))
    assert proc.returncode == 0, proc.stderr
    assert "filled 3 missing cells in 2 of 12 rows" in proc.stdout
    rows = read_csv(filled)[1:]
    assert rows[1][2] in ("0", "1") and rows[4][1] in LABELS and rows[4][2] in ("0", "1")


def check_filled(original: list[str], filled: list[list[str]]) -> None:
    """Observed cells byte-identical, filled cells valid for their column."""
    for line, row in zip(original, filled):
        for j, (cell, new) in enumerate(zip(line.split(","), row)):
            if cell:
                assert new == cell
            elif j == 0:
                assert math.isfinite(float(new))
            elif j == 1:
                assert new in LABELS
            else:
                assert new in ("0", "1")


def test_impute_keeps_observed_cells_and_fills_valid_values(runs, tmp_path):
    lines = blank(table_lines(20, seed=7), HOLES)
    data = write(tmp_path / "holes.csv", lines)
    before = data.read_bytes()
    out = tmp_path / "filled.csv"
    proc = call("impute", str(runs["deepnade"]), "--data", str(data), "--out", str(out), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "filled 12 missing cells in 7 of 20 rows" in proc.stdout
    assert data.read_bytes() == before
    table = read_csv(out)
    assert table[0] == HEADER.split(",") and len(table) == 21
    check_filled(lines, table[1:])
    assert [",".join(r) for r in table[1:] if "" not in r][:1] == [lines[0]]  # complete rows unchanged
    # --draws 3: three lines per row, numbered in a first column 'draw'
    many = tmp_path / "draws.csv"
    proc = call("impute", str(runs["deepnade"]), "--data", str(data), "--out", str(many), "--draws", "3")
    assert proc.returncode == 0, proc.stderr
    table = read_csv(many)
    assert table[0] == ["draw", *HEADER.split(",")] and len(table) == 1 + 3 * 20
    assert [r[0] for r in table[1:]] == ["0", "1", "2"] * 20
    check_filled([line for line in lines for _ in range(3)], [r[1:] for r in table[1:]])
    alphas = {table[1 + 3 * 1 + d][1] for d in range(3)}  # row 1 misses alpha: three different draws
    assert len(alphas) == 3


def test_fill_mean_is_the_mean_of_the_draws(runs, tmp_path):
    lines = blank(table_lines(10, seed=8), {0: [0], 2: [0, 1], 5: [0, 2], 7: [1]})
    data = write(tmp_path / "holes.csv", lines)
    args = ["--data", str(data), "--draws", "25", "--seed", "4"]
    draws, mean = tmp_path / "draws.csv", tmp_path / "mean.csv"
    assert call("impute", str(runs["deepnade"]), *args, "--out", str(draws)).returncode == 0
    proc = call("impute", str(runs["deepnade"]), *args, "--out", str(mean), "--fill", "mean")
    assert proc.returncode == 0, proc.stderr
    assert "mean of 25 draws" in proc.stdout
    samples = read_csv(draws)[1:]
    summary = read_csv(mean)[1:]
    check_filled(lines, summary)
    for r in (0, 2, 5):
        reals = [float(samples[25 * r + d][1]) for d in range(25)]
        assert float(summary[r][0]) == pytest.approx(np.mean(reals), rel=1e-5)
    for r, j in ((2, 1), (7, 1), (5, 2)):  # discrete: the most frequent draw (ties: smallest code)
        got = [samples[25 * r + d][1 + j] for d in range(25)]
        order = LABELS if j == 1 else ("0", "1")
        counts = [got.count(v) for v in order]
        assert summary[r][j] == order[int(np.argmax(counts))]


def test_one_line_errors_change_nothing(runs, tmp_path):
    dn = str(runs["deepnade"])
    complete = write(tmp_path / "complete.csv", table_lines(5))
    out = tmp_path / "out.csv"
    assert_user_error(
        call("impute", dn, "--data", str(complete), "--out", str(out)), "nothing to impute: no missing cell in"
    )
    assert not out.exists()
    holes = write(tmp_path / "holes.csv", blank(table_lines(5), {1: [0]}))
    renamed = write(tmp_path / "renamed.csv", blank(table_lines(5), {1: [0]}), header="alpha,sort,flag")
    for command in ("score", "impute"):
        assert_user_error(
            call(command, dn, "--data", str(renamed), "--out", str(out)),
            "renamed.csv: header does not match",
            "'sort'",
            "'kind'",
        )
        out.write_text("keep me\n")
        assert_user_error(call(command, dn, "--data", str(holes), "--out", str(out)), "out.csv: exists", "--force")
        assert out.read_text() == "keep me\n"
        assert call(command, dn, "--data", str(holes), "--out", str(out), "--force").returncode == 0
        assert out.read_text() != "keep me\n"
        out.unlink()
        assert_user_error(
            call(command, dn, "--data", str(tmp_path / "absent.csv"), "--out", str(out)), "absent.csv: no such file"
        )
        assert_user_error(
            call(command, dn, "--data", str(holes), "--out", str(holes), "--force"), "never modifies", "--out"
        )
        assert not out.exists()
    elm = write(tmp_path / "elm.csv", ["1.0,elm,1", "2.0,,0"])
    assert_user_error(
        call("score", dn, "--data", str(elm), "--out", str(out)), "row 2", "column 1 (kind)", "'elm' was not seen"
    )
    flag = write(tmp_path / "flag.csv", ["1.0,oak,2", "2.0,,0"])
    assert_user_error(call("impute", dn, "--data", str(flag), "--out", str(out)), "row 2", "column 2 (flag)", "binary")
    wide = write(tmp_path / "wide.csv", ["1.0,oak,1,3", "2.0,,0,4"], header="alpha,kind,flag,extra")
    assert_user_error(call("score", dn, "--data", str(wide), "--out", str(out)), "4 columns", "expects 3")
    assert not out.exists()
    assert_user_error(call("score", dn, "--data", str(holes), "--out", str(tmp_path / "s.npy")), "must end in .csv")


def test_arrays_with_nan_read_like_the_table(runs, tmp_path):
    lines = blank(table_lines(8, seed=9), {0: [1], 3: [0, 2]})
    meta = read_metadata(runs["deepnade"] / "best.safetensors")
    x, names = load_rows(write(tmp_path / "t.csv", lines), meta)
    assert names == ["alpha", "kind", "flag"]
    np.testing.assert_array_equal(x, np.array([values(line) for line in lines]))
    np.save(tmp_path / "t.npy", x)
    np.savez(tmp_path / "t.npz", x=x, columns=np.array(names))
    for path in (tmp_path / "t.npy", tmp_path / "t.npz"):
        got, _ = load_rows(path, meta)
        np.testing.assert_array_equal(got, x)
    rows = read_rows(tmp_path / "t.npy", meta)
    assert rows.numbers.tolist() == list(range(8)) and rows.cells is None
    out = tmp_path / "f.csv"
    proc = call("impute", str(runs["deepnade"]), "--data", str(tmp_path / "t.npy"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = read_csv(out)
    assert table[0] == ["alpha", "kind", "flag"]
    assert float(table[1][0]) == x[0, 0] and table[1][1] in LABELS and table[4][1] == LABELS[int(x[3, 1])]
    bad = x.copy()
    bad[2, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(DataError, match="infinite value inf at row 2, column 0"):
        load_rows(tmp_path / "inf.npy", meta)


def test_evaluate_all_rows_scores_every_row_of_the_file(runs, tmp_path):
    proc = call("evaluate", str(runs["made"]), "--all-rows", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    x = np.array([values(line) for line in table_lines(300)])
    ll = log_likelihoods(model_of(runs["made"]), x)
    assert report["split"] == "all" and report["n_examples"] == 300
    assert report["nll"] == pytest.approx(-ll.mean(), rel=1e-9)
    holes = write(tmp_path / "holes.csv", blank(table_lines(5), {2: [1]}))
    for extra in (["--all-rows"], []):
        proc = call("evaluate", str(runs["made"]), "--data", str(holes), *extra)
        assert_user_error(proc, "missing value at row 4, column 1 (kind)", "ardens score")
    assert_user_error(call("evaluate", str(runs["made"]), "--all-rows", "--split", "train"), "--split")


def test_one_hot_groups_a_missing_cell_hides_its_group(tmp_path):
    """A one-hot-group model reads the binary file; a group with a missing cell is missing as a whole."""
    rng = np.random.default_rng(0)
    binary = np.hstack([np.eye(3)[rng.integers(0, 3, 200)], rng.integers(0, 2, (200, 1))])
    np.save(tmp_path / "b.npy", binary)
    run = tmp_path / "run"
    args = ["train", "--model", "deepnade", "--data", str(tmp_path / "b.npy"), "--one-hot-groups", "auto"]
    proc = call(*args, "--out", str(run), *TRAIN)
    assert proc.returncode == 0, proc.stderr
    x = binary[:6].copy()
    x[1, 1] = np.nan  # group 0..2 missing
    x[2, 3] = np.nan  # the binary column missing
    np.save(tmp_path / "m.npy", x)
    out = tmp_path / "s.csv"
    assert call("score", str(run), "--data", str(tmp_path / "m.npy"), "--out", str(out)).returncode == 0
    table = read_csv(out)[1:]
    assert [int(r[2]) for r in table] == [2, 1, 1, 2, 2, 2]
    model = model_of(run)
    codes = np.column_stack([binary[:6, :3].argmax(1), binary[:6, 3]]).astype(float)
    seen = np.array([[1, 1], [0, 1], [1, 0], [1, 1], [1, 1], [1, 1]], dtype=bool)
    with torch.no_grad():
        want = model.marginal_log_prob(torch.as_tensor(codes), torch.as_tensor(seen)).double().numpy()
    np.testing.assert_allclose([float(r[1]) for r in table], want, rtol=1e-6)
    filled = tmp_path / "f.csv"
    assert call("impute", str(run), "--data", str(tmp_path / "m.npy"), "--out", str(filled)).returncode == 0
    rows = np.array([[float(v) for v in r] for r in read_csv(filled)[1:]])
    assert rows.shape == (6, 4) and (rows[:, :3].sum(1) == 1).all() and set(rows[:, 3]) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.delete(rows, [1, 2], 0), np.delete(binary[:6], [1, 2], 0))
