# Copyright 2026 The LiteFrame authors. Licensed under the Apache License, Version 2.0.
"""LiteFrame's video decoding: the clip-sampling plan (docs/design.md, "Clip sampling") and a fast PyAV frame reader.

This file is Hub remote code (copied next to the weights by `save_pretrained`) and is usable on its own:

    from video_decoding_liteframe import plan_clip_frames, decode_frames, load_video_clips

    plan = plan_clip_frames(duration=600.0, num_frames=64)          # timestamps in seconds, 16 clips of 4
    video = decode_frames("movie.mp4", plan.timestamps, size=(448, 448))
    video.frames.shape, video.metadata.frames_indices, video.timestamps
    # or, in one call (probe + plan + decode, one open of the file):
    video = load_video_clips("movie.mp4", num_frames=64, size=(448, 448))

Only `numpy`, `torch` and `transformers` are imported at module level; PyAV (`av`) is imported lazily inside the
functions that need it, so the Hub loader's import check does not require it.

Decoding modes
--------------
* ``mode="exact"`` (default) returns, for every requested time ``t``, the frame on screen at ``t`` (the last frame
  whose presentation timestamp is ``<= t``), bit-identical to a sequential decode of the whole file. It plans the
  work from the container's index before decoding anything: for each requested frame it either keeps decoding
  forward from where the decoder is, or seeks to the keyframe before that frame, whichever is estimated cheaper.
  A GOP is therefore never entered twice, a sparse plan costs about one partial GOP per clip, and a dense plan
  degrades into one sequential pass that starts at the keyframe before the first requested frame and stops at
  the last one. transformers' ``load_video(backend="pyav")`` always decodes from frame 0 to the last requested
  frame, so this is never more work than that. On top of that, non-reference frames (typically half of the
  B-frames) are not decoded at all while the next requested frame is more than a few frames away (verified, so
  the output is unchanged), and decoding is threaded (``thread_type="AUTO"``). Containers without an index (raw
  streams, MPEG-TS) are read in one sequential pass. Timestamps come from the decoded frames' pts, so variable
  frame rates are handled; frame *indices* are exact when the container indexes every frame (MP4/MOV) and assume a
  constant frame rate otherwise.
* ``mode="approximate"`` decodes keyframes only: every requested time snaps to the nearest keyframe (by
  presentation time). It is an order of magnitude faster on long videos, but a returned frame can be up to half a
  GOP away from the requested time (5 s for a typical 250-frame GOP at 25 fps), and when requested frames are
  closer together than the keyframe spacing several of them snap to the same keyframe (they are then marked as
  repeats). The *actual* timestamps are always returned, so prompts can still state true times.

Each returned frame is converted to RGB at its own resolution (PyAV's reformatter) and resized to the output size
by :func:`resize_frames`, the one resize used for every input form (decoded arrays and the video processor too),
so the same frames give the same pixels whether they came as a file or as an array. Only output-size frames are
kept: peak memory is ``T x H x W x 3`` bytes plus one full-resolution frame and the decoder's reference frames.

Bad inputs raise :class:`VideoDecodeError` (a ``ValueError``), whose message names the file and the problem. When
a file has fewer decodable frames than planned (truncated data, wrong header duration), the missing frames are
filled with the nearest decoded frame and flagged in ``metadata.is_repeat`` (and a warning is issued).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers.video_utils import VideoMetadata


__all__ = [
    "VideoDecodeError",
    "ClipPlan",
    "LiteFrameVideoMetadata",
    "DecodedVideo",
    "VideoInfo",
    "plan_clip_frames",
    "probe_video",
    "decode_frames",
    "load_video_clips",
    "clip_spans",
    "pad_to_clips",
    "resize_frames",
    "uniform_indices",
]

# Defaults of the clip-sampling rule (docs/design.md, "Clip sampling"); the video processor and the training data loaders use the same numbers.
CLIP_LEN = 4
MAX_FRAMES = 512
CLIP_FPS = 1.0
MIN_CLIP_FPS = 1.0
MAX_CLIP_FPS = 4.0
# Seconds per frame that separate the plan's three regimes.
_UNIFORM_MIN_SPACING = 1.0 / MAX_CLIP_FPS  # 0.25 s
_UNIFORM_MAX_SPACING = 1.0 / MIN_CLIP_FPS  # 1 s

# Cost of one seek, in "frames decoded" units (demuxer seek + decoder flush + refilling the decoder pipeline; a
# frame-threaded decoder also throws away the frames it had in flight). Calibrated on 720p H.264; the exact value
# only matters when a gap between two requested frames is a few frames long.
_SEEK_COST_FRAMES = 6.0
# Non-reference frames are skipped while the next requested time is more than this many frames ahead.
_SKIP_GUARD_FRAMES = 3.0

# Names -> torchvision's interpolation modes that resize uint8 tensors (box and hamming are PIL-only);
# PIL / transformers resampling integers go through transformers' own mapping, as `BaseVideoProcessor.resize` does.
_INTERPOLATIONS = {
    "nearest": "nearest-exact",
    "nearest-exact": "nearest-exact",
    "bilinear": "bilinear",
    "linear": "bilinear",
    "bicubic": "bicubic",
    "cubic": "bicubic",
    "lanczos": "lanczos",
}


class VideoDecodeError(ValueError):
    """The one exception raised for unreadable videos. ``source`` names the input, ``problem`` says what is wrong."""

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = problem
        super().__init__(f"Cannot decode video '{source}': {problem}")


# ----------------------------------------------------------------------------------------------------------------
# Clip sampling plan (docs/design.md, "Clip sampling"): THE function; everything else calls it.
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ClipPlan:
    """Frames to take from a video, in seconds from the first frame.

    ``timestamps`` has ``num_frames`` entries (a multiple of ``clip_len``); consecutive groups of ``clip_len`` form
    clips. ``is_repeat[i]`` is True when frame ``i`` is known to repeat an earlier planned frame (short video: fewer
    real frames than asked; only known when the video's frame rate was given to the planner, the decoder flags
    repeats again from the frames it actually returns). ``regime`` is ``"uniform"`` (D/N in [0.25 s, 1 s]),
    ``"clips"`` (long video, clip-centred) or ``"short"`` (D/N < 0.25 s).
    """

    timestamps: np.ndarray
    is_repeat: np.ndarray
    duration: float
    clip_len: int
    regime: str
    clip_fps: float
    frame_indices: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.timestamps))

    @property
    def num_clips(self) -> int:
        return self.num_frames // self.clip_len

    def clip_spans(self) -> list[tuple[float, float]]:
        """(first, last) timestamp of each clip, in seconds."""
        return clip_spans(self.timestamps, self.clip_len)


def plan_clip_frames(
    duration: float,
    num_frames: int | None = None,
    fps: float | None = None,
    *,
    clip_len: int = CLIP_LEN,
    max_frames: int | None = MAX_FRAMES,
    clip_fps: float = CLIP_FPS,
    video_fps: float | None = None,
    total_num_frames: int | None = None,
    max_fps: float | None = None,
) -> ClipPlan:
    """Plan which instants of a video of ``duration`` seconds to sample, following docs/design.md, "Clip sampling".

    Ask either by ``num_frames`` or by ``fps`` (frames per second of video; ``N = ceil(duration * fps)``) - not both.
    ``N`` is rounded *up* to a multiple of ``clip_len`` and capped at ``max_frames`` (rounded down to a multiple of
    ``clip_len``; ``None`` = no cap). With spacing ``s = duration / N``:

    * ``0.25 s <= s <= 1 s``: ``N`` frames uniformly over the video (bin centres); groups of ``clip_len`` are clips,
      so the intra-clip frame rate ``1/s`` lies in [1, 4] fps, the CTD training range.
    * ``s > 1 s`` (long video): ``N / clip_len`` clips centred uniformly over the video; inside a clip frames are
      ``1 / clip_fps`` seconds apart (``clip_fps`` in [1, 4], default 1).
    * ``s < 0.25 s`` (short video): uniform over the whole video; when the video has fewer frames than ``N``,
      several planned instants fall on the same frame (repeats).

    ``video_fps`` / ``total_num_frames`` (optional) let the planner compute frame indices and flag repeats.
    ``max_fps`` (optional) makes ``num_frames`` an upper bound: at most ``duration * max_fps`` frames, rounded *down*
    to whole clips (at least one clip), so that frames are no closer than ``1 / max_fps`` s - the video processor's
    default sampling (max_fps=4, the top of the training range). A video shorter than one clip at that rate still
    gets one clip.
    """
    if num_frames is not None and fps is not None:
        raise ValueError(
            f"`num_frames` ({num_frames}) and `fps` ({fps}) are mutually exclusive: ask for a number of frames or "
            "for a sampling rate, not both"
        )
    if num_frames is None and fps is None:
        raise ValueError("pass `num_frames` or `fps` to plan the sampled frames")
    if not isinstance(clip_len, (int, np.integer)) or isinstance(clip_len, bool) or clip_len < 1:
        raise ValueError(f"`clip_len` must be a positive integer, got {clip_len!r}")
    clip_len = int(clip_len)
    if not (MIN_CLIP_FPS <= float(clip_fps) <= MAX_CLIP_FPS):
        raise ValueError(
            f"`clip_fps` must be within [{MIN_CLIP_FPS:g}, {MAX_CLIP_FPS:g}] (the frame rates LiteFrame's clips are "
            f"trained on), got {clip_fps}"
        )
    clip_fps = float(clip_fps)
    if duration is None or not math.isfinite(float(duration)) or float(duration) < 0:
        raise ValueError(f"`duration` must be a finite number of seconds >= 0, got {duration!r}")
    duration = float(duration)

    if fps is not None:
        if not float(fps) > 0:
            raise ValueError(f"`fps` must be > 0, got {fps!r}")
        n = max(1, math.ceil(duration * float(fps) - 1e-9))
    else:
        if isinstance(num_frames, bool) or int(num_frames) != num_frames or int(num_frames) < 1:
            raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}")
        n = int(num_frames)
    n = -(-n // clip_len) * clip_len  # rounded up to whole clips
    if max_frames is not None:
        cap = (int(max_frames) // clip_len) * clip_len
        if cap < clip_len:
            raise ValueError(f"`max_frames` ({max_frames}) must be at least `clip_len` ({clip_len})")
        n = min(n, cap)
    if max_fps is not None:
        if not float(max_fps) > 0:
            raise ValueError(f"`max_fps` must be > 0, got {max_fps!r}")
        n = min(n, max(clip_len, int(duration * float(max_fps) + 1e-9) // clip_len * clip_len))

    spacing = duration / n
    if duration <= 0:
        timestamps = np.zeros(n)
        regime, eff_fps = "short", float("inf")
    elif spacing > _UNIFORM_MAX_SPACING * (1 + 1e-9):
        num_clips = n // clip_len
        centres = (np.arange(num_clips) + 0.5) * (duration / num_clips)
        offsets = (np.arange(clip_len) - (clip_len - 1) / 2) / clip_fps
        timestamps = (centres[:, None] + offsets[None, :]).reshape(-1)
        timestamps = np.clip(timestamps, 0.0, np.nextafter(duration, 0))
        regime, eff_fps = "clips", clip_fps
    else:
        timestamps = (np.arange(n) + 0.5) * spacing
        regime = "uniform" if spacing >= _UNIFORM_MIN_SPACING * (1 - 1e-9) else "short"
        eff_fps = 1.0 / spacing

    is_repeat = np.zeros(n, dtype=bool)
    frame_indices = None
    if video_fps is not None and video_fps > 0:
        total = total_num_frames if total_num_frames else max(1, math.ceil(duration * video_fps - 1e-6))
        frame_indices = np.minimum(np.floor(timestamps * video_fps + 1e-6).astype(np.int64), total - 1)
        is_repeat[1:] = frame_indices[1:] == frame_indices[:-1]
    elif duration <= 0:
        is_repeat[1:] = True
    return ClipPlan(
        timestamps=timestamps.astype(np.float64),
        is_repeat=is_repeat,
        duration=duration,
        clip_len=clip_len,
        regime=regime,
        clip_fps=eff_fps,
        frame_indices=frame_indices,
    )


def clip_spans(timestamps, clip_len: int = CLIP_LEN) -> list[tuple[float, float]]:
    """Time span (first, last frame time in seconds) of each consecutive group of ``clip_len`` timestamps.

    Accepts a sequence of seconds or a metadata object with ``timestamps``. Used to write each clip's time span
    in the prompt, e.g. ``12-15s`` (``clip_prompt`` in processing_liteframe.py).
    """
    if hasattr(timestamps, "timestamps") and not isinstance(timestamps, np.ndarray):
        timestamps = timestamps.timestamps
    ts = np.asarray(list(timestamps) if not isinstance(timestamps, np.ndarray) else timestamps, dtype=np.float64)
    if len(ts) % clip_len:
        raise ValueError(f"{len(ts)} timestamps do not form whole clips of {clip_len} frames")
    return [(float(c[0]), float(c[-1])) for c in ts.reshape(-1, clip_len)] if len(ts) else []


# ----------------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class LiteFrameVideoMetadata(VideoMetadata):
    """transformers' ``VideoMetadata`` plus what LiteFrame's decoder knows.

    ``timestamps`` returns the *actual* presentation times of the returned frames (seconds from the first frame)
    rather than ``frames_indices / fps``, which is wrong for variable-frame-rate videos.
    """

    frame_timestamps: list[float] | None = None
    requested_timestamps: list[float] | None = None
    is_repeat: list[bool] | None = None
    rotation: int = 0
    decode_mode: str | None = None
    decode_strategy: str | None = None
    frames_decoded: int | None = None
    num_seeks: int | None = None
    clip_len: int | None = None
    source: str | None = None

    @property
    def timestamps(self) -> list[float] | None:
        """Seconds of each returned frame; None when unknown (decoded frames passed without a frame rate)."""
        if self.frame_timestamps is not None:
            return list(self.frame_timestamps)
        if self.fps is None or self.frames_indices is None:
            return None
        return [i / self.fps for i in self.frames_indices]


class DecodedVideo(NamedTuple):
    """``frames``: uint8 (T, H, W, 3) numpy array or torch tensor; ``metadata``; ``timestamps``: seconds, (T,)."""

    frames: Any
    metadata: LiteFrameVideoMetadata
    timestamps: np.ndarray


@dataclass
class VideoInfo:
    """What the container says about the video stream, cross-checked against its index (see `probe_video`)."""

    source: str
    duration: float
    fps: float
    total_num_frames: int
    width: int
    height: int
    codec: str
    time_base: Fraction
    start_pts: int
    header_num_frames: int
    has_frame_index: bool  # the container indexes every frame (MP4/MOV): frame counts and indices are exact
    seekable: bool
    index: Any = field(default=None, repr=False, compare=False)  # _Index while the container is open


class _Index:
    """Keyframe / frame look-ups on FFmpeg's per-stream index (PyAV ``IndexEntries``), in presentation time.

    Index timestamps are decode times; with B-frames presentation times run a constant delay behind them, which
    ``shift`` adds back (exact for constant-delay encoders such as x264; the decoder verifies every seek anyway).
    All look-ups are binary searches in C, so nothing proportional to the video length is done in Python.
    """

    def __init__(self, entries, start_pts: int):
        self.entries = entries
        self.n = len(entries)
        self.shift = start_pts - int(entries[0].timestamp) if self.n else 0

    def keyframe_at_or_before(self, pts: int) -> int | None:
        i = self.entries.search_timestamp(int(pts) - self.shift, backward=True)
        return None if i < 0 else int(self.entries[i].timestamp) + self.shift

    def keyframe_after(self, pts: int) -> int | None:
        i = self.entries.search_timestamp(int(pts) - self.shift + 1, backward=False)
        return None if i < 0 else int(self.entries[i].timestamp) + self.shift

    def frame_at_or_before(self, pts: int) -> int:
        i = self.entries.search_timestamp(int(pts) - self.shift, backward=True, any_frame=True)
        return max(int(i), 0)

    def frame_pts(self, i: int) -> int:
        return int(self.entries[int(i)].timestamp) + self.shift

    def last_pts(self) -> int:
        return int(self.entries[self.n - 1].timestamp) + self.shift

    def has_non_keyframes(self, probe: int = 400) -> bool:
        return any(not self.entries[i].is_keyframe for i in range(1, min(self.n, probe)))


# ----------------------------------------------------------------------------------------------------------------
# Opening and probing
# ----------------------------------------------------------------------------------------------------------------


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _open(source):
    """Open ``source`` with PyAV; returns (container, stream, name). Raises VideoDecodeError with a precise reason."""
    import av

    name = _source_name(source)
    head = b""
    options = {}
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            target = path
            options = {"rw_timeout": "15000000", "timeout": "15000000"}  # µs; never hang on a dead server
        else:
            if not os.path.exists(path):
                raise VideoDecodeError(name, "no such file")
            if os.path.isdir(path):
                raise VideoDecodeError(name, "is a directory, not a video file")
            size = os.path.getsize(path)
            if size == 0:
                raise VideoDecodeError(name, "the file is empty (0 bytes)")
            try:
                with open(path, "rb") as fh:
                    head = fh.read(512)
            except OSError as e:
                raise VideoDecodeError(name, f"cannot read the file ({e})") from e
            target = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise VideoDecodeError(name, "the input is empty (0 bytes)")
        head = bytes(source[:512])
        target = io.BytesIO(bytes(source))
    elif hasattr(source, "read"):
        target = source
        try:
            pos = source.tell()
            head = source.read(512)
            source.seek(pos)
        except Exception:
            head = b""
        if head == b"" and hasattr(source, "seek"):
            raise VideoDecodeError(name, "the input is empty (0 bytes)")
    else:
        raise VideoDecodeError(
            name, f"unsupported source type {type(source).__name__} (expected a path, bytes or a file object)"
        )

    try:
        container = av.open(target, mode="r", options=options, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if _looks_like_text(head):
            problem = "not a video: the file contains text"
        else:
            problem = f"not a readable video container; the file may be truncated or corrupt (FFmpeg: {e})"
        raise VideoDecodeError(name, problem) from e
    except Exception as e:  # e.g. OSError from a file object
        raise VideoDecodeError(name, f"cannot open ({type(e).__name__}: {e})") from e

    try:
        videos = container.streams.video
        if not videos:
            audio = len(container.streams.audio)
            container.close()
            raise VideoDecodeError(
                name, f"no video stream (audio-only file with {audio} audio stream(s))" if audio else "no video stream"
            )
        stream = videos[0]
        if stream.codec_context is None:
            container.close()
            raise VideoDecodeError(name, "unknown or unsupported video codec (FFmpeg has no decoder for this stream)")
    except VideoDecodeError:
        raise
    except Exception as e:
        container.close()
        raise VideoDecodeError(name, f"cannot read the video stream ({type(e).__name__}: {e})") from e
    return container, stream, name


def _probe(container, stream, name: str) -> VideoInfo:
    tb = stream.time_base or Fraction(1, 1_000_000)
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    try:
        entries = stream.index_entries
        entries = entries if len(entries) else None
    except Exception:
        entries = None
    start_pts = stream.start_time
    if start_pts is None:
        start_pts = int(entries[0].timestamp) if entries is not None else 0
    start_pts = int(start_pts)
    index = _Index(entries, start_pts) if entries is not None else None

    # Duration: the header's, unless the index (the frames the demuxer will actually deliver) disagrees. The
    # header's frame count (`stream.frames`) is never used: it is 0 for Matroska/WebM and can be plain wrong.
    duration = None
    if stream.duration:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = float(container.duration) / 1_000_000
    has_frame_index = False
    if index is not None and index.n > 1:
        span = float((index.last_pts() - start_pts) * tb)
        est_fps = (index.n - 1) / span if span > 0 else 0.0
        # Every frame is indexed (MP4/MOV sample tables) when the index has non-keyframes, or when it is as dense
        # as the frame rate (all-intra codecs). Matroska cues list keyframes only.
        has_frame_index = index.has_non_keyframes() or (fps > 0 and est_fps >= 0.9 * fps)
        if has_frame_index:
            if fps <= 0:
                fps = est_fps
            step = 1.0 / fps if fps > 0 else 0.0
            index_duration = span + step
            if duration is None or abs(duration - index_duration) > max(2 * step, 0.02 * index_duration):
                duration = index_duration
    if duration is None or duration <= 0:
        duration = 0.0
    if fps <= 0:
        fps = 25.0  # only used to estimate costs and indices; timestamps come from the decoded frames

    header_frames = int(stream.frames or 0)
    if has_frame_index:
        total = index.n
    elif duration > 0:
        total = max(1, int(round(duration * fps)))
    else:
        total = header_frames
    seekable = True
    try:
        fobj = getattr(container, "file", None)
        if fobj is not None and hasattr(fobj, "seekable"):
            seekable = bool(fobj.seekable())
    except Exception:
        pass
    return VideoInfo(
        source=name,
        duration=duration,
        fps=fps,
        total_num_frames=int(total),
        width=int(cc.width or 0),
        height=int(cc.height or 0),
        codec=str(cc.name),
        time_base=tb,
        start_pts=start_pts,
        header_num_frames=header_frames,
        has_frame_index=bool(has_frame_index),
        seekable=seekable,
        index=index,
    )


def probe_video(source) -> VideoInfo:
    """Container facts about ``source`` (duration, fps, frame count from the index, keyframes) without decoding."""
    container, stream, name = _open(source)
    try:
        info = _probe(container, stream, name)
        info.index = None  # it reads the (now closed) container
        return info
    finally:
        container.close()


# ----------------------------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------------------------


def _interpolation(resample) -> str:
    """torchvision's name of the interpolation `resample` (a name, or a PIL / transformers resampling value)."""
    if resample is None:
        return "bicubic"
    value = getattr(resample, "value", resample)
    if not isinstance(value, str):
        from transformers.image_utils import pil_torch_interpolation_mapping

        value = getattr(pil_torch_interpolation_mapping.get(int(value)), "value", str(value))
    if value.lower() not in _INTERPOLATIONS:
        raise ValueError(f"unsupported interpolation {resample!r}: use one of {sorted(_INTERPOLATIONS)} (or the "
                         f"PIL resampling values 0-3)")
    return _INTERPOLATIONS[value.lower()]


