"""Robustness: hostile checkpoints, fuzzed loaders, diverging training, concurrent runs, Ctrl-C,
and the rough edges of ``ardens train --resume``."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import ardens
import ardens.cli
import ardens.demo
import ardens.train
from ardens.cli import main
from ardens.data import Dataset, load_digits, load_file
from ardens.train import ModelConfig, RunDirError, TrainConfig, build_model, fit, read_metrics, resume
from test_cli import assert_user_error

DIGITS = load_digits()
SMALL = Dataset("digits", DIGITS.train[:300], DIGITS.valid[:100], DIGITS.test[:100], (8, 8))
TINY = ["--hidden", "8", "--batch-size", "200", "--quiet"]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def call(*args: str) -> subprocess.CompletedProcess:
    """``main(ARGS)`` in this process, captured like a subprocess."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exit_:
            rc = exit_.code
    return subprocess.CompletedProcess(["ardens", *args], rc, out.getvalue(), err.getvalue())


# -- 1. hostile checkpoints ---------------------------------------------------------------------
def _valid_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        ardens.save(ardens.NADE(n_inputs=4, hidden=3), path, extra={"data": "digits"})
        return path.read_bytes()


VALID = _valid_bytes()


def _raw(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def _with_meta(meta: dict, tensors: dict | None = None) -> bytes:
    tensors = tensors if tensors is not None else ardens.NADE(n_inputs=4, hidden=3).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"ardens": json.dumps(meta)})
        return path.read_bytes()


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch ardens-pwned",))


ARDENS = {"__metadata__": {"ardens": json.dumps({"class": "NADE", "config": {"n_inputs": 4, "hidden": 3}})}}
NADE_CONFIG = {"n_inputs": 4, "hidden": 3}
HOSTILE = {
    "empty": b"",
    "truncated header": VALID[:40],
    "truncated tensors": VALID[:-7],
    "bad JSON header": (9).to_bytes(8, "little") + b"{not json",
    "absurd header length": (2**60).to_bytes(8, "little") + b"{}",
    "header not an object": _raw([1, 2, 3]),
    "absurd shape": _raw(
        {**ARDENS, "W": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}, b"0" * 16
    ),
    "absurd offsets": _raw({**ARDENS, "W": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 2**62]}}, b"0" * 16),
    "negative shape": _raw({**ARDENS, "W": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"0" * 16),
    "unknown dtype": _raw({**ARDENS, "W": {"dtype": "X9", "shape": [4], "data_offsets": [0, 16]}}, b"0" * 16),
    "no ardens metadata": _raw({"__metadata__": {"other": "x"}}),
    "ardens metadata not JSON": _raw({"__metadata__": {"ardens": "{oops"}}),
    "unknown model class": _with_meta({"class": "os.system", "config": NADE_CONFIG}),
    "class not a string": _with_meta({"class": ["NADE"], "config": NADE_CONFIG}),
    "config not an object": _with_meta({"class": "NADE", "config": [4, 3]}),
    "unknown config key": _with_meta({"class": "NADE", "config": {**NADE_CONFIG, "evil": 1}}),
    "negative hidden": _with_meta({"class": "NADE", "config": {"n_inputs": 4, "hidden": -3}}),
    "string hidden": _with_meta({"class": "NADE", "config": {"n_inputs": 4, "hidden": "3"}}),
    "huge hidden": _with_meta({"class": "NADE", "config": {"n_inputs": 4, "hidden": 10**12}}),
    "huge MADE hidden": _with_meta({"class": "MADE", "config": {"n_inputs": 4, "hidden": [10**10, 10**10]}}),
    "wrong shapes": _with_meta({"class": "NADE", "config": NADE_CONFIG}, ardens.NADE(4, hidden=5).state_dict()),
    "missing tensor": _with_meta({"class": "NADE", "config": NADE_CONFIG}, {"W": torch.zeros(3, 4)}),
    "a pickle": pickle.dumps(_Boom()),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoints_are_one_line_value_errors(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(HOSTILE[name])
    try:
        meta = ardens.read_metadata(path)
    except ValueError as err:
        assert "\n" not in str(err) and len(str(err)) < 400
    else:
        assert isinstance(meta, dict)
    with pytest.raises(ValueError) as info:
        ardens.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert_user_error(call("evaluate", path, "--data", "digits"), str(path))
    assert not (tmp_path / "ardens-pwned").exists()


def test_hostile_checkpoint_messages_say_what_is_wrong(tmp_path):
    cases = {
        "absurd header length": "header length",
        "bad JSON header": "not JSON",
        "unknown model class": "model class",
        "negative hidden": "hidden",
        "wrong shapes": "do not fit",
        "absurd shape": "shape or offsets",
    }
    for name, fragment in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(HOSTILE[name])
        with pytest.raises(ValueError, match=fragment):
            ardens.load(path)


def test_valid_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.safetensors"
    path.write_bytes(VALID)
    assert isinstance(ardens.load(path), ardens.NADE)


# -- 2. fuzzing -------------------------------------------------------------------------------
def _load_only_value_errors(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.safetensors"
        path.write_bytes(raw)
        for reader in (ardens.read_metadata, ardens.load):
            try:
                reader(path)
            except ValueError:
                pass


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_checkpoint_random_bytes(raw):
    _load_only_value_errors(raw)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, len(VALID)),
)
def test_fuzz_checkpoint_mutations(edits, cut):
    raw = bytearray(VALID)
    for pos, value in edits:
        raw[pos] = value
    _load_only_value_errors(bytes(raw[: max(cut, len(raw) - 64)]) if cut % 3 == 0 else bytes(raw))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)
