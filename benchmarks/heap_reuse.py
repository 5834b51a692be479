"""What ``reuse_freed_blocks`` (used by ``ardens.fit`` and ``evaluate`` on the CPU) saves on
large MADEs: training steps and evaluation batches with glibc's default allocation (each
masked weight matrix and gradient on fresh, kernel-zeroed pages) against reuse of freed
blocks. Each measurement runs in its own process, the two settings alternate, and the
medians are compared in the same run.

Run: .venv/bin/python benchmarks/heap_reuse.py [--hidden 8000 8000] [--threads 2]
(random weights and data of binarized MNIST's shape; the cost does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(hidden: list[int], threads: int, steps: int, reuse: bool) -> dict[str, float]:
    """Milliseconds and kernel milliseconds per training step and per evaluation batch."""
    import torch

    import ardens
    from ardens._heap import reuse_freed_blocks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ardens.MADE(784, hidden=hidden, num_masks=32, ordering="random", direct=True, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x = (torch.rand(1000, 784) < 0.13).float()

    def train(i: int) -> None:
        loss = -model.log_prob(x[:100], mask=i % 32).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def evaluate(i: int) -> None:
        with torch.no_grad():
            model.log_prob(x, mask=i % 32)

    out = {}
    with reuse_freed_blocks(reuse) as active:
        assert active == reuse, "reuse_freed_blocks has no effect here (not glibc?)"
        for name, fn in (("train", train), ("eval", evaluate)):
            for i in range(4):  # warm-up, and the heap's top padding gets touched once
                fn(i)
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for i in range(steps):
                fn(i)
            r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            out[f"{name}_ms"] = (t1 - t0) / steps * 1e3
            out[f"{name}_sys_ms"] = (r1.ru_stime - r0.ru_stime) / steps * 1e3
            out[f"{name}_faults"] = (r1.ru_minflt - r0.ru_minflt) / steps
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[8000, 8000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["default", "reuse"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.hidden, args.threads, args.steps, args.child == "reuse")))
        return
    runs: dict[str, list[dict[str, float]]] = {"default": [], "reuse": []}
    for _ in range(args.rounds):
        for setting in runs:
            cmd = [sys.executable, __file__, "--child", setting, "--threads", str(args.threads)]
            cmd += ["--steps", str(args.steps), "--hidden", *map(str, args.hidden)]
            runs[setting].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    print(f"MADE 784-{'-'.join(map(str, args.hidden))}-784, 32 masks, direct; {args.threads} threads;")
    print(f"medians of {args.rounds} processes per setting, {args.steps} steps each")
    print("| | glibc default | reuse freed blocks | ratio |")
    print("|---|---:|---:|---:|")
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in runs.items()}
    d, r = med["default"], med["reuse"]
    for name, what in (("train", "training step, batch 100"), ("eval", "evaluation, 1000 rows, one mask")):
        ms, sys_ms, faults = f"{name}_ms", f"{name}_sys_ms", f"{name}_faults"
        print(f"| {what}: ms | {d[ms]:.0f} | {r[ms]:.0f} | {d[ms] / r[ms]:.2f} |")
        print(f"| of which in the kernel: ms | {d[sys_ms]:.0f} | {r[sys_ms]:.0f} | |")
        print(f"| minor page faults | {d[faults]:.0f} | {r[faults]:.0f} | |")


if __name__ == "__main__":
    main()
