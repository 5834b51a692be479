"""The command line end to end: every command, and one-line errors (exit 2, no traceback) for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ardens
from ardens.cli import main
from ardens.data import load_digits
from ardens.evaluate import log_likelihoods

SHARED = Path(os.environ.get("ARDENS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TINY = ["--epochs", "2", "--hidden", "16", "--batch-size", "200", "--quiet"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m ardens ARGS`` in a subprocess (so stderr and the exit status are real)."""
    full_env = {**os.environ, "ARDENS_DATA": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ardens", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300
    )


def call(*args: str) -> subprocess.CompletedProcess:
    """``main(ARGS)`` in this process (fast), captured like a subprocess; ``ARDENS_DATA`` unset."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    saved = os.environ.pop("ARDENS_DATA", None)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as exit_:
                rc = exit_.code
    finally:
        if saved is not None:
            os.environ["ARDENS_DATA"] = saved
    return subprocess.CompletedProcess(["ardens", *args], rc, out.getvalue(), err.getvalue())


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ardens: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def made_run(tmp_path_factory) -> Path:
    """A tiny 2-mask MADE trained on the digits through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "made"
    args = ["train", "--model", "made", "--data", "digits", "--out", str(out), "--num-masks", "2"]
    assert main([*args, "--ordering", "random", "--lr", "0.01", *TINY]) == 0
    return out


def test_train_evaluate_sample_on_digits(made_run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(made_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"] == "digits" and report["n_examples"] == 300 and report["masks"] == 2
    assert report["single_mask_nll"] is not None and report["nll"] < 64 * np.log(2)
    rows = [json.loads(x) for x in (made_run / "metrics.jsonl").read_text().splitlines()]
    assert min(r["valid_nll"] for r in rows) < 25.0  # beats the initial marginal model (~25.2)

    assert main(["evaluate", str(made_run / "best.safetensors"), "--data", "digits", "--masks", "1"]) == 0
    text = capsys.readouterr().out
    assert "digits test: 300 examples" in text and "bits/dim" in text

    out = tmp_path / "s.npy"
    assert main(["sample", str(made_run), "-n", "10", "--out", str(out), "--seed", "3"]) == 0
    x = np.load(out)
    assert x.shape == (10, 64) and x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}
    assert out.with_suffix(".png").stat().st_size > 0
    again = tmp_path / "t.npy"
    assert main(["sample", str(made_run), "-n", "10", "--out", str(again), "--seed", "3"]) == 0
    np.testing.assert_array_equal(np.load(again), x)


def test_sample_refuses_to_overwrite(made_run, tmp_path):
    out = tmp_path / "s.npy"
    out.write_bytes(b"keep")
    proc = call("sample", str(made_run), "--out", str(out))
    assert_user_error(proc, str(out), "exists")
    assert out.read_bytes() == b"keep"


def test_real_process_errors_have_no_traceback(tmp_path):
    np.save(tmp_path / "bad.npy", np.array([[0, 1], [1, np.inf], [0, 0]]))
    proc = run_cli("train", "--model", "nade", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "r"))
    assert_user_error(proc, "bad.npy", "row 1, column 1")
    proc = run_cli("train", "--model", "nade", "--data", "digits", "--out", "r", "--epochs", "-3", cwd=tmp_path)
    assert_user_error(proc, "--epochs")


def test_valid_masks_option_reaches_the_training_config(made_run, tmp_path):
    from ardens.train import VALID_MASKS

    assert ardens.read_metadata(made_run / "best.safetensors")["training"]["valid_masks"] == VALID_MASKS
    out = tmp_path / "one"
    args = ["train", "--model", "made", "--data", "digits", "--out", str(out), "--num-masks", "2", "--valid-masks", "1"]
    assert main([*args, *TINY]) == 0
    best = ardens.load(out / "best.safetensors")
    first_member = float(-log_likelihoods(best, load_digits().valid, masks=1).mean())
    logged = min(json.loads(x)["valid_nll"] for x in (out / "metrics.jsonl").read_text().splitlines())
    assert ardens.read_metadata(out / "best.safetensors")["training"]["valid_masks"] == 1
    assert logged == pytest.approx(first_member, rel=1e-5)
    assert_user_error(call(*args, "--valid-masks", "0"), "--valid-masks")