def resize_frames(frames: torch.Tensor, size, interpolation="bicubic") -> torch.Tensor:
    """uint8 frames (T, C, H, W) resized to ``size`` ((height, width), an int or a {"height", "width"} dict).

    The one resize of every input form: frames decoded from files here, decoded arrays, and the video processor.
    It is torchvision's antialiased resize, as transformers' video processors call it, which stays within 2
    levels of PIL's bicubic (InternVL's reference preprocessing); libswscale's bicubic, applied while converting
    from YUV, was 0.2-0.8 levels off on average and up to 22 at sharp edges, and costs about as much on 720p.
    """
    from torchvision.transforms.v2 import functional as tvF

    size = _normalize_size(size)
    if size is None or tuple(frames.shape[-2:]) == size:
        return frames
    mode = tvF.InterpolationMode(_interpolation(interpolation))
    return tvF.resize(frames, list(size), interpolation=mode, antialias=True)


def pad_to_clips(frames, clip_len: int):
    """(``frames`` with its last frame repeated up to a multiple of ``clip_len`` frames, number of copies added)."""
    pad = -int(frames.shape[0]) % clip_len
    if pad:
        frames = torch.cat([frames, frames[-1:].expand(pad, *frames.shape[1:])])
    return frames, pad


def uniform_indices(total: int, n: int) -> np.ndarray:
    """``n`` frame indices spread uniformly over ``total`` frames (bin centres); fewer frames than ``n`` repeat."""
    return np.minimum(((np.arange(n) + 0.5) * total / n).astype(np.int64), total - 1)


def _normalize_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    if hasattr(size, "height") and getattr(size, "height", None) is not None:
        return int(size.height), int(size.width)
    if isinstance(size, dict):
        return int(size["height"]), int(size["width"])
    h, w = size
    return int(h), int(w)


class _Output:
    """Pre-allocated uint8 (T, H, W, 3) output plus bookkeeping; converts each decoded frame once, at output size."""

    def __init__(self, n: int, size, interpolation: str, rotate: bool):
        self.n = n
        self.size = size
        self.interpolation = interpolation
        self.rotate = rotate
        self.array = None if size is None else np.empty((n, size[0], size[1], 3), dtype=np.uint8)
        self.filled = np.zeros(n, dtype=bool)
        self.pts = np.full(n, -1, dtype=np.int64)
        self.rotation = 0
        self._last_key = self._last_arr = None
        # One reformatter for the whole call: it keeps libswscale's conversion context between frames.
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def convert(self, frame) -> np.ndarray:
        if self._last_key is not None and self._last_key == frame.pts:
            return self._last_arr
        rotation = 0
        if self.rotate:
            try:
                rotation = int(round((frame.rotation or 0) / 90.0)) % 4
            except Exception:
                rotation = 0
        self.rotation = rotation * 90 if rotation < 3 else -90
        arr = self._reformatter.reformat(frame, format="rgb24").to_ndarray()  # RGB at the frame's own size
        if rotation:
            arr = np.rot90(arr, rotation)
        if self.size is not None:
            chw = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
            arr = resize_frames(chw, self.size, self.interpolation)[0].permute(1, 2, 0).numpy()
        if self.array is None:
            self.array = np.empty((self.n, *arr.shape), dtype=np.uint8)
        self._last_key, self._last_arr = frame.pts, arr
        return arr

    def put(self, positions, frame, pts: int):
        arr = self.convert(frame)
        for p in positions:
            self.array[p] = arr
            self.filled[p] = True
            self.pts[p] = pts


