"""Frozen visual tokens of grounded clips, cached once: the data of token alignment (training/align.py).

A grounded manifest (`liteframe data grounded`) row is a short clip with one captioned cut-out in view and its box.
`build_feature_cache` decodes each clip's first frames as the video processor samples them, runs the frozen vision
tower and pixel shuffle (the projector's input, what the projector sees at inference) and writes one safetensors
file per manifest: ``tokens`` (N, L, D) bf16, ``object_share`` (N, L): the share of each LLM token's cell that the
box covers. With ``stem_blocks=k`` the tower runs only its first k blocks (and their token mergers) and ``tokens``
is their output (N, T, 1 + H*W, D), what a tower whose later blocks train (`StemTail`) starts from. The file's name
holds a fingerprint of everything the tokens depend on (the manifest's rows, the tower's weights and config, the
frames, the frame size, the stem), so a cache is reused only for the same data and model, and a new model or manifest
writes a new file beside it. `GroundedFeatures` reads it as a Dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["GroundedFeatures", "StemTail", "build_feature_cache", "caption_embeddings", "per_frame_tower"]


def _rows(manifest) -> list[dict]:
    path = Path(manifest)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for i, row in enumerate(rows, start=1):
        missing = [k for k in ("video", "caption", "box", "options", "answer") if k not in row]
        if missing:
            raise ValueError(f"{path}:{i}: a grounded row needs video, caption, box, options and answer; missing "
                             f"{missing} (write grounded manifests with `liteframe data grounded`)")
    return rows


def _fingerprint(rows: list[dict], tower, frames: int, size: int, stem_blocks: int | None) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([[r["video"], r["caption"], r["box"]] + ([r["onscreen"]] if "onscreen" in r else [])
                              for r in rows]).encode())
    digest.update(json.dumps(tower.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(tower.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    digest.update(f"{frames}/{size}".encode() + (f"/stem{stem_blocks}".encode() if stem_blocks is not None else b""))
    return digest.hexdigest()[:16]


def per_frame_tower(config) -> bool:
    """Whether a LiteFrame vision tower encodes every frame on its own (the teacher VLM's copy of a per-frame ViT:
    attention inside a frame, no temporal mixer or temporal merging); then any number of frames can be encoded."""
    merges_time = any(int(f[0]) != 1 for f in (config.downsample_layers or {}).values())
    return config.attention_scope == "frame" and config.temporal_mixer == "none" and not merges_time


def _frames_showing_the_object(out, rows: list[dict], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels (B, frames, ...), shown (B, frames) bool) of a batch the video processor sampled: the first `frames`
    frames, and which of them show the cut-out (all of them, unless a row's `onscreen` [start, end) says otherwise, by
    each frame's actual timestamp). One frame of a per-frame tower (frames 1 of a longer clip) is the first that shows
    the cut-out."""
    from ..data.grounded import shows_cut_out

    pixels = out["pixel_values_videos"]
    shown = torch.ones(pixels.shape[:2], dtype=torch.bool)
    for i, (row, meta) in enumerate(zip(rows, out["video_metadata"])):
        if row.get("onscreen") is not None:
            shown[i] = torch.tensor(shows_cut_out(row, meta.timestamps[:pixels.shape[1]]))
            if not shown[i].any():
                raise ValueError(f"{row['video']}: none of the {pixels.shape[1]} sampled frames is inside its "
                                 f"onscreen {row['onscreen']}")
            if 1 < frames < pixels.shape[1]:  # the first frames could all miss it: a clip of background
                raise ValueError(f"{row['video']}: a row shown for part of its clip caches 1 frame (the first that "
                                 f"shows it) or whole clips, not {frames}")
    if frames == 1:
        first = shown.int().argmax(1)  # the first frame that shows it (frame 0 for a row in view the whole time)
        index = torch.arange(len(rows))
        return pixels[index, first][:, None], shown[index, first][:, None]
    return pixels[:, :frames], shown[:, :frames]


@contextlib.contextmanager
def _clip_len(config, frames: int):
    """Let a per-frame tower take clips of `frames` frames (its clip_len only groups frames for the prompt)."""
    saved = config.clip_len
    config.clip_len = frames
    try:
        yield
    finally:
        config.clip_len = saved


