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
import math
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
from .heads import parse_column
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
    if not isinstance(config, dict):
        raise ValueError(f"model config for {name}: expected a JSON object; got {type(config).__name__}")
    if _has_real_column(config) and "input_margin" not in config:
        # written before inputs were clipped (the key is always written for real columns since):
        # such a model saw its inputs unclipped and holds no input-range buffers
        config = {**config, "input_margin": None}
    try:
        return MODEL_CLASSES[name](**config)
    except ValueError as err:
        raise ValueError(f"model config for {name}: {err}") from None
    except (TypeError, RuntimeError, OverflowError, IndexError, KeyError, AttributeError) as err:
        text = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"model config for {name}: {text}") from None


def _has_real_column(config: dict[str, Any]) -> bool:
    columns = config.get("columns")
    if isinstance(columns, str):
        columns = [columns]
    if not isinstance(columns, list):
        return False
    try:
        return any(parse_column(c).kind == "real" for c in columns)
    except (ValueError, TypeError):  # the constructor reports a bad spec
        return False


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


MAX_HEADER = 100_000_000
_DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_SIZED_KEYS = ("n_inputs", "hidden", "num_masks", "num_orderings", "context_features")


def _not_ardens(path: Path, why: str) -> ValueError:
    return ValueError(f"{path}: not an ardens model file (safetensors with an 'ardens' header): {why}")


def _resolve(path: str | os.PathLike) -> Path:
    """``path``, or a run directory's ``best.safetensors``."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.safetensors"
        if not best.is_file():
            raise ValueError(f"{path}: a run directory without best.safetensors (no validated epoch yet?)")
        return best
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    return path


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header of ``path``, checked before anything is allocated: a length
    within the file (and at most ``MAX_HEADER`` bytes), valid JSON, and tensors whose dtypes,
    shapes and byte ranges agree with each other and lie inside the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _not_ardens(path, f"{size} bytes, too short")
            n = int.from_bytes(head, "little")
            if not 0 < n <= min(MAX_HEADER, size - 8):
                raise _not_ardens(path, f"header length {n} does not fit a file of {size} bytes")
            raw = f.read(n)
    except OSError as err:
        raise ValueError(f"{path}: unreadable ({err.strerror or err})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _not_ardens(path, "header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_ardens(path, "header is not a JSON object")
    data_size = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _not_ardens(path, "__metadata__ is not a map of strings")
            continue
        ok = isinstance(entry, dict) and entry.get("dtype") in _DTYPE_SIZES
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(type(d) is int and 0 <= d <= data_size for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
        if ok:
            begin, end = offsets
            ok = 0 <= begin <= end <= data_size and end - begin == math.prod(shape) * _DTYPE_SIZES[entry["dtype"]]
        if not ok:
            raise _not_ardens(path, f"tensor {str(name)[:60]!r}: bad dtype, shape or offsets")
    return header


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header ``save`` wrote (class, config, and any extra), without the tensors.
    ``path`` may be a run directory (its ``best.safetensors``)."""
    path = _resolve(path)
    header = _read_header(path)
    try:
        meta = json.loads(header["__metadata__"]["ardens"])
    except (KeyError, TypeError):
        raise _not_ardens(path, "no 'ardens' metadata") from None
    except (ValueError, RecursionError):
        raise _not_ardens(path, "its 'ardens' metadata is not JSON") from None
    if not isinstance(meta, dict):
        raise _not_ardens(path, "its 'ardens' metadata is not a JSON object")
    return meta


def _check_config(path: Path, meta: dict[str, Any], header: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name, config = meta.get("class"), meta.get("config", {})
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise ValueError(f"{path}: model class: expected one of {sorted(MODEL_CLASSES)}; got {str(name)[:60]!r}")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: model config is not a JSON object")
    weights = sum(math.prod(e["shape"]) for k, e in header.items() if k != "__metadata__")
    for key in _SIZED_KEYS:  # no model has a size beyond its number of stored values: no huge allocation
        value = config.get(key)
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, int) and v > max(weights, 1) for v in values):
            raise ValueError(f"{path}: model config {key}={str(value)[:60]} does not fit the {weights} stored values")
    return name, config


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> AutoregressiveModel:
    """Read a model written by :func:`save` (``path`` a file, or a run directory: its
    ``best.safetensors``). Any file that is not one (truncated, a hostile header, a config
    the weights do not fit) is a one-line ``ValueError``; nothing is executed or unpickled."""
    path = _resolve(path)
    header = _read_header(path)
    meta = read_metadata(path)
    name, config = _check_config(path, meta, header)
    try:  # first on the meta device: shapes only, nothing allocated
        with torch.device("meta"):
            shell = model_from_config(name, config)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a constructor fed a hostile config (RuntimeError, OverflowError, ...)
        raise ValueError(f"{path}: model config for {name}: {_first_line(err)}") from None
    expected = {k: list(v.shape) for k, v in shell.state_dict().items()}
    stored = {k: e["shape"] for k, e in header.items() if k != "__metadata__"}
    if expected != stored:
        diff = sorted(set(expected) ^ set(stored)) or [k for k in expected if expected[k] != stored[k]]
        what = diff[0]
        raise ValueError(
            f"{path}: weights do not fit the config ({what}: config {expected.get(what)}, file {stored.get(what)})"
        )
    try:
        model = model_from_config(name, config)
        tensors = load_file(str(path), device="cpu")
        floats = {v.dtype for v in tensors.values() if v.is_floating_point()}
        if len(floats) == 1 and (dtype := floats.pop()) in (torch.float16, torch.bfloat16, torch.float64):
            model = model.to(dtype)
        model.load_state_dict(tensors, strict=True)
        model = model.to(map_location)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: unreadable weights ({_first_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - RuntimeError (sizes), TypeError, ... : one line, never a traceback
        raise ValueError(f"{path}: weights do not fit the config ({_first_line(err)})") from None
    return model.eval()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
