"""Every model's paths on a device against the CPU: the check to run first on a lent GPU.

Run:  PYTHONPATH=src python3 benchmarks/device_check.py --device cuda [--json OUT.json]

For NADE, MADE and DeepNADE over binary, categorical and real columns (small float64 models
with weights far from uniform), on ``--device``:

- ``log_prob`` (no autograd: the in-place and compiled paths where they apply) equals the CPU's,
  and equals the same device's autograd pass;
- conditional ``log_prob(x, observed=m)`` and ``marginal_log_prob`` equal the CPU's;
- ``sample`` and ``impute`` run there, give valid values (binary 0/1, categorical codes in
  range, real finite) and keep the observed entries bit for bit.

Prints one line per check and a JSON summary; exits 1 if any check fails. ``--device cpu``
runs the same checks on the CPU (the CPU against itself: a dry run of the script).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

import ardens

TOL = 1e-9  # float64 on both sides; summation order differs between devices
COLUMNS = {
    "binary": ["binary"] * 12,
    "categorical": ["categorical:3", "binary", "categorical:4", "binary", "categorical:2", "binary"],
    "real": ["real:3"] * 5 + ["binary"],
}


def models() -> dict[str, torch.nn.Module]:
    out = {}
    for kind, cols in COLUMNS.items():
        torch.manual_seed(0)
        out[f"NADE {kind}"] = ardens.NADE(columns=cols, hidden=16, ordering="random", seed=1)
        shared = torch.randperm(len(cols), generator=torch.Generator().manual_seed(2)).tolist()  # 2 masks, 1 ordering
        out[f"MADE {kind}"] = ardens.MADE(columns=cols, hidden=[24, 24], num_masks=2, ordering=shared, seed=2)
        out[f"DeepNADE {kind}"] = ardens.DeepNADE(columns=cols, hidden=[16, 16], num_orderings=3, seed=3)
    for model in out.values():
        model.double()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)
    return out


def data(model, rows: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return model.sample(rows, generator=torch.Generator().manual_seed(5))


def prefix_mask(model, rows: int) -> torch.Tensor:
    """Each row observes the first k columns of member 0's ordering (any set for DeepNADE)."""
    n = model.columns.n
    order = model.ordering(0)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n)
    k = torch.randint(1, n, (rows,), generator=torch.Generator().manual_seed(6))
    return rank[None, :] < k[:, None]


def check(name: str, model, device: str) -> list[tuple[str, bool, str]]:
    results = []
    x = data(model)
    m = prefix_mask(model, len(x))
    on = copy.deepcopy(model).to(device)
    xd, md = x.to(device), m.to(device)
    with torch.no_grad():
        cpu = model.log_prob(x)
        dev = on.log_prob(xd).cpu()
        cond_cpu = model.log_prob(x, observed=m)
        cond_dev = on.log_prob(xd, observed=md).cpu()
        marg_cpu = model.marginal_log_prob(x, m)
        marg_dev = on.marginal_log_prob(xd, md).cpu()
    grad = on.log_prob(xd).detach().cpu()
    for what, a, b in [
        ("log_prob", dev, cpu),
        ("log_prob autograd", grad, dev),
        ("conditional log_prob", cond_dev, cond_cpu),
        ("marginal_log_prob", marg_dev, marg_cpu),
    ]:
        err = float((a - b).abs().max())
        results.append((f"{name}: {what}", err <= TOL * max(1.0, float(b.abs().max())), f"max |diff| {err:.2e}"))
    with torch.no_grad():
        s = on.sample(200, generator=None).cpu()
        filled = on.impute(xd, md).cpu()
    results.append((f"{name}: sample", _valid(model, s), f"shape {tuple(s.shape)}"))
    kept = bool(torch.equal(filled[m], x[m]))
    results.append((f"{name}: impute", _valid(model, filled) and kept, f"observed kept: {kept}"))
    return results


def _valid(model, x: torch.Tensor) -> bool:
    ok = bool(torch.isfinite(x).all())
    for j, col in enumerate(model.columns.list):
        v = x[:, j]
        if col.kind == "binary":
            ok &= bool(((v == 0) | (v == 1)).all())
        elif col.kind == "categorical":
            ok &= bool(((v >= 0) & (v < col.levels) & (v == v.round())).all())
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch sees no CUDA device here")
    rows = []
    for name, model in models().items():
        for what, ok, detail in check(name, model, args.device):
            print(f"{'ok  ' if ok else 'FAIL'} {what}: {detail}", flush=True)
            rows.append({"check": what, "ok": ok, "detail": detail})
    failed = [r for r in rows if not r["ok"]]
    summary = {
        "device": args.device,
        "torch": torch.__version__,
        "checks": len(rows),
        "failed": len(failed),
        "rows": rows,
    }
    if args.device.startswith("cuda"):
        summary["gpu"] = torch.cuda.get_device_name(0)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(rows) - len(failed)} of {len(rows)} checks passed on {args.device}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
