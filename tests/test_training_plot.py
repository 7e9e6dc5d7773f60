"""`liteframe train plot`: curves from metrics.csv, with the per-step train loss smoothed on request (the loss of one
CTD step on a few videos moves with which videos its batch holds; docs/ctd_stability.md)."""

from __future__ import annotations

import csv

import pytest

from liteframe_hf.training.plot import plot_runs, trailing_mean


def test_trailing_mean_averages_the_last_n_values():
    assert trailing_mean([4.0, 2.0, 6.0, 0.0], 2) == [4.0, 3.0, 4.0, 3.0]
    assert trailing_mean([4.0, 2.0, 6.0, 0.0], 3) == [4.0, 3.0, 4.0, pytest.approx(8.0 / 3)]
    assert trailing_mean([1.0, 5.0], 1) == [1.0, 5.0]
    with pytest.raises(ValueError, match="smooth must be >= 1"):
        trailing_mean([1.0], 0)


def _metrics(folder, losses, evals):
    folder.mkdir()
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "eval/mse", "eval/cosine"])
        for step, loss in enumerate(losses, start=1):
            mse, cosine = evals.get(step, ("", ""))
            writer.writerow([step, loss, mse, cosine])
    return folder


def test_plot_with_smoothing_writes_a_png(tmp_path):
    from liteframe_hf.cli import main as cli_main

    a = _metrics(tmp_path / "a", [3.0, 5.0, 2.0, 4.0, 1.0, 3.0], {3: (2.0, 0.6), 6: (1.5, 0.7)})
    b = _metrics(tmp_path / "b", [4.0, 2.0, 3.0, 3.0, 2.0, 2.0], {6: (1.8, 0.65)})
    out = tmp_path / "curves.png"
    assert cli_main(["train", "plot", f"warm-up 10={a}", f"warm-up 1={b}", "--smooth", "3", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="smooth must be >= 1"):
        plot_runs([str(a)], tmp_path / "bad.png", smooth=0)
