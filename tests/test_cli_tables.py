"""The command line on typed tables: train / evaluate / sample keep the column types, one-hot
groups score the original binary file, and bad tables are one-line errors that change nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import ardens
from ardens.data import load_dataset
from ardens.evaluate import log_likelihoods
from test_cli import assert_user_error, call

SHARED = Path(os.environ.get("ARDENS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TINY = ["--epochs", "3", "--hidden", "16", "--batch-size", "50", "--quiet"]
LABELS = ("ash", "oak", "yew")


def write_table(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """A mixed CSV with a header: a real column, a text-label column, a real column that
    depends on both, and a 0/1 column."""
    rng = np.random.default_rng(seed)
    a = rng.normal(5, 2, rows)
    b = rng.integers(0, 3, rows)
    c = 0.5 * a + b + rng.normal(0, 1, rows)
    d = rng.integers(0, 2, rows)
    lines = ["alpha,kind,gamma,flag"] + [f"{a[i]:.4f},{LABELS[b[i]]},{c[i]:.4f},{d[i]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("table")
    csv = write_table(folder / "t.csv")
    proc = call("train", "--model", "made", "--data", str(csv), "--out", str(folder / "run"), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "columns: alpha=real:10, kind=categorical:3, gamma=real:10, flag=binary" in proc.stdout
    return csv, folder / "run"


def test_evaluate_reports_nats_in_the_data_units_and_the_standardized_figure(table_run):
    csv, run = table_run
    proc = call("evaluate", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bits_per_dim"] is None  # real columns: no bits per dimension
    model = ardens.load(run / "best.safetensors")
    data = load_dataset(csv, columns=model.columns.specs())
    ll = log_likelihoods(model, data.test)
    assert report["nll"] == pytest.approx(-ll.mean(), rel=1e-9)
    # the standardized space: log p(x) + sum of the log scales of the real columns
    scale = model.columns.scale[torch.as_tensor(model.columns.real_idx)].double()
    assert report["standardized_log_likelihood"] == pytest.approx(ll.mean() + float(scale.log().sum()), rel=1e-9)
    train = data.train[:, [0, 2]]
    np.testing.assert_allclose(scale.numpy(), train.std(0), rtol=1e-6)  # population std of the training split


def test_sample_to_csv_keeps_types_and_labels(table_run, tmp_path):
    _, run = table_run
    out = tmp_path / "s.csv"
    proc = call("sample", str(run), "-n", "40", "--out", str(out), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "alpha,kind,gamma,flag" and len(lines) == 41
    rows = [line.split(",") for line in lines[1:]]
    assert {r[1] for r in rows} <= set(LABELS)
    assert {r[3] for r in rows} <= {"0", "1"}
    [float(r[0]) + float(r[2]) for r in rows]  # real columns parse as numbers
    npy = tmp_path / "s.npy"
    assert call("sample", str(run), "-n", "40", "--out", str(npy), "--seed", "3").returncode == 0
    arr = np.load(npy)
    assert arr.dtype == np.float64 and arr.shape == (40, 4)
    assert set(np.unique(arr[:, 1])) <= {0.0, 1.0, 2.0}


def test_a_file_with_labels_in_another_order_is_recoded_to_the_model(table_run, tmp_path):
    """Only two of the three labels, so a fresh reading would code them 0, 1: the model's codes win."""
    csv, run = table_run
    lines = csv.read_text().splitlines()
    kept = [lines[0]] + [line for line in lines[1:] if ",ash," not in line]
    sub = tmp_path / "sub.csv"
    sub.write_text("\n".join(kept) + "\n")
    proc = call("evaluate", str(run), "--data", str(sub), "--split", "train", "--json")
    assert proc.returncode == 0, proc.stderr
    model = ardens.load(run / "best.safetensors")
    data = load_dataset(sub, columns="kind=categorical")  # codes 0 = oak, 1 = yew here
    x = data.train.copy()
    x[:, 1] += 1  # the model's codes: ash 0, oak 1, yew 2
    assert json.loads(proc.stdout)["nll"] == pytest.approx(-log_likelihoods(model, x).mean(), rel=1e-9)


