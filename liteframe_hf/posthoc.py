"""Post-hoc WAP for a stock InternVL3: training-free 16x fewer visual tokens, no LiteFrame weights needed.

Where it sits: video frames -> InternVL's own vision tower (every frame, as usual) -> **WAP over (4, 2, 2)
blocks of each 4-frame clip** (`liteframe_hf.wap`, CLS-query weighting) -> InternVL's pixel shuffle and
projector -> the LLM. The paper reports this beating average/max pooling, frame subsampling, ToMe, PruMerge
and FastVID at 16x on a frozen InternVL3 (docs/design.md, "WAP").

Token layout: at 448 px InternViT gives 32x32 patches per frame; a clip (4 frames) pools to 1x16x16, pixel
shuffle (0.5) folds that to 8x8 = **64 LLM tokens per clip = 16 per frame** (stock InternVL: 256 per frame).
The video part of the prompt is LiteFrame's clip layout, written by `video_prompt` / `clip_prompt` (the
project's one place for it): each clip's time span in whole seconds, then its placeholders:

    0-2s<img><IMG_CONTEXT> x 64</img>2-4s<img><IMG_CONTEXT> x 64</img>...
    <question>

The compressed features reach `generate` as InternVL's pre-encoded `mm_encoder_outputs={"image":
BaseModelOutputWithPooling(pooler_output=(1, tokens, d_llm))}`: transformers scatters them into the
`<IMG_CONTEXT>` positions at prefill, drops them afterwards, and expands them for beam search.

    from liteframe_hf.posthoc import posthoc_generate
    model = InternVLForConditionalGeneration.from_pretrained("OpenGVLab/InternVL3-8B-hf", dtype=torch.bfloat16)
    processor = AutoProcessor.from_pretrained("OpenGVLab/InternVL3-8B-hf")
    print(posthoc_generate(model, processor, "video.mp4", "What happens?", num_frames=64, max_new_tokens=64))
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .modeling.processing_liteframe import CHAT_TEMPLATE, CLIP_CONTEXT, CLIP_END, CLIP_START, video_prompt
from .modeling.video_decoding_liteframe import pad_to_clips, resize_frames
from .modeling.video_processing_liteframe import INTERNVIT_MEAN, INTERNVIT_STD
from .teachers import Teacher, frozen_borrow
from .wap import check_block

__all__ = [
    "compress_internvl_video_features",
    "posthoc_tokens_per_clip",
    "build_posthoc_prompt",
    "internvl_frame_prompt",
    "posthoc_inputs",
    "posthoc_generate",
]

IMAGENET_MEAN, IMAGENET_STD = tuple(INTERNVIT_MEAN), tuple(INTERNVIT_STD)  # InternViT and DINOv2 share them


def _internvl_base(model: nn.Module) -> nn.Module:
    """The InternVLModel (vision tower + projector + pixel shuffle) inside an InternVL model."""
    base = getattr(model, "model", model)
    if not all(hasattr(base, name) for name in ("vision_tower", "multi_modal_projector", "pixel_shuffle")):
        raise TypeError(
            f"{type(model).__name__} is not a transformers InternVL model (InternVLForConditionalGeneration / "
            "InternVLModel with vision_tower, multi_modal_projector and pixel_shuffle)"
        )
    return base


def _block(block: Sequence[int] | None, clip_len: int) -> tuple[int, int, int]:
    return check_block(block if block is not None else (clip_len, 2, 2))


def posthoc_tokens_per_clip(config, image_size: int | None = None, clip_len: int = 4, block: Sequence[int] | None = None) -> int:
    """LLM tokens per clip after post-hoc WAP: 64 for InternVL3 at 448 px with (4, 2, 2) blocks (16 per frame)."""
    vision = config.vision_config
    patch = vision.patch_size[0] if isinstance(vision.patch_size, (list, tuple)) else vision.patch_size
    size = image_size or (vision.image_size[0] if isinstance(vision.image_size, (list, tuple)) else vision.image_size)
    t, h, w = _block(block, clip_len)
    k = round(1 / config.downsample_ratio)
    grid = size // patch
    return (clip_len // t) * (grid // h // k) * (grid // w // k)


@torch.no_grad()
def compress_internvl_video_features(
    model: nn.Module,
    pixel_values: torch.Tensor,
    clip_len: int = 4,
    weighting: str = "cls_dot",
    block: Sequence[int] | None = None,
    chunk_size: int | None = 8,
) -> torch.Tensor:
    """Post-hoc WAP features of a video for a stock InternVL model.

    Args:
        model: `InternVLForConditionalGeneration` or `InternVLModel`.
        pixel_values: (frames, 3, H, W), normalised as InternVL's processor does; `frames` a multiple of `clip_len`.
        clip_len: frames per clip (consecutive frames are pooled together).
        weighting: WAP weighting: "cls_dot" (default), "cls_attn" or "mean".
        block: WAP block (t, h, w); default (clip_len, 2, 2) = 16x fewer tokens with clip_len 4.
        chunk_size: clips per vision-tower pass (bounds memory; results do not depend on it).

    Returns:
        (tokens, d_llm) projected features, clip after clip, `posthoc_tokens_per_clip` tokens per clip
        (row-major inside a clip), in the projector's dtype.
    """
    base = _internvl_base(model)
    config = base.config
    if pixel_values.ndim != 4:
        raise ValueError(f"pixel_values must be (frames, 3, H, W); got {tuple(pixel_values.shape)}")
    frames = pixel_values.shape[0]
    if frames % clip_len:
        raise ValueError(
            f"{frames} frames is not a multiple of clip_len={clip_len}: pad the video by repeating its last frame "
            "(posthoc_inputs / posthoc_generate do this)"
        )
    if config.vision_feature_select_strategy != "default":
        raise ValueError(f"vision_feature_select_strategy={config.vision_feature_select_strategy!r}: post-hoc WAP "
                         "needs InternVL's 'default' strategy (CLS token separate from the patch tokens)")
    layer = config.vision_feature_layer
    if isinstance(layer, (list, tuple)):
        raise ValueError(f"vision_feature_layer={layer}: multi-layer features are not supported by post-hoc WAP")
    tower = base.vision_tower
    param = next(tower.parameters())
    # Teacher holds the one implementation of "ViT -> per-frame CLS + patch grid -> WAP".
    with frozen_borrow(tower):
        teacher = Teacher(tower, weighting=weighting, block=_block(block, clip_len), device=param.device,
                          dtype=param.dtype, chunk_size=chunk_size, feature_layer=None if layer == -1 else int(layer))
        clips = pixel_values.reshape(frames // clip_len, clip_len, *pixel_values.shape[1:])
        pooled = teacher.wap_targets(clips)  # (clips, T', g/h, g/w, D)
    n, t, gh, gw, d = pooled.shape
    grid = pooled.reshape(n * t, gh, gw, d)
    if gh % round(1 / config.downsample_ratio) or gw % round(1 / config.downsample_ratio):
        raise ValueError(f"the pooled grid {gh}x{gw} is not divisible by InternVL's pixel shuffle "
                         f"(downsample_ratio {config.downsample_ratio}); use frames whose patch grid is a multiple of 4")
    shuffled = base.pixel_shuffle(grid, scale_factor=config.downsample_ratio)  # (n*T', gh/2, gw/2, 4D)
    projector_dtype = base.multi_modal_projector.linear_1.weight.dtype
    tokens = base.multi_modal_projector(shuffled.reshape(n * t, -1, shuffled.shape[-1]).to(projector_dtype))
    return tokens.reshape(-1, tokens.shape[-1])  # (clips * tokens_per_clip, d_llm)


def build_posthoc_prompt(num_clips: int, tokens_per_clip: int, spans: Sequence[tuple[float, float]] | None = None) -> str:
    """The video part of the prompt: LiteFrame's `clip_prompt` for every clip (time spans when known)."""
    spans = list(spans) if spans is not None else [None] * num_clips
    if len(spans) != num_clips:
        raise ValueError(f"{len(spans)} clip spans for {num_clips} clips")
    return video_prompt(spans, tokens_per_clip)