def _targets(requested_pts: np.ndarray):
    """Unique sorted target pts and, for each, the output positions asking for it."""
    uniq, inverse = np.unique(requested_pts, return_inverse=True)
    positions: list[list[int]] = [[] for _ in uniq]
    for p, k in enumerate(inverse.tolist()):
        positions[k].append(p)
    return uniq.tolist(), positions


def _plan_segments(info: VideoInfo, targets: list[int], threads: int) -> list[tuple[int | None, list[int]]]:
    """Split sorted target pts into decode segments: (pts to seek to, or None = from the start; target ids).

    Greedy per gap, which is optimal because the choices for different gaps are independent: keep decoding forward
    from the previous target when that is cheaper than a seek plus the decode from the keyframe before the next
    target; never seek to a keyframe at or before the current position (that would re-enter the current GOP).
    """
    index = info.index
    frame_ticks = 1.0 / (info.fps * float(info.time_base))  # time-base ticks per frame
    seek_cost = _SEEK_COST_FRAMES + (threads if threads > 1 else 0)
    segments: list[tuple[int | None, list[int]]] = []
    pos = None
    first_key = index.keyframe_at_or_before(info.start_pts) if index is not None else None
    for i, t in enumerate(targets):
        key_pts = index.keyframe_at_or_before(t) if index is not None else None
        if pos is None:
            segments.append((None if (key_pts is None or key_pts == first_key) else key_pts, [i]))
        elif key_pts is None or key_pts <= pos or not info.seekable:
            segments[-1][1].append(i)
        else:
            cont = (t - pos) / frame_ticks
            seek = seek_cost + (t - key_pts) / frame_ticks
            if seek < cont:
                segments.append((key_pts, [i]))
            else:
                segments[-1][1].append(i)
        pos = t
    return segments


