"""Generated training data: small MP4s of a coloured square moving over a textured background, and
(video, question, answer) records about them. Used by the tests and the CPU LMA demo; every video is a real
H.264 file decoded by the same PyAV path as any other video.

    write_synthetic_videos(folder, 8)                 # CTD: a folder of videos
    write_synthetic_video_qa(folder, 64)              # LMA: videos + manifest.jsonl with LLaVA-style turns
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["COLORS", "DIRECTIONS", "moving_square", "write_video", "write_synthetic_videos", "write_synthetic_video_qa"]

COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (230, 210, 40)}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def moving_square(rng: np.random.Generator, size: int, num_frames: int, color: str, direction: str) -> np.ndarray:
    """uint8 (T, size, size, 3): a square of `color` crossing a noisy gradient background in `direction`."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    tint = rng.uniform(0.2, 0.6, size=3)
    background = (np.stack([xx, yy, 1 - xx], -1) * tint * 255 + rng.normal(0, 12, (size, size, 3))).clip(0, 255)
    side = size // 4
    (dx, dy), span = DIRECTIONS[direction], size - side
    x0, y0 = rng.integers(0, span, size=2)
    frames = np.repeat(background[None], num_frames, axis=0).astype(np.uint8)
    for t in range(num_frames):
        progress = t / max(1, num_frames - 1)
        x = int(x0 if dx == 0 else (span * progress if dx > 0 else span * (1 - progress)))
        y = int(y0 if dy == 0 else (span * progress if dy > 0 else span * (1 - progress)))
        frames[t, y : y + side, x : x + side] = COLORS[color]
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: int) -> Path:
    """Encode uint8 (T, H, W, 3) frames (even H, W) as H.264 (yuv420p) with PyAV."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_synthetic_videos(folder: str | Path, num_videos: int, size: int = 64, num_frames: int = 32, fps: int = 8,
                           seed: int = 0) -> list[Path]:
    """`num_videos` clips of `num_frames` frames at `fps` (4 s by default) into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(num_videos):
        color, direction = list(COLORS)[i % len(COLORS)], list(DIRECTIONS)[(i // len(COLORS)) % len(DIRECTIONS)]
        paths.append(write_video(folder / f"square_{i:04d}.mp4", moving_square(rng, size, num_frames, color, direction),
                                 fps))
    return paths


def write_synthetic_video_qa(folder: str | Path, num_records: int, size: int = 64, num_frames: int = 32, fps: int = 8,
                             seed: int = 0) -> Path:
    """Videos + ``manifest.jsonl`` of LLaVA-style records: ``{"video": "videos/...", "conversations": [...]}`` with
    a colour question and a direction question. Returns the manifest path."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(num_records):
        color, direction = str(rng.choice(list(COLORS))), str(rng.choice(list(DIRECTIONS)))
        name = f"videos/qa_{i:04d}.mp4"
        write_video(folder / name, moving_square(rng, size, num_frames, color, direction), fps)
        records.append({"video": name, "conversations": [
            {"from": "human", "value": "<video>\nWhat color is the square?"},
            {"from": "gpt", "value": f"The square is {color}."},
            {"from": "human", "value": "Which way does it move?"},
            {"from": "gpt", "value": f"It moves {direction}."},
        ]})
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest
