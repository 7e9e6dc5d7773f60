#!/usr/bin/env python
"""Compressed Token Distillation (CTD): train a LiteFrame video encoder to predict a frozen teacher's WAP tokens.

Data flow per step: videos -> 4-frame clips at fps ~ U[1, 4] (decoded in DataLoader workers) -> frozen teacher ->
WAP (4, 2, 2) targets -> student forward -> ctd_loss (MSE, differences clipped at 3 sigma) -> AdamW step.

    python training/ctd.py --config training/configs/ctd_micro.yaml                      # one process
    accelerate launch --config_file training/accelerate/ddp.yaml training/ctd.py --config training/configs/ctd_paper.yaml
    python training/ctd.py --config ... --resume_from_checkpoint latest                  # continue a killed run

Writes to output_dir: checkpoint-<step>/ (accelerator.save_state + trainer_state.json), metrics.csv, logs/
(TensorBoard), config.yaml, student/ (the final LiteFrameVisionModel, from_pretrained-ready), train_summary.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # _recipes.py is beside this script; tests load the script by path
    sys.path.insert(0, HERE)
from _recipes import parse_recipe  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_recipe("CTDConfig", argv, __doc__)

    import torch

    from liteframe_hf.training.cache import build_target_cache
    from liteframe_hf.training.data import CTDClipDataset, VideoTable, collate_clips
    from liteframe_hf.training.losses import ctd_loss, ctd_metrics
    from liteframe_hf.training.loop import RunFinished, finish_run, frozen_dtype, prepare_training, start_run, train
    from liteframe_hf.training.models import build_student, load_teacher, student_config

    try:
        accelerator, resume_path, output = start_run(cfg)
    except RunFinished as finished:
        return finished.summary

    # --- Teacher (frozen, in the run's precision, outside `prepare`: it has no gradients to synchronise) and data:
    # random clips for training, a fixed set of held-out clips for evaluation.
    teacher = load_teacher(cfg, accelerator.device, frozen_dtype(accelerator))
    config = student_config(cfg, teacher)
    image_size = cfg.image_size or config.image_size
    train_set = CTDClipDataset(VideoTable(cfg.train_data, cfg.video_column, cfg.data_split), cfg, image_size,
                               seed=cfg.seed, fixed=cfg.clip_plan == "fixed")
    eval_table = VideoTable(cfg.eval_data, cfg.video_column, cfg.data_split) if cfg.eval_data else train_set.table
    eval_set = CTDClipDataset(eval_table, cfg, image_size, seed=cfg.seed + 1, fixed=True, length=cfg.num_eval_clips)

    # --- Student: clipped from the teacher, its head fitted on real training clips (skipped when resuming: the
    # checkpoint overwrites the weights). One clip per video (item i is a clip of video i % videos): the head's
    # ridge is cross-validated over these clips, and clips of one video would let it pick a weak ridge whose
    # head amplifies every early update until CTD diverges (docs/ctd_stability.md).
    calibration = None
    if resume_path is None and cfg.student_init == "teacher":
        count = min(cfg.num_calibration_clips, len(train_set), len(train_set.table))
        calibration = torch.stack([train_set[i]["pixel_values"] for i in range(count)])  # (N, clip_len, 3, S, S)
    student, init_report = build_student(cfg, teacher, config, calibration, initialise=resume_path is None)
    if init_report is not None:
        accelerator.print(init_report.summary())
        if accelerator.is_main_process:
            (output / "student_init.json").write_text(json.dumps(init_report.to_dict(), indent=2))

    cache_seconds = 0.0
    if cfg.target_cache:
        recipe = {"teacher": cfg.teacher, "weighting": teacher.weighting, "block": list(teacher.block),
                  "dtype": str(teacher.dtype)}
        train_set.targets, cache_seconds = build_target_cache(
            accelerator, train_set, teacher, cfg.target_cache, recipe, cfg.cache_shard_size,
            cfg.per_device_batch_size, cfg.num_workers)
        accelerator.print(f"teacher targets cached in {cfg.target_cache} ({cache_seconds:.1f}s to build)")

    # --- Loaders, AdamW + schedule, Accelerate, resume.
    counters = ("clips", "skipped_videos")
    student, optimizer, scheduler, train_loader, eval_loader, state = prepare_training(
        accelerator, cfg, student, train_set, eval_set, collate_clips, resume_path, counters)

    def clips(batch) -> int:
        return batch["pixel_values"].shape[0]

    def micro_step(batch, timer, step_items):
        """Teacher targets (or cached ones) -> student -> clipped MSE, weighted by the micro-batch's share of the
        step's clips (a short last batch of an epoch weighs what its clips weigh) -> backward."""
        with timer("teacher"):
            targets = batch["targets"] if "targets" in batch else teacher.wap_targets(batch["pixel_values"])
        with timer("student"):
            with accelerator.autocast():
                prediction = student(batch["pixel_values"]).last_hidden_state  # (N, T', H', W', D)
            loss = ctd_loss(prediction, targets, cfg.clip_sigma) * clips(batch) / step_items.total
            step_items.backward(loss)
        return loss, torch.tensor([clips(batch), int(batch["skipped"])])

    eval_targets: list[torch.Tensor] = []  # the held-out clips are fixed: run the teacher on them once

    @torch.no_grad()
    def evaluate() -> dict:
        student.eval()
        scores = {"mse": [], "cosine": []}
        for i, batch in enumerate(eval_loader):
            if i == len(eval_targets):
                eval_targets.append(teacher.wap_targets(batch["pixel_values"]))
            with accelerator.autocast():
                prediction = student(batch["pixel_values"]).last_hidden_state
            for name, value in ctd_metrics(prediction, eval_targets[i]).items():
                scores[name].append(accelerator.gather_for_metrics(value))
        student.train()
        return {f"eval/{name}": torch.cat(values).mean().item() for name, values in scores.items()}

    stats = train(accelerator, cfg, name="ctd", model=student, optimizer=optimizer, scheduler=scheduler,
                  loader=train_loader, state=state, output=output, counters=counters,
                  phases=("teacher", "student"), items=clips, micro_step=micro_step, evaluate=evaluate,
                  eval_columns=("eval/mse", "eval/cosine"))

    # --- The final student, from_pretrained-ready.
    accelerator.unwrap_model(student).save_pretrained(
        output / "student", is_main_process=accelerator.is_main_process, save_function=accelerator.save,
        state_dict=accelerator.get_state_dict(student))
    return finish_run(accelerator, output, {**stats, "target_cache_build_s": cache_seconds})


if __name__ == "__main__":
    main()