class _SkippedNeededFrame(Exception):
    """A frame skipped as non-reference turned out to be the one on screen at a target: redo without skipping."""


def _decode_exact(container, stream, info: VideoInfo, out: _Output, targets, positions, threads: int,
                  skip_nonref: bool = True):
    """Fill ``out`` with the frame on screen at each target pts. Returns (frames decoded, seeks, strategy).

    Between targets, packets of non-reference frames (which no other frame depends on) are handed to the decoder
    with ``skip_frame="NONREF"`` so they are not decoded; from a few frames before each target on everything is
    decoded. That cannot change any decoded picture, and it is verified: every emitted frame is checked against the
    presentation times of the packets skipped since the previous output, and a segment that skipped a frame it
    needs (e.g. a very long frame of a variable-frame-rate video) is decoded again without skipping.
    """
    import av

    cc = stream.codec_context
    segments = _plan_segments(info, targets, threads)
    frame_ticks = 1.0 / (info.fps * float(info.time_base))
    guard = _SKIP_GUARD_FRAMES * frame_ticks
    decoded = 0
    seeks = 0
    queue = list(segments)
    retries: dict[int, int] = {}
    no_skip: set[int] = set()
    while queue:
        seek_pts, ids = queue.pop(0)
        first_target = targets[ids[0]]
        from_start = seek_pts is None or retries.get(ids[0], 0) >= 3
        if seeks or decoded or not from_start:  # a freshly opened container is already at the start
            try:
                container.seek(int(info.start_pts if from_start else seek_pts), backward=True, stream=stream)
                seeks += 1
            except av.error.FFmpegError:
                # Not seekable (e.g. a pipe): keep decoding forward from where we are.
                from_start = decoded == 0
        skipping = skip_nonref and ids[0] not in no_skip
        state = {"j": 0, "mode": None}
        pending: set[int] = set()  # pts of packets sent as skippable that produced no frame (yet)

        def frames():
            for packet in container.demux(stream):
                if skipping and packet.pts is not None:
                    j = state["j"]
                    skip = j < len(ids) and packet.pts < targets[ids[j]] - guard
                    if skip != state["mode"]:
                        cc.skip_frame = "NONREF" if skip else "DEFAULT"
                        state["mode"] = skip
                    if skip:
                        pending.add(int(packet.pts))
                yield from packet.decode()

        def check(prev_pts, target):
            if pending:
                if any(prev_pts < q <= target for q in pending):
                    raise _SkippedNeededFrame()
                pending.difference_update([q for q in pending if q <= target])

        prev = None
        prev_pts = None
        counter = 0
        restart = None
        redo = False
        try:
            for frame in frames():
                decoded += 1
                pts = frame.pts
                if pts is None:
                    pts = (prev_pts + 1) if prev_pts is not None else info.start_pts + counter
                counter += 1
                pending.discard(pts)
                j = state["j"]
                if prev is None and pts > targets[ids[j]] and not from_start and pts > info.start_pts:
                    # The seek landed after the target (inexact index): go back further.
                    restart = pts
                    break
                while j < len(ids) and targets[ids[j]] < pts:
                    if prev is not None:
                        check(prev_pts, targets[ids[j]])
                        out.put(positions[ids[j]], prev, prev_pts)
                    else:  # target before the first frame of the video
                        out.put(positions[ids[j]], frame, pts)
                    j += 1
                state["j"] = j
                if j == len(ids):
                    break
                prev, prev_pts = frame, pts
            else:
                if state["j"] < len(ids) and prev is not None:
                    # End of stream: the last frame stays on screen until the end of the video. Targets beyond
                    # that were promised by the header but do not exist; `_fill_missing` repeats frames for them.
                    end = max(prev_pts + 1.5 * frame_ticks, info.start_pts + info.duration / float(info.time_base))
                    for i in ids[state["j"]:]:
                        if targets[i] <= end:
                            check(prev_pts, targets[i])
                            out.put(positions[i], prev, prev_pts)
        except _SkippedNeededFrame:
            redo = True
        except av.error.FFmpegError as e:
            warnings.warn(f"{info.source}: decoding stopped early ({e}); missing frames are filled with repeats")
        finally:
            if state["mode"]:
                cc.skip_frame = "DEFAULT"
        if redo:
            no_skip.add(ids[0])
            queue.insert(0, (seek_pts, ids))
            continue
        if restart is not None:
            retries[ids[0]] = retries.get(ids[0], 0) + 1
            back = max(info.start_pts, min(restart, first_target) - 1)
            queue.insert(0, (back if retries[ids[0]] < 3 else None, ids))
            continue
    n_seg = len(segments)
    if n_seg == 1:
        strategy = "sequential"
    else:
        gops = len({info.index.keyframe_at_or_before(t) for t in targets})
        strategy = "seek" if n_seg >= gops else "mixed"
    return decoded, seeks, strategy


