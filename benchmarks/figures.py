"""Figures for BENCHMARKS.md: MNIST samples beside training images, and NLL against time.

Run (after ``benchmarks/reproduce.py mnist``):
    .venv/bin/python benchmarks/figures.py [--data-dir DIR]

Reads the chosen MNIST models from ``pretrained/mnist/*.safetensors`` (or from their run
directory where the weights are too large to commit) and the training logs
(``metrics.jsonl``) of their runs, and writes ``benchmarks/figures/mnist_samples.png`` and
``benchmarks/figures/mnist_nll_vs_time.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import ardens
from ardens.data import load_dataset
from ardens.evaluate import draw_samples
from ardens.plots import image_grid
from ardens.serialization import atomic_write
from ardens.train import VALID_MASKS, read_metrics

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "figures"


def chosen_models() -> list[tuple[str, int | None, Path, Path]]:
    """(row name, members in its logged validation NLL or None for one-member models,
    checkpoint, its run directory) for every MNIST result."""
    out = []
    for result in sorted((ROOT / "benchmarks" / "results" / "mnist").glob("*.json")):
        r = json.loads(result.read_text())
        checkpoint = ROOT / "pretrained" / "mnist" / f"{result.stem}.safetensors"
        if not checkpoint.is_file() and "checkpoint" in r:  # too large to commit (MADE-8000): the run's copy
            checkpoint = ROOT / r["checkpoint"]
        members = r.get("model", {}).get("num_masks", 1)
        logged = min(members, r.get("train", {}).get("valid_masks", VALID_MASKS))
        if checkpoint.is_file():
            out.append((r["row"], logged if members > 1 else None, checkpoint, ROOT / Path(r["checkpoint"]).parent))
    return out


def samples_figure(models, train: np.ndarray, path: Path, num: int = 64) -> None:
    panels = [("training images", train[np.random.default_rng(0).choice(len(train), num, replace=False)])]
    panels += [(name, draw_samples(ardens.load(ckpt), num, seed=0)) for name, _, ckpt, _ in models]
    fig = Figure(figsize=(3.2 * len(panels), 3.6))
    for i, (title, x) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.imshow(image_grid(x, (28, 28), cols=8), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda tmp: FigureCanvasAgg(fig).print_png(tmp))


def time_figure(models, path: Path) -> None:
    fig = Figure(figsize=(6, 5.4))
    ax = fig.add_subplot(1, 1, 1)
    for name, logged, _, run_dir in models:
        rows = read_metrics(run_dir)
        minutes = np.cumsum([r["seconds"] for r in rows]) / 60
        points = [(m, r["valid_nll"]) for m, r in zip(minutes, rows) if r["valid_nll"] is not None]
        ax.plot(*zip(*points), label=f"{name} (valid{'' if logged is None else f', first {logged} masks'})")
    ax.set_xlabel("training time, minutes (2-core CPU; threads per run: BENCHMARKS.md)")
    ax.set_ylabel("validation NLL, nats")
    ax.set_ylim(top=110)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: no curve hidden
    fig.tight_layout()
    atomic_write(path, lambda tmp: FigureCanvasAgg(fig).print_png(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    models = chosen_models()
    if not models:
        raise SystemExit("figures: no MNIST results yet (run benchmarks/reproduce.py mnist)")
    OUT.mkdir(parents=True, exist_ok=True)
    train = load_dataset("binarized_mnist", data_dir=args.data_dir).train
    samples_figure(models, train, OUT / "mnist_samples.png")
    time_figure(models, OUT / "mnist_nll_vs_time.png")
    print(f"wrote {OUT / 'mnist_samples.png'} and {OUT / 'mnist_nll_vs_time.png'}")


if __name__ == "__main__":
    main()