def _edit(csv: Path, folder: Path, name: str, last_row: str | None = None, header: str | None = None) -> Path:
    lines = csv.read_text().splitlines()
    if header is not None:
        lines[0] = header
    if last_row is not None:
        lines.append(last_row)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "row", "header", "fragments"),
    [
        ("label.csv", "1.0,elm,2.0,1", None, ("label 'elm' was not seen in training",)),
        ("inf.csv", "inf,oak,2.0,1", None, ("row 302", "column 0 (alpha)")),
        ("text.csv", "abc,oak,2.0,1", None, ("'abc'", "row 302", "column 0 (alpha)")),
        ("flag.csv", "1.0,oak,2.0,3", None, ("row 302", "column 3 (flag)", "binary")),
        ("missing.csv", "1.0,,2.0,1", None, ("missing value", "row 302", "column 1 (kind)")),
        ("header.csv", None, "alpha,kind,beta,flag", ("header does not match", "'beta'", "'gamma'")),
    ],
)
def test_bad_tables_at_evaluation_are_one_line_errors(table_run, tmp_path, name, row, header, fragments):
    csv, run = table_run
    path = _edit(csv, tmp_path, name, row, header)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert_user_error(call("evaluate", str(run), "--data", str(path)), name, *fragments)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_bad_tables_at_training_are_one_line_errors_and_create_nothing(tmp_path):
    csv = write_table(tmp_path / "t.csv")
    lines = csv.read_text().splitlines()
    constant = tmp_path / "constant.csv"
    constant.write_text("\n".join([lines[0]] + ["1.5," + line.split(",", 1)[1] for line in lines[1:]]) + "\n")
    few = tmp_path / "few.csv"
    few.write_text("\n".join(lines[:3]) + "\n")
    cases = [
        (constant, ("column 0 (alpha)", "constant")),
        (few, ("too few",)),
        (_edit(csv, tmp_path, "cat.csv", "1.0,oak,2.5,1"), ()),  # fine: control
    ]
    for path, fragments in cases[:2]:
        out = tmp_path / f"run-{path.stem}"
        assert_user_error(call("train", "--model", "nade", "--data", str(path), "--out", str(out), *TINY), *fragments)
        assert not out.exists()
    proc = call("train", "--model", "nade", "--data", str(cases[2][0]), "--out", str(tmp_path / "ok"), *TINY)
    assert proc.returncode == 0, proc.stderr
    bad = call(
        "train", "--model", "nade", "--data", str(csv), "--columns", "kind=real", "--out", str(tmp_path / "r2"), *TINY
    )
    assert_user_error(bad, "column 1 (kind)", "text labels")


def test_columns_override_and_learned_first_hidden(tmp_path):
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.integers(0, 4, 200), rng.integers(0, 2, 200), rng.normal(size=200)])
    np.save(tmp_path / "x.npy", x)
    proc = call(
        "train",
        *("--model", "nade", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "r")),
        *("--columns", "0=categorical:6,2=real:3", "--first-hidden", "learned", *TINY),
    )
    assert proc.returncode == 0, proc.stderr
    assert "columns: categorical:6, binary, real:3" in proc.stdout
    model = ardens.load(tmp_path / "r" / "best.safetensors")
    assert model.columns.specs() == ["categorical:6", "binary", "real:3"] and model.h1 is not None
    # W: d x (6 + 1 + 1 inputs), b: d, V: (6 + 1 + 9 parameters) x d, c: 16 parameters, h_1: d
    assert sum(p.numel() for p in model.parameters()) == 16 * 8 + 16 + 16 * 16 + 16 + 16


