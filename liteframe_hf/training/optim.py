"""AdamW with linear warm-up then cosine decay (the paper's CTD and LMA schedule)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "warmup_steps"]

# Parameters that get no weight decay besides 1-D ones (biases, norms, LayerScale, depth-wise conv biases).
_NO_DECAY_NAMES = ("cls_token", "position_embeddings", "embed_tokens", "mask_token")


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay only on matrices/kernels."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or any(n in name for n in _NO_DECAY_NAMES) else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters: nothing to optimise")
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_epsilon,
    )


def warmup_steps(cfg: TrainConfig) -> int:
    return cfg.warmup_steps if cfg.warmup_steps > 0 else int(round(cfg.warmup_ratio * cfg.max_steps))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """lr(step) = peak * step / warmup during warm-up, then a half cosine from peak to peak * min_lr_ratio at max_steps.

    Stepped once per optimizer step (not per process or micro-batch), so the schedule is the same whatever the
    number of processes.
    """
    warm, total, floor = warmup_steps(cfg), cfg.max_steps, cfg.min_lr_ratio

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)  # never exactly 0: the first step already moves the weights
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
