"""Imputation of real-valued tables: ardens' exact conditionals against scikit-learn's imputers.

Run (after ``benchmarks/real.py run``, whose chosen models it uses):
    .venv/bin/python benchmarks/imputation.py                      # white wine and parkinsons, folds 1-10
    .venv/bin/python benchmarks/imputation.py --sets white_wine --folds 1-3

Protocol (VAEAC's, Ivanov et al. 2019): on each fold's test rows, every entry is missing
completely at random with probability 0.5 (a fixed seed per set and fold, the same masks for
every method). Each method fills the missing entries:

- ardens: the fold's model chosen on validation by ``benchmarks/real.py`` (its ``--row``,
  EoRNADE by default; trained on the fold's training chunks only). 10 draws from the exact
  conditional ``p(x_missing | x_observed)`` per row; the filled value is their mean (the
  estimate of the conditional mean that squared error asks for) or their median. Also the exact
  conditional log-likelihood of the true missing values, ``log p(x_U | x_O)`` in the data's
  units, which no imputer below gives. The models of ``real.py`` were saved before inputs were
  clipped (:mod:`ardens.heads`): each gets the input range of its own training chunks, widened by
  ``--input-margin`` standard deviations (``fit_input_range``; training rows are never clipped,
  so it is the model a run with clipping would have trained), and the same model with
  unclipped inputs is reported beside it.
- scikit-learn, fitted on the same training chunks (complete) and applied to the masked test
  rows: ``SimpleImputer(mean)``, ``KNNImputer`` (5 neighbours), ``IterativeImputer`` with
  ``BayesianRidge`` and with ``ExtraTreesRegressor`` (100 trees, as missForest).

NRMSE: for each column, the RMSE over its missing entries divided by the column's standard
deviation (training chunks), averaged over columns; pooled over the folds run. Results:
``benchmarks/results/imputation/<set>.json`` and the table in BENCHMARKS.md between
``<!-- imputation -->`` markers. ``--split valid`` runs the same protocol on the validation
rows (other masks; results ``<set>-valid.json``, rendered as a second table): that is where
the input margin was chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ardens  # noqa: E402
from ardens.data import load_dataset  # noqa: E402
from ardens.heads import DEFAULT_INPUT_MARGIN  # noqa: E402
from ardens.serialization import atomic_write_text  # noqa: E402
from real import parse_folds  # noqa: E402
from reproduce import PRETRAINED, RESULTS, machine, write_block  # noqa: E402

SETS = ("white_wine", "parkinsons")
DRAWS = 10
MISSING = 0.5


def mcar_mask(shape: tuple[int, int], dataset: str, fold: int, split: str = "test") -> np.ndarray:
    """True where observed; each entry missing with probability 0.5, seeded by (set, fold) (and
    the split, for splits other than test)."""
    seed = [fold, sum(map(ord, dataset if split == "test" else dataset + split))]
    return np.random.default_rng(seed).random(shape) >= MISSING


def sklearn_imputers(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
    from sklearn.linear_model import BayesianRidge

    return {
        "sklearn SimpleImputer (mean)": SimpleImputer(strategy="mean"),
        "sklearn KNNImputer (k=5)": KNNImputer(n_neighbors=5),
        "sklearn IterativeImputer (BayesianRidge)": IterativeImputer(
            estimator=BayesianRidge(), max_iter=20, random_state=seed
        ),
        "sklearn IterativeImputer (ExtraTrees, missForest)": IterativeImputer(
            estimator=ExtraTreesRegressor(n_estimators=100, random_state=seed, n_jobs=1),
            max_iter=10,
            random_state=seed,
        ),
    }


def squared_errors(filled: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the sum of squared errors over missing entries, and their count."""
    missing = ~observed
    return (((filled - truth) ** 2) * missing).sum(0), missing.sum(0)


def ardens_rows(model, truth, observed, fold: int, label: str) -> dict[str, Any]:
    """``model``'s imputations (mean and median of ``DRAWS`` exact conditional draws) as method rows."""
    some = (~observed).any(1)  # rows with something to impute
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(fold)
    x = torch.as_tensor(np.where(observed, truth, np.nan)[some], dtype=torch.float32)
    m = torch.as_tensor(observed[some])
    with torch.no_grad():
        draws = model.impute(x, observed=m, generator=gen, draws=DRAWS).double().numpy()  # (DRAWS, rows, n)
        cond = model.log_prob(torch.as_tensor(truth[some], dtype=torch.float32), observed=m).double().numpy()
    seconds = time.perf_counter() - start
    out = {}
    # the conditional mean (what squared error asks for) and, robust to a rare far-off draw, the
    # conditional median, both estimated from the same draws
    for summary, fill in (("mean", draws.mean(0)), ("median", np.median(draws, 0))):
        filled = truth.copy()
        filled[some] = fill
        sse, count = squared_errors(filled, truth, observed)
        out[label.format(summary=summary)] = {
            "sse": sse.tolist(),
            "count": count.tolist(),
            "seconds": seconds,
            "conditional_ll_sum": float(cond.sum()),
            "conditional_ll_rows": int(len(cond)),
        }
    return out


