"""`liteframe train plot`: training curves of one or more runs (their metrics.csv) as one PNG.

Left panel: the train loss per step; right panel: the held-out metric(s) at each evaluation (step 0 is the
evaluation before training, with `eval_on_start`).

    liteframe train plot outputs/ctd_micro outputs/lma_micro --out docs/training_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .tracking import read_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="output_dir of a run (or its metrics.csv); NAME=PATH sets the label")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title")


def _split(run: str) -> tuple[str, Path]:
    label, _, path = run.rpartition("=")
    path = Path(path)
    path = path / "metrics.csv" if path.is_dir() else path
    return label or path.parent.name, path


def plot_runs(runs: list[str], out: str | Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (train_ax, eval_ax) = plt.subplots(1, 2, figsize=(12, 5))
    cosine_ax = None  # cosine similarity (higher is better, in [-1, 1]) gets its own axis
    for run in runs:
        label, path = _split(run)
        rows = read_metrics(path)
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        line = train_ax.plot(*zip(*train), label=label, linewidth=1.2)[0]
        for name in sorted({k for r in rows for k in r if k.startswith("eval/")}):
            points = [(r["step"], r[name]) for r in rows if name in r]
            ax = eval_ax
            if "cosine" in name:
                cosine_ax = cosine_ax or eval_ax.twinx()
                ax = cosine_ax
            ax.plot(*zip(*points), "s--" if "cosine" in name else "o-", color=line.get_color(),
                    label=f"{label} {name}", markersize=4)
    train_ax.set(xlabel="optimizer step", ylabel="train loss", title="train loss")
    eval_ax.set(xlabel="optimizer step", ylabel="held-out loss / MSE (solid)", title="evaluation (step 0 = before training)")
    train_ax.grid(alpha=0.3)
    eval_ax.grid(alpha=0.3)
    train_ax.legend(fontsize=8, loc="upper right")
    handles, labels = eval_ax.get_legend_handles_labels()
    if cosine_ax is not None:
        cosine_ax.set_ylabel("cosine to target (dashed)")
        more = cosine_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    # Below the panel: eval curves cross each other, so any legend inside would hide one.
    eval_ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(args: argparse.Namespace) -> int:
    print(plot_runs(args.runs, args.out, args.title))
    return 0
