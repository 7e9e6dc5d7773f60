"""`liteframe data grounded`: short clips with one captioned cut-out in view, many views per object.

The needle benchmark shows each object for 1-3 s inside a 30-120 s video, once; a model that is to recognise the
objects needs many *grounded* views of each: the cut-out pasted the benchmark's way (longer side 35-60 % of the frame
height, anywhere in the frame, on real footage at 426x240) on many backgrounds, sizes and places. Train views use the
train footage and, as augmentation, a random horizontal flip and colour gain; val views use the held-out footage
without augmentation, so a score on them is a score on unseen views on unseen footage. Objects come from the needle
benchmark's closed vocabulary (`needle.split_stamps`): the objects its train, val and test splits ask about.

Each view is written as a short MP4 (`--seconds` at `--fps`, the cut-out static as in the benchmark) with one row in
`manifest.jsonl`, in the needle manifest's format (an identity question with 4 options and the answer letter), plus
the `caption`: the rows train the CTD encoder on stamp-bearing clips, the alignment stage on captions and LMA on
letters, and `liteframe eval` scores them. With `--partial P` a share P of the views shows the cut-out for only part
of the clip (the row's `onscreen` [start, end) in seconds), as a long video's needle fills only some frames of the
4-frame clip it falls in: a model that merges a clip's frames must learn to keep an object from some of them.

  liteframe data grounded --split train --out grounded --views 20
  liteframe data grounded --split val --out grounded --views 4
  liteframe data grounded --split train --out grounded_partial --views 80 --partial 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

__all__ = ["GroundedViews", "ViewRenderer", "grounded_vocabulary", "object_share", "render_views", "build_grounded",
           "shows_cut_out", "add_arguments", "main"]

RENDER_SIZE = (426, 240)  # the needle benchmark's frame size (width, height)
CLIP_SPACING = 0.25  # seconds between the frames of an in-memory view: inside a needle's 1-3 s on-screen window
STARTS_PER_SOURCE = 24  # background clips decoded per footage file; views draw from them
FOOTAGE = {"train": "train", "val": "val"}  # the needle split whose footage pool a grounded split uses


@dataclass
class GroundedViews:
    """uint8 clips (V, T, 3, H, W) of `labels` (V,) objects, indices into `captions`; `sources` per view;
    `boxes` (V, 4): the cut-out's x, y, w, h at RENDER_SIZE."""

    pixels: torch.Tensor
    labels: torch.Tensor
    captions: list[str]
    sources: list[str]
    boxes: torch.Tensor

    def object_share(self, grid: int) -> torch.Tensor:
        """`object_share` of these views' boxes."""
        return object_share(self.boxes, grid)


def shows_cut_out(row: dict, times) -> list[bool]:
    """Which frames at `times` (s, the decoder's actual timestamps) show a grounded row's cut-out: all of them, unless
    the row's `onscreen` [start, end) says otherwise. Both ends are moved down by a millisecond, so a frame whose
    time is a boundary rounded in the manifest still counts on the side it was rendered on."""
    if row.get("onscreen") is None:
        return [True] * len(times)
    start, end = (float(t) - 1e-3 for t in row["onscreen"])
    return [start <= float(t) < end for t in times]


def object_share(boxes: torch.Tensor, grid: int, shown: torch.Tensor | None = None,
                 token_frames: int = 1) -> torch.Tensor:
    """(V, grid * grid): the share of each token's cell (a grid x grid tiling of the frame, row-major) that each box
    (x, y, w, h at RENDER_SIZE) covers: which of a clip's tokens see the object. With `shown` (V, frames), which
    frames show it: (V, token_frames * grid * grid), frame-major, the share in every token frame that one of its
    frames shows it in, 0 in the others."""
    if shown is not None:
        present = shown.reshape(len(boxes), token_frames, -1).any(-1).to(torch.float32)  # (V, token_frames)
        return (object_share(boxes, grid)[:, None, :] * present[:, :, None]).flatten(1)
    width, height = RENDER_SIZE
    edges_x, edges_y = torch.linspace(0, width, grid + 1), torch.linspace(0, height, grid + 1)
    x, y, w, h = boxes.float().unbind(1)
    ox = ((x + w)[:, None].minimum(edges_x[None, 1:]) - x[:, None].maximum(edges_x[None, :-1])).clamp(min=0)
    oy = ((y + h)[:, None].minimum(edges_y[None, 1:]) - y[:, None].maximum(edges_y[None, :-1])).clamp(min=0)
    cell = (width / grid) * (height / grid)
    return (oy[:, :, None] * ox[:, None, :]).flatten(1) / cell


