"""Every committed row config of benchmarks/reproduce.py is one the library accepts.

A typo in a config (an unknown key, a model option the model refuses) would otherwise only
show after hours of training the rows before it. Models are built with their hidden layers
shrunk to at most 8 units: the options are checked, not the 76 M weights."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ardens.data import NAMED_SETS
from ardens.train import ModelConfig, TrainConfig, build_model, read_metrics
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "benchmarks" / "configs").glob("*/*.json") if p.parent.name != "real")
REAL_CONFIGS = sorted((ROOT / "benchmarks" / "configs" / "real").glob("*.json"))
NEURAL = ("nade", "made", "deepnade")


reproduce = load_benchmark("reproduce")
real = load_benchmark("real")  # imports benchmarks/peers.py, whose peers (zuko, nflows) load only when fitted


def test_there_are_configs_for_every_table():
    assert {p.parent.name for p in CONFIGS} == {"caltech", "categorical", "mnist", "uci"}
    assert REAL_CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_row_config_is_accepted(path):
    config = json.loads(path.read_text())
    assert config["dataset"] in NAMED_SETS, f"{path.name}: unknown dataset {config['dataset']!r}"
    assert isinstance(config["row"], str) and config["row"]
    if config["kind"] not in NEURAL:
        assert config["kind"] in ("bernoulli", "mob")
        if config["kind"] == "mob":
            assert config["grid"]["k"] and all(k >= 1 for k in config["grid"]["k"])
        return
    points = reproduce.grid_points(config)
    assert points, f"{path.name}: no candidates"
    ids = [reproduce.point_id(p) for p in points]
    assert len(set(ids)) == len(ids), f"{path.name}: two candidates share a run directory: {ids}"
    dim = NAMED_SETS[config["dataset"]].shapes["train"][1]
    for point in points:
        TrainConfig(**point.get("train", {}))  # rejects unknown keys, validates every value
        model = dict(point.get("model", {}))
        if "hidden" in model:
            model["hidden"] = [min(h, 8) for h in model["hidden"]]
        built = build_model(point["kind"], dim, ModelConfig(**model))  # rejects unknown keys
        assert built.n_inputs == dim


class _TestSplitGuard:
    """A dataset whose test split must not be read."""

    def __init__(self, data):
        self._data = data

    def __getattr__(self, name):
        if name == "test":
            raise AssertionError("the test split was read")
        return getattr(self._data, name)


def _tiny_row(tmp_path, monkeypatch, epochs: int, wrap=lambda data: data):
    """A two-candidate MADE row on 200 digits, its runs and results under ``tmp_path``; the
    data as ``wrap`` returns it. Returns the config file."""
    from ardens.data import load_digits

    digits = load_digits()
    small = type(digits)("digits", digits.train[:200], digits.valid[:100], digits.test[:100], (8, 8))
    monkeypatch.setattr(reproduce, "load_dataset", lambda *a, **k: wrap(small))
    monkeypatch.setattr(reproduce, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(reproduce, "RESULTS", tmp_path / "results")
    config = {
        "dataset": "digits",
        "row": "tiny MADE",
        "kind": "made",
        "model": {"hidden": [8]},
        "train": {"epochs": epochs, "batch_size": 100},
        "points": [{"train.lr": 0.01}, {"train.lr": 0.001}],
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_validation_only_trains_every_point_and_never_reads_the_test_split(tmp_path, monkeypatch, capsys):
    path = _tiny_row(tmp_path, monkeypatch, epochs=2, wrap=_TestSplitGuard)
    assert reproduce.run_row("t", path, None, test=False) is None
    runs = sorted((tmp_path / "runs" / "t" / "tiny").iterdir())
    assert [r.name.split("-")[0] for r in runs] == ["lr=0.001", "lr=0.01"]
    assert all((r / "best.safetensors").is_file() for r in runs)
    assert not (tmp_path / "results").exists()
    assert "validation only, would choose" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="test split was read"):  # the guard can fail
        reproduce.run_row("t", path, None, test=True)


def test_a_committed_resume_state_continues_the_run_exactly(tmp_path, monkeypatch):
    """Train 2 epochs, commit the resume state, lose the run directory, go on to 4 epochs from
    the committed state: the weights equal those of an uninterrupted 4-epoch run."""
    from safetensors.torch import load_file

    path = _tiny_row(tmp_path, monkeypatch, epochs=2)
    monkeypatch.setattr(reproduce, "RESUME_STATES", tmp_path / "resume")
    reproduce.run_row("t", path, None, test=False)
    runs = sorted((tmp_path / "runs" / "t" / "tiny").iterdir())
    for run in runs:
        committed = reproduce.commit_resume(run)
        assert sorted(p.name for p in committed.iterdir()) == sorted(reproduce.RESUME_FILES)
    shutil.rmtree(tmp_path / "runs")
    config = json.loads(path.read_text())
    config["train"]["epochs"] = 4
    path.write_text(json.dumps(config))
    real_fit = reproduce.fit

    def no_fresh_run(*args, **kwargs):
        raise AssertionError("trained from scratch instead of resuming the committed state")

    monkeypatch.setattr(reproduce, "fit", no_fresh_run)
    reproduce.run_row("t", path, None, test=False)  # starts from the committed states
    monkeypatch.setattr(reproduce, "fit", real_fit)
    monkeypatch.setattr(reproduce, "RUNS", tmp_path / "straight")
    monkeypatch.setattr(reproduce, "RESUME_STATES", tmp_path / "none")
    reproduce.run_row("t", path, None, test=False)
    for run in runs:
        straight = tmp_path / "straight" / "t" / "tiny" / run.name
        assert len(read_metrics(run)) == 4
        a, b = load_file(str(run / "resume.safetensors")), load_file(str(straight / "resume.safetensors"))
        assert sorted(a) == sorted(b)
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_device_reaches_training_and_evaluation_and_is_not_part_of_a_run(tmp_path, monkeypatch):
    path = _tiny_row(tmp_path, monkeypatch, epochs=1)
    seen = {"fit": [], "resume": [], "load": []}
    real_fit, real_resume, real_load = reproduce.fit, reproduce.resume, reproduce.ardens.load

    def fit(model, data, config, *args, **kwargs):
        seen["fit"].append(config.device)
        return real_fit(model, data, config, *args, **kwargs)

    def resume(run_dir, data, **kwargs):
        seen["resume"].append(kwargs.get("device"))
        return real_resume(run_dir, data, **kwargs)

    def load(path, map_location="cpu"):
        seen["load"].append(str(map_location))
        return real_load(path, map_location=map_location)

    monkeypatch.setattr(reproduce, "fit", fit)
    monkeypatch.setattr(reproduce, "resume", resume)
    monkeypatch.setattr(reproduce.ardens, "load", load)
    reproduce.run_row("t", path, None, test=False, device="cpu")
    runs = sorted(p.name for p in (tmp_path / "runs" / "t" / "tiny").iterdir())
    assert seen["fit"] == ["cpu", "cpu"] and seen["load"] == ["cpu", "cpu"]
    with pytest.raises(ValueError, match="device"):  # an unknown device is refused, not ignored
        reproduce.run_row("t", path, None, test=False, device="no-such-device")
    reproduce.run_row("t", path, None, test=False)  # no device given: the same runs, resumed
    assert sorted(p.name for p in (tmp_path / "runs" / "t" / "tiny").iterdir()) == runs
    assert seen["fit"] == ["cpu", "cpu"] and seen["resume"][-2:] == [None, None]
    reproduce.run_row("t", path, None, test=False, device="cpu")  # given: it reaches the resumed runs
    assert seen["resume"][-2:] == ["cpu", "cpu"] and seen["load"][-2:] == ["cpu", "cpu"]


@pytest.mark.parametrize("path", REAL_CONFIGS, ids=lambda p: f"real/{p.stem}")
def test_real_row_config_is_accepted(path):
    config = json.loads(path.read_text())
    assert isinstance(config["row"], str) and config["row"] and "dataset" not in config  # every set runs every row
    if config["kind"] == "peer":
        assert config["peer"] in real.peers.PEERS
        assert config["points"] and all(isinstance(p, dict) for p in config["points"])
        assert set(config.get("train", {})) <= {"lr", "batch_size", "epochs", "patience", "seed"}
        return
    assert config["kind"] in NEURAL
    for point in reproduce.grid_points(config):
        TrainConfig(**point.get("train", {}))
        model = dict(point.get("model", {}))
        model["hidden"] = [min(h, 8) for h in model.get("hidden", [8])]
        assert build_model(point["kind"], 15, ModelConfig(**model), columns=["real:10"] * 15).n_inputs == 15


class _CountingSplits:
    """A real-valued dataset that counts reads of its test split."""

    def __init__(self, data, reads):
        self._data, self._reads = data, reads

    def __getattr__(self, name):
        if name == "test":
            self._reads.append(1)
        return getattr(self._data, name)


def test_real_benchmark_chooses_on_validation_and_reads_each_test_chunk_once(tmp_path, monkeypatch):
    from ardens.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(260, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]]) + [10.0, -3.0]
    small = Dataset("red_wine", x[:160], x[160:210], x[210:], columns=("real:3", "real:3"), fold=1)
    reads: list[int] = []
    monkeypatch.setattr(real, "load_dataset", lambda *a, **k: _CountingSplits(small, reads))
    for name in ("RUNS", "RESULTS", "PRETRAINED"):
        monkeypatch.setattr(real, name, tmp_path / name.lower())
    monkeypatch.setattr(real, "CONFIGS", tmp_path / "configs")
    monkeypatch.setattr(real, "ROOT", tmp_path)
    rows = {
        "tiny": {"row": "tiny NADE", "kind": "nade", "model": {"hidden": [6]}, "train": {"epochs": 3},
                 "points": [{"train.lr": 0.03}, {"train.lr": 1e-6}]},
        "gauss": {"row": "Gaussian", "kind": "peer", "peer": "gaussian", "points": [{}]},
    }  # fmt: skip
    real.run(["red_wine"], rows, [1], None)
    assert len(reads) == 2  # one test read per row and fold
    record = json.loads((tmp_path / "results" / "real" / "red_wine" / "tiny.json").read_text())["folds"]["1"]
    assert record["valid_ll"] == max(record["candidates_valid_ll"].values())
    assert record["chosen"] == {"train.lr": 0.03}  # a learning rate of 1e-6 cannot leave the initial point
    arrays = np.load(tmp_path / "results" / "real" / "red_wine" / "tiny.npz", allow_pickle=False)
    assert arrays["original"].mean() == pytest.approx(record["test_ll"], abs=1e-12)
    np.testing.assert_allclose(arrays["standardized"] - arrays["original"], -record["log_jacobian"], atol=1e-12)
    assert record["log_jacobian"] == pytest.approx(-np.log(small.train.std(0)).sum())
    peer = json.loads((tmp_path / "results" / "real" / "red_wine" / "gauss.json").read_text())["folds"]["1"]
    g = np.load(tmp_path / "results" / "real" / "red_wine" / "gauss.npz", allow_pickle=False)
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(small.train.mean(0), np.cov(small.train, rowvar=False, ddof=0)).logpdf(small.test)
    np.testing.assert_allclose(g["original"], exact, atol=1e-9)  # original units: the data's own density
    assert peer["test_ll"] == pytest.approx(exact.mean(), abs=1e-9)
    real.run(["red_wine"], rows, [1], None)  # finished folds are kept, not run again
    assert len(reads) == 2


@pytest.mark.parametrize("points", [1, 2])
def test_finish_trains_no_further_and_tests_the_best_checkpoint(points, tmp_path, monkeypatch):
    """``--finish`` ends the runs where their resume states stand, even below the config's
    epochs; one point takes the validation figure training recorded, two are chosen as usual."""
    path = _tiny_row(tmp_path, monkeypatch, epochs=2)
    monkeypatch.setattr(reproduce, "PRETRAINED", tmp_path / "pretrained")
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    config = json.loads(path.read_text())
    config["points"] = config["points"][:points]
    config["train"].update(epochs=4, valid_every=3)  # 4 epochs run, validated at epoch 3 only
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="no resume state to finish"):
        reproduce.run_row("t", path, None, test=True, finish=True)
    reproduce.run_row("t", path, None, test=False)
    config["train"]["epochs"] = 9
    path.write_text(json.dumps(config))
    result = reproduce.run_row("t", path, None, test=True, finish=True)
    runs = sorted((tmp_path / "runs" / "t" / "tiny").iterdir())
    assert len(runs) == points and all(len(read_metrics(run)) == 4 for run in runs)
    assert result["epochs_run"] == 4 and result["finished"].startswith("by --finish at epoch 4")
    assert result["command"].endswith("--finish")
    recorded = min(r["valid_nll"] for r in read_metrics(runs[0]) if r["valid_nll"] is not None)
    if points == 1:
        assert result["valid_nll"] == pytest.approx(recorded) and result["valid_nll_members"] == 1
    else:
        assert result["valid_nll_members"] is None
    assert math.isfinite(result["test_nll"])
