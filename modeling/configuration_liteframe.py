# Copyright 2026 The LiteFrame authors. Licensed under the Apache License, Version 2.0.
"""LiteFrame configurations: the config is the architecture.

Data flow: video file -> processor (4-frame clips) -> LiteFrameVisionModel (compresses tokens inside the
network) -> pixel shuffle + projector -> causal LM. `LiteFrameVisionConfig` says everything the encoder
needs; `LiteFrameConfig` composes it with the projector and the LLM. Named variants (the paper's table
and CPU-sized models) are data in `VISION_VARIANTS`, not code paths.

This file is Hub remote code: absolute `transformers` imports only, no import of `liteframe_hf`.
"""

import math
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

# A per-frame DINOv2-S/14 at 224 px: the vision tower of the micro-scale teacher VLM (weights copied exactly
# from DINOv2, final LayerNorm included, so it sees the features LiteFrame-micro's CTD targets are made of).
_DINOV2_S = {
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
    "layer_scale_init_value": 1.0,
    "image_size": 224,
    "temporal_mixer": "none",
    "downsample_layers": {},
    "out_hidden_size": None,
    "post_layernorm": True,
}

# Named encoder variants: overrides of the paper-default LiteFrameVisionConfig (ViT-B/14, 448 px, DWTempConv).
# The first five are the paper's architecture ablation (Table: latency / TFLOPs / params at 256 frames).
VISION_VARIANTS: dict[str, dict] = {
    # DWTempConv = LiteFrame-B: depth-wise temporal convs + strided depth-wise Conv3d token merging.
    "liteframe-b": {},
    "dwtempconv": {},
    # ViT-Base-12L without compression: a per-frame image ViT (256 tokens/frame, no head).
    "vit-b-12l": {"temporal_mixer": "none", "downsample_layers": {}, "out_hidden_size": None},
    # Same compression schedule, other ways of mixing time (our reading of the paper's ablation rows).
    # SpatioTempAttn keeps the depth-wise convs and attends jointly over the clip: this is the reading that
    # reproduces its 87.15M parameters and 17.92 TFLOPs exactly.
    "tempattn": {"temporal_mixer": "attn"},
    "spatiotempattn": {"attention_scope": "clip"},
    "tempconv": {"temporal_mixer": "conv"},
    # CPU-sized student for a DINOv2-S/14 teacher (width 384): half width, half depth, 224 px.
    "liteframe-micro": {
        "hidden_size": 192,
        "num_hidden_layers": 6,
        "num_attention_heads": 3,
        "intermediate_size": 768,
        "image_size": 224,
        "downsample_layers": {2: (2, 2, 2), 4: (2, 1, 1)},
        "out_hidden_size": 384,
    },
    # liteframe-micro's compression at DINOv2-S's full width: its first six blocks (copied with layer map "first", so
    # the block before the first merger is DINOv2-S's own), 11.0M parameters. At half width, liteframe-micro's tokens
    # do not carry which object a clip shows (docs/reproduce_micro.md, "Recognition"). The first merger comes after
    # block 1, not 2: a second full-width block on every frame cost more than the teacher VLM at 1/8 the frames.
    "liteframe-micro-s": {
        **_DINOV2_S,
        "num_hidden_layers": 6,
        "temporal_mixer": "dwconv",
        "downsample_layers": {1: (2, 2, 2), 4: (2, 1, 1)},
    },
    # Teacher VLM vision tower at micro scale: 256 tokens per frame, 64 LLM tokens per frame after pixel shuffle.
    "dinov2-s": _DINOV2_S,
    # The same tower with post-hoc WAP over each clip (training-free): 4 LLM tokens per frame (16 per clip).
    "dinov2-s-wap": {**_DINOV2_S, "output_wap_block": (4, 2, 2)},
    # Smallest model that still exercises every stage; for tests.
    "liteframe-tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 56,
        "patch_size": 7,
        "downsample_layers": {1: (2, 2, 2), 2: (2, 1, 1)},
        "out_hidden_size": 48,
    },
}


