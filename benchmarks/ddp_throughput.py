"""Training throughput at 1 and N ranks (torchrun, DDP on gloo), same model, data and global batch.

Run:  ARDENS_DATA=../shared/data .venv/bin/python benchmarks/ddp_throughput.py [--ranks 1 2] [--epochs 3]

Each configuration trains ``--model`` on binarized MNIST's 50,000 training images (digits
if absent) through ``ardens train`` (``--nproc N``, N ranks of ``cores / N`` threads each),
and reports training examples per second: training rows times epochs over the summed epoch
times of ``metrics.jsonl`` (validation excluded; the first epoch, with its warm-up, is
dropped). The runs are interleaved repetition by repetition; the figure is the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one_run(ranks: int, args: argparse.Namespace, folder: Path, rep: int) -> float:
    out = folder / f"r{ranks}-{rep}"
    cmd = [sys.executable, "-m", "ardens", "train", "--model", args.model, "--hidden", *map(str, args.hidden)]
    cmd += ["--data", args.data, "--out", str(out), "--epochs", str(args.epochs), "--batch-size", str(args.batch)]
    cmd += ["--patience", "1000", "--quiet"]
    if ranks > 1:
        cmd += ["--nproc", str(ranks)]
    else:
        cmd += ["--threads", str(os.cpu_count())]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"ddp_throughput: {' '.join(cmd)} failed:\n{proc.stderr}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][1:]
    from ardens.data import load_dataset

    n = len(load_dataset(args.data).train)
    return n * len(rows) / sum(r["seconds"] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", default="made")
    parser.add_argument("--hidden", type=int, nargs="+", default=[500])
    parser.add_argument("--data", default="binarized_mnist")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rates: dict[int, list[float]] = {r: [] for r in args.ranks}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for r in args.ranks:
                rates[r].append(one_run(r, args, Path(tmp), rep))
    base = statistics.median(rates[args.ranks[0]])
    print(f"{args.model} {args.hidden} on {args.data}, global batch {args.batch}, {os.cpu_count()} cores")
    print("| ranks | threads per rank | examples/s (median) | ratio |")
    print("|---:|---:|---:|---:|")
    for r in args.ranks:
        med = statistics.median(rates[r])
        print(f"| {r} | {max(1, (os.cpu_count() or 1) // r)} | {med:.0f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
