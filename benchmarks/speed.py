"""Side-by-side speed benchmarks: ardens against straightforward PyTorch references.

Run:  .venv/bin/python benchmarks/speed.py [--quick] [--json OUT.json] [--device cpu|cuda]
      .venv/bin/python benchmarks/speed.py --real   # real-valued heads against zuko and nflows

The ratio column divides by the case's reference row: the per-dimension loop for NADE
training, training's forward pass for NADE evaluation, ``log_prob`` for sampling, the
plain masked MLP for MADE training, the n-pass sampler for MADE sampling.

Timings run in this one process, ardens and references interleaved repetition by
repetition; the figure is the median over repetitions. Peak memory is measured apart, in
a fresh child process per (case, implementation), after one warm-up call: the rise of its
peak resident size during one call (CPU; Linux VmHWM, reset through /proc/self/clear_refs)
or of ``torch.cuda.max_memory_allocated`` (GPU).

Data: binarized MNIST's training images if found (``$ARDENS_DATA`` or ../shared/data),
else Bernoulli(0.13) noise of the same shape (the same fraction of ones).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ardens  # noqa: E402
from reference import CumsumNADE, LoopNADE, PlainMADE  # noqa: E402

N = 784


def load_data(device: str) -> torch.Tensor:
    candidates = [os.environ.get("ARDENS_DATA", ""), str(Path(__file__).resolve().parents[2] / "shared" / "data")]
    for folder in candidates:
        path = Path(folder) / "binarized_mnist.npz"
        if folder and path.is_file():
            import numpy as np

            with np.load(path, allow_pickle=False) as f:
                return torch.from_numpy(f["train"][:5000].astype("float32")).to(device)
    g = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((5000, N), 0.13), generator=g).to(device)


# -- workloads: each returns (setup -> step callable, examples per step) ------------------


def train_step(model, data: torch.Tensor, batch: int, masks: int = 1) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = {"i": 0}

    def step() -> None:
        i = state["i"]
        x = data[(i * batch) % (len(data) - batch) :][:batch]
        kwargs = {"mask": i % masks} if isinstance(model, ardens.MADE) else {}
        loss = -model.log_prob(x, **kwargs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["i"] = i + 1

    return step


def loss_step(model, data: torch.Tensor, batch: int) -> Callable[[], None]:
    """A training step through the model's own training loss (``forward``), as ``fit`` runs it."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = {"i": 0}

    def step() -> None:
        i = state["i"]
        x = data[(i * batch) % (len(data) - batch) :][:batch]
        loss = model(x, training_step=i).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        state["i"] = i + 1

    return step


def eval_step(model, data: torch.Tensor, batch: int) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            model.log_prob(data[:batch])

    return step


def forward_step(model, data: torch.Tensor, batch: int) -> Callable[[], None]:
    """Training's forward pass alone (autograd on, no backward)."""

    def step() -> None:
        model.log_prob(data[:batch]).sum()

    return step


def sample_step(model, num: int, method: str = "sample") -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad():
            getattr(model, method)(num)

    return step


