"""kill -9 at any point of training, then ``--resume``: the run ends bit-identical to an
uninterrupted one (CPU, fixed seed). A real SIGKILL of a training subprocess, at several
points: during the first epoch, between epochs, and while a checkpoint is being written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

EPOCHS = 8
# a MADE with dropout (the global RNG is part of the state) and two masks (the step counter is)
ARGS = ["--model", "made", "--hidden", "48", "48", "--num-masks", "2", "--dropout", "0.2", "--batch-size", "20"]


def write_data(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 6)) @ rng.normal(size=(6, 6))
    path.write_text("\n".join(",".join(f"{v:.5f}" for v in row) for row in x) + "\n")
    return path


def command(data: Path, out: Path, resume: bool = False) -> list[str]:
    base = [sys.executable, "-m", "ardens", "train"]
    if resume:
        return [*base, "--resume", str(out), "--threads", "1", "--quiet"]
    tail = ["--epochs", str(EPOCHS), "--patience", "100", "--seed", "3", "--threads", "1", "--quiet"]
    return [*base, *ARGS, "--data", str(data), "--out", str(out), *tail]


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def killed_run(cmd: list[str], out: Path, ready) -> str:
    """Start ``cmd``, SIGKILL it as soon as ``ready(out)`` holds (polled every millisecond);
    returns what was seen at the kill."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    seen = ""
    while proc.poll() is None and time.monotonic() < deadline:
        seen = ready(out)
        if seen:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill point ({proc.returncode})"
    return seen


def epochs_done(out: Path) -> int:
    metrics = out / "metrics.jsonl"
    try:
        return len(metrics.read_text().splitlines())
    except OSError:
        return 0


def weights(out: Path, name: str) -> dict:
    return load_file(str(out / name))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("kill")
    data = write_data(folder / "t.csv")
    run(command(data, folder / "whole"))
    return data, folder / "whole"


def in_first_epoch(out: Path) -> str:
    return "first epoch" if (out / "resume.safetensors").is_file() and epochs_done(out) == 0 else ""


def between_epochs(out: Path) -> str:
    return "after epoch 3" if epochs_done(out) >= 3 else ""


def during_a_write(out: Path) -> str:
    """A checkpoint's temporary file exists (atomic_write has not renamed it yet)."""
    if not out.is_dir() or epochs_done(out) < 2:
        return ""
    temps = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    return f"writing {temps[0]}" if temps else ""


@pytest.mark.parametrize("point", [in_first_epoch, between_epochs, during_a_write], ids=lambda f: f.__name__)
def test_sigkill_then_resume_ends_bit_identical(reference, tmp_path, point):
    data, whole = reference
    out = tmp_path / "run"
    seen = killed_run(command(data, out), out, point)
    assert seen, "the kill point was never reached"
    run(command(data, out, resume=True))
    for name in ("best.safetensors", "resume.safetensors"):
        a, b = weights(whole, name), weights(out, name)
        assert a.keys() == b.keys(), name
        for key in a:
            assert (a[key] == b[key]).all(), f"{seen}: {name} {key} differs"
    lines = [line.split('"seconds"')[0] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines == [line.split('"seconds"')[0] for line in (whole / "metrics.jsonl").read_text().splitlines()]
