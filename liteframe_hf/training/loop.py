"""The training loop shared by training/ctd.py and training/lma.py.

The scripts say what is particular to them (models, data, the forward pass of one micro-batch, evaluation, what is
saved at the end); this module runs the rest once for both: run set-up (`start_run`), the Accelerator, loaders,
optimizer and resume (`prepare_training`), the endless resumable micro-batch stream, the optimisation loop with
accumulation, grad-norm clipping, logging windows, evaluation and checkpoints (`train`), the per-phase step timer,
peak memory, the check that data-parallel replicas hold identical weights, and the run summary (`finish_run`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch
import yaml
from accelerate import Accelerator, DistributedType
from accelerate.utils import (GradientAccumulationPlugin, ProjectConfiguration, is_tensorboard_available, send_to_device,
                               set_seed)
from tqdm.auto import tqdm

from .checkpoint import (STATE_FILE, checkpoint_trainable_only, load_checkpoint, prepare_output_dir, resolve_checkpoint,
                         save_checkpoint)
from .config import TrainConfig, config_to_dict
from .data import EpochSampler
from .optim import build_optimizer, build_scheduler
from .tracking import MetricsLogger

__all__ = ["RunFinished", "start_run", "make_accelerator", "frozen_dtype", "micro_batches", "StepItems", "train",
           "StepTrace", "finish_run", "StepTimer", "peak_memory_mb", "replicas_in_sync", "make_loader", "metric_columns",
           "prepare_training"]


class RunFinished(Exception):
    """Raised by `start_run` when the checkpoint to resume from is the run's last (step == max_steps) and its
    train_summary.json exists: there is nothing left to do, and no file of the finished run is rewritten.
    `summary` is that run's train_summary.json."""

    def __init__(self, summary: dict):
        super().__init__(f"the run already finished at step {summary.get('step')}")
        self.summary = summary


def start_run(cfg: TrainConfig):
    """Build the Accelerator for a parsed recipe (`parse_config`), seed, find the checkpoint to resume from (or refuse
    to overwrite a finished run) and record the resolved config in ``output_dir/config.yaml``.

    Resuming a run that already reached max_steps and wrote its summary raises `RunFinished` before anything is
    written (a resumed finished run used to rewrite train_summary.json with zeros and write adapter/ and merged/
    again); a checkpoint past max_steps is refused. Returns (accelerator, resume_path or None, output_dir)."""
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    resume_path = resolve_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint)
    output = Path(cfg.output_dir)
    if resume_path is not None:
        done = json.loads((resume_path / STATE_FILE).read_text())["step"]
        if done > cfg.max_steps:
            raise ValueError(f"{resume_path} is at step {done}, past --max_steps {cfg.max_steps}: pass --max_steps "
                             f"N > {done} to train further (the finished run's files are in {output})")
        summary_file = output / "train_summary.json"
        if done == cfg.max_steps and summary_file.is_file():
            summary = json.loads(summary_file.read_text())
            if summary.get("step") == done:
                accelerator.print(f"{output} already finished at step {done} (its train_summary.json); nothing to do "
                                  f"and no file rewritten. Pass --max_steps N > {done} to train further.")
                raise RunFinished(summary)
    prepare_output_dir(accelerator, cfg.output_dir, resume_path is not None, cfg.overwrite_output_dir)
    if accelerator.is_main_process:
        (output / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return accelerator, resume_path, output


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    """Accelerator for a recipe. Device, process group and mixed precision come from Accelerate itself: the
    `accelerate launch` flags, its config file (`--config_file training/accelerate/*.yaml`) or its environment
    (`ACCELERATE_USE_CPU=1`, `ACCELERATE_MIXED_PRECISION=bf16`); the recipe sets only what Accelerate does not."""
    log_with = None if cfg.report_to in ("none", "", None) else cfg.report_to
    if log_with == "tensorboard" and not is_tensorboard_available():
        warnings.warn("tensorboard is not installed (pip install tensorboard): metrics go to metrics.csv only",
                      stacklevel=2)
        log_with = None
    accelerator = Accelerator(
        # Accumulation windows run across epoch ends: step k always consumes micro-batches [k*G, (k+1)*G).
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=cfg.gradient_accumulation_steps,
                                                                sync_with_dataloader=False),
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=cfg.output_dir, logging_dir=os.path.join(cfg.output_dir, "logs")),
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    for name in ("FSDP", "DEEPSPEED"):
        asked = os.environ.get(f"ACCELERATE_USE_{name}", "false").lower() == "true"
        if asked and (accelerator.distributed_type.name != name or accelerator.num_processes != launched):
            # Accelerate 1.x enables FSDP / DeepSpeed on accelerators only: on the CPU it silently falls back to
            # DDP (ACCELERATE_USE_CPU=1) or to N unsynchronised single processes.
            raise RuntimeError(
                f"the launch asked for {name} on {launched} processes but Accelerate set up {accelerator.num_processes} "
                f"x {accelerator.distributed_type} on {accelerator.device}: Accelerate runs {name} on GPUs only "
                f"(training/README.md lists what runs where)")
    if accelerator.num_processes != launched:
        # `accelerate launch --multi_gpu` on a machine without GPUs starts N processes that each train alone on
        # the same output_dir; stop before they overwrite each other.
        raise RuntimeError(
            f"{launched} processes were launched but Accelerate set up {accelerator.num_processes} "
            f"({accelerator.distributed_type}) on {accelerator.device}. Without a GPU, multi-process runs are CPU "
            f"(gloo) runs: set ACCELERATE_USE_CPU=1, e.g. `ACCELERATE_USE_CPU=1 accelerate launch --config_file "
            f"training/accelerate/cpu_ddp.yaml ...`"
        )
    return accelerator


