# Copyright 2026 The LiteFrame authors. Licensed under the Apache License, Version 2.0.
"""LiteFrame's video processor: clip sampling (docs/design.md), fast PyAV decoding, InternViT normalisation.

Hub remote code: flat folder, sibling imports only; registers nothing (the package / the lead's ``__init__`` does).

Frame-count precedence (``num_frames`` vs ``fps``, which are mutually exclusive):

* An argument given explicitly wins over the instance default: ``processor(video, fps=2)`` samples at 2 fps even
  though the instance default is ``num_frames=32`` (transformers' base class would fill in ``num_frames=32`` and
  then fail, or silently prefer it).
* Both given explicitly (in one call, or both to ``__init__``) raise a ``ValueError``.
* ``LiteFrameVideoProcessor(fps=2)`` makes ``fps`` the default (``num_frames`` becomes ``None``); this survives
  ``save_pretrained`` / ``from_pretrained``, and ``from_pretrained(path, num_frames=16)`` switches back.
* ``num_frames`` is rounded up to a multiple of ``clip_len`` and capped at ``max_frames``; ``fps`` asks for
  ``ceil(duration * fps)`` frames, likewise rounded and capped.

Default sampling stays within the training range (clips at 1-4 fps): when neither ``num_frames`` nor ``fps`` is
given, the default frame count is an upper bound, not a target: a video gets ``min(num_frames, duration * max_fps)`` frames
(``max_fps`` = 4), rounded down to whole clips. A 40 s video gets the default 32 frames (0.8 fps), a 4 s one 16
frames (4 fps) instead of 32 (8 fps), a 2 s one 8 frames. Only a video shorter than one clip at 4 fps (1 s) is
sampled faster: a clip needs 4 frames. An explicit ``num_frames`` or ``fps`` is taken as given.

Input forms (``videos=``, also through ``LiteFrameProcessor`` and its ``apply_chat_template``): a path or URL, the
file's ``bytes``, an open binary file object, an array / tensor of frames ``(T, H, W, C)`` or ``(T, C, H, W)``, a
list of frames (PIL images or ``(H, W, C)`` arrays), or a list of those (one entry per video); a 5-D array is a
batch. Anything else is refused with a message naming the form (``make_video_list``).

Outputs: ``pixel_values_videos`` (B, T, 3, H, W) float, videos shorter than the longest in the batch padded with
zeros at the end; ``video_num_frames`` (B,) int64, the real frames of each video (a multiple of ``clip_len``); with
``return_metadata=True`` also ``video_metadata`` (``LiteFrameVideoMetadata`` per video: ``frames_indices``, actual
``timestamps`` in seconds, ``is_repeat``, ``clip_len``). ``clip_spans(metadata)`` gives one (start, end) per clip
for the prompt header, e.g. ``12-15s`` (``clip_prompt`` in processing_liteframe.py).
"""

import functools
import os

import numpy as np
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import make_batched_metadata

from .video_decoding_liteframe import (
    CLIP_FPS,
    CLIP_LEN,
    MAX_CLIP_FPS,
    MAX_FRAMES,
    MIN_CLIP_FPS,
    LiteFrameVideoMetadata,
    clip_spans,
    decode_frames,
    load_video_clips,
    pad_to_clips,
    plan_clip_frames,
    probe_video,
    resize_frames,
    uniform_indices,
)
from .version_liteframe import check_transformers_version  # noqa: F401 - importing it checks the version


# InternViT-300M (the teacher and the student's initialisation) normalises with the ImageNet statistics.
INTERNVIT_MEAN = [0.485, 0.456, 0.406]
INTERNVIT_STD = [0.229, 0.224, 0.225]
DECODE_MODES = ("exact", "approximate")


class LiteFrameVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    clip_len (`int`, *optional*, defaults to 4):
        Frames per clip; the encoder processes clips of this many consecutive sampled frames. Frame counts are
        rounded up to a multiple of it (videos are padded by repeating their last frame).
    max_frames (`int`, *optional*, defaults to 512):
        Upper bound on the sampled frames, whether asked by `num_frames` or by `fps`.
    clip_fps (`float`, *optional*, defaults to 1.0):
        Frame rate inside a clip for long videos (more than 1 s of video per sampled frame); within [1, 4].
    decode_mode (`str`, *optional*, defaults to `"exact"`):
        `"exact"` (frames at the planned instants, keyframe-aware seeking) or `"approximate"` (nearest keyframes
        only: much faster on long videos, up to half a GOP off; actual timestamps are reported).
    max_fps (`float`, *optional*, defaults to 4.0):
        Highest sampling rate of the *default* frame count (neither `num_frames` nor `fps` given): a video gets at
        most `ceil(duration * max_fps)` frames (whole clips), so short videos stay within the 1-4 fps the
        encoder is trained on. `None` turns the bound off. Explicit `num_frames` / `fps` are not bounded.
    """

    clip_len: int
    max_frames: int | None
    clip_fps: int | float
    decode_mode: str
    max_fps: int | float | None


def _is_source(video) -> bool:
    """A path, URL, bytes or file object (to be decoded), as opposed to decoded frames."""
    return isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or (
        hasattr(video, "read") and not isinstance(video, (np.ndarray, torch.Tensor))
    )


def _is_frame(item) -> bool:
    """One decoded frame: a PIL image or a 3-D array / tensor."""
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return item.ndim == 3
    return hasattr(item, "getbands") and hasattr(item, "size")  # PIL.Image without importing PIL


_FORMS = (
    "a path or URL, the file's bytes, an open binary file object, an array of frames (T, H, W, C) or (T, C, H, W), "
    "a list of frames (PIL images or (H, W, C) arrays), or a list of those, one per video"
)


def make_video_list(videos) -> list:
    """One entry per video - a source to decode or a 4-D array / tensor of frames - from any documented input form
    (module docstring). Nested lists (one per chat conversation) are flattened; a list of frames is one video."""
    if _is_source(videos):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim == 5:
            return list(videos)
        what = "one frame" if videos.ndim == 3 else "not a video"
        raise ValueError(
            f"a video given as an array must have 4 dimensions (frames, height, width, channels) or (frames, channels, "
            f"height, width), or 5 for a batch of videos; got shape {tuple(videos.shape)} ({what}). Pass {_FORMS}."
        )
    if isinstance(videos, (list, tuple)):
        if not videos:
            raise ValueError(f"got an empty list of videos; pass {_FORMS}")
        if all(_is_frame(item) for item in videos):  # one video as a list of frames
            if all(isinstance(item, torch.Tensor) for item in videos):
                return [torch.stack(list(videos))]
            frames = [np.asarray(item) for item in videos]
            if len({f.shape for f in frames}) > 1:
                raise ValueError(f"the frames of one video have different shapes {sorted({f.shape for f in frames})}")
            return [np.stack(frames)]
        out = []
        for item in videos:
            out.extend(make_video_list(item))
        return out
    raise ValueError(f"unsupported video input of type {type(videos).__name__}; pass {_FORMS}")


def _per_frame(metadata, field: str, count: int) -> np.ndarray | None:
    """`metadata.<field>` as an array when it has exactly one entry per passed frame, else None."""
    try:
        values = getattr(metadata, field, None)
    except (TypeError, ValueError, AttributeError):  # transformers' `timestamps` property needs fps and indices
        return None
    if values is None or len(values) != count:
        return None
    return np.asarray(values)


def _decode_size(size, do_resize) -> tuple[int, int] | None:
    """(height, width) to let the decoder resize to, when the target is a fixed size."""
    if not do_resize or size is None:
        return None
    if isinstance(size, int):
        return size, size
    height = getattr(size, "height", None) if not isinstance(size, dict) else size.get("height")
    width = getattr(size, "width", None) if not isinstance(size, dict) else size.get("width")
    if height and width:
        return int(height), int(width)
    return None


class LiteFrameVideoProcessor(BaseVideoProcessor):
    r"""
    Samples LiteFrame's 4-frame clips (docs/design.md) with LiteFrame's own PyAV decoder, resizes to 448x448 (bicubic)
    and normalises with InternViT's ImageNet mean/std. See the module docstring for `num_frames`/`fps` precedence.
    """

    resample = 3  # PILImageResampling.BICUBIC
    size = {"height": 448, "width": 448}
    image_mean = INTERNVIT_MEAN
    image_std = INTERNVIT_STD
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_center_crop = False
    do_sample_frames = True
    num_frames = 32
    fps = None
    clip_len = CLIP_LEN
    max_frames = MAX_FRAMES
    clip_fps = CLIP_FPS
    decode_mode = "exact"
    max_fps = MAX_CLIP_FPS  # bound of the default frame count (module docstring)
    return_metadata = False
    valid_kwargs = LiteFrameVideoProcessorKwargs
    model_input_names = ["pixel_values_videos", "video_num_frames"]

    def __init__(self, **kwargs: Unpack[LiteFrameVideoProcessorKwargs]):
        num_frames, fps = kwargs.get("num_frames"), kwargs.get("fps")
        if num_frames is not None and fps is not None:
            raise ValueError(
                f"`num_frames` ({num_frames}) and `fps` ({fps}) are mutually exclusive; set one default (the other "
                "becomes None)"
            )
        super().__init__(**kwargs)
        if fps is not None:
            self.num_frames = None  # an explicit fps default replaces the class default num_frames
        self._check_clip_settings(self.clip_len, self.max_frames, self.clip_fps, self.decode_mode)

    @staticmethod
    def _check_clip_settings(clip_len, max_frames, clip_fps, decode_mode):
        if not isinstance(clip_len, int) or clip_len < 1:
            raise ValueError(f"`clip_len` must be a positive integer, got {clip_len!r}")
        if max_frames is not None and max_frames < clip_len:
            raise ValueError(f"`max_frames` ({max_frames}) must be at least `clip_len` ({clip_len})")
        if not MIN_CLIP_FPS <= float(clip_fps) <= MAX_CLIP_FPS:
            raise ValueError(f"`clip_fps` must be within [{MIN_CLIP_FPS:g}, {MAX_CLIP_FPS:g}], got {clip_fps}")
        if decode_mode not in DECODE_MODES:
            raise ValueError(f"`decode_mode` must be one of {DECODE_MODES}, got {decode_mode!r}")

    @classmethod
    def from_dict(cls, video_processor_dict, **kwargs):
        # An override of one of num_frames / fps replaces the saved default of the other.
        video_processor_dict = dict(video_processor_dict)
        if kwargs.get("fps") is not None and kwargs.get("num_frames") is None:
            video_processor_dict["num_frames"] = None
            kwargs.pop("num_frames", None)
        elif kwargs.get("num_frames") is not None and kwargs.get("fps") is None:
            video_processor_dict["fps"] = None
            kwargs.pop("fps", None)
        return super().from_dict(video_processor_dict, **kwargs)

    # ------------------------------------------------------------------------------------------------------------
    # num_frames / fps resolution
    # ------------------------------------------------------------------------------------------------------------

    def resolve_sampling(self, num_frames=None, fps=None) -> dict:
        """{"num_frames": n, "fps": None} or {"num_frames": None, "fps": f}: explicit argument > instance default."""
        if num_frames is not None and fps is not None:
            raise ValueError(
                f"`num_frames` ({num_frames}) and `fps` ({fps}) were both given; they are mutually exclusive"
            )
        if num_frames is not None:
            return {"num_frames": num_frames, "fps": None}
        if fps is not None:
            return {"num_frames": None, "fps": fps}
        if self.num_frames is not None and self.fps is not None:
            raise ValueError(
                f"this processor has both `num_frames={self.num_frames}` and `fps={self.fps}` set as defaults; set "
                "one of them to None"
            )
        if self.num_frames is None and self.fps is None:
            return {"num_frames": type(self).num_frames, "fps": None}
        return {"num_frames": self.num_frames, "fps": self.fps}

    def preprocess(self, videos, **kwargs: Unpack[LiteFrameVideoProcessorKwargs]) -> BatchFeature:
        explicit = kwargs.get("num_frames") is not None or kwargs.get("fps") is not None
        kwargs.update(self.resolve_sampling(kwargs.get("num_frames"), kwargs.get("fps")))
        # the training-range bound applies to the default frame count only; an explicit request is taken as given
        kwargs["max_fps"] = None if explicit else kwargs.get("max_fps", self.max_fps)
        self._check_clip_settings(
            kwargs.get("clip_len") or self.clip_len,
            kwargs.get("max_frames") or self.max_frames,
            kwargs.get("clip_fps") or self.clip_fps,
            kwargs.get("decode_mode") or self.decode_mode,
        )
        return super().preprocess(videos, **kwargs)

    # ------------------------------------------------------------------------------------------------------------
    # Sampling and decoding
    # ------------------------------------------------------------------------------------------------------------

    def _sampling_args(
        self, num_frames=None, fps=None, clip_len=None, max_frames=None, clip_fps=None, max_fps=None, **_
    ):
        resolved = self.resolve_sampling(num_frames, fps)
        args = {
            **resolved,
            "clip_len": int(clip_len or self.clip_len),
            "max_frames": max_frames if max_frames is not None else self.max_frames,
            "clip_fps": float(clip_fps or self.clip_fps),
            # set for the default frame count only (preprocess): the planner keeps frames >= 1/max_fps s apart
            "max_fps": float(max_fps) if max_fps and resolved["num_frames"] is not None else None,
        }
        return args

    def sample_frames(
        self, metadata, num_frames=None, fps=None, clip_len=None, max_frames=None, clip_fps=None, max_fps=None,
        **kwargs,
    ):
        """Frame indices for already-decoded frames, by `plan_clip_frames` (the one clip planner).

        With a known frame rate (`metadata.fps`) the plan is made in seconds; otherwise the frames are taken as one
        uniform sequence (fewer frames than asked -> repeated indices).
        """
        args = self._sampling_args(num_frames, fps, clip_len, max_frames, clip_fps, max_fps)
        total = int(metadata.total_num_frames)
        if metadata.fps:
            plan = plan_clip_frames(
                total / metadata.fps, args["num_frames"], args["fps"], clip_len=args["clip_len"],
                max_frames=args["max_frames"], clip_fps=args["clip_fps"], video_fps=metadata.fps,
                total_num_frames=total, max_fps=args["max_fps"],
            )
            return plan.frame_indices
        if args["fps"] is not None:
            raise ValueError(
                "sampling by `fps` needs the video's frame rate: pass `video_metadata` with `fps` for decoded frames"
            )
        plan = plan_clip_frames(float(total), args["num_frames"], None, clip_len=args["clip_len"],
                                max_frames=args["max_frames"], clip_fps=MIN_CLIP_FPS)
        return uniform_indices(total, plan.num_frames)

    def _is_own_sampler(self, sample_indices_fn) -> bool:
        return (
            isinstance(sample_indices_fn, functools.partial)
            and getattr(sample_indices_fn.func, "__self__", None) is self
            and getattr(sample_indices_fn.func, "__name__", "") == "sample_frames"
        )

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        """Decode paths / URLs / bytes with LiteFrame's PyAV decoder (not torchcodec), following the clip-sampling plan.

        Returns (frames, metadata) for one source, or (list of frames, list of metadata) for a list.
        """
        if isinstance(video_url_or_urls, (list, tuple)):
            pairs = [self.fetch_videos(v, sample_indices_fn=sample_indices_fn) for v in video_url_or_urls]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        source = video_url_or_urls
        params = dict(sample_indices_fn.keywords) if self._is_own_sampler(sample_indices_fn) else {}
        size = _decode_size(params.get("size", self.size), params.get("do_resize", self.do_resize))
        resample = params.get("resample", self.resample)
        mode = params.get("decode_mode") or self.decode_mode
        if sample_indices_fn is None or params:
            if sample_indices_fn is None and not params:
                # do_sample_frames=False: every frame (kept at output size only)
                info = probe_video(source)
                result = decode_frames(source, indices=np.arange(info.total_num_frames), size=size,
                                       interpolation=resample, mode="exact", return_tensors="pt")
            else:
                args = self._sampling_args(**params)
                result = load_video_clips(
                    source, args["num_frames"], args["fps"], clip_len=args["clip_len"],
                    max_frames=args["max_frames"], clip_fps=args["clip_fps"], size=size, mode=mode,
                    interpolation=resample, return_tensors="pt", max_fps=args["max_fps"],
                )
        else:
            # a caller-supplied index sampler: give it transformers-style metadata, decode the indices it returns
            info = probe_video(source)
            meta = LiteFrameVideoMetadata(
                total_num_frames=info.total_num_frames, fps=info.fps, width=info.width, height=info.height,
                duration=info.duration, video_backend="liteframe-pyav",
            )
            indices = np.asarray(sample_indices_fn(metadata=meta), dtype=np.int64)
            result = decode_frames(source, indices=indices, size=size, interpolation=resample, mode=mode,
                                   return_tensors="pt")
        result.metadata.clip_len = self.clip_len if not params else self._sampling_args(**params)["clip_len"]
        return result.frames, result.metadata

    def _decode_and_sample_videos(self, videos, video_metadata, do_sample_frames=None, sample_indices_fn=None):
        videos = make_video_list(videos)  # (transformers' make_batched_videos drops bytes and file objects)
        params = dict(sample_indices_fn.keywords) if self._is_own_sampler(sample_indices_fn) else {}
        clip_len = int(params.get("clip_len") or self.clip_len)
        if all(_is_source(v) for v in videos):
            frames, metadata = self.fetch_videos(videos, sample_indices_fn=sample_indices_fn)
        else:
            if any(_is_source(v) for v in videos):
                raise ValueError("mix of file paths and decoded frames in one batch; pass one kind")
            metadata_in = make_batched_metadata(videos, video_metadata=video_metadata)
            frames, metadata = [], []
            for video, meta in zip(videos, metadata_in):
                video = video if isinstance(video, torch.Tensor) else torch.from_numpy(np.asarray(video))
                total = int(video.shape[0])
                fps = meta.fps
                if do_sample_frames and sample_indices_fn is not None:
                    indices = np.asarray(sample_indices_fn(metadata=meta), dtype=np.int64)
                else:
                    indices = np.arange(total, dtype=np.int64)
                indices = np.minimum(indices, total - 1)
                is_repeat = np.zeros(len(indices), dtype=bool)
                is_repeat[1:] = indices[1:] == indices[:-1]
                frames.append(video[torch.from_numpy(indices)])
                # Frames sampled earlier (e.g. by our decoder) keep their place in the source video: metadata with one
                # index / timestamp per passed frame maps through; otherwise frame i of the array is frame i at fps.
                source_indices, source_times = _per_frame(meta, "frames_indices", total), _per_frame(meta, "timestamps", total)
                video_indices = source_indices[indices] if source_indices is not None else indices
                if source_times is not None:
                    times = source_times[indices].tolist()
                else:
                    times = (video_indices / fps).tolist() if fps else None
                metadata.append(
                    LiteFrameVideoMetadata(
                        total_num_frames=int(meta.total_num_frames or total), fps=fps, width=meta.width,
                        height=meta.height, duration=meta.duration or (total / fps if fps else None),
                        video_backend=meta.video_backend or "array", frames_indices=video_indices.tolist(),
                        frame_timestamps=times, is_repeat=is_repeat.tolist(), decode_mode="array", clip_len=clip_len,
                    )
                )
        # pad every video to whole clips by repeating its last frame (recorded in the metadata)
        out_frames = []
        for video, meta in zip(frames, metadata):
            video, pad = pad_to_clips(video, clip_len)
            if pad:
                meta.frames_indices = list(meta.frames_indices) + [meta.frames_indices[-1]] * pad
                if meta.frame_timestamps is not None:
                    meta.frame_timestamps = list(meta.frame_timestamps) + [meta.frame_timestamps[-1]] * pad
                meta.is_repeat = list(meta.is_repeat or [False] * (len(meta.frames_indices) - pad)) + [True] * pad
            meta.clip_len = clip_len
            out_frames.append(video)
        return out_frames, metadata

    # ------------------------------------------------------------------------------------------------------------
    # Pixels
    # ------------------------------------------------------------------------------------------------------------

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size,
        resample,
        do_center_crop: bool,
        crop_size,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        clip_len: int | None = None,
        return_tensors=None,
        **kwargs,
    ) -> BatchFeature:
        clip_len = int(clip_len or self.clip_len)
        processed = []
        for video in videos:  # (T, C, H, W) uint8
            video, _ = pad_to_clips(video, clip_len)
            if do_resize:
                target = _decode_size(size, True)
                # fixed sizes: the decoder's resize, so arrays and files give the same pixels
                if target is None:
                    video = self.resize(video, size=size, resample=resample)
                else:
                    video = resize_frames(video, target, resample)
            if do_center_crop:
                video = self.center_crop(video, crop_size)
            video = self.rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            processed.append(video)
        num_frames = [int(v.shape[0]) for v in processed]
        if return_tensors is not None and processed:
            if len({tuple(v.shape[1:]) for v in processed}) > 1:
                raise ValueError(
                    "videos of different frame sizes cannot be batched; set do_resize=True with a fixed `size`"
                )
            longest = max(num_frames)
            batch = processed[0].new_zeros((len(processed), longest, *processed[0].shape[1:]))
            for i, v in enumerate(processed):
                batch[i, : v.shape[0]] = v
            data = {"pixel_values_videos": batch, "video_num_frames": torch.tensor(num_frames, dtype=torch.long)}
        else:
            data = {"pixel_values_videos": processed, "video_num_frames": num_frames}
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------------------------------------------------
    # Helpers for the processor's prompt (one line per clip with its time span)
    # ------------------------------------------------------------------------------------------------------------

    def num_clips(self, num_frames: int) -> int:
        """Clips for `num_frames` sampled frames (after padding to whole clips)."""
        return -(-int(num_frames) // self.clip_len)

    def clip_spans(self, metadata) -> list[tuple[float, float]]:
        """(first, last) frame time in seconds of each clip of a processed video (from its `video_metadata`)."""
        clip_len = getattr(metadata, "clip_len", None) or self.clip_len
        timestamps = metadata.timestamps if not isinstance(metadata, (list, tuple, np.ndarray)) else metadata
        return clip_spans(timestamps, clip_len)

    def plan(self, duration: float, num_frames=None, fps=None):
        """The clip-sampling plan this processor would use for a video of `duration` seconds (with neither
        `num_frames` nor `fps`: the default count, bounded by `max_fps`)."""
        default = num_frames is None and fps is None
        args = self._sampling_args(num_frames, fps, max_fps=self.max_fps if default else None)
        return plan_clip_frames(duration, args["num_frames"], args["fps"], clip_len=args["clip_len"],
                                max_frames=args["max_frames"], clip_fps=args["clip_fps"], max_fps=args["max_fps"])


__all__ = ["LiteFrameVideoProcessor", "LiteFrameVideoProcessorKwargs", "make_video_list"]
