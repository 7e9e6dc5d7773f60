#!/usr/bin/env python
"""Token alignment: the projector learns to put each object's caption into the visual tokens that see it.

The first stage of teaching a micro VLM what it sees (docs/reproduce_micro.md, "Recognition"). LMA's caption or
letter loss alone gives the projector a weak, indirect signal; here every visual token gets a direct one, with no
LLM forward: a token whose cell a cut-out's box covers by >= min_object_share is classified, by cosine similarity /
temperature, against the mean input embedding of every caption of the vocabulary (and of " background"); the other
tokens against " background" (weight background_weight); an MSE to the target embedding keeps the tokens at the
scale the LLM reads. LMA then trains LoRA + projector on the captions from this projector (`--base_model
OUTPUT/aligned --mcq_answer text`).

Data: grounded manifests (`liteframe data grounded`): one captioned cut-out in view per clip, with its box. The
vision tower is frozen, so its tokens for each clip (the first `cache_frames` frames, pixel-shuffled: the
projector's input) are computed once into `feature_cache` and every step reads them.

    liteframe data grounded --split train --out grounded --views 80 --objects 40
    liteframe data grounded --split val --out grounded --views 6 --objects 40
    python training/align.py --config training/configs/align_teacher_micro.yaml

Writes to output_dir: features/ (the cache), checkpoint-<step>/, metrics.csv, logs/, config.yaml, aligned/ (the
base model with the aligned projector and its processor: a LiteFrame folder for lma.py's base_model or
init_projector_from), train_summary.json. eval/four_way is the held-out rows' 4-way identity read off the tokens
(each option's score: its caption's best-matching token).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # _recipes.py is beside this script; tests load the script by path
    sys.path.insert(0, HERE)
from _recipes import parse_recipe  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_recipe("AlignConfig", argv, __doc__)

    import torch
    import torch.nn.functional as F

    from liteframe_hf.training.features import GroundedFeatures, StemTail, build_feature_cache, caption_embeddings
    from liteframe_hf.training.loop import RunFinished, finish_run, prepare_training, start_run, train
    from liteframe_hf.training.losses import token_alignment_loss, token_distillation_loss
    from liteframe_hf.training.models import load_align_model

    try:
        accelerator, resume_path, output = start_run(cfg)
    except RunFinished as finished:
        return finished.summary

    # --- Model (fp32: only the projector, or the tower's last blocks + the projector, train) and the frozen part's
    # tokens, cached once: the whole tower's (the projector's input), or its stem's (the blocks before train_blocks).
    model, processor = load_align_model(cfg.base_model)
    for param in model.parameters():
        param.requires_grad = False
    blocks = len(model.model.vision_tower.layers)
    if cfg.train_blocks >= blocks:
        raise ValueError(f"train_blocks={cfg.train_blocks}: the tower has {blocks} blocks; at least its first must stay "
                         f"frozen (it is the cached stem)")
    stem = blocks - cfg.train_blocks if cfg.train_blocks else None
    size = int(processor.video_processor.size["height"])
    if stem is None:
        trained = model.model.multi_modal_projector
        for param in trained.parameters():
            param.requires_grad = True
    else:  # shares its weights with `model`: training it trains the model's own
        trained = StemTail(model, stem, size)

    def features(manifest, vocabulary=None) -> GroundedFeatures:
        return GroundedFeatures(build_feature_cache(accelerator, model, processor, manifest, cfg.feature_cache,
                                                    cfg.cache_frames, stem_blocks=stem), vocabulary=vocabulary)

    train_set = features(cfg.train_data)
    eval_set = features(cfg.eval_data, train_set.vocabulary) if cfg.eval_data else None
    targets = caption_embeddings(model, processor.tokenizer, train_set.vocabulary + ["background"])
    teacher_tokens = teacher_targets(accelerator, cfg, model.config.llm_token_grid(size), size) if cfg.distill_from else {}
    accelerator.print(f"token alignment: {len(train_set)} clips of {len(train_set.vocabulary)} objects, "
                      f"{train_set.tokens_per_clip} tokens each; eval: {len(eval_set) if eval_set else 0} clips; "
                      + (f"training the tower's last {cfg.train_blocks} of {blocks} blocks + the projector"
                         if stem else "training the projector")
                      + (f"; distilling {cfg.distill_from}'s tokens (weight {cfg.distill_weight})" if cfg.distill_from
                         else ""))

    counters = ("clips", "skipped_videos")  # nothing is decoded while training: every clip is in the cache
    trained, optimizer, scheduler, train_loader, eval_loader, state = prepare_training(
        accelerator, cfg, trained, train_set, eval_set or train_set, GroundedFeatures.collate, resume_path, counters)

    def clips(batch) -> int:
        return batch["tokens"].shape[0]

    def objective(batch, out: torch.Tensor, split: str, reduce: bool = True):
        """(token alignment, distillation or None) of a micro-batch's LLM tokens `out`."""
        align = token_alignment_loss(out, batch["labels"], batch["object_share"], targets, cfg.temperature,
                                     cfg.min_object_share, cfg.background_weight, cfg.mse_weight, reduce=reduce)
        if split not in teacher_tokens:
            return align, None
        table = teacher_tokens[split]
        return align, token_distillation_loss(out, table[batch["key"].cpu() % len(table)].to(out.device), reduce=reduce)

    def micro_step(batch, timer, step_items):
        with timer("tokens"):
            align, distill = objective(batch, trained(batch["tokens"].float()), "train")
            loss = align + cfg.distill_weight * distill if distill is not None else align
            loss = loss * clips(batch) / step_items.total
            step_items.backward(loss)
        return loss, torch.tensor([clips(batch), 0])

    @torch.no_grad()
    def evaluate() -> dict:
        """4-way identity of the held-out clips from their tokens: an option scores its caption's best cosine
        similarity over the clip's tokens; the right option must score highest."""
        if eval_set is None:
            return {}
        trained.eval()
        hits, losses, distills = [], [], []
        unit = F.normalize(targets, dim=-1)
        for batch in eval_loader:
            out = trained(batch["tokens"].float())
            align, distill = objective(batch, out, "eval", reduce=False)
            losses.append(accelerator.gather_for_metrics(align))
            if distill is not None:
                distills.append(accelerator.gather_for_metrics(distill))
            best = (F.normalize(out, dim=-1) @ unit.T).amax(1)  # (B, classes): each caption's best token
            scores = best.gather(1, batch["options"])  # (B, options)
            hits.append(accelerator.gather_for_metrics((scores.argmax(1) == batch["answer"]).float()))
        trained.train()
        metrics = {"eval/loss": torch.cat(losses).mean().item(), "eval/four_way": torch.cat(hits).mean().item()}
        return {**metrics, "eval/distill": torch.cat(distills).mean().item()} if distills else metrics

    eval_columns = ("eval/loss", "eval/four_way") + (("eval/distill",) if "eval" in teacher_tokens else ())
    stats = train(accelerator, cfg, name="align", model=trained, optimizer=optimizer, scheduler=scheduler,
                  loader=train_loader, state=state, output=output, counters=counters, phases=("tokens",),
                  items=clips, micro_step=micro_step, evaluate=evaluate,
                  eval_columns=eval_columns if eval_set is not None else ())

    # --- The base model with what trained (the projector, the tower's last blocks): a LiteFrame folder,
    # from_pretrained-ready. `trained` holds the model's own modules, so the model has the trained weights.
    if accelerator.is_main_process:
        model.save_pretrained(output / "aligned")
        processor.save_pretrained(output / "aligned")
    accelerator.wait_for_everyone()
    return finish_run(accelerator, output, {**stats, "objects": len(train_set.vocabulary),
                                            "tokens_per_clip": train_set.tokens_per_clip,
                                            "train_blocks": cfg.train_blocks})


