"""`liteframe train plot`: training curves of one or more runs (their metrics.csv) as one PNG.

Left panel: the train loss per step; right panel: the held-out metric(s) at each evaluation (step 0 is the
evaluation before training, with `eval_on_start`). The loss of one step is the loss of that step's batch, which on
a few videos moves with which videos the batch holds; `--smooth N` draws it faint with its mean over the last N
logged steps on top.

    liteframe train plot outputs/ctd_micro outputs/lma_micro --out docs/training_curves.png
    liteframe train plot "warm-up 10=outputs/ctd_a" "warm-up 1=outputs/ctd_b" --smooth 10 --out curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..figure import pyplot, save_figure
from .tracking import read_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="output_dir of a run (or its metrics.csv); NAME=PATH sets the label")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title")
    parser.add_argument("--smooth", type=int, default=1,
                        help="also draw the train loss as a mean over the last N logged steps (1: raw only)")


def _split(run: str) -> tuple[str, Path]:
    label, _, path = run.rpartition("=")
    path = Path(path)
    path = path / "metrics.csv" if path.is_dir() else path
    return label or path.parent.name, path


def trailing_mean(values: list[float], n: int) -> list[float]:
    """Mean of each value and the n - 1 before it (fewer at the start)."""
    if n < 1:
        raise ValueError(f"smooth must be >= 1, got {n}")
    return [sum(values[max(0, i - n + 1):i + 1]) / (i + 1 - max(0, i - n + 1)) for i in range(len(values))]


def plot_runs(runs: list[str], out: str | Path, title: str | None = None, smooth: int = 1) -> Path:
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    fig, (train_ax, eval_ax) = pyplot().subplots(1, 2, figsize=(12, 5))
    cosine_ax = None  # cosine similarity (higher is better, in [-1, 1]) gets its own axis
    for run in runs:
        label, path = _split(run)
        rows = read_metrics(path)
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        if smooth > 1:
            line = train_ax.plot(*zip(*train), linewidth=0.8, alpha=0.3)[0]
            steps, losses = zip(*train)
            train_ax.plot(steps, trailing_mean(list(losses), smooth), color=line.get_color(), linewidth=1.6,
                          label=f"{label} (mean of last {smooth})")
        else:
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
    return save_figure(fig, out, dpi=110)


def main(args: argparse.Namespace) -> int:
    print(plot_runs(args.runs, args.out, args.title, args.smooth))
    return 0
