"""The real-valued table: ardens' RNADE, MADE-MoG and DeepRNADE/EoRNADE against the peers.

Run (each command resumes where the last stopped: finished folds are kept in the results):
    .venv/bin/python benchmarks/real.py run                     # every set, row and fold
    .venv/bin/python benchmarks/real.py run --sets red_wine --rows 'zuko*' --folds 1-3
    .venv/bin/python benchmarks/real.py render                  # tables, figures, model cards

Protocol (the RNADE papers'): the named sets ``red_wine`` (the published RNADE folds),
``white_wine`` and ``parkinsons`` (seeded folds, :func:`ardens.data.fold_indices`), folds
1..10. Each fold trains on 8 chunks and validates on 1; every model works in the fold's
standardized space (training mean and population standard deviation) or, for ardens,
holds that standardization itself. For each (set, row, fold) every candidate of the row's
committed config (``benchmarks/configs/real/<row>.json``) is trained with early stopping
on validation; the candidate with the best validation log-likelihood is chosen, and only it
reads the fold's test chunk, once.

Results: ``benchmarks/results/real/<set>/<row>.json`` (every candidate's validation
figure, the chosen one, its test figures, per fold) and ``<row>.npz`` (the test
log-likelihood of every row, standardized and in original units, for paired comparisons).
ardens' chosen models go to ``pretrained/real/<set>/<row>/fold<k>.safetensors`` with a card
``pretrained/real/<set>/<row>/README.md``. ``render`` writes the table into BENCHMARKS.md
between ``<!-- reproduce:real -->`` markers and the figures into ``benchmarks/figures/real/``.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ardens  # noqa: E402
import peers  # noqa: E402
from ardens.data import load_dataset  # noqa: E402
from ardens.evaluate import log_likelihoods  # noqa: E402
from ardens.serialization import atomic_write, atomic_write_text  # noqa: E402
from reproduce import (  # noqa: E402
    CONFIGS,
    NEURAL,
    PRETRAINED,
    RESULTS,
    ROOT,
    grid_points,
    machine,
    point_id,
    train_point,
    write_block,
)

SETS = ("red_wine", "white_wine", "parkinsons")
FOLDS = tuple(range(1, 11))
TABLE = "real"
RUNS = ROOT / "runs" / "real"
FIGURES = ROOT / "benchmarks" / "figures" / "real"
#: Published best of the NADE family, standardized space (see BENCHMARKS.md for the source).
PUBLISHED = {"red_wine": -8.76, "white_wine": -9.67, "parkinsons": -0.90}
CHOSEN = "<chosen on validation>"  # render's key for the composite row


def row_configs(pattern: str = "*") -> dict[str, dict[str, Any]]:
    paths = sorted((CONFIGS / TABLE).glob("*.json"))
    return {p.stem: json.loads(p.read_text()) for p in paths if fnmatch.fnmatch(p.stem, pattern)}


def result_path(dataset: str, row_id: str) -> Path:
    return RESULTS / TABLE / dataset / f"{row_id}.json"


def read_result(dataset: str, row_id: str) -> dict[str, Any]:
    path = result_path(dataset, row_id)
    return json.loads(path.read_text()) if path.is_file() else {"folds": {}}


def standardization(data) -> tuple[np.ndarray, np.ndarray, float]:
    """The fold's training mean, population std and the log-Jacobian ``-sum(log std)`` of x -> z."""
    mean, std = peers.standardize(data.train)
    return mean, std, float(-np.log(std).sum())


