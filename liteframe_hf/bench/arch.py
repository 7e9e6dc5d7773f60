"""Encoder architectures side by side: params, paper-rule TFLOPs and latency of the paper's variants and the
InternViT-300M teacher, with the paper's figures in adjacent columns.

Weights are random (latency and FLOPs do not depend on them). The teacher is transformers' own
`InternVLVisionModel` with InternViT-300M's shape, fed frames; LiteFrame variants are fed 4-frame clips.
"""

from __future__ import annotations

import argparse

import torch
from tqdm.auto import tqdm
from transformers import InternVLVisionModel

from ..modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameVisionConfig
from ..modeling.modeling_liteframe import LiteFrameVisionModel
from ..paper import ARCH_TABLE, internvit_300m_config
from ..profile import count_parameters, paper_flops
from . import environment_header, markdown_table, median, resolve_device, time_call, write_json

VARIANTS = ["vit-b-12l", "tempattn", "spatiotempattn", "tempconv", "dwtempconv"]
TEACHER = "internvit-300m"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=256, help="frames per forward pass (multiple of 4)")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"])
    parser.add_argument("--warmup", type=int, default=None, help="default: 40 on cuda, 3 on cpu")
    parser.add_argument("--repeats", type=int, default=None, help="default: 100 on cuda, 10 on cpu")
    parser.add_argument("--variants", nargs="+", default=[TEACHER, *VARIANTS],
                        help=f"rows to run (default: the teacher and the paper's variants; any of "
                             f"{', '.join(VISION_VARIANTS)} works, e.g. liteframe-micro for a micro checkpoint's card)")
    parser.add_argument("--flops-only", action="store_true", help="params and TFLOPs only (meta device, instant)")
    parser.add_argument("--json", default=None, help="write the rows as JSON here")


def build(name: str, device: torch.device, dtype: torch.dtype, attn: str, meta: bool = False) -> torch.nn.Module:
    config = internvit_300m_config() if name == TEACHER else LiteFrameVisionConfig.from_variant(name)
    config._attn_implementation = attn
    cls = InternVLVisionModel if name == TEACHER else LiteFrameVisionModel
    with torch.device("meta" if meta else device):
        model = cls(config)
    return model.to(dtype=dtype).eval() if not meta else model


def input_shape(name: str, frames: int, image_size: int) -> tuple[int, ...]:
    if name == TEACHER:
        return (frames, 3, image_size, image_size)  # per-frame image encoder
    clip_len = LiteFrameVisionConfig.from_variant(name).clip_len
    return (frames // clip_len, clip_len, 3, image_size, image_size)  # clips


def main(args: argparse.Namespace) -> int:
    if args.frames % 4:
        raise SystemExit(f"--frames must be a multiple of 4 (clip length), got {args.frames}")
    device, dtype, warmup, repeats = resolve_device(args, cpu_warmup=3, cpu_repeats=10)

    unknown = [name for name in args.variants if name != TEACHER and name not in VISION_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown --variants {unknown}: choose from {TEACHER}, {', '.join(VISION_VARIANTS)}")
    rows, records = [], []
    # One step per timed or warm-up forward pass: a CPU run of the default rows takes minutes.
    progress = tqdm(total=0 if args.flops_only else len(args.variants) * (warmup + repeats), unit="pass",
                    desc="bench arch", disable=args.flops_only)
    for name in args.variants:
        progress.set_postfix_str(name)
        shape = input_shape(name, args.frames, args.image_size)
        meta_model = build(name, device, dtype, args.attn, meta=True)
        params = count_parameters(meta_model) / 1e6
        tflops = paper_flops(meta_model, shape) / 1e12
        latency = None
        if not args.flops_only:
            model = build(name, device, dtype, args.attn)
            pixels = torch.randn(shape, device=device, dtype=dtype)
            with torch.inference_mode():
                latency = median(time_call(lambda: (model(pixels), progress.update()), device, warmup, repeats))
            del model, pixels
        # The paper reports its own variants only (None for liteframe-micro and the other CPU-sized ones).
        paper_ms, paper_tflops, paper_params = ARCH_TABLE.get(name if name != "liteframe-b" else "dwtempconv",
                                                              (None, None, None))
        rows.append([name, params, paper_params, tflops, paper_tflops, latency, paper_ms])
        records.append(dict(variant=name, params_m=params, tflops=tflops, latency_ms=latency,
                            paper_params_m=paper_params, paper_tflops=paper_tflops, paper_latency_ms=paper_ms))

    progress.close()
    print(environment_header(device, dtype=str(dtype).replace("torch.", ""), attention=args.attn,
                             frames=args.frames, image=args.image_size,
                             timing="flops only" if args.flops_only else f"median of {repeats} after {warmup} warm-up"))
    print("FLOP rule: 2 x MACs of Linear/Conv layers, attention matmuls excluded (the paper's). Paper latency: A100, 256 frames, 448 px.")
    print(markdown_table(["variant", "params M", "paper params M", "TFLOPs", "paper TFLOPs", "latency ms", "paper ms"], rows))
    by_name = {r["variant"]: r for r in records}
    if not args.flops_only and TEACHER in by_name and "dwtempconv" in by_name:
        ratio = by_name[TEACHER]["latency_ms"] / by_name["dwtempconv"]["latency_ms"]
        flop_ratio = by_name[TEACHER]["tflops"] / by_name["dwtempconv"]["tflops"]
        print(f"teacher / LiteFrame latency ratio: {ratio:.2f}x (FLOP ratio {flop_ratio:.2f}x; paper A100 5.97x)")
    timed = not args.flops_only  # no timing ran in --flops-only mode: record none
    write_json(args.json, {"device": str(device), "dtype": str(dtype), "frames": args.frames, "image_size": args.image_size,
                           "warmup": warmup if timed else None, "repeats": repeats if timed else None, "rows": records})
    return 0
