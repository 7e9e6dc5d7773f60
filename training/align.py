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

    from liteframe_hf.training.features import GroundedFeatures, build_feature_cache, caption_embeddings
    from liteframe_hf.training.loop import RunFinished, finish_run, prepare_training, start_run, train
    from liteframe_hf.training.losses import token_alignment_loss
    from liteframe_hf.training.models import load_align_model

    try:
        accelerator, resume_path, output = start_run(cfg)
    except RunFinished as finished:
        return finished.summary

    # --- Model (fp32: only the small projector trains) and the frozen tower's tokens, cached once.
    model, processor = load_align_model(cfg.base_model)
    for param in model.parameters():
        param.requires_grad = False
    projector = model.model.multi_modal_projector
    for param in projector.parameters():
        param.requires_grad = True
    train_set = GroundedFeatures(build_feature_cache(accelerator, model, processor, cfg.train_data, cfg.feature_cache,
                                                     cfg.cache_frames))
    eval_set = (GroundedFeatures(build_feature_cache(accelerator, model, processor, cfg.eval_data, cfg.feature_cache,
                                                     cfg.cache_frames), vocabulary=train_set.vocabulary)
                if cfg.eval_data else None)
    targets = caption_embeddings(model, processor.tokenizer, train_set.vocabulary + ["background"])
    accelerator.print(f"token alignment: {len(train_set)} clips of {len(train_set.vocabulary)} objects, "
                      f"{train_set.tokens_per_clip} tokens each; eval: {len(eval_set) if eval_set else 0} clips")

    counters = ("clips", "skipped_videos")  # nothing is decoded while training: every clip is in the cache
    projector, optimizer, scheduler, train_loader, eval_loader, state = prepare_training(
        accelerator, cfg, projector, train_set, eval_set or train_set, GroundedFeatures.collate, resume_path, counters)

    def clips(batch) -> int:
        return batch["tokens"].shape[0]

    def micro_step(batch, timer, step_items):
        with timer("projector"):
            out = projector(batch["tokens"].float())
            loss = token_alignment_loss(out, batch["labels"], batch["object_share"], targets, cfg.temperature,
                                        cfg.min_object_share, cfg.background_weight, cfg.mse_weight)
            loss = loss * clips(batch) / step_items.total
            step_items.backward(loss)
        return loss, torch.tensor([clips(batch), 0])

    @torch.no_grad()
    def evaluate() -> dict:
        """4-way identity of the held-out clips from their tokens: an option scores its caption's best cosine
        similarity over the clip's tokens; the right option must score highest."""
        if eval_set is None:
            return {}
        projector.eval()
        hits, losses = [], []
        unit = F.normalize(targets, dim=-1)
        for batch in eval_loader:
            out = projector(batch["tokens"].float())
            losses.append(accelerator.gather_for_metrics(token_alignment_loss(
                out, batch["labels"], batch["object_share"], targets, cfg.temperature, cfg.min_object_share,
                cfg.background_weight, cfg.mse_weight, reduce=False)))
            best = (F.normalize(out, dim=-1) @ unit.T).amax(1)  # (B, classes): each caption's best token
            scores = best.gather(1, batch["options"])  # (B, options)
            hits.append(accelerator.gather_for_metrics((scores.argmax(1) == batch["answer"]).float()))
        projector.train()
        return {"eval/loss": torch.cat(losses).mean().item(), "eval/four_way": torch.cat(hits).mean().item()}

    stats = train(accelerator, cfg, name="align", model=projector, optimizer=optimizer, scheduler=scheduler,
                  loader=train_loader, state=state, output=output, counters=counters, phases=("projector",),
                  items=clips, micro_step=micro_step, evaluate=evaluate,
                  eval_columns=("eval/loss", "eval/four_way") if eval_set is not None else ())

    # --- The base model with the aligned projector: a LiteFrame folder, from_pretrained-ready.
    if accelerator.is_main_process:
        model.model.multi_modal_projector.load_state_dict(accelerator.unwrap_model(projector).state_dict())
        model.save_pretrained(output / "aligned")
        processor.save_pretrained(output / "aligned")
    accelerator.wait_for_everyone()
    return finish_run(accelerator, output, {**stats, "objects": len(train_set.vocabulary),
                                            "tokens_per_clip": train_set.tokens_per_clip})


if __name__ == "__main__":
    main()
