"""Data-parallel training on torch.distributed (gloo on the CPU): two ranks under DDP reach the
weights of one process on the same global batches, only rank 0 writes, the ranks agree on the
validation NLL, L-BFGS is refused, and ``ardens train --nproc 2`` runs end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

import ardens
from ardens import distributed
from ardens.cli import main
from ardens.data import Dataset, load_digits
from ardens.train import ModelConfig, TrainConfig, build_model, fit

DIGITS = load_digits()
# 193 training rows in batches of 48: a last batch of one row, which leaves rank 1 without a row
DATA = Dataset("digits", DIGITS.train[:193], DIGITS.valid[:61], DIGITS.test[:50], (8, 8))
# SGD with momentum: the update is linear in the gradient, so the replicas' weights differ from one
# process's by the round-off of the gradient sums alone (Adam divides by sqrt(v): on a gradient that is
# a near-cancelling sum, the order of summation flips its tiny value and Adam scales that up to lr)
CONFIG = TrainConfig(epochs=3, batch_size=48, optimizer="sgd", lr=0.05)
MODELS = {"nade": ("nade", ModelConfig(hidden=[8])), "made2": ("made", ModelConfig(hidden=[16], num_masks=2))}


def _model(name: str):
    kind, config = MODELS[name]
    torch.manual_seed(0)
    return build_model(kind, DATA.dim, config)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: list[tuple[str, str]], out: str) -> None:
    """One rank: ``fit`` each (model, bug) of ``jobs``; its weights and validation NLLs to ``out``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from ardens import train

    try:
        for name, bug in jobs:
            saved = train._loss_scale, train._wrap
            if bug == "scale":  # the mean of the global batch without the factor W: gradients W times too small
                train._loss_scale = lambda world, rows: 1.0 / rows
            elif bug == "module":  # the bare module: no gradient all-reduce, each rank trains on its share alone
                train._wrap = lambda model: model
            run_dir = Path(out) / f"{name}-{bug}-run{rank}" if bug == "none" else None
            model = _model(name)
            try:
                result = fit(model, DATA, CONFIG, run_dir, progress=False)
            finally:
                train._loss_scale, train._wrap = saved
            tag = f"{name}-{bug}-rank{rank}"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / f"{tag}.safetensors"))
            history = {
                "valid": [r["valid_nll"] for r in result.history],
                "train": [r["train_nll"] for r in result.history],
            }
            (Path(out) / f"{tag}.json").write_text(json.dumps(history))
        try:
            fit(_model("nade"), DATA, TrainConfig(epochs=1, optimizer="lbfgs"), None, progress=False)
            refusal = ""
        except ValueError as err:
            refusal = str(err)
        (Path(out) / f"lbfgs-rank{rank}.txt").write_text(refusal)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """One 2-rank gloo run of every job (a spawn costs seconds): the correct NADE and 2-mask MADE,
    and the MADE with either of two classic bugs."""
    out = tmp_path_factory.mktemp("ddp")
    jobs = [("nade", "none"), ("made2", "none"), ("made2", "scale"), ("made2", "module")]
    mp.spawn(_worker, args=(2, _free_port(), jobs, str(out)), nprocs=2, join=True)
    return out


