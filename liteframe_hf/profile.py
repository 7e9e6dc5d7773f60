"""Parameter counts and the paper's FLOP rule, for any vision model (ours or transformers').

Paper rule: FLOPs = 2 x MACs of Linear and Conv layers; attention score/value matmuls and norms are not
counted. MACs are read off the shapes each layer actually sees in a forward pass, so the count follows the
real token flow (token merging, CLS tokens, interpolated resolutions). Modules that compute a convolution
without `nn.ConvNd` (our channels-last depth-wise convs) declare their MACs with `count_macs(input, output)`.
Run on the meta device, counting costs no compute even at 256 frames of 448 px.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if hasattr(module, "count_macs"):
        return int(module.count_macs(inputs[0] if inputs else None, output))
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, _CONVS):
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return 0


def count_macs(model: nn.Module, run: Callable[[nn.Module], object]) -> int:
    """MACs of Linear/Conv layers during `run(model)` (attention matmuls excluded, per the paper)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += _layer_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Linear, *_CONVS)) or hasattr(m, "count_macs")
    ]
    try:
        with torch.no_grad():
            run(model)
    finally:
        for handle in handles:
            handle.remove()
    return total


def paper_flops(model: nn.Module, pixel_values_shape: tuple[int, ...], call: Callable | None = None) -> int:
    """Paper-rule FLOPs for one forward pass on an input of `pixel_values_shape`, computed on the meta device
    (no memory, no compute). `model` may live on any device; a meta copy is made from its config when possible."""
    meta_model = _meta_copy(model)
    pixels = torch.empty(pixel_values_shape, device="meta")
    call = call or (lambda m: m(pixels))
    return 2 * count_macs(meta_model, call)


def _meta_copy(model: nn.Module) -> nn.Module:
    if next(model.parameters()).device.type == "meta":
        return model
    with torch.device("meta"):
        return type(model)(model.config)