def _decode_keyframes(container, stream, info: VideoInfo, out: _Output, targets, positions):
    """Approximate mode: each target takes the nearest keyframe; only keyframe packets are decoded."""
    import av

    index = info.index
    cc = stream.codec_context
    # group targets by the keyframe they snap to; without an index, seek to the target itself and take the
    # keyframe the demuxer lands on
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        choice = t
        if index is not None:
            cands = [k for k in (index.keyframe_at_or_before(t), index.keyframe_after(t)) if k is not None]
            if cands:
                choice = min(cands, key=lambda kp: (abs(kp - t), kp))
        groups.setdefault(choice, []).append(i)
    decoded = 0
    seeks = 0
    max_packets = 4 * max(1, int(info.fps * 20))  # never scan more than ~80 s of packets for one keyframe
    for seek_to, ids in sorted(groups.items()):
        try:
            container.seek(int(seek_to), backward=True, stream=stream)
            seeks += 1
        except av.error.FFmpegError:
            continue
        frame = None
        try:
            for count, packet in enumerate(container.demux(stream)):
                if packet.size == 0 or count > max_packets:
                    break
                if not packet.is_keyframe:
                    continue
                frames = cc.decode(packet) or cc.decode(None)  # drain: the decoder may hold frames for reordering
                frame = frames[0] if frames else None
                break
        except av.error.FFmpegError as e:
            warnings.warn(f"{info.source}: decoding a keyframe failed ({e}); filled with a neighbouring frame")
        if frame is not None:
            decoded += 1
            pts = frame.pts if frame.pts is not None else seek_to
            for i in ids:
                out.put(positions[i], frame, pts)
    return decoded, seeks, "keyframes"


def _fill_missing(out: _Output, name: str, requested_n: int):
    if out.filled.all():
        return
    if not out.filled.any():
        raise VideoDecodeError(name, "no decodable video frames (the file may be truncated or corrupt)")
    missing = np.flatnonzero(~out.filled)
    have = np.flatnonzero(out.filled)
    warnings.warn(
        f"{name}: {len(missing)} of {requested_n} requested frames could not be decoded (fewer frames than the "
        "header promises); they repeat the nearest decoded frame and are flagged in metadata.is_repeat"
    )
    for m in missing:
        src = have[np.argmin(np.abs(have - m))]
        out.array[m] = out.array[src]
        out.pts[m] = out.pts[src]


def _frame_index(info: VideoInfo, pts: int) -> int:
    if info.has_frame_index:
        return min(info.index.frame_at_or_before(pts), info.total_num_frames - 1)
    return int(max(0, round(float((pts - info.start_pts) * info.time_base) * info.fps)))


def _indices_to_seconds(info: VideoInfo, indices: np.ndarray) -> np.ndarray:
    """Frame index -> an instant inside that frame's display interval (its middle)."""
    tb = float(info.time_base)
    if info.has_frame_index:
        n = info.index.n
        out = np.empty(len(indices))
        for k, i in enumerate(indices):
            i = min(int(i), n - 1)
            a = info.index.frame_pts(i)
            b = info.index.frame_pts(i + 1) if i + 1 < n else a + 1.0 / (info.fps * tb)
            out[k] = ((a + b) / 2 - info.start_pts) * tb
        # past the last frame: ask beyond the end, which the decoder maps to repeats of the last frame
        beyond = indices >= n
        out[beyond] = info.duration + (indices[beyond] - n + 0.5) / info.fps
        return out
    return (indices + 0.5) / info.fps