CONFIG_KEYS = st.sampled_from(
    ["n_inputs", "hidden", "activation", "ordering", "seed", "num_masks", "columns", "direct"]
)


@FUZZ
@given(st.sampled_from(["NADE", "MADE", "DeepNADE"]), st.dictionaries(CONFIG_KEYS, JSON, max_size=5))
def test_fuzz_checkpoint_configs(name, config):
    _load_only_value_errors(_with_meta({"class": name, "config": {"n_inputs": 4, "hidden": 3, **config}}))


def _data_only_value_errors(raw: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d{suffix}"
        path.write_bytes(raw)
        try:
            load_file(path)
        except ValueError:  # DataError among them
            pass


def _array_bytes(kind: str) -> bytearray:
    buf = io.BytesIO()
    arr = (np.arange(24).reshape(6, 4) % 2).astype(np.uint8)
    np.save(buf, arr) if kind == "npy" else np.savez(buf, x=arr)
    return bytearray(buf.getvalue())


def test_npy_with_a_damaged_header_is_a_data_error():
    """Found by fuzzing: np.load raised tokenize.TokenError on a damaged header dict."""
    raw = _array_bytes("npy")
    raw[10] = 0
    _data_only_value_errors(bytes(raw), ".npy")


def test_npz_with_unsupported_zip_flags_is_a_data_error():
    """Found by fuzzing: zipfile raised NotImplementedError for flag bit 5 ('compressed patched data')."""
    raw = _array_bytes("npz")
    raw[raw.index(b"PK\x01\x02") + 8] = 0x20
    _data_only_value_errors(bytes(raw), ".npz")


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".csv", ".npy", ".npz"]))
def test_fuzz_data_loaders_on_random_bytes(raw, suffix):
    _data_only_value_errors(raw, suffix)


@FUZZ
@given(st.text(alphabet="01,;.\t\n -+eaxNn\"'", max_size=120))
def test_fuzz_data_loaders_on_csvish_text(text):
    _data_only_value_errors(text.encode(), ".csv")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4), st.sampled_from(["npy", "npz"]))
def test_fuzz_data_loaders_on_mutated_arrays(edits, kind):
    raw = _array_bytes(kind)
    for pos, value in edits:
        raw[pos % len(raw)] = value
    _data_only_value_errors(bytes(raw), f".{kind}")


# -- 3. divergence ------------------------------------------------------------------------------
def _nan_after(forward, step: int):
    def patched(self, x, *, training_step=None, generator=None, context=None):
        out = forward(self, x, training_step=training_step, generator=generator, context=context)
        return out * math.nan if training_step is not None and training_step >= step else out

    return patched


def test_nan_loss_stops_with_a_clear_error_and_resume_needs_a_new_lr(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(ardens.NADE, "forward", _nan_after(ardens.NADE.forward, 5))  # 2 steps an epoch: epoch 3
    torch.manual_seed(0)
    model = build_model("nade", 64, ModelConfig(hidden=[8]))
    with pytest.raises(FloatingPointError, match=r"epoch 3: training loss nan .*smaller --lr"):
        fit(model, SMALL, TrainConfig(epochs=6, batch_size=150, lr=0.01), run, progress=False)
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    best = ardens.load(run / "best.safetensors")
    assert ardens.read_metadata(run / "best.safetensors")["epoch"] in (1, 2)
    assert torch.isfinite(best.log_prob(torch.as_tensor(SMALL.valid, dtype=torch.float32))).all()
    assert (run / "learning_curve.png").is_file()
    monkeypatch.undo()
    for lr in (None, 0.01):  # the same rate would diverge again: refused, not looped
        with pytest.raises(RunDirError, match="diverged at epoch 3.*smaller --lr"):
            resume(run, SMALL, lr=lr, progress=False)
    result = resume(run, SMALL, lr=0.001, progress=False)
    assert result.epochs_run == 6 and math.isfinite(result.best_valid_nll)
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, 7)) and rows[-1]["lr"] == 0.001


def test_nan_validation_and_cli_divergence_message(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(ardens.NADE, "forward", _nan_after(ardens.NADE.forward, 12))
    proc = call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "4", *TINY)
    assert_user_error(proc, "epoch 3", "smaller --lr")
    monkeypatch.undo()
    assert_user_error(call("train", "--resume", run), "diverged at epoch 3", "--lr")
    proc = call("train", "--resume", run, "--lr", "0.0001", "--quiet")
    assert proc.returncode == 0, proc.stderr
    scores = iter([10.0, math.inf])
    monkeypatch.setattr(ardens.train, "mean_nll", lambda *a, **k: next(scores))
    with pytest.raises(FloatingPointError, match="epoch 2: validation NLL inf"):
        fit(
            build_model("nade", 64, ModelConfig(hidden=[4])),
            SMALL,
            TrainConfig(epochs=3),
            tmp_path / "v",
            progress=False,
        )


def test_divergence_in_the_first_epoch_leaves_no_run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(ardens.NADE, "forward", _nan_after(ardens.NADE.forward, 0))
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(
            build_model("nade", 64, ModelConfig(hidden=[4])),
            SMALL,
            TrainConfig(epochs=2),
            tmp_path / "r",
            progress=False,
        )
    assert not (tmp_path / "r").exists()


# -- 4. concurrency -------------------------------------------------------------------------------
HOLD = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.write(fd, str(os.getpid()).encode())\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_a_locked_run_dir_refuses_a_second_run_and_a_stale_lock_does_not(tmp_path):
    run = tmp_path / "run"
    assert call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "1", *TINY).returncode == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    holders = []
    for d in (run, fresh):
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d / ardens.train.LOCK)], stdout=subprocess.PIPE)
        assert holder.stdout.readline().strip() == b"locked"
        holders.append(holder)
    try:
        pid = str(holders[0].pid)
        assert_user_error(call("train", "--resume", run, "--epochs", "2", "--quiet"), "another ardens process", pid)
        with pytest.raises(RunDirError, match="another ardens process"):
            resume(run, SMALL, epochs=2, progress=False)
        args = ("train", "--model", "nade", "--data", "digits", "--out", fresh, "--epochs", "1", *TINY)
        assert_user_error(call(*args), "another ardens process")
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert (run / ardens.train.LOCK).is_file()  # stale: its process is gone
    assert call("train", "--resume", run, "--epochs", "2", "--quiet").returncode == 0
    assert call(*args).returncode == 0
    assert not (run / ardens.train.LOCK).exists() and not (fresh / ardens.train.LOCK).exists()


# -- 5. rough edges -------------------------------------------------------------------------------
@pytest.fixture
def short_run(tmp_path) -> Path:
    run = tmp_path / "run"
    proc = call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "2", "--lr", "0.01", *TINY)
    assert proc.returncode == 0, proc.stderr
    assert f"to train longer: ardens train --resume {run} --epochs 4" in proc.stdout
    return run


def test_resume_applies_the_changeable_options_and_refuses_the_others(short_run):
    proc = call("train", "--resume", short_run, "--lr", "0.1", "--epochs", "4", "--patience", "7", "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = read_metrics(short_run)
    assert [r["lr"] for r in rows] == [0.01, 0.01, 0.1, 0.1]
    from ardens.train import RESUME, _read_resume

    config = _read_resume(short_run / RESUME)[1]["train_config"]
    assert (config["epochs"], config["patience"], config["lr"]) == (4, 7, 0.1)
    for extra in (["--model", "made"], ["--hidden", "5"], ["--num-masks", "2"], ["--columns", "real"], ["--seed", "3"]):
        flag = extra[0]
        assert_user_error(call("train", "--resume", short_run, *extra), f"{flag}: cannot change with --resume")


def test_an_early_stopped_run_continues_with_a_larger_patience(tmp_path, monkeypatch):
    scores = iter([10.0, 11.0, 12.0, 9.0, 13.0, 14.0, 15.0])
    monkeypatch.setattr(ardens.train, "mean_nll", lambda *a, **k: next(scores))
    run = tmp_path / "run"
    proc = call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "9", "--patience", "2", *TINY)
    assert "no better validation NLL in 2 epochs (best epoch 1)" in proc.stdout
    again = call("train", "--resume", run, "--quiet")
    assert again.returncode == 0 and "--patience N, with a larger N" in again.stdout
    proc = call("train", "--resume", run, "--patience", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "early stop" in proc.stdout and "best epoch 4" in proc.stdout
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3, 4, 5, 6, 7]


def test_ctrl_c_during_training_says_how_to_continue(tmp_path, monkeypatch):
    run = tmp_path / "run"

    def interrupt(line):
        if line.startswith("epoch   2"):
            raise KeyboardInterrupt

    monkeypatch.setattr(ardens.cli, "_log", interrupt)
    proc = call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "5", *TINY)
    assert proc.returncode == 130
    assert f"continue with: ardens train --resume {run}" in proc.stderr and "Traceback" not in proc.stderr
    assert (run / "learning_curve.png").is_file() and not (run / ardens.train.LOCK).exists()
    monkeypatch.undo()
    assert call("train", "--resume", run, "--quiet").returncode == 0


def test_ctrl_c_before_the_first_epoch_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ardens.train, "_minibatch_epoch", interrupt)
    run = tmp_path / "run"
    proc = call("train", "--model", "nade", "--data", "digits", "--out", run, "--epochs", "5", *TINY)
    assert proc.returncode == 130 and "nothing to resume" in proc.stderr
    assert not run.exists()
    monkeypatch.setattr(ardens.demo, "fit", interrupt)
    demo = tmp_path / "demo"
    assert call("demo", "--out", demo, "--epochs", "1", "--quiet").returncode == 130
    assert not demo.exists()
    demo.mkdir()  # an empty folder the user made stays, and stays empty
    assert call("demo", "--out", demo, "--epochs", "1", "--quiet").returncode == 130
    assert demo.is_dir() and not any(demo.iterdir())


def test_small_messages(tmp_path, short_run):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_user_error(
        call("train", "--model", "nade", "--data", "digits", "--out", afile, *TINY), "is a file, not a directory"
    )
    args = ("train", "--model", "nade", "--data", "digits", "--out", tmp_path / "n", "--num-masks", "4", *TINY)
    assert_user_error(call(*args), "--num-masks: only for --model made or deepnade")
    assert isinstance(ardens.load(short_run), ardens.NADE)
    assert ardens.read_metadata(short_run)["data"] == "digits"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="run directory without best.safetensors"):
        ardens.load(tmp_path / "empty")
    gitignore = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert "ardens-demo/" in gitignore
