"""Binarized MNIST inpainting: exact conditionals of NADE, MADE and DeepNADE against two peers.

Run (one thread, as in the committed results):
    ARDENS_DATA=/work/shared/data .venv/bin/python benchmarks/inpainting.py --threads 1
    .venv/bin/python benchmarks/inpainting.py --render-only     # BENCHMARKS.md from the JSON

Two tasks on the test split of ``binarized_mnist`` (28x28, row-major, 784 pixels):

(a) ``top``: the bottom half (392 pixels) given the top half. The top half is the first 392
    pixels, a prefix of the natural ordering, so the committed natural-order NADE and MADE give
    ``log p(x_bottom | x_top)`` exactly (``log_prob(x, observed=m)``).
(b) ``random``: a random half of the pixels (exactly 392, from a generator seeded by
    (``MASK_SEED``, split, image index): the same masks for every method) given the others. NADE
    and MADE have no exact conditional for such sets (the library refuses them with a one-line
    error, and offers no estimate): they are marked "not exact" and skipped.

Methods:

- ardens: ``pretrained/mnist/nade.safetensors`` (NADE, 500 units) and
  ``pretrained/mnist/made-800x2.safetensors`` (MADE 2x800, direct), both natural order; and a
  DeepNADE (one layer of 500 relu units, order-agnostic training) trained here with
  :func:`ardens.train.fit` on the training split, stopped early on the validation split, in
  ``runs/inpainting/`` (a finished run is reused). It is exact for any observed set: one
  ordering (member 0), or the ensemble of ``ORDERINGS`` orderings (the library's conditional of
  the ensemble of the observed-first orderings); which one is tested is chosen per task on
  validation. Completions (for the pixel error) are the per-pixel majority of ``--draws`` draws
  from the model's exact conditional, ``impute(x, m, draws=D, fill="mode")``.
- independent Bernoulli pixels fitted on training (``ardens.baselines.IndependentBernoulli``,
  add-one smoothing): its conditional NLL is the marginal NLL of the missing pixels; its
  completion is ``p > 1/2``.
- scikit-learn ``KNNImputer`` (5 neighbours), fitted on the first ``KNN_TRAIN`` training images:
  no likelihood; its completion is its fill thresholded at 1/2.

NLL: nats, summed over the missing pixels of an image, mean over images +- standard error. Pixel
error: the fraction of missing pixels the completion gets wrong, mean over images +- standard
error. Every candidate's figure on ``--valid-images`` validation images is recorded; the choices
use those only, and the test split is read once, for the chosen models, on ``--test-images`` test
images (NLL) and the first ``--error-images`` of those (pixel error; sampling a NADE completion
costs 392 network passes per draw). The subsets are fixed random ones (:func:`subset`; the test
split is sorted by digit class). Results:
``benchmarks/results/inpainting/mnist.json``, the figure
``benchmarks/figures/inpainting/completions.png`` (8 test digits: originals, observed top halves
and sampled completions from the best ardens model on validation), and the tables in
BENCHMARKS.md between ``<!-- inpainting -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ardens  # noqa: E402
from ardens.baselines import IndependentBernoulli  # noqa: E402
from ardens.data import load_dataset  # noqa: E402
from ardens.evaluate import evaluate  # noqa: E402
from ardens.serialization import atomic_write_text  # noqa: E402
from reproduce import PRETRAINED, RESULTS, ROOT, machine, point_id, train_point, write_block  # noqa: E402

DATASET = "binarized_mnist"
PIXELS, HALF = 784, 392
MASK_SEED = 20261203
SUBSET_SEED = 7
SPLIT_CODES = {"valid": 1, "test": 2}
TASKS = ("top", "random")
TASK_TITLES = {
    "top": "(a) the bottom half given the top half",
    "random": "(b) a random half of the pixels given the other half",
}
KNN_TRAIN, KNN_K = 10_000, 5
ORDERINGS = 3
NADE_FILE = PRETRAINED / "mnist" / "nade.safetensors"
MADE_FILE = PRETRAINED / "mnist" / "made-800x2.safetensors"
RESULT_FILE = RESULTS / "inpainting" / "mnist.json"
FIGURE_FILE = ROOT / "benchmarks" / "figures" / "inpainting" / "completions.png"
RUNS = ROOT / "runs" / "inpainting"
BERNOULLI = "Independent Bernoulli pixels (training marginals)"
KNN = f"scikit-learn KNNImputer (k={KNN_K}, {KNN_TRAIN:,} training images)"
NADE_NAME = "NADE, 500 units (pretrained, natural order)"
MADE_NAME = "MADE 2x800, direct (pretrained, natural order)"
DEEPNADE = {
    "kind": "deepnade",
    "model": {"hidden": [500], "activation": "relu", "num_masks": ORDERINGS, "ordering": "random", "seed": 0},
    "train": {
        "epochs": 35,
        "batch_size": 100,
        "optimizer": "adam",
        "lr": 0.001,
        "patience": 4,
        "valid_every": 5,
        "valid_masks": 1,
        "seed": 0,
    },
    "point": {},
}
NOT_EXACT = (
    "not exact: the observed set is not a prefix of the model's ordering; the library refuses it "
    "and has no estimate, so it is skipped"
)


# -- masks ------------------------------------------------------------------------------------
def top_observed(count: int) -> np.ndarray:
    """``(count, 784)``, true on the top half: the first 392 pixels of a row-major 28x28 image."""
    m = np.zeros((count, PIXELS), dtype=bool)
    m[:, :HALF] = True
    return m


def random_observed(split: str, indices: np.ndarray | list[int], pixels: int = PIXELS) -> np.ndarray:
    """True where observed: for image ``i`` of ``split``, exactly half of the pixels, drawn from a
    generator seeded by ``(MASK_SEED, split, i)`` (so an image's mask does not depend on which
    other images are evaluated, and every method sees the same masks)."""
    out = np.zeros((len(indices), pixels), dtype=bool)
    for row, i in enumerate(indices):
        rng = np.random.default_rng([MASK_SEED, SPLIT_CODES[split], int(i)])
        out[row, rng.permutation(pixels)[: pixels // 2]] = True
    return out


def observed_for(task: str, split: str, indices: np.ndarray) -> np.ndarray:
    """The observed masks of images ``indices`` of ``split`` for ``task``."""
    return top_observed(len(indices)) if task == "top" else random_observed(split, indices)


def subset(split: str, size: int, count: int) -> np.ndarray:
    """A fixed random order of the images of ``split`` (seeded by ``(SUBSET_SEED, split)``), its
    first ``count``: the test split is sorted by digit class (its first 1,000 images are zeros),
    so a prefix of it would not do. A shorter subset is a prefix of a longer one."""
    return np.random.default_rng([SUBSET_SEED, SPLIT_CODES[split]]).permutation(size)[:count]


# -- scores -----------------------------------------------------------------------------------
def summary(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error (over images)."""
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return float(values.mean()), se


