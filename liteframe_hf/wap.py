"""Weighted Average Pooling (WAP): the spatio-temporal token compression behind LiteFrame's CTD targets.

Every ``(t, h, w)`` block of a clip's token grid (default ``(4, 2, 2)``: 16x fewer tokens) becomes the weighted
average of its tokens, weighted by ``cls_dot`` (default), ``cls_attn`` or ``mean`` (docs/design.md, "WAP"). Scores,
softmax and sum run in float32; the result has the dtype of ``patches``. The block reshaping, ``cls_dot`` scoring
and weighted sum live in ``modeling/wap_liteframe.py`` (shared with the encoder's output pooling, which runs as
Hub remote code); this module adds input checks and the ``cls_attn`` / ``mean`` weightings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .modeling.wap_liteframe import cls_dot_weights, pool_blocks, wap_blocks

__all__ = ["WEIGHTINGS", "wap", "wap_weights", "check_block", "check_grid"]

WEIGHTINGS = ("cls_dot", "cls_attn", "mean")


def check_block(block: Sequence[int]) -> tuple[int, int, int]:
    """Validate a ``(t, h, w)`` block and return it as a tuple of three positive ints."""
    try:
        t, h, w = (int(b) for b in block)
        valid = min(t, h, w) >= 1 and all(int(b) == b for b in block)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"block must be three positive integers (t, h, w), e.g. (4, 2, 2); got {block!r}")
    return t, h, w


def check_grid(shape: Sequence[int], block: tuple[int, int, int]) -> None:
    """Raise a ValueError naming the fix when the (T, H, W) grid is not tiled by the block."""
    problems = []
    for axis, size, step in zip(("T (frames)", "H (patch rows)", "W (patch columns)"), shape, block):
        if size % step:
            problems.append(f"{axis}={size} is not divisible by {step}")
    if problems:
        T, H, W = shape
        raise ValueError(
            f"WAP block {block} does not tile the (T, H, W)=({T}, {H}, {W}) token grid: "
            + "; ".join(problems)
            + ". Fix: feed clips whose frame count is a multiple of the temporal block (LiteFrame uses 4-frame "
            "clips) and an image size whose patch grid divides the spatial block (e.g. 448 px / 14 = 32), "
            "or pass a block that divides the grid."
        )


def wap_weights(
    patches: torch.Tensor,
    cls: torch.Tensor | None = None,
    block: Sequence[int] = (4, 2, 2),
    weighting: str = "cls_dot",
    attn: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pooling weights ``a_k``: float32 tensor (B, T/t, H/h, W/w, t*h*w) summing to 1 over the last axis.

    Token order inside a block is (frame, row, column), row-major. Arguments as for :func:`wap`.
    """
    block = check_block(block)
    _check_inputs(patches, cls, weighting, attn)
    B, T, H, W, _ = patches.shape
    check_grid((T, H, W), block)
    K = block[0] * block[1] * block[2]

    if weighting == "mean":
        return patches.new_full((B, T // block[0], H // block[1], W // block[2], K), 1.0 / K, dtype=torch.float32)

    if weighting == "cls_dot":
        return cls_dot_weights(patches, cls, block)  # the encoder's output pooling uses the same function

    # cls_attn: renormalise the teacher's CLS->patch probabilities inside each block.
    probs = wap_blocks(attn.float(), block)
    total = probs.sum(dim=-1, keepdim=True)
    return probs / total.clamp_min(torch.finfo(torch.float32).tiny)


def wap(
    patches: torch.Tensor,
    cls: torch.Tensor | None = None,
    block: Sequence[int] = (4, 2, 2),
    weighting: str = "cls_dot",
    attn: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted Average Pooling of a spatio-temporal token grid.

    Args:
        patches: (B, T, H, W, D) patch tokens (B clips of T frames on an HxW patch grid).
        cls: (B, T, D) per-frame CLS tokens; required by ``weighting="cls_dot"``.
        block: (t, h, w) pooling block; T, H and W must be divisible by t, h and w.
        weighting: ``"cls_dot"`` (default), ``"cls_attn"`` or ``"mean"``.
        attn: (B, T, H, W) last-layer CLS->patch attention probabilities (head-averaged); required by
            ``weighting="cls_attn"``.

    Returns:
        (B, T/t, H/h, W/w, D) pooled tokens in the dtype of ``patches``.
    """
    weights = wap_weights(patches, cls, block, weighting, attn)
    return pool_blocks(patches, None if weighting == "mean" else weights, check_block(block))


def _check_inputs(patches, cls, weighting, attn) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown WAP weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
    if not isinstance(patches, torch.Tensor) or patches.dim() != 5:
        shape = tuple(patches.shape) if isinstance(patches, torch.Tensor) else type(patches).__name__
        raise ValueError(f"patches must be a (B, T, H, W, D) tensor; got {shape}")
    if not patches.is_floating_point():
        raise ValueError(f"patches must be a floating-point tensor; got {patches.dtype}")
    B, T, H, W, D = patches.shape
    if weighting == "cls_dot":
        if cls is None:
            raise ValueError(
                "weighting='cls_dot' needs the per-frame CLS tokens (cls=...) but none were given; "
                "if the teacher has no CLS token: use weighting='mean'"
            )
        if tuple(cls.shape) != (B, T, D):
            raise ValueError(f"cls must have shape (B, T, D)=({B}, {T}, {D}) to match patches; got {tuple(cls.shape)}")
    if weighting == "cls_attn":
        if attn is None:
            raise ValueError(
                "weighting='cls_attn' needs the teacher's last-layer CLS attention (attn=..., shape (B, T, H, W)); "
                "get it from Teacher.encode(clips, need_attn=True), or use weighting='cls_dot' / 'mean'"
            )
        if tuple(attn.shape) != (B, T, H, W):
            raise ValueError(
                f"attn must have shape (B, T, H, W)=({B}, {T}, {H}, {W}) to match patches; got {tuple(attn.shape)}"
            )