def impute_step(model, data: torch.Tensor, num: int) -> Callable[[], None]:
    """Conditional samples of the bottom half of ``num`` images given their top half."""
    observed = torch.zeros(num, N, dtype=torch.bool, device=data.device)
    observed[:, : N // 2] = True

    def step() -> None:
        with torch.no_grad():
            model.impute(data[:num], observed)

    return step


def cases(device: str, quick: bool) -> list[dict]:
    """Every comparison: a name, then implementations (label, builder) and work per call."""
    out = []
    ds = [500] if quick else [500, 1000]
    for d in ds:
        out.append(
            {
                "case": f"NADE train, d={d}, batch 100",
                "examples": 100,
                "ref": "loop (reference)",
                "impls": [
                    ("ardens", lambda d=d: train_step(ardens.NADE(N, d).to(device), DATA, 100)),
                    ("loop (reference)", lambda d=d: train_step(LoopNADE(N, d).to(device), DATA, 100)),
                    ("cumsum (reference)", lambda d=d: train_step(CumsumNADE(N, d).to(device), DATA, 100)),
                ],
            }
        )
        out.append(
            {
                "case": f"NADE log_prob, d={d}, batch 1000",
                "examples": 1000,
                "ref": "ardens train forward",
                "impls": [
                    ("ardens eval (no grad)", lambda d=d: eval_step(ardens.NADE(N, d).to(device), DATA, 1000)),
                    ("ardens train forward", lambda d=d: forward_step(ardens.NADE(N, d).to(device), DATA, 1000)),
                    ("loop (reference)", lambda d=d: eval_step(LoopNADE(N, d).to(device), DATA, 1000)),
                ],
            }
        )
        out.append(
            {
                "case": f"NADE sample vs log_prob, d={d}, 1000",
                "examples": 1000,
                "impls": [
                    ("ardens sample", lambda d=d: sample_step(ardens.NADE(N, d).to(device), 1000)),
                    ("ardens log_prob", lambda d=d: eval_step(ardens.NADE(N, d).to(device), DATA, 1000)),
                ],
            }
        )
    out.append(
        {
            "case": "NADE sample vs log_prob, d=500, batch 10",
            "examples": 10,
            "impls": [
                ("ardens sample", lambda: sample_step(ardens.NADE(N, 500).to(device), 10)),
                ("ardens log_prob", lambda: eval_step(ardens.NADE(N, 500).to(device), DATA, 10)),
            ],
        }
    )
    out.append(
        {
            "case": "MADE sample vs log_prob, hidden 500, batch 10",
            "examples": 10,
            "impls": [
                ("ardens sample", lambda: sample_step(ardens.MADE(N, [500]).to(device), 10)),
                ("ardens log_prob", lambda: eval_step(ardens.MADE(N, [500]).to(device), DATA, 10)),
            ],
        }
    )
    out.append(
        {
            "case": "NADE train vs MADE train, d=500, batch 100",
            "examples": 100,
            "impls": [
                ("ardens NADE d=500", lambda: train_step(ardens.NADE(N, 500).to(device), DATA, 100)),
                ("ardens MADE [500]", lambda: train_step(ardens.MADE(N, [500]).to(device), DATA, 100)),
            ],
        }
    )
    for label, build in (("NADE d=500", lambda: ardens.NADE(N, 500)), ("MADE [500]", lambda: ardens.MADE(N, [500]))):
        out.append(
            {
                "case": f"{label} impute bottom half vs log_prob, 1000",
                "examples": 1000,
                "impls": [
                    ("ardens impute", lambda build=build: impute_step(build().to(device), DATA, 1000)),
                    ("ardens log_prob", lambda build=build: eval_step(build().to(device), DATA, 1000)),
                ],
            }
        )
    if not quick:
        out.append(deepnade_case(device, [500, 500], 100))
    for hidden in ([500], [1000], [500, 500]) if not quick else ([500],):
        h = "x".join(map(str, hidden))
        out.append(
            {
                "case": f"MADE train, hidden {h}, batch 100",
                "examples": 100,
                "impls": [
                    ("ardens", lambda hidden=hidden: train_step(ardens.MADE(N, hidden).to(device), DATA, 100)),
                    (
                        "F.linear(mask*W) (reference)",
                        lambda hidden=hidden: train_step(PlainMADE(N, hidden).to(device), DATA, 100),
                    ),
                ],
            }
        )
        out.append(
            {
                "case": f"MADE sample, hidden {h}, 100",
                "examples": 100,
                "impls": [
                    ("ardens sample", lambda hidden=hidden: sample_step(ardens.MADE(N, hidden).to(device), 100)),
                    (
                        "n-pass (reference)",
                        lambda hidden=hidden: sample_step(PlainMADE(N, hidden).to(device), 100, "sample_n_pass"),
                    ),
                ],
            }
        )
        out.append(
            {
                "case": f"MADE sample vs log_prob, hidden {h}, 1000",
                "examples": 1000,
                "impls": [
                    ("ardens sample", lambda hidden=hidden: sample_step(ardens.MADE(N, hidden).to(device), 1000)),
                    ("ardens log_prob", lambda hidden=hidden: eval_step(ardens.MADE(N, hidden).to(device), DATA, 1000)),
                ],
            }
        )
    return out


def dense_step(rows: int, inner: int, outer: int, device: str) -> Callable[[], None]:
    """One plain ``(rows, inner) @ (inner, outer)`` matmul, as a throughput reference."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(rows, inner, generator=g).to(device)
    b = torch.rand(inner, outer, generator=g).to(device)

    def step() -> None:
        torch.mm(a, b)

    return step


def deepnade_case(device: str, hidden: list[int], batch: int) -> dict:
    """DeepNADE's exact likelihood for one ordering against the dense matmul it cannot avoid:
    the layers above the first run on every one of the ``n`` positions, so per example they
    cost at least ``n`` rows of ``(H1, H2)`` (and so on up): ``(batch n, H1) @ (H1, H2)``."""
    h = "x".join(map(str, hidden))
    return {
        "case": f"DeepNADE log_prob 1 ordering, {h}, batch {batch}",
        "examples": batch,
        "impls": [
            (
                "ardens (exact, 1 ordering)",
                lambda: eval_step(ardens.DeepNADE(N, hidden, num_orderings=1).to(device), DATA, batch),
            ),
            (
                f"mm ({batch}*{N}, {hidden[0]})@({hidden[0]}, {hidden[1]})",
                lambda: dense_step(batch * N, hidden[0], hidden[1], device),
            ),
        ],
    }


# -- real-valued heads against the peers (the `bench` extra: zuko, nflows) -----------------------
REAL_DIM = 11  # red and white wine


class ZukoPeer(torch.nn.Module):
    """zuko's MAF with ``log_prob(x)`` and ``sample(n)`` (a flow is built per call, as zuko does)."""

    def __init__(self, transforms: int, hidden: int) -> None:
        super().__init__()
        import zuko

        self.flow = zuko.flows.MAF(REAL_DIM, transforms=transforms, hidden_features=(hidden, hidden))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x)

    def sample(self, n: int) -> torch.Tensor:
        return self.flow().sample((n,))


