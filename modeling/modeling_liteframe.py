"""LiteFrame models: the compact video encoder and the video LLM around it.

Data flow: pixel_values_videos (B, T, 3, H, W) -> 4-frame clips -> LiteFrameVisionModel (InternViT-style
blocks; a temporal mixer after every block; strided depth-wise Conv3d token merging after blocks 4 and 8)
-> (clips, 1, 16, 16, 1024) -> pixel shuffle (0.5) -> projector -> 64 LLM tokens per clip, scattered into
the placeholder positions of the prompt -> causal LM. The micro-scale baselines are configurations of the
same classes: a per-frame DINOv2 tower (no merging, final LayerNorm) and post-hoc WAP on it (output pooling).

Module and parameter names follow transformers' InternViT (`attention.q_proj`, `mlp.fc1`, `lambda_1`, ...)
so a student can be initialised from InternViT weights by slicing, and the projector keeps InternVL's names
so InternVL3 checkpoints load unchanged.

This file is Hub remote code: absolute `transformers` imports, single-dot sibling imports only.
"""


import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    CausalLMOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .version_liteframe import check_transformers_version  # noqa: F401 - importing it checks the version
from .configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig
from .wap_liteframe import cls_dot_weights, pool_blocks


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Reference attention. q/k/v: (B, heads, S, head_dim) -> output (B, S, heads, head_dim)."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class LiteFrameSelfAttention(nn.Module):
    """Multi-head self-attention over a token sequence (B, S, D), through transformers' attention interface.
    Returns (output, attention weights); the weights are None unless the backend computes them (eager)."""

    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scale = self.head_dim**-0.5
        self.is_causal = False
        d = config.hidden_size
        self.q_proj = nn.Linear(d, d, bias=config.attention_bias)
        self.k_proj = nn.Linear(d, d, bias=config.attention_bias)
        self.v_proj = nn.Linear(d, d, bias=config.attention_bias)
        self.projection_layer = nn.Linear(d, d)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, s, d = hidden_states.shape
        shape = (b, s, self.num_heads, self.head_dim)
        q = self.q_proj(hidden_states).view(shape).transpose(1, 2)  # (B, heads, S, hd)
        k = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        out, weights = attention(
            self, q, k, v, None,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scale,
            is_causal=False,
        )
        return self.projection_layer(out.reshape(b, s, d)), weights


class LiteFrameAttention(LiteFrameSelfAttention):
    """The attention of an encoder block (over each frame's tokens, or the clip's): the one whose weights
    `output_attentions` returns. A subclass only so output recording can tell it from a temporal mixer's."""


class LiteFrameMLP(nn.Module):
    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# Temporal mixers are residual blocks across the frames of a clip: forward(x) returns x + mix(x), so the
# depth-wise conv can fold the residual into its own multiply-adds.


class DepthwiseTemporalConv(nn.Module):
    """Residual depth-wise Conv1d over the clip's frames at every token position (the paper's DWTempConv).

    Weights have nn.Conv1d's layout (D, 1, k) but the op is k shifted, per-channel multiply-adds in the
    input's native (N, T, L, D) layout: no transpose to channels-first, no padded copy (T is tiny: 4), and the
    residual folded into the centre tap; the off-centre taps add in place into the output's frame slices.
    """

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.zeros(dim, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, L, D) -> x + conv(x)
        t, half = x.shape[1], self.kernel_size // 2
        weight = self.weight[:, 0].to(x.dtype)  # (D, k)
        out = torch.addcmul(x + self.bias.to(x.dtype), x, weight[:, half])  # residual + bias + centre tap
        for tap in range(self.kernel_size):
            shift = tap - half  # frame i reads frame i + shift; frames outside the clip are zero padding
            if shift == 0 or abs(shift) >= t:
                continue
            dst = out[:, max(0, -shift) : t - max(0, shift)]
            dst.addcmul_(x[:, max(0, shift) : t + min(0, shift)], weight[:, tap])
        return out

    def count_macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        return out.numel() * self.kernel_size


