"""save/load: identical log_prob after a round trip, no pickle, clear errors."""

from __future__ import annotations

import json
import os

import pytest
import torch

import ardens


@pytest.mark.parametrize(
    "model",
    [
        lambda: ardens.NADE(9, 5, activation="relu", ordering="random", seed=4),
        lambda: ardens.MADE(9, [12, 7], num_masks=3, ordering="random", direct=True, seed=2),
        lambda: ardens.MADE(9, [12], dropout=0.25).eval(),
        lambda: ardens.MADE(9, [], ordering=[8, 7, 6, 5, 4, 3, 2, 1, 0]),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_gives_identical_log_prob(tmp_path, model, dtype):
    model = model().to(dtype)
    x = torch.bernoulli(torch.full((50, 9), 0.4))
    path = tmp_path / "m.safetensors"
    ardens.save(model, path, extra={"note": "hello"})
    again = ardens.load(path)
    weight = again.W if isinstance(again, ardens.NADE) else again.layers[0].weight
    assert weight.dtype == dtype
    assert torch.equal(again.log_prob(x), model.log_prob(x))
    assert ardens.read_metadata(path)["note"] == "hello"
    assert ardens.read_metadata(path)["config"] == model.config()


def test_loaded_made_uses_saved_degrees(tmp_path):
    model = ardens.MADE(6, [10], num_masks=2, ordering="random", seed=1)
    path = tmp_path / "m.safetensors"
    ardens.save(model, path)
    again = ardens.load(path)
    assert torch.equal(again.degrees, model.degrees)
    for i in range(2):
        for a, b in zip(again.member_masks(i), model.member_masks(i)):
            assert torch.equal(a, b)


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not an ardens model file"):
        ardens.load(bad)
    with pytest.raises(ValueError, match="no such model file"):
        ardens.load(tmp_path / "missing.safetensors")


def test_config_that_does_not_fit_the_weights(tmp_path):
    path = tmp_path / "m.safetensors"
    ardens.save(ardens.NADE(5, 3), path)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    meta = json.loads(header["__metadata__"]["ardens"])
    meta["config"]["hidden"] = 4
    from safetensors.torch import load_file, save_file

    save_file(load_file(path), path, metadata={"ardens": json.dumps(meta)})
    with pytest.raises(ValueError, match="do not fit the config"):
        ardens.load(path)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    ardens.save(ardens.NADE(5, 3), path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ardens.serialization, "save_file", broken)
    with pytest.raises(OSError):
        ardens.save(ardens.NADE(5, 3), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    new = tmp_path / "new.txt"
    ardens.serialization.atomic_write_text(new, "a")
    assert new.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0o600
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    ardens.serialization.atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and kept.stat().st_mode & 0o777 == 0o640