def run_fold(dataset: str, fold: int, row: str, data_dir: str | None, split: str, margin: float) -> dict[str, Any]:
    data = load_dataset(dataset, data_dir=data_dir, fold=fold)
    truth = getattr(data, split)
    observed = mcar_mask(truth.shape, dataset, fold, split)
    masked = np.where(observed, truth, np.nan)
    out: dict[str, Any] = {"rows": len(truth), "missing": int((~observed).sum()), "methods": {}}
    checkpoint = PRETRAINED / "real" / dataset / row / f"fold{fold}.safetensors"
    model = ardens.load(checkpoint)
    if model.columns.lo is not None:
        raise SystemExit(f"{checkpoint}: already has an input range; this script expects real.py's unclipped models")
    label = f"ardens {row}, inputs unclipped ({{summary}} of {DRAWS} draws)"
    unclipped = ardens_rows(model, truth, observed, fold, label)
    model.columns.fit_input_range(data.train, margin=margin)
    clipped = ardens_rows(model, truth, observed, fold, f"ardens {row} ({{summary}} of {DRAWS} draws)")
    for method in (*clipped.values(), *unclipped.values()):
        method["checkpoint"] = str(checkpoint.relative_to(PRETRAINED.parent))
    out["methods"].update(clipped)
    out["methods"].update(unclipped)
    out["input_margin"] = margin
    for name, imputer in sklearn_imputers(fold).items():
        start = time.perf_counter()
        imputer.fit(data.train)
        filled = np.where(observed, truth, imputer.transform(masked))
        sse, count = squared_errors(filled, truth, observed)
        out["methods"][name] = {"sse": sse.tolist(), "count": count.tolist(), "seconds": time.perf_counter() - start}
    out["train_std"] = data.train.std(0).tolist()
    return out


def nrmse(folds: dict[str, Any], method: str) -> float:
    """Per column RMSE over every missing entry of the folds, over the column's std, averaged.
    The std is each fold's training std; the squared errors are scaled per fold before pooling."""
    sse = count = 0.0
    for f in folds.values():
        r = f["methods"][method]
        sse = sse + np.asarray(r["sse"]) / np.asarray(f["train_std"]) ** 2
        count = count + np.asarray(r["count"])
    return float(np.mean(np.sqrt(sse / count)))


def result_path(dataset: str, split: str) -> Path:
    return RESULTS / "imputation" / (f"{dataset}.json" if split == "test" else f"{dataset}-{split}.json")


def render() -> str:
    lines = []
    paths = sorted((RESULTS / "imputation").glob("*.json"), key=lambda p: ("-" in p.stem, p.stem))
    for path in paths:
        record = json.loads(path.read_text())
        split = record.get("split", "test")
        folds = record["folds"]
        methods = list(next(iter(folds.values()))["methods"])
        missing, rows = sum(f["missing"] for f in folds.values()), sum(f["rows"] for f in folds.values())
        margins = sorted({f["input_margin"] for f in folds.values() if "input_margin" in f})
        lines += [
            f"**{record['dataset']}, {'test' if split == 'test' else 'validation'} rows** ({len(folds)} folds: "
            f"{', '.join(folds)}; {missing} missing entries in {rows} rows; input margin "
            f"{', '.join(map(str, margins)) or 'none'})",
            "",
            "| method | NRMSE | log p(x_missing \\| x_observed) per row, nats | seconds |",
            "|---|---:|---:|---:|",
        ]
        scores = {m: nrmse(folds, m) for m in methods}
        best = min(scores, key=scores.get)
        for m in sorted(methods, key=scores.get):
            ll = ""
            if "conditional_ll_sum" in folds[next(iter(folds))]["methods"][m]:
                total = sum(f["methods"][m]["conditional_ll_sum"] for f in folds.values())
                rows = sum(f["methods"][m]["conditional_ll_rows"] for f in folds.values())
                ll = f"{total / rows:.3f} (exact)"
            secs = sum(f["methods"][m]["seconds"] for f in folds.values())
            name = f"**{m}**" if m == best else m
            lines.append(f"| {name} | {scores[m]:.4f} | {ll} | {secs:.0f} |")
        lines.append("")
    return "\n".join(lines).rstrip() or "(no results yet)"


def write_markdown() -> None:
    write_block("imputation", render())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--folds", type=parse_folds, default=list(range(1, 11)))
    parser.add_argument("--row", default="eornade", help="the real.py row whose chosen models impute")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument(
        "--input-margin",
        type=float,
        default=DEFAULT_INPUT_MARGIN,
        help="the models' input range: their training range widened by this many standard deviations",
    )
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.render_only:
        for dataset in [s for s in args.sets.split(",") if s]:
            path = result_path(dataset, args.split)
            record = json.loads(path.read_text()) if path.is_file() else {"dataset": dataset, "folds": {}}
            record["split"] = args.split
            for fold in args.folds:
                if not (PRETRAINED / "real" / dataset / args.row / f"fold{fold}.safetensors").is_file():
                    print(f"-- {dataset} fold {fold}: no chosen {args.row} model yet (run real.py first); skipped")
                    continue
                record["folds"][str(fold)] = run_fold(
                    dataset, fold, args.row, args.data_dir, args.split, args.input_margin
                )
                record["folds"] = dict(sorted(record["folds"].items(), key=lambda kv: int(kv[0])))
                record.update(
                    machine=machine(),
                    command=f".venv/bin/python benchmarks/imputation.py --sets {dataset} --split {args.split}",
                    protocol=f"MCAR {MISSING}, {DRAWS} draws, seed (fold, set)",
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(path, json.dumps(record, indent=1) + "\n")
                one = {str(fold): record["folds"][str(fold)]}
                scores = ", ".join(f"{m}: {nrmse(one, m):.4f}" for m in one[str(fold)]["methods"])
                print(f"== {dataset} fold {fold} NRMSE: {scores}", flush=True)
    write_markdown()
    print(render())


if __name__ == "__main__":
    main()
