"""Metrics: ``<output_dir>/metrics.csv`` (always, main process only) and the Accelerate tracker (TensorBoard, ...).

On resume from step s the CSV keeps its rows up to s and drops the rest (a killed run may have logged steps it
never checkpointed), so the file of a resumed run reads exactly like the file of an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from accelerate import Accelerator

__all__ = ["MetricsLogger"]


def _tracker_value(value):
    """TensorBoard hparams take numbers, strings and bools only."""
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value)


class MetricsLogger:
    """One CSV row per logged step with a fixed set of columns, mirrored to the Accelerate tracker."""

    def __init__(self, accelerator: Accelerator, output_dir: str | Path, columns: list[str], run_name: str,
                 config: dict, start_step: int = 0):
        self.accelerator = accelerator
        self.columns = ["step", *[c for c in columns if c != "step"]]
        self.path = Path(output_dir) / "metrics.csv"
        if accelerator.is_main_process:
            kept = []
            if start_step > 0 and self.path.is_file():
                with self.path.open(newline="") as f:
                    kept = [row for row in csv.DictReader(f) if int(row["step"]) <= start_step]
            with self.path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)
        accelerator.init_trackers(run_name, config={k: _tracker_value(v) for k, v in config.items()})

    def log(self, step: int, metrics: dict) -> None:
        values = {k: v for k, v in metrics.items() if v is not None}
        self.accelerator.log({k: float(v) for k, v in values.items()}, step=step)
        if not self.accelerator.is_main_process:
            return
        unknown = set(values) - set(self.columns)
        if unknown:
            raise KeyError(f"metrics {sorted(unknown)} are not columns of {self.path}: add them to the column list")
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writerow({"step": step, **{k: _fmt(v) for k, v in values.items()}})


def _fmt(value) -> str:
    """Integers as integers; floats with full precision (repr), so resumed curves compare exactly."""
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return repr(value) if math.isfinite(value) else str(value)


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.csv as dicts of floats (empty cells left out)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
