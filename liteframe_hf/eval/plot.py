"""`liteframe eval plot`: accuracy vs latency, one line per model, points labelled by frames.

    liteframe eval plot RUN1.json RUN2.json --out fig.png [--latency total|encode_prefill|encode|prefill|...]

The shape of the paper's Figure 1: more frames cost latency and (for a trained model) buy accuracy; a model whose
line lies up and to the left of another's is better at every latency. Error bars are the 95 % Wilson intervals;
dotted lines mark each run's chance level. The latency is the median of the questions that run the whole path
(`path_latency`: a `--reuse-video` run's first question of each video, since its follow-ups skip decoding and
encoding). Every number comes from the `liteframe eval --json` files given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..figure import pyplot, save_figure

LATENCIES = ("total", "encode_prefill", "decode", "preprocess", "encode", "prefill", "generate")
LATENCY_LABELS = {
    "total": "total latency of a question (ms, median)",
    "encode_prefill": "video encoding + LLM prefill of a question (ms, median)",
}


def path_latency(point: dict) -> dict:
    """The latency of a question that runs the whole path (decode, encode, prefill, answer): every question's in a
    default run; in a `--reuse-video` run the questions that opened a video session (follow-ups skip the video)."""
    return point.get("latency_ms_first") or point["latency_ms"]


def load_runs(paths: list[str | Path]) -> list[dict]:
    runs = []
    for path in paths:
        try:
            run = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: cannot read an eval JSON ({error})") from error
        if not isinstance(run, dict) or not run.get("points"):
            raise ValueError(f"{path}: not a `liteframe eval --json` file (no 'points')")
        runs.append(run)
    return runs


def plot_runs(runs: list[dict], out: str | Path, latency: str = "total", title: str | None = None) -> Path:
    if latency not in LATENCIES:
        raise ValueError(f"latency must be one of {LATENCIES}, got {latency!r}")
    fig, ax = pyplot().subplots(figsize=(6.4, 4.4))
    chances = set()
    for run in runs:
        points = sorted(run["points"], key=lambda p: p["frames"])
        x = [path_latency(p)[latency]["median"] for p in points]
        y = [100 * p["accuracy"] for p in points]
        low = [100 * (p["accuracy"] - p["ci_low"]) for p in points]
        high = [100 * (p["ci_high"] - p["accuracy"]) for p in points]
        label = f"{run.get('label', run.get('model'))} ({run.get('split', '')}, {run.get('device', '')})"
        line = ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label)
        for xi, yi, p in zip(x, y, points):
            ax.annotate(f"{p['frames']}f", (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8,
                        color=line[0].get_color())
        chances.add(round(100 * points[0]["chance"], 1))
    for chance in sorted(chances):
        ax.axhline(chance, linestyle=":", color="grey", linewidth=1)
        ax.annotate(f"chance {chance:g} %", (0, chance), xycoords=("axes fraction", "data"), xytext=(4, 3),
                    textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel(LATENCY_LABELS.get(latency, f"{latency} latency per question (ms, median)"))
    ax.set_ylabel("accuracy (%), 95 % Wilson CI")
    ax.set_title(title or "Accuracy vs latency (`liteframe eval`)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out, dpi=120)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="`liteframe eval --json` files (one line per file)")
    parser.add_argument("--out", required=True, type=Path, help="PNG to write")
    parser.add_argument("--latency", default="total", choices=LATENCIES, help="x axis (default: total)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the runs' combined table here")


def main(args: argparse.Namespace) -> int:
    from .run import markdown_table

    try:
        runs = load_runs(args.runs)
    except ValueError as error:
        print(f"liteframe eval plot: {error}")
        return 2
    plot_runs(runs, args.out, latency=args.latency, title=args.title)
    table = markdown_table(runs)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(f"wrote {args.out}")
    return 0