def _to_output_type(frames: np.ndarray, return_tensors):
    if return_tensors in ("pt", "torch"):
        return torch.from_numpy(np.ascontiguousarray(frames))
    if return_tensors in (None, "np", "numpy"):
        return frames
    raise ValueError(f"return_tensors must be 'np' or 'pt', got {return_tensors!r}")


def _is_decoded(source) -> bool:
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return True
    if isinstance(source, (list, tuple)) and source:
        first = source[0]
        return isinstance(first, (np.ndarray, torch.Tensor)) or type(first).__module__.startswith("PIL")
    return False


def _as_thwc_uint8(source) -> torch.Tensor:
    if isinstance(source, (list, tuple)):
        frames = [f if isinstance(f, torch.Tensor) else torch.from_numpy(np.asarray(f)) for f in source]
        video = torch.stack(frames)
    else:
        video = source if isinstance(source, torch.Tensor) else torch.from_numpy(np.asarray(source))
    if video.ndim != 4:
        raise VideoDecodeError(
            "<array>", f"expected frames of shape (T, H, W, C) or (T, C, H, W), got {tuple(video.shape)}"
        )
    if video.shape[-1] not in (1, 3, 4) and video.shape[1] in (1, 3, 4):
        video = video.permute(0, 2, 3, 1)
    if video.shape[-1] == 1:
        video = video.expand(-1, -1, -1, 3)
    elif video.shape[-1] == 4:
        video = video[..., :3]
    if video.dtype != torch.uint8:
        v = video.float()
        if v.numel() and float(v.max()) <= 1.0:
            v = v * 255
        video = v.round().clamp(0, 255).to(torch.uint8)
    return video


def _decode_array(source, timestamps, indices, size, interpolation, fps, return_tensors) -> DecodedVideo:
    video = _as_thwc_uint8(source)
    total = int(video.shape[0])
    if total == 0:
        raise VideoDecodeError("<array>", "the video has no frames")
    if indices is None:
        if fps is None or fps <= 0:
            raise VideoDecodeError("<array>", "timestamps need the frame rate of decoded frames: pass `fps=`")
        requested = np.asarray(timestamps, dtype=np.float64)
        indices = np.floor(requested * fps + 1e-6).astype(np.int64)
    else:
        requested = None
    indices = np.asarray(indices, dtype=np.int64)
    if (indices < 0).any():
        raise ValueError("frame indices must be >= 0")
    clamped = np.minimum(indices, total - 1)
    is_repeat = np.zeros(len(clamped), dtype=bool)
    is_repeat[1:] = clamped[1:] == clamped[:-1]
    is_repeat |= indices != clamped
    frames = video[torch.from_numpy(clamped)]
    if size is not None and tuple(frames.shape[1:3]) != size:
        frames = resize_frames(frames.permute(0, 3, 1, 2), size, interpolation).permute(0, 2, 3, 1).contiguous()
    ts = clamped / fps if fps else clamped.astype(np.float64)
    metadata = LiteFrameVideoMetadata(
        total_num_frames=total,
        fps=float(fps) if fps else None,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        duration=total / fps if fps else None,
        video_backend="array",
        frames_indices=clamped.tolist(),
        frame_timestamps=ts.tolist() if fps else None,
        requested_timestamps=requested.tolist() if requested is not None else None,
        is_repeat=is_repeat.tolist(),
        decode_mode="array",
        decode_strategy="index",
        source="<array>",
    )
    out = frames if return_tensors in ("pt", "torch") else _to_output_type(frames.numpy(), return_tensors)
    return DecodedVideo(out, metadata, np.asarray(ts, dtype=np.float64))


def _decode_container(
    container, stream, info: VideoInfo, timestamps, indices, size, mode, interpolation, threads, return_tensors, rotate,
    skip_nonref: bool = True,
) -> DecodedVideo:
    if indices is not None:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if (indices < 0).any():
            raise ValueError("frame indices must be >= 0")
        requested = _indices_to_seconds(info, indices)
    else:
        requested = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if not np.isfinite(requested).all():
            raise ValueError("timestamps must be finite numbers of seconds")
    n = len(requested)
    if n == 0:
        raise ValueError("no frames requested")
    tb = float(info.time_base)
    requested_pts = np.floor(np.maximum(requested, 0.0) / tb + 1e-6).astype(np.int64) + info.start_pts
    targets, positions = _targets(requested_pts)
    out = _Output(n, size, interpolation, rotate)

    cc = stream.codec_context
    if mode == "approximate":
        cc.thread_type = "SLICE"  # frame threading would delay every single-keyframe decode by its pipeline depth
        decoded, seeks, strategy = _decode_keyframes(container, stream, info, out, targets, positions)
    elif mode == "exact":
        if threads:
            cc.thread_type = threads if isinstance(threads, str) else "AUTO"
        decoded, seeks, strategy = _decode_exact(
            container, stream, info, out, targets, positions, cc.thread_count or 1, skip_nonref
        )
    else:
        raise ValueError(f"mode must be 'exact' or 'approximate', got {mode!r}")
    _fill_missing(out, info.source, n)

    # Repeats: a position repeats the previous one when it holds the same frame, or when it was filled because
    # the frame it asked for did not exist.
    actual_pts = out.pts
    order = np.argsort(requested_pts, kind="stable")
    is_repeat = ~out.filled
    is_repeat[order[1:]] |= actual_pts[order[1:]] == actual_pts[order[:-1]]
    actual_ts = (actual_pts - info.start_pts) * tb
    frames = out.array
    metadata = LiteFrameVideoMetadata(
        total_num_frames=info.total_num_frames,
        fps=info.fps,
        width=int(frames.shape[2]),
        height=int(frames.shape[1]),
        duration=info.duration,
        video_backend="liteframe-pyav",
        frames_indices=[_frame_index(info, int(p)) for p in actual_pts],
        frame_timestamps=[float(t) for t in actual_ts],
        requested_timestamps=[float(t) for t in requested],
        is_repeat=is_repeat.tolist(),
        rotation=int(out.rotation),
        decode_mode=mode,
        decode_strategy=strategy,
        frames_decoded=int(decoded),
        num_seeks=int(seeks),
        source=info.source,
    )
    return DecodedVideo(_to_output_type(frames, return_tensors), metadata, np.asarray(actual_ts, dtype=np.float64))


