"""Training NADE and MADE by maximum likelihood, with early stopping, checkpoints and resume.

:func:`fit` trains a model on a :class:`~ardens.data.Dataset` with minibatch gradient
descent (or full-batch L-BFGS) on the average negative log-likelihood, evaluates the validation
NLL after every epoch (or every ``valid_every`` epochs), and writes into a run directory:

- ``best.safetensors``: the model with the lowest validation NLL so far, saved with
  :func:`ardens.save`; its header holds the training config, epoch, metrics, the data
  name and the image shape (``extra``).
- ``resume.safetensors``: everything needed to continue (weights, optimizer tensors,
  the shuffling generator's state as ``uint8`` tensors) plus a JSON header (epoch,
  step, best so far, patience counter, configs). No pickle anywhere.
- ``metrics.jsonl``: one JSON line per epoch (``epoch``, ``train_nll``, ``valid_nll``,
  ``seconds``, ``lr``; ``valid_nll`` is null between validations). ``train_nll`` is the mean
  of the epoch's minibatch losses (for L-BFGS, the NLL at its last evaluation).
- ``learning_curve.png``: drawn when training ends, is interrupted or diverges (and every
  30 s while it runs).
- ``.ardens.lock``: while a process trains in the directory, an ``fcntl.flock`` on it makes a
  second one (a new run with the same ``--out``, a ``--resume``) a one-line :class:`RunDirError`;
  removed when training ends, and a stale file (its process gone) never blocks.

A NaN or infinite training loss or validation NLL stops training with a one-line
``FloatingPointError`` naming the epoch; ``best.safetensors`` keeps the last good best epoch,
and the resume state records the divergence: :func:`resume` then refuses to repeat it and
continues only with a different ``lr``, from the best epoch's weights with a fresh optimizer.
A run interrupted (or failed) before its first epoch finished leaves no directory behind,
if :func:`fit` created it.

A K-mask MADE moves to the next member every minibatch (``mask = step % K``); a
:class:`~ardens.deepnade.DeepNADE` trains on its order-agnostic estimate (a random ordering
and position per example, drawn from the shuffling generator, so runs resume exactly). A
K-member ensemble's validation NLL is that of the ensemble of its first
``min(K, valid_masks)`` members (``TrainConfig.valid_masks``, by default ``VALID_MASKS =
8``). Output biases start at the logit of the training marginals clipped to ``[0.001,
0.999]`` (NADE's ``c``, MADE's and DeepNADE's last-layer bias): the model starts as the
independent-Bernoulli fit, a known good trick.

Data-parallel training (``torchrun ... -m ardens train``, or :func:`fit` in processes that have
initialized a ``torch.distributed`` process group of several ranks): the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` and every loss goes through the wrapper's
``forward``. Every rank draws the same shuffled global minibatches of ``batch_size`` rows from the
shared seed and takes every ``W``-th row of each; its loss (sum of its rows' losses times ``W /
rows in the batch``) makes DDP's gradient average the gradient of the global batch's mean loss,
so W ranks follow one process's trajectory up to float round-off. Per-row randomness (DeepNADE's
orderings, dropout) comes from streams seeded by (seed, rank, epoch). The validation rows are
sharded and the sums all-reduced: every rank sees the same validation NLL and takes the same
early-stopping, decay and divergence decisions. Only rank 0 writes the run directory (and holds
its lock); every rank reads the resume state. L-BFGS is refused with more than one rank. One
process (no process group) runs exactly as before. See :mod:`ardens.distributed`.

>>> import tempfile, ardens
>>> from ardens.data import load_digits
>>> data = load_digits()
>>> model = build_model("nade", data.dim, ModelConfig(hidden=[8]))
>>> tmp = tempfile.TemporaryDirectory()
>>> result = fit(model, data, TrainConfig(epochs=2, batch_size=100), tmp.name, progress=False)
>>> result.epochs_run, result.best_valid_nll < 40
(2, True)
>>> tmp.cleanup()
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tqdm import tqdm

from . import distributed
from ._denormals import flush_denormals
from ._heap import reuse_freed_blocks
from .base import AutoregressiveModel, context_kw, ensemble_size
from .data import Dataset, array_checksum
from .deepnade import DeepNADE
from .evaluate import log_likelihoods
from .heads import DEFAULT_INPUT_MARGIN
from .made import MADE
from .nade import NADE
from .serialization import atomic_save_file, atomic_write_text, model_from_config, save

__all__ = [
    "ModelConfig",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "fit",
    "resume",
    "init_output_bias",
    "resolve_device",
    "RunDirError",
    "VALID_MASKS",
    "run_lock",
    "check_new_run_dir",
    "check_not_busy",
    "check_context",
]

VALID_MASKS = 8
PLOT_EVERY_S = 30.0
OPTIMIZERS = ("adam", "sgd", "adagrad", "lbfgs")
BEST, RESUME, METRICS, CURVE = "best.safetensors", "resume.safetensors", "metrics.jsonl", "learning_curve.png"
LOCK = ".ardens.lock"


class RunDirError(ValueError):
    """A run directory that cannot be used (not empty for a new run, no resume state, a run
    that diverged, or one another process is training in)."""


def _is_empty(run_dir: Path) -> bool:
    """A missing directory, or one holding nothing but a (released) lock file."""
    return not run_dir.exists() or (run_dir.is_dir() and all(p.name == LOCK for p in run_dir.iterdir()))


def check_new_run_dir(run_dir: str | os.PathLike) -> None:
    """``run_dir`` can start a new run: missing or empty, not a file, not in use."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: is a file, not a directory; choose a new --out")
    check_not_busy(run_dir)
    if not _is_empty(run_dir):
        raise RunDirError(
            f"{run_dir}: exists and is not empty; choose a new --out or continue it with --resume {run_dir}"
        )


