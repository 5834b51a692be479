"""Data-parallel helpers on ``torch.distributed``: who am I, start and stop the process group,
all-reduce sums, per-rank seeds, row shards. No command line here (see ``ardens train --nproc``).

Every function works without a process group (one process: rank 0 of a world of 1), so the
training loop calls them unconditionally and its one-process path stays what it was.

>>> world_size(), rank(), is_distributed()
(1, 0, False)
>>> all_reduce_sums([2.0, 3.0])
[2.0, 3.0]
>>> shard(10, 1, 3), shard(10, 2, 3)
((4, 7), (7, 10))
>>> rank_seed(0, 1) != rank_seed(0, 0) and rank_seed(0, 1) == rank_seed(0, 1)
True
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "env_world_size",
    "launched",
    "is_distributed",
    "world_size",
    "rank",
    "local_rank",
    "is_main",
    "backend_for",
    "init",
    "teardown",
    "all_reduce_sums",
    "all_reduce_min",
    "broadcast_error",
    "rank_seed",
    "shard",
    "threads_per_rank",
    "env_rank",
    "on_main",
]


def _dist():
    import torch.distributed as dist

    return dist


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not launched by it)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def launched() -> bool:
    """This process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return env_world_size() > 1 and "RANK" in os.environ


def is_distributed() -> bool:
    """A process group of more than one process is initialized."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return _dist().get_world_size() if is_distributed() else 1


def rank() -> int:
    return _dist().get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``; 0 without torchrun)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def is_main() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init(device: torch.device | str = "cpu") -> bool:
    """Initialize the default process group from torchrun's environment, if launched by it and
    none is initialized yet; on CUDA, bind this process to ``cuda:LOCAL_RANK``. Returns whether it
    started one (then :func:`teardown` it)."""
    dist = _dist()
    if not launched() or not dist.is_available() or dist.is_initialized():
        return False
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def teardown(barrier: bool = False) -> None:
    """Destroy the default process group, if there is one; with ``barrier`` (after a run every
    rank finished normally) the ranks first wait for each other, so that none tears its gloo
    connections down while a peer still uses them.

    First, a garbage collection: a DDP wrapper sits in reference cycles, so after training it
    can outlive its last use until the interpreter's shutdown, and its reducer's gloo work
    objects (holding tensors) were then destroyed during finalization, where taking the GIL
    aborts the process ("terminate called without an active exception": a rank died so, now
    and then, at the end of ``--nproc 2 --resume`` in the test suite)."""
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def _reduce_device() -> torch.device:
    dist = _dist()
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sums(values: Sequence[float]) -> list[float]:
    """The sums over all ranks of each of ``values`` (float64); the values themselves in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    dist = _dist()
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def all_reduce_min(values: Sequence[float]) -> list[float]:
    """The minima over all ranks of each of ``values`` (float64)."""
    if not is_distributed():
        return [float(v) for v in values]
    dist = _dist()
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return [float(v) for v in t.cpu()]


def broadcast_error(message: str | None) -> str | None:
    """Rank 0's ``message`` (an error found by rank 0 alone, e.g. a busy run directory) on every
    rank, so that all of them fail the same way instead of some waiting forever."""
    if not is_distributed():
        return message
    box = [message]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def rank_seed(seed: int, rank: int, *more: int) -> int:
    """A 63-bit seed for ``rank``'s own random stream, from the run's ``seed`` (and e.g. the epoch)."""
    state = np.random.SeedSequence([int(seed), int(rank), *(int(m) for m in more)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous ``[start, stop)`` of ``n`` rows split as evenly as possible."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def threads_per_rank(ranks_on_node: int | None = None) -> int:
    """CPU threads for each rank by default: the node's cores divided among its ranks (at least 1)."""
    if ranks_on_node is None:
        try:
            ranks_on_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(env_world_size())))
        except ValueError:
            ranks_on_node = 1
    return max(1, (os.cpu_count() or 1) // max(1, ranks_on_node))


def env_rank() -> int:
    """``RANK`` as torchrun sets it (0 without it): who prints, before and after the process group."""
    try:
        return int(os.environ.get("RANK", "0")) if launched() else 0
    except ValueError:
        return 0


def on_main(fn, errors: tuple[type[BaseException], ...] = (ValueError,)) -> None:
    """Run the check ``fn`` on rank 0 alone (e.g. of a run directory that rank 0 then writes); an
    error of type ``errors`` it raises is raised on every rank (rank 0: the original; the others:
    a ``ValueError`` with its message), so that all fail together instead of some waiting forever."""
    if not is_distributed():
        fn()
        return
    caught: BaseException | None = None
    if is_main():
        try:
            fn()
        except errors as err:
            caught = err
    message = broadcast_error(None if caught is None else str(caught) or type(caught).__name__)
    if caught is not None:
        raise caught
    if message is not None:
        raise ValueError(message)
