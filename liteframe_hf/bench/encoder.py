"""LiteFrame encoder speed work, before/after: the shipped implementation against a textbook one, same weights.

"textbook" is docs/design.md's "Architecture" written the obvious way: eager attention (matmul, softmax, matmul), the depth-wise
temporal conv as `nn.functional.conv1d(groups=D)` on a channels-first (N*L, D, T) copy of every block's tokens,
and token merging as a strided `conv3d(groups=D)` on a channels-first (N, D, T, H, W) copy. The shipped encoder
uses SDPA, computes the temporal conv as shifted multiply-adds in the native (N, T, L, D) layout with the residual
folded in, and the merge as multiply-adds over strided sub-grids: no layout copies. "previous" is the shipped
encoder before its last speed change (a zero-padded copy for the conv, an einsum for the merge). The rows in
between show what each change buys; `--compile` adds `torch.compile` of the shipped encoder. Every row's output is
compared with an fp32 forward of the same weights (random, temporal convs included, so the check is not vacuous),
by ||out - ref|| / ||ref||.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..modeling.configuration_liteframe import LiteFrameVisionConfig
from ..modeling.modeling_liteframe import DepthwiseTemporalConv, LiteFrameTokenMerger, LiteFrameVisionModel
from . import (
    environment_header,
    exact_fp32,
    markdown_table,
    median,
    relative_error,
    resolve_device,
    time_call,
    write_json,
)


def random_encoder(variant: str, temporal_std: float, seed: int = 0, **overrides) -> LiteFrameVisionModel:
    """A `LiteFrameVisionModel` of `variant` with seeded random weights, its temporal mixers included: they start
    at zero by design, which would hide them from any equivalence check. In eval mode."""
    torch.manual_seed(seed)
    model = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant(variant, **overrides)).eval()
    with torch.no_grad():
        for layer in model.layers:
            if layer.temporal_mixer is not None:
                for p in layer.temporal_mixer.parameters():
                    p.normal_(0, temporal_std)
    return model


class ChannelsFirstTemporalConv(nn.Module):
    """Residual depth-wise Conv1d over frames through cuDNN/oneDNN's conv1d: transpose to (N*L, D, T) and back."""

    def __init__(self, conv: DepthwiseTemporalConv):
        super().__init__()
        self.weight, self.bias, self.padding = conv.weight, conv.bias, conv.kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, L, D)
        n, t, l, d = x.shape
        y = F.conv1d(x.permute(0, 2, 3, 1).reshape(n * l, d, t), self.weight, self.bias, padding=self.padding, groups=d)
        return x + y.view(n, l, d, t).permute(0, 3, 1, 2)


