"""`liteframe bench step`: the cost of one LMA / alignment optimizer step of a micro video LLM on this machine, per
precision setting and OpenMP wait policy, so recipes run with the fastest setting that trains as well.

One step is what training/lma.py does: LoRA on the LLM + the projector trained (PEFT), a batch of one-clip samples
(the grounded clips of the alignment stage: 4 frames + a short multiple-choice prompt, the letter as the target),
forward, backward, AdamW. Settings:

  fp32          every weight fp32, no autocast
  bf16-autocast fp32 weights, bf16 autocast
  bf16-weights  frozen weights in bf16 (Accelerate's `mixed_precision: bf16` in lma.py), trained ones fp32, autocast

Each setting runs in a fresh process, since OpenMP reads OMP_WAIT_POLICY once at start-up; `--beside N` starts N
copies of the same step loop at the same time (what a second job on a shared machine does), with the default
spin-waiting policy and with OMP_WAIT_POLICY=PASSIVE.

  liteframe bench step --model teacher-vlm-micro --batch 16 --steps 3 --beside 0 1 --json step.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

SETTINGS = ("fp32", "bf16-autocast", "bf16-weights")
POLICIES = ("default", "PASSIVE")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="teacher-vlm-micro", help="micro model name or LiteFrame folder")
    parser.add_argument("--batch", type=int, default=16, help="samples per step (default 16)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (default 3, after 1 untimed)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--beside", type=int, nargs="+", default=[0], help="copies of the step loop run at the same "
                                                                           "time (default 0: alone)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (default: torch's)")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # one setting, in a child process
    parser.add_argument("--barrier", default=None, help=argparse.SUPPRESS)  # folder the copies meet in
    parser.add_argument("--copies", type=int, default=1, help=argparse.SUPPRESS)


def _worker(args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    from ..micro import MICRO_MODELS, build_micro_model, peft_wrapping
    from ..modeling.modeling_liteframe import LiteFrameForConditionalGeneration
    from .config import LLM_LINEAR_LAYERS

    if args.threads:
        torch.set_num_threads(args.threads)
    setting = args.worker
    folder = build_micro_model(name=args.model, progress=lambda *_: None) if args.model in MICRO_MODELS else args.model
    frozen = torch.bfloat16 if setting == "bf16-weights" else torch.float32
    model = LiteFrameForConditionalGeneration.from_pretrained(folder, dtype=frozen)
    with peft_wrapping():
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=LLM_LINEAR_LAYERS,
                                                 modules_to_save=["multi_modal_projector"]))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    clip_len, side = cfg.vision_config.clip_len, cfg.vision_config.image_size
    pixels = torch.randn(args.batch, clip_len, 3, side, side, generator=g)
    # The alignment stage's grounded MCQ prompt: one clip's placeholders + ~70 text tokens, the letter as target.
    text = torch.randint(100, 20000, (args.batch, 70), generator=g)
    video = torch.full((args.batch, cfg.tokens_per_clip()), cfg.video_token_id)
    input_ids = torch.cat([text[:, :10], video, text[:, 10:]], dim=1)
    labels = torch.full_like(input_ids, -100)
    labels[:, -1] = input_ids[:, -1]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting != "fp32")
    times = []
    for step in range(1 + args.steps):
        if step == 1 and args.barrier:
            # Every copy starts its timed steps together, after loading and its untimed step: a copy that loads
            # faster must not time steps that ran alone.
            Path(args.barrier, str(os.getpid())).touch()
            while len(os.listdir(args.barrier)) < args.copies:
                time.sleep(0.05)
        start = time.perf_counter()
        with autocast:
            loss = model(input_ids=input_ids, pixel_values_videos=pixels.to(frozen), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - start)
    return {"setting": setting, "seconds": times, "threads": torch.get_num_threads(), "loss": loss.item()}


def _run(args, setting: str, policy: str, beside: int) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy == "PASSIVE":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as barrier:
        cmd = [sys.executable, "-m", "liteframe_hf.cli", "bench", "step", "--model", args.model, "--batch",
               str(args.batch), "--steps", str(args.steps), "--worker", setting, "--barrier", barrier, "--copies",
               str(1 + beside)] + (["--threads", str(args.threads)] if args.threads else [])
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(1 + beside)]
        outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"bench step worker failed ({setting}, {policy}): see its stderr above")
    results = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    seconds = [t for r in results for t in r["seconds"]]  # every copy's timed steps: they ran side by side
    return {"setting": setting, "omp_wait_policy": policy, "processes": 1 + beside, "threads": results[0]["threads"],
            "batch": args.batch, "median_s": median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "timed_steps": len(seconds), "load_before": round(load, 2)}


def main(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    from ..bench import cpu_name, markdown_table

    rows = []
    for beside in args.beside:
        for policy in args.policies:
            for setting in args.settings:
                rows.append(_run(args, setting, policy, beside))
                r = rows[-1]
                print(f"{setting:14s} OMP_WAIT_POLICY {policy:8s} {r['processes']} process(es) x {r['threads']} "
                      f"threads: median {r['median_s']:.2f} s per step of {args.batch}", flush=True)
    columns = ["setting", "omp_wait_policy", "processes", "threads", "batch", "median_s", "min_s", "max_s",
               "load_before"]
    print(f"\n{args.model}, one LMA/alignment step (LoRA r4 + projector, AdamW), {cpu_name()}; times over every "
          f"process's timed steps; load_before: the 1-minute load average when the row started")
    print(markdown_table(columns, [[r[c] for c in columns] for r in rows]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": args.model, "cpu": cpu_name(), "rows": rows}, indent=1))
    return 0
