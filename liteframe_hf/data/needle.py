"""`liteframe data needle`: a long-video QA ("needle in a haystack") benchmark built from real footage.

Each haystack video (30-120 s of 3-15 s segments cut from real clips) gets 1-3 captioned cut-outs pasted in for
1-3 s each and yields multiple-choice questions (identity, order, count, localization, scene_order). Builds are
reproducible and reruns skip finished videos. Splits, question wording, the manifest and recipe files and how a
video is made: docs/needle_benchmark.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["SPLITS", "SCENES", "SplitSpec", "SPLIT_SPECS", "Stamp", "load_stamps", "split_stamps", "haystack_sources",
           "build_split", "build", "add_arguments", "main"]

SPLITS = ("train", "val", "test", "test-unseen")
BUILDER_VERSION = 2
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".mpg", ".mpeg", ".webm", ".m4v")
QUESTIONS = {
    "identity": "Which of these objects appears in the video?",
    "order": "Which of these objects appears first?",
    "count": "How many different objects are shown in the video?",
    "localization": "When does {} appear?",
    "scene_order": "Which of these scenes comes first?",
}
QUARTERS = ("In the first quarter of the video.", "In the second quarter of the video.",
            "In the third quarter of the video.", "In the last quarter of the video.")
LETTERS = "ABCD"

# Haystack clips of the asset cache (assets videos, opencv, footage): file -> (pool, group, scene description).
# Train and the evaluation splits never share a clip. Clips of one group (the 14 Planet Blupi cut-scenes look
# alike) never meet in one scene-order video. Descriptions were written from looking at each clip's frames.
SCENES: dict[str, tuple[str, str, str]] = {
    "bigbuckbunny.mp4": ("train", "bigbuckbunny", "A big cartoon rabbit steps out of a burrow in a meadow."),
    "bikes.mp4": ("train", "bikes", "A handheld camera moves along a city street with bicycles and traffic."),
    "carphone_pristine.mp4": ("train", "carphone", "A man in a suit and bow tie talks in a car."),
    "cockatoo.mp4": ("train", "cockatoo", "A white cockatoo peers closely into the camera."),
    "realshort.mp4": ("train", "windowsill", "Potted plants stand on a sunny windowsill."),
    "cityCC0.mpg": ("train", "city", "Glass skyscrapers glow at night."),
    "oa4_launch.webm": ("train", "rocket", "A rocket lifts off from its launch pad."),
    "wannaworktogether.mp4": ("train", "openboard", "An animated explainer about Creative Commons licences."),
    "planetblupi_history2.mkv": ("train", "planetblupi", "A blue cartoon robot on tank tracks rolls toward the camera."),
    "planetblupi_play101.mkv": ("train", "planetblupi", "A cartoon spider with big eyes creeps out of a forest."),
    "planetblupi_play103.mkv": ("train", "planetblupi", "A yellow cartoon creature crosses a wooden bridge over a river."),
    "planetblupi_play105.mkv": ("train", "planetblupi", "A yellow cartoon creature walks away from a stone tower."),
    "planetblupi_play107.mkv": ("train", "planetblupi", "A yellow cartoon creature works in a small laboratory."),
    "planetblupi_play108.mkv": ("train", "planetblupi", "A frowning yellow cartoon creature stands in the snow."),
    "planetblupi_play110.mkv": ("train", "planetblupi", "A yellow bulldozer drives through a misty forest."),
    "planetblupi_play113.mkv": ("train", "planetblupi", "A yellow cartoon creature drives a small red car in the dark."),
    "planetblupi_play116.mkv": ("train", "planetblupi", "A sparkling blue machine stands on a grey floor."),
    "planetblupi_play118.mkv": ("train", "planetblupi", "A yellow cartoon creature sits inside a grey robot suit."),
    "planetblupi_play119.mkv": ("train", "planetblupi", "A yellow cartoon creature stands in a snowy village."),
    "planetblupi_play124.mkv": ("train", "planetblupi", "A blue spotted robot octopus moves over a dark floor."),
    "planetblupi_win005.mkv": ("train", "planetblupi", "A crowd of spotted yellow cartoon creatures cheers."),
    "planetblupi_win129.mkv": ("train", "planetblupi", "A small planet and rockets drift through space."),
    "vtest.avi": ("heldout", "vtest", "People walk across a plaza past a lawn."),
    "Megamind.avi": ("heldout", "megamind", "Animated characters talk in a dimly lit restaurant."),
    "box.mp4": ("heldout", "box", "A hand slides a decorated box across a table."),
    "cup.mp4": ("heldout", "cup", "A hand turns a black cup in front of a white wall."),
    "tree.avi": ("heldout", "tree", "A leafy green tree seen from below against a pale sky."),
    "world.mp4": ("heldout", "world", "The night side of the Earth turns slowly in space."),
    "motion.mov": ("heldout", "motion", "A pen moves past a coin lying on a table."),
    "hug_movie.mp4": ("heldout", "lego", "A yellow and red LEGO Technic vehicle sits on a table."),
}
SPLIT_POOLS = {"train": ("train", "closed"), "val": ("heldout", "closed"), "test": ("heldout", "closed"),
               "test-unseen": ("heldout", "unseen")}
UNSEEN_PERCENT = 20
# The closed vocabulary train, val and test ask about: CLOSED_OBJECTS objects of the seen pool drawn with
# CLOSED_SEED, near-duplicate families left out: stamps that differ from each other only by a printed character
# (letters of several alphabets in both cases, filled and outlined; sign-language hand shapes; the coins of one
# series, which needle scaling makes the same size). test-unseen keeps the open vocabulary (every unseen object).
# Why this size and rule: docs/needle_benchmark.md, "Seen / unseen".
NEAR_DUPLICATE_FOLDERS = ("symbols/alphabets/", "symbols/money/")
CLOSED_OBJECTS, CLOSED_SEED = 40, 0


@dataclass(frozen=True)
class SplitSpec:
    """Size and video lengths of one split. A `long_fraction` of the videos are 60-120 s with any number of
    segments (sources may repeat); the rest have 2-4 segments from different sources (scene-order questions)."""

    videos: int
    scene_seconds: tuple[float, float] = (30.0, 45.0)
    long_fraction: float = 0.1
    long_seconds: tuple[float, float] = (60.0, 90.0)


# Sized so that the four splits build in about 10 minutes on 2 CPU cores (see docs/needle_benchmark.md):
# train >= 3000 questions; each test split has >= 80 order questions (videos with 2-3 needles) and >= 80
# scene-order questions.
SPLIT_SPECS = {
    "train": SplitSpec(460, (30.0, 36.0), 0.05, (60.0, 72.0)),
    "val": SplitSpec(36, (30.0, 50.0), 0.12, (60.0, 120.0)),
    "test": SplitSpec(120, (30.0, 50.0), 0.12, (60.0, 120.0)),
    "test-unseen": SplitSpec(120, (30.0, 50.0), 0.12, (60.0, 120.0)),
}


# ----------------------------------------------------------------------------------------------- stamps
@dataclass(frozen=True)
class Stamp:
    rel: str  # path relative to the stamp folder (the split key)
    caption: str  # first line of the .txt; identical captions are the same object
    path: Path


_SENTENCE_BREAK = re.compile(r"[.!?]\s+\S")
_DETERMINERS = {"A", "An", "The", "Some", "Our", "Two", "Three"}
_VERBS = {"is", "are", "was", "were", "lets", "carries", "carry", "means", "gets", "has", "have", "can", "will"}


def _usable_caption(caption: str) -> bool:
    """A noun phrase as one sentence ("A red kangaroo."): it must read well both as an option and inside
    "When does a red kangaroo appear?". The first lines also hold slogans ("School ahead! Drive slowly!"),
    several sentences, statements ("A boxcar is used to carry livestock."), names ("Tux Airways.") and bare
    words ("Plus."), which are left out."""
    words = caption[:-1].split()
    return (4 <= len(caption) <= 80 and caption.endswith(".") and not caption.endswith("..")
            and not _SENTENCE_BREAK.search(caption) and len(words) >= 2 and words[0] in _DETERMINERS
            and not _VERBS & set(words))


def load_stamps(folder: str | os.PathLike) -> list[Stamp]:
    """Captioned cut-outs under `folder`: every X.png with alpha and a X.txt beside it whose first line is a
    usable caption (see `_usable_caption`); tiny icons (longer side < 48 px) are left out. Sorted by path."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"stamp folder {folder} does not exist")
    stamps = []
    for png in sorted(folder.rglob("*.png")):
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            continue
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = " ".join(lines[0].split()) if lines else ""
        if not _usable_caption(caption):
            continue
        with Image.open(png) as im:
            alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if not alpha or max(im.size) < 48:
                continue
        stamps.append(Stamp(png.relative_to(folder).as_posix(), caption, png))
    if not stamps:
        raise ValueError(f"no usable captioned PNG stamps (X.png with alpha + X.txt) under {folder}")
    return stamps