class ChannelsFirstTokenMerger(nn.Module):
    """Strided depth-wise Conv3d on a channels-first (N, D, T, H, W) copy of the patch grid."""

    def __init__(self, merger: LiteFrameTokenMerger):
        super().__init__()
        self.weight, self.bias, self.factors = merger.weight, merger.bias, merger.factors

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        n, t, _, d = x.shape
        cls = x[:, :, 0].reshape(n, t // self.factors[0], self.factors[0], d).mean(2)
        patches = x[:, :, 1:].reshape(n, t, grid[0], grid[1], d).permute(0, 4, 1, 2, 3)  # (N, D, T, H, W)
        merged = F.conv3d(patches, self.weight, self.bias, stride=self.factors, groups=d)  # (N, D, T', H', W')
        merged = merged.flatten(3).permute(0, 2, 3, 1)  # (N, T', H'*W', D)
        return torch.cat([cls.unsqueeze(2), merged], dim=2)


class PaddedTemporalConv(ChannelsFirstTemporalConv):
    """The previous shipped conv: a zero-padded copy of the clip, then k shifted multiply-adds, then the residual."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, L, D)
        t = x.shape[1]
        padded = F.pad(x, (0, 0, 0, 0, self.padding, self.padding))
        out = self.bias.expand_as(x)
        for tap in range(self.weight.shape[-1]):
            out = out + padded[:, tap : tap + t] * self.weight[:, 0, tap]
        return x + out


class EinsumTokenMerger(ChannelsFirstTokenMerger):
    """The previous shipped merger: one einsum over the reshaped (t, h, w) blocks."""

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        n, t, _, d = x.shape
        (ft, fh, fw), (gh, gw) = self.factors, grid
        cls = x[:, :, 0].reshape(n, t // ft, ft, d).mean(2)
        blocks = x[:, :, 1:].reshape(n, t // ft, ft, gh // fh, fh, gw // fw, fw, d)
        merged = torch.einsum("nTaHbWcd,abcd->nTHWd", blocks, self.weight[:, 0].permute(1, 2, 3, 0)) + self.bias
        return torch.cat([cls.unsqueeze(2), merged.flatten(2, 3)], dim=2)


def swap_convs(model: LiteFrameVisionModel, conv_cls: type, merger_cls: type) -> LiteFrameVisionModel:
    """A copy of `model` whose temporal convs and token mergers are `conv_cls` / `merger_cls` (same weights)."""
    model = copy.deepcopy(model)
    for layer in model.layers:
        if isinstance(layer.temporal_mixer, DepthwiseTemporalConv):
            layer.temporal_mixer = conv_cls(layer.temporal_mixer)
    for key, merger in list(model.token_mergers.items()):
        model.token_mergers[key] = merger_cls(merger)
    return model


def textbook_convs(model: LiteFrameVisionModel) -> LiteFrameVisionModel:
    return swap_convs(model, ChannelsFirstTemporalConv, ChannelsFirstTokenMerger)


def with_attention(model: LiteFrameVisionModel, attn: str) -> LiteFrameVisionModel:
    model = copy.deepcopy(model)
    model.config._attn_implementation = attn
    return model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="liteframe-b", help="LiteFrameVisionConfig variant")
    parser.add_argument("--frames", type=int, default=8, help="frames per forward pass (multiple of 4)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--warmup", type=int, default=None, help="default: 40 on cuda, 3 on cpu")
    parser.add_argument("--repeats", type=int, default=None, help="default: 100 on cuda, 10 on cpu")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (compilation takes minutes on a CPU)")
    parser.add_argument("--flash", action="store_true", help="add a flash_attention_2 row (GPU with flash-attn installed)")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")


def main(args: argparse.Namespace) -> int:
    if args.frames % 4:
        raise SystemExit(f"--frames must be a multiple of 4 (clip length), got {args.frames}")
    device, dtype, warmup, repeats = resolve_device(args, cpu_warmup=3, cpu_repeats=10)

    shipped = random_encoder(args.variant, temporal_std=0.1, image_size=args.image_size)  # convs active: the check bites
    shipped.config._attn_implementation = "sdpa"
    shipped = shipped.to(device=device, dtype=dtype)
    rows = [
        ("textbook: eager attention, channels-first conv1d/conv3d", textbook_convs(with_attention(shipped, "eager"))),
        ("SDPA, channels-first conv1d/conv3d", textbook_convs(shipped)),
        ("eager attention, native-layout convs", with_attention(shipped, "eager")),
        ("previous: SDPA, padded-copy conv, einsum merge", swap_convs(shipped, PaddedTemporalConv, EinsumTokenMerger)),
        ("shipped: SDPA, native-layout convs", shipped),
    ]
    if args.flash:
        rows.append(("flash_attention_2, native-layout convs", with_attention(shipped, "flash_attention_2")))
    if args.compile:
        rows.append(("shipped + torch.compile", torch.compile(shipped)))

    clips = torch.randn(args.frames // 4, 4, 3, args.image_size, args.image_size,
                        generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    with torch.no_grad(), exact_fp32():
        reference = copy.deepcopy(shipped).float()(clips.float()).last_hidden_state
    print(environment_header(device, dtype=str(dtype).replace("torch.", ""), variant=args.variant, frames=args.frames,
                             image=args.image_size, timing=f"median of {repeats} after {warmup} warm-up"))
    results, base_ms = [], None
    for name, model in rows:
        with torch.no_grad():
            error = relative_error(model(clips).last_hidden_state, reference)
            ms = median(time_call(lambda: model(clips), device, warmup, repeats))
        base_ms = base_ms or ms
        results.append({"implementation": name, "latency_ms": ms, "speedup_vs_textbook": base_ms / ms,
                        "rel_error_vs_fp32": error})
        print(f"  {name:<58} {ms:9.1f} ms  x{base_ms / ms:.2f}  (rel. error vs fp32 {error:.1e})", flush=True)
    print()
    print(markdown_table(["implementation", "latency ms", "speed-up vs textbook", "rel. error vs fp32"],
                         [[r["implementation"], r["latency_ms"], r["speedup_vs_textbook"],
                           f"{r['rel_error_vs_fp32']:.1e}"] for r in results]))
    write_json(args.json, {"device": environment_header(device), "dtype": str(dtype), "variant": args.variant,
                           "frames": args.frames, "image_size": args.image_size, "warmup": warmup,
                           "repeats": repeats, "rows": results})
    # fp32 rows are the reference's arithmetic reordered; bf16 rows carry bf16 rounding through 12 blocks.
    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    bad = [r["implementation"] for r in results if not r["rel_error_vs_fp32"] <= tolerance]
    if bad:
        print(f"outputs differ from the fp32 forward beyond {tolerance}: {bad}")
        return 1
    return 0