class DenseTemporalConv(nn.Module):
    """Residual full (channel-mixing) Conv1d over frames at every token position: the paper's TempConv ablation."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2)  # zero-initialised in _init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, L, D)
        n, t, l, d = x.shape
        y = self.conv(x.permute(0, 2, 3, 1).reshape(n * l, d, t))  # (N*L, D, T)
        return x + y.view(n, l, d, t).permute(0, 3, 1, 2)


class TemporalAttention(nn.Module):
    """Residual pre-norm self-attention across frames at every token position: the paper's TempAttn ablation."""

    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = LiteFrameSelfAttention(config)  # output projection zero-initialised in _init_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, L, D)
        n, t, l, d = x.shape
        seq = self.norm(x).transpose(1, 2).reshape(n * l, t, d)  # (N*L, T, D)
        return x + self.attention(seq)[0].view(n, l, t, d).transpose(1, 2)


def build_temporal_mixer(config: LiteFrameVisionConfig) -> nn.Module | None:
    kind = config.temporal_mixer
    if kind == "dwconv":
        return DepthwiseTemporalConv(config.hidden_size, config.temporal_kernel_size)
    if kind == "conv":
        return DenseTemporalConv(config.hidden_size, config.temporal_kernel_size)
    if kind == "attn":
        return TemporalAttention(config)
    return None


class LiteFrameVisionLayer(GradientCheckpointingLayer):
    """InternViT block (pre-LN attention + MLP with LayerScale) followed by a residual temporal mixer.

    Attention is spatial (each frame over its own 1 + h*w tokens), or joint over all T*(1 + h*w) tokens of
    the clip with `attention_scope="clip"`.
    """

    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__()
        self.joint_attention = config.attention_scope == "clip"
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = LiteFrameAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = LiteFrameMLP(config)
        self.layer_scale_init_value = config.layer_scale_init_value
        self.lambda_1 = nn.Parameter(config.layer_scale_init_value * torch.ones(config.hidden_size))
        self.lambda_2 = nn.Parameter(config.layer_scale_init_value * torch.ones(config.hidden_size))
        self.temporal_mixer = build_temporal_mixer(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (N, T, L, D)
        n, t, l, d = hidden_states.shape
        x = hidden_states.reshape(n, t * l, d) if self.joint_attention else hidden_states.reshape(n * t, l, d)
        x = torch.addcmul(x, self.lambda_1, self.attention(self.layernorm_before(x))[0])  # x + lambda_1 * attn: one pass
        x = torch.addcmul(x, self.lambda_2, self.mlp(self.layernorm_after(x)))
        x = x.view(n, t, l, d)
        if self.temporal_mixer is not None:
            x = self.temporal_mixer(x)  # residual inside
        return x


class LiteFrameTokenMerger(nn.Module):
    """Strided depth-wise Conv3d (kernel = stride = (t, h, w)) on the patch grid; CLS tokens of merged frames
    are averaged. (N, T, 1 + H*W, D) -> (N, T/t, 1 + (H/h)*(W/w), D).

    The conv is computed as a per-channel weighted sum of the t*h*w strided sub-grids (one multiply-add per
    block offset, each over 1/(t*h*w) of the tokens), which keeps the channels-last layout: Conv3d would need
    channels-first copies, and an einsum over the blocks becomes a batched matmul with an inner size of t*h*w.
    """

    def __init__(self, dim: int, factors: tuple[int, int, int]):
        super().__init__()
        self.factors = tuple(factors)
        # nn.Conv3d(groups=dim) layout; starts as average pooling (what WAP targets look like).
        self.weight = nn.Parameter(torch.full((dim, 1, *self.factors), 1.0 / (self.factors[0] * self.factors[1] * self.factors[2])))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        n, t, _, d = x.shape
        (ft, fh, fw), (gh, gw) = self.factors, grid
        cls, patches = x[:, :, 0], x[:, :, 1:]
        cls = cls.view(n, t // ft, ft, d).mean(2)  # (N, T', D)
        blocks = patches.reshape(n, t // ft, ft, gh // fh, fh, gw // fw, fw, d)
        kernel = self.weight[:, 0].to(x.dtype)  # (D, ft, fh, fw)
        merged = self.bias.to(x.dtype).expand(n, t // ft, gh // fh, gw // fw, d)
        for a in range(ft):
            for b in range(fh):
                for c in range(fw):
                    merged = torch.addcmul(merged, blocks[:, :, a, :, b, :, c], kernel[:, a, b, c])  # (N, T', H', W', D)
        return torch.cat([cls.unsqueeze(2), merged.flatten(2, 3)], dim=2)

    def count_macs(self, x: torch.Tensor, out: torch.Tensor) -> int:
        ft, fh, fw = self.factors
        patches_out = out.shape[0] * out.shape[1] * (out.shape[2] - 1) * out.shape[3]
        return patches_out * ft * fh * fw


class LiteFrameVisionEmbeddings(nn.Module):
    """Per-frame patch embedding + CLS + learned absolute positions (bicubic-resized for other resolutions)."""

    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        grid = config.image_size // config.patch_size
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + grid * grid, config.hidden_size))

    def positions(self, gh: int, gw: int) -> torch.Tensor:
        pos = self.position_embeddings
        n = round((pos.shape[1] - 1) ** 0.5)
        if (gh, gw) == (n, n):
            return pos
        grid = pos[:, 1:].reshape(1, n, n, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(gh, gw), mode="bicubic", align_corners=False).to(pos.dtype)
        return torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)], dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (F, C, H, W) -> (F, 1 + gh*gw, D)
        x = self.patch_embeddings.projection(frames)  # (F, D, gh, gw)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.positions(gh, gw)