class NflowsPeer(torch.nn.Module):
    """nflows' MixtureOfGaussiansMADE (10 components, 2 residual blocks of ``hidden``).

    nflows 0.14 samples this model only with a context (``sample`` reads ``context.shape[0]``
    and fails on ``None``), so the peer is built with one context feature, always zero, for
    every call: the same computation plus one input column."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        from nflows.nn.nde.made import MixtureOfGaussiansMADE

        self.made = MixtureOfGaussiansMADE(
            REAL_DIM, hidden, context_features=1, num_blocks=2, num_mixture_components=10
        )

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.made.log_prob(x, context=x.new_zeros(len(x), 1))

    def sample(self, n: int) -> torch.Tensor:
        return self.made.sample(1, context=torch.zeros(n, 1)).reshape(n, REAL_DIM)


def real_data(device: str) -> torch.Tensor:
    """White wine's rows, standardized, if found; else correlated Gaussian rows of its width."""
    from ardens.data import DataError, load_dataset

    try:
        x = torch.as_tensor(load_dataset("white_wine").train, dtype=torch.float32)
    except DataError:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4000, REAL_DIM, generator=g) @ torch.randn(REAL_DIM, REAL_DIM, generator=g)
    return ((x - x.mean(0)) / x.std(0)).to(device)


def real_model(kind: str, hidden: int, device: str):
    columns = ["real:10"] * REAL_DIM
    model = {
        "RNADE": lambda: ardens.NADE(REAL_DIM, hidden, columns=columns),
        "MADE-MoG": lambda: ardens.MADE(REAL_DIM, [hidden, hidden], columns=columns),
        "DeepRNADE": lambda: ardens.DeepNADE(REAL_DIM, [hidden, hidden], columns=columns),
    }[kind]()
    model.init_from_data(REAL_DATA[:1000].cpu())
    return model.to(device)


def real_cases(device: str, hidden: int = 100) -> list[dict]:
    """RNADE, MADE-MoG, DeepRNADE against zuko's MAF and nflows' MoG-MADE at the same hidden
    width (``hidden``; MADEs and MAF with two layers of it), batch 100 (training) and 1000."""
    peers = [
        ("nflows MoG-MADE (reference)", lambda: NflowsPeer(hidden).to(device)),
        ("zuko MAF, 1 transform", lambda: ZukoPeer(1, hidden).to(device)),
        ("zuko MAF, 3 transforms (default)", lambda: ZukoPeer(3, hidden).to(device)),
    ]
    ours = [(f"ardens {k}", lambda k=k: real_model(k, hidden, device)) for k in ("RNADE", "MADE-MoG", "DeepRNADE")]
    ref = peers[0][0]

    def train(build, is_ours):
        return lambda: (loss_step if is_ours else train_step)(build(), REAL_DATA, 100)

    return [
        {
            "case": f"real train, {REAL_DIM} dims, hidden {hidden}, batch 100",
            "examples": 100,
            "ref": ref,
            "impls": [(label, train(b, True)) for label, b in ours] + [(label, train(b, False)) for label, b in peers],
        },
        {
            "case": f"real log_prob, {REAL_DIM} dims, hidden {hidden}, batch 1000",
            "examples": 1000,
            "ref": ref,
            "impls": [(label, lambda b=b: eval_step(b(), REAL_DATA, 1000)) for label, b in ours + peers],
        },
        {
            "case": f"real sample, {REAL_DIM} dims, hidden {hidden}, 1000",
            "examples": 1000,
            "ref": ref,
            "impls": [(label, lambda b=b: sample_step(b(), 1000)) for label, b in ours + peers],
        },
        {
            "case": f"MADE-MoG sample vs log_prob, {REAL_DIM} dims, 1000",
            "examples": 1000,
            "impls": [
                ("ardens sample", lambda: sample_step(real_model("MADE-MoG", hidden, device), 1000)),
                ("ardens log_prob", lambda: eval_step(real_model("MADE-MoG", hidden, device), REAL_DATA, 1000)),
                (
                    "ardens sample_slow (a pass per column)",
                    lambda: sample_step(real_model("MADE-MoG", hidden, device), 1000, "sample_slow"),
                ),
            ],
            "ref": "ardens log_prob",
        },
        {
            "case": f"categorical MADE sample vs log_prob, {CAT_DIM}x{CAT_LEVELS}, 1000",
            "examples": 1000,
            "impls": [
                ("ardens sample", lambda: sample_step(categorical_model(hidden, device), 1000)),
                ("ardens log_prob", lambda: eval_step(categorical_model(hidden, device), CAT_DATA.to(device), 1000)),
                (
                    "ardens sample_slow (a pass per column)",
                    lambda: sample_step(categorical_model(hidden, device), 1000, "sample_slow"),
                ),
            ],
            "ref": "ardens log_prob",
        },
    ]