def run_fold_neural(config: dict[str, Any], row_id: str, data, fold: int) -> tuple[dict[str, Any], np.ndarray]:
    """Train every candidate (resumable, in runs/), choose on validation, test the chosen once."""
    runs = RUNS / data.name / row_id / f"fold{fold}"
    candidates, best, seconds = {}, None, 0.0
    for point in grid_points(dict(config, dataset=data.name)):
        pid = point_id(point)
        result = train_point(point, data, runs / pid)
        model = ardens.load(runs / pid / "best.safetensors")
        valid = float(log_likelihoods(model, data.valid).mean())
        candidates[pid], seconds = valid, seconds + result.seconds
        print(
            f"   {data.name} fold {fold} {row_id} [{pid}] valid {valid:.4f} "
            f"(epoch {result.best_epoch}/{result.epochs_run})",
            flush=True,
        )
        if best is None or valid > best[1]:
            best = (pid, valid, point, result)
    pid, valid, point, result = best
    checkpoint = runs / pid / "best.safetensors"
    model = ardens.load(checkpoint)
    test = log_likelihoods(model, data.test)  # the test chunk, read once, for the chosen model
    weights = PRETRAINED / TABLE / data.name / row_id / f"fold{fold}.safetensors"
    weights.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(weights, lambda tmp: shutil.copyfile(checkpoint, tmp))
    info = {
        "chosen": point["point"],
        "model": model.config(),
        "train": point.get("train", {}),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "members": ardens.base.ensemble_size(model),
        "checkpoint": str(weights.relative_to(ROOT)),
    }
    return dict(info, candidates_valid_ll=candidates, valid_ll=valid, seconds=seconds), test


def run_fold_peer(config: dict[str, Any], data, fold: int) -> tuple[dict[str, Any], np.ndarray]:
    mean, std, log_jac = standardization(data)
    train, valid = (data.train - mean) / std, (data.valid - mean) / std
    fitted = peers.fit_peer(config["peer"], config.get("points", [{}]), train, valid, dict(config.get("train", {})))
    test_std = fitted["log_prob"]((data.test - mean) / std)  # read once, for the chosen candidate
    info = {k: fitted[k] for k in ("chosen", "seconds") if k in fitted}
    info.update({k: fitted[k] for k in ("best_epoch", "epochs_run") if k in fitted})
    info["candidates_valid_ll"] = {k: v + log_jac for k, v in fitted["grid_valid_ll"].items()}
    info["valid_ll"] = fitted["valid_ll"] + log_jac  # original units, as ardens' figures
    return info, test_std + log_jac


def run(sets, rows: dict[str, dict[str, Any]], folds, data_dir: str | None) -> None:
    for dataset in sets:  # folds outside rows: an interrupted run leaves every row on the same folds
        for fold in folds:
            for row_id, config in rows.items():
                record = read_result(dataset, row_id)
                if str(fold) in record["folds"]:
                    continue
                data = load_dataset(dataset, data_dir=data_dir, fold=fold)
                start = time.perf_counter()
                if config["kind"] in NEURAL:
                    info, test = run_fold_neural(config, row_id, data, fold)
                else:
                    info, test = run_fold_peer(config, data, fold)
                _, _, log_jac = standardization(data)
                test = np.asarray(test, dtype=np.float64)
                info.update(
                    test_ll=float(test.mean()),
                    test_standardized_ll=float(test.mean() - log_jac),
                    test_rows=int(len(test)),
                    log_jacobian=log_jac,
                    wall_seconds=time.perf_counter() - start,
                )
                save_fold(dataset, row_id, config, fold, info, test - log_jac, test)
                print(
                    f"== {dataset} fold {fold} {config['row']}: test {info['test_standardized_ll']:.3f} standardized "
                    f"(valid {info['valid_ll'] - log_jac:.3f}), {info['wall_seconds']:.0f} s",
                    flush=True,
                )


