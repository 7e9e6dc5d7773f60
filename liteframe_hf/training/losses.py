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

__all__ = ["ctd_loss", "ctd_metrics"]


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
