"""`liteframe probe`: does a model's visual signal carry what an object is? A linear probe on frozen tokens.

Grounded clips are rendered on the fly the needle benchmark's way (a captioned cut-out pasted onto 4 frames of real
footage at 426x240, then resized to the model's input by the processor's resize): *train views* on the train
footage, *held-out views* on the held-out footage (the val/test pool), for objects of the closed vocabulary. For each
model and each feature (the encoder's output tokens, the projector's LLM-space tokens; mean- and max-pooled over a
clip's tokens) a multinomial logistic regression is fitted on the train views and scored on the held-out views:
N-way top-1 and the benchmark's 4-way identity (the true object against 3 other objects of the vocabulary).

  liteframe probe teacher-vlm-micro liteframe-micro --objects 40 --train-views 24 --heldout-views 6 --json probe.json

The teacher VLM's encoder tokens are DINOv2-S/14's patch tokens (its tower is an exact copy), LiteFrame-micro's are
the CTD encoder's. A probe far above chance on held-out views says the identity is in the tokens; a model whose
probe is high but whose answers are at chance does not get that signal to its answer (docs/reproduce_micro.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .data.grounded import grounded_vocabulary, render_views
from .metrics.mcq_accuracy.mcq_accuracy import wilson_interval

__all__ = ["clip_features", "linear_probe", "run_probe", "add_arguments", "main"]

@torch.no_grad()
def clip_features(model, video_processor, pixels: torch.Tensor, batch: int = 8, progress=None) -> dict[str, torch.Tensor]:
    """Pooled features of uint8 clips (V, clip_len, 3, S, S): {"encoder mean", "encoder max", "projector mean",
    "projector max"}: the vision tower's output tokens and the projector's LLM-space tokens of each clip."""
    vp = video_processor
    feats: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(pixels), batch):
        chunk = pixels[i:i + batch]
        x = vp.rescale_and_normalize(chunk.flatten(0, 1), vp.do_rescale, vp.rescale_factor, vp.do_normalize,
                                     tuple(vp.image_mean), tuple(vp.image_std)).view(*chunk.shape[:2], *chunk.shape[2:])
        out = model.get_video_features(x.to(model.dtype))
        enc = out.last_hidden_state.flatten(1, -2).float()  # (clips, tokens, D)
        proj = out.pooler_output.float()  # (clips, tokens, d_llm): one clip per "video"
        for key, tokens in (("encoder", enc), ("projector", proj)):
            feats.setdefault(f"{key} mean", []).append(tokens.mean(1))
            feats.setdefault(f"{key} max", []).append(tokens.amax(1))
        if progress is not None:
            progress(len(chunk))
    return {k: torch.cat(v) for k, v in feats.items()}


def _fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, weight_decay: float, steps: int = 200) -> torch.nn.Linear:
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return head


def _four_way(logits: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """Share of rows whose true class outscores 3 other classes drawn at random (the benchmark's 4-way identity)."""
    rng = np.random.default_rng(seed)
    n_classes = logits.shape[1]
    hits = 0
    for row, truth in zip(logits, y.tolist()):
        others = rng.choice([c for c in range(n_classes) if c != truth], size=3, replace=False)
        hits += bool(row[truth] > row[others].max())
    return hits / len(y)


WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def linear_probe(train_x, train_y, test_x, test_y, n_classes: int, seed: int = 0) -> dict:
    """Multinomial logistic regression on standardised features. The L2 strength is chosen on a fifth of the train
    views held out from the fit (never on the test views), then refitted on all train views."""
    # A floor on the scale: a dimension (nearly) constant over the train views must not turn held-out noise into
    # huge values (CTD tokens have such dimensions).
    mean, std = train_x.mean(0), train_x.std(0)
    std = std + 0.1 * std.mean() + 1e-8
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(xtr)))
    cut = len(xtr) // 5
    dev, fit = perm[:cut], perm[cut:]
    scores = {}
    for wd in WEIGHT_DECAYS:
        head = _fit_logistic(xtr[fit], train_y[fit], n_classes, wd)
        scores[wd] = float((head(xtr[dev]).argmax(1) == train_y[dev]).float().mean())
    wd = max(WEIGHT_DECAYS, key=lambda k: (scores[k], k))
    head = _fit_logistic(xtr, train_y, n_classes, wd)
    with torch.no_grad():
        logits = head(xte)
        train_acc = float((head(xtr).argmax(1) == train_y).float().mean())
    return {"top1": float((logits.argmax(1) == test_y).float().mean()), "four_way": _four_way(logits, test_y, seed),
            "train_top1": train_acc, "weight_decay": wd, "n_train": len(train_y), "n_test": len(test_y)}