def split_stamps(stamps: list[Stamp]) -> dict[str, list[Stamp]]:
    """{"seen": [...], "unseen": [...], "closed": [...]}: by a hash of the relative path, 20 % unseen. All files
    with the same caption follow the file with the smallest path, so an unseen object never appears in training.
    "closed": the closed vocabulary, every file of CLOSED_OBJECTS seen objects whose first file is not in a
    near-duplicate family (NEAR_DUPLICATE_FOLDERS), drawn with CLOSED_SEED from their sorted captions (all of them
    when there are fewer)."""
    first: dict[str, str] = {}
    for s in stamps:
        first[s.caption] = min(s.rel, first.get(s.caption, s.rel))
    pools = {"seen": [], "unseen": []}
    for s in stamps:
        percent = int.from_bytes(hashlib.sha256(first[s.caption].encode()).digest()[:8], "big") % 100
        pools["unseen" if percent < UNSEEN_PERCENT else "seen"].append(s)
    candidates = sorted({s.caption for s in pools["seen"] if not first[s.caption].startswith(NEAR_DUPLICATE_FOLDERS)})
    if len(candidates) > CLOSED_OBJECTS:
        picked = np.random.default_rng(CLOSED_SEED).choice(len(candidates), size=CLOSED_OBJECTS, replace=False)
        candidates = [candidates[i] for i in sorted(picked)]
    closed = set(candidates)
    pools["closed"] = [s for s in pools["seen"] if s.caption in closed]
    return pools


