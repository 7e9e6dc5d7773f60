"""`liteframe eval`: multiple-choice video QA accuracy and per-question latency, at one or more frame counts.

    liteframe eval MODEL --data MANIFEST [--frames 8 16 32 64] [--limit N] [--json OUT] [--markdown OUT] [--plot OUT]
                         [--reuse-video]

MODEL is a LiteFrame folder, a Hub id (loaded with AutoModel / AutoProcessor, the path users take) or a name
that `liteframe_hf.micro` builds (`liteframe-micro`, ...). Each question is asked alone (batch 1) with the
standard MCQ prompt and answered by greedy decoding; the answer's first option letter is scored by the
`mcq_accuracy` evaluate module shipped in this package (unparseable answers count as wrong and are counted).

Latency protocol: every question runs the whole path a user's single question runs, and nothing is cached
between questions: decode (the processor's video decoding: file -> sampled frames at the encoder's size),
preprocess (normalisation, prompt, tokenisation), encode (`get_video_features`: encoder + projector), prefill
(the first LM forward, up to the first token's logits) and generate (the remaining tokens). Stages are timed
with perf_counter around each stage (CUDA-synchronised on a GPU), the same runs that are scored. A video asked
several questions is decoded once per question; only the operating system's file cache is shared.

With --reuse-video the questions about one video share a video session (`VideoSession`): the video is decoded,
encoded and pre-filled once and each question generates from a copy of that prefix cache. Answers are the default
protocol's (greedy, token for token); each question's timings are what it cost (the first question of a video pays
the shared stages), and each point also reports the first questions' and the follow-ups' latencies apart.

With --scoring likelihood a question is answered in the cloze formulation instead of by a letter: the prompt is the
question alone, and the answer is the option the model finds most likely as its whole reply (mean log-probability
per token; `VideoSession.score`). Small LLMs are scored this way (SmolLM2's own evaluations, OLMES): SmolLM2-135M
cannot bind answer letters to options (docs/eval.md). The `generate` stage is then the options' scoring pass.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .data import Manifest, ManifestError, Question, asked_needle_index, category_counts, load_manifest
from .plot import path_latency

STAGES = ("decode", "preprocess", "encode", "prefill", "generate")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MAX_NEW_TOKENS = 16  # lmms-eval's Video-MME setting; a letter needs one or two
SCORINGS = ("generate", "likelihood")  # the answer letter by greedy decoding / the most likely option's text


# ---------------------------------------------------------------------------------------------- model lookup
# Extra names resolved to a folder built on first use: name -> callable(progress=...) -> folder. The micro models
# (`liteframe_hf.micro.MICRO_MODELS`: liteframe-micro, teacher-vlm-micro, its post-hoc WAP variant) are added
# automatically; they are LiteFrame configurations, so they load and run like any LiteFrame folder.
NAMED_MODELS: dict[str, Callable[..., Path]] = {}


def named_models() -> dict[str, Callable[..., Path]]:
    """Every built-in name: the micro models, then NAMED_MODELS."""
    from functools import partial

    from .. import micro

    table = {name: partial(micro.build_micro_model, name=name) for name in micro.MICRO_MODELS}
    table.update(NAMED_MODELS)
    return table


def resolve_model(ref: str, progress=print) -> tuple[str, str]:
    """(loadable path or Hub id, label) for a folder, a Hub id or a built-in name."""
    table = named_models()
    if ref in table:
        return str(table[ref](progress=progress)), ref
    path = Path(ref)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"{ref!r} is not a model folder (no config.json); built-in names: {', '.join(table)}")
        return str(path), path.resolve().name
    if ref.count("/") == 1 and not ref.startswith((".", "/")):
        return ref, ref  # a Hub id: from_pretrained reads it from the cache (offline) or the Hub
    raise ValueError(f"model {ref!r} is neither a folder, a Hub id (owner/name) nor a built-in name "
                     f"({', '.join(table)})")


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked but CUDA is not available on this machine")
    return device


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[dtype]


def load_model(ref: str, device: str = "auto", dtype: str = "auto", progress=print):
    """(model, processor, info) through AutoModel / AutoProcessor, the real loading path."""
    import liteframe_hf  # noqa: F401 - registers LiteFrame with the Auto classes
    from transformers import AutoModel, AutoProcessor

    path, label = resolve_model(ref, progress=progress)
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, torch_device)
    model = AutoModel.from_pretrained(path, dtype=torch_dtype).to(torch_device).eval()
    if not hasattr(model, "generate") or getattr(model.config, "model_type", None) != "liteframe":
        raise ValueError(f"{ref!r} is a {type(model).__name__}, not a LiteFrame video LLM (model_type 'liteframe')")
    processor = AutoProcessor.from_pretrained(path)
    info = {
        "model": ref,
        "label": label,
        "model_path": path,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "tokens_per_clip": model.config.tokens_per_clip(),
        "clip_len": model.config.vision_config.clip_len,
        "device": str(torch_device),
        "dtype": str(torch_dtype).replace("torch.", ""),
    }
    return model, processor, info


# ------------------------------------------------------------------------------------------- one question
@dataclass
class Answer:
    text: str
    timings: dict[str, float]  # ms per stage
    new_tokens: int
    prompt_tokens: int
    token_ids: list[int] | None = None  # the generated tokens, to compare runs token for token
    option_scores: list[float] | None = None  # --scoring likelihood: each option's mean log-probability per token
    frame_times: list[float] | None = None  # the sampled frames' timestamps (s)


def answer_question(model, processor, question: Question, num_frames: int, max_new_tokens: int) -> Answer:
    """Ask one manifest question about its video (batch 1, greedy, the standard MCQ prompt), timed per stage."""
    return ask(model, processor, question.video, question.prompt, num_frames, max_new_tokens=max_new_tokens)


def ask(model, processor, video, prompt: str, num_frames: int | None = None, fps: float | None = None,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, **generate_kwargs) -> Answer:
    """One video + one text prompt through the processor and `generate` (batch 1), each stage timed.
    Greedy unless `generate_kwargs` asks otherwise."""
    from transformers import LogitsProcessorList

    from ..modeling.session_liteframe import FirstStepClock, device_sync, time_method

    device = model.device
    sync = device_sync(device)
    timings: dict[str, float] = {"decode": 0.0}
    chat = [{"role": "user", "content": [{"type": "video", "video": str(video)}, {"type": "text", "text": prompt}]}]
    sampling = {"num_frames": num_frames} if num_frames is not None else {"fps": fps} if fps is not None else {}
    start = time.perf_counter()
    # the processor's decoding step, timed inside the processor call
    with time_method(processor.video_processor, "fetch_videos", timings, "decode"):
        inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                               return_tensors="pt",
                                               processor_kwargs={**sampling, "return_metadata": True})
    metadata = inputs.pop("video_metadata", None)
    inputs = inputs.to(device)
    inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(model.dtype)
    sync()
    timings["preprocess"] = (time.perf_counter() - start) * 1e3 - timings["decode"]

    with torch.inference_mode():
        start = time.perf_counter()
        features = model.get_video_features(inputs.pop("pixel_values_videos"), inputs.pop("video_num_frames", None))
        sync()
        timings["encode"] = (time.perf_counter() - start) * 1e3

        clock = FirstStepClock(sync)
        start = time.perf_counter()
        generate_kwargs = {"do_sample": False, **generate_kwargs}
        sequences = model.generate(**inputs, mm_encoder_outputs={"video": features}, max_new_tokens=max_new_tokens,
                                   logits_processor=LogitsProcessorList([clock]), **generate_kwargs)
        sync()
        end = time.perf_counter()
    first = clock.first or end
    timings["prefill"], timings["generate"] = (first - start) * 1e3, (end - first) * 1e3
    prompt_tokens = inputs["input_ids"].shape[1]
    new = sequences[0, prompt_tokens:]
    text = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return Answer(text=text, timings=timings, new_tokens=int(new.numel()), prompt_tokens=int(prompt_tokens),
                  token_ids=new.tolist(), frame_times=_frame_times(metadata))


def _frame_times(metadata) -> list[float] | None:
    """The sampled frames' timestamps (s) from the processor's `video_metadata`; None when it has none (frames given
    without a frame rate)."""
    times = metadata[0].timestamps if metadata else None
    return [float(t) for t in times] if times is not None else None


def open_session(model, processor, video, num_frames: int | None = None, fps: float | None = None):
    """A `VideoSession` on one video (decode, encode and the video's prefill, timed in `session.timings`)."""
    from ..modeling.session_liteframe import VideoSession

    sampling = {"num_frames": num_frames} if num_frames is not None else {"fps": fps} if fps is not None else {}
    return VideoSession(model, processor, str(video), processor_kwargs=sampling)


def ask_in_session(session, prompt: str, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, first: bool = False,
                   **generate_kwargs) -> Answer:
    """One question about a session's video (greedy unless `generate_kwargs` say otherwise). Its timings are what it
    cost: the question's own stages, plus the session's shared ones when `first` (the question that opened it)."""
    generate_kwargs = {"do_sample": False, **generate_kwargs}
    out = session.generate(question=prompt, max_new_tokens=max_new_tokens, **generate_kwargs)
    shared, own = session.timings if first else {}, out.timings
    timings = {"decode": shared.get("decode", 0.0), "preprocess": shared.get("preprocess", 0.0) + own["preprocess"],
               "encode": shared.get("encode", 0.0), "prefill": shared.get("prefill", 0.0) + own["copy"] + own["prefill"],
               "generate": own["generate"]}
    new = out.sequences[0, out.prompt_length:]
    text = session.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return Answer(text=text, timings=timings, new_tokens=int(new.numel()), prompt_tokens=out.prompt_length,
                  token_ids=new.tolist(), frame_times=session.frame_times)


def score_in_session(session, question: Question, first: bool = False) -> Answer:
    """A manifest question answered in the cloze formulation: the most likely option as the reply to the question
    alone (`VideoSession.score`); the answer's text is that option's letter. Timings as `ask_in_session`'s, with
    the options' scoring pass as the generate stage."""
    from .data import LETTERS

    out = session.score(question.options, question=question.question)
    shared, own = session.timings if first else {}, out.timings
    timings = {"decode": shared.get("decode", 0.0), "preprocess": shared.get("preprocess", 0.0) + own["preprocess"],
               "encode": shared.get("encode", 0.0), "prefill": shared.get("prefill", 0.0) + own["copy"],
               "generate": own["score"]}
    return Answer(text=LETTERS[out.best], timings=timings, new_tokens=0, prompt_tokens=out.prompt_tokens,
                  token_ids=None, option_scores=[round(x, 4) for x in out.scores], frame_times=session.frame_times)


def score_question(model, processor, question: Question, num_frames: int) -> Answer:
    """`score_in_session` on a session of its own: the whole path for one question, nothing shared."""
    with open_session(model, processor, question.video, num_frames) as session:
        return score_in_session(session, question, first=True)


def _answers_by_video(model, processor, questions, num_frames: int, max_new_tokens: int, scoring: str = "generate"):
    """(index, question, Answer or VideoDecodeError, first) for every question, one video session per video: the
    questions of a video in manifest order, videos in order of their first question."""
    from ..modeling.video_decoding_liteframe import VideoDecodeError

    by_video: dict = {}
    for index, question in enumerate(questions):
        by_video.setdefault(question.video, []).append((index, question))
    for video, asked in by_video.items():
        try:
            session = open_session(model, processor, video, num_frames)
        except VideoDecodeError as error:
            for index, question in asked:
                yield index, question, error, False
            continue
        with session:
            for n, (index, question) in enumerate(asked):
                if scoring == "likelihood":
                    yield index, question, score_in_session(session, question, first=n == 0), n == 0
                else:
                    yield index, question, ask_in_session(session, question.prompt, max_new_tokens, first=n == 0), n == 0


# ------------------------------------------------------------------------------- did the frames catch the needle?
def needle_frames(question: Question, frame_times: list[float] | None) -> dict:
    """{"needle_frames": [k per needle]}: how many of the sampled frames fall inside each needle's on-screen
    interval [start, end) (needle benchmark rows, which list their `needles`); {} for other rows."""
    needles = question.extra.get("needles")
    if not needles or frame_times is None:
        return {}
    return {"needle_frames": [sum(float(n["start"]) <= t < float(n["end"]) for t in frame_times) for n in needles]}


def identity_by_needle_frames(records: list[dict], questions: dict[str, Question]) -> dict:
    """{"identity_by_needle_frames": {"0": {"correct", "n"}, "1": ..., "2": ..., "3+": ...}}: identity questions
    grouped by how many sampled frames showed the needle they ask about (the right option's object). It separates
    the two things frame scaling needs: catching the needle and recognising it once caught. {} without such rows."""
    groups: dict[str, dict[str, int]] = {}
    for record in records:
        question = questions[record["id"]]
        if question.category != "identity" or "needle_frames" not in record:
            continue
        asked = asked_needle_index(question.options, question.answer, question.extra["needles"])
        if asked is None:
            continue
        caught = record["needle_frames"][asked]
        group = groups.setdefault(str(caught) if caught < 3 else "3+", {"correct": 0, "n": 0})
        group["n"] += 1
        group["correct"] += int(record["correct"])
    return {"identity_by_needle_frames": dict(sorted(groups.items()))} if groups else {}


# ---------------------------------------------------------------------------------------------- scoring
def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "mean": round(statistics.fmean(values), 2)}


