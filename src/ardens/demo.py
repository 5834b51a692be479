"""The demo: NADE and MADE against two baselines on the embedded 8x8 digits.

:func:`run_demo` fits an independent-Bernoulli model (add-one smoothing) and a mixture of
Bernoullis (EM, ``K`` chosen on the validation split), trains NADE and MADE with the
settings in :data:`DEMO_MODELS` (early stopping on validation), reports the test NLL of
all four (nats ± standard error), and writes sample grids, learning curves and
``results.json`` to the output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .baselines import IndependentBernoulli, select_mixture
from .data import load_digits
from .evaluate import draw_samples, evaluate
from .plots import save_sample_grid
from .serialization import load
from .train import ModelConfig, RunDirError, TrainConfig, build_model, fit

__all__ = ["DEMO_MODELS", "run_demo", "default_out_dir"]

#: (kind, architecture, optimization) of the demo's two neural models.
DEMO_MODELS: dict[str, tuple[str, ModelConfig, TrainConfig]] = {
    "NADE": ("nade", ModelConfig(hidden=[200]), TrainConfig(epochs=300, batch_size=100, lr=0.005, patience=20)),
    "MADE": (
        "made",
        ModelConfig(hidden=[500], num_masks=8, ordering="random"),
        TrainConfig(epochs=300, batch_size=100, lr=0.005, patience=20),
    ),
}


def default_out_dir(base: str = "ardens-demo") -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that is missing or empty."""
    candidate, i = Path(base), 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        i += 1
        candidate = Path(f"{base}-{i}")
    return candidate


def _se(nll: np.ndarray) -> float:
    return float(nll.std(ddof=1) / np.sqrt(len(nll)))


def run_demo(
    out: str | os.PathLike | None = None,
    *,
    epochs: int | None = None,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into ``out`` (must be missing or empty); returns the results table.

    Interrupted (Ctrl-C) or failed, it removes what it wrote (the folder too, if it made it),
    so the same ``out`` runs again."""
    out = Path(out) if out is not None else default_out_dir()
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: is a file, not a directory; choose another --out")
    if out.exists() and any(out.iterdir()):
        raise RunDirError(f"{out}: exists and is not empty; choose another --out")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_demo(out, epochs, seed, progress, log)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        raise


def _warm_kernels(data) -> float:
    """Run NADE's fused kernels once on two rows (likelihood, gradient, sampling), so that
    their compilation is timed apart from training; seconds taken."""
    start = time.perf_counter()
    model = build_model("nade", data.dim, ModelConfig(hidden=[8]))
    model.log_prob(torch.as_tensor(data.train[:2], dtype=torch.float32)).sum().backward()
    model.sample(2, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - start


def _run_demo(out: Path, epochs: int | None, seed: int, progress: bool, log: Callable[[str], None]) -> dict[str, Any]:
    data = load_digits()
    log(
        f"data: 8x8 digits binarized at >= 8, {len(data.train)} train / {len(data.valid)} valid / "
        f"{len(data.test)} test, 64 dimensions"
    )
    results: dict[str, Any] = {}

    start = time.perf_counter()
    indep = IndependentBernoulli(alpha=1.0).fit(data.train)
    nll = -indep.log_prob(data.test)
    results["independent Bernoulli"] = {
        "nll": float(nll.mean()),
        "se": _se(nll),
        "seconds": time.perf_counter() - start,
    }

    start = time.perf_counter()
    chosen = select_mixture(data.train, data.valid, seed=seed)
    nll = -chosen.model.log_prob(data.test)
    label = f"mixture of Bernoullis (K={chosen.model.k})"
    results[label] = {"nll": float(nll.mean()), "se": _se(nll), "seconds": time.perf_counter() - start}
    log(
        "mixture of Bernoullis, validation NLL by K: "
        + ", ".join(f"{k}: {v:.2f}" for k, v in chosen.valid_nll.items())
        + f" -> K={chosen.model.k}"
    )
    save_sample_grid(data.test[:64], (8, 8), out / "data_test.png", title="test data")

    log(f"compiling the NADE kernels (numba; cached after the first run): {_warm_kernels(data):.1f}s")
    for name, (kind, model_config, train_config) in DEMO_MODELS.items():
        if epochs is not None:
            train_config = TrainConfig(**{**train_config.__dict__, "epochs": epochs})
        train_config.seed = seed
        torch.manual_seed(seed)
        model = build_model(kind, data.dim, model_config)
        masks = f", {model_config.num_masks} random orderings" if model_config.num_masks > 1 else ""
        size = sum(p.numel() for p in model.parameters())
        log(f"training {name} (hidden {model_config.hidden}{masks}, {size} parameters, Adam lr {train_config.lr})")
        result = fit(model, data, train_config, out / kind, model_kind=kind, progress=progress, log=None)
        best = load(out / kind / "best.safetensors")
        report = evaluate(best, data.test)
        results[name] = {
            "nll": report.nll,
            "se": report.stderr,
            "seconds": result.seconds,
            "epochs": result.epochs_run,
            "best_epoch": result.best_epoch,
        }
        log(
            f"  {result.epochs_run} epochs in {result.seconds:.1f}s, best valid NLL {result.best_valid_nll:.3f} "
            f"at epoch {result.best_epoch}"
        )
        save_sample_grid(
            draw_samples(best, 64, seed=seed), (8, 8), out / f"{kind}_samples.png", title=f"{name} samples"
        )

    log("")
    log(f"{'model':<32} {'test NLL (nats)':>18} {'time':>8}")
    for label, r in results.items():
        log(f"{label:<32} {r['nll']:>9.3f} ± {r['se']:<6.3f} {r['seconds']:>7.1f}s")
    log("")
    log(f"wrote to {out}/: data_test.png, nade_samples.png, made_samples.png, results.json,")
    log("  nade/ and made/ (best.safetensors, metrics.jsonl, learning_curve.png)")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