@dataclass
class LiteFrameVisionOutput(BaseModelOutputWithPooling):
    """
    last_hidden_state: (clips, T', H', W', out_hidden_size) patch tokens after the head, in the teacher's
        space (the shape of a WAP target; (clips, 1, 16, 16, 1024) for LiteFrame-B at 448 px).
    pooler_output: (clips, T', hidden_size) CLS tokens after the last block (and the final LayerNorm when
        configured; averaged over the frames of each block with `output_wap_block`). From `get_video_features`:
        the LLM tokens instead (see there), as transformers' VLMs do.
    hidden_states: with `output_hidden_states`, num_hidden_layers + 1 tensors (clips, T_l, 1 + H_l*W_l,
        hidden_size): the embedding output, then the output of every block (before the token merger that may
        follow it), as in transformers' vision models.
    attentions: with `output_attentions` (eager attention), num_hidden_layers tensors of the blocks' attention
        weights after the softmax: (clips * T_l, heads, 1 + H_l*W_l, 1 + H_l*W_l) per frame, or
        (clips, heads, T_l * (1 + H_l*W_l), T_l * (1 + H_l*W_l)) with `attention_scope="clip"`.
    """


class LiteFramePreTrainedModel(PreTrainedModel):
    config: LiteFrameConfig
    base_model_prefix = "model"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LiteFrameVisionLayer"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # No data-dependent control flow once the videos are encoded: static caches and compiled decoding work.
    _can_compile_fullgraph = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        std = getattr(self.config, "initializer_range", None) or self.config.get_text_config().initializer_range
        if isinstance(module, LiteFrameVisionEmbeddings):
            init.trunc_normal_(module.position_embeddings, std=std)
            init.trunc_normal_(module.cls_token, std=std)
        elif isinstance(module, LiteFrameVisionLayer):
            init.constant_(module.lambda_1, module.layer_scale_init_value)
            init.constant_(module.lambda_2, module.layer_scale_init_value)
        # Temporal mixers are residual branches that start at zero, so a student initialised from an image
        # ViT starts as that ViT; token mergers start as average pooling.
        elif isinstance(module, DepthwiseTemporalConv):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, DenseTemporalConv):
            init.zeros_(module.conv.weight)
            init.zeros_(module.conv.bias)
        elif isinstance(module, TemporalAttention):
            init.zeros_(module.attention.projection_layer.weight)
            init.zeros_(module.attention.projection_layer.bias)
        elif isinstance(module, LiteFrameTokenMerger):
            init.constant_(module.weight, 1.0 / module.weight[0].numel())
            init.zeros_(module.bias)


