"""Class-conditional binary images: a MADE p(x | y) with the class label y as its context.

Run (2-core machine: one thread, niced):
    nice -n 5 .venv/bin/python benchmarks/class_conditional.py                  # OCR letters, then Caltech-101
    nice -n 5 .venv/bin/python benchmarks/class_conditional.py --sets ocr_letters
    nice -n 5 .venv/bin/python benchmarks/class_conditional.py --sets binarized_mnist  # needs its labels
    .venv/bin/python benchmarks/class_conditional.py --render-only              # BENCHMARKS.md from the JSON

**Substitution.** The issue asks for class-conditional *binarized MNIST* with the digit label as
context. The shared ``binarized_mnist.npz`` (Larochelle's fixed binarization) holds no labels,
and this machine cannot download them, so the benchmark runs on the labelled binary image sets
that are here: ``ocr_letters.npz`` (16x8 images, 26 letter classes; the main set) and
``caltech101_silhouettes_28.npz`` (28x28 silhouettes, 101 classes, labels 1..101 stored, used
here as codes 0..100). ``--sets binarized_mnist`` runs the issue's set as soon as its file holds
``train_labels``/``valid_labels``/``test_labels`` (the digits in each split's row order); until
then it stops with a one-line message naming the missing arrays.

Protocol, per set:

- The label enters as a one-hot context vector (``context_features`` = number of classes),
  encoded by :func:`ardens.context.fit_context` (categorical codes ``0..K-1``, stored in the
  checkpoint). A conditional MADE ``p(x | y)`` and the same MADE without context ``p(x)`` (one
  hidden layer of 500 ReLU units, natural ordering, a direct input-to-output layer, one mask) are
  trained with :func:`ardens.train.fit` (Adam, early stopping on the validation NLL); every
  candidate of the set's small grid is trained, and the one with the lowest validation NLL
  (of ``p(x | y)`` with the true labels, resp. of ``p(x)``) is chosen. Only the chosen models
  are evaluated on the test split.
- Test figures, in nats, mean ± standard error over the test rows: ``-log p(x | y)`` with the
  true label; ``-log p(x)`` with ``p(x) = sum_y p(x | y) p(y)``, ``p(y)`` the training class
  frequencies (log space, ``logsumexp`` in float64); the unconditional model's ``-log p(x)``;
  the accuracy of Bayes' rule ``argmax_y p(x | y) p(y)`` and the log-loss ``-log p(y | x)`` of
  its posterior.
- Peers, measured in the same run: the class prior (majority class; log-loss of ``p(y)``);
  a Bernoulli naive Bayes (independent pixels per class, add-one smoothing: a class-conditional
  density too, scored by the same functions); scikit-learn's ``LogisticRegression`` on the
  pixels (``C`` chosen on validation accuracy; accuracy and log-loss only).
- Figure ``benchmarks/figures/class_conditional/<set>_samples.png``: 8 samples of
  ``p(x | y)`` for each class (the first 26 classes of a larger set), under the training
  class means.

Runs live in ``runs/class_conditional/<set>/<conditional|unconditional>/<point>`` (git-ignored;
an interrupted run is resumed), results in ``benchmarks/results/class_conditional/<set>.json``,
and the table in BENCHMARKS.md between ``<!-- class-conditional -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ardens  # noqa: E402
from ardens.context import fit_context  # noqa: E402
from ardens.data import Dataset, data_dirs  # noqa: E402
from ardens.evaluate import log_likelihoods  # noqa: E402
from ardens.serialization import atomic_write_text  # noqa: E402
from reproduce import ROOT, grid_points, machine, point_id, train_point, write_block  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "class_conditional"
FIGURES = ROOT / "benchmarks" / "figures" / "class_conditional"
RUNS = ROOT / "runs" / "class_conditional"
MARKER = "class-conditional"
SAMPLES_PER_CLASS = 8
CLASSES_SHOWN = 26
SUBSTITUTION = (
    "The issue asks for class-conditional *binarized MNIST* with the digit label as context. The shared"
    " `binarized_mnist.npz` (Larochelle's fixed binarization) holds no labels and this machine cannot download"
    " them, so this benchmark runs on the labelled binary image sets that are here instead: OCR letters (main"
    " set) and Caltech-101 silhouettes. No MNIST figure is reported; `--sets binarized_mnist` runs the issue's set"
    " unchanged once its file holds the digit labels of each split."
)

# Per set: image layout, label offset (stored labels minus offset = codes 0..K-1), the MADE
# shared by the conditional and the unconditional model, its training options, and the
# candidates (each trained for both models; the lowest validation NLL is chosen).
SETS: dict[str, dict[str, Any]] = {
    "ocr_letters": {
        "title": "OCR letters",
        "image_shape": (16, 8),
        "image_order": "C",
        "label_offset": 0,
        "class_names": [chr(ord("a") + k) for k in range(26)],
        "model": {"hidden": [500], "activation": "relu", "ordering": "natural", "direct": True},
        "train": {"epochs": 200, "batch_size": 100, "optimizer": "adam", "lr": 0.001, "patience": 10, "seed": 0},
        "points": [{"train.weight_decay": 0.0}, {"train.weight_decay": 0.0001, "train.decay_biases": False}],
        "logreg_C": [0.1, 1.0],
    },
    "caltech101_silhouettes_28": {
        "title": "Caltech-101 silhouettes",
        "image_shape": (28, 28),
        "image_order": "F",
        "label_offset": 1,
        "class_names": None,
        "model": {"hidden": [500], "activation": "relu", "ordering": "natural", "direct": True},
        "train": {
            "epochs": 300,
            "batch_size": 25,
            "optimizer": "adam",
            "lr": 0.001,
            "patience": 10,
            "lr_decay": 0.5,
            "decay_patience": 5,
            "seed": 0,
            "weight_decay": 0.001,
        },
        "points": [{"model.dropout": 0.0}, {"model.dropout": 0.5}],
        "logreg_C": [0.1, 1.0],
    },
    # The set: runs only when asked for (--sets binarized_mnist) and its file holds the
    # digit labels (train_labels, valid_labels, test_labels, 0..9 in the file's row order).
    "binarized_mnist": {
        "title": "binarized MNIST",
        "image_shape": (28, 28),
        "image_order": "C",
        "label_offset": 0,
        "class_names": [str(k) for k in range(10)],
        "model": {"hidden": [500], "activation": "relu", "ordering": "natural", "direct": True},
        "train": {"epochs": 200, "batch_size": 100, "optimizer": "adam", "lr": 0.001, "patience": 10, "seed": 0},
        "points": [{"train.weight_decay": 0.0}, {"train.weight_decay": 0.0001, "train.decay_biases": False}],
        "logreg_C": [0.1, 1.0],
        "default": False,
    },
}
DEFAULT_SETS = [name for name, spec in SETS.items() if spec.get("default", True)]


# -- the mathematics ------------------------------------------------------------------------
def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(N, K)`` float64 one-hot rows of integer codes ``0..K-1``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels: expected codes 0..{num_classes - 1} in a 1-D array")
    return np.eye(num_classes)[labels.astype(np.int64)]


def log_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``log p(y)``: the log training class frequencies (float64); every class must occur."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    if len(counts) != num_classes or (counts == 0).any():
        raise ValueError(f"labels: every class 0..{num_classes - 1} must occur in the training labels")
    return np.log(counts) - np.log(counts.sum())


def class_log_likelihoods(model, x: np.ndarray, num_classes: int, batch_size: int = 1000) -> np.ndarray:
    """``(N, K)`` float64 matrix of ``log p(x_i | y = k)``: the model scored with every class's
    one-hot context in turn."""
    eye = np.eye(num_classes)
    cols = [log_likelihoods(model, x, batch_size=batch_size, context=eye[k]) for k in range(num_classes)]
    return np.stack(cols, axis=1).astype(np.float64)


def mixture_log_prob(cond_ll: np.ndarray, log_py: np.ndarray) -> np.ndarray:
    """``log p(x) = log sum_y p(x | y) p(y)`` per row (float64, in log space)."""
    return logsumexp(np.asarray(cond_ll, np.float64) + np.asarray(log_py, np.float64)[None, :], axis=1)


def log_posterior(cond_ll: np.ndarray, log_py: np.ndarray) -> np.ndarray:
    """``log p(y | x)`` by Bayes' rule, ``(N, K)``; every row's exponentials sum to one."""
    joint = np.asarray(cond_ll, np.float64) + np.asarray(log_py, np.float64)[None, :]
    return joint - logsumexp(joint, axis=1, keepdims=True)


def bayes_predict(cond_ll: np.ndarray, log_py: np.ndarray) -> np.ndarray:
    """``argmax_y p(x | y) p(y)`` per row."""
    return np.argmax(np.asarray(cond_ll, np.float64) + np.asarray(log_py, np.float64)[None, :], axis=1)


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error (ddof 1) of per-row values."""
    values = np.asarray(values, np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def classifier_scores(cond_ll: np.ndarray, log_py: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The figures of a class-conditional density: NLL of p(x | y) (true labels), of the mixture
    p(x), Bayes-rule accuracy and the posterior's log-loss, each with its standard error."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    cond, cond_se = mean_se(-cond_ll[rows, labels])
    mix, mix_se = mean_se(-mixture_log_prob(cond_ll, log_py))
    loss, loss_se = mean_se(-log_posterior(cond_ll, log_py)[rows, labels])
    acc = float((bayes_predict(cond_ll, log_py) == labels).mean())
    return {
        "nll_x_given_y": cond,
        "nll_x_given_y_se": cond_se,
        "nll_x": mix,
        "nll_x_se": mix_se,
        "accuracy": acc,
        "accuracy_se": math.sqrt(acc * (1 - acc) / len(labels)),
        "log_loss": loss,
        "log_loss_se": loss_se,
    }


class BernoulliNaiveBayes:
    """Independent pixels per class, ``theta[k, d] = (count(x_d = 1, y = k) + a) / (n_k + 2a)``."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, x: np.ndarray, labels: np.ndarray, num_classes: int) -> BernoulliNaiveBayes:
        x = np.asarray(x, np.float64)
        y = one_hot(labels, num_classes)
        self.theta = (y.T @ x + self.alpha) / (y.sum(0)[:, None] + 2 * self.alpha)
        return self

    def class_log_likelihoods(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return x @ np.log(self.theta).T + (1 - x) @ np.log1p(-self.theta).T


# -- data -----------------------------------------------------------------------------------
def find_file(name: str, data_dir: str | None) -> Path:
    for folder in data_dirs(data_dir):
        if (folder / f"{name}.npz").is_file():
            return folder / f"{name}.npz"
    looked = ", ".join(str(d) for d in data_dirs(data_dir))
    sys.exit(f"class_conditional: {name}.npz not found (looked in {looked}); set ARDENS_DATA or --data-dir")


def load_labelled(name: str, data_dir: str | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], Path]:
    """Images (uint8 0/1) and label codes 0..K-1 of the three splits, read with numpy."""
    path = find_file(name, data_dir)
    offset = SETS[name]["label_offset"]
    with np.load(path, allow_pickle=False) as f:
        absent = [f"{s}_labels" for s in ("train", "valid", "test") if f"{s}_labels" not in f.files]
        if absent:
            sys.exit(
                f"class_conditional: {path}: no {', '.join(absent)} (the class labels of each split, in its row"
                " order, are needed for a class-conditional model)"
            )
        images = {s: np.ascontiguousarray(f[s], dtype=np.uint8) for s in ("train", "valid", "test")}
        labels = {s: f[f"{s}_labels"].astype(np.int64).ravel() - offset for s in ("train", "valid", "test")}
    for s in images:
        if len(labels[s]) != len(images[s]) or labels[s].min() < 0:
            sys.exit(f"class_conditional: {path}: {s}_labels does not match {s} (or a label is below {offset})")
    return images, labels, path


def datasets(name: str, images, labels, num_classes: int, path: Path) -> tuple[Dataset, Dataset]:
    """The unconditional dataset and the conditional one (the label's one-hot context)."""
    spec = SETS[name]
    encoding = fit_context([labels["train"]], ["label"], kinds=["categorical"], categories=[list(range(num_classes))])
    ctx = {s: encoding.encode([labels[s]]) for s in ("train", "valid", "test")}
    for s in ctx:  # the library's encoding is the one-hot the scoring functions use
        assert np.array_equal(ctx[s], one_hot(labels[s], num_classes))
    common = dict(image_shape=tuple(spec["image_shape"]), image_order=spec["image_order"], source=str(path))
    plain = Dataset(name, images["train"], images["valid"], images["test"], **common)
    cond = Dataset(
        name,
        images["train"],
        images["valid"],
        images["test"],
        **common,
        context_train=ctx["train"],
        context_valid=ctx["valid"],
        context_test=ctx["test"],
        context_names=("label",),
        context_encoding=encoding.to_meta(),
    )
    return plain, cond


# -- the run --------------------------------------------------------------------------------
def candidates(name: str, num_classes: int, conditional: bool) -> list[dict[str, Any]]:
    spec = SETS[name]
    model = dict(spec["model"], context_features=num_classes if conditional else 0)
    config = {"dataset": name, "kind": "made", "model": model, "train": dict(spec["train"]), "points": spec["points"]}
    return grid_points(config)


def train_and_choose(name, data, num_classes, conditional, log_py, labels) -> tuple[dict[str, Any], Any]:
    """Train every candidate; score it on validation; the chosen one (lowest validation NLL)."""
    variant = "conditional" if conditional else "unconditional"
    scores, best = {}, None
    for point in candidates(name, num_classes, conditional):
        pid = point_id(point)
        run_dir = RUNS / name / variant / pid
        print(f"-- {name} {variant} MADE [{pid}]", flush=True)
        result = train_point(point, data, run_dir)
        model = ardens.load(run_dir / "best.safetensors")
        entry: dict[str, Any] = {
            "point": point["point"],
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "train_seconds": result.seconds,
            "run_dir": str(run_dir.relative_to(ROOT)),
        }
        if conditional:
            valid = classifier_scores(class_log_likelihoods(model, data.valid, num_classes), log_py, labels["valid"])
            entry.update({f"valid_{k}": v for k, v in valid.items()})
            entry["valid_nll"] = valid["nll_x_given_y"]
        else:
            entry["valid_nll"], entry["valid_nll_se"] = mean_se(-log_likelihoods(model, data.valid))
        scores[pid] = entry
        extra = f", accuracy {entry['valid_accuracy']:.4f}" if conditional else ""
        print(f"   valid NLL {entry['valid_nll']:.3f}{extra} (best epoch {result.best_epoch} of {result.epochs_run})")
        if best is None or entry["valid_nll"] < scores[best[0]]["valid_nll"]:
            best = (pid, model)
    return {"candidates": scores, "chosen": best[0], "model": best[1].config()}, best[1]


def logistic_regression(images, labels, grid: list[float], seed: int = 0) -> dict[str, Any]:
    """sklearn LogisticRegression on the pixels; C chosen on validation accuracy; test once."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    valid_acc, best = {}, None
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(images["train"], labels["train"])
        valid_acc[str(c)] = float((clf.predict(images["valid"]) == labels["valid"]).mean())
        if best is None or valid_acc[str(c)] > valid_acc[str(best[0])]:
            best = (c, clf)
    c, clf = best
    rows = np.arange(len(labels["test"]))
    proba = clf.predict_log_proba(images["test"])  # columns follow clf.classes_ (every class occurs in training)
    col = np.searchsorted(clf.classes_, labels["test"])
    acc = float((clf.predict(images["test"]) == labels["test"]).mean())
    loss, loss_se = mean_se(-proba[rows, col])
    return {
        "valid_accuracy": valid_acc,
        "chosen_C": c,
        "accuracy": acc,
        "accuracy_se": math.sqrt(acc * (1 - acc) / len(rows)),
        "log_loss": loss,
        "log_loss_se": loss_se,
        "seconds": time.perf_counter() - start,
    }


def sample_figure(name: str, model, images, labels, num_classes: int, path: Path, seed: int = 0) -> None:
    """Rows of samples of p(x | y), one column per class, under the training class means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = SETS[name]
    h, w = spec["image_shape"]
    shown = min(num_classes, CLASSES_SHOWN)
    context = np.repeat(np.eye(num_classes)[:shown], SAMPLES_PER_CLASS, axis=0)  # class-major
    with torch.no_grad():
        x = model.sample(len(context), generator=torch.Generator().manual_seed(seed), context=context)
    x = x.double().numpy().reshape(shown, SAMPLES_PER_CLASS, -1)
    means = np.stack([images["train"][labels["train"] == k].mean(0) for k in range(shown)])
    pad = 1
    canvas = np.full(((1 + SAMPLES_PER_CLASS) * (h + pad) + pad + 2, shown * (w + pad) + pad), 0.5)
    for k in range(shown):
        c0 = pad + k * (w + pad)
        canvas[pad : pad + h, c0 : c0 + w] = means[k].reshape(h, w, order=spec["image_order"])
        for s in range(SAMPLES_PER_CLASS):
            r0 = pad + 2 + (s + 1) * (h + pad)
            canvas[r0 : r0 + h, c0 : c0 + w] = x[k, s].reshape(h, w, order=spec["image_order"])
    scale = min(1 / 28, 16 / canvas.shape[1])  # inches per image pixel; at most 16 inches wide
    fig, ax = plt.subplots(figsize=(max(6.0, canvas.shape[1] * scale), max(3.0, canvas.shape[0] * scale) + 0.6))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    names = spec["class_names"] or [str(k + spec["label_offset"]) for k in range(shown)]
    ax.set_xticks([pad + k * (w + pad) + (w - 1) / 2 for k in range(shown)], names[:shown], fontsize=7)
    ax.set_yticks([pad + (h - 1) / 2], ["train mean"], fontsize=7)
    more = f" (first {shown} of {num_classes} classes)" if shown < num_classes else ""
    ax.set_title(f"{spec['title']}: {SAMPLES_PER_CLASS} samples of MADE p(x | y) per class{more}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def run_set(name: str, data_dir: str | None, command: str) -> dict[str, Any]:
    start = time.perf_counter()
    images, labels, path = load_labelled(name, data_dir)
    num_classes = int(labels["train"].max()) + 1
    log_py = log_prior(labels["train"], num_classes)
    plain, cond = datasets(name, images, labels, num_classes, path)
    record: dict[str, Any] = {
        "dataset": name,
        "title": SETS[name]["title"],
        "substitution": SUBSTITUTION,
        "file": path.name,
        "image_shape": list(SETS[name]["image_shape"]),
        "classes": num_classes,
        "rows": {s: len(images[s]) for s in images},
        "prior": np.exp(log_py).tolist(),
    }
    conditional, cmodel = train_and_choose(name, cond, num_classes, True, log_py, labels)
    unconditional, umodel = train_and_choose(name, plain, num_classes, False, log_py, labels)
    # naive Bayes (no choice to make) and its validation figures, for the record
    nb = BernoulliNaiveBayes(alpha=1.0).fit(images["train"], labels["train"], num_classes)
    nb_valid = classifier_scores(nb.class_log_likelihoods(images["valid"]), log_py, labels["valid"])
    print(f"-- {name} logistic regression", flush=True)
    logreg = logistic_regression(images, labels, SETS[name]["logreg_C"])

    # the test split, once, for the chosen models
    test_start = time.perf_counter()
    conditional["test"] = classifier_scores(
        class_log_likelihoods(cmodel, images["test"], num_classes), log_py, labels["test"]
    )
    conditional["test_seconds"] = time.perf_counter() - test_start
    nll, se = mean_se(-log_likelihoods(umodel, images["test"]))
    unconditional["test"] = {"nll_x": nll, "nll_x_se": se}
    nb_test = classifier_scores(nb.class_log_likelihoods(images["test"]), log_py, labels["test"])
    naive = {"alpha": 1.0, "valid": nb_valid, "test": nb_test}
    majority = int(np.argmax(log_py))
    acc = float((labels["test"] == majority).mean())
    prior_loss, prior_se = mean_se(-log_py[labels["test"]])
    prior = {
        "majority_class": majority,
        "accuracy": acc,
        "accuracy_se": math.sqrt(acc * (1 - acc) / len(labels["test"])),
        "log_loss": prior_loss,
        "log_loss_se": prior_se,
    }
    figure = FIGURES / f"{name}_samples.png"
    sample_figure(name, cmodel, images, labels, num_classes, figure)
    record.update(
        conditional=conditional,
        unconditional=unconditional,
        naive_bayes=naive,
        logistic_regression=logreg,
        class_prior=prior,
        figure=str(figure.relative_to(ROOT)),
        command=command,
        machine=machine(),
        wall_seconds=time.perf_counter() - start,
    )
    return record


# -- rendering ------------------------------------------------------------------------------
def _pm(value: float, se: float, digits: int = 2) -> str:
    return f"{value:.{digits}f} ± {se:.{digits}f}"


def _acc(r: dict[str, Any]) -> str:
    return f"{100 * r['accuracy']:.2f} ± {100 * r['accuracy_se']:.2f}"


def _point(point: dict[str, Any]) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "default"


def render_set(r: dict[str, Any]) -> list[str]:
    c, u, nb = r["conditional"], r["unconditional"], r["naive_bayes"]
    lr, prior = r["logistic_regression"], r["class_prior"]
    ct, chosen_c, chosen_u = c["test"], c["candidates"][c["chosen"]], u["candidates"][u["chosen"]]
    hidden = c["model"].get("hidden")
    rows = r["rows"]
    h, w = r["image_shape"]
    lines = [
        f"**{r['title']}** (`{r['file']}`: {h}×{w} binary images, {r['classes']} classes; "
        f"{rows['train']} train / {rows['valid']} valid / {rows['test']} test). Command: `{r['command']}`;"
        f" wall time {r['wall_seconds']:.0f} s.",
        "",
        "| model | −log p(x \\| y) | −log p(x) | accuracy (%) | −log p(y \\| x) | chosen on validation |",
        "|---|---:|---:|---:|---:|---|",
        f"| MADE p(x \\| y), label as one-hot context, hidden {hidden}"
        f" | {_pm(ct['nll_x_given_y'], ct['nll_x_given_y_se'])}"
        f" | {_pm(ct['nll_x'], ct['nll_x_se'])} | {_acc(ct)} | {_pm(ct['log_loss'], ct['log_loss_se'], 3)}"
        f" | {_point(chosen_c['point'])} (valid {chosen_c['valid_nll']:.2f}, epoch {chosen_c['best_epoch']}) |",
        f"| MADE p(x), no context, hidden {u['model'].get('hidden')}"
        f" | | {_pm(u['test']['nll_x'], u['test']['nll_x_se'])}"
        f" | | | {_point(chosen_u['point'])} (valid {chosen_u['valid_nll']:.2f}, epoch {chosen_u['best_epoch']}) |",
        f"| Bernoulli naive Bayes (add-one) | {_pm(nb['test']['nll_x_given_y'], nb['test']['nll_x_given_y_se'])}"
        f" | {_pm(nb['test']['nll_x'], nb['test']['nll_x_se'])} | {_acc(nb['test'])}"
        f" | {_pm(nb['test']['log_loss'], nb['test']['log_loss_se'], 3)} | |",
        f"| sklearn LogisticRegression on the pixels | | | {_acc(lr)} | {_pm(lr['log_loss'], lr['log_loss_se'], 3)}"
        f" | C={lr['chosen_C']} (valid accuracy {100 * lr['valid_accuracy'][str(lr['chosen_C'])]:.2f} %) |",
        f"| class prior p(y) (majority class) | | | {_acc(prior)}"
        f" | {_pm(prior['log_loss'], prior['log_loss_se'], 3)} | |",
        "",
    ]
    cands = []
    for variant, block in (("p(x | y)", c), ("p(x)", u)):
        for pid, e in block["candidates"].items():
            acc = f", accuracy {100 * e['valid_accuracy']:.2f} %" if "valid_accuracy" in e else ""
            mark = " (chosen)" if pid == block["chosen"] else ""
            cands.append(
                f"{variant} {_point(e['point'])}: {e['valid_nll']:.3f}{acc}, best epoch {e['best_epoch']} of"
                f" {e['epochs_run']}, {e['train_seconds']:.0f} s{mark}"
            )
    grid = ", ".join(f"C={k}: {100 * v:.2f} %" for k, v in lr["valid_accuracy"].items())
    lines += [
        "Validation NLL (nats) of every candidate: " + "; ".join(cands) + ".",
        "",
        f"Logistic regression, validation accuracy by C: {grid} ({lr['seconds']:.0f} s in all). Scoring the test split"
        f" under all {r['classes']} classes with the chosen p(x | y): {c['test_seconds']:.0f} s.",
        "",
        f"![{r['title']}: samples of p(x | y) per class]({r['figure']})",
        "",
    ]
    return lines


def render(results_dir: Path | None = None) -> str:
    """The BENCHMARKS.md block, from the results JSON files (``results_dir``, default RESULTS)."""
    results_dir = RESULTS if results_dir is None else results_dir
    order = list(SETS)
    paths = sorted(results_dir.glob("*.json"), key=lambda p: (order.index(p.stem) if p.stem in order else 99, p.stem))
    if not paths:
        return "(no results yet)"
    records = [json.loads(p.read_text()) for p in paths]
    m = records[0]["machine"]
    lines = [
        f"**Substitution.** {records[0]['substitution']}",
        "",
        "A MADE p(x | y) takes the class label as a one-hot context (`context_features` = number of classes);"
        " the same MADE without context models p(x). Nats per image on the test split, mean ± standard error"
        " over test rows. −log p(x) of a class-conditional model is that of the mixture p(x) = Σ_y p(x | y) p(y),"
        " p(y) the training class frequencies (log space, float64); its classifier is Bayes' rule"
        " argmax_y p(x | y) p(y), and −log p(y | x) is the log-loss of that posterior. Candidates are chosen on"
        " validation NLL (logistic regression's C on validation accuracy); the test split is scored once, for the"
        " chosen models and the peers, all measured in the same run. The chosen checkpoints stay in"
        " `runs/class_conditional/` (git-ignored; the command trains them again).",
        "",
        f"Machine: {m['cores']}-core {m['cpu']}, {m['threads']} thread (niced), torch {m['torch']}."
        " `--render-only` rebuilds this block from `benchmarks/results/class_conditional/*.json`.",
        "",
    ]
    for r in records:
        lines += render_set(r)
    return "\n".join(lines).rstrip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sets", default=",".join(DEFAULT_SETS), help=f"some of {', '.join(SETS)} (default: the first two)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.render_only:
        names = [s for s in args.sets.split(",") if s]
        unknown = [s for s in names if s not in SETS]
        if unknown:
            sys.exit(f"class_conditional: unknown set {', '.join(unknown)}; expected some of {', '.join(SETS)}")
        for name in names:
            command = f"nice -n 5 .venv/bin/python benchmarks/class_conditional.py --sets {name}"
            record = run_set(name, args.data_dir, command)
            RESULTS.mkdir(parents=True, exist_ok=True)
            atomic_write_text(RESULTS / f"{name}.json", json.dumps(record, indent=1) + "\n")
            print("\n".join(render_set(record)), flush=True)
    write_block(MARKER, render())
    print(render())


if __name__ == "__main__":
    main()
