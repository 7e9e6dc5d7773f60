"""`liteframe demo`: the embedded default micro model (`liteframe-micro-s`) answering a question about a long video.

By default it asks a multiple-choice question about a held-out video of the needle benchmark's test split (its
first video, or video N with `--test-video N`, rendered on first use from registry footage and cut-outs, as
`liteframe data needle --split test --first N+1` does) and prints the question, the options, the model's answer,
the truth and the stage timings. The answer is the option the model finds most likely as its reply (`--scoring
likelihood`, the protocol the micro models are trained and evaluated with; `generate` decodes a letter instead).
With `--video` (and `--question`) it answers a free-form question about any video. The model is built once from the
registry assets and the trained weights shipped in the package (`liteframe_hf.micro`).
"""

from __future__ import annotations

import argparse
import time

import torch

from .micro import DEFAULT_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", default=None,
                        help="any video file (default: the first test video of the needle benchmark, with its questions)")
    parser.add_argument("--question", default=None,
                        help="a free-form question about --video (default: 'What happens in this video?'); "
                             "without --video, the benchmark question's id or index (default: the video's first)")
    parser.add_argument("--test-video", type=int, default=0, metavar="N",
                        help="without --video: ask about the needle test split's video N (default 0, the first; the "
                             "first N+1 videos are rendered once)")
    parser.add_argument("--num-frames", type=int, default=64,
                        help="frames sampled from the video (default 64: 16 clips, 256 LLM tokens)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--model", default=None,
                        help="a LiteFrame folder or micro model name (default: build/reuse the shipped default, "
                             f"{DEFAULT_NAME})")
    parser.add_argument("--scoring", choices=("likelihood", "generate"), default="likelihood",
                        help="how a benchmark question is answered: likelihood (default): the most likely option as "
                             "the reply to the question (the micro models' protocol, `liteframe eval --scoring`); "
                             "generate: the answer letter by greedy decoding of the standard MCQ prompt")


def _benchmark_question(pick: str | None, index: int = 0):
    """A question of the needle test split's video `index` (the split's first index+1 videos rendered once into
    $LITEFRAME_HOME/bench/needle, as `liteframe data needle --split test --first index+1` does)."""
    from .assets import liteframe_home
    from .data.needle import SPLIT_SPECS, build_split
    from .eval.data import load_manifest

    if not 0 <= index < SPLIT_SPECS["test"].videos:
        last = SPLIT_SPECS["test"].videos - 1
        raise SystemExit(f"liteframe demo: --test-video {index}: the test split has videos 0-{last}")
    manifest = build_split("test", liteframe_home() / "bench" / "needle", first=index + 1)
    questions = load_manifest(manifest).questions
    video = list(dict.fromkeys(q.video for q in questions))[index]
    questions = [q for q in questions if q.video == video]
    if pick is None:
        return questions[0]
    by_id = {q.id: q for q in questions}
    if pick in by_id:
        return by_id[pick]
    if pick.isdigit() and int(pick) < len(questions):
        return questions[int(pick)]
    raise SystemExit(f"liteframe demo: no question {pick!r} in {manifest}; choose an index 0-{len(questions) - 1} "
                     f"or one of {', '.join(by_id)}")


def main(args: argparse.Namespace) -> int:
    from .eval.run import ask, load_model, score_question
    from .metrics.mcq_accuracy.mcq_accuracy import parse_answer
    from .profile import count_parameters

    start = time.perf_counter()
    model, processor, info = load_model(args.model or DEFAULT_NAME)
    question = None if args.video else _benchmark_question(args.question, args.test_video)
    video = args.video or str(question.video)
    cloze = question is not None and args.scoring == "likelihood"
    prompt = ((question.question if cloze else question.prompt) if question
              else (args.question or "What happens in this video?"))
    config, vision = model.config, model.model.vision_tower
    print(f"model: {info['model_path']} (ready in {time.perf_counter() - start:.1f} s)")
    print(f"  encoder   {count_parameters(vision) / 1e6:6.2f}M params  ({config.vision_config.hidden_size}-wide, "
          f"{config.vision_config.num_hidden_layers} blocks, token merging {config.vision_config.downsample_layers})")
    print(f"  projector {count_parameters(model.model.multi_modal_projector) / 1e6:6.2f}M params")
    print(f"  LLM       {count_parameters(model.model.language_model) / 1e6:6.2f}M params ({config.text_config.model_type})")

    # One pass through the processor to show the shapes; answering below repeats it with timings.
    chat = [{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": prompt}]}]
    inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt",
                                           processor_kwargs={"num_frames": args.num_frames, "return_metadata": True})
    pixels = inputs["pixel_values_videos"]
    stamps = inputs["video_metadata"][0].timestamps
    with torch.inference_mode():
        grid = vision(pixels).last_hidden_state
    per_clip, clip_len = config.tokens_per_clip(), config.vision_config.clip_len
    print(f"video: {video} ({inputs['video_metadata'][0].duration:.1f} s)")
    print(f"  sampled frames   {pixels.shape[1]} from {stamps[0]:.2f} s to {stamps[-1]:.2f} s")
    print(f"  pixel_values     {tuple(pixels.shape)}  (videos, frames, 3, H, W)")
    print(f"  encoder output   {tuple(grid.shape)}  (clips, T', H', W', D) in the teacher's space")
    print(f"  LLM tokens       {per_clip} per {clip_len}-frame clip = {per_clip / clip_len:g} per frame, "
          f"{per_clip * pixels.shape[1] // clip_len} for the video; prompt {inputs['input_ids'].shape[1]} tokens")

    if cloze:
        answer = score_question(model, processor, question, args.num_frames)
    else:
        answer = ask(model, processor, video, prompt, args.num_frames, max_new_tokens=args.max_new_tokens)
    if question is not None:
        print(f"question ({question.id}): {question.question}")
        scores = answer.option_scores or [None] * question.num_options
        for letter, option, score in zip("ABCDEFGH", question.options, scores):
            print(f"  {letter}. {option}" + (f"  (mean log-probability per token {score:.3f})" if cloze else ""))
        picked = parse_answer(answer.text, question.num_options)
        verdict = "correct" if picked == question.answer else "wrong"
        print(f"answer: {answer.text!r} -> {picked or 'no option letter'}; truth: {question.answer} ({verdict})")
    else:
        print(f"question: {prompt}")
        print(f"answer: {answer.text!r}")
    print("stage timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in answer.timings.items()))
    return 0