def test_one_hot_groups_are_scored_on_the_original_binary_file(tmp_path):
    """A binary file whose columns 0-2 are one-hot (always one on) and 3-5 at most one-hot: the
    categorical model reads the binary file, and its log-likelihood of each binary row is that of
    the regrouped row (the same events)."""
    rng = np.random.default_rng(0)
    rows = 400
    first = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, rows)]
    second = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, rows)][:, 1:]  # code 0: no column on
    last = rng.integers(0, 2, (rows, 1)).astype(np.uint8)
    binary = np.hstack([first, second, last])
    np.save(tmp_path / "b.npy", binary)
    proc = call(
        "train", "--model", "made", "--data", str(tmp_path / "b.npy"), "--one-hot-groups", "auto",
        "--out", str(tmp_path / "r"), *TINY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "columns: categorical:3, categorical:4, binary" in proc.stdout
    report = json.loads(call("evaluate", str(tmp_path / "r"), "--json").stdout)
    model = ardens.load(tmp_path / "r" / "best.safetensors")
    grouped = load_dataset(tmp_path / "b.npy", one_hot_groups=[[0, 3, False], [3, 6, True]])
    assert report["nll"] == pytest.approx(-log_likelihoods(model, grouped.test).mean(), rel=1e-9)
    assert report["bits_per_dim"] is not None
    out = tmp_path / "s.npy"
    assert call("sample", str(tmp_path / "r"), "-n", "50", "--out", str(out)).returncode == 0
    samples = np.load(out)
    assert samples.shape == (50, 7) and set(np.unique(samples)) <= {0, 1}
    assert (samples[:, :3].sum(1) == 1).all() and (samples[:, 3:6].sum(1) <= 1).all()  # no impossible patterns


@pytest.mark.skipif(not (SHARED / "real" / "red_wine.npz").is_file(), reason="needs ../shared/data/real/red_wine.npz")
def test_red_wine_fold_is_stored_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ARDENS_DATA", str(SHARED))
    proc = call(
        "train", "--model", "made", "--data", "red_wine", "--fold", "3", "--data-dir", str(SHARED),
        "--out", str(tmp_path / "r"), *TINY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(call("evaluate", str(tmp_path / "r"), "--data-dir", str(SHARED), "--json").stdout)
    model = ardens.load(tmp_path / "r" / "best.safetensors")
    test = load_dataset("red_wine", data_dir=SHARED, fold=3).test
    assert report["n_examples"] == len(test)
    assert report["nll"] == pytest.approx(-log_likelihoods(model, test).mean(), rel=1e-9)


@pytest.mark.parametrize("device", ["mps", "xla", "vulkan", "meta"])
def test_unusable_devices_are_one_line_errors_before_any_work(tmp_path, device):
    out = tmp_path / "run"
    proc = call("train", "--model", "nade", "--data", "digits", "--out", str(out), "--device", device, *TINY)
    assert_user_error(proc, f"device: '{device}' is not usable here")
    assert not out.exists()


def test_help_shows_defaults():
    import contextlib
    import io

    from ardens.cli import build_parser

    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "(default: 10)" in text.getvalue() and "(default: 0)" in text.getvalue()  # --patience, --seed


def test_documented_submodules_import_with_the_package():
    import subprocess
    import sys

    code = "import ardens; ardens.data.load_dataset('digits'); ardens.train.fit; ardens.evaluate.evaluate; ardens.fetch"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_small_models_train_on_one_thread_unless_told(tmp_path):
    import torch

    before = torch.get_num_threads()
    proc = call("train", "--model", "made", "--data", "digits", "--out", str(tmp_path / "a"), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "on digits, 1 thread (by model size; --threads N to choose)" in proc.stdout
    proc = call("train", "--model", "made", "--data", "digits", "--out", str(tmp_path / "b"), "--threads", "2", *TINY)
    assert "on digits, 2 threads\n" in proc.stdout
    assert torch.get_num_threads() == before  # main() leaves the caller's setting as it found it


def test_a_file_split_by_a_seed_is_evaluated_and_resumed_on_that_split(tmp_path):
    """Regression: ``--seed`` also seeds the split of a single-array file; evaluation and
    ``--resume`` must split it the same way (they used the default seed's split)."""
    csv = write_table(tmp_path / "t.csv")
    proc = call("train", "--model", "nade", "--data", str(csv), "--out", str(tmp_path / "r"), "--seed", "3", *TINY)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(call("evaluate", str(tmp_path / "r"), "--json").stdout)
    model = ardens.load(tmp_path / "r" / "best.safetensors")
    seeded, default = load_dataset(str(csv), seed=3), load_dataset(str(csv))
    assert not np.array_equal(seeded.test, default.test)  # the two splits differ: the check can fail
    assert report["nll"] == pytest.approx(-log_likelihoods(model, seeded.test).mean(), rel=1e-9)
    proc = call("train", "--resume", str(tmp_path / "r"), "--epochs", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr


def test_input_margin_reaches_the_model_and_a_bad_one_is_a_usage_error(table_run, tmp_path):
    """The default run's model clips real inputs to the training range widened by 1 standard
    deviation (fitted on its training split); ``--input-margin none`` trains a model that never
    clips; a bad value exits 2 and creates nothing."""
    csv, run = table_run
    model = ardens.load(run / "best.safetensors")
    assert model.config()["input_margin"] == 1.0
    train = load_dataset(str(csv)).train  # the split the run trained on (the same default seed)
    z = (train - model.columns.loc.double().numpy()) / model.columns.scale.double().numpy()
    real = [0, 2]
    np.testing.assert_allclose(model.columns.lo.double().numpy()[real], z[:, real].min(0) - 1.0, rtol=1e-6)
    np.testing.assert_allclose(model.columns.hi.double().numpy()[real], z[:, real].max(0) + 1.0, rtol=1e-6)
    proc = call(
        "train", "--model", "made", "--data", str(csv), "--out", str(tmp_path / "n"), "--input-margin", "none", *TINY
    )
    assert proc.returncode == 0, proc.stderr
    assert ardens.load(tmp_path / "n" / "best.safetensors").columns.lo is None
    bad = call(
        "train", "--model", "made", "--data", str(csv), "--out", str(tmp_path / "b"), "--input-margin", "-1", *TINY
    )
    assert_user_error(bad, "--input-margin", "expected a non-negative number")
    assert not (tmp_path / "b").exists()
