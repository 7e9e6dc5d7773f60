"""`liteframe eval compare`: one point of run A against one point of run B on the same questions (paired).

    liteframe eval compare liteframe.json:64 teacher.json:8 [--json diff.json]

Both `liteframe eval --json` runs must have answered the same question ids. The accuracy difference A - B is paired
(each question counts once, for both models), so its interval is much narrower than the two accuracies' own
intervals suggest: the Wald interval of a difference of paired proportions, from the b questions only A got right
and the c only B got right, with McNemar's exact two-sided p-value (binomial test on the b + c discordant questions).
The same per category, and the latency ratio A / B of the questions that run the whole path (`path_latency`), for
encode + prefill (the paper's protocol) and for the whole question. Claims like the paper's "+X points at <= 1.0x
latency" are read off this.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..metrics.mcq_accuracy.mcq_accuracy import Z_95
from .plot import load_runs, path_latency

__all__ = ["compare_points", "paired_difference"]


def paired_difference(a: list[bool], b: list[bool], z: float = Z_95) -> dict:
    """A - B over paired outcomes: difference, Wald interval, discordant counts and McNemar's exact p-value."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired outcomes need the same, non-zero number of questions ({len(a)} vs {len(b)})")
    n = len(a)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    diff = (only_a - only_b) / n
    half = z * math.sqrt(max(only_a + only_b - (only_a - only_b) ** 2 / n, 0.0)) / n
    discordant, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(discordant, i) for i in range(k + 1)) / 2 ** discordant) if discordant else 1.0
    return {"n": n, "difference": diff, "ci_low": diff - half, "ci_high": diff + half, "only_a": only_a,
            "only_b": only_b, "mcnemar_p": p}


def _point(run: dict, frames: int, name: str) -> tuple[dict, dict[str, dict]]:
    points = {p["frames"]: p for p in run["points"]}
    if frames not in points:
        raise ValueError(f"{name}: no {frames}-frame point (it has {sorted(points)})")
    rows = {p["id"]: p for p in run.get("predictions", []) if p["frames"] == frames}
    if not rows:
        raise ValueError(f"{name}: no per-question predictions at {frames} frames (a `liteframe eval --json` file)")
    return points[frames], rows


def compare_points(run_a: dict, frames_a: int, run_b: dict, frames_b: int) -> dict:
    """The paired comparison of run_a's `frames_a` point with run_b's `frames_b` point (same question ids)."""
    (point_a, rows_a), (point_b, rows_b) = _point(run_a, frames_a, "A"), _point(run_b, frames_b, "B")
    if rows_a.keys() != rows_b.keys():
        only = sorted(rows_a.keys() ^ rows_b.keys())
        raise ValueError(f"the runs answered different questions ({len(rows_a)} vs {len(rows_b)}; e.g. {only[:3]}): "
                         f"evaluate both on the same manifest and --limit")
    ids = sorted(rows_a)
    categories = sorted({rows_a[i]["category"] for i in ids})
    latency_a, latency_b = path_latency(point_a), path_latency(point_b)
    return {
        "a": {"label": run_a.get("label"), "frames": frames_a, "accuracy": point_a["accuracy"]},
        "b": {"label": run_b.get("label"), "frames": frames_b, "accuracy": point_b["accuracy"]},
        "split": run_a.get("split"),
        "overall": paired_difference([rows_a[i]["correct"] for i in ids], [rows_b[i]["correct"] for i in ids]),
        "per_category": {c: paired_difference([rows_a[i]["correct"] for i in ids if rows_a[i]["category"] == c],
                                              [rows_b[i]["correct"] for i in ids if rows_a[i]["category"] == c])
                         for c in categories},
        "latency_ratio": {s: latency_a[s]["median"] / latency_b[s]["median"] for s in ("encode_prefill", "total")
                          if latency_b[s]["median"] > 0},
    }


def _spec(text: str) -> tuple[Path, int]:
    path, sep, frames = text.rpartition(":")
    if not sep or not frames.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected RUN.json:FRAMES, e.g. run.json:64")
    return Path(path), int(frames)


def _line(name: str, d: dict) -> str:
    return (f"| {name} | {d['n']} | {100 * d['difference']:+.1f} [{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] "
            f"| {d['only_a']} / {d['only_b']} | {d['mcnemar_p']:.3g} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=_spec, help="RUN.json:FRAMES, the point whose gain is measured")
    parser.add_argument("b", type=_spec, help="RUN.json:FRAMES, the point it is compared with")
    parser.add_argument("--json", type=Path, default=None, help="also write the comparison here")


def main(args: argparse.Namespace) -> int:
    (path_a, frames_a), (path_b, frames_b) = args.a, args.b
    try:
        run_a, run_b = load_runs([path_a, path_b])
        result = compare_points(run_a, frames_a, run_b, frames_b)
    except ValueError as error:
        print(f"liteframe eval compare: {error}")
        return 2
    a, b = result["a"], result["b"]
    print(f"A: {a['label']} @ {frames_a} frames, {100 * a['accuracy']:.1f} %; B: {b['label']} @ {frames_b} frames, "
          f"{100 * b['accuracy']:.1f} % ({result['split']})")
    print("| questions | n | A - B, points [95 % CI] | only A / only B right | McNemar p |")
    print("|---|---|---|---|---|")
    print(_line("all", result["overall"]))
    for category, d in result["per_category"].items():
        print(_line(category, d))
    print("latency A / B (median of the questions that run the whole path): " +
          ", ".join(f"{s} {r:.2f}x" for s, r in result["latency_ratio"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