def _stamp_pixels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float32 (h, w, 3), alpha float32 (h, w, 1) in [0, 1]) of a stamp resized to width x height."""
    from PIL import Image

    with Image.open(path) as im:
        rgba = im.convert("RGBA").resize((width, height), Image.Resampling.LANCZOS)  # resamples premultiplied
    a = np.asarray(rgba, dtype=np.float32)
    return a[..., :3], a[..., 3:] / 255.0


# ----------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    group: str
    description: str | None  # None: no scene-order questions with this clip
    fps: Fraction
    duration: float  # seconds covered by its frames
    aspect: float  # display aspect ratio


def _probe(path: Path) -> tuple[Fraction, float, float]:
    """(frame rate, duration, display aspect) from the container, demuxing packets without decoding."""
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path} has no video stream")
        s = c.streams.video[0]
        rate = s.guessed_rate or s.average_rate
        if not rate:
            raise ValueError(f"{path}: unknown frame rate")
        fps = Fraction(rate).limit_denominator(1001)
        pts = [p.pts * p.time_base for p in c.demux(s) if p.pts is not None and p.size]
        if not pts:
            raise ValueError(f"{path}: no video packets")
        duration = float(max(pts) - min(pts)) + float(1 / fps)
        sar = s.sample_aspect_ratio or Fraction(1)
        aspect = s.codec_context.width * float(sar) / s.codec_context.height
    return fps, duration, aspect


def haystack_sources(split: str, haystacks: str | os.PathLike | None = None,
                     cache: str | os.PathLike | None = None) -> list[Source]:
    """The clips a split cuts its haystacks from. Default: the SCENES clips of the split's pool, from the asset
    cache (fetched when missing). With `haystacks`, every video file in that folder (all splits alike); scene
    descriptions then come from an optional scenes.json ({file name: description}) in the folder."""
    if haystacks is not None:
        folder = Path(haystacks)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS) if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in haystack folder {folder}")
        scenes_file = folder / "scenes.json"
        described = json.loads(scenes_file.read_text()) if scenes_file.is_file() else {}
        picked = [(p, p.stem, described.get(p.name)) for p in files]
    else:
        from ..assets import ensure_assets, video_paths

        pool = SPLIT_POOLS[split][0]
        ensure_assets(["videos", "opencv", "footage"], cache)
        paths = {p.name: p for p in video_paths(("videos", "opencv", "footage"), cache)}
        picked = [(paths[n], g, d) for n, (p, g, d) in SCENES.items() if p == pool]
    sources = []
    for path, group, desc in picked:
        fps, duration, aspect = _probe(path)
        sources.append(Source(path.name, path, group, desc, fps, duration, aspect))
    return sources


def _decode_source(src: Source, width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """All frames of a clip at the working size, scaled to cover it and centre-cropped, as packed yuv420p
    arrays (half the memory of RGB; the encoder takes them as they are), with their times from 0."""
    import av

    if src.aspect > width / height:
        cw, ch = 2 * round(height * src.aspect / 2), height
    else:
        cw, ch = width, 2 * round(width / src.aspect / 2)
    x0, y0 = (cw - width) // 4 * 2, (ch - height) // 4 * 2
    times, frames = [], []
    with av.open(str(src.path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(stream)):
            # planes split by size: U and V need not start on a row of the packed (1.5 h, w) array
            flat = frame.to_ndarray(width=cw, height=ch, format="yuv420p").reshape(-1)
            n_y, n_c = cw * ch, (cw // 2) * (ch // 2)
            y = flat[:n_y].reshape(ch, cw)[y0:y0 + height, x0:x0 + width]
            u, v = (flat[n_y + k * n_c:n_y + (k + 1) * n_c].reshape(ch // 2, cw // 2)
                    [y0 // 2:(y0 + height) // 2, x0 // 2:(x0 + width) // 2] for k in (0, 1))
            frames.append(np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(height * 3 // 2, width))
            times.append(frame.time if frame.time is not None else i / float(src.fps))
    if not frames:
        raise ValueError(f"{src.path}: no decodable frames")
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    return t[order] - t[order[0]], [frames[i] for i in order]


# ----------------------------------------------------------------------------------------------- plans
def _rng(seed: int, split: str, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split) if split in SPLITS else 99, *key])


def _partition(rng, total: float, n: int, lo: float = 3.0, hi: float = 15.0) -> list[float]:
    """n segment lengths in [lo, hi] summing to total (rejection sampling; total must lie in [n lo, n hi])."""
    for _ in range(1000):
        parts = rng.dirichlet(np.ones(n)) * total
        if parts.min() >= lo and parts.max() <= hi:
            return [float(p) for p in parts]
    return [total / n] * n


def _plan_video(split: str, index: int, seed: int, spec: SplitSpec, long_video: bool, n_needles: int,
                sources: list[Source], stamps: list[Stamp], size: tuple[int, int]) -> dict:
    """Everything needed to render one haystack video and ask its questions, as plain JSON data."""
    from PIL import Image

    rng = _rng(seed, split, index)
    groups = sorted({s.group for s in sources})
    described = sorted({s.group for s in sources if s.description})
    scene = not long_video and len(described) >= 2
    if scene:
        duration = float(rng.uniform(*spec.scene_seconds))
        n_min, n_max = max(2, math.ceil(duration / 15.0)), min(4, len(described), int(duration // 3))
        if n_min > n_max:  # too few sources for this length: shorten to what n_max segments can cover
            duration, n_min = 15.0 * n_max, n_max
        n_seg = int(rng.integers(n_min, n_max + 1))
        picked_groups = rng.choice(described, size=n_seg, replace=False)
        clips = []
        for g in picked_groups:
            members = [s for s in sources if s.group == g and s.description]
            clips.append(members[int(rng.integers(len(members)))])
        lengths = _partition(rng, duration, n_seg)
    else:
        duration = float(rng.uniform(*spec.long_seconds))
        lengths, left = [], duration
        while left > 15.0:
            seg = float(rng.uniform(3.0, min(15.0, left - 3.0)))
            lengths.append(seg)
            left -= seg
        lengths.append(left)
        clips, prev = [], None
        for _ in lengths:
            options = [s for s in sources if s.group != prev] or sources
            clip = options[int(rng.integers(len(options)))]
            clips.append(clip)
            prev = clip.group if len(groups) > 1 else None
    fps = clips[0].fps
    n_frames = int(round(duration * fps))
    bounds = np.round(np.cumsum([0.0] + lengths) / duration * n_frames).astype(int)
    bounds[-1] = n_frames
    segments = []
    for clip, a, b in zip(clips, bounds[:-1], bounds[1:]):
        seg_len = (b - a) / fps
        start = float(rng.uniform(0.0, clip.duration - seg_len)) if clip.duration > seg_len else 0.0
        segments.append({"source": clip.name, "group": clip.group, "description": clip.description,
                         "start_frame": int(a), "end_frame": int(b), "source_start": round(start, 3)})

    # Needles: distinct objects (captions), each inside its own quarter, so they never overlap in time.
    captions = sorted({s.caption for s in stamps})
    chosen = rng.choice(len(captions), size=n_needles, replace=False)
    quarters = sorted(int(q) for q in rng.choice(4, size=n_needles, replace=False))
    width, height = size
    needles = []
    for c, q in zip(chosen, quarters):
        caption = captions[int(c)]
        files = [s for s in stamps if s.caption == caption]
        stamp = files[int(rng.integers(len(files)))]
        q0, q1 = math.ceil(q * n_frames / 4), (q + 1) * n_frames // 4
        length = int(np.clip(round(float(rng.uniform(1.0, 3.0)) * fps), math.ceil(fps), math.floor(3 * fps)))
        first = int(rng.integers(q0, q1 - length + 1))
        with Image.open(stamp.path) as im:
            sw, sh = im.size
        longer = float(rng.uniform(0.35, 0.60)) * min(width, height)
        scale = longer / max(sw, sh)
        w, h = max(2, round(sw * scale)), max(2, round(sh * scale))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        needles.append({"stamp": stamp.rel, "caption": caption, "quarter": q, "start_frame": first,
                        "end_frame": first + length, "box": [x, y, w, h]})
    return {"version": BUILDER_VERSION, "id": f"{split}-{index:06d}", "split": split, "index": index, "seed": seed,
            "fps": [fps.numerator, fps.denominator], "frames": n_frames, "size": [width, height],
            "scene_layout": scene, "segments": segments, "needles": needles}


def _t(frame: int, fps: Fraction) -> float:
    return round(float(frame / fps), 3)


def _phrase(caption: str) -> str:
    """'A red kangaroo.' -> 'a red kangaroo' (acronyms such as 'UFO' keep their case)."""
    text = caption[:-1] if caption.endswith(".") else caption
    first = text.split(" ", 1)[0]
    return text if (len(first) > 1 and first.isupper()) else text[:1].lower() + text[1:]


def _questions(plan: dict, captions: list[str], rng: np.random.Generator) -> list[dict]:
    """Questions of one video, options not yet placed: {"category", "question", "correct", "distractors"}."""
    fps = Fraction(*plan["fps"])
    needles = sorted(plan["needles"], key=lambda n: n["start_frame"])
    present = {n["caption"] for n in needles}
    absent = [c for c in captions if c not in present]
    qs = []
    for j, n in enumerate(needles):
        others = [absent[i] for i in rng.choice(len(absent), size=3, replace=False)]
        qs.append({"category": "identity", "suffix": f"-{j}", "question": QUESTIONS["identity"],
                   "correct": n["caption"], "distractors": others})
    if len(needles) >= 2:
        qs.append({"category": "order", "suffix": "", "question": QUESTIONS["order"],
                   "correct": needles[0]["caption"], "distractors": [n["caption"] for n in needles[1:]]})
    qs.append({"category": "count", "suffix": "", "question": QUESTIONS["count"], "correct": str(len(needles)),
               "distractors": [str(k) for k in range(1, 5) if k != len(needles)]})
    for j, n in enumerate(needles):
        qs.append({"category": "localization", "suffix": f"-{j}",
                   "question": QUESTIONS["localization"].format(_phrase(n["caption"])),
                   "correct": QUARTERS[n["quarter"]], "distractors": [x for x in QUARTERS if x != QUARTERS[n["quarter"]]]})
    descriptions = [s["description"] for s in plan["segments"]]
    if plan["scene_layout"] and all(descriptions) and len(set(descriptions)) == len(descriptions):
        qs.append({"category": "scene_order", "suffix": "", "question": QUESTIONS["scene_order"],
                   "correct": descriptions[0], "distractors": descriptions[1:]})
    for q in qs:
        q["distractors"] = [q["distractors"][i] for i in rng.permutation(len(q["distractors"]))]
    common = {
        "duration": _t(plan["frames"], fps),
        "needles": [{"caption": n["caption"], "start": _t(n["start_frame"], fps), "end": _t(n["end_frame"], fps)}
                    for n in needles],
        "source_segments": [{"source": s["source"], "description": s["description"],
                             "start": _t(s["start_frame"], fps), "end": _t(s["end_frame"], fps),
                             "source_start": s["source_start"]} for s in plan["segments"]],
    }
    return [{**q, **common} for q in qs]


def _place_answers(questions: list[dict], rng: np.random.Generator) -> None:
    """Put each correct option at a position drawn from a balanced sequence per (category, option count),
    so every answer letter is (almost exactly) equally frequent."""
    groups = defaultdict(list)
    for q in questions:
        groups[(q["category"], 1 + len(q["distractors"]))].append(q)
    for (_, n), qs in sorted(groups.items()):
        positions = rng.permutation(np.resize(np.arange(n), len(qs)))
        for q, pos in zip(qs, positions):
            options = list(q["distractors"])
            options.insert(int(pos), q["correct"])
            q["options"], q["answer"] = options, LETTERS[int(pos)]


# ----------------------------------------------------------------------------------------------- render
_SOURCE_FRAMES: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}  # filled before forking the workers


def _render(job: tuple[dict, str, str, int]) -> tuple[str, float]:
    """Encode one haystack video with its needles; returns (video id, seconds)."""
    import av

    plan, out_path, stamp_root, crf = job
    t0 = time.perf_counter()
    fps = Fraction(*plan["fps"])
    width, height = plan["size"]
    needles = []
    for n in plan["needles"]:
        x, y, w, h = n["box"]
        rgb, alpha = _stamp_pixels(Path(stamp_root) / n["stamp"], w, h)
        needles.append((n["start_frame"], n["end_frame"], x, y, w, h, rgb * alpha, 1.0 - alpha))
    tmp = Path(out_path).with_name(Path(out_path).stem + ".partial.mp4")
    with av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # one thread per encoder (the workers use the cores); keyframes every 2 s for fast seeking
        stream.options = {"preset": "ultrafast", "crf": str(crf), "threads": "1"}
        stream.codec_context.gop_size = max(1, round(2 * fps))
        for seg in plan["segments"]:
            times, frames = _SOURCE_FRAMES[seg["source"]]
            span = times[-1] + float(np.median(np.diff(times))) if len(times) > 1 else 1.0
            for f in range(seg["start_frame"], seg["end_frame"]):
                t = (seg["source_start"] + (f - seg["start_frame"]) / fps) % span  # short clips loop
                yuv = frames[max(0, int(np.searchsorted(times, t + 1e-6, side="right")) - 1)]
                frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                shown = [n for n in needles if n[0] <= f < n[1]]
                if shown:
                    rgb = frame.to_ndarray(format="rgb24").astype(np.float32)
                    for _, _, x, y, w, h, premul, keep in shown:
                        rgb[y:y + h, x:x + w] = rgb[y:y + h, x:x + w] * keep + premul
                    frame = av.VideoFrame.from_ndarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), format="rgb24")
                    frame = frame.reformat(format="yuv420p")
                frame.pts = f
                frame.time_base = 1 / fps
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.replace(out_path)
    return plan["id"], time.perf_counter() - t0


def _recipe(plan: dict, sources: dict[str, Source], crf: int) -> dict:
    """The plan plus what else decides the video's bytes: encoder settings and source file sizes."""
    used = sorted({s["source"] for s in plan["segments"]})
    return {**plan, "crf": crf, "encoder": "libx264 ultrafast yuv420p",
            "source_bytes": {n: sources[n].path.stat().st_size for n in used}}