def check_not_busy(run_dir: str | os.PathLike) -> None:
    """A one-line :class:`RunDirError` if another process holds ``run_dir``'s lock."""
    run_dir = Path(run_dir)
    if (run_dir / LOCK).is_file():
        with run_lock(run_dir):
            pass


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``run_dir/.ardens.lock`` while training: a second
    process training in the same directory gets a one-line :class:`RunDirError`. The kernel
    releases the lock when its process ends, however it ends: a stale file never blocks."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX: no lock
        yield
        return
    path = Path(run_dir) / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise RunDirError(
                f"{run_dir}: another ardens process{who} is training in this run directory;"
                " wait for it to finish (or stop it), or choose another --out"
            ) from None
        try:  # the file we locked is still the one at ``path`` (not unlinked by a holder that just finished)
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        Path(path).unlink(missing_ok=True)  # while still locked: a waiting process sees a new file
        os.close(fd)  # releases the lock


@dataclass
class ModelConfig:
    """Architecture options shared by the CLI and Python callers.

    ``hidden``: one size for NADE, one per layer for MADE. ``None`` fields take the
    model's own defaults. ``num_masks`` (MADE's masks, DeepNADE's orderings); ``direct``
    is MADE's (see :class:`ardens.MADE`); ``dropout`` applies to every model's hidden units
    while training.
    """

    hidden: list[int] = field(default_factory=lambda: [500])
    activation: str | None = None
    ordering: str = "natural"
    num_masks: int = 1
    direct: bool = False
    seed: int = 0
    dropout: float = 0.0
    first_hidden: str = "bias"
    min_scale: float | None = None
    input_margin: float | None = DEFAULT_INPUT_MARGIN
    context_features: int = 0


