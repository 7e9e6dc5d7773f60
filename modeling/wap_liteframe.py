"""Weighted Average Pooling (WAP) core: the one implementation of the pooling math.

The encoder uses it for output pooling (`LiteFrameVisionConfig.output_wap_block`, post-hoc WAP as a
configuration) and `liteframe_hf.wap` builds the CTD targets on it. A (B, T, H, W, D) token grid is cut into
non-overlapping (t, h, w) blocks and each block becomes a weighted average of its t*h*w tokens; with
``cls_dot`` weighting a token's score is its dot product with the CLS token of its own frame, scaled by
1/sqrt(D), and the softmax runs over the block. Scores, softmax and the weighted sum run in float32; the
result has the dtype of the tokens.

This file is Hub remote code: torch only, no import of `liteframe_hf`.
"""

import math

import torch


def wap_blocks(x: torch.Tensor, block: tuple[int, int, int]) -> torch.Tensor:
    """(B, T, H, W, *rest) -> (B, T/t, H/h, W/w, t*h*w, *rest); tokens inside a block in (frame, row, column)
    order. The caller checks that the block tiles the grid."""
    t, h, w = block
    B, T, H, W = x.shape[:4]
    rest = x.shape[4:]
    x = x.reshape(B, T // t, t, H // h, h, W // w, w, *rest)
    perm = (0, 1, 3, 5, 2, 4, 6) + tuple(range(7, 7 + len(rest)))
    return x.permute(perm).reshape(B, T // t, H // h, W // w, t * h * w, *rest)


def cls_dot_weights(patches: torch.Tensor, cls: torch.Tensor, block: tuple[int, int, int]) -> torch.Tensor:
    """softmax over each block of <cls of the token's frame, token> / sqrt(D): float32 (B, T/t, H/h, W/w, t*h*w).

    patches: (B, T, H, W, D); cls: (B, T, D)."""
    logits = torch.einsum("bthwd,btd->bthw", patches.float(), cls.float()) / math.sqrt(patches.shape[-1])
    return torch.softmax(wap_blocks(logits, block), dim=-1)  # max-subtracted: stable for any logit scale


def pool_blocks(patches: torch.Tensor, weights: torch.Tensor | None, block: tuple[int, int, int]) -> torch.Tensor:
    """sum_k a_k x_k over every block: (B, T, H, W, D) -> (B, T/t, H/h, W/w, D) in the dtype of `patches`.
    `weights` (B, T/t, H/h, W/w, t*h*w); None = uniform (plain average pooling)."""
    values = wap_blocks(patches, block).float()  # (B, T', H', W', K, D)
    if weights is None:
        return values.mean(dim=-2).to(patches.dtype)
    return torch.einsum("bthwk,bthwkd->bthwd", weights, values).to(patches.dtype)


__all__ = ["wap_blocks", "cls_dot_weights", "pool_blocks"]