def grounded_vocabulary(objects: int | None = None, seed: int = 0, stamps=None, cache=None) -> list:
    """Stamps of the needle benchmark's closed vocabulary (what its train, val and test splits ask about), one
    file per caption (the first by path), sorted by caption; `objects`: a random subset of that many (drawn with
    `seed`), None: all."""
    from .needle import load_stamps, split_stamps

    if stamps is None:
        from ..assets import ensure_assets

        stamps = ensure_assets(["stamps"], cache)["stamps"]
    first: dict[str, object] = {}
    for s in split_stamps(load_stamps(stamps))["closed"]:
        if s.caption not in first or s.rel < first[s.caption].rel:
            first[s.caption] = s
    pool = [first[c] for c in sorted(first)]
    if objects is not None:
        if not 4 <= objects <= len(pool):
            raise ValueError(f"objects must be 4..{len(pool)} (the closed vocabulary's objects), got {objects}")
        picked = np.random.default_rng(seed).choice(len(pool), size=objects, replace=False)
        pool = [pool[i] for i in sorted(picked)]
    return pool


class ViewRenderer:
    """Background clips of `frames` frames `spacing` s apart, decoded once from every footage file in `sources`
    (cover-resized and centre-cropped to RENDER_SIZE); `view` pastes a cut-out on a random one."""

    def __init__(self, sources, rng: np.random.Generator, frames: int = 4, spacing: float = CLIP_SPACING,
                 starts_per_source: int = STARTS_PER_SOURCE):
        from ..modeling.video_decoding_liteframe import decode_frames, resize_frames

        self.rng, self.frames, self.spacing = rng, frames, spacing
        width, height = RENDER_SIZE
        span = (frames - 1) * spacing
        self.backgrounds: list[tuple[str, torch.Tensor]] = []
        for src in sources:
            t0 = np.sort(rng.uniform(0.0, max(0.0, src.duration - span - 0.05), size=starts_per_source))
            times = (t0[:, None] + np.arange(frames) * spacing).reshape(-1)
            clip = torch.from_numpy(np.ascontiguousarray(decode_frames(src.path, times, threads=False).frames))
            clip = clip.permute(0, 3, 1, 2)  # (n, 3, h, w)
            h, w = clip.shape[-2:]
            scale = max(width / w, height / h)
            ch, cw = max(height, round(h * scale)), max(width, round(w * scale))
            clip = resize_frames(clip, (ch, cw))
            y0, x0 = (ch - height) // 2, (cw - width) // 2
            clip = clip[..., y0:y0 + height, x0:x0 + width]
            self.backgrounds += [(src.name, c) for c in clip.reshape(starts_per_source, frames, *clip.shape[1:])]

    def view(self, stamp, augment: bool, onscreen: tuple[int, int] | None = None
             ) -> tuple[torch.Tensor, str, tuple[int, int, int, int]]:
        """(uint8 frames (T, 3, 240, 426), footage name, box x, y, w, h) of one grounded view of `stamp`, pasted on
        every frame or only on frames onscreen = [first, end)."""
        from PIL import Image

        from .needle import _stamp_pixels

        rng = self.rng
        width, height = RENDER_SIZE
        with Image.open(stamp.path) as im:
            sw, sh = im.size
        name, clip = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        scale = float(rng.uniform(0.35, 0.60)) * height / max(sw, sh)
        w, h = max(2, round(sw * scale)), max(2, round(sh * scale))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        rgb, alpha = _stamp_pixels(stamp.path, w, h)
        if augment:
            if rng.random() < 0.5:
                rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
            rgb = np.clip(rgb * rng.uniform(0.75, 1.25, size=3).astype(np.float32), 0, 255)
        premul = torch.from_numpy(np.ascontiguousarray(rgb * alpha)).permute(2, 0, 1)
        keep = torch.from_numpy(np.ascontiguousarray(1.0 - alpha)).permute(2, 0, 1)
        frames = clip.float()
        shown = frames[slice(*onscreen) if onscreen else slice(None)]  # a view: pasting writes into frames
        shown[..., y:y + h, x:x + w] = shown[..., y:y + h, x:x + w] * keep + premul
        return (frames + 0.5).clamp(0, 255).to(torch.uint8), name, (x, y, w, h)


