"""Saving and loading models: one safetensors file, its JSON config in the header.

The file holds the tensors (weights, and MADE's degrees) and, in the safetensors
metadata, ``{"ardens": {"class": ..., "config": {...}, ...}}`` as JSON. Nothing is
ever unpickled. Writes are atomic: a temporary file in the same folder, then a rename.

>>> import tempfile, os, torch, ardens
>>> model = ardens.NADE(n_inputs=4, hidden=3)
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "nade.safetensors")
>>> ardens.save(model, path)
>>> again = ardens.load(path)
>>> torch.equal(again.log_prob(torch.ones(1, 4)), model.log_prob(torch.ones(1, 4)))
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .base import AutoregressiveModel
from .deepnade import DeepNADE
from .made import MADE
from .nade import NADE

__all__ = [
    "save",
    "load",
    "read_metadata",
    "MODEL_CLASSES",
    "model_from_config",
    "atomic_save_file",
    "atomic_write",
    "atomic_write_text",
]

MODEL_CLASSES: dict[str, type[AutoregressiveModel]] = {"NADE": NADE, "MADE": MADE, "DeepNADE": DeepNADE}
FORMAT_VERSION = 1


def model_from_config(name: str, config: dict[str, Any]) -> AutoregressiveModel:
    """Build an (untrained) model of class ``name`` from its config."""
    if name not in MODEL_CLASSES:
        raise ValueError(f"model class: expected one of {sorted(MODEL_CLASSES)}; got {name!r}")
    try:
        return MODEL_CLASSES[name](**config)
    except TypeError as err:
        raise ValueError(f"model config for {name}: {err}") from None


def save(model: AutoregressiveModel, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    """Write ``model`` to ``path`` (a ``.safetensors`` file), atomically.

    ``extra`` (JSON-serializable) is stored beside the config, e.g. training metrics.
    """
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ValueError(f"model: expected one of {sorted(MODEL_CLASSES)}; got {name}")
    header = {"format": FORMAT_VERSION, "class": name, "config": model.config(), **(extra or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_save_file(tensors, path, {"ardens": json.dumps(header)})


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to ``path``:
    ``path`` holds either its old content or the new one, never a partial file. The file gets
    the permissions an ordinary write would give it: those of the file it replaces, else
    ``0o666`` less the umask (``mkstemp`` alone would leave it readable by its owner only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path``, atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header ``save`` wrote (class, config, and any extra), without the tensors."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= 100_000_000:
                raise ValueError
            header = json.loads(f.read(size))
        return json.loads(header["__metadata__"]["ardens"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"{path}: not an ardens model file (safetensors with an 'ardens' header)") from None


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AutoregressiveModel:
    """Read a model written by :func:`save`."""
    meta = read_metadata(path)
    model = model_from_config(meta.get("class", "?"), meta.get("config", {}))
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: unreadable weights ({err})") from None
    floats = {v.dtype for v in tensors.values() if v.is_floating_point()}
    if len(floats) == 1:
        model = model.to(floats.pop())
    model = model.to(map_location)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not fit the config ({first})") from None
    return model.eval()
