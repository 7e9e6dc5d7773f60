"""`liteframe bench train`: CTD training-step throughput and peak memory, split teacher / student / optimizer,
and what the teacher-target cache saves.

The step is the one training/ctd.py runs (same teacher loader, student builder, ctd_loss and AdamW), on random
clips already in memory, so the numbers are compute only; data loading is measured by ctd.py itself (the
`time/data` column of metrics.csv). "cached" replaces the teacher by reading the batch's targets from a
safetensors shard, as the target cache does.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import torch

from ..bench import environment_header, markdown_table
from .cache import TargetCache
from .config import CTDConfig
from .losses import ctd_loss
from .loop import peak_memory_mb
from .models import build_student, load_teacher, student_config
from .optim import build_optimizer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default="asset:dinov2", help="teacher spec as in the CTD recipes (default: asset:dinov2)")
    parser.add_argument("--student", default="liteframe-micro", help="student variant (default: liteframe-micro)")
    parser.add_argument("--image-size", type=int, default=112, help="frame side in pixels (default: 112)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8], help="clips per step; several values "
                                                                               "give one row each (default: 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per batch size (default: 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    parser.add_argument("--json", default=None, help="also write the rows and environment to this JSON file")


def _timed(device: torch.device, fn):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def bench_ctd_step(args, batch_size: int, device: torch.device) -> dict:
    cfg = CTDConfig(teacher=args.teacher, student_variant=args.student, image_size=args.image_size,
                    student_init="random", train_data="-")
    teacher = load_teacher(cfg, device)
    student, _ = build_student(cfg, teacher, student_config(cfg, teacher))
    student = student.to(device).train()
    optimizer = build_optimizer(student, cfg)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    clips = torch.randn(batch_size, cfg.clip_len, 3, args.image_size, args.image_size, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def student_step(targets):
        with autocast:
            prediction = student(clips).last_hidden_state
        loss = ctd_loss(prediction, targets)
        loss.backward()

    def optimizer_step():
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = {"teacher": [], "student": [], "optimizer": [], "cache_read": []}
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file

        targets = teacher.wap_targets(clips)
        save_file({"targets": targets.cpu().contiguous()}, str(Path(tmp) / "targets-00000.safetensors"))
        (Path(tmp) / "index.json").write_text(json.dumps({"num_clips": batch_size, "shard_size": batch_size}))
        for step in range(args.warmup + args.steps):
            targets, t_teacher = _timed(device, lambda: teacher.wap_targets(clips))
            _, t_student = _timed(device, lambda: student_step(targets))
            _, t_opt = _timed(device, optimizer_step)
            cache = TargetCache(tmp)  # fresh handles: a cold read of the shard, as a new worker would do
            _, t_cache = _timed(device, lambda: torch.stack([cache[i] for i in range(batch_size)]).to(device))
            if step >= args.warmup:
                for name, value in zip(times, (t_teacher, t_student, t_opt, t_cache)):
                    times[name].append(value)
    mean = {name: sum(v) / len(v) for name, v in times.items()}
    with_teacher = mean["teacher"] + mean["student"] + mean["optimizer"]
    cached = mean["cache_read"] + mean["student"] + mean["optimizer"]
    return {
        "teacher": args.teacher, "student": args.student, "image_size": args.image_size, "batch": batch_size,
        "teacher_ms": 1e3 * mean["teacher"], "student_fwd_bwd_ms": 1e3 * mean["student"],
        "optimizer_ms": 1e3 * mean["optimizer"], "cache_read_ms": 1e3 * mean["cache_read"],
        "clips_per_s": batch_size / with_teacher, "clips_per_s_cached": batch_size / cached,
        "cache_speedup": with_teacher / cached, "peak_memory_mb": peak_memory_mb(device),
        "student_params_m": sum(p.numel() for p in student.parameters()) / 1e6,
    }


def main(args: argparse.Namespace) -> int:
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    rows = [bench_ctd_step(args, b, device) for b in args.batch_size]
    header = environment_header(device, memory="peak RSS" if device.type == "cpu" else "CUDA max allocated")
    columns = ["batch", "teacher_ms", "student_fwd_bwd_ms", "optimizer_ms", "clips_per_s", "cache_read_ms",
               "clips_per_s_cached", "cache_speedup", "peak_memory_mb"]
    print(f"CTD step: teacher {args.teacher} -> student {args.student} ({rows[0]['student_params_m']:.2f}M params) "
          f"at {args.image_size}px, {args.steps} timed steps")
    print(header)
    print(markdown_table(columns, [[r[c] for c in columns] for r in rows]))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"environment": header, "rows": rows}, indent=2))
    return 0