def test_lbfgs_and_bias_decay_options_reach_the_training_config(tmp_path):
    out = tmp_path / "fvsbn"
    args = ["train", "--model", "made", "--hidden", "--data", "digits", "--out", str(out), "--optimizer", "lbfgs"]
    options = ["--weight-decay", "0.01", "--no-bias-decay", "--epochs", "2", "--valid-every", "2", "--quiet"]
    assert main([*args, *options]) == 0
    training = ardens.read_metadata(out / "best.safetensors")["training"]
    assert (training["optimizer"], training["lr"], training["decay_biases"]) == ("lbfgs", 1.0, False)
    assert training["batch_size"] == 10000 and training["valid_every"] == 2


def test_train_evaluate_and_sample_a_deepnade(tmp_path, capsys):
    out = tmp_path / "deep"
    args = ["train", "--model", "deepnade", "--data", "digits", "--out", str(out), "--num-masks", "2"]
    assert main([*args, "--hidden", "16", "16", "--epochs", "1", "--batch-size", "200", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["masks"] == 2 and report["single_mask_nll"] is not None
    assert main(["evaluate", str(out)]) == 0
    text = capsys.readouterr().out
    assert "DeepNADE, ensemble of 2 orderings" in text and "DeepNADE, ordering 0 alone" in text
    assert main(["sample", str(out), "-n", "3", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3, 64)
    assert_user_error(call(*args, "--direct"), "--direct")
    assert_user_error(call(*args, "--dropout", "0.2"), "--dropout")


def test_train_on_user_files_and_evaluate_other_split(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((120, 9)) < 0.4).astype(np.uint8)
    np.savetxt(tmp_path / "mine.csv", x, fmt="%d", delimiter=",")
    proc = run_cli("train", "--model", "nade", "--data", "mine.csv", "--out", "run", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "epoch   2" in proc.stdout and "best valid NLL" in proc.stdout
    proc = run_cli(
        "evaluate", "run", "--data", "mine.csv", "--split", "valid", "--json", cwd=tmp_path
    )  # relative paths
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_examples"] == 12
    model = ardens.load(tmp_path / "run" / "best.safetensors")
    assert model.n_inputs == 9


def test_resume_through_the_cli(tmp_path):
    args = ["train", "--model", "nade", "--data", "digits", "--out", str(tmp_path / "r"), *TINY]
    assert main(args) == 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--epochs", "3", "--quiet"]) == 0
    rows = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    files = {}
    files["values"] = tmp_path / "values.npy"
    np.save(files["values"], np.array([[0, 1]] * 5 + [[-np.inf, 0]]))
    files["nan"] = tmp_path / "nan.npy"
    np.save(files["nan"], np.array([[0.0, 1.0]] * 5 + [[np.nan, 0.0]]))
    files["ragged"] = tmp_path / "ragged.txt"
    files["ragged"].write_text("0 1 0\n1 1\n0 0 0\n1 1 1\n")
    files["empty"] = tmp_path / "empty.npz"
    np.savez(files["empty"], train=np.zeros((5, 3)), valid=np.zeros((0, 3)), test=np.zeros((5, 3)))
    files["missing-key"] = tmp_path / "missing.npz"
    np.savez(files["missing-key"], train=np.zeros((5, 3)), test=np.zeros((5, 3)))
    files["truncated"] = tmp_path / "truncated.npz"
    np.savez(files["truncated"], data=np.zeros((100, 30)))
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:300])
    files["absent"] = tmp_path / "absent.npz"
    return files


@pytest.mark.parametrize("kind", ["values", "nan", "ragged", "empty", "missing-key", "truncated", "absent"])
def test_bad_data_is_one_line_exit_2(bad_files, tmp_path, kind):
    path = bad_files[kind]
    proc = call("train", "--model", "nade", "--data", str(path), "--out", str(tmp_path / "run"), *TINY)
    assert_user_error(proc, str(path))
    assert not (tmp_path / "run").exists()


def test_dimension_mismatch_and_missing_named_set(made_run, tmp_path):
    np.save(tmp_path / "d10.npy", np.zeros((30, 10), dtype=np.uint8))
    assert_user_error(call("evaluate", str(made_run), "--data", str(tmp_path / "d10.npy")), "d10", "10 dimensions")
    proc = call("evaluate", str(made_run), "--data", "binarized_mnist", "--data-dir", str(tmp_path / "nowhere"))
    assert_user_error(proc, "binarized_mnist", str(tmp_path / "nowhere"), "ardens fetch binarized_mnist")


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["train", "--model", "nade", "--data", "digits", "--out", "o", "--epochs", "0"], ["--epochs", "'0'"]),
        (["train", "--model", "nade", "--data", "digits", "--out", "o", "--lr", "abc"], ["--lr"]),
        (["train", "--model", "rbm", "--data", "digits", "--out", "o"], ["--model"]),
        (["train", "--model", "nade", "--data", "digits", "--out", "o", "--num-masks", "3"], ["--num-masks"]),
        (["train", "--model", "nade", "--data", "digits", "--out", "o", "--hidden", "3", "4"], ["--hidden"]),
        (["train", "--model", "nade", "--data", "digits"], ["--out"]),
        (["train", "--model", "nade", "--data", "digits", "--out", "o", "--device", "cuda:99"], ["device"]),
        (["train", "--model", "nade", "--data", "nosuchset", "--out", "o"], ["nosuchset", "unknown data set"]),
        (["train", "--resume", "nosuchrun"], ["nosuchrun", "no resume state"]),
        (
            ["train", "--model", "nade", "--data", "digits", "--out", "o", "--epochs", "2", "--valid-every", "3"],
            ["valid_every"],
        ),
        (
            ["train", "--model", "made", "--data", "digits", "--out", "o", "--num-masks", "2", "--optimizer", "lbfgs"],
            ["lbfgs"],
        ),
        (["evaluate", "nosuch.safetensors", "--data", "digits"], ["nosuch.safetensors"]),
        (["sample", "nosuch", "--out", "x.npy"], ["nosuch"]),
        (["fetch", "dna"], ["argument name"]),
        (["frobnicate"], ["argument COMMAND"]),
    ],
)
def test_bad_arguments_are_one_line_exit_2(tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    proc = call(*args)
    assert_user_error(proc, *fragments)
    assert not (tmp_path / "o").exists()


def test_train_refuses_a_non_empty_out_and_a_broken_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.txt").write_text("keep me")
    proc = call("train", "--model", "nade", "--data", "digits", "--out", str(tmp_path / "run"), *TINY)
    assert_user_error(proc, str(tmp_path / "run"), "not empty", "--resume")
    assert (tmp_path / "run" / "results.txt").read_text() == "keep me"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert_user_error(call("evaluate", str(broken), "--data", "digits"), str(broken))


def test_demo_quick(tmp_path):
    proc = call("demo", "--out", str(tmp_path / "demo"), "--epochs", "2", "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("independent Bernoulli", "mixture of Bernoullis (K=", "NADE", "MADE", "test NLL"):
        assert name in proc.stdout
    assert "compiling the NADE kernels (numba; cached after the first run):" in proc.stdout  # timed apart
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert len(results) == 4 and all(r["nll"] > 0 and r["se"] > 0 for r in results.values())
    for f in ("nade_samples.png", "made_samples.png", "nade/learning_curve.png", "made/best.safetensors"):
        assert (tmp_path / "demo" / f).is_file(), f
    assert_user_error(call("demo", "--out", str(tmp_path / "demo"), "--epochs", "1"), "not empty")


@pytest.mark.skipif(not (SHARED / "dna.npz").is_file(), reason=f"dna.npz not found in {SHARED} (set ARDENS_DATA)")
def test_train_and_evaluate_a_tiny_model_on_dna(tmp_path):
    run = str(tmp_path / "run")
    proc = call("train", "--model", "made", "--data", "dna", "--data-dir", str(SHARED), "--out", run, *TINY)
    assert proc.returncode == 0, proc.stderr
    proc = call("evaluate", run, "--data-dir", str(SHARED), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["data"] == "dna" and report["n_examples"] == 1186 and report["dim"] == 180
    assert report["nll"] < 180 * np.log(2)