def internvl_frame_prompt(num_frames: int, tokens_per_frame: int = 256) -> str:
    """Stock InternVL3's video prompt, the baseline that post-hoc WAP and LiteFrame are compared with: one line per
    frame, ``Frame1: <img>`` + `tokens_per_frame` x ``<IMG_CONTEXT>`` + ``</img>`` (256 at 448 px), as
    transformers' InternVLProcessor writes it. Frames carry an index, no time."""
    if num_frames < 1 or tokens_per_frame < 1:
        raise ValueError(f"need num_frames >= 1 and tokens_per_frame >= 1, got {num_frames} and {tokens_per_frame}")
    frame = f"{CLIP_START}{CLIP_CONTEXT * tokens_per_frame}{CLIP_END}"
    return "\n".join(f"Frame{i + 1}: {frame}" for i in range(num_frames))


def posthoc_inputs(
    model: nn.Module,
    tokenizer_or_processor,
    frames,
    question: str,
    *,
    clip_len: int = 4,
    weighting: str = "cls_dot",
    block: Sequence[int] | None = None,
    num_frames: int = 32,
    timestamps: Sequence[float] | None = None,
    chat_template: str | None = None,
    chunk_size: int | None = 8,
) -> dict:
    """`model.generate(**inputs)`-ready inputs for one video and one question, with post-hoc WAP features.

    frames: a video file path (decoded with LiteFrame's clip sampler, `num_frames` frames); uint8 frames
        (T, H, W, 3) or (T, 3, H, W) (resized and normalised here); or float (T, 3, H, W) already normalised.
        T is padded to a multiple of `clip_len` by repeating the last frame.
    timestamps: seconds per frame, for the clip time spans in the prompt (taken from the decoder for paths).
    chat_template: defaults to LiteFrame's ChatML template (InternVL3 / Qwen2.5 format).

    Returns {"input_ids", "attention_mask", "mm_encoder_outputs"}.
    """
    base = _internvl_base(model)
    tokenizer = getattr(tokenizer_or_processor, "tokenizer", tokenizer_or_processor)
    image_processor = getattr(tokenizer_or_processor, "image_processor", None)
    context_id = tokenizer.convert_tokens_to_ids(CLIP_CONTEXT)
    if context_id != base.config.image_token_id:
        raise ValueError(
            f"the tokenizer's {CLIP_CONTEXT} id is {context_id} but the model's image_token_id is "
            f"{base.config.image_token_id}: use the tokenizer/processor saved with this InternVL checkpoint"
        )
    pixels, timestamps = _prepare_frames(frames, base.config, image_processor, clip_len, num_frames, timestamps)
    device = next(base.parameters()).device
    features = compress_internvl_video_features(model, pixels.to(device), clip_len=clip_len, weighting=weighting,
                                                block=block, chunk_size=chunk_size)
    num_clips = pixels.shape[0] // clip_len
    per_clip = features.shape[0] // num_clips
    spans = None
    if timestamps is not None and len(timestamps) >= pixels.shape[0]:
        spans = [(float(timestamps[i]), float(timestamps[i + clip_len - 1])) for i in range(0, pixels.shape[0], clip_len)]
    video = build_posthoc_prompt(num_clips, per_clip, spans)
    messages = [{"role": "user", "content": f"{video}\n{question}"}]
    text = tokenizer.apply_chat_template(messages, chat_template=chat_template or CHAT_TEMPLATE,
                                         add_generation_prompt=True, tokenize=False)
    encoded = tokenizer(text, return_tensors="pt")
    placeholders = int((encoded["input_ids"] == context_id).sum())
    if placeholders != features.shape[0]:
        raise ValueError(f"the prompt has {placeholders} {CLIP_CONTEXT} tokens for {features.shape[0]} features")
    return {
        "input_ids": encoded["input_ids"].to(device),
        "attention_mask": encoded["attention_mask"].to(device),
        "mm_encoder_outputs": {"image": BaseModelOutputWithPooling(pooler_output=features[None])},  # (1, tokens, D)
    }