def score_point(metric, records: list[dict]) -> dict:
    """Accuracy, Wilson CI, chance and unparseable overall and per category, from the evaluate module."""

    def compute(rows):
        result = metric.compute(predictions=[r["prediction"] for r in rows], references=[r["answer"] for r in rows],
                                num_options=[r["num_options"] for r in rows])
        result["chance_within_ci"] = bool(result["ci_low"] <= result["chance"] <= result["ci_high"])
        return result

    overall = compute(records)
    by_category = {}
    for category in sorted({r["category"] for r in records}):
        by_category[category] = compute([r for r in records if r["category"] == category])
    return {**overall, "per_category": by_category}


def latency_summary(records: list[dict]) -> dict[str, dict[str, float]]:
    summary = {stage: _summary([r["timings"][stage] for r in records]) for stage in STAGES}
    summary["encode_prefill"] = _summary([r["timings"]["encode"] + r["timings"]["prefill"] for r in records])
    summary["total"] = _summary([sum(r["timings"][s] for s in STAGES) for r in records])
    return summary


def _session_latency(records: list[dict]) -> dict:
    """With --reuse-video: latency of the questions that opened a video's session and of the follow-ups, apart."""
    first = [r for r in records if r.get("first_of_video")]
    rest = [r for r in records if not r.get("first_of_video")]
    return {"latency_ms_first": latency_summary(first) if first else None,
            "latency_ms_followup": latency_summary(rest) if rest else None,
            "videos": len(first)}