@torch.no_grad()
def build_feature_cache(accelerator, model, processor, manifest, folder, frames: int | None = None,
                        batch_size: int = 16, stem_blocks: int | None = None) -> Path:
    """The cache file of `manifest`'s rows for `model`'s frozen tower (built by the main process when missing; the
    others wait and read it). frames: the first frames of each clip (default: one clip, the tower's clip_len; fewer
    only for a per-frame tower). stem_blocks: cache the output of the tower's first `stem_blocks` blocks instead of
    the projector's input."""
    from tqdm.auto import tqdm

    from ..data.grounded import object_share
    from ..modeling.modeling_liteframe import pixel_shuffle

    tower = model.model.vision_tower
    clip_len = int(tower.config.clip_len)
    frames = frames or clip_len
    if frames % clip_len and not per_frame_tower(tower.config):
        raise ValueError(f"cache_frames={frames}: this tower encodes clips of {clip_len} frames together; use a "
                         f"multiple of {clip_len}")
    if stem_blocks is not None and not 0 < stem_blocks < len(tower.layers):
        raise ValueError(f"stem_blocks={stem_blocks}: the tower has {len(tower.layers)} blocks; the stem must leave at "
                         f"least one to train")
    rows = _rows(manifest)
    size = int(processor.video_processor.size["height"])
    name = f"{Path(manifest).parent.name}-{_fingerprint(rows, tower, frames, size, stem_blocks)}.safetensors"
    path = Path(folder) / name
    if accelerator.is_main_process and not path.is_file():
        root = Path(manifest).parent
        tokens, boxes, present = [], [], []
        for start in tqdm(range(0, len(rows), batch_size), desc=f"features {Path(manifest).parent.name}",
                          unit="batch", disable=not accelerator.is_local_main_process):
            chunk = rows[start:start + batch_size]
            videos = [str(root / r["video"]) if not Path(r["video"]).is_absolute() else r["video"] for r in chunk]
            out = processor.video_processor(videos, num_frames=max(frames, clip_len), return_tensors="pt",
                                            return_metadata=True)
            pixels, shown = _frames_showing_the_object(out, chunk, frames)
            with _clip_len(tower.config, frames) if frames % clip_len else contextlib.nullcontext():
                if stem_blocks is not None:
                    x, _ = tower.run_blocks(*tower.embed(pixels.to(tower.dtype)), stop=stem_blocks)
                    tokens.append(x.to(torch.bfloat16))  # (B, T, 1 + H*W, D)
                else:
                    grid = tower(pixels.to(tower.dtype)).last_hidden_state  # (B, T', H', W', D)
                    b, t, h, w, d = grid.shape
                    shuffled = pixel_shuffle(grid.reshape(b * t, h, w, d), model.config.pixel_shuffle_factor)
                    tokens.append(shuffled.reshape(b, -1, shuffled.shape[-1]).to(torch.bfloat16))
            boxes += [r["box"] for r in chunk]
            present.append(shown)
        tokens, present = torch.cat(tokens), torch.cat(present)  # present: (N, frames)
        # each frame's (or clip's) LLM tokens: a side x side grid, token_frames of them per clip; a token frame whose
        # frames all miss the cut-out (a row with `onscreen`) has none of it
        token_frames, side, _ = model.config.llm_token_grid(size)
        token_frames = token_frames * frames // clip_len
        share = object_share(torch.tensor(boxes), side, present, token_frames)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        meta = {"rows": json.dumps([{k: r[k] for k in ("caption", "options", "answer")} for r in rows]),
                "manifest": str(Path(manifest).resolve()), "frames": str(frames)}
        save_file({"tokens": tokens.contiguous(), "object_share": share.to(torch.float16).contiguous()}, str(tmp),
                  metadata=meta)
        tmp.replace(path)
    accelerator.wait_for_everyone()
    return path