def _load(model_ref: str):
    from .training.models import load_align_model

    model, processor = load_align_model(model_ref)
    return model, processor.video_processor


def run_probe(models: list[str], objects: int | None = 40, train_views: int = 24, heldout_views: int = 6, seed: int = 0,
              batch: int = 8, stamps=None, train_haystacks=None, heldout_haystacks=None, cache=None, log=print) -> dict:
    """Render the views once, then probe every model's features; returns the JSON-able report."""
    from tqdm.auto import tqdm

    from .data.needle import haystack_sources

    t0 = time.perf_counter()
    vocab = grounded_vocabulary(objects, seed, stamps, cache)
    train_src = haystack_sources("train", train_haystacks, cache)
    heldout_src = haystack_sources("val", heldout_haystacks, cache)
    with tqdm(total=2 * len(vocab), desc="render views", unit="object") as bar:
        train = render_views(vocab, train_src, train_views, seed=seed, augment=True, progress=bar.update)
        test = render_views(vocab, heldout_src, heldout_views, seed=seed + 1, augment=False, progress=bar.update)
    report = {"objects": len(vocab), "train_views": train_views, "heldout_views": heldout_views, "seed": seed,
              "train_footage": sorted({s.name for s in train_src}), "heldout_footage": sorted({s.name for s in heldout_src}),
              "render_s": round(time.perf_counter() - t0, 1), "chance": {"top1": 1 / len(vocab), "four_way": 0.25},
              "models": {}}
    log(f"views: {len(train.labels)} train ({len(train_src)} footage files), {len(test.labels)} held-out "
        f"({len(heldout_src)} files), {len(vocab)} objects, rendered in {report['render_s']} s")
    for ref in models:
        t1 = time.perf_counter()
        model, vp = _load(ref)
        with tqdm(total=len(train.labels) + len(test.labels), desc=f"features {ref}", unit="clip") as bar:
            ftr = clip_features(model, vp, train.pixels, batch, bar.update)
            fte = clip_features(model, vp, test.pixels, batch, bar.update)
        rows = {}
        for key in ftr:
            r = linear_probe(ftr[key], train.labels, fte[key], test.labels, len(vocab), seed)
            r["dim"] = int(ftr[key].shape[1])
            r["four_way_ci95"] = wilson_interval(round(r["four_way"] * r["n_test"]), r["n_test"])
            rows[key] = r
            log(f"{ref:28s} {key:15s} dim {r['dim']:5d}  held-out top-1 {100 * r['top1']:5.1f} %  4-way "
                f"{100 * r['four_way']:5.1f} %  (train top-1 {100 * r['train_top1']:.0f} %, L2 {r['weight_decay']:g})")
        report["models"][ref] = {"features": rows, "seconds": round(time.perf_counter() - t1, 1)}
        del model
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", help="micro model names (teacher-vlm-micro, liteframe-micro, ...) or "
                                                  "LiteFrame model folders")
    parser.add_argument("--objects", type=int, default=40, help="objects drawn from the closed vocabulary (default 40)")
    parser.add_argument("--all-objects", action="store_true", help="every object of the closed vocabulary")
    parser.add_argument("--train-views", type=int, default=24, help="views per object on train footage (default 24)")
    parser.add_argument("--heldout-views", type=int, default=6, help="views per object on held-out footage (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=8, help="clips per forward pass (default 8)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--stamps", default=None, help="folder of cut-outs (X.png + X.txt) instead of the Tux Paint stamps")
    parser.add_argument("--train-haystacks", default=None, help="folder of videos for train views (default: train footage)")
    parser.add_argument("--heldout-haystacks", default=None,
                        help="folder of videos for held-out views (default: the held-out footage of val/test)")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--cache-dir", default=None, help="asset cache (default: the LiteFrame asset cache)")


def main(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = run_probe(args.models, None if args.all_objects else args.objects, args.train_views, args.heldout_views,
                           args.seed, args.batch, args.stamps, args.train_haystacks, args.heldout_haystacks, args.cache_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"liteframe probe: {e}", file=sys.stderr)
        return 2
    report["threads"] = torch.get_num_threads()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0