def posthoc_generate(model: nn.Module, tokenizer_or_processor, frames, question: str, *, clip_len: int = 4,
                     weighting: str = "cls_dot", block: Sequence[int] | None = None, num_frames: int = 32,
                     timestamps: Sequence[float] | None = None, chat_template: str | None = None,
                     **generate_kwargs) -> str:
    """Answer `question` about a video with a stock InternVL model and post-hoc WAP (16x fewer visual tokens).
    Arguments as in :func:`posthoc_inputs`; the rest go to `model.generate` (e.g. `max_new_tokens`).
    Returns the decoded answer."""
    inputs = posthoc_inputs(model, tokenizer_or_processor, frames, question, clip_len=clip_len, weighting=weighting,
                            block=block, num_frames=num_frames, timestamps=timestamps, chat_template=chat_template)
    generate_kwargs.setdefault("max_new_tokens", 128)
    output = model.generate(**inputs, **generate_kwargs)
    tokenizer = getattr(tokenizer_or_processor, "tokenizer", tokenizer_or_processor)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _prepare_frames(frames, config, image_processor, clip_len: int, num_frames: int, timestamps):
    """(T, 3, S, S) normalised float frames (T a multiple of clip_len) and per-frame timestamps or None."""
    vision = config.vision_config
    size = vision.image_size[0] if isinstance(vision.image_size, (list, tuple)) else vision.image_size
    if isinstance(frames, (str, os.PathLike)):
        from .modeling.video_decoding_liteframe import load_video_clips

        decoded = load_video_clips(frames, num_frames=num_frames, clip_len=clip_len, size=(size, size))
        frames, timestamps = decoded.frames, decoded.timestamps
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4:
        raise ValueError("frames must be a video path or a (T, H, W, 3) / (T, 3, H, W) array or tensor")
    if frames.dtype == torch.uint8:
        if frames.shape[-1] == 3 and frames.shape[1] != 3:
            frames = frames.permute(0, 3, 1, 2)  # (T, 3, H, W)
        pixels = resize_frames(frames, (size, size)).float() / 255
        mean = getattr(image_processor, "image_mean", None) or IMAGENET_MEAN
        std = getattr(image_processor, "image_std", None) or IMAGENET_STD
        pixels = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    elif frames.is_floating_point():
        if frames.shape[1] != 3:
            raise ValueError(f"float frames must be normalised (T, 3, H, W) pixel values; got {tuple(frames.shape)}")
        pixels = frames
    else:
        raise ValueError(f"frames of dtype {frames.dtype}: pass uint8 frames or normalised float pixel values")
    pixels, pad = pad_to_clips(pixels, clip_len)  # as LiteFrame's processor does
    if pad and timestamps is not None:
        timestamps = list(timestamps) + [timestamps[-1]] * pad
    return pixels, timestamps
