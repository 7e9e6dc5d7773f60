"""CTD objective: the student regresses the teacher's WAP-pooled tokens.

Reading of the paper's "MSE loss with the target-prediction differences beyond 3 sigma clipped" that `ctd_loss`
implements, exactly:

    d     = target - prediction                          every element of the micro-batch, (N, T', H', W', D)
    sigma = std(d)                                       one scalar over all those elements, detached
    loss  = mean( clamp(d, -k sigma, +k sigma) ** 2 )    k = clip_sigma = 3

* sigma is a statistic of the current micro-batch on this process (not all-reduced across processes, not a
  running average), computed without gradient: it sets the clipping threshold and is not itself optimised.
* The clamp is symmetric around 0 (a perfect prediction has d = 0), not around mean(d).
* An element beyond the threshold contributes the constant (k sigma)^2 and **no gradient**: outlier tokens of
  the teacher (ViTs have a few high-norm "register-like" tokens) neither dominate the loss nor pull the student.
  Inside the threshold the loss is the plain squared error, so with no outliers it equals MSE.
* ``clip_sigma=0`` disables clipping (plain MSE).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ctd_loss", "ctd_metrics", "token_alignment_loss", "token_distillation_loss"]


def ctd_loss(prediction: torch.Tensor, target: torch.Tensor, clip_sigma: float = 3.0) -> torch.Tensor:
    """MSE between prediction and target with (target - prediction) clipped at `clip_sigma` x its std.

    prediction, target: same shape, e.g. (N, T', H', W', D). Computed in float32. Returns a scalar.
    """
    if prediction.shape != target.shape:
        raise ValueError(
            f"ctd_loss: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ; the student's "
            f"out_hidden_size and output grid must match the teacher's width and the WAP-pooled grid"
        )
    diff = target.float() - prediction.float()
    if clip_sigma and clip_sigma > 0:
        bound = clip_sigma * diff.detach().std()
        diff = torch.maximum(torch.minimum(diff, bound), -bound)
    return diff.square().mean()


@torch.no_grad()
def ctd_metrics(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-clip evaluation metrics: unclipped MSE and mean token cosine similarity, each (N,)."""
    p, t = prediction.float().flatten(1, -2), target.float().flatten(1, -2)  # (N, tokens, D)
    return {
        "mse": (p - t).square().mean(dim=(1, 2)),
        "cosine": F.cosine_similarity(p, t, dim=-1).mean(dim=1),
    }


def token_alignment_loss(tokens: torch.Tensor, labels: torch.Tensor, object_share: torch.Tensor,
                         targets: torch.Tensor, temperature: float = 0.05, min_object_share: float = 0.3,
                         background_weight: float = 0.2, mse_weight: float = 1.0, reduce: bool = True) -> torch.Tensor:
    """Token alignment (training/align.py). tokens (B, L, d): projector outputs; labels (B,): each clip's object;
    object_share (B, L): the share of each token's cell its box covers; targets (C + 1, d): the captions' embeddings,
    the last row the background's. A token covered by >= min_object_share is its object's, the others background;
    each is classified by cosine similarity / temperature against every target (weight 1, background tokens
    background_weight) and pulled towards its target by an MSE (weight mse_weight). Returns the mean, or with
    reduce=False each clip's (B,)."""
    background = targets.shape[0] - 1
    covered = object_share >= min_object_share
    target = torch.where(covered, labels[:, None], torch.full_like(labels[:, None], background))  # (B, L)
    weight = torch.where(covered, 1.0, background_weight)
    logits = F.normalize(tokens, dim=-1) @ F.normalize(targets, dim=-1).T / temperature  # (B, L, C + 1)
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # (B, L)
    mse = (tokens - targets[target]).square().mean(-1)  # (B, L)
    per_clip = (ce * weight).sum(1) / weight.sum(1) + mse_weight * mse.mean(1)
    return per_clip.mean() if reduce else per_clip


def token_distillation_loss(tokens: torch.Tensor, targets: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """A student's LLM tokens (B, L, d) against a teacher's on the same grid (align.py --distill_from): MSE + (1 -
    cosine similarity), both over the tokens. At the scale of LLM input embeddings the MSE alone is ~1e-3 and would
    leave the direction untaught; the cosine term carries it. Returns the mean, or with reduce=False each clip's (B,)."""
    per_clip = (tokens - targets).square().mean((1, 2)) + (1 - F.cosine_similarity(tokens, targets, dim=-1)).mean(1)
    return per_clip.mean() if reduce else per_clip