def save_fold(dataset, row_id, config, fold, info, test_std, test_orig) -> None:
    """Add one fold to the row's results (JSON and per-row arrays), atomically."""
    record = read_result(dataset, row_id)
    record.update(
        dataset=dataset,
        row=config["row"],
        kind=config["kind"],
        config_file=str((CONFIGS / TABLE / f"{row_id}.json").relative_to(ROOT)),
        command=f".venv/bin/python benchmarks/real.py run --sets {dataset} --rows {row_id}",
        machine=machine(),
    )
    record["folds"][str(fold)] = info
    record["folds"] = dict(sorted(record["folds"].items(), key=lambda kv: int(kv[0])))
    arrays_path = result_path(dataset, row_id).with_suffix(".npz")
    arrays = dict(np.load(arrays_path, allow_pickle=False)) if arrays_path.is_file() else {}
    keep = arrays.get("fold", np.zeros(0, np.int64)) != fold
    new = {
        "fold": np.concatenate([arrays.get("fold", np.zeros(0, np.int64))[keep], np.full(len(test_std), fold)]),
        "standardized": np.concatenate([arrays.get("standardized", np.zeros(0))[keep], test_std]),
        "original": np.concatenate([arrays.get("original", np.zeros(0))[keep], test_orig]),
    }
    order = np.argsort(new["fold"], kind="stable")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: v[order] for k, v in new.items()})
    result_path(dataset, row_id).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(arrays_path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
    atomic_write_text(result_path(dataset, row_id), json.dumps(record, indent=1) + "\n")


# -- rendering ----------------------------------------------------------------------------------
def row_arrays(dataset: str, row_id: str) -> dict[str, np.ndarray] | None:
    path = result_path(dataset, row_id).with_suffix(".npz")
    return dict(np.load(path, allow_pickle=False)) if path.is_file() else None


def summary(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def paired(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, float, int] | None:
    """Mean and standard error of the per-row difference a - b (standardized) on the folds both
    have (each fold's test rows are in the same order in every row's arrays), and that count."""
    common = np.intersect1d(a["fold"], b["fold"])
    if not len(common):
        return None
    a, b = ({k: v[np.argsort(t["fold"], kind="stable")] for k, v in t.items()} for t in (a, b))
    ia, ib = np.isin(a["fold"], common), np.isin(b["fold"], common)
    if ia.sum() != ib.sum() or not np.array_equal(a["fold"][ia], b["fold"][ib]):
        return None
    return (*summary(a["standardized"][ia] - b["standardized"][ib]), len(common))


def chosen_on_validation(dataset: str, rows: list[str]) -> tuple[dict[str, np.ndarray], dict[int, str]] | None:
    """The ardens model a user would take: on each fold, of the neural ``rows`` run there, the one
    with the best validation log-likelihood (the same units for every row), and its test rows.
    Returns the arrays (folds in increasing order) and the row chosen per fold; None without rows."""
    per_fold: dict[int, tuple[float, str]] = {}
    for r in rows:
        for fold, f in read_result(dataset, r)["folds"].items():
            if int(fold) not in per_fold or f["valid_ll"] > per_fold[int(fold)][0]:
                per_fold[int(fold)] = (f["valid_ll"], r)
    if not per_fold:
        return None
    parts = []
    for fold in sorted(per_fold):
        a = row_arrays(dataset, per_fold[fold][1])
        keep = a["fold"] == fold
        parts.append({k: v[keep] for k, v in a.items()})
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return arrays, {fold: r for fold, (_, r) in per_fold.items()}


def render() -> str:
    configs = row_configs()
    lines = []
    for dataset in SETS:
        found = {r: row_arrays(dataset, r) for r in configs}
        found = {r: a for r, a in found.items() if a is not None}
        if not found:
            continue
        most = (
            max(len(set(a["fold"].tolist())) for r, a in found.items() if configs[r]["kind"] in NEURAL)
            if any(configs[r]["kind"] in NEURAL for r in found)
            else 0
        )
        complete = [r for r in found if configs[r]["kind"] in NEURAL and len(set(found[r]["fold"].tolist())) == most]
        best_id = max(complete, key=lambda r: found[r]["standardized"].mean(), default=None)
        composite = chosen_on_validation(dataset, complete)
        if composite is not None:  # the reference of "best − this": chosen on validation, not on test
            best_id = CHOSEN
            found[CHOSEN], picks = composite
            counts = {r: list(picks.values()).count(r) for r in dict.fromkeys(picks.values())}
            chosen_rows = "; ".join(f"{configs[r]['row']} on {c} fold{'s' * (c > 1)}" for r, c in counts.items())
        lines += [
            f"**{dataset}** (published best of the NADE family: {PUBLISHED[dataset]:.2f}, standardized)",
            "",
            "| model | folds | standardized LL ± SE | original units ± SE | median row | worst row "
            "| best − this (paired SE) | chosen on validation |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        order = sorted(
            found,
            key=lambda r: (r == CHOSEN, r in configs and configs[r]["kind"] in NEURAL, found[r]["standardized"].mean()),
        )
        for r in order:
            a = found[r]
            m, se = summary(a["standardized"])
            mo, seo = summary(a["original"])
            if r == CHOSEN:
                lines.append(
                    f"| **ardens, best row on each fold's validation** | {len(set(a['fold']))} | {m:.3f} ± {se:.3f} | "
                    f"{mo:.3f} ± {seo:.3f} | {np.median(a['standardized']):.3f} | {a['standardized'].min():.1f} |  "
                    f"| {chosen_rows} |"
                )
                continue
            cfg = configs[r]
            record = read_result(dataset, r)
            diff = None if best_id is None or r == best_id else paired(found[best_id], a)
            folds_here = len(set(a["fold"].tolist()))
            diff = (
                ""
                if not diff
                else f"{diff[0]:+.3f} ({diff[1]:.3f})" + (f" on {diff[2]} folds" if diff[2] != folds_here else "")
            )
            chosen = ", ".join(
                sorted({json.dumps(f["chosen"], sort_keys=True).replace('"', "") for f in record["folds"].values()})
            )
            name = f"**{cfg['row']}**" if r == best_id else cfg["row"]
            lines.append(
                f"| {name} | {len(set(a['fold']))} | {m:.3f} ± {se:.3f} | {mo:.3f} ± {seo:.3f} | "
                f"{np.median(a['standardized']):.3f} | {a['standardized'].min():.1f} | {diff} | {chosen} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() or "(no results yet)"


def write_markdown() -> None:
    write_block(f"reproduce:{TABLE}", render())


def write_cards() -> None:
    configs = row_configs()
    for dataset in SETS:
        for row_id, cfg in configs.items():
            if cfg["kind"] not in NEURAL:
                continue
            record = read_result(dataset, row_id)
            if not record["folds"]:
                continue
            lines = [
                f"# {cfg['row']} on {dataset}",
                "",
                f"One model per fold, each chosen on its fold's validation chunk from the candidates of "
                f"`{record['config_file']}`, and tested once. Command: `{record['command']}`.",
                "Each checkpoint holds its fold's standardization (training mean and population standard deviation).",
                "",
                "| fold | chosen | best epoch | valid LL | test LL (original units) | test LL (standardized) | check |",
                "|---:|---|---:|---:|---:|---:|---|",
            ]
            for fold, f in record["folds"].items():
                check = f"`ardens evaluate {f['checkpoint']} --data {dataset} --fold {fold} --json`"
                lines.append(
                    f"| {fold} | `{json.dumps(f['chosen'])}` | {f['best_epoch']} of {f['epochs_run']} | "
                    f"{f['valid_ll']:.4f} | {f['test_ll']:.4f} | {f['test_standardized_ll']:.4f} | {check} |"
                )
            atomic_write_text(PRETRAINED / TABLE / dataset / row_id / "README.md", "\n".join(lines) + "\n")


def write_figures(data_dir: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    configs = row_configs()
    for dataset in SETS:
        found = {r: row_arrays(dataset, r) for r in configs}
        found = {r: a for r, a in found.items() if a is not None}
        if not found:
            continue
        fig, ax = plt.subplots(figsize=(10.5, 4.8))
        colors = plt.get_cmap("tab20").colors
        for i, (r, a) in enumerate(sorted(found.items(), key=lambda kv: -kv[1]["standardized"].mean())):
            folds = sorted(set(a["fold"].tolist()))
            means = [a["standardized"][a["fold"] == k].mean() for k in folds]
            ours = configs[r]["kind"] in NEURAL
            ax.plot(
                folds,
                means,
                marker="o" if ours else "s",
                ls="-" if ours else "--",
                color=colors[(2 * i) % 20 + (i // 10) % 2],
                label=("ardens " if ours else "") + configs[r]["row"],
            )
        ax.axhline(PUBLISHED[dataset], color="k", ls=":", lw=1.5, label="published best (mean over folds)")
        ax.set(xlabel="fold", ylabel="test log-likelihood per row (standardized, nats)", title=dataset)
        ax.set_xticks(list(FOLDS))
        fold_means = [a["standardized"][a["fold"] == k].mean() for a in found.values() for k in set(a["fold"].tolist())]
        low = min(np.percentile(fold_means, 10), PUBLISHED[dataset]) - 1
        ax.set_ylim(bottom=low)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(FIGURES / f"{dataset}_folds.png", dpi=100)
        plt.close(fig)
        pair_plot(dataset, configs, found, data_dir, plt)


def pair_plot(dataset, configs, found, data_dir, plt) -> None:
    """Samples of fold 1's ardens model chosen on validation against fold 1's test rows, 5 columns."""
    neural = [r for r in found if configs[r]["kind"] in NEURAL and 1 in set(found[r]["fold"].tolist())]
    if not neural:
        return
    best = chosen_on_validation(dataset, neural)[1][1]
    model = ardens.load(PRETRAINED / TABLE / dataset / best / "fold1.safetensors")
    data = load_dataset(dataset, data_dir=data_dir, fold=1)
    samples = model.sample(len(data.test), generator=torch.Generator().manual_seed(0)).double().numpy()
    cols = list(range(min(5, data.dim)))
    names = data.column_names or [str(i) for i in range(data.dim)]
    fig, axes = plt.subplots(len(cols), len(cols), figsize=(11, 11))
    for i in cols:
        for j in cols:
            ax = axes[i, j]
            if i == j:
                lo, hi = np.percentile(data.test[:, i], [0.5, 99.5])
                bins = np.linspace(lo, hi, 30)
                ax.hist(data.test[:, i], bins=bins, alpha=0.5, density=True, label="test")
                ax.hist(samples[:, i], bins=bins, alpha=0.5, density=True, label="model")
            else:
                ax.scatter(data.test[:, j], data.test[:, i], s=2, alpha=0.4, label="test")
                ax.scatter(samples[:, j], samples[:, i], s=2, alpha=0.4, label="model")
                ax.set_xlim(*np.percentile(data.test[:, j], [0.5, 99.5]))
                ax.set_ylim(*np.percentile(data.test[:, i], [0.5, 99.5]))
            if i == len(cols) - 1:
                ax.set_xlabel(names[j], fontsize=7)
            if j == 0:
                ax.set_ylabel(names[i], fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{dataset}, fold 1: {configs[best]['row']} samples (orange) vs test rows (blue), original units")
    fig.tight_layout()
    fig.savefig(FIGURES / f"{dataset}_pairs.png", dpi=90)
    plt.close(fig)


def parse_folds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    if not out or any(k not in FOLDS for k in out):
        raise argparse.ArgumentTypeError(f"--folds: expected folds in 1..10 like 1-10 or 1,3; got {text!r}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "render"))
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument("--rows", default="*", help="glob over row ids (config file names)")
    parser.add_argument("--folds", type=parse_folds, default=list(FOLDS), help="e.g. 1-10 or 1,4")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the peers' figures)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        sys.exit(f"real.py: --sets: unknown {', '.join(unknown)}; expected some of {', '.join(SETS)}")
    if args.command == "run":
        rows = row_configs(args.rows)
        if not rows:
            sys.exit(f"real.py: no config in benchmarks/configs/real matches {args.rows!r}")
        run(sets, rows, args.folds, args.data_dir)
    write_markdown()
    write_cards()
    write_figures(args.data_dir)
    print(render())


if __name__ == "__main__":
    main()
