#!/usr/bin/env python
"""Language Model Adaptation (LMA): teach the LLM to read LiteFrame's compressed video tokens, with LoRA.

Data flow per step: (video, conversation) records -> frames (budget from frame_budgets, fps in [1, 4]; decoded in
DataLoader workers) -> prompt with tokens_per_clip <IMG_CONTEXT> placeholders per clip -> LiteFrame encoder ->
projector -> LLM with LoRA (r=4, alpha=8, dropout 0.05 on its linear layers) -> loss on the answer tokens only.
With --alignment_weight w > 0, grounded rows (caption + box, `liteframe data grounded`) add w x align.py's
token-alignment loss on the projector's tokens: the caption stage of recognition keeps the object's tokens at its
caption while LoRA learns to name it.

    python training/lma.py --config training/configs/lma_micro.yaml
    accelerate launch --config_file training/accelerate/ddp.yaml training/lma.py --config training/configs/lma_paper.yaml
    python training/lma.py --config ... --resume_from_checkpoint latest

Writes to output_dir: checkpoint-<step>/ (trainable weights + optimizer/scheduler/RNG + trainer_state.json),
metrics.csv, logs/, config.yaml, base/ (the assembled base model, when not given as base_model), adapter/ (PEFT
adapter + processor; `AutoModelForImageTextToText.from_pretrained(adapter)` loads base + adapter), merged/ (with
--save_merged; a plain LiteFrame checkpoint + processor with the auto_map and video-text-to-text pipeline entry of a
pushed folder: loads with plain transformers and trust_remote_code), train_summary.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # _recipes.py is beside this script; tests load the script by path
    sys.path.insert(0, HERE)
from _recipes import parse_recipe  # noqa: E402

MODEL_INPUTS = ("input_ids", "attention_mask", "pixel_values_videos", "video_num_frames", "labels")


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_recipe("LMAConfig", argv, __doc__)

    import torch
    import torch.nn.functional as F
    from peft import PeftModel, get_peft_model

    from liteframe_hf.hub import write_pipeline_entry
    from liteframe_hf.modeling.modeling_liteframe import LiteFrameForConditionalGeneration
    from liteframe_hf.data.grounded import object_share
    from liteframe_hf.training.data import (ConversationCollator, VideoConversationDataset, VideoTable,
                                            caption_vocabulary)
    from liteframe_hf.training.features import caption_embeddings
    from liteframe_hf.training.losses import token_alignment_loss
    from liteframe_hf.training.loop import RunFinished, finish_run, frozen_dtype, prepare_training, start_run, train
    from liteframe_hf.micro import peft_wrapping
    from liteframe_hf.training.models import build_lma_model, lma_lora_config

    try:
        accelerator, resume_path, output = start_run(cfg)
    except RunFinished as finished:
        return finished.summary

    # --- Model, its frozen weights in the run's precision. An assembled base (CTD encoder + LLM) is saved once so
    # the adapter can be loaded on top of it; a resumed run loads that saved base (the one its adapter was trained
    # on) instead of assembling it again from the source specs.
    dtype = frozen_dtype(accelerator)
    base_dir = (output / "base").resolve()
    if not cfg.base_model and resume_path is not None and (base_dir / "config.json").is_file():
        model, processor = build_lma_model(cfg, dtype, base=str(base_dir))
    else:
        model, processor = build_lma_model(cfg, dtype)
        if not cfg.base_model:
            if accelerator.is_main_process:
                model.save_pretrained(base_dir)
                processor.save_pretrained(base_dir)
            model.name_or_path = str(base_dir)  # recorded by peft as the adapter's base_model_name_or_path
    accelerator.wait_for_everyone()
    tokenizer = processor.tokenizer
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.alignment_weight:
        if not (cfg.train_projector or cfg.train_vision_tower):
            raise ValueError("alignment_weight trains the visual tokens: set train_projector (or train_vision_tower)")
        # Token alignment beside the answer loss: the objects are the training rows' captions (align.py's order),
        # their targets the captions' mean input embeddings (frozen), "background" last.
        vocabulary = caption_vocabulary(VideoTable(cfg.train_data, cfg.video_column, cfg.data_split))
        targets = caption_embeddings(model, tokenizer, vocabulary + ["background"]).to(accelerator.device)
        token_frames, side, _ = model.config.llm_token_grid(processor.video_processor.size["height"])
        clip_len = model.config.vision_config.clip_len
        accelerator.print(f"token alignment (weight {cfg.alignment_weight}) on the grounded rows of "
                          f"{len(vocabulary)} objects")
    else:
        vocabulary = None
    with peft_wrapping():
        model = get_peft_model(model, lma_lora_config(cfg))
    # The projector's output (every clip's LLM tokens) for the alignment term; under peft, its modules_to_save wrapper.
    projector = model.get_base_model().model.multi_modal_projector
    for param in model.parameters():  # trained weights (LoRA, projector copy) in fp32 for AdamW; frozen ones stay in dtype
        if param.requires_grad:
            param.data = param.data.float()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    accelerator.print(f"trainable parameters: {trainable / 1e6:.2f}M of {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M")

    # --- Data: held-out records for evaluation (eval_data, else the last num_eval_samples training records). Too few
    # rows to hold num_eval_samples out is an error rather than a silently smaller eval set: eval/loss over 1-2 rows
    # says little, and the user should choose between fewer eval rows and a separate eval manifest.
    table = VideoTable(cfg.train_data, cfg.video_column, cfg.data_split)
    if cfg.eval_data:
        eval_table = VideoTable(cfg.eval_data, cfg.video_column, cfg.data_split)
        train_rows, eval_rows = list(range(len(table))), list(range(min(cfg.num_eval_samples, len(eval_table))))
        accelerator.print(f"data: training on all {len(table)} rows of {cfg.train_data}; eval/loss on the first "
                          f"{len(eval_rows)} rows of {cfg.eval_data}")
    else:
        if len(table) <= cfg.num_eval_samples:
            raise ValueError(
                f"{cfg.train_data} has {len(table)} rows and num_eval_samples is {cfg.num_eval_samples}: without "
                f"--eval_data, lma.py holds the last num_eval_samples rows out for eval/loss, which would leave no row "
                f"to train on. Pass --num_eval_samples N with N < {len(table)}, or --eval_data with a separate manifest")
        eval_table, cut = table, len(table) - cfg.num_eval_samples
        train_rows, eval_rows = list(range(cut)), list(range(cut, len(table)))
        accelerator.print(f"data: training on the first {cut} of the {len(table)} rows of {cfg.train_data}; the last "
                          f"{cfg.num_eval_samples} are held out for eval/loss (--num_eval_samples; pass --eval_data to "
                          f"train on every row)")
    train_set = VideoConversationDataset(table, cfg, processor, seed=cfg.seed, fixed=False, rows=train_rows,
                                         vocabulary=vocabulary)
    eval_set = VideoConversationDataset(eval_table, cfg, processor, seed=cfg.seed + 1, fixed=True, rows=eval_rows)
    collate = ConversationCollator(tokenizer.pad_token_id)

    # --- Loaders, AdamW + schedule over the trainable parameters (LoRA + modules_to_save), Accelerate, resume.
    counters = ("videos", "frames", "answer_tokens", "skipped_videos")
    model, optimizer, scheduler, train_loader, eval_loader, state = prepare_training(
        accelerator, cfg, model, train_set, eval_set, collate, resume_path, counters, trainable_only=True)

    def answer_tokens(batch) -> torch.Tensor:
        return (batch["labels"][:, 1:] != -100).sum()

    rows_per_step = cfg.per_device_batch_size * accelerator.num_processes * accelerator.gradient_accumulation_steps

    def alignment_loss(batch, tokens: torch.Tensor) -> torch.Tensor:
        """Sum over the micro-batch's grounded rows of each row's token-alignment loss (the mean over its clips).
        tokens: (clips, tokens_per_clip, d) of every encoded clip, the batch's videos one after another."""
        total = tokens.new_zeros(())
        per_video = tokens.split((batch["video_num_frames"] // clip_len).tolist())
        for clips, obj, box, shown, n in zip(per_video, batch["object"], batch["box"], batch["shown"],
                                             batch["video_num_frames"]):
            if obj >= 0:  # the box's share in each token frame whose frames show the cut-out: (clips, tokens_per_clip)
                share_per_clip = object_share(box.cpu().expand(len(clips), -1), side, shown[:n].view(len(clips), -1),
                                              token_frames).to(tokens.device)
                total = total + token_alignment_loss(
                    clips.float(), obj.expand(len(clips)), share_per_clip, targets, cfg.temperature,
                    cfg.min_object_share, cfg.background_weight, cfg.mse_weight)
        return total

    def micro_step(batch, timer, step_items):
        """Video LLM forward with LoRA -> summed loss of the answer tokens / the step's answer tokens (over every
        micro-batch and process: the step's loss is the mean per answer token) [+ alignment_weight x the
        token-alignment loss summed over grounded rows / the step's rows] -> backward."""
        with timer("model"):
            captured = []
            hook = (projector.register_forward_hook(lambda module, args, out: captured.append(out))
                    if cfg.alignment_weight else None)
            try:
                with accelerator.autocast():
                    loss = model(**{k: batch[k] for k in MODEL_INPUTS}, num_items_in_batch=step_items.total).loss
            finally:
                if hook is not None:
                    hook.remove()
            if cfg.alignment_weight:
                loss = loss + cfg.alignment_weight * alignment_loss(batch, captured[0]) / rows_per_step
            step_items.backward(loss)
        return loss, torch.stack([torch.tensor(batch["input_ids"].shape[0]), batch["video_num_frames"].sum().cpu(),
                                  answer_tokens(batch).cpu(), torch.tensor(int(batch["skipped"]))])

    @torch.no_grad()
    def evaluate() -> dict:
        """Mean loss per answer token over the held-out records. Per-record sums are gathered with
        `gather_for_metrics`, which drops the records repeated to even out the last batch across processes."""
        model.eval()
        sums = []
        for batch in eval_loader:
            with accelerator.autocast():
                logits = model(**{k: batch[k] for k in MODEL_INPUTS if k != "labels"}).logits
            labels = batch["labels"][:, 1:]
            token_loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels, ignore_index=-100,
                                         reduction="none")  # (B, L-1)
            per_record = torch.stack([token_loss.sum(1), (labels != -100).sum(1).float()], dim=1)  # (B, 2)
            sums.append(accelerator.gather_for_metrics(per_record))
        model.train()
        total = torch.cat(sums).sum(0)
        return {"eval/loss": (total[0] / total[1]).item()}

    stats = train(accelerator, cfg, name="lma", model=model, optimizer=optimizer, scheduler=scheduler,
                  loader=train_loader, state=state, output=output, counters=counters, phases=("model",),
                  items=answer_tokens, micro_step=micro_step, evaluate=evaluate, eval_columns=("eval/loss",))

    # --- Adapter (+ merged model). The full state dict is a collective under FSDP; only process 0 writes.
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output / "adapter", state_dict=state_dict, save_embedding_layers=False)
        processor.save_pretrained(output / "adapter")
        if cfg.save_merged:
            # From the saved base + adapter, not the training model (whose weights FSDP holds in shards).
            base = LiteFrameForConditionalGeneration.from_pretrained(
                unwrapped.peft_config["default"].base_model_name_or_path, dtype=dtype)
            with peft_wrapping():
                merged = PeftModel.from_pretrained(base, output / "adapter").merge_and_unload()
            merged.save_pretrained(output / "merged")
            processor.save_pretrained(output / "merged")
            write_pipeline_entry(output / "merged")  # the same auto_map + pipeline entry `liteframe push` writes
    accelerator.wait_for_everyone()
    return finish_run(accelerator, output, {**stats, "trainable_parameters": trainable, "frozen_dtype": str(dtype),
                                            "tokens_per_clip": processor.tokens_per_clip})


if __name__ == "__main__":
    main()