def error_rates(fill: np.ndarray, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per image: the fraction of its missing pixels where ``fill`` differs from ``x``."""
    missing = ~observed
    wrong = (np.asarray(fill) != np.asarray(x)) & missing
    return wrong.sum(1) / missing.sum(1)


def bernoulli_conditional_nll(probs: np.ndarray, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``-log p(x_U | x_O)`` per image under independent pixels: the missing pixels' own NLL."""
    x = np.asarray(x, dtype=np.float64)
    ll = np.where(x > 0, np.log(probs), np.log1p(-probs))
    return -np.where(observed, 0.0, ll).sum(1)


def bernoulli_fill(probs: np.ndarray, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The most probable value of each missing pixel (``p > 1/2``); observed pixels kept."""
    return np.where(observed, x, (probs > 0.5)[None, :]).astype(x.dtype)


def knn_fill(train: np.ndarray, x: np.ndarray, observed: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """KNNImputer's fill (the mean of the ``k`` nearest training images on the observed pixels),
    thresholded at 1/2; observed pixels kept."""
    from sklearn.impute import KNNImputer

    imputer = KNNImputer(n_neighbors=k).fit(np.asarray(train, dtype=np.float64))
    filled = imputer.transform(np.where(observed, np.asarray(x, dtype=np.float64), np.nan))
    return np.where(observed, x, filled >= 0.5).astype(x.dtype)


def _chunks(count: int, batch: int):
    for lo in range(0, count, batch):
        yield slice(lo, min(count, lo + batch))


def model_conditional_nll(model, x: np.ndarray, observed: np.ndarray, batch: int = 500, **kw: Any) -> np.ndarray:
    """``-log p(x_U | x_O)`` per image from an ardens model, in chunks of ``batch`` images."""
    out = []
    with torch.no_grad():
        for s in _chunks(len(x), batch):
            xb = torch.as_tensor(x[s], dtype=torch.float32)
            mb = torch.as_tensor(observed[s])
            out.append(-model.log_prob(xb, observed=mb, **kw).double().numpy())
    return np.concatenate(out)


def model_mode_fill(
    model, x: np.ndarray, observed: np.ndarray, draws: int, seed: int, batch: int = 500, **kw: Any
) -> np.ndarray:
    """The per-pixel majority of ``draws`` draws from the model's conditional (``fill="mode"``)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in _chunks(len(x), batch):
            xb = torch.as_tensor(x[s], dtype=torch.float32)
            mb = torch.as_tensor(observed[s])
            out.append(model.impute(xb, mb, generator=gen, draws=draws, fill="mode", **kw).numpy())
    return np.concatenate(out).round().astype(x.dtype)


# -- the ardens candidates ----------------------------------------------------------------------
class Candidate:
    """An ardens model read one way (``kw``: e.g. ``mask=0``), in chunks of ``batch`` images."""

    def __init__(self, name: str, model, tasks: tuple[str, ...], batch: int, **kw: Any) -> None:
        self.name, self.model, self.tasks, self.batch, self.kw = name, model, tasks, batch, kw

    def nll(self, x: np.ndarray, observed: np.ndarray) -> np.ndarray:
        return model_conditional_nll(self.model, x, observed, self.batch, **self.kw)

    def fill(self, x: np.ndarray, observed: np.ndarray, draws: int, seed: int) -> np.ndarray:
        rows = max(1, self.batch // draws)  # impute works on images x draws rows at once
        return model_mode_fill(self.model, x, observed, draws, seed, rows, **self.kw)


def refusal(model, x: np.ndarray, observed: np.ndarray) -> str:
    """The library's one-line error for a non-prefix observed set (recorded, not worked around)."""
    try:
        model_conditional_nll(model, x[:1], observed[:1])
    except ValueError as err:
        return str(err)
    raise AssertionError(f"{type(model).__name__} accepted a non-prefix observed set")


def train_deepnade(data, runs: Path, spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Train (or reuse the finished run of) the DeepNADE; its best validation checkpoint."""
    run_dir = runs / f"deepnade-{point_id(spec)}"
    earlier = (run_dir / "resume.safetensors").is_file()  # started by an earlier invocation
    result = train_point(spec, data, run_dir)
    model = ardens.load(run_dir / "best.safetensors")
    info = {
        "model": model.config(),
        "train": spec["train"],
        "epochs_run": result.epochs_run,
        "epoch_cap": spec["train"]["epochs"],
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "best_valid_nll_member0": result.best_valid_nll,
        "train_seconds": result.seconds,
        "trained_earlier": earlier,
        "run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
    }
    return model, info


# -- the run ------------------------------------------------------------------------------------
def timed(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[Any, float]:
    """``fn(*args, **kw)`` and the seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    wall = time.perf_counter()
    data = load_dataset(DATASET, data_dir=args.data_dir)
    assert data.dim == PIXELS and data.image_shape == (28, 28) and data.image_order == "C", "unexpected layout"
    spec = json.loads(json.dumps(DEEPNADE))
    if args.hidden:
        spec["model"]["hidden"] = [args.hidden]
    if args.epochs:
        spec["train"]["epochs"] = args.epochs
        spec["train"]["valid_every"] = min(spec["train"]["valid_every"], args.epochs)
    print(f"-- DeepNADE {spec['model']} training (cap {spec['train']['epochs']} epochs)", flush=True)
    deepnade, dn_info = train_deepnade(data, Path(args.runs), spec)
    print(
        f"   {dn_info['epochs_run']} epochs, best {dn_info['best_epoch']}, {dn_info['train_seconds']:.0f} s",
        flush=True,
    )
    dn_name = f"DeepNADE 1x{spec['model']['hidden'][0]} relu"
    candidates = [
        Candidate(NADE_NAME, ardens.load(NADE_FILE), ("top",), 100),  # NADE's kernels: ~1 ms/row in 100s
        Candidate(MADE_NAME, ardens.load(MADE_FILE), ("top",), 500),
        Candidate(f"{dn_name}, 1 ordering", deepnade, TASKS, 1000, mask=0),
        Candidate(f"{dn_name}, ensemble of {ORDERINGS} orderings", deepnade, TASKS, 1000),
    ]
    bern = IndependentBernoulli(alpha=1.0).fit(data.train)
    nv, nt = min(args.valid_images, len(data.valid)), min(args.test_images, len(data.test))
    ne = min(args.error_images, nt)
    record: dict[str, Any] = {
        "dataset": DATASET,
        "protocol": {
            "valid_images": nv,
            "test_images_nll": nt,
            "test_images_error": ne,
            "test_images_all": len(data.test) if args.all_test else None,
            "draws": args.draws,
            "mask_seed": MASK_SEED,
            "subset_seed": SUBSET_SEED,
            "knn": {"k": KNN_K, "train_images": KNN_TRAIN},
            "bernoulli_alpha": 1.0,
        },
        "deepnade": dn_info,
        "tasks": {},
    }
    for task in TASKS:
        print(f"== task {task}", flush=True)
        record["tasks"][task] = run_task(task, data, candidates, bern, deepnade, nv, nt, ne, args)
    if args.joint_test:  # how far from converged: the joint NLL of ordering 0, all test images
        ev, secs = timed(evaluate, deepnade, data.test, masks=1)
        record["deepnade"]["test_joint_nll_member0"] = {"nll": ev.nll, "stderr": ev.stderr, "seconds": secs}
    best_top = next(c for c in candidates if c.name == record["tasks"]["top"]["best_ardens"])
    shown = subset("test", len(data.test), 8)
    record["figure"] = draw_figure(best_top, data.test[shown], Path(args.figure), seed=7, draws=4)
    record["figure"]["test_indices"] = shown.tolist()
    record["wall_seconds"] = time.perf_counter() - wall
    return record


def run_task(
    task: str, data, candidates: list[Candidate], bern, deepnade, nv: int, nt: int, ne: int, args
) -> dict[str, Any]:
    """Validation of every candidate (the choices), then the test figures of every method."""
    iv, it = subset("valid", len(data.valid), nv), subset("test", len(data.test), nt)
    xv, xt = data.valid[iv], data.test[it]
    mv, mt = observed_for(task, "valid", iv), observed_for(task, "test", it)
    out: dict[str, Any] = {"validation": {}, "test": {}}
    v = bernoulli_conditional_nll(bern.probs, xv, mv)
    out["validation"][BERNOULLI] = dict(zip(("nll", "stderr"), summary(v)))
    for c in candidates:
        if task not in c.tasks:
            out["validation"][c.name] = {"skipped": NOT_EXACT}
            continue
        v, secs = timed(c.nll, xv, mv)
        mean, se = summary(v)
        out["validation"][c.name] = {"nll": mean, "stderr": se, "seconds": secs}
        print(f"   valid {c.name}: {mean:.3f} ± {se:.3f} ({secs:.0f} s)", flush=True)
    usable = [c for c in candidates if task in c.tasks]
    dn = min((c for c in usable if c.model is deepnade), key=lambda c: out["validation"][c.name]["nll"])
    best = min(usable, key=lambda c: out["validation"][c.name]["nll"])
    out["chosen_deepnade"], out["best_ardens"] = dn.name, best.name
    # test: each method once; the pixel error on the first ne of the nt images
    xe, me = xt[:ne], mt[:ne]
    seed = 1000 * (1 + TASKS.index(task))
    fill, secs = timed(bernoulli_fill, bern.probs, xe, me)
    t_nll, secs_nll = timed(bernoulli_conditional_nll, bern.probs, xt, mt)
    out["test"][BERNOULLI] = _row(t_nll, error_rates(fill, xe, me), secs + secs_nll, "exact")
    if args.all_test and task == "top":
        out["test"][BERNOULLI]["all"] = _all(partial(bernoulli_conditional_nll, bern.probs), data)
    fill, secs = timed(knn_fill, data.train[:KNN_TRAIN], xe, me)
    out["test"][KNN] = _row(None, error_rates(fill, xe, me), secs, "no likelihood")
    for c in candidates:
        if c.model is deepnade and c is not dn:
            continue
        if task not in c.tasks:
            out["test"][c.name] = {"skipped": NOT_EXACT, "library_error": refusal(c.model, xt, mt)}
            continue
        t_nll, secs_nll = timed(c.nll, xt, mt)
        fill, secs = timed(c.fill, xe, me, args.draws, seed)
        r = out["test"][c.name] = _row(t_nll, error_rates(fill, xe, me), secs + secs_nll, "exact")
        r.update(nll_seconds=secs_nll, fill_seconds=secs)
        if args.all_test and task == "top" and c.model is not deepnade:
            r["all"] = _all(c.nll, data)
        print(
            f"   test {c.name}: {r['nll']:.3f} ± {r['nll_stderr']:.3f} nats, "
            f"error {100 * r['error']:.2f}% ({secs_nll:.0f} + {secs:.0f} s)",
            flush=True,
        )
    return out


def _row(nll: np.ndarray | None, errors: np.ndarray, seconds: float, exact: str) -> dict[str, Any]:
    row: dict[str, Any] = {"exact": exact, "seconds": seconds, "images_error": len(errors)}
    if nll is not None:
        row["nll"], row["nll_stderr"] = summary(nll)
        row["images_nll"] = len(nll)
    row["error"], row["error_stderr"] = summary(errors)
    return row


def _all(nll: Callable[[np.ndarray, np.ndarray], np.ndarray], data) -> dict[str, Any]:
    """The bottom-half NLL over the whole test split (the cheap exact models only)."""
    v, secs = timed(nll, data.test, top_observed(len(data.test)))
    mean, se = summary(v)
    return {"nll": mean, "stderr": se, "images": len(v), "seconds": secs}


def draw_figure(candidate: Candidate, x: np.ndarray, path: Path, seed: int, draws: int) -> dict[str, Any]:
    """Originals, observed top halves, and ``draws`` sampled completions per digit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = top_observed(len(x))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        kw = candidate.kw
        xs = torch.as_tensor(x, dtype=torch.float32)
        samples = candidate.model.impute(xs, torch.as_tensor(m), generator=gen, draws=draws, fill="sample", **kw)
    samples = samples.numpy()
    rows = [("original", x.astype(float)), ("observed", np.where(m, x, 0.5))]
    rows += [(f"sample {k + 1}", samples[k]) for k in range(draws)]
    fig, axes = plt.subplots(len(rows), len(x), figsize=(1.1 * len(x), 1.15 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c in range(len(x)):
            ax = axes[r, c]
            ax.imshow(images[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r >= 2:
                ax.axhline(13.5, color="tab:red", lw=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"Bottom halves drawn from p(bottom | top): {candidate.name}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    shown = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    return {"path": shown, "model": candidate.name, "test_images": len(x), "draws": draws, "seed": seed}


# -- rendering -----------------------------------------------------------------------------------
def _num(v: float, digits: int) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def render(record: dict[str, Any]) -> str:
    p, dn = record["protocol"], record["deepnade"]
    same = p["test_images_error"] == p["test_images_nll"]
    mach = record["machine"]
    lines = [
        f"Command: `{record['command']}`; machine: {mach['cpu']} ({mach['cores']} cores, "
        f"{mach['threads']} thread), torch {mach['torch']}, ardens at {record.get('library', 'unknown')}; "
        f"wall time {record['wall_seconds'] / 60:.1f} min"
        + (
            f", plus the DeepNADE's training ({dn['train_seconds'] / 60:.1f} min), done by an earlier invocation "
            "of the same command and reused"
            if dn.get("trained_earlier")
            else f" (of which DeepNADE training {dn['train_seconds'] / 60:.1f} min)"
        )
        + ".",
        "",
        f"NLL: nats over the missing pixels (392 per image), mean ± standard error over "
        f"{p['test_images_nll']:,} test images (a fixed random subset, seed {p['subset_seed']}: the test split is "
        "sorted by digit class). Every NLL here is exact (no estimate): NADE and MADE "
        "only on (a), where the top half is a prefix of their ordering; DeepNADE on both (the exact "
        "conditional of its ordering, or of the ensemble of its observed-first orderings). Pixel error: "
        "the fraction of missing pixels the completion gets wrong, on "
        + ("the same images" if same else f"the first {p['test_images_error']:,} of those images")
        + f": ardens models fill each pixel with the majority of {p['draws']} draws from their "
        'exact conditional (`impute(..., fill="mode")`), the Bernoulli peer with p > 1/2, KNN with its '
        "fill ≥ 1/2. The ardens majority is a Monte Carlo estimate of each pixel's most probable value "
        "given the observed ones (exact draws, but few of them); under the model's own conditional it is "
        "in expectation never better than the exact per-pixel mode, so these errors likely overstate what an "
        "exact most-probable fill would give. "
        "Seconds: that method's test evaluation (NLL and completion), wall clock on one thread of a machine "
        "shared with other jobs.",
        "",
    ]
    for task in TASKS:
        out = record["tasks"].get(task)
        if out is None:
            continue
        all_col = task == "top" and p.get("test_images_all")
        head = "| method | NLL (nats) | "
        head += f"NLL, all {p['test_images_all']:,} test images | " if all_col else ""
        head += "pixel error, % | seconds | likelihood |"
        lines += [f"**{TASK_TITLES[task]}**", "", head, "|---|---:|" + ("---:|" if all_col else "") + "---:|---:|---|"]
        for name, r in out["test"].items():
            if "skipped" in r:
                cells = ["—"] + (["—"] if all_col else []) + ["—", "—", "not exact for this observed set: skipped"]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
                continue
            nll = f"{r['nll']:.2f} ± {r['nll_stderr']:.2f}" if "nll" in r else "—"
            if name == out["best_ardens"]:
                nll = f"**{nll}**"
            cells = [nll]
            if all_col:
                a = r.get("all")
                cells.append(f"{a['nll']:.2f} ± {a['stderr']:.2f}" if a else "—")
            cells += [
                f"{100 * r['error']:.2f} ± {100 * r['error_stderr']:.2f}",
                f"{r['seconds']:.0f}",
                r["exact"],
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        val = "; ".join(
            f"{name} {v['nll']:.2f} ± {v['stderr']:.2f}" for name, v in out["validation"].items() if "nll" in v
        )
        lines += [
            "",
            f"Validation NLL ({p['valid_images']:,} random validation images, masks drawn the same way): {val}. "
            f"DeepNADE tested as: {out['chosen_deepnade']}; best ardens model on validation (bold): "
            f"{out['best_ardens']}.",
            "",
        ]
    joint = dn.get("test_joint_nll_member0")
    joint_text = f"; its joint test NLL (ordering 0) {joint['nll']:.2f} ± {joint['stderr']:.2f}" if joint else ""
    lines += [
        f"DeepNADE: `{json.dumps(dn['model'])}`, trained here (`{json.dumps(dn['train'])}`, the library's "
        f"`fit`, early stopping on the validation split's exact NLL of ordering 0): {dn['epochs_run']} epochs "
        f"of a cap of {dn['epoch_cap']} in {dn['train_seconds'] / 60:.1f} min, best epoch {dn['best_epoch']}, "
        f"validation NLL {dn['best_valid_nll_member0']:.2f}{joint_text}. "
        + ("It stopped early." if dn["stopped_early"] else "It stopped at the epoch cap, far from converged.")
        + " Masks of (b): exactly half of each image's pixels, from a generator seeded by "
        f"({p['mask_seed']}, split, image index), the same for every method.",
        "",
    ]
    fig = record.get("figure")
    if fig:
        lines += [
            f"![bottom-half completions]({fig['path']})",
            "",
            f"{fig['test_images']} test digits: originals, observed top halves, and {fig['draws']} bottom halves "
            f'sampled from {fig["model"]} (`impute(x, observed, generator=..., fill="sample")`).',
        ]
    return "\n".join(lines).rstrip()


def library_version() -> str:
    """The commit the library was imported from, and whether src/ardens differed from it."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "src/ardens")
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in src/ardens' if dirty else ''}" if head else "unknown"


def write_markdown(record: dict[str, Any]) -> None:
    write_block("inpainting", render(record))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--valid-images", type=int, default=500, help="validation images for every choice")
    parser.add_argument("--test-images", type=int, default=1000, help="test images for the NLL")
    parser.add_argument("--error-images", type=int, default=1000, help="test images for the pixel error")
    parser.add_argument("--draws", type=int, default=5, help="draws per image for the completions' majority")
    parser.add_argument("--no-all-test", dest="all_test", action="store_false", help="skip NADE/MADE on all 10,000")
    parser.add_argument(
        "--no-joint-test", dest="joint_test", action="store_false", help="skip DeepNADE's joint test NLL"
    )
    parser.add_argument("--hidden", type=int, default=None, help="DeepNADE's width (smoke tests only)")
    parser.add_argument("--epochs", type=int, default=None, help="DeepNADE's epoch cap (smoke tests only)")
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--results", default=str(RESULT_FILE))
    parser.add_argument("--figure", default=str(FIGURE_FILE))
    parser.add_argument("--no-markdown", dest="markdown", action="store_false")
    parser.add_argument("--render-only", action="store_true")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = Path(args.results)
    if args.render_only:
        record = json.loads(path.read_text())
    else:
        library = library_version()  # at the start: the code this run imports
        record = run(args)
        record.update(
            library=library,
            machine=machine(),
            command=" ".join([".venv/bin/python", "benchmarks/inpainting.py", *map(shlex.quote, argv)]),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    if args.markdown:
        write_markdown(record)
    print(render(record))


if __name__ == "__main__":
    main()
