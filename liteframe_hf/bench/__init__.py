"""Benchmarks (`liteframe bench ...`): each prints a comparable table in one run, with its environment."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median  # noqa: F401 - the benchmarks' one summary statistic

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(args, cpu_warmup: int, cpu_repeats: int) -> tuple[torch.device, torch.dtype, int, int]:
    """(device, dtype, warmup, repeats) from a benchmark's --device/--dtype/--warmup/--repeats: bf16 and the
    paper's 40 warm-up + 100 timed runs on CUDA, fp32 and the given (fewer) counts on CPU."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but no CUDA device is available")
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    warmup = args.warmup if args.warmup is not None else (40 if device.type == "cuda" else cpu_warmup)
    repeats = args.repeats if args.repeats is not None else (100 if device.type == "cuda" else cpu_repeats)
    return device, dtype, warmup, repeats


@contextlib.contextmanager
def exact_fp32():
    """fp32 without TF32 in CUDA matmuls and cuDNN convs: the precision of a reference forward."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; infinite when `out` holds NaN or inf."""
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return float((out - ref).norm() / ref.norm())


def environment_header(device: torch.device, **extra) -> str:
    import transformers

    parts = [f"device: {device_name(device)}", f"torch {torch.__version__}", f"transformers {transformers.__version__}",
             f"date {time.strftime('%Y-%m-%d')}"]
    parts += [f"{k}: {v}" for k, v in extra.items()]
    return " | ".join(parts)


def time_call(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int,
              budget_s: float | None = None) -> list[float]:
    """Wall times in ms of `fn()` after `warmup` calls; CUDA events on GPU, perf_counter on CPU.

    With `budget_s`, the second warm-up call is timed (the first pays one-off costs) and both counts are cut so
    that the point takes about `budget_s` seconds, with at least two warm-up and three timed calls: big shapes
    then cost seconds, not minutes. The number of timed calls is len() of the result."""
    if budget_s is not None and warmup >= 2:
        def synced():
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        synced()
        t0 = time.perf_counter()
        synced()
        per_call = max(time.perf_counter() - t0, 1e-6)
        warmup = min(warmup - 2, int(0.3 * budget_s / per_call))
        repeats = min(repeats, max(3, int(0.7 * budget_s / per_call)))
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


class PeakRSS:
    """Peak resident memory of this process above its level at entry, in MiB, sampled every millisecond by a
    thread: the CPU stand-in for `torch.cuda.max_memory_allocated` (Linux /proc; None elsewhere)."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s, self.mb = interval_s, None

    @staticmethod
    def _rss() -> int | None:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def __enter__(self) -> "PeakRSS":
        # Give free malloc arenas back to the OS (glibc), else memory freed by earlier calls is reused without
        # growing the resident set.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        self._base = self._peak = self._rss()
        self._stop = threading.Event()
        if self._base is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._rss() or 0)
            time.sleep(self.interval_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            self._peak = max(self._peak, self._rss() or 0)
            self.mb = (self._peak - self._base) / 2**20


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2))
