"""Paired comparison of the categorical and binary models of one kind on one UCI set's test rows.

Run:  ARDENS_DATA=../shared/data .venv/bin/python benchmarks/categorical_paired.py connect4 nade madek

Both committed models (``pretrained/uci/<set>-<kind>`` and ``pretrained/categorical/<set>-<kind>``)
score the same test rows (the categorical one through its one-hot groups); the figure is the mean
per-row difference of their NLLs with its standard error. These are the models already chosen on
validation and tested once by ``reproduce.py``: this reads their test rows again only to pair them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import ardens
from ardens.data import load_dataset
from ardens.evaluate import log_likelihoods
from ardens.serialization import read_metadata

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    name, *kinds = sys.argv[1:]
    binary = load_dataset(name)
    for kind in kinds:
        cat_path = ROOT / "pretrained" / "categorical" / f"{name}-{kind}.safetensors"
        groups = read_metadata(cat_path)["one_hot_groups"]
        grouped = load_dataset(name, one_hot_groups=groups)
        ll_bin = log_likelihoods(ardens.load(ROOT / "pretrained" / "uci" / f"{name}-{kind}.safetensors"), binary.test)
        ll_cat = log_likelihoods(ardens.load(cat_path), grouped.test)
        diff = -ll_cat - (-ll_bin)  # categorical NLL minus binary NLL, per row
        se = diff.std(ddof=1) / math.sqrt(len(diff))
        print(
            f"{name} {kind}: categorical {-ll_cat.mean():.4f}, binary {-ll_bin.mean():.4f}, "
            f"difference {diff.mean():+.4f} ± {se:.4f} (paired SE, {len(diff)} rows;"
            f" {np.mean(diff < 0):.1%} rows better)"
        )


if __name__ == "__main__":
    main()