def frozen_dtype(accelerator: Accelerator) -> torch.dtype:
    """The dtype frozen weights (CTD teacher, LMA base LLM) are held in: the run's mixed precision, so a 7B LLM
    takes 2 bytes per parameter on each GPU under bf16, fp32 otherwise. Trained weights stay fp32."""
    precision = accelerator.mixed_precision
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # DeepSpeed keeps the precision in its own config
        config = accelerator.state.deepspeed_plugin.deepspeed_config
        precision = next((k for k in ("bf16", "fp16") if config.get(k, {}).get("enabled") is True), precision)
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp8": torch.bfloat16}.get(precision, torch.float32)


def make_loader(dataset, batch_size: int, collate_fn, num_workers: int, sampler, seed: int):
    """A DataLoader whose worker seeds come from its own generator: creating an iterator (e.g. when resuming)
    never consumes the global torch RNG, so dropout masks after a resume match an uninterrupted run."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
        persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_worker_init, pin_memory=torch.cuda.is_available(),
    )


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode video; leave the cores to the training process


def prepare_training(accelerator: Accelerator, cfg: TrainConfig, model: torch.nn.Module, train_set, eval_set,
                     collate_fn, resume_path: Path | None, counters: tuple[str, ...], trainable_only: bool = False):
    """(model, optimizer, scheduler, train_loader, eval_loader, state) for `train`: loaders (training: a new order each
    epoch; held-out: a fixed one), AdamW + its schedule (checkpointed), all prepared by Accelerate, and the state,
    fresh or resumed from `resume_path`. `trainable_only`: checkpoints hold the trainable weights alone (LMA)."""
    train_loader = make_loader(train_set, cfg.per_device_batch_size, collate_fn, cfg.num_workers,
                               EpochSampler(len(train_set), cfg.seed), cfg.seed)
    eval_loader = make_loader(eval_set, cfg.per_device_batch_size, collate_fn, cfg.num_workers,
                              EpochSampler(len(eval_set), cfg.seed, shuffle=False), cfg.seed)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    model, optimizer, eval_loader = accelerator.prepare(model, optimizer, eval_loader)
    # `train` reads a step's micro-batches ahead (to count their items) and moves each to the device in turn.
    train_loader = accelerator.prepare_data_loader(train_loader, device_placement=False)
    accelerator.register_for_checkpointing(scheduler)
    trainable_names = checkpoint_trainable_only(accelerator, model) if trainable_only else None
    state = {"step": 0, "micro_batches": 0, **dict.fromkeys(counters, 0)}
    if resume_path is not None:
        state = load_checkpoint(accelerator, resume_path, trainable_names)
        accelerator.print(f"resumed from {resume_path} at step {state['step']}")
    return model, optimizer, scheduler, train_loader, eval_loader, state


def micro_batches(accelerator: Accelerator, loader, start: int = 0):
    """Endless (epoch, batch) stream over a prepared loader, starting after `start` consumed micro-batches.

    Epoch e iterates the loader with set_epoch(e) (the sampler's order for e); resuming mid-epoch skips the
    consumed batches with `accelerator.skip_first_batches` (indices only: skipped samples are not decoded).
    """
    per_epoch = len(loader)
    if per_epoch == 0:
        raise ValueError("the training set gives no batch on this process: use more videos or a smaller batch size")
    epoch, skip = divmod(start, per_epoch)
    while True:
        # The epoch goes to the prepared loader first: the loader `skip_first_batches` builds wraps the sharded
        # batch sampler in one more layer, through which its own set_epoch no longer reaches the sampler (with
        # several processes a resumed epoch would replay epoch 0's order). Both share the same sampler object.
        loader.set_epoch(epoch)
        current = accelerator.skip_first_batches(loader, skip) if skip else loader
        current.set_epoch(epoch)
        for batch in current:
            yield epoch, batch
        epoch, skip = epoch + 1, 0


class StepItems:
    """The items (LMA answer tokens, CTD clips) of one optimizer step, counted over every micro-batch of every
    process, and the backward pass that makes the step's gradient the gradient of their mean.

    A micro-batch's loss is the sum of its per-item losses / `total`; `backward` multiplies it by processes x
    accumulation steps, which DDP/FSDP/DeepSpeed (mean over processes) and Accelerate (/ accumulation steps)
    divide out again. Micro-batches with few answer tokens thus weigh what their tokens weigh, as in
    transformers' Trainer with `num_items_in_batch`."""

    def __init__(self, accelerator: Accelerator, total: torch.Tensor):
        self.accelerator, self.total = accelerator, total
        self.factor = accelerator.num_processes * accelerator.gradient_accumulation_steps

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss * self.factor)


