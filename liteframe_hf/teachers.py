"""Frozen teacher ViTs and their WAP targets for Compressed Token Distillation (CTD).

A :class:`Teacher` wraps a Hugging Face vision transformer and turns video clips of normalised pixels,
shaped ``(N, clip_len, 3, H, W)``, into per-frame CLS tokens ``(N, T, D)``, the patch grid
``(N, T, h, w, D)`` (``h = H // patch``, ``w = W // patch``) and, on request, the last layer's
head-averaged CLS->patch attention ``(N, T, h, w)``. :meth:`Teacher.wap_targets` pools the grid with
:func:`liteframe_hf.wap.wap` into the CTD targets ``(N, T/4, h/2, w/2, D)``.

Supported teachers (all from ``transformers``):

* ``InternVLVisionModel`` - InternViT-300M, the paper's teacher, read from an InternVL3-*-hf checkpoint
  folder (only the vision tower is loaded: ``vision_tower.*`` / ``model.vision_tower.*`` keys are mapped
  with ``key_mapping``). InternViT-300M has ``use_mean_pooling=True``, so the model applies **no** final
  norm: its ``last_hidden_state`` is the raw output of the last block (InternVL3's LLM reads exactly that,
  CLS dropped), and ``pooler_output`` is ``None``. CLS = token 0 of that state.
* ViTs with a CLS token: ``Dinov2Model`` (last state is layer-normed; CLS = ``pooler_output``),
  ``Dinov2WithRegistersModel`` (register tokens are skipped), ``CLIPVisionModel`` (pre-``post_layernorm``
  state, so CLS and patches live in the same space).
* ViTs without a CLS token: ``SiglipVisionModel`` - only ``weighting="mean"`` is possible.

The teacher is frozen (``requires_grad=False``, always in eval mode), runs under ``torch.no_grad()`` and
by default in bfloat16 on a GPU and float32 on the CPU. ``chunk_size`` bounds memory by running at most
that many clips per forward pass; results do not depend on it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .wap import WEIGHTINGS, check_block, check_grid, wap

__all__ = ["Teacher", "TeacherOutput", "INTERNVL_VISION_KEY_MAPPING", "cls_attention_probs", "frozen_borrow"]

# InternVL3-*-hf checkpoints store the vision tower as `vision_tower.*` (the layout transformers also writes
# on save) and the in-memory model calls it `model.vision_tower.*`; both become the bare
# InternVLVisionModel names.
INTERNVL_VISION_KEY_MAPPING = {r"^(?:model\.)?vision_tower\.": ""}

_NO_CLS_TYPES = ("siglip", "siglip_vision_model")


@dataclass
class TeacherOutput:
    """Per-frame teacher features of a batch of clips (tensors on the teacher's device and dtype).

    cls: (N, T, D) CLS tokens, or None for teachers without one.
    patches: (N, T, h, w, D) patch tokens.
    attn: (N, T, h, w) last-layer CLS->patch attention probabilities averaged over heads (over all
        tokens, so they sum to a bit less than 1 per frame), or None unless requested.
    """

    cls: torch.Tensor | None
    patches: torch.Tensor
    attn: torch.Tensor | None = None


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """Self-attention modules of the encoder, in layer order (modules with q_proj/k_proj Linear layers)."""
    found = []
    for module in model.modules():
        q, k = getattr(module, "q_proj", None), getattr(module, "k_proj", None)
        if isinstance(q, nn.Linear) and isinstance(k, nn.Linear):
            found.append(module)
    return found


def cls_attention_probs(attention: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """Head-averaged attention probabilities of token 0 (CLS) over all tokens, computed from the
    attention module's input ``hidden_states`` (B, L, E) with its own q/k projections. Returns (B, L) fp32.

    Only the CLS query row is formed, so this costs O(L) per head instead of the O(L^2) of asking the
    model for ``output_attentions`` (which also needs eager attention).
    """
    q = attention.q_proj(hidden_states[:, :1])
    k = attention.k_proj(hidden_states)
    q_norm, k_norm = getattr(attention, "q_norm", None), getattr(attention, "k_norm", None)
    if q_norm is not None and k_norm is not None:  # InternViT-6B style qk-norm over the full width
        q, k = q_norm(q), k_norm(k)
    heads = getattr(attention, "num_heads", None) or getattr(attention, "num_attention_heads", None)
    if heads is None:
        raise TypeError(f"cannot read the head count of {type(attention).__name__} for weighting='cls_attn'")
    head_dim = q.shape[-1] // heads
    scale = getattr(attention, "scale", None) or getattr(attention, "scaling", None) or head_dim**-0.5
    B, L = k.shape[:2]
    q = q.float().reshape(B, heads, head_dim)
    k = k.float().reshape(B, L, heads, head_dim)
    scores = torch.einsum("bhd,blhd->bhl", q, k) * scale
    return torch.softmax(scores, dim=-1).mean(dim=1)


class Teacher(nn.Module):
    """Frozen teacher ViT producing per-frame CLS/patch features and WAP targets for CTD.

    Args:
        model: a transformers vision model (``InternVLVisionModel``, ``Dinov2Model``, ``CLIPVisionModel``,
            ``SiglipVisionModel``, ...) taking ``pixel_values`` (B, 3, H, W) and returning
            ``last_hidden_state`` (B, prefix + h*w, D).
        weighting: WAP weighting (``cls_dot``, ``cls_attn``, ``mean``); default ``cls_dot`` when the model
            has a CLS token, else ``mean``.
        block: WAP block (t, h, w), default (4, 2, 2).
        device: default ``cuda`` when available, else ``cpu``.
        dtype: default bfloat16 on GPU, float32 on CPU.
        chunk_size: run at most this many clips per forward pass (None: all at once).
        feature_layer: None (default) uses the model's ``last_hidden_state``; an int selects
            ``hidden_states[feature_layer]`` instead (e.g. -2 for the penultimate block).
    """

    def __init__(
        self,
        model: nn.Module,
        weighting: str | None = None,
        block: Sequence[int] = (4, 2, 2),
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int | None = None,
        feature_layer: int | None = None,
    ):
        super().__init__()
        device, dtype = _device_dtype(device, dtype)
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive number of clips or None; got {chunk_size}")
        self.model = model.to(device=device, dtype=dtype)
        self.model.requires_grad_(False)
        self.model.eval()
        self.block = check_block(block)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.feature_layer = feature_layer

        config = getattr(model, "config", None)
        self.hidden_size = int(getattr(config, "hidden_size", 0) or 0) or None
        patch = getattr(config, "patch_size", None)
        if patch is None:
            raise ValueError(f"{type(model).__name__} has no config.patch_size: not a ViT-style vision model")
        self.patch_size = tuple(patch) if isinstance(patch, (list, tuple)) else (int(patch), int(patch))
        image_size = getattr(config, "image_size", None)
        if image_size is not None and not isinstance(image_size, (list, tuple)):
            image_size = (image_size, image_size)
        self.image_size = None if image_size is None else tuple(image_size)
        self.has_cls = self._detect_cls(model)
        self._attention = _attention_modules(model)
        self._pass_interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters

        if weighting is None:
            weighting = "cls_dot" if self.has_cls else "mean"
        self.weighting = self._check_weighting(weighting)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _detect_cls(model: nn.Module) -> bool:
        model_type = getattr(getattr(model, "config", None), "model_type", "")
        if model_type in _NO_CLS_TYPES:
            return False
        names = (name for name, _ in model.named_parameters())
        return any(name.endswith(("cls_token", "class_embedding")) for name in names)

    def _check_weighting(self, weighting: str) -> str:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown WAP weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
        if weighting in ("cls_dot", "cls_attn") and not self.has_cls:
            raise ValueError(
                f"weighting={weighting!r} needs a CLS token, but the teacher {type(self.model).__name__} has no CLS "
                "token: use weighting='mean'"
            )
        if weighting == "cls_attn" and not self._attention:
            raise ValueError(
                f"weighting='cls_attn' needs the teacher's attention q/k projections, which "
                f"{type(self.model).__name__} does not expose: use weighting='cls_dot' or 'mean'"
            )
        return weighting

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        weighting: str | None = None,
        block: Sequence[int] = (4, 2, 2),
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        chunk_size: int | None = None,
        feature_layer: int | None = None,
        **model_kwargs,
    ) -> "Teacher":
        """Load a teacher from a local folder (or Hub id when online), detecting its type from config.json.

        InternVL3-*-hf folders (``model_type: internvl``) load only the vision tower. Extra keyword arguments
        go to the model's ``from_pretrained`` (e.g. ``attn_implementation="sdpa"``).
        """
        from transformers import AutoConfig

        device, dtype = _device_dtype(device, dtype)
        config = AutoConfig.from_pretrained(path)
        model_cls, sub_config, key_mapping = _resolve_teacher_class(config)
        kwargs = dict(model_kwargs)
        kwargs.setdefault("dtype", dtype)
        if sub_config is not None:
            kwargs.setdefault("config", sub_config)
        if key_mapping is not None:
            kwargs.setdefault("key_mapping", key_mapping)
        if key_mapping is None:
            model = model_cls.from_pretrained(path, **kwargs)
        else:
            with _quiet_unexpected_keys():
                model, info = model_cls.from_pretrained(path, output_loading_info=True, **kwargs)
            problems = {k: sorted(info.get(k) or ()) for k in ("missing_keys", "mismatched_keys") if info.get(k)}
            if problems:
                raise ValueError(
                    f"{path} does not hold a complete {model_cls.__name__} vision tower "
                    f"(expected `vision_tower.*` or `model.vision_tower.*` keys): {problems}"
                )
        return cls(model, weighting=weighting, block=block, device=device, dtype=dtype, chunk_size=chunk_size,
                   feature_layer=feature_layer)

    # ------------------------------------------------------------------ nn.Module behaviour
    def train(self, mode: bool = True) -> "Teacher":
        """The teacher is frozen: it stays in eval mode whatever `mode` says."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (h, w) for frames of height x width pixels."""
        return height // self.patch_size[0], width // self.patch_size[1]

    # ------------------------------------------------------------------ features
    @torch.no_grad()
    def encode(self, clips: torch.Tensor, need_attn: bool = False) -> TeacherOutput:
        """Per-frame features of clips (N, T, 3, H, W) of normalised pixels. See :class:`TeacherOutput`."""
        clips = self._check_clips(clips)
        outputs = [self._encode_chunk(chunk, need_attn) for chunk in self._chunks(clips)]
        cat = lambda items: None if items[0] is None else torch.cat(items, dim=0)  # noqa: E731
        return TeacherOutput(
            cls=cat([o.cls for o in outputs]),
            patches=cat([o.patches for o in outputs]),
            attn=cat([o.attn for o in outputs]),
        )

    @torch.no_grad()
    def wap_targets(
        self,
        clips: torch.Tensor,
        weighting: str | None = None,
        block: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """CTD targets: WAP of the teacher's patch grid, (N, T/t, h/h_b, w/w_b, D) = (N, T/4, h/2, w/2, D)
        by default, in the teacher's dtype and on its device. Pooling runs per chunk, so only one chunk's
        full-resolution grid is held at a time."""
        weighting = self.weighting if weighting is None else self._check_weighting(weighting)
        block = self.block if block is None else check_block(block)
        clips = self._check_clips(clips)
        N, T, _, H, W = clips.shape
        h, w = self.grid_size(H, W)
        # Fail before running the teacher if the block does not tile the grid.
        check_grid((T, h, w), block)
        pooled = []
        for chunk in self._chunks(clips):
            out = self._encode_chunk(chunk, need_attn=weighting == "cls_attn")
            pooled.append(wap(out.patches, out.cls, block=block, weighting=weighting, attn=out.attn))
        return torch.cat(pooled, dim=0)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`wap_targets` with the configured weighting and block."""
        return self.wap_targets(clips)

    # ------------------------------------------------------------------ internals
    def _check_clips(self, clips: torch.Tensor) -> torch.Tensor:
        if not isinstance(clips, torch.Tensor) or clips.dim() != 5 or clips.shape[2] != 3:
            shape = tuple(clips.shape) if isinstance(clips, torch.Tensor) else type(clips).__name__
            raise ValueError(f"clips must be a (N, clip_len, 3, H, W) tensor of normalised pixels; got {shape}")
        H, W = clips.shape[-2:]
        if H < self.patch_size[0] or W < self.patch_size[1]:
            raise ValueError(f"frames of {H}x{W} px are smaller than one {self.patch_size} patch")
        return clips

    def _chunks(self, clips: torch.Tensor):
        step = clips.shape[0] if self.chunk_size is None else self.chunk_size
        for start in range(0, clips.shape[0], max(step, 1)):
            yield clips[start : start + step]

    def _encode_chunk(self, clips: torch.Tensor, need_attn: bool) -> TeacherOutput:
        N, T, C, H, W = clips.shape
        h, w = self.grid_size(H, W)
        pixels = clips.reshape(N * T, C, H, W).to(device=self.device, dtype=self.dtype)
        kwargs = {}
        if self._pass_interpolate and self.image_size is not None and (H, W) != tuple(self.image_size):
            kwargs["interpolate_pos_encoding"] = True
        if self.feature_layer is not None:
            kwargs["output_hidden_states"] = True

        captured: dict[str, torch.Tensor] = {}
        handle = None
        if need_attn:
            if not self.has_cls:
                raise ValueError(
                    f"the teacher {type(self.model).__name__} has no CLS token, so there is no CLS attention: "
                    "use weighting='mean'"
                )
            attention = self._attention[self._attention_layer_index()]

            def hook(module, args, kw):
                hidden = args[0] if args else kw["hidden_states"]
                captured["probs"] = cls_attention_probs(module, hidden)

            handle = attention.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            out = self.model(pixel_values=pixels, **kwargs)
        finally:
            if handle is not None:
                handle.remove()

        states = out.last_hidden_state if self.feature_layer is None else out.hidden_states[self.feature_layer]
        L, D = states.shape[1], states.shape[2]
        prefix = L - h * w
        if prefix < 0 or (prefix == 0 and self.has_cls):
            raise ValueError(
                f"{type(self.model).__name__} returned {L} tokens for a {h}x{w} patch grid "
                f"({H}x{W} px, patch {self.patch_size}); cannot split CLS and patch tokens"
            )
        patches = states[:, prefix:].reshape(N, T, h, w, D)
        cls_tok = states[:, 0].reshape(N, T, D) if self.has_cls else None
        attn = None
        if need_attn:
            probs = captured["probs"]  # (N*T, L) over all tokens, CLS and registers included
            attn = probs[:, prefix:].reshape(N, T, h, w)
        return TeacherOutput(cls=cls_tok, patches=patches, attn=attn)

    def _attention_layer_index(self) -> int:
        """The attention module of the block whose output is used as features."""
        n = len(self._attention)
        if self.feature_layer is None:
            return n - 1
        # hidden_states has n + 1 entries: [embeddings, block 1, ..., block n].
        index = self.feature_layer % (n + 1)
        if index == 0:
            raise ValueError("feature_layer selects the embeddings (no attention yet): cls_attn is undefined there")
        return index - 1

    def extra_repr(self) -> str:
        return (
            f"weighting={self.weighting!r}, block={self.block}, has_cls={self.has_cls}, "
            f"chunk_size={self.chunk_size}, feature_layer={self.feature_layer}"
        )


@contextlib.contextmanager
def frozen_borrow(model: nn.Module):
    """Lend `model` to a :class:`Teacher` (which freezes it and sets eval mode) and give it back with the caller's
    `requires_grad` flags and train/eval mode."""
    flags, training = {n: p.requires_grad for n, p in model.named_parameters()}, model.training
    try:
        yield model
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
        model.train(training)


def _device_dtype(device, dtype) -> tuple[torch.device, torch.dtype]:
    """Defaults: cuda when available, else cpu; bfloat16 on a GPU, float32 on the CPU."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    return device, dtype if dtype is not None else (torch.bfloat16 if device.type == "cuda" else torch.float32)


# model_type -> (vision model class, whether the checkpoint's config nests it as `vision_config`, key mapping)
_TEACHER_TYPES = {
    "internvl": ("InternVLVisionModel", True, INTERNVL_VISION_KEY_MAPPING),
    "internvl_vision": ("InternVLVisionModel", False, INTERNVL_VISION_KEY_MAPPING),
    "dinov2": ("Dinov2Model", False, None),
    "dinov2_with_registers": ("Dinov2WithRegistersModel", False, None),
    "clip": ("CLIPVisionModel", True, None),
    "clip_vision_model": ("CLIPVisionModel", False, None),
    "siglip": ("SiglipVisionModel", True, None),
    "siglip_vision_model": ("SiglipVisionModel", False, None),
}


def _resolve_teacher_class(config):
    """(model class, config to pass or None, key_mapping or None) for a checkpoint's top-level config."""
    import transformers

    model_type = getattr(config, "model_type", "")
    if model_type in _TEACHER_TYPES:
        name, nested, key_mapping = _TEACHER_TYPES[model_type]
        return getattr(transformers, name), config.vision_config if nested else None, key_mapping
    if hasattr(config, "vision_config"):
        raise ValueError(
            f"don't know how to take the vision tower out of a {model_type!r} checkpoint; supported teachers: "
            f"{', '.join(_TEACHER_TYPES)} (internvl: InternVL3-*-hf). Load the vision model yourself and pass it "
            "to Teacher(model)."
        )
    return transformers.AutoModel, None, None


@contextlib.contextmanager
def _quiet_unexpected_keys():
    """Loading only the vision tower of a full InternVL checkpoint leaves every LLM key 'unexpected';
    that report is expected, so silence transformers' logger while loading (missing keys are checked
    by the caller)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