def teacher_targets(accelerator, cfg, grid: tuple[int, int, int], size: int) -> dict:
    """{"train": (N, L, d), "eval": ...}: the distillation teacher's projector tokens of each row's first
    distill_frames frames (its tower's tokens cached like the student's), averaged onto the student's LLM token grid
    `grid` (T', side, side) per clip: the teacher's tokens over each student token's cell and time."""
    import torch
    import torch.nn.functional as F

    from liteframe_hf.training.features import GroundedFeatures, build_feature_cache
    from liteframe_hf.training.models import load_align_model

    teacher, processor = load_align_model(cfg.distill_from)
    _, side, _ = teacher.config.llm_token_grid(size)
    tables = {}
    for split, manifest in (("train", cfg.train_data), ("eval", cfg.eval_data)):
        if not manifest:
            continue
        tokens = GroundedFeatures(build_feature_cache(accelerator, teacher, processor, manifest, cfg.feature_cache,
                                                      cfg.distill_frames)).tokens
        with torch.no_grad():
            out = torch.cat([teacher.model.multi_modal_projector(tokens[i:i + 256].float())
                             for i in range(0, len(tokens), 256)])  # (N, frames * side * side, d)
        n, d = out.shape[0], out.shape[-1]
        out = out.view(n, -1, side, side, d).permute(0, 4, 1, 2, 3)  # (N, d, frames, side, side)
        tables[split] = F.adaptive_avg_pool3d(out, grid).flatten(2).transpose(1, 2).contiguous()  # (N, L, d)
    del teacher
    return tables


if __name__ == "__main__":
    main()
