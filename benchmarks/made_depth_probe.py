"""Why does the one-mask MADE with two hidden layers generalize so much worse than with one?

A probe at reduced width (hidden layers of 2000 instead of 8000, about 11 times fewer weights) on
binarized MNIST: the same one-mask MADE trained with several recipes, one or two hidden layers,
for a few epochs each. Validation split only; the test split is never read.

Run: .venv/bin/python benchmarks/made_depth_probe.py [--width 2000] [--epochs 12] [--threads 2]
(data from $ARDENS_DATA or --data-dir). Prints one line per run: best validation NLL, its
epoch, the training NLL at that epoch and seconds per epoch; the runs are kept under
runs/made_depth_probe/, and a run already there is reported, not trained again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ardens.data import load_dataset
from ardens.train import ModelConfig, TrainConfig, build_model, fit, read_metrics

ROOT = Path(__file__).resolve().parents[1]

# name -> (layers, direct connection, training settings)
ADAM = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-5, "lr_decay": 0.5, "decay_patience": 1}
RECIPES: dict[str, tuple[int, bool, dict]] = {
    "1 layer, Adam recipe": (1, False, ADAM),
    "2 layers, Adam recipe": (2, False, ADAM),
    "2 layers, Adam recipe, direct": (2, True, ADAM),
    "2 layers, Adam recipe, L2 1e-4": (2, False, {**ADAM, "weight_decay": 1e-4}),
    "2 layers, Adagrad lr 0.01 (authors')": (2, False, {"optimizer": "adagrad", "lr": 0.01}),
    "2 layers, direct, L2 1e-4": (2, True, {**ADAM, "weight_decay": 1e-4}),
    "2 layers, direct, Adagrad lr 0.01": (2, True, {"optimizer": "adagrad", "lr": 0.01}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--only", default=None, help="run only the recipes whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("binarized_mnist", data_dir=args.data_dir)
    for name, (layers, direct, train) in RECIPES.items():
        if args.only and args.only not in name:
            continue
        slug = name.split(" (")[0].replace(", ", "-").replace(" ", "_")
        run_dir = ROOT / "runs" / "made_depth_probe" / f"w{args.width}-{slug}"
        if not run_dir.exists():  # an existing run is reported, not retrained
            torch.manual_seed(0)
            model_config = ModelConfig(hidden=[args.width] * layers, activation="relu", direct=direct)
            model = build_model("made", data.dim, model_config)
            config = TrainConfig(epochs=args.epochs, batch_size=100, patience=4, seed=0, **train)
            fit(model, data, config, run_dir, model_kind="made", progress=False)
        print(f"{name:40s} {summary(run_dir)}", flush=True)


def summary(run_dir: Path) -> str:
    """Best validation NLL of a run, its epoch, the training NLL then, epochs and time per epoch."""
    rows = read_metrics(run_dir)
    best = min((r for r in rows if r["valid_nll"] is not None), key=lambda r: r["valid_nll"])
    per_epoch = sum(r["seconds"] for r in rows) / len(rows)
    return (
        f"valid {best['valid_nll']:7.2f} at epoch {best['epoch']:2d} "
        f"(train {best['train_nll']:6.2f}, {len(rows)} epochs, {per_epoch:5.1f} s/epoch)"
    )


if __name__ == "__main__":
    main()