class GroundedFeatures(torch.utils.data.Dataset):
    """A feature cache as a Dataset: item i = {"tokens" (L, D), "object_share" (L,), "labels" (caption index),
    "options" (4 caption indices), "answer" (the right option's index)}. `vocabulary`: the caption list indices
    refer to (default: this cache's sorted captions; held-out data takes the training set's)."""

    def __init__(self, path, vocabulary: list[str] | None = None):
        with safe_open(str(path), framework="pt") as f:
            self.tokens, self.object_share = f.get_tensor("tokens"), f.get_tensor("object_share").float()
            rows = json.loads(f.metadata()["rows"])
        self.vocabulary = list(vocabulary) if vocabulary is not None else sorted({r["caption"] for r in rows})
        index = {c: i for i, c in enumerate(self.vocabulary)}
        unknown = sorted({c for r in rows for c in [r["caption"], *r["options"]]} - set(index))
        if unknown:
            raise ValueError(f"{path}: {len(unknown)} caption(s) outside the training vocabulary, e.g. {unknown[0]!r}: "
                             f"held-out rows must ask about the objects trained on")
        self.labels = torch.tensor([index[r["caption"]] for r in rows])
        self.options = torch.tensor([[index[o] for o in r["options"]] for r in rows])
        self.answer = torch.tensor(["ABCD".index(r["answer"]) for r in rows])
        self.tokens_per_clip = int(self.object_share.shape[1])  # LLM tokens (a stem cache holds the blocks' tokens)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int) -> dict:
        i = key % len(self.labels)  # the training sampler's keys run on across epochs (epoch * n + i)
        return {"key": key, "tokens": self.tokens[i], "object_share": self.object_share[i], "labels": self.labels[i],
                "options": self.options[i], "answer": self.answer[i]}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return {k: torch.tensor([item[k] for item in items]) if k == "key" else torch.stack([item[k] for item in items])
                for k in items[0]}


class StemTail(torch.nn.Module):
    """What follows a cached stem (`build_feature_cache(stem_blocks=k)`) in a LiteFrame VLM: the tower's blocks from
    k on with their token mergers, its read-out (final LayerNorm, head) and the projector. Stem tokens (N, T, L, D)
    -> LLM tokens (N, tokens_per_clip, d_llm), as `get_video_features` computes them from pixels. Only the tail's
    weights are trainable; the module shares them with `model`, so training it trains the model's own."""

    def __init__(self, model, stem_blocks: int, image_size: int):
        super().__init__()
        self.tower, self.projector = model.model.vision_tower, model.model.multi_modal_projector
        self.stem_blocks, self.shuffle_factor = stem_blocks, model.config.pixel_shuffle_factor
        self.grid = (image_size // self.tower.config.patch_size,) * 2  # the stem's output grid: its mergers applied
        for merger in (m for i, m in self.tower.token_mergers.items() if int(i) <= stem_blocks):
            self.grid = (self.grid[0] // merger.factors[1], self.grid[1] // merger.factors[2])
        for p in self.parameters():
            p.requires_grad = False
        tail = [*self.tower.layers[stem_blocks:], self.projector, self.tower.head]
        tail += [m for i, m in self.tower.token_mergers.items() if int(i) > stem_blocks]
        tail += [self.tower.post_layernorm] if self.tower.post_layernorm is not None else []
        for module in tail:
            for p in module.parameters():
                p.requires_grad = True

    def forward(self, stem_tokens: torch.Tensor) -> torch.Tensor:
        from ..modeling.modeling_liteframe import project_grid

        x, grid = self.tower.run_blocks(stem_tokens.to(self.tower.dtype), self.grid, start=self.stem_blocks)
        return project_grid(self.projector, self.tower.read_out(x, grid).last_hidden_state, self.shuffle_factor)


@torch.no_grad()
def caption_embeddings(model, tokenizer, captions: list[str]) -> torch.Tensor:
    """(len(captions), d_llm) fp32: the mean of the LLM's input embeddings of each caption's tokens (as it follows
    a space), what token alignment pulls an object's tokens towards."""
    table = model.get_input_embeddings().weight.float()
    return torch.stack([table[tokenizer(" " + c, add_special_tokens=False)["input_ids"]].mean(0) for c in captions])