@pytest.fixture(scope="module")
def one_process() -> dict[str, dict]:
    """The same fits in this one process (the reference): weights and histories."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        refs = {}
        for name in MODELS:
            model = _model(name)
            result = fit(model, DATA, CONFIG, None, progress=False)
            refs[name] = {"weights": model.state_dict(), "valid": [r["valid_nll"] for r in result.history]}
        return refs
    finally:
        torch.set_num_threads(threads)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.parametrize("name", ["nade", "made2"])
def test_two_ranks_reach_the_one_process_weights(two_ranks, one_process, name):
    ref = one_process[name]
    rank0 = load_file(str(two_ranks / f"{name}-none-rank0.safetensors"))
    rank1 = load_file(str(two_ranks / f"{name}-none-rank1.safetensors"))
    assert _max_diff(rank0, rank1) == 0.0  # DDP keeps the replicas identical
    moved = _max_diff(ref["weights"], _model(name).state_dict())
    assert moved > 1e-2  # training moved the weights: the comparison below is not vacuous
    assert _max_diff(rank0, ref["weights"]) < 1e-5
    valid = json.loads((two_ranks / f"{name}-none-rank0.json").read_text())["valid"]
    assert valid == pytest.approx(ref["valid"], abs=1e-5)


@pytest.mark.parametrize("bug", ["scale", "module"])
def test_the_comparison_catches_a_wrong_loss_scale_or_an_unsynchronized_module(two_ranks, one_process, bug):
    rank0 = load_file(str(two_ranks / f"made2-{bug}-rank0.safetensors"))
    assert _max_diff(rank0, one_process["made2"]["weights"]) > 1e-3  # a hundred times the tolerance above


def test_only_rank_0_writes_and_the_ranks_agree_on_validation(two_ranks):
    for name in MODELS:
        files = {p.name for p in (two_ranks / f"{name}-none-run0").iterdir()}
        assert {"best.safetensors", "resume.safetensors", "metrics.jsonl"} <= files
        assert not (two_ranks / f"{name}-none-run1").exists()
        h0, h1 = (json.loads((two_ranks / f"{name}-none-rank{r}.json").read_text()) for r in (0, 1))
        assert h0 == h1 and len(h0["valid"]) == CONFIG.epochs  # the same NLLs, to the last bit
        logged = [json.loads(line)["valid_nll"] for line in (two_ranks / f"{name}-none-run0" / "metrics.jsonl").open()]
        assert logged == h0["valid"]


def test_lbfgs_is_refused_on_every_rank_in_one_line(two_ranks):
    for rank in (0, 1):
        text = (two_ranks / f"lbfgs-rank{rank}.txt").read_text()
        assert "lbfgs" in text and "2 ranks" in text and "\n" not in text


def test_helpers_in_one_process():
    assert (distributed.world_size(), distributed.rank(), distributed.is_distributed()) == (1, 0, False)
    assert distributed.all_reduce_sums([1.5, 2]) == [1.5, 2.0]
    shards = [distributed.shard(10, r, 3) for r in range(3)]
    assert shards == [(0, 4), (4, 7), (7, 10)]
    seeds = {distributed.rank_seed(0, r, e) for r in range(4) for e in range(4)}
    assert len(seeds) == 16 and distributed.rank_seed(3, 1, 2) == distributed.rank_seed(3, 1, 2)
    assert distributed.threads_per_rank(10**6) == 1


def _cli(*args: str, cwd: Path, torchrun: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARDENS_DATA": "", "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"] if torchrun else []
    return subprocess.run(
        [sys.executable, *launcher, "-m", "ardens", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_train_nproc_2_end_to_end_resume_and_sharded_evaluation(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    x = (rng.random((150, 7)) < 0.4).astype(np.uint8)
    np.savetxt(tmp_path / "t.csv", x, fmt="%d", delimiter=",")
    tiny = ["--model", "made", "--num-masks", "2", "--dropout", "0.2", "--hidden", "6", "--batch-size", "25"]
    tiny += ["--data", "t.csv", "--quiet", "--threads", "1"]
    proc = _cli("train", "--nproc", "2", "--out", "run", "--epochs", "2", *tiny, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("epoch   2") == 1 and "2 ranks (DDP)" in proc.stdout  # rank 0 alone reports
    proc = _cli("train", "--nproc", "2", "--resume", "run", "--epochs", "3", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # the interrupted and resumed run is the uninterrupted one (per-rank dropout streams included)
    proc = _cli("train", "--nproc", "2", "--out", "full", "--epochs", "3", *tiny, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    resumed, full = (load_file(str(tmp_path / d / "resume.safetensors")) for d in ("run", "full"))
    assert all(torch.equal(resumed[k], full[k]) for k in full if k.startswith("model."))
    best = min(rows, key=lambda r: r["valid_nll"])
    assert ardens.read_metadata(tmp_path / "run" / "best.safetensors")["epoch"] == best["epoch"]
    # the best checkpoint loads and evaluates, in one process and sharded on two ranks
    evaluate = ["evaluate", "run", "--data", "t.csv", "--split", "valid", "--json"]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(evaluate) == 0
    a = json.loads(capsys.readouterr().out)
    two = _cli(*evaluate, cwd=tmp_path, torchrun=True)
    assert two.returncode == 0, two.stderr
    b = json.loads(two.stdout)  # one JSON line: rank 0 alone prints
    assert a["n_examples"] == b["n_examples"] > 1 and a["masks"] == b["masks"] == 2
    for key in ("nll", "stderr", "single_mask_nll", "single_mask_stderr", "median_log_likelihood"):
        assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-12), key
    assert b["worst_log_likelihood"] == a["worst_log_likelihood"]
    assert a["nll"] == pytest.approx(best["valid_nll"], rel=1e-5)


def test_train_nproc_refuses_lbfgs_and_a_used_run_dir_in_one_line(tmp_path, capsys):
    args = ["train", "--nproc", "2", "--model", "nade", "--data", "digits", "--hidden", "4"]
    assert main([*args, "--out", str(tmp_path / "a"), "--optimizer", "lbfgs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lbfgs" in err and "--nproc 2" in err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("")
    assert main([*args, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err