@dataclass
class TrainConfig:
    """Optimization options. ``patience``: validations (by default one per epoch) without a
    better validation NLL before stopping.

    ``lr_decay < 1`` multiplies the learning rate by that factor after every
    ``decay_patience`` epochs without a better validation NLL (1 turns it off).
    ``valid_masks``: an ensemble (a K-mask MADE, a K-ordering DeepNADE) is validated, for
    early stopping, as the ensemble of its first ``min(K, valid_masks)`` members; more
    members track the full ensemble more closely and cost one evaluation each.

    ``optimizer="lbfgs"`` is full-batch L-BFGS with a strong-Wolfe line search, for
    one-member models: it minimizes the exact objective, mean training NLL plus
    ``weight_decay / 2`` times the squared norm of the parameters (the stationary point
    Adam's and SGD's coupled weight decay aim at), to its optimum where it is convex (an
    FVSBN). One epoch is ``lbfgs_iters`` iterations; ``lr`` is the initial step (use 1);
    ``batch_size`` only sets the chunks the full-batch gradient is summed over (memory).

    ``valid_every``: validate after every that many epochs, for models whose validation
    costs more than an epoch of training (a DeepNADE's exact likelihood); ``patience`` and
    ``decay_patience`` count validations, ``metrics.jsonl`` has ``valid_nll: null`` for the
    epochs in between, and epochs after the last validation are in the resume state, not in
    ``best.safetensors`` (so a raised epoch cap still continues a run exactly).

    ``decay_biases=False`` exempts the biases (one-dimensional parameters) from weight
    decay: a penalty on them pulls every output towards probability 1/2, costly on sparse
    data whose marginals are far from it.
    """

    epochs: int = 100
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    patience: int = 10
    seed: int = 0
    device: str = "cpu"
    lr_decay: float = 1.0
    decay_patience: int = 5
    valid_masks: int = VALID_MASKS
    lbfgs_iters: int = 20
    decay_biases: bool = True
    valid_every: int = 1

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "patience", "decay_patience", "valid_masks", "lbfgs_iters", "valid_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer; got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.valid_every > self.epochs:
            raise ValueError(
                f"valid_every: {self.valid_every} is more than epochs ({self.epochs}); nothing would be validated"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive number; got {self.lr!r}")
        if not (math.isfinite(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum: expected a number in [0, 1); got {self.momentum!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a non-negative number; got {self.weight_decay!r}")
        if not (math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay: expected a number in (0, 1]; got {self.lr_decay!r}")


@dataclass
class TrainResult:
    """What :func:`fit` did: epochs run in total, the best epoch and validation NLL, where."""

    epochs_run: int
    best_epoch: int
    best_valid_nll: float
    stopped_early: bool
    run_dir: Path | None
    seconds: float
    history: list[dict[str, float]]


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (an error if unavailable), ``"auto"`` (CUDA if available), or any torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: expected cpu, cuda or auto; got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch sees no CUDA device (use --device cpu or auto)")
    if device.type not in ("cpu", "cuda"):
        try:  # a device torch names but cannot use here (mps, xla, vulkan without support; meta holds no data)
            if device.type == "meta":
                raise RuntimeError
            torch.zeros(1, device=device) + 1
        except (RuntimeError, TypeError, AssertionError):
            raise ValueError(f"device: {name!r} is not usable here; use cpu, cuda or auto") from None
    return device


def build_model(kind: str, n_inputs: int, config: ModelConfig, columns: list[str] | None = None) -> AutoregressiveModel:
    """A fresh NADE, MADE or DeepNADE for ``n_inputs`` columns (all binary, or of the types
    ``columns``; parameters from torch's global RNG). For DeepNADE, ``num_masks`` is the
    number of orderings in the ensemble."""
    extra: dict[str, Any] = {} if config.activation is None else {"activation": config.activation}
    if config.context_features:
        extra["context_features"] = int(config.context_features)
    if columns is not None and any(c != "binary" for c in columns):
        extra["columns"] = list(columns)
        if config.min_scale is not None:
            extra["min_scale"] = config.min_scale
        extra["input_margin"] = config.input_margin
    if config.first_hidden != "bias":
        if kind != "nade":
            raise ValueError("first_hidden: only for NADE")
        extra["first_hidden"] = config.first_hidden
    if kind == "nade":
        if len(config.hidden) != 1:
            raise ValueError(f"hidden: NADE has one hidden layer; got sizes {config.hidden}")
        if config.num_masks != 1 or config.direct:
            raise ValueError("num_masks/direct: only for MADE")
        if config.dropout:
            extra["dropout"] = config.dropout
        return NADE(n_inputs, hidden=config.hidden[0], ordering=config.ordering, seed=config.seed, **extra)
    if kind == "made":
        return MADE(
            n_inputs,
            hidden=config.hidden,
            num_masks=config.num_masks,
            ordering=config.ordering,
            direct=config.direct,
            seed=config.seed,
            dropout=config.dropout,
            **extra,
        )
    if kind == "deepnade":
        if config.direct:
            raise ValueError("direct: only for MADE")
        if config.dropout:
            extra["dropout"] = config.dropout
        return DeepNADE(
            n_inputs,
            hidden=config.hidden,
            num_orderings=config.num_masks,
            ordering=config.ordering,
            seed=config.seed,
            **extra,
        )
    raise ValueError(f"model: expected nade, made or deepnade; got {kind!r}")


@torch.no_grad()
def init_output_bias(model: AutoregressiveModel, train: np.ndarray, clip: float = 1e-3) -> None:
    """Start ``model`` at the training marginals: real columns standardized with the training
    mean and standard deviation, every head's output bias at its column's marginal (binary:
    ``logit(clip(mean, clip, 1 - clip))``); see :meth:`AutoregressiveModel.init_from_data`."""
    model.init_from_data(train)


def _fused_adam_supported() -> bool:
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)  # fused Adam on the CPU arrived in torch 2.4


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config``. Adam is torch's fused kernel where available: the same
    update as the multi-tensor one, faster (about 1.5x per MADE step of hidden 500 here)."""
    params = param_groups(model, config)
    if config.optimizer == "adam":
        fused = {"fused": True} if _fused_adam_supported() else {}
        return torch.optim.Adam(params, lr=config.lr, **fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    if config.optimizer == "lbfgs":  # weight decay: added to the objective by _full_batch_step
        return torch.optim.LBFGS(
            list(model.parameters()),
            lr=config.lr,
            max_iter=config.lbfgs_iters,
            tolerance_grad=1e-9,
            tolerance_change=1e-12,
            history_size=50,
            line_search_fn="strong_wolfe",
        )
    return torch.optim.Adagrad(params, lr=config.lr)


def decayed(model: torch.nn.Module, config: TrainConfig) -> list[bool]:
    """Whether weight decay applies to each of ``model.parameters()`` (biases: ``decay_biases``)."""
    return [config.decay_biases or p.ndim > 1 for p in model.parameters()]


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: the decayed parameters, then any exempt biases."""
    flags = decayed(model, config)
    groups = [{"params": [p for p, on in zip(model.parameters(), flags) if on], "weight_decay": config.weight_decay}]
    exempt = [p for p, on in zip(model.parameters(), flags) if not on]
    return groups + ([{"params": exempt, "weight_decay": 0.0}] if exempt else [])


def mean_nll(
    model: AutoregressiveModel, x: torch.Tensor, masks: int | None = None, batch_size: int = 1000, context: Any = None
) -> float:
    """Average NLL (nats) of the rows of ``x`` (given their ``context`` rows, for a conditional
    model); for an ensemble, that of its first ``masks`` members."""
    return float(-log_likelihoods(model, x, masks, batch_size, context=context).mean())


# -- resume state ---------------------------------------------------------------------------
def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    other: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, entries in state["state"].items():
        other["state"][str(idx)] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
                other["state"][str(idx)][key] = {"tensor": f"optim.{idx}.{key}"}
            elif isinstance(value, list):  # L-BFGS history: tensors (or None) per slot
                names = []
                for j, item in enumerate(value):
                    if item is None:
                        names.append(None)
                    else:
                        names.append(f"optim.{idx}.{key}.{j}")
                        tensors[names[-1]] = item.detach().cpu().contiguous()
                other["state"][str(idx)][key] = {"tensors": names}
            else:
                other["state"][str(idx)][key] = {"value": value}
    return tensors, other


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], other: dict[str, Any]) -> dict[str, Any]:
    state = {}
    for idx, entries in other["state"].items():
        state[int(idx)] = {k: _unflatten_entry(tensors, v) for k, v in entries.items()}
    return {"state": state, "param_groups": other["param_groups"]}


def _unflatten_entry(tensors: dict[str, torch.Tensor], entry: dict[str, Any]) -> Any:
    # Copies, not the loaded tensors: those can sit at any 8-byte offset of the file's buffer,
    # and BLAS reductions (L-BFGS's dot products) may round differently on such addresses than
    # on the freshly allocated, 64-byte-aligned tensors of an uninterrupted run.
    if "tensor" in entry:
        return tensors[entry["tensor"]].clone()
    if "tensors" in entry:
        return [None if name is None else tensors[name].clone() for name in entry["tensors"]]
    return entry["value"]


def _save_resume(path: Path, model, optimizer, generator: torch.Generator, header: dict[str, Any]) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_other = _flatten_optimizer(optimizer.state_dict())
    tensors.update(opt_tensors)
    tensors["rng.shuffle"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    header = {**header, "optimizer": opt_other}
    atomic_save_file(tensors, path, {"ardens_resume": json.dumps(header)})


def _read_resume(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not path.is_file():
        raise RunDirError(f"{path.parent}: no resume state ({RESUME} missing); not an ardens run directory?")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = json.loads(f.metadata()["ardens_resume"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable resume state ({err})") from None
    return tensors, header


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a run directory's ``metrics.jsonl``, one per epoch (none if it is missing)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- the loop -------------------------------------------------------------------------------
def fit(
    model: AutoregressiveModel,
    data: Dataset,
    config: TrainConfig,
    run_dir: str | os.PathLike | None = None,
    *,
    model_kind: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    init_bias: bool = True,
) -> TrainResult:
    """Train ``model`` on ``data.train`` with early stopping on ``data.valid``; see the module docstring.

    ``run_dir`` must be missing or empty (use :func:`resume` to continue a run); with
    ``run_dir=None`` nothing is written (no checkpoints, no resume). Either way ``model``
    ends holding the weights of its best validation epoch.
    ``log`` receives one line per epoch. Shuffling uses a ``torch.Generator`` seeded
    with ``config.seed``; with the same seed on the CPU, results are reproducible.
    """
    run_dir = None if run_dir is None else Path(run_dir)
    _check_world(config)
    if run_dir is not None:
        distributed.on_main(lambda: check_new_run_dir(run_dir))
    if model.n_inputs != data.dim:
        raise ValueError(
            f"{data.source or data.name}: data has {data.dim} dimensions; the model expects {model.n_inputs}"
        )
    check_columns(model, data)
    check_context(model, data)
    if config.optimizer == "lbfgs" and (
        ensemble_size(model) > 1 or isinstance(model, DeepNADE) or getattr(model, "dropout", 0.0)
    ):
        raise ValueError(
            "optimizer: lbfgs needs a deterministic full-batch loss; use adam, sgd or adagrad"
            " for a K-mask MADE, a MADE with dropout or a DeepNADE"
        )
    if not distributed.is_main():  # under DDP only rank 0 writes and reports
        result = _fit(model, data, config, None, model_kind, False, None, init_bias)
        result.run_dir = run_dir
        return result
    if run_dir is None:
        return _fit(model, data, config, None, model_kind, progress, log, init_bias)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with run_lock(run_dir):
            if not _is_empty(run_dir):  # another process started here between the check and the lock
                raise RunDirError(f"{run_dir}: another run started in this directory; choose a new --out")
            return _fit(model, data, config, run_dir, model_kind, progress, log, init_bias)
    except BaseException:  # interrupted (or failed) before an epoch finished: leave no empty run behind
        if not (run_dir / METRICS).exists():  # (the initial resume state is for a kill -9, not this)
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for name in (RESUME, BEST):
                    (run_dir / name).unlink(missing_ok=True)
        raise


def _fit(model, data, config, run_dir, model_kind, progress, log, init_bias) -> TrainResult:
    if init_bias:
        init_output_bias(model, data.train)
    kind = model_kind or type(model).__name__.lower()
    generator = torch.Generator().manual_seed(config.seed)
    state = {
        "epoch": 0,
        "step": 0,
        "best_valid_nll": None,
        "best_epoch": 0,
        "bad_epochs": 0,
        "lr": config.lr,
        "finished": False,
        "seconds": 0.0,
        "model_class": type(model).__name__,
        "model_config": model.config(),
        "model_kind": kind,
        "train_config": asdict(config),
        "data": _data_meta(data),
    }
    model = model.to(_rank_device(config.device))
    optimizer = make_optimizer(model, config)
    return _loop(model, optimizer, generator, data, config, run_dir, state, [], progress, log)


def _check_world(config: TrainConfig) -> None:
    world = distributed.world_size()
    if world > 1 and config.optimizer == "lbfgs":
        raise ValueError(
            f"optimizer: lbfgs is full-batch and runs in one process; with {world} ranks use adam, sgd or adagrad"
        )


def _rank_device(name: str) -> torch.device:
    """The config's device; under DDP on CUDA, this rank's own GPU (``cuda:LOCAL_RANK``)."""
    device = resolve_device(name)
    if device.type == "cuda" and distributed.is_distributed():
        device = torch.device("cuda", distributed.local_rank())
    return device


def resume(
    run_dir: str | os.PathLike,
    data: Dataset,
    *,
    epochs: int | None = None,
    device: str | None = None,
    patience: int | None = None,
    lr: float | None = None,
    valid_every: int | None = None,
    lr_decay: float | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its last completed epoch.

    The options that may change on the way: ``epochs`` (a larger cap extends a run),
    ``patience`` (a larger one continues a run that stopped early), ``lr`` (the rate from
    here on), ``valid_every``, ``lr_decay``, ``device``. A run that diverged (a NaN or inf
    loss) resumes only with a different ``lr``: from its best checkpoint's weights (its best
    epoch), with a fresh optimizer.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no resume state (no such run directory)")
    if distributed.is_distributed():  # every rank reads the state; rank 0 alone locks and writes
        distributed.on_main(lambda: check_not_busy(run_dir))
        if not distributed.is_main():
            result = _resume(run_dir, data, epochs, device, patience, lr, valid_every, lr_decay, False, None)
            result.run_dir = run_dir
            return result
    with run_lock(run_dir):
        return _resume(run_dir, data, epochs, device, patience, lr, valid_every, lr_decay, progress, log)


def _resume(run_dir, data, epochs, device, patience, lr, valid_every, lr_decay, progress, log) -> TrainResult:
    tensors, state = _read_resume(run_dir / RESUME)
    diverged = state.get("diverged")
    if diverged and (lr is None or lr == diverged["lr"]):
        where = f"from its best epoch ({state['best_epoch']})" if (run_dir / BEST).is_file() else "from its last epoch"
        raise RunDirError(
            f"{run_dir}: this run diverged at epoch {diverged['epoch']} ({diverged['what']} at lr {diverged['lr']:g});"
            f" resume it only with a smaller --lr (e.g. --lr {diverged['lr'] / 10:g}), which restarts it {where}"
        )
    stored_context = state["data"].get("context_checksum")
    if array_checksum(data.train) != state["data"]["train_checksum"] or (
        stored_context is not None
        and (data.context_train is None or array_checksum(data.context_train) != stored_context)
    ):
        raise ValueError(
            f"{data.source or data.name}: not the training data of this run (it used {state['data']['name']})"
        )
    changes = {"epochs": epochs, "device": device, "patience": patience, "lr": lr, "valid_every": valid_every}
    changes["lr_decay"] = lr_decay
    config = TrainConfig(**{**state["train_config"], **{k: v for k, v in changes.items() if v is not None}})
    _check_world(config)
    state["train_config"] = asdict(config)
    if lr is not None:
        state["lr"] = lr
    if patience is not None:  # a larger patience continues a run that stopped early
        state["finished"] = state["bad_epochs"] >= config.patience
    model = model_from_config(state["model_class"], state["model_config"])
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    check_context(model, data)
    model = model.to(_rank_device(config.device))
    optimizer = make_optimizer(model, config)
    saved_optimizer = state.pop("optimizer")
    best = load_file(str(run_dir / BEST)) if (run_dir / BEST).is_file() else None
    if diverged:  # back to the best epoch's weights, a fresh optimizer at the new rate
        state.pop("diverged")
        if best is not None:
            model.load_state_dict(best)
            state.update(epoch=state["best_epoch"], bad_epochs=0, finished=False)
    else:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, saved_optimizer))
    for group in optimizer.param_groups:  # the rate reached so far, decays included
        group["lr"] = state.get("lr", config.lr)
    generator = torch.Generator()
    generator.set_state(tensors["rng.shuffle"])
    torch.set_rng_state(tensors["rng.torch"])
    history = [r for r in read_metrics(run_dir) if r["epoch"] <= state["epoch"]]
    if best is not None:
        state["_best_weights"] = {k: v.to(next(model.parameters()).device) for k, v in best.items()}
    writer = run_dir if distributed.is_main() else None
    return _loop(model, optimizer, generator, data, config, writer, state, history, progress, log)


def check_columns(model: AutoregressiveModel, data: Dataset) -> None:
    """The model's column types must be the data's (a one-line error naming the first mismatch)."""
    theirs = data.column_specs
    ours = model.columns.specs()
    for j, (a, b) in enumerate(zip(ours, theirs)):
        if a.split(":")[0] != b.split(":")[0] or (a.startswith("categorical") and a != b):
            name = f" ({data.column_names[j]})" if data.column_names else ""
            raise ValueError(f"{data.source or data.name}: column {j}{name} is {b} in the data; the model has {a}")


def check_context(model: AutoregressiveModel, data: Dataset) -> None:
    """The model's context width must be the data's (a one-line ``ValueError`` naming both)."""
    ours, theirs = int(model.context_features), data.context_width
    if ours == theirs:
        for s in ("valid", "test"):
            c = data.context(s)
            rows = len(data.split(s))
            if ours and (c is None or c.shape != (rows, ours)):
                got = "none" if c is None else f"shape {c.shape}"
                raise ValueError(f"{data.source or data.name}: context_{s}: expected shape ({rows}, {ours}); got {got}")
        if ours and len(data.context_train) != len(data.train):
            raise ValueError(
                f"{data.source or data.name}: context_train has {len(data.context_train)} rows;"
                f" train has {len(data.train)}"
            )
        return
    where = data.source or data.name
    if not theirs:
        raise ValueError(
            f"{where}: the model takes a context of width {ours} (context_features={ours}); the data has no context"
        )
    if not ours:
        raise ValueError(
            f"{where}: the data has a context of width {theirs}; the model takes none (context_features=0)"
        )
    raise ValueError(f"{where}: the data's context has width {theirs}; the model takes width {ours} (context_features)")


def _data_meta(data: Dataset) -> dict[str, Any]:
    return {
        "name": data.name,
        "source": str(Path(data.source).resolve()) if data.source and Path(data.source).is_file() else data.source,
        "dim": data.dim,
        "image_shape": list(data.image_shape) if data.image_shape else None,
        "image_order": data.image_order,
        "train_checksum": array_checksum(data.train),
        **({"context_checksum": array_checksum(data.context_train)} if data.context_train is not None else {}),
        **table_meta(data),
    }


def table_meta(data: Dataset) -> dict[str, Any]:
    """What a checkpoint needs to read a table again: column names, categorical labels, the
    fold, the one-hot groups of a regrouped binary file, the encoding of the context columns of a
    conditional model (``context``, see :mod:`ardens.context`) (only the fields that are set)."""
    out: dict[str, Any] = {}
    if data.columns is not None:
        out["columns"] = list(data.columns)
    if data.column_names is not None:
        out["column_names"] = list(data.column_names)
    if data.categories:
        out["categories"] = {str(k): list(v) for k, v in data.categories.items()}
    if data.fold is not None:
        out["fold"] = data.fold
    if data.split_seed:  # a file split by a seed other than the default 0
        out["split_seed"] = data.split_seed
    if data.one_hot_groups:
        out["one_hot_groups"] = [list(g) for g in data.one_hot_groups]
        out["one_hot_groups_width"] = data.dim + sum(int(g[1]) - int(g[0]) - 1 for g in data.one_hot_groups)
    if data.context_train is not None:
        out["context"] = (
            dict(data.context_encoding)
            if data.context_encoding is not None
            else {"width": data.context_width, "names": list(data.context_names or [])}
        )
    return out


def _wrap(model: AutoregressiveModel) -> torch.nn.Module:
    """``model`` itself in one process; under a process group of several, the model wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel` (rank 0's weights broadcast to all; every
    training loss then goes through the wrapper's ``forward``, which averages the gradients)."""
    if not distributed.is_distributed():
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    kw: dict[str, Any] = {"device_ids": [device.index]} if device.type == "cuda" else {}
    # the buffers (masks, orderings, standardization) are never trained: synced once, not every step
    sync = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    kw["forward_sync_buffers" if sync else "broadcast_buffers"] = False
    return DistributedDataParallel(model, **kw)


def _loop(model, optimizer, generator, data, config, run_dir, state, history, progress, log) -> TrainResult:
    device = next(model.parameters()).device
    net = None
    try:
        net = _wrap(model)
        with flush_denormals(device), reuse_freed_blocks(device.type == "cpu"):
            return _epochs(model, optimizer, generator, data, config, run_dir, state, history, progress, log, net)
    except KeyboardInterrupt:  # the curve of the epochs that finished
        if history and run_dir is not None:
            _plot_curve(history, run_dir / CURVE, f"{state['model_kind']} on {data.name}")
        raise
    except FloatingPointError as err:  # record it: resume then asks for another rate instead of looping
        if run_dir is not None and (run_dir / RESUME).is_file():
            _mark_diverged(run_dir, err, state["lr"])
        if history and run_dir is not None:
            _plot_curve(history, run_dir / CURVE, f"{state['model_kind']} on {data.name}")
        raise
    finally:
        if net is not None and net is not model:
            # the DDP wrapper sits in reference cycles: free it (and its reducer's gloo work) now,
            # while the process group and the interpreter are alive (see distributed.teardown)
            del net
            gc.collect()


class _DivergedError(FloatingPointError):
    def __init__(self, epoch: int, what: str, lr: float, run_dir: Path | None) -> None:
        self.epoch, self.what = epoch, what
        kept = (
            f"; {run_dir / BEST} keeps the best epoch before it"
            if run_dir is not None and (run_dir / BEST).is_file()
            else ""
        )
        super().__init__(f"epoch {epoch}: {what} at lr {lr:g}: training diverged; try a smaller --lr{kept}")


def _mark_diverged(run_dir: Path, err: FloatingPointError, lr: float) -> None:
    tensors, header = _read_resume(run_dir / RESUME)
    epoch = getattr(err, "epoch", header["epoch"] + 1)
    header["diverged"] = {"epoch": epoch, "what": getattr(err, "what", str(err)), "lr": lr}
    atomic_save_file(tensors, run_dir / RESUME, {"ardens_resume": json.dumps(header)})


def _epochs(model, optimizer, generator, data, config, run_dir, state, history, progress, log, net=None) -> TrainResult:
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    train = torch.as_tensor(data.train, dtype=dtype, device=device)
    valid = torch.as_tensor(data.valid, dtype=dtype, device=device)
    train_c = valid_c = None
    if data.context_train is not None:  # the rows' contexts, passed with them to forward / log_prob
        train_c = torch.as_tensor(data.context_train, dtype=dtype, device=device)
        valid_c = torch.as_tensor(data.context_valid, dtype=dtype, device=device)
    k = ensemble_size(model)
    valid_masks = min(k, config.valid_masks)
    stopped = state["finished"]
    best_weights = state.pop("_best_weights", None)
    if run_dir is not None and state["epoch"] == 0 and not (run_dir / RESUME).is_file():
        # the state before the first step: a run killed during its first epoch resumes too
        _save_resume(run_dir / RESUME, model, optimizer, generator, state)
    last_plot = time.perf_counter()
    epochs = tqdm(
        range(state["epoch"], config.epochs),
        initial=state["epoch"],
        total=config.epochs,
        desc="epochs",
        unit="epoch",
        disable=not progress or stopped,
        leave=False,
    )
    for epoch0 in epochs:
        if stopped:
            break
        start = time.perf_counter()
        model.train()
        if config.optimizer == "lbfgs":
            train_nll = _full_batch_step(model, optimizer, train, config, train_c)
            state["step"] += 1
            if not math.isfinite(train_nll):
                raise _DivergedError(epoch0 + 1, f"training NLL {train_nll}", state["lr"], run_dir)
        else:
            train_nll = _minibatch_epoch(
                model if net is None else net,
                optimizer,
                generator,
                train,
                config,
                state,
                progress,
                epoch0,
                run_dir,
                train_c,
            )
        model.eval()
        epoch = epoch0 + 1
        validate = epoch % config.valid_every == 0
        valid_nll = _valid_nll(model, valid, valid_masks, valid_c) if validate else None
        if valid_nll is not None and not math.isfinite(valid_nll):
            raise _DivergedError(epoch, f"validation NLL {valid_nll}", state["lr"], run_dir)
        seconds = time.perf_counter() - start
        state["epoch"] = epoch
        state["seconds"] += seconds
        improved = valid_nll is not None and (state["best_valid_nll"] is None or valid_nll < state["best_valid_nll"])
        if improved:
            state.update(best_valid_nll=valid_nll, best_epoch=epoch, bad_epochs=0)
        elif valid_nll is not None:
            state["bad_epochs"] += 1
            if config.lr_decay < 1 and state["bad_epochs"] % config.decay_patience == 0:
                state["lr"] *= config.lr_decay
                for group in optimizer.param_groups:
                    group["lr"] = state["lr"]
        row = {"epoch": epoch, "train_nll": train_nll, "valid_nll": valid_nll, "seconds": seconds, "lr": state["lr"]}
        history.append(row)
        if improved:
            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if run_dir is not None:
                save(model, run_dir / BEST, extra=_checkpoint_extra(state, row))
        stopped = state["bad_epochs"] >= config.patience
        state["finished"] = stopped
        if run_dir is not None:
            atomic_write_text(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in history))
            _save_resume(run_dir / RESUME, model, optimizer, generator, state)
        if run_dir is not None and time.perf_counter() - last_plot > PLOT_EVERY_S:  # plotting costs ~0.2 s
            _plot_curve(history, run_dir / CURVE, f"{state['model_kind']} on {data.name}")
            last_plot = time.perf_counter()
        mark = " *" if improved else ""
        shown = "-" if valid_nll is None else f"{valid_nll:.4f}"
        line = f"epoch {epoch:3d}  train {train_nll:.4f}  valid {shown}  ({seconds:.2f}s){mark}"
        best = state["best_valid_nll"]
        epochs.set_postfix(train=f"{train_nll:.3f}", valid=shown, best="-" if best is None else f"{best:.3f}")
        if log is not None:
            log(line)
        if stopped and log is not None:
            every = "epochs" if config.valid_every == 1 else f"validations (one every {config.valid_every} epochs)"
            log(f"early stop: no better validation NLL in {config.patience} {every} (best epoch {state['best_epoch']})")
    epochs.close()
    if best_weights is not None:  # the model ends as its best validation epoch
        model.load_state_dict(best_weights)
    if history and run_dir is not None:
        _plot_curve(history, run_dir / CURVE, f"{state['model_kind']} on {data.name}")
    return TrainResult(
        epochs_run=state["epoch"],
        best_epoch=state["best_epoch"],
        best_valid_nll=float(state["best_valid_nll"]) if state["best_valid_nll"] is not None else math.nan,
        stopped_early=bool(state["finished"]),
        run_dir=run_dir,
        seconds=state["seconds"],
        history=history,
    )


def _minibatch_epoch(
    model, optimizer, generator, train, config, state, progress, epoch0, run_dir=None, context=None
) -> float:
    """One pass over shuffled minibatches; the mean of their losses (``context``: the rows'
    contexts, shuffled with them). Under DDP (``model`` the wrapper) each rank computes its
    share of every minibatch (:func:`_ddp_batch_loss`)."""
    n = len(train)
    perm = torch.randperm(n, generator=generator).to(train.device)
    if distributed.is_distributed():
        batch_loss = _ddp_batch_loss(model, train, config, state, epoch0, context)
    else:
        batch_loss = _local_batch_loss(model, generator, train, state, context)
    total = 0.0
    bar = tqdm(range(math.ceil(n / config.batch_size)), desc=f"epoch {epoch0 + 1}", leave=False, disable=not progress)
    for b in bar:
        rows = perm[b * config.batch_size : (b + 1) * config.batch_size]
        loss, batch_sum = batch_loss(rows)
        value = batch_sum / len(rows)
        if not math.isfinite(value):  # before the step (on every rank): the weights stay finite
            raise _DivergedError(epoch0 + 1, f"training loss {value} at step {state['step']}", state["lr"], run_dir)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        total += batch_sum
        bar.set_postfix(nll=f"{total / (b * config.batch_size + len(rows)):.3f}")
    bar.close()
    return total / n


def _local_batch_loss(model, generator, train, state, context):
    """``rows -> (the minibatch's mean loss, the sum of its rows' losses as a float)``."""

    def batch_loss(rows):
        cb = None if context is None else context[rows]
        loss = model(train[rows], training_step=state["step"], generator=generator, **context_kw(cb)).mean()
        return loss, float(loss.detach()) * len(rows)

    return batch_loss


def _ddp_batch_loss(net, train, config, state, epoch0, context):
    """``rows -> (this rank's loss, the global minibatch's loss sum)`` under DDP. Every rank
    draws the same permutation from the shared shuffling generator and so the same global
    minibatches of ``batch_size`` rows; rank ``r`` of ``W`` takes rows ``r, r + W, ...`` of each.
    Its loss is the sum of its rows' losses times ``W / rows in the global batch``: DDP's average
    of the ranks' gradients is then exactly the gradient of the global batch's mean loss (a last
    partial batch included; a rank left without a row contributes zero). Per-row randomness
    (DeepNADE's orderings, dropout) comes from streams seeded by (seed, rank, epoch), so a
    resumed run repeats them. The ranks' loss sums are all-reduced every step: all see the same
    training NLL, and stop together on a NaN."""
    world, me = distributed.world_size(), distributed.rank()
    rows_generator = torch.Generator().manual_seed(distributed.rank_seed(config.seed, me, epoch0))
    torch.manual_seed(distributed.rank_seed(config.seed, me, epoch0, 1))  # dropout draws from torch's RNG

    def batch_loss(rows):
        mine = rows[me::world]
        share = len(mine)
        if not share:  # fewer rows than ranks: a zero loss still joins the gradient all-reduce
            mine = rows[:1]
        cb = None if context is None else context[mine]
        per_row = net(train[mine], training_step=state["step"], generator=rows_generator, **context_kw(cb))
        local = per_row.sum()
        loss = local * (_loss_scale(world, len(rows)) if share else 0.0)
        (batch_sum,) = distributed.all_reduce_sums([float(local.detach()) if share else 0.0])
        return loss, batch_sum

    return batch_loss


def _loss_scale(world: int, global_rows: int) -> float:
    """What a rank multiplies the sum of its rows' losses by: ``world / global_rows``, so that
    DDP's gradient average over ``world`` ranks is the gradient of the global batch's mean loss."""
    return world / global_rows


def _valid_nll(model, valid: torch.Tensor, masks: int, context=None) -> float:
    """The validation NLL (:func:`mean_nll`); under DDP each rank scores its contiguous share of
    the rows and the sums and counts are all-reduced, so every rank gets the same figure."""
    if not distributed.is_distributed():
        return mean_nll(model, valid, masks=masks, context=context)
    start, stop = distributed.shard(len(valid), distributed.rank(), distributed.world_size())
    nll = 0.0
    if stop > start:
        c = None if context is None else context[start:stop]
        nll = float(-log_likelihoods(model, valid[start:stop], masks, context=c).sum())
    total, count = distributed.all_reduce_sums([nll, stop - start])
    return total / count if count else math.nan


def _full_batch_step(model, optimizer, train, config, context=None) -> float:
    """``lbfgs_iters`` L-BFGS iterations on the full-batch objective (mean NLL plus
    ``weight_decay / 2`` times the squared parameter norm); the mean NLL at its last evaluation."""
    params = [p for p, on in zip(model.parameters(), decayed(model, config)) if on]
    last = {"nll": math.nan}

    def closure() -> float:
        optimizer.zero_grad(set_to_none=False)
        nll = 0.0
        chunks = train.split(config.batch_size)
        contexts = [None] * len(chunks) if context is None else context.split(config.batch_size)
        for chunk, c in zip(chunks, contexts):
            loss = -model.log_prob(chunk, **context_kw(c)).sum() / len(train)
            loss.backward()
            nll += float(loss.detach())
        penalty = 0.0
        if config.weight_decay > 0:
            term = 0.5 * config.weight_decay * sum(p.pow(2).sum() for p in params)
            term.backward()
            penalty = float(term.detach())
        last["nll"] = nll
        return nll + penalty

    optimizer.step(closure)
    return last["nll"]


def _checkpoint_extra(state: dict[str, Any], row: dict[str, float]) -> dict[str, Any]:
    return {
        "model_kind": state["model_kind"],
        "training": state["train_config"],
        "epoch": row["epoch"],
        "metrics": {"train_nll": row["train_nll"], "valid_nll": row["valid_nll"]},
        "data": state["data"]["name"],
        "data_source": state["data"]["source"],
        "image_shape": state["data"]["image_shape"],
        "image_order": state["data"]["image_order"],
        **{
            k: state["data"][k]
            for k in (
                "columns",
                "column_names",
                "categories",
                "fold",
                "split_seed",
                "one_hot_groups",
                "one_hot_groups_width",
                "context",
            )
            if k in state["data"]
        },
    }


def _plot_curve(history, path: Path, title: str) -> None:
    from .plots import save_learning_curve

    save_learning_curve(history, path, title=title)