def _is_done(video: Path, recipe_path: Path, recipe: dict) -> bool:
    try:
        saved = json.loads(recipe_path.read_text())
    except (OSError, ValueError):
        return False
    return saved.get("recipe") == recipe and video.is_file() and video.stat().st_size == saved.get("bytes")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_split(split: str, out: str | os.PathLike, seed: int = 0, videos: int | None = None,
                haystacks: str | os.PathLike | None = None, stamps: str | os.PathLike | None = None,
                size: tuple[int, int] = (426, 240), crf: int = 26, workers: int | None = None,
                cache: str | os.PathLike | None = None, progress: bool = True, first: int | None = None) -> Path:
    """Build one split into <out>/<split>/ and return its manifest path (see the module docstring).

    `first=K` plans the whole split but renders only its first K videos and writes their questions to
    `manifest_first<K>.jsonl`: the same videos, questions and answers as a full build (a fixed subset for the demo
    and the CI regression test, without rendering the split)."""
    from tqdm.auto import tqdm

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    width, height = size
    if width % 2 or height % 2 or not 240 <= min(width, height) <= 360:
        raise ValueError(f"frame size {width}x{height}: both sides must be even and the shorter one 240-360 px")
    spec = SPLIT_SPECS[split]
    n_videos = spec.videos if videos is None else int(videos)
    if n_videos < 1:
        raise ValueError(f"videos must be >= 1, got {n_videos}")
    workers = max(1, min(workers or os.cpu_count() or 1, n_videos))
    t_start = time.perf_counter()

    if stamps is None:
        from ..assets import ensure_assets

        stamps = ensure_assets(["stamps"], cache)["stamps"]
    pool = split_stamps(load_stamps(stamps))[SPLIT_POOLS[split][1]]
    captions = sorted({s.caption for s in pool})
    if len(captions) < 6:
        raise ValueError(f"the {split} stamp pool has only {len(captions)} distinct captions (need >= 6)")
    sources = haystack_sources(split, haystacks, cache)
    by_name = {s.name: s for s in sources}

    # Needle counts and long videos are drawn as exact proportions over the split, then shuffled.
    rng = _rng(seed, split, 1 << 30)
    n_needles = rng.permutation(np.resize([1, 2, 3], n_videos))
    long_ids = set(rng.permutation(n_videos)[: round(spec.long_fraction * n_videos)].tolist())
    plans = [_plan_video(split, i, seed, spec, i in long_ids, int(n_needles[i]), sources, pool, size)
             for i in range(n_videos)]

    if first is not None and not 1 <= first <= n_videos:
        raise ValueError(f"first must be 1-{n_videos} (the split's videos), got {first}")
    rendered = plans[:first] if first else plans
    folder = Path(out) / split
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    jobs, recipes = [], {}
    for plan in rendered:
        video = folder / "videos" / f"{plan['id']}.mp4"
        recipe = _recipe(plan, by_name, crf)
        recipes[plan["id"]] = recipe
        if not _is_done(video, video.with_suffix(".json"), recipe):
            jobs.append((plan, str(video), str(stamps), crf))

    if jobs:
        needed = sorted({s["source"] for plan, *_ in jobs for s in plan["segments"]})
        for name in tqdm(needed, desc=f"{split}: decode sources", unit="clip", disable=not progress):
            _SOURCE_FRAMES[name] = _decode_source(by_name[name], width, height)
        # forked workers share the decoded frames copy-on-write instead of decoding them again
        fork = workers > 1 and "fork" in multiprocessing.get_all_start_methods()
        try:
            with multiprocessing.get_context("fork").Pool(workers) if fork else contextlib.nullcontext() as pool:
                done = pool.imap_unordered(_render, jobs) if fork else map(_render, jobs)
                for vid, _ in tqdm(done, total=len(jobs), desc=f"{split}: render videos", unit="video",
                                   disable=not progress):
                    _finish(folder, vid, recipes[vid])
        finally:
            _SOURCE_FRAMES.clear()

    # Questions and answers depend on the plans only, never on rendering, so reruns are byte-identical.
    rows = []
    for plan in plans:
        q_rng = _rng(seed, split, plan["index"], 1)
        for q in _questions(plan, captions, q_rng):
            q["id"] = f"{plan['id']}-{q['category'].replace('_', '-')}{q.pop('suffix')}"
            q["video"] = f"videos/{plan['id']}.mp4"
            rows.append(q)
    _place_answers(rows, _rng(seed, split, 1 << 31))  # over the whole split: a subset keeps the full build's answers
    if first:
        kept = {plan["id"] for plan in rendered}
        rows = [r for r in rows if r["video"][len("videos/"):-len(".mp4")] in kept]
    keys = ("id", "video", "question", "options", "answer", "category", "duration", "needles", "source_segments")
    text = "".join(json.dumps({k: r[k] for k in keys}, ensure_ascii=False) + "\n" for r in rows)
    manifest = folder / (f"manifest_first{first}.jsonl" if first else "manifest.jsonl")
    _write_atomic(manifest, text)
    if split == "train" and not first:
        _write_atomic(folder / GROUNDED, text + "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                                        for r in grounded_rows([{k: r[k] for k in keys} for r in rows])))
    if progress:
        print(f"{split}: {len(rendered)} videos, {len(rows)} questions, {len(jobs)} rendered, "
              f"{time.perf_counter() - t_start:.1f}s -> {manifest}", file=sys.stderr)
    return manifest


GROUNDED = "manifest_grounded.jsonl"


def grounded_rows(rows: list[dict], clip_frames: int = 4) -> list[dict]:
    """One extra training row per identity question: the same question asked of one clip (`frames`) sampled inside
    the answer needle's on-screen interval (`window`, seconds), so the object is always in view. Training on these
    beside the whole-video rows teaches what a needle looks like; whether a sparse sampling of the whole video
    catches it is then the frame budget's job (train split only: written as train/manifest_grounded.jsonl, the
    train manifest followed by these rows)."""
    out = []
    for r in rows:
        if r["category"] != "identity":
            continue
        caption = r["options"][ord(r["answer"]) - ord("A")]
        needle = next(n for n in r["needles"] if n["caption"] == caption)
        out.append(dict(r, id=r["id"] + "-grounded", window=[needle["start"], needle["end"]], frames=clip_frames))
    return out


def _finish(folder: Path, vid: str, recipe: dict) -> None:
    video = folder / "videos" / f"{vid}.mp4"
    _write_atomic(video.with_suffix(".json"), json.dumps({"recipe": recipe, "bytes": video.stat().st_size}, indent=1))


def build(out: str | os.PathLike, splits: list[str] | tuple[str, ...] = SPLITS, **kwargs) -> dict[str, Path]:
    """Build several splits (default: all four) into `out`; returns {split: manifest path}."""
    return {split: build_split(split, out, **kwargs) for split in splits}


def summarize(manifest: str | os.PathLike) -> dict:
    """Counts of a manifest: videos, questions, per category, answer letters, total video seconds."""
    rows = [json.loads(line) for line in Path(manifest).read_text(encoding="utf-8").splitlines()]
    videos = {r["video"]: r["duration"] for r in rows}
    return {"videos": len(videos), "questions": len(rows), "seconds": round(sum(videos.values()), 1),
            "categories": dict(sorted(Counter(r["category"] for r in rows).items())),
            "answers": dict(sorted(Counter(r["answer"] for r in rows).items()))}


# ----------------------------------------------------------------------------------------------- CLI
def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"size must look like 426x240, got {text!r}") from e
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="all", choices=[*SPLITS, "all"],
                        help="which split to build (default: all four)")
    parser.add_argument("--out", required=True, help="output folder; each split goes to OUT/SPLIT/")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--videos", type=int, default=None,
                        help="videos per split (default: " + ", ".join(f"{k} {v.videos}" for k, v in SPLIT_SPECS.items()) + ")")
    parser.add_argument("--first", type=int, default=None,
                        help="render only the first K videos of the split (same videos and questions as the full "
                             "build) and write OUT/SPLIT/manifest_first<K>.jsonl")
    parser.add_argument("--haystacks", default=None,
                        help="folder of videos to use as haystacks instead of the built-in footage "
                             "(optional scenes.json there: {file name: scene description})")
    parser.add_argument("--stamps", default=None,
                        help="folder of needles (X.png with alpha + X.txt caption) instead of the Tux Paint stamps")
    parser.add_argument("--size", type=_size, default=(426, 240), help="frame size WxH (default 426x240)")
    parser.add_argument("--crf", type=int, default=26, help="x264 quality (default 26)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--cache-dir", default=None, help="asset cache (default: the LiteFrame asset cache)")


def main(args: argparse.Namespace) -> int:
    splits = list(SPLITS) if args.split == "all" else [args.split]
    t = time.perf_counter()
    try:
        manifests = build(args.out, splits, seed=args.seed, videos=args.videos, haystacks=args.haystacks,
                          stamps=args.stamps, size=args.size, crf=args.crf, workers=args.workers,
                          cache=args.cache_dir, first=args.first)
    except (ValueError, FileNotFoundError) as e:
        print(f"liteframe data needle: {e}", file=sys.stderr)
        return 2
    for split, manifest in manifests.items():
        s = summarize(manifest)
        print(f"{split:12s} {s['videos']:4d} videos {s['seconds'] / 60:6.1f} min  {s['questions']:5d} questions  "
              f"{s['categories']}  answers {s['answers']}  {manifest}")
    print(f"total {time.perf_counter() - t:.1f}s")
    return 0