@strict
class LiteFrameVisionConfig(PreTrainedConfig):
    r"""
    The LiteFrame video encoder: InternViT-style blocks over 4-frame clips, a temporal mixer after every
    block, and strided depth-wise Conv3d token merging after selected blocks.

    Args:
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: ViT width/depth (ViT-B: 768/12/12/3072).
        hidden_act, layer_norm_eps, attention_bias, layer_scale_init_value: InternViT block details.
        image_size, patch_size, num_channels: square input frames, square patches.
        clip_len: frames per clip; clips are encoded independently (the batch dimension).
        downsample_layers: `{block_index: (t, h, w)}`; after block `block_index` (1-based) a depth-wise Conv3d
            with kernel = stride = (t, h, w) merges patch tokens, and CLS tokens of merged frames are averaged.
        temporal_mixer: residual branch after every block: `"dwconv"` (paper), `"conv"` (dense temporal conv),
            `"attn"` (temporal self-attention per token position), `"none"`.
        attention_scope: `"frame"` (each frame attends over its own tokens, paper) or `"clip"` (joint
            spatio-temporal attention over all tokens of the clip).
        temporal_kernel_size: kernel of the temporal convs.
        out_hidden_size: width of the output head (the teacher's width, 1024 for InternViT-300M);
            `None` (or 0) for no head.
        post_layernorm: a LayerNorm over all tokens after the last block (DINOv2 has one; the paper's
            LiteFrame has none).
        output_wap_block: `(t, h, w)` to WAP-pool the output grid of each clip before the head (post-hoc WAP
            as a configuration: `(4, 2, 2)` on a per-frame ViT gives 16x fewer tokens, training-free); `None`
            for no pooling. The CLS tokens of the pooled frames are averaged.
        output_wap_weighting: `"cls_dot"` (each token scored against the CLS token of its own frame, as in the
            CTD targets) or `"mean"` (plain average pooling); only with `output_wap_block`.
    """

    model_type = "liteframe_vision"
    base_config_key = "vision_config"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-6
    attention_bias: bool = True
    attention_dropout: float | int = 0.0
    layer_scale_init_value: float = 0.1
    initializer_range: float = 0.02
    image_size: int = 448
    patch_size: int = 14
    num_channels: int = 3
    clip_len: int = 4
    # JSON gives string keys and list values; `__post_init__` turns them back into ints and tuples.
    downsample_layers: dict[int | str, list[int] | tuple[int, ...]] | None = None
    temporal_mixer: Literal["dwconv", "conv", "attn", "none"] = "dwconv"
    attention_scope: Literal["frame", "clip"] = "frame"
    temporal_kernel_size: int = 3
    out_hidden_size: int | None = 1024
    post_layernorm: bool = False
    output_wap_block: list[int] | tuple[int, ...] | None = None
    output_wap_weighting: Literal["cls_dot", "mean"] = "cls_dot"

    def __post_init__(self, **kwargs):
        if self.downsample_layers is None:
            self.downsample_layers = {4: (2, 2, 2), 8: (2, 1, 1)}
        # JSON turns int keys into strings and tuples into lists; normalise once here.
        self.downsample_layers = {int(k): tuple(int(f) for f in v) for k, v in self.downsample_layers.items()}
        if self.output_wap_block is not None:
            self.output_wap_block = tuple(self.output_wap_block)
        super().__post_init__(**kwargs)
        self.validate_architecture()

    @classmethod
    def from_variant(cls, name: str, **overrides) -> "LiteFrameVisionConfig":
        """A named variant (`VISION_VARIANTS`), optionally with field overrides."""
        if name not in VISION_VARIANTS:
            raise ValueError(f"Unknown LiteFrame variant {name!r}; choose one of {sorted(VISION_VARIANTS)}.")
        return cls(**{**VISION_VARIANTS[name], **overrides})

    def validate_architecture(self) -> None:
        def fail(message: str):
            raise ValueError(f"Invalid LiteFrameVisionConfig: {message}")

        if self.num_hidden_layers < 1:
            fail(f"num_hidden_layers={self.num_hidden_layers} must be at least 1.")
        if self.out_hidden_size is not None and self.out_hidden_size < 0:
            fail(f"out_hidden_size={self.out_hidden_size} must be positive, or None / 0 for no head.")
        if self.hidden_size % self.num_attention_heads:
            fail(f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}.")
        if self.temporal_kernel_size % 2 == 0:
            fail(f"temporal_kernel_size={self.temporal_kernel_size} must be odd so the conv keeps the clip length.")
        if self.image_size % self.patch_size:
            fail(f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}.")
        for layer, factors in self.downsample_layers.items():
            if not 1 <= layer < self.num_hidden_layers:
                fail(f"downsample layer {layer} must be in [1, {self.num_hidden_layers - 1}] (after a block, before the last).")
            if len(factors) != 3 or min(factors) < 1:
                fail(f"downsample factors {factors} at layer {layer} must be three positive ints (t, h, w).")
        t, h, w = self.merge_factors()
        grid = self.image_size // self.patch_size
        if self.clip_len % t:
            fail(f"clip_len={self.clip_len} is not divisible by the total temporal downsampling {t}.")
        if grid % h or grid % w:
            fail(
                f"the patch grid {grid}x{grid} (image_size {self.image_size} / patch_size {self.patch_size}) is not "
                f"divisible by the total spatial downsampling {h}x{w}; pick an image_size that is a multiple of "
                f"{self.patch_size * math.lcm(h, w)}."
            )
        if self.output_wap_block is None:
            if self.output_wap_weighting != "cls_dot":
                fail(f"output_wap_weighting={self.output_wap_weighting!r} has no effect without output_wap_block; "
                     f"set output_wap_block=(t, h, w) to pool the output, or leave the weighting at its default.")
            return
        block = self.output_wap_block
        if len(block) != 3 or min(block) < 1:
            fail(f"output_wap_block={block!r} must be three positive ints (t, h, w), e.g. (4, 2, 2).")
        merged = (self.clip_len // t, grid // h, grid // w)
        if any(size % b for size, b in zip(merged, block)):
            fail(
                f"output_wap_block={block} does not tile the encoder's (T', H', W')={merged} grid per clip (after "
                f"token merging {(t, h, w)}); each factor must divide its axis, e.g. output_wap_block="
                f"({merged[0]}, 2, 2) when H' and W' are even."
            )

    def merge_factors(self, upto_layer: int | None = None) -> tuple[int, int, int]:
        """Product of the (t, h, w) merge factors applied after blocks <= `upto_layer` (all by default)."""
        t = h = w = 1
        for layer, (ft, fh, fw) in self.downsample_layers.items():
            if upto_layer is None or layer <= upto_layer:
                t, h, w = t * ft, h * fh, w * fw
        return t, h, w

    def reduction_factors(self) -> tuple[int, int, int]:
        """Total (t, h, w) token reduction from patch grid to output: token merging times output WAP."""
        t, h, w = self.merge_factors()
        bt, bh, bw = self.output_wap_block or (1, 1, 1)
        return t * bt, h * bh, w * bw

    def output_grid(self, image_size: int | None = None) -> tuple[int, int, int]:
        """(T', H', W') of the encoder output for one clip: (1, 16, 16) for LiteFrame-B at 448 px."""
        grid = (image_size or self.image_size) // self.patch_size
        t, h, w = self.reduction_factors()
        return self.clip_len // t, grid // h, grid // w

    @property
    def output_size(self) -> int:
        return self.out_hidden_size or self.hidden_size


@strict
class LiteFrameConfig(PreTrainedConfig):
    r"""
    LiteFrame video LLM: `LiteFrameVisionModel` -> pixel shuffle -> InternVL projector
    (LayerNorm -> Linear -> GELU -> Linear) -> causal LM from `text_config` (Qwen2.5-7B sizes by default, so
    liteframe-8b = InternVL3-8B with the vision tower swapped).

    Args:
        vision_config: `LiteFrameVisionConfig` or its dict.
        text_config: any decoder config (dict with `model_type`, resolved through `AutoConfig`).
        video_token_id: id of the per-token placeholder (InternVL's `<IMG_CONTEXT>`); the name is what
            transformers' `generate` relies on.
        pixel_shuffle_ratio: InternVL's `downsample_ratio`; 0.5 folds 2x2 neighbouring tokens into channels.
        projector_hidden_act: activation inside the projector.
    """

    model_type = "liteframe"
    sub_configs_defaults = {
        "vision_config": LiteFrameVisionConfig,
        "text_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="qwen2",
            # Qwen2.5-7B-Instruct, the LLM of InternVL3-8B (vocab includes InternVL's special tokens).
            init_kwargs={
                "hidden_size": 3584,
                "intermediate_size": 18944,
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
                "vocab_size": 151674,
                "max_position_embeddings": 32768,
                "rms_norm_eps": 1e-6,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
                "tie_word_embeddings": False,
            },
        ),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    video_token_id: int = 151667
    pixel_shuffle_ratio: float = 0.5
    projector_hidden_act: str = "gelu"
    tie_word_embeddings: bool | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # transformers reads tying from the top-level config; mirror the LLM's choice unless set explicitly.
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))
        self.validate_architecture()

    def validate_architecture(self) -> None:
        inverse = 1.0 / self.pixel_shuffle_ratio
        if not 0 < self.pixel_shuffle_ratio <= 1 or abs(inverse - round(inverse)) > 1e-6:
            raise ValueError(f"pixel_shuffle_ratio={self.pixel_shuffle_ratio} must be 1/k for an integer k (InternVL: 0.5).")
        _, h, w = self.vision_config.output_grid()
        k = self.pixel_shuffle_factor
        if h % k or w % k:
            raise ValueError(
                f"Invalid LiteFrameConfig: the encoder's output grid {h}x{w} is not divisible by the pixel-shuffle "
                f"factor {k} (pixel_shuffle_ratio={self.pixel_shuffle_ratio}); change vision_config.image_size or "
                f"its downsample_layers."
            )

    @property
    def pixel_shuffle_factor(self) -> int:
        return round(1.0 / self.pixel_shuffle_ratio)

    @property
    def projector_input_size(self) -> int:
        return self.vision_config.output_size * self.pixel_shuffle_factor**2

    def llm_token_grid(self, image_size: int | None = None) -> tuple[int, int, int]:
        """(T', H'/k, W'/k) of one clip's LLM tokens, in their order (time, row, column): the encoder's output grid
        after pixel shuffle. The one place this is computed."""
        t, h, w = self.vision_config.output_grid(image_size)
        k = self.pixel_shuffle_factor
        return t, h // k, w // k

    def tokens_per_clip(self, image_size: int | None = None) -> int:
        """LLM tokens per clip: 64 for LiteFrame-B at 448 px (= 16 per frame)."""
        t, h, w = self.llm_token_grid(image_size)
        return t * h * w


__all__ = ["LiteFrameVisionConfig", "LiteFrameConfig", "VISION_VARIANTS"]