class StepTimer:
    """Wall time per phase (data, teacher, student, optimizer...), summed until `pop()`. On GPU each phase is
    bracketed by a synchronise so the split is real; disabled, it costs nothing."""

    def __init__(self, device: torch.device, enabled: bool = True):
        self.sync = device.type == "cuda"
        self.enabled = enabled
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, phase: str):
        if not self.enabled:
            yield
            return
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.totals[phase] += time.perf_counter() - start

    def pop(self) -> dict[str, float]:
        totals, self.totals = dict(self.totals), defaultdict(float)
        return totals


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, peak resident set size on CPU (MiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@torch.no_grad()
def replicas_in_sync(accelerator: Accelerator, model: torch.nn.Module) -> bool | None:
    """True when every process holds bit-identical parameters (data parallelism working), None where parameters
    are sharded by design (FSDP, DeepSpeed ZeRO-3). A collective: call on every process."""
    if accelerator.distributed_type == DistributedType.FSDP:
        return None
    if accelerator.distributed_type == DistributedType.DEEPSPEED and accelerator.state.deepspeed_plugin.zero_stage == 3:
        return None
    digests = []
    for _, param in sorted(accelerator.unwrap_model(model).named_parameters()):
        digest = hashlib.blake2b(param.detach().float().cpu().numpy().tobytes(), digest_size=8).digest()
        digests.append(int.from_bytes(digest, "little", signed=True))
    local = torch.tensor([digests], dtype=torch.int64, device=accelerator.device)  # (1, P)
    gathered = accelerator.gather(local)  # (processes, P)
    return bool((gathered == gathered[0]).all())


def metric_columns(counters: tuple[str, ...], phases: tuple[str, ...], eval_columns: tuple[str, ...]) -> list[str]:
    """The metrics.csv columns `train` writes: running totals of the counters, the rate of the first one, the
    step time and its split into phases, and the evaluation metrics."""
    return ["epoch", "loss", "lr", "grad_norm", *counters, f"{counters[0]}_per_s", "time/step",
            *[f"time/{p}" for p in _all_phases(phases)], *eval_columns]


def _all_phases(phases: tuple[str, ...]) -> tuple[str, ...]:
    return ("data", *phases, "optimizer")  # the loop times data and optimizer; micro_step times the rest


def train(
    accelerator: Accelerator,
    cfg: TrainConfig,
    *,
    name: str,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    loader,
    state: dict,
    output: Path,
    counters: tuple[str, ...],
    phases: tuple[str, ...],
    items: Callable[[dict], torch.Tensor | int],
    micro_step: Callable[[dict, StepTimer, StepItems], tuple[torch.Tensor, torch.Tensor]],
    evaluate: Callable[[], dict],
    eval_columns: tuple[str, ...],
) -> dict:
    """Optimise from ``state["step"]`` to ``cfg.max_steps``; one step = ``gradient_accumulation_steps`` micro-batches.

    The step's micro-batches are read first (kept where the loader leaves them: prepare the training loader with
    ``device_placement=False`` so only the running micro-batch is on the accelerator) and `items(batch)` counted
    over all of them and all processes. `micro_step(batch, timer, step_items)` then runs forward +
    ``step_items.backward`` for one micro-batch (timing its phases with `timer`) and returns (loss, counts): its
    loss is its share of the step's per-item mean (sum of its item losses / ``step_items.total``), counts a 1-D
    tensor aligned with `counters` (e.g. clips, skipped videos) whose sums over processes are kept in `state`.

    Metrics go to metrics.csv and the tracker every ``logging_steps``; `evaluate()` runs every ``eval_steps`` and
    at the end; checkpoints (weights, optimizer, scheduler, RNG, data position, counters and the partly filled
    logging window) every ``save_steps`` and at the end. Returns run statistics."""
    logger = MetricsLogger(accelerator, output, metric_columns(counters, phases, eval_columns), name,
                           config_to_dict(cfg), start_step=state["step"])
    trace = StepTrace(accelerator, output, state["step"]) if cfg.trace_steps else None
    all_phases = _all_phases(phases)
    stream = micro_batches(accelerator, loader, start=state["micro_batches"])
    timer = StepTimer(accelerator.device, cfg.timing)
    accum = cfg.gradient_accumulation_steps
    progress = tqdm(total=cfg.max_steps, initial=state["step"], desc=name,
                    disable=not accelerator.is_local_main_process)
    device = accelerator.device

    def fresh_window(carried: dict | None = None) -> dict:
        """A logging window: local sums since the last reduction, plus the global sums carried over a checkpoint
        (saved with it, so a run resumed mid-window logs what the uninterrupted run logs)."""
        carried = carried or {"steps": 0, "loss": 0.0, "counts": [0] * len(counters)}
        return {"loss": torch.zeros((), device=device), "counts": torch.zeros(len(counters), dtype=torch.long, device=device),
                "steps": carried["steps"], "carried_loss": carried["loss"], "carried_counts": list(carried["counts"]),
                "start": time.perf_counter()}

    def reduce_window() -> tuple[float, list[int]]:
        """Global loss sum and counts of the window so far; counts are added to the running totals in `state`."""
        loss = accelerator.reduce(window["loss"], "sum").item()
        counts = [int(c) for c in accelerator.reduce(window["counts"], "sum")]
        for key, count in zip(counters, counts):
            state[key] += count
        return window["carried_loss"] + loss, [a + b for a, b in zip(window["carried_counts"], counts)]

    window, run_start = fresh_window(state.pop("window", None)), time.perf_counter()
    steps_run, phase_totals, grad_norm, last_eval = 0, dict.fromkeys(all_phases, 0.0), None, {}
    counted_before = state[counters[0]]  # the summary's rates are what this run measured, not the nominal batch
    if cfg.eval_on_start and state["step"] == 0:
        logger.log(0, evaluate())
    model.train()
    if state["step"] < cfg.max_steps:
        # The first step also starts the DataLoader workers, decodes its videos and warms the kernels (tens of
        # seconds on a CPU): say so on the bar instead of leaving it silent at 0.
        progress.set_postfix_str(f"step {state['step'] + 1}: decoding the first batch and running it...")
    for step in range(state["step"] + 1, cfg.max_steps + 1):
        with timer("data"):
            batches = [next(stream) for _ in range(accum)]
            batch_items = torch.stack([torch.as_tensor(items(batch)).to(device=device, dtype=torch.long)
                                       for _, batch in batches])
            step_items = StepItems(accelerator, accelerator.reduce(batch_items.sum(), "sum"))
        losses = []
        for epoch, batch in batches:
            with timer("data"):
                batch = send_to_device(batch, device, non_blocking=True)
            with accelerator.accumulate(model):
                loss, counts = micro_step(batch, timer, step_items)
                with timer("optimizer"):
                    if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            window["counts"] += counts.to(window["counts"])
        window["loss"] += sum(losses)
        if trace is not None:
            trace.write(step, epoch, losses, batch_items, [batch["key"] for _, batch in batches])
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        window["steps"] += 1
        steps_run += 1
        if steps_run == 1:
            progress.set_postfix_str("", refresh=False)
        progress.update(1)

        # Logging (+ evaluation): reduced over processes, one CSV row written by the main process.
        evaluate_now = step == cfg.max_steps or (cfg.eval_steps and step % cfg.eval_steps == 0)
        if step % cfg.logging_steps == 0 or evaluate_now:
            loss_sum, counts = reduce_window()
            elapsed = time.perf_counter() - window["start"]
            spent = timer.pop()
            for p in all_phases:
                phase_totals[p] += spent.get(p, 0.0)
            metrics = {
                "epoch": epoch,
                "loss": loss_sum / window["steps"],  # mean over the window's steps of each step's per-item mean
                "lr": lr,
                "grad_norm": None if grad_norm is None else float(grad_norm),
                **{key: state[key] for key in counters},
                f"{counters[0]}_per_s": counts[0] / elapsed,
                "time/step": elapsed / window["steps"],
                **{f"time/{p}": spent.get(p, 0.0) / window["steps"] for p in all_phases},
            }
            if evaluate_now:
                last_eval = evaluate()
                metrics.update(last_eval)
            logger.log(step, metrics)
            progress.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{lr:.2e}")
            window = fresh_window()

        # Checkpoint: everything needed to continue exactly from here, including a partly filled logging window.
        if step % cfg.save_steps == 0 or step == cfg.max_steps:
            if window["steps"]:
                loss_sum, counts = reduce_window()
                window = fresh_window({"steps": window["steps"], "loss": loss_sum, "counts": counts})
                window_state = {"steps": window["steps"], "loss": loss_sum, "counts": counts}
            else:
                window_state = None
            state.update(step=step, micro_batches=step * accum)
            save_checkpoint(accelerator, output, {**state, "window": window_state}, cfg.save_total_limit)
    progress.close()

    if steps_run == 0:
        # Resumed from the last checkpoint of a run killed before it wrote its summary: the final evaluation is
        # run again (same weights, same held-out samples) so the summary keeps it.
        last_eval = evaluate()
    seconds = time.perf_counter() - run_start
    # Measured, not per_device_batch_size x accumulation x processes: an epoch's short last batch and dropped
    # samples (unreadable videos, max_length) make fewer. None when this run made no step.
    counted = state[counters[0]] - counted_before
    return {
        "step": state["step"],
        "steps_this_run": steps_run,
        "processes": accelerator.num_processes,
        "distributed_type": str(accelerator.distributed_type),
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        f"{counters[0]}_per_step": counted / steps_run if steps_run else None,
        f"nominal_{counters[0]}_per_step": cfg.per_device_batch_size * accum * accelerator.num_processes,
        "seconds": seconds,
        f"{counters[0]}_per_s": counted / seconds if steps_run else None,
        "seconds_per_step": {p: phase_totals[p] / steps_run if steps_run else None for p in all_phases},
        "peak_memory_mb": peak_memory_mb(accelerator.device),
        "replicas_in_sync": replicas_in_sync(accelerator, model),
        "skipped_videos": state["skipped_videos"],
        **last_eval,
    }


class StepTrace:
    """``output_dir/trace/rank-<r>.jsonl`` (``--trace_steps``): per optimizer step and process, for each micro-batch
    its sample keys, loss share (its part of the step's per-item mean) and item count. Audits the data order and exact resume: the files of a
    resumed run equal those of an uninterrupted one. Rows past the resumed step (logged by a killed run after
    its last checkpoint) are dropped."""

    def __init__(self, accelerator: Accelerator, output: Path, start_step: int):
        self.path = output / "trace" / f"rank-{accelerator.process_index}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if start_step > 0 and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= start_step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, epoch: int, losses: list[torch.Tensor], items: torch.Tensor,
              keys: list[torch.Tensor]) -> None:
        row = {"step": step, "epoch": epoch, "loss": [repr(loss.item()) for loss in losses], "items": items.tolist(),
               "keys": [k.tolist() for k in keys]}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def finish_run(accelerator: Accelerator, output: Path, summary: dict) -> dict:
    """Write ``train_summary.json`` (main process), print it, close the trackers."""
    if accelerator.is_main_process:
        (output / "train_summary.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(json.dumps(summary, indent=2))
    accelerator.end_training()
    return summary