class LiteFrameVisionModel(LiteFramePreTrainedModel):
    """The LiteFrame video encoder. Input: clips (N, clip_len, 3, H, W) or videos (B, T, 3, H, W) with T a
    multiple of clip_len. Output: `LiteFrameVisionOutput` with a (clips, T', H', W', D_out) token grid."""

    config: LiteFrameVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    # Filled by hooks (transformers' output recording): a block's input and outputs, the blocks' attention weights
    # (not a temporal-attention mixer's).
    _can_record_outputs = {
        "hidden_states": LiteFrameVisionLayer,
        "attentions": OutputRecorder(LiteFrameAttention, index=1),
    }

    def __init__(self, config: LiteFrameVisionConfig):
        super().__init__(config)
        self.embeddings = LiteFrameVisionEmbeddings(config)
        self.layers = nn.ModuleList([LiteFrameVisionLayer(config) for _ in range(config.num_hidden_layers)])
        # ModuleDict keys must be strings; key = the 1-based block index the merger follows.
        self.token_mergers = nn.ModuleDict(
            {str(layer): LiteFrameTokenMerger(config.hidden_size, f) for layer, f in sorted(config.downsample_layers.items())}
        )
        self.post_layernorm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.post_layernorm else None
        )
        self.head = nn.Linear(config.hidden_size, config.out_hidden_size) if config.out_hidden_size else nn.Identity()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embeddings.projection

    def _check_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if pixel_values.ndim != 5:
            raise ValueError(
                f"LiteFrameVisionModel expects pixel_values of shape (num_clips, clip_len, 3, H, W) or "
                f"(batch, frames, 3, H, W); got {tuple(pixel_values.shape)}."
            )
        b, t, c, h, w = pixel_values.shape
        if t % cfg.clip_len:
            raise ValueError(
                f"Got {t} frames per video, not a multiple of clip_len={cfg.clip_len}: LiteFrame encodes clips of "
                f"{cfg.clip_len} frames. Pad the video by repeating its last frame (the video processor does this)."
            )
        if c != cfg.num_channels:
            raise ValueError(f"Expected {cfg.num_channels} channels, got {c} (shape {tuple(pixel_values.shape)}).")
        _, mh, mw = cfg.reduction_factors()
        if h != w or h % cfg.patch_size or (h // cfg.patch_size) % mh or (w // cfg.patch_size) % mw:
            step = cfg.patch_size * max(mh, mw)
            raise ValueError(
                f"Frame size {h}x{w} does not fit this encoder: frames must be square with a side that is a multiple "
                f"of {step} (patch_size {cfg.patch_size} x token reduction {mh}x{mw}); the model was trained at "
                f"{cfg.image_size}x{cfg.image_size}. Resize frames with the LiteFrame video processor."
            )
        return pixel_values.reshape(b * t // cfg.clip_len, cfg.clip_len, c, h, w)

    # The last hidden state stays the last block's output: `last_hidden_state` is the head's token grid.
    @capture_outputs(tie_last_hidden_states=False)
    def forward(self, pixel_values: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> LiteFrameVisionOutput:
        """`output_hidden_states` / `output_attentions` / `return_dict` (kwargs or config) as in transformers."""
        x, grid = self.embed(pixel_values)
        x, grid = self.run_blocks(x, grid)
        return self.read_out(x, grid)

    def embed(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Pixels -> the first block's input (clips, clip_len, 1 + H*W, D) and its H x W patch grid."""
        clips = self._check_pixels(pixel_values)
        n, t = clips.shape[:2]
        x = self.embeddings(clips.flatten(0, 1).to(self.dtype))  # (N*T, 1 + gh*gw, D)
        grid = (clips.shape[-2] // self.config.patch_size, clips.shape[-1] // self.config.patch_size)
        return x.view(n, t, *x.shape[1:]), grid  # (N, T, L, D)

    def run_blocks(self, x: torch.Tensor, grid: tuple[int, int], start: int = 0,
                   stop: int | None = None) -> tuple[torch.Tensor, tuple[int, int]]:
        """Blocks start..stop-1 (0-based), each followed by its token merger if it has one: (N, T, 1 + H*W, D) on
        an H x W grid -> the tokens and grid after them. Training a tower's last blocks on a cached frozen stem
        (training/align.py --train_blocks) runs the stem once and the rest from its output."""
        for index in range(start, len(self.layers) if stop is None else stop):
            x = self.layers[index](x)
            merger = self.token_mergers[str(index + 1)] if str(index + 1) in self.token_mergers else None
            if merger is not None:
                x = merger(x, grid)
                grid = (grid[0] // merger.factors[1], grid[1] // merger.factors[2])
        return x, grid

    def read_out(self, x: torch.Tensor, grid: tuple[int, int]) -> LiteFrameVisionOutput:
        """The last block's tokens -> final LayerNorm, output WAP, head: the (N, T', H', W', D_out) token grid."""
        n = x.shape[0]
        if self.post_layernorm is not None:
            x = self.post_layernorm(x)
        cls, patches = x[:, :, 0], x[:, :, 1:].reshape(n, x.shape[1], grid[0], grid[1], -1)  # (N, T', H', W', D)
        block = self.config.output_wap_block
        if block is not None:
            weights = cls_dot_weights(patches, cls, block) if self.config.output_wap_weighting == "cls_dot" else None
            patches = pool_blocks(patches, weights, block)
            cls = cls.view(n, cls.shape[1] // block[0], block[0], -1).mean(2)  # like the token merger's CLS
        tokens = self.head(patches)  # (N, T', H', W', D_out)
        return LiteFrameVisionOutput(last_hidden_state=tokens, pooler_output=cls)


def pixel_shuffle(tokens: torch.Tensor, factor: int) -> torch.Tensor:
    """Fold factor x factor neighbouring tokens into channels: (N, H, W, C) -> (N, H/f, W/f, C*f*f).

    Channel order is InternVL's (row offset major, then column offset, then channel), so InternVL3's
    projector weights apply unchanged."""
    n, h, w, c = tokens.shape
    x = tokens.reshape(n, h // factor, factor, w // factor, factor, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, h // factor, w // factor, c * factor * factor)


def clips_to_llm_tokens(vision_tower: nn.Module, projector: nn.Module, clips: torch.Tensor, shuffle_factor: int,
                        **kwargs):
    """Clips (N, clip_len, 3, H, W) -> (vision output, LLM tokens (N, tokens_per_clip, d_llm)); `kwargs`
    (`output_attentions`, `output_hidden_states`) go to the vision tower."""
    vision = vision_tower(clips, return_dict=True, **kwargs)
    return vision, project_grid(projector, vision.last_hidden_state, shuffle_factor)


def project_grid(projector: nn.Module, grid: torch.Tensor, shuffle_factor: int) -> torch.Tensor:
    """The vision tower's token grid (N, T', H', W', D) -> pixel shuffle -> projector: (N, tokens_per_clip, d_llm)."""
    n, t, h, w, d = grid.shape
    shuffled = pixel_shuffle(grid.reshape(n * t, h, w, d), shuffle_factor)  # (N*T', H/k, W/k, D*k*k)
    return projector(shuffled.reshape(n, -1, shuffled.shape[-1]))


class LiteFrameMultiModalProjector(nn.Module):
    """InternVL's projector (same parameter names): LayerNorm -> Linear -> GELU -> Linear."""

    def __init__(self, config: LiteFrameConfig):
        super().__init__()
        d_in, d_llm = config.projector_input_size, config.text_config.hidden_size
        self.layer_norm = nn.LayerNorm(d_in)
        self.linear_1 = nn.Linear(d_in, d_llm)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(d_llm, d_llm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(self.layer_norm(x))))


# transformers 5.24 renamed the decoding cache `past_key_values` -> `cache` (argument and output field); both
# releases are supported, so the cache travels under the name the running release uses.
CACHE_KEY = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"

try:  # transformers >= 5.24: VLM outputs carry each encoder's outputs (`image_outputs`, `video_outputs`, ...)
    from transformers.modeling_outputs import MultimodalBaseModelOutputWithPast, MultimodalCausalLMOutputWithPast
except ImportError:  # 5.23 has no such classes: the same fields on its own outputs (cache under its old name)

    @dataclass
    class MultimodalBaseModelOutputWithPast(BaseModelOutputWithPast):
        image_outputs: BaseModelOutputWithPooling | None = None
        video_outputs: BaseModelOutputWithPooling | None = None
        audio_outputs: BaseModelOutputWithPooling | None = None

    @dataclass
    class MultimodalCausalLMOutputWithPast(CausalLMOutputWithPast):
        image_outputs: BaseModelOutputWithPooling | None = None
        video_outputs: BaseModelOutputWithPooling | None = None
        audio_outputs: BaseModelOutputWithPooling | None = None


class LiteFrameModelOutputWithPast(MultimodalBaseModelOutputWithPast):
    """The LM's outputs and `video_outputs`: what `get_video_features` returned for the videos (the encoder's
    outputs, `pooler_output` = the LLM tokens of each video), or None without videos."""

    @property
    def video_hidden_states(self) -> torch.Tensor | list[torch.Tensor] | None:
        """The projected video features (`video_outputs.pooler_output`), under the name they had before."""
        return None if self.video_outputs is None else self.video_outputs.pooler_output


class LiteFrameCausalLMOutputWithPast(MultimodalCausalLMOutputWithPast):
    """The causal-LM output and `video_outputs` (as in `LiteFrameModelOutputWithPast`)."""

    video_hidden_states = LiteFrameModelOutputWithPast.video_hidden_states


def accepts_past_key_values(forward):
    """`forward` takes the cache as `cache` (transformers 5.24's name) and still as `past_key_values`: with 5.24's
    deprecation warning there, silently on 5.23, whose `generate` passes it under that name."""
    if CACHE_KEY == "cache":
        return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")(forward)

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        if "past_key_values" in kwargs:
            kwargs["cache"] = kwargs.pop("past_key_values")
        return forward(self, *args, **kwargs)

    return wrapper


class LiteFrameModel(LiteFramePreTrainedModel):
    """Encoder + projector + decoder backbone (no LM head)."""

    def __init__(self, config: LiteFrameConfig):
        super().__init__(config)
        # Instantiated directly: AutoModel.from_config only knows our vision config when it is registered.
        self.vision_tower = LiteFrameVisionModel(config.vision_config)
        self.multi_modal_projector = LiteFrameMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        video_num_frames: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteFrameVisionOutput:
        """Encode videos into LLM-space tokens.

        pixel_values_videos: (B, T, 3, H, W); videos shorter than T are padded at the end and
        `video_num_frames` (B,) gives each video's real frame count (a multiple of clip_len). Padded clips are
        never encoded. Returns the vision tower's output over the encoded clips (`last_hidden_state`, and
        `hidden_states` / `attentions` with `output_hidden_states` / `output_attentions`, which go to the
        tower), with `pooler_output` = the LLM tokens: (B, tokens, d_llm) when all videos have the same length,
        else a list of (tokens_i, d_llm) tensors, one per video (what `generate`'s beam expansion expects).
        """
        clip_len = self.config.vision_config.clip_len
        b, t = pixel_values_videos.shape[:2]
        if t % clip_len:
            raise ValueError(
                f"pixel_values_videos has {t} frames, not a multiple of clip_len={clip_len}; pad by repeating the "
                f"last frame (the LiteFrame video processor does this)."
            )
        clips = pixel_values_videos.view(b, t // clip_len, clip_len, *pixel_values_videos.shape[2:])
        clips_per_video = [t // clip_len] * b
        if video_num_frames is not None:
            counts = [int(n) for n in video_num_frames.tolist()]
            if any(n % clip_len or not 0 < n <= t for n in counts):
                raise ValueError(f"video_num_frames {counts} must be positive multiples of clip_len={clip_len} and <= {t}.")
            clips_per_video = [n // clip_len for n in counts]
            keep = torch.arange(t // clip_len, device=clips.device)[None, :] < torch.tensor(clips_per_video, device=clips.device)[:, None]
            clips = clips[keep]  # (total_clips, clip_len, 3, H, W), padding dropped
        else:
            clips = clips.flatten(0, 1)
        vision, tokens = clips_to_llm_tokens(self.vision_tower, self.multi_modal_projector, clips,
                                             self.config.pixel_shuffle_factor, **kwargs)
        per_video = [v.reshape(-1, v.shape[-1]) for v in tokens.split(clips_per_video, dim=0)]  # (tokens_i, d_llm)
        same_length = len(set(clips_per_video)) == 1
        vision.pooler_output = torch.stack(per_video) if same_length else per_video
        return vision

    def get_placeholder_mask(
        self, input_ids, inputs_embeds, video_features: torch.Tensor, num_clips: int | None = None
    ) -> torch.Tensor:
        """Boolean mask (B, S, 1) of video placeholder positions; checks it matches the features' token count.
        `num_clips` (the encoded clips) lets the error say which side has the wrong per-clip count."""
        if input_ids is None:
            token = self.get_input_embeddings()(torch.tensor(self.config.video_token_id, device=inputs_embeds.device))
            mask = (inputs_embeds == token).all(-1)
        else:
            mask = input_ids == self.config.video_token_id
        n_text, n_video = int(mask.sum()), video_features.shape[0]
        if n_text != n_video:
            head = (f"Video features and video placeholder tokens do not match: the prompt has {n_text} placeholder "
                    f"tokens (id {self.config.video_token_id}) but the videos give {n_video} features")
            if num_clips and n_text % num_clips == 0 and n_text:
                # every clip got the same wrong count: the processor's tokens_per_clip is not this model's
                raise ValueError(
                    f"{head}: {num_clips} clips x {n_text // num_clips} placeholders in the prompt vs {num_clips} clips x "
                    f"{n_video // num_clips} tokens from the model at this frame size (tokens_per_clip). The processor "
                    f"was built for another configuration or frame size: load it from this model's folder, or build "
                    f"it with LiteFrameProcessor(video_processor, tokenizer, model_config=model.config)."
                )
            per_clip = f" ({num_clips} clips x {n_video // num_clips} per clip)" if num_clips else ""
            raise ValueError(
                f"{head}{per_clip}. Build prompts with the LiteFrame processor (one prompt line per clip), and do not "
                f"truncate them."
            )
        return mask.unsqueeze(-1).to(inputs_embeds.device)

    @can_return_tuple
    @accepts_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteFrameModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if pixel_values_videos is not None and mm_encoder_outputs and mm_encoder_outputs.get("video") is not None:
            raise ValueError("Pass either pixel_values_videos or pre-encoded mm_encoder_outputs['video'], not both.")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        mm = dict(mm_encoder_outputs or {})
        if mm.get("video") is None and pixel_values_videos is not None:
            mm["video"] = self.get_video_features(pixel_values_videos, video_num_frames, return_dict=True)
        if mm.get("video") is not None:
            video_features = mm["video"].pooler_output
            flat = torch.cat(list(video_features)) if isinstance(video_features, (list, tuple)) else video_features.flatten(0, 1)
            flat = flat.to(inputs_embeds.device, inputs_embeds.dtype)
            clips = getattr(mm["video"], "last_hidden_state", None)
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, flat, clips.shape[0] if clips is not None else None)
            inputs_embeds = inputs_embeds.masked_scatter(mask, flat)
        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **{CACHE_KEY: cache},
            **kwargs,
        )
        return LiteFrameModelOutputWithPast(
            last_hidden_state=outputs.last_hidden_state,
            **{CACHE_KEY: getattr(outputs, CACHE_KEY)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=mm.get("video"),
        )


class LiteFrameForConditionalGeneration(LiteFramePreTrainedModel, GenerationMixin):
    """LiteFrame video LLM with the LM head; `generate` pre-encodes videos once (mm_encoder_outputs)."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    # The LM's own plan shards its embedding; a tied head must be sharded with it (as transformers' VLMs do).
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: LiteFrameConfig):
        super().__init__(config)
        self.model = LiteFrameModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def save_pretrained(self, save_directory, *args, **kwargs):
        # A class carries one `_auto_class`; as remote code this model also serves `AutoModel`, so name it too.
        if self._auto_class is not None:
            target = f"modeling_liteframe.{type(self).__name__}"
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), "AutoModel": target}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @can_return_tuple
    def get_video_features(self, pixel_values_videos: torch.Tensor, video_num_frames: torch.Tensor | None = None,
                           **kwargs: Unpack[TransformersKwargs]) -> LiteFrameVisionOutput:
        """`LiteFrameModel.get_video_features`."""
        return self.model.get_video_features(pixel_values_videos, video_num_frames, **kwargs)

    @property
    def vision_tower(self) -> LiteFrameVisionModel:
        return self.model.vision_tower

    @property
    def language_model(self) -> nn.Module:
        return self.model.language_model

    def _maybe_prepare_encoder_kwargs_for_generation(self, inputs_tensor, model_kwargs, *args, **kwargs):
        # A reused prompt cache (transformers' prompt-reuse recipe, a video session's copy) that already holds every
        # video placeholder needs no encoder run: generate pre-fills only the tokens after it, so drop the video inputs.
        cache = model_kwargs.get("cache", model_kwargs.get("past_key_values"))
        past = cache.get_seq_length() if isinstance(cache, Cache) else 0
        if past and isinstance(inputs_tensor, torch.Tensor) and not inputs_tensor.is_floating_point():
            positions = (inputs_tensor == self.config.video_token_id).nonzero()[:, -1]
            if len(positions) and int(positions.max()) < past:
                for key in ("pixel_values_videos", "video_num_frames"):
                    model_kwargs.pop(key, None)
                if model_kwargs.get("mm_encoder_outputs"):
                    model_kwargs["mm_encoder_outputs"] = {k: v for k, v in model_kwargs["mm_encoder_outputs"].items() if k != "video"}
            elif len(positions) and int(positions.min()) < past:
                raise ValueError(f"The cache holds {past} tokens, which covers only part of the video's placeholder tokens "
                                 f"(positions {int(positions.min())}-{int(positions.max())}); reuse a cache that ends "
                                 f"before the video or after its last clip.")
        return super()._maybe_prepare_encoder_kwargs_for_generation(inputs_tensor, model_kwargs, *args, **kwargs)

    @can_return_tuple
    @accepts_past_key_values
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_num_frames: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteFrameCausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            pixel_values_videos=pixel_values_videos,
            video_num_frames=video_num_frames,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )
        hidden = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs)
        return LiteFrameCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            **{CACHE_KEY: getattr(outputs, CACHE_KEY)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            video_outputs=outputs.video_outputs,
        )


__all__ = [
    "LiteFramePreTrainedModel",
    "LiteFrameVisionModel",
    "LiteFrameModel",
    "LiteFrameForConditionalGeneration",
    "clips_to_llm_tokens",
    "pixel_shuffle",
]
