"""Every committed row config of benchmarks/reproduce.py is one the library accepts.

A typo in a config (an unknown key, a model option the model refuses) would otherwise only
show after hours of training the rows before it. Models are built with their hidden layers
shrunk to at most 8 units: the options are checked, not the 76 M weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ardens.data import NAMED_SETS
from ardens.train import ModelConfig, TrainConfig, build_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "benchmarks" / "configs").glob("*/*.json"))
NEURAL = ("nade", "made", "deepnade")


def _reproduce():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _reproduce()


def test_there_are_configs_for_every_table():
    assert {p.parent.name for p in CONFIGS} == {"caltech", "categorical", "mnist", "uci"}


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