def _answer_or_error(model, processor, question: Question, num_frames: int, max_new_tokens: int,
                     scoring: str = "generate"):
    from ..modeling.video_decoding_liteframe import VideoDecodeError

    try:
        if scoring == "likelihood":
            return score_question(model, processor, question, num_frames)
        return answer_question(model, processor, question, num_frames, max_new_tokens)
    except VideoDecodeError as error:
        return error


# --------------------------------------------------------------------------------------------- the run
def evaluate_model(
    model_ref: str,
    data: str | Path,
    frames: list[int],
    limit: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    warmup: int = 1,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    skip_bad: bool = False,
    progress: bool = True,
    log=print,
    command: str | None = None,
    reuse_video: bool = False,
    scoring: str = "generate",
) -> dict:
    """Evaluate one model at each frame count; returns the JSON-ready result (see docs/eval.md). With `reuse_video`
    the questions about one video share a video session (see the module docstring)."""
    from tqdm.auto import tqdm

    from ..metrics import load_mcq_accuracy
    from ..metrics.mcq_accuracy.mcq_accuracy import parse_answer
    from ..modeling.video_decoding_liteframe import VideoDecodeError

    if not frames or any(int(f) < 1 for f in frames):
        raise ValueError(f"--frames must be positive frame counts, got {frames}")
    if scoring not in SCORINGS:
        raise ValueError(f"--scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be positive, got {limit}")
    manifest: Manifest = load_manifest(data, skip_bad=skip_bad)
    questions = manifest.questions[:limit] if limit else manifest.questions
    if manifest.skipped:
        log(f"skipped {len(manifest.skipped)} bad row(s) of {manifest.path} (--skip-bad); first: {manifest.skipped[0]}")
    model, processor, info = load_model(model_ref, device=device, dtype=dtype, progress=log)
    metric = load_mcq_accuracy()
    load_start = _load_average()
    clip_len = info["clip_len"]

    points, predictions, skipped_at_run = [], [], []
    for requested in frames:
        num_frames = -(-int(requested) // clip_len) * clip_len  # the processor rounds up to whole clips
        for _ in range(warmup):  # untimed, unscored: first-call allocations and kernel selection
            if reuse_video:  # in a video session, as the timed questions run
                for _ in _answers_by_video(model, processor, questions[:1], num_frames, max_new_tokens, scoring):
                    pass
            else:
                _answer_or_error(model, processor, questions[0], num_frames, max_new_tokens, scoring)
        records = []
        bar = tqdm(total=len(questions), desc=f"{info['label']} @ {num_frames} frames", unit="q", disable=not progress)
        if reuse_video:
            answers = _answers_by_video(model, processor, questions, num_frames, max_new_tokens, scoring)
        else:
            answers = ((i, q, _answer_or_error(model, processor, q, num_frames, max_new_tokens, scoring), None)
                       for i, q in enumerate(questions))
        wall = time.perf_counter()
        for index, question, answer, first in answers:
            bar.update()
            if isinstance(answer, VideoDecodeError):
                where = f"{manifest.path}:{question.line} (id {question.id!r})"
                if not skip_bad:
                    raise ManifestError(f"{where}: {answer}. Pass --skip-bad to leave such rows out.") from answer
                skipped_at_run.append({"line": question.line, "id": question.id, "frames": num_frames,
                                       "reason": str(answer)})
                continue
            records.append({
                "id": question.id, "category": question.category, "frames": num_frames, "answer": question.answer,
                "num_options": question.num_options, "prediction": answer.text, "new_tokens": answer.new_tokens,
                "answer_ids": answer.token_ids,
                **({"option_scores": answer.option_scores} if answer.option_scores is not None else {}),
                "prompt_tokens": answer.prompt_tokens, "timings": {k: round(v, 3) for k, v in answer.timings.items()},
                **needle_frames(question, answer.frame_times),
                **({"first_of_video": first} if first is not None else {}), "_index": index,
            })
        wall = time.perf_counter() - wall
        bar.close()
        records.sort(key=lambda r: r.pop("_index"))  # manifest order, whichever order they ran in
        if not records:
            raise ManifestError(f"no question of {manifest.path} could be evaluated at {num_frames} frames")
        scored = score_point(metric, records)
        for record in records:
            record["parsed"] = parse_answer(record["prediction"], record["num_options"])
            record["correct"] = record["parsed"] == record["answer"]
        points.append({
            "frames": num_frames,
            "requested_frames": int(requested),
            "llm_video_tokens": num_frames // clip_len * info["tokens_per_clip"],
            "n": scored["total"],
            **{k: scored[k] for k in ("accuracy", "ci_low", "ci_high", "chance", "chance_within_ci", "correct",
                                      "unparseable")},
            "per_category": {c: {**r, "n": r["total"]} for c, r in scored["per_category"].items()},
            "prompt_tokens_median": statistics.median(r["prompt_tokens"] for r in records),
            "latency_ms": latency_summary(records),
            "wall_s": round(wall, 2),  # every question of the point, end to end (scoring excluded)
            **identity_by_needle_frames(records, {q.id: q for q in questions}),
            **(_session_latency(records) if reuse_video else {}),
        })
        predictions += records
        point = points[-1]
        log(f"{info['label']} @ {num_frames} frames: accuracy {100 * point['accuracy']:.1f} % "
            f"[{100 * point['ci_low']:.1f}, {100 * point['ci_high']:.1f}] (chance {100 * point['chance']:.1f} %), "
            f"n {point['n']}, unparseable {point['unparseable']}, total {point['latency_ms']['total']['median']:.0f} ms "
            f"median per question, {point['wall_s']:.1f} s in all")
        if point.get("identity_by_needle_frames"):
            log("  identity questions by sampled frames on the needle: " + ", ".join(
                f"{k}: {v['correct']}/{v['n']}" for k, v in point["identity_by_needle_frames"].items()))
        if reuse_video and point["latency_ms_first"] and point["latency_ms_followup"]:
            log(f"  video sessions: first question {point['latency_ms_first']['total']['median']:.0f} ms, follow-up "
                f"{point['latency_ms_followup']['total']['median']:.0f} ms median ({point['videos']} videos)")

    import transformers

    from .. import __version__

    result = {
        "kind": "accuracy",
        "title": f"Multiple-choice video QA: {manifest.split} (`liteframe eval`)",
        **{k: info[k] for k in ("model", "label", "model_path", "params_m", "tokens_per_clip", "device", "dtype")},
        "data": str(manifest.path),
        "split": manifest.split,
        "n": len(questions),
        **({"limit": limit} if limit else {}),  # absent: every question of the manifest
        "categories": category_counts(questions),
        "frames": [p["frames"] for p in points],
        "max_new_tokens": max_new_tokens,
        "warmup": warmup,
        "scoring": scoring,
        "prompt": ("question, one 'A. option' line per option, then: "
                   "\"Answer with the option's letter from the given choices directly.\"" if scoring == "generate" else
                   "the question alone; each option's text (+ end of turn) scored as the reply, mean log-probability "
                   "per token; the most likely option is the answer"),
        "latency_protocol": ("per question, batch 1, whole path, no cache; perf_counter per stage" if not reuse_video
                             else "per question, batch 1; the questions of a video share one video session (decode, "
                                  "encode, video prefill once; a copy of the prefix cache per question): each question's "
                                  "stages are what it cost; perf_counter per stage")
                            + (" with CUDA sync" if info["device"].startswith("cuda") else ""),
        "reuse_video": reuse_video,
        "device_name": torch.cuda.get_device_name() if info["device"].startswith("cuda") else _cpu_name(),
        "threads": torch.get_num_threads(),
        # Other work on the machine slows every stage: the 1-minute load average before and after the run.
        "load_average": {"start": load_start, "end": _load_average()},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "liteframe_hf": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **({"command": command} if command else {}),  # the shell command, when run from the CLI
        "skipped_rows": manifest.skipped + skipped_at_run,
        "points": points,
        "rows": card_rows(info["label"], manifest.split, points),
        "predictions": predictions,
    }
    return result


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not on every platform
        return None


def card_rows(label: str, split: str, points: list[dict]) -> list[dict]:
    """Flat rows (what the model card and the markdown table show): percentages, median latencies."""
    rows = []
    for p in points:
        row = {
            "model": label,
            "benchmark": split,
            "frames": p["frames"],
            "questions": p["n"],
            "accuracy_pct": round(100 * p["accuracy"], 1),
            "ci95_pct": f"{100 * p['ci_low']:.1f}-{100 * p['ci_high']:.1f}",
            "chance_pct": round(100 * p["chance"], 1),
            "unparseable": p["unparseable"],
        }
        row |= {f"{c}_acc_pct": round(100 * r["accuracy"], 1) for c, r in p["per_category"].items()}
        row |= {f"{s}_ms": p["latency_ms"][s]["median"] for s in ("decode", "encode", "prefill", "generate", "total")}
        rows.append(row)
    return rows


def _percent_ci(part: dict) -> str:
    return f"{100 * part['accuracy']:.1f} [{100 * part['ci_low']:.1f}, {100 * part['ci_high']:.1f}]"


def markdown_table(results: list[dict]) -> str:
    """One markdown table for one or more runs: accuracy overall and per category with 95 % Wilson CIs, the median
    latency of a question that runs the whole path per stage (`path_latency`), and with `--reuse-video` the median
    follow-up question's."""
    categories = sorted({c for r in results for p in r["points"] for c in p["per_category"]})
    sessions = any(p.get("latency_ms_followup") for r in results for p in r["points"])
    stages = ("decode", "encode", "prefill", "generate", "total")
    header = ["model", "frames", "n", "accuracy % [95 % CI]", "chance %", "unparseable"] + \
             [f"{c} % [95 % CI]" for c in categories] + [f"{s} ms" for s in stages] + \
             (["follow-up total ms"] if sessions else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in results:
        for p in r["points"]:
            cells = [r["label"], str(p["frames"]), str(p["n"]), _percent_ci(p), f"{100 * p['chance']:.1f}",
                     str(p["unparseable"])]
            cells += [_percent_ci(p["per_category"][c]) if c in p["per_category"] else "-" for c in categories]
            cells += [f"{path_latency(p)[s]['median']:.1f}" for s in stages]
            if sessions:
                followup = p.get("latency_ms_followup")
                cells.append(f"{followup['total']['median']:.1f}" if followup else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", help="LiteFrame folder, Hub id, or a built-in name (liteframe-micro, ...)")
    parser.add_argument("--data", required=True, help="manifest JSONL (one multiple-choice question per line)")
    parser.add_argument("--frames", type=int, nargs="+", default=[8],
                        help="frames per video; several values evaluate several points in one run (default 8)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the manifest's first N questions")
    parser.add_argument("--json", type=Path, default=None, help="write everything (points, per question) here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the results table here")
    parser.add_argument("--plot", type=Path, default=None, help="write the accuracy-vs-latency plot (PNG) here")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", choices=["auto", *DTYPES],
                        help="auto: bfloat16 on CUDA, float32 on the CPU")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); on a loaded machine 1 avoids the "
                             "thread oversubscription that can slow an LLM forward down 10x or more")
    parser.add_argument("--warmup", type=int, default=1, help="untimed, unscored questions before each point")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULT_MAX_NEW_TOKENS)
    parser.add_argument("--skip-bad", action="store_true",
                        help="leave out rows with a missing/unreadable video, a bad answer or a duplicated id "
                             "(counted in the JSON) instead of stopping")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--reuse-video", action="store_true",
                        help="questions about the same video share one video session: decode, encode and the video's "
                             "prefill once, a copy of its prefix cache per question (same answers; the JSON reports "
                             "first-question and follow-up latencies apart). Default: every question runs the whole path")
    parser.add_argument("--scoring", default="generate", choices=SCORINGS,
                        help="generate: greedy decoding of the answer letter (the standard MCQ prompt); likelihood: "
                             "the cloze formulation, the option most likely as the reply to the question alone (how "
                             "small LLMs are scored; the micro models' protocol, docs/eval.md)")


def main(args: argparse.Namespace) -> int:
    command = "liteframe " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else None
    if args.threads is not None:
        if args.threads < 1:
            print(f"liteframe eval: --threads must be positive, got {args.threads}", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    try:
        result = evaluate_model(args.model, args.data, args.frames, limit=args.limit, device=args.device,
                                dtype=args.dtype, warmup=args.warmup, max_new_tokens=args.max_new_tokens,
                                skip_bad=args.skip_bad, progress=not args.no_progress,
                                log=lambda m: print(m, file=sys.stderr), command=command, reuse_video=args.reuse_video,
                                scoring=args.scoring)
    except (ManifestError, ValueError) as error:
        print(f"liteframe eval: {error}", file=sys.stderr)
        return 2
    table = markdown_table([result])
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n")
    if args.plot:
        from .plot import plot_runs

        plot_runs([result], args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


__all__ = ["NAMED_MODELS", "SCORINGS", "STAGES", "answer_question", "ask", "ask_in_session", "card_rows", "evaluate_model",
           "latency_summary", "load_model", "markdown_table", "open_session", "resolve_model", "score_in_session",
           "score_point", "score_question"]