@contextlib.contextmanager
def _opened(source):
    """(container, stream, info) of a file source, closed afterwards; FFmpeg errors become VideoDecodeError."""
    container, stream, name = _open(source)
    try:
        yield container, stream, _probe(container, stream, name)
    except (ValueError, TypeError):  # VideoDecodeError included: these already say what is wrong
        raise
    except Exception as e:
        import av

        if isinstance(e, av.error.FFmpegError):
            raise VideoDecodeError(name, f"decoding failed ({e})") from e
        raise
    finally:
        container.close()


def decode_frames(
    source,
    timestamps=None,
    *,
    indices=None,
    size=None,
    mode: str = "exact",
    interpolation="bicubic",
    threads: str | bool = "AUTO",
    rotate: bool = True,
    fps: float | None = None,
    return_tensors: str = "np",
    skip_nonref: bool = True,
) -> DecodedVideo:
    """Decode the frames on screen at ``timestamps`` (seconds from the first frame) or at frame ``indices``.

    Args:
        source: a path (or http(s) URL), a binary file object, ``bytes``; or already-decoded frames (a (T, H, W, 3) /
            (T, 3, H, W) array or tensor, or a list of frames / PIL images), which are then only indexed and resized
            (timestamps need ``fps=`` for those).
        timestamps / indices: exactly one of them. Indices count frames in presentation order; with containers
            that index every frame (MP4/MOV) they are exact, otherwise they assume a constant frame rate.
        size: output ``(height, width)`` (or an int for a square, or ``{"height", "width"}``); ``None`` keeps the
            (display) size. Frames are resized by :func:`resize_frames` (as decoded arrays are).
        mode: ``"exact"`` or ``"approximate"`` (keyframes only), see the module docstring.
        interpolation: ``"bicubic"`` (default), ``"bilinear"``, ``"nearest"``, ``"lanczos"`` or a PIL /
            transformers resampling value (0-3).
        threads: decoder threading for exact mode: ``"AUTO"`` (frame + slice threads), ``"FRAME"``, ``"SLICE"``,
            or ``False`` to keep PyAV's default.
        rotate: apply the display-matrix rotation (phone videos), so frames come out upright.
        return_tensors: ``"np"`` (uint8 numpy) or ``"pt"`` (uint8 torch tensor).
        skip_nonref: exact mode: do not decode non-reference frames far from any requested frame (verified; the
            output is identical either way, ``False`` only costs time).

    Returns:
        ``DecodedVideo(frames, metadata, timestamps)``: frames uint8 (T, H, W, 3) in the requested order;
        ``metadata`` a :class:`LiteFrameVideoMetadata` (``frames_indices``, ``fps``, ``duration``,
        ``total_num_frames``, ``height``/``width``, actual ``timestamps``, ``is_repeat``...); the actual timestamps.

    Raises:
        VideoDecodeError: missing/empty/non-video/truncated/audio-only/unsupported input.
    """
    if (timestamps is None) == (indices is None):
        raise ValueError("pass exactly one of `timestamps` or `indices`")
    size = _normalize_size(size)
    interpolation = _interpolation(interpolation)
    if _is_decoded(source):
        return _decode_array(source, timestamps, indices, size, interpolation, fps, return_tensors)
    with _opened(source) as (container, stream, info):
        return _decode_container(
            container, stream, info, timestamps, indices, size, mode, interpolation, threads, return_tensors, rotate,
            skip_nonref,
        )


def load_video_clips(
    source,
    num_frames: int | None = None,
    fps: float | None = None,
    *,
    clip_len: int = CLIP_LEN,
    max_frames: int | None = MAX_FRAMES,
    clip_fps: float = CLIP_FPS,
    size=None,
    mode: str = "exact",
    interpolation="bicubic",
    threads: str | bool = "AUTO",
    rotate: bool = True,
    video_fps: float | None = None,
    return_tensors: str = "np",
    skip_nonref: bool = True,
    max_fps: float | None = None,
) -> DecodedVideo:
    """Probe ``source``, plan its clips with :func:`plan_clip_frames` and decode them (one open of the file).

    For already-decoded frames pass ``video_fps`` (their frame rate); without it the frames are treated as one
    uniform sequence (the plan is made in frame units). Metadata carries ``clip_len`` so the clip spans
    (:func:`clip_spans`) can be written into the prompt.
    """
    interpolation_name = _interpolation(interpolation)
    size_hw = _normalize_size(size)
    if _is_decoded(source):
        video = _as_thwc_uint8(source)
        total = int(video.shape[0])  # none: _decode_array says so
        if video_fps:
            plan = plan_clip_frames(
                total / video_fps, num_frames, fps, clip_len=clip_len, max_frames=max_frames, clip_fps=clip_fps,
                video_fps=video_fps, total_num_frames=total, max_fps=max_fps,
            )
            result = _decode_array(
                video, None, plan.frame_indices, size_hw, interpolation_name, video_fps, return_tensors
            )
        else:
            if fps is not None:
                raise ValueError("sampling by `fps` needs the frame rate of the decoded frames: pass `video_fps=`")
            plan = plan_clip_frames(
                float(total), num_frames, None, clip_len=clip_len, max_frames=max_frames, clip_fps=MIN_CLIP_FPS
            )
            # frame units: uniform over the sequence (bin centres), repeats when there are fewer frames than asked
            idx = uniform_indices(total, plan.num_frames)
            result = _decode_array(video, None, idx, size_hw, interpolation_name, None, return_tensors)
        result.metadata.clip_len = clip_len
        return result

    with _opened(source) as (container, stream, info):
        plan = plan_clip_frames(
            info.duration, num_frames, fps, clip_len=clip_len, max_frames=max_frames, clip_fps=clip_fps,
            max_fps=max_fps,
        )
        result = _decode_container(
            container, stream, info, plan.timestamps, None, size_hw, mode, interpolation_name, threads,
            return_tensors, rotate, skip_nonref,
        )
    result.metadata.clip_len = clip_len
    return result