CAT_DIM, CAT_LEVELS = 20, 5
# codes of a 20-column categorical table (uniform: the rate does not depend on the values)
CAT_DATA = torch.randint(CAT_LEVELS, (1000, CAT_DIM), generator=torch.Generator().manual_seed(0)).float()


def categorical_model(hidden: int, device: str):
    """A MADE with two layers of ``hidden`` over ``CAT_DIM`` categorical columns (one-hot inputs)."""
    model = ardens.MADE(CAT_DIM, [hidden, hidden], columns=[f"categorical:{CAT_LEVELS}"] * CAT_DIM)
    model.init_from_data(CAT_DATA)
    return model.to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_case(case: dict, device: str, reps: int, min_seconds: float) -> dict[str, float]:
    """Median examples/s per implementation, repetitions interleaved."""
    steps = {label: build() for label, build in case["impls"]}
    calls = {}
    for label, step in steps.items():  # warm-up (numba compilation, allocator) and calibration
        step()
        sync(device)
        t = time.perf_counter()
        step()
        sync(device)
        calls[label] = max(1, int(min_seconds / max(time.perf_counter() - t, 1e-9)))
    rates: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(reps):
        for label, step in steps.items():
            t = time.perf_counter()
            for _ in range(calls[label]):
                step()
            sync(device)
            rates[label].append(case["examples"] * calls[label] / (time.perf_counter() - t))
    return {label: statistics.median(r) for label, r in rates.items()}


def all_cases(device: str, quick: bool, real: bool) -> list[dict]:
    return real_cases(device) if real else cases(device, quick)


def _memory_child(case_index: int, impl_index: int, device: str, quick: bool, real: bool, queue) -> None:
    global DATA, REAL_DATA
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    DATA = load_data(device)
    if real:
        REAL_DATA = real_data(device)
    case = all_cases(device, quick, real)[case_index]
    step = case["impls"][impl_index][1]()
    step()  # compile / allocate once, so that what remains is the workload's own peak
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        sync(device)
        queue.put((torch.cuda.max_memory_allocated() - before) / 2**20)
    else:
        before = _status_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current resident size
        step()
        queue.put(max(0.0, _status_mib("VmHWM") - before))


def _status_mib(field: str) -> float:
    """A field of /proc/self/status in MiB (VmRSS: resident now; VmHWM: peak since reset)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def peak_memory(case_index: int, impl_index: int, device: str, quick: bool, real: bool = False) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(case_index, impl_index, device, quick, real, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return value


def machine(device: str) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main() -> None:
    global DATA, REAL_DATA
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="d=500 and one MADE shape only")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per repetition and implementation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument(
        "--real",
        action="store_true",
        help="the real-valued heads against zuko and nflows (needs the bench extra) instead of the binary suite",
    )
    args = parser.parse_args()
    DATA = load_data(args.device)
    if args.real:
        REAL_DATA = real_data(args.device)
    print("machine:", json.dumps(machine(args.device)))
    results = []
    header = f"| {'case':44s} | {'implementation':30s} | {'examples/s':>11s} | {'ratio':>7s} | {'peak MiB':>8s} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for ci, case in enumerate(all_cases(args.device, args.quick, args.real)):
        if args.only not in case["case"]:
            continue
        rates = time_case(case, args.device, args.reps, args.min_seconds)
        ref = rates[case.get("ref", case["impls"][-1][0])]
        for ii, (label, _) in enumerate(case["impls"]):
            mem = float("nan") if args.no_memory else peak_memory(ci, ii, args.device, args.quick, args.real)
            row = {
                "case": case["case"],
                "impl": label,
                "examples_per_s": rates[label],
                "ratio": rates[label] / ref,
                "peak_mib": mem,
            }
            results.append(row)
            print(
                f"| {case['case']:44s} | {label:30s} | {rates[label]:11.0f} | {row['ratio']:6.2f}x | {mem:8.1f} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.device), "results": results}, indent=1))


DATA: torch.Tensor
REAL_DATA: torch.Tensor

if __name__ == "__main__":
    main()