def render_views(stamps, sources, views_per_object: int, seed: int = 0, augment: bool = False, clip_len: int = 4,
                 image_size: int = 224, starts_per_source: int = STARTS_PER_SOURCE, progress=None) -> GroundedViews:
    """`views_per_object` grounded clips of each stamp on `sources` (needle `Source`s), in memory, resized to the
    model's `image_size` by the processor's resize (as the benchmark's frames are)."""
    from ..modeling.video_decoding_liteframe import resize_frames

    renderer = ViewRenderer(sources, np.random.default_rng(seed), clip_len, CLIP_SPACING, starts_per_source)
    pixels, labels, names, boxes = [], [], [], []
    for label, stamp in enumerate(stamps):
        for _ in range(views_per_object):
            frames, name, box = renderer.view(stamp, augment)
            pixels.append(resize_frames(frames, (image_size, image_size)))
            labels.append(label)
            names.append(name)
            boxes.append(box)
        if progress is not None:
            progress(1)
    return GroundedViews(torch.stack(pixels), torch.tensor(labels), [s.caption for s in stamps], names,
                         torch.tensor(boxes))


def _write_mp4(path: Path, frames: torch.Tensor, fps: int, crf: int) -> None:
    import av

    tmp = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = RENDER_SIZE[0], RENDER_SIZE[1], "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": str(crf), "threads": "1"}
        for i, frame in enumerate(frames.permute(0, 2, 3, 1).numpy()):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    tmp.replace(path)


def build_grounded(out, split: str = "train", views: int = 20, seconds: float = 2.0, fps: int = 8, seed: int = 0,
                   objects: int | None = None, stamps=None, haystacks=None, cache=None, crf: int = 23,
                   progress: bool = True, partial: float = 0.0) -> Path:
    """Render `views` grounded clips per object of the closed vocabulary into OUT/SPLIT/videos and write
    OUT/SPLIT/manifest.jsonl; returns the manifest. Reruns keep the clips already written (same seed, same clips).
    partial: the share of views whose cut-out is on screen for only part of the clip, as a needle is for part of the
    4-frame clip a long video's frames are grouped into: a contiguous quarter to all but one frame of it, anywhere in
    it (a quarter: the 4 frames a model samples from a clip of up to 4 s are a quarter of it apart, so one of them
    always shows it); their rows say when (`onscreen`: [start, end) in seconds)."""
    from tqdm.auto import tqdm

    from .needle import LETTERS, QUESTIONS, haystack_sources

    if split not in FOOTAGE:
        raise ValueError(f"unknown grounded split {split!r}; choose from {', '.join(FOOTAGE)}")
    if views < 1 or fps < 1 or seconds * fps < 4:
        raise ValueError(f"need views >= 1 and at least 4 frames per clip (seconds x fps), got {views}, {seconds} x {fps}")
    if not 0.0 <= partial <= 1.0:
        raise ValueError(f"partial is a share of the views, in [0, 1]; got {partial}")
    vocab = grounded_vocabulary(objects, seed, stamps, cache)
    captions = [s.caption for s in vocab]
    folder = Path(out) / split
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    # One generator per split (train and val views never share a draw) and per object (a rerun with more views
    # keeps every view already written).
    sources = haystack_sources(FOOTAGE[split], haystacks, cache)
    n_frames = int(round(seconds * fps))
    renderer = ViewRenderer(sources, np.random.default_rng([seed, 7, list(FOOTAGE).index(split)]), n_frames, 1 / fps)
    rows, t0 = [], time.perf_counter()
    for label, stamp in enumerate(tqdm(vocab, desc=f"grounded {split}", unit="object", disable=not progress)):
        renderer.rng = np.random.default_rng([seed, 7, list(FOOTAGE).index(split), label])
        others = [c for c in range(len(vocab)) if c != label]
        for v in range(views):
            onscreen = None
            if partial and renderer.rng.random() < partial:  # no draw without --partial: those builds stay as they were
                length = int(renderer.rng.integers(-(-n_frames // 4), n_frames))
                first = int(renderer.rng.integers(0, n_frames - length + 1))
                onscreen = (first, first + length)
            frames, name, box = renderer.view(stamp, augment=split == "train", onscreen=onscreen)
            distractors = [captions[i] for i in renderer.rng.choice(others, size=3, replace=False)]
            position = (label + v) % 4  # every answer letter equally often
            options = distractors[:position] + [stamp.caption] + distractors[position:]
            # a build with --partial draws other views: its own names, so a rerun never keeps another build's clips
            vid = f"{split}-{label:04d}-{v:03d}" + (f"-p{partial:g}" if partial else "")
            path = folder / "videos" / f"{vid}.mp4"
            if not path.is_file():
                _write_mp4(path, frames, fps, crf)
            rows.append({"id": vid, "video": f"videos/{vid}.mp4", "category": "identity",
                         "question": QUESTIONS["identity"], "options": options, "answer": LETTERS[position],
                         "caption": stamp.caption, "stamp": stamp.rel, "footage": name, "box": list(box),
                         "duration": round(n_frames / fps, 3),
                         **({"onscreen": [round(i / fps, 6) for i in onscreen]} if onscreen else {})})
    manifest = folder / "manifest.jsonl"
    tmp = manifest.with_suffix(".partial")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(manifest)
    (folder / "vocabulary.json").write_text(json.dumps(captions, indent=0), encoding="utf-8")
    if progress:
        print(f"{split}: {len(rows)} clips of {len(vocab)} objects ({views} views each, {n_frames} frames at {fps} fps) "
              f"on {len(sources)} footage files in {time.perf_counter() - t0:.0f} s -> {manifest}")
    return manifest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="train", choices=list(FOOTAGE),
                        help="train: train footage, augmented views; val: held-out footage, plain views")
    parser.add_argument("--out", required=True, help="output folder; the split goes to OUT/SPLIT/")
    parser.add_argument("--views", type=int, default=20, help="clips per object (default 20)")
    parser.add_argument("--objects", type=int, default=None, help="a random subset of the closed vocabulary (default: all 40)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    parser.add_argument("--fps", type=int, default=8, help="frames per second (default 8)")
    parser.add_argument("--partial", type=float, default=0.0,
                        help="share of views whose cut-out is on screen for only part of the clip (a contiguous "
                             "quarter to all but one frame of it; the row's `onscreen` says when), as a needle is for "
                             "part of a 4-frame clip of a long video (default 0: in view the whole time)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stamps", default=None, help="folder of cut-outs (X.png + X.txt) instead of the Tux Paint stamps")
    parser.add_argument("--haystacks", default=None, help="folder of background videos instead of the split's footage")
    parser.add_argument("--cache-dir", default=None, help="asset cache (default: the LiteFrame asset cache)")


def main(args: argparse.Namespace) -> int:
    try:
        build_grounded(args.out, args.split, args.views, args.seconds, args.fps, args.seed, args.objects, args.stamps,
                       args.haystacks, args.cache_dir, partial=args.partial)
    except (ValueError, FileNotFoundError) as e:
        print(f"liteframe data grounded: {e}", file=sys.stderr)
        return 2
    return 0
