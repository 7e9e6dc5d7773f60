"""`pipeline("video-text-to-text")`: a video and a question in, the answer out.

    pipe = pipeline("video-text-to-text", model="path/to/liteframe", trust_remote_code=True)
    pipe("clip.mp4", text="What happens?", num_frames=64, max_new_tokens=64)
    pipe(["a.mp4", "b.mp4"], text="What happens?")                                  # two requests
    pipe([{"video": "a.mp4", "text": "..."}, {"video": "b.mp4", "text": "..."}], batch_size=2)
    pipe([{"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "text", "text": "..."}]}])
    pipe("clip.mp4", text="...", do_sample=True, temperature=0.7, num_return_sequences=3, streamer=streamer)

A video is any form the processor takes: a path or URL, the file's bytes, an open binary file, an array of
frames (T, H, W, C), or a list of frames. Requests are decoded, padded and generated `batch_size` at a time
(default 1), so memory is bounded by one chunk; chunks go through transformers' Pipeline iterator
(`num_workers` decodes the next chunk while the model runs). Generation arguments (`max_new_tokens`,
`do_sample`, `temperature`, `top_p`, `num_beams`, `num_return_sequences`, `streamer`, ... - anything
`generate` / `GenerationConfig` takes) go to `generate`; the others (`num_frames`, `fps`, `size`, ...) to the
processor. With `num_return_sequences > 1`, `generated_text` is a list.

With `return_timings=True` each result carries the stage timings in ms of its chunk: decode (file -> sampled
frames at the encoder's size), preprocess (normalisation + prompt + tokenisation), encode (LiteFrame encoder +
projector), prefill (first LM forward) and generate (the remaining tokens).

Video sessions (session_liteframe.py): a video is decoded, encoded and pre-filled once and its questions reuse a
copy of that prefix cache, answering exactly as the uncached path does (greedy) at a fraction of the cost:

    pipe("clip.mp4", text=["What happens?", "Who is there?", "Where is it?"])   # one encode, three answers
    chat = [{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": "..."}]}]
    pipe(chat)                                                                    # the session is kept ...
    pipe(chat + [{"role": "assistant", "content": "..."}, {"role": "user", "content": "And then?"}])  # ... reused

A request uses a session when its only video is in its first user turn with no text before it, and it is asked
alone (batch_size 1, the default), or its video is asked several questions in this call, or its video has a kept
session; other requests (several videos per chat, text before the video, padded batches of different videos)
take the uncached path; with `return_timings=True` the answers a session cannot serve say why in `video_session`. The pipeline keeps
the sessions of the last `max_video_sessions` videos (default 1; `pipeline(..., max_video_sessions=N)`, 0 keeps
none past a call), one KV cache each, named by file path + modification time + size, URL or bytes' hash (arrays
and frames share one only within a call); `pipe.clear_video_sessions()` frees them, `reuse_video=False` skips them.
With `return_timings=True` a session's answer has the five stage timings of what that answer cost (the first
question of a session also pays the shared decode, preprocess, encode and prefill) and `video_session`: whether
the video was reused, the shared stages, the question's own stages (preprocess, copy, prefill, generate), the
prefix's tokens and the cache's size.

This file is Hub remote code: absolute `transformers` imports, single-dot sibling imports only (saving the pipeline
copies session_liteframe.py with it).
"""

import time

import torch
from transformers import GenerationConfig, LogitsProcessorList, Pipeline
from transformers.utils import logging

from .session_liteframe import (
    QUESTION_STAGES,
    SHARED_STAGES,
    FirstStepClock,
    NotCacheable,
    SessionStore,
    VideoSession,
    session_video,
    split_prompt,
    time_method,
    video_key,
)

logger = logging.get_logger(__name__)

# Everything `generate` takes besides the model inputs: GenerationConfig fields and generate's own arguments.
GENERATE_ARGS = frozenset(
    key for key in GenerationConfig().to_dict() if not key.startswith("_") and key != "transformers_version"
) | {"streamer", "logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus",
     "assistant_model", "negative_prompt_ids", "negative_prompt_attention_mask", "use_model_defaults",
     "generation_config"}


class _Batch:
    """A chunk of requests processed as one padded batch (one generate call); opaque to Pipeline's collation."""

    def __init__(self, conversations):
        self.conversations = list(conversations)


def _is_frame(item) -> bool:
    if isinstance(item, torch.Tensor) or type(item).__name__ == "ndarray":
        return item.ndim == 3
    return hasattr(item, "getbands")  # PIL.Image


def _is_chat(item) -> bool:
    return isinstance(item, (list, tuple)) and bool(item) and isinstance(item[0], dict) and "role" in item[0]


def _requests(inputs, text) -> tuple[list, bool]:
    """(one conversation per request, whether a single request was passed)."""
    if text is not None:
        # pipe(video(s), text=question(s)): a list of videos (not one video given as a list of frames) is one
        # request per video; a list of questions pairs with the videos, or asks each of one video
        many_videos = isinstance(inputs, (list, tuple)) and bool(inputs) and not all(_is_frame(x) for x in inputs)
        videos = list(inputs) if many_videos else [inputs]
        texts = list(text) if isinstance(text, (list, tuple)) else [text]
        if len(videos) == 1 and len(texts) > 1:
            videos = videos * len(texts)
        elif len(texts) == 1:
            texts = texts * len(videos)
        if len(texts) != len(videos):
            raise ValueError(f"got {len(videos)} videos and {len(texts)} questions; pass one question, or one per video")
        single = not many_videos and not isinstance(text, (list, tuple))
        return [_as_conversation({"video": v, "text": t}) for v, t in zip(videos, texts)], single
    if _is_chat(inputs) or isinstance(inputs, dict):
        return [_as_conversation(inputs)], True
    if isinstance(inputs, (list, tuple)) and inputs:
        return [_as_conversation(item) for item in inputs], False
    return [_as_conversation(inputs)], True


def _as_conversation(item) -> list[dict]:
    if isinstance(item, dict) and "role" not in item:
        video, text = item.get("video"), item.get("text", "")
        if video is None:
            raise ValueError(f"Each request needs a 'video' (path, bytes or frames); got keys {sorted(item)}.")
        return [{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": text}]}]
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], dict) and "role" in item[0]:
        return list(item)
    raise ValueError(
        "Inputs must be a video with text=..., a dict {'video': ..., 'text': ...}, chat messages "
        "[{'role': 'user', 'content': [{'type': 'video', 'video': ...}, {'type': 'text', 'text': ...}]}], or a list of those."
    )


class VideoTextToTextPipeline(Pipeline):
    _load_processor = True
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, max_video_sessions: int = 1, **kwargs):
        # the videos whose prefix caches are kept between calls (one KV cache each), least recently used dropped first
        self.video_sessions = SessionStore(max_video_sessions)
        super().__init__(*args, **kwargs)
        # the prompt's placeholder count follows this model's config; a processor saved for another one is refused
        bind = getattr(self.processor, "bind_model_config", None)
        if bind is not None and getattr(self.model.config, "model_type", None) == "liteframe":
            bind(self.model.config, source=f"the model's config ({type(self.model).__name__})")

    def __call__(self, inputs, text: str | list[str] | None = None, batch_size: int | None = None,
                 num_workers: int | None = None, reuse_video: bool = True, **kwargs):
        requests, single = _requests(inputs, text)
        size = int(batch_size or self._batch_size or 1)
        if size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        results, reasons = [None] * len(requests), {}
        if reuse_video:
            reasons = self._answer_from_sessions(requests, size, kwargs, results)
        uncached = [i for i, result in enumerate(results) if result is None]
        if uncached:
            chunks = [_Batch([requests[i] for i in uncached[j:j + size]]) for j in range(0, len(uncached), size)]
            # a list input runs through Pipeline's iterator, one chunk (already collated) per step
            outputs = super().__call__(chunks, num_workers=num_workers, batch_size=1, **kwargs)
            for i, result in zip(uncached, (result for chunk in outputs for result in chunk)):
                if "timings" in result and i in reasons:
                    result["video_session"] = {"used": False, "reason": reasons[i]}
                results[i] = result
        return results[0] if single else results

    def clear_video_sessions(self) -> None:
        """Free every kept video session (their KV caches)."""
        self.video_sessions.clear()

    def _answer_from_sessions(self, requests, size, kwargs, results) -> dict[int, str]:
        """Answer the requests a video session can serve into `results`; returns why the others cannot use one."""
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        processor_kwargs = {**self._preprocess_params, **preprocess}.get("processor_kwargs") or {}
        generate_kwargs = dict({**self._forward_params, **forward}.get("generate_kwargs") or {})
        postprocess = {**self._postprocess_params, **postprocess}
        given = [key for key in ("cache", "past_key_values") if generate_kwargs.get(key) is not None]
        if given:
            return {i: f"`{given[0]}` was passed to generate" for i in range(len(requests))}
        reasons, groups = {}, {}
        settings = repr(sorted(processor_kwargs.items()))
        for i, chat in enumerate(requests):
            try:
                video = session_video(chat)
                prefix = split_prompt(self.processor, chat)[0]  # a system prompt, say, is part of the cache
            except NotCacheable as error:
                reasons[i] = str(error)
                continue
            named = video_key(video)
            key = (named if named is not None else ("object", id(video)), settings, prefix)
            groups.setdefault(key, (video, named is not None, []))[2].append(i)

        for key, (video, nameable, indices) in groups.items():
            session = self.video_sessions.get(key)
            reused = session is not None
            if not (reused or size == 1 or len(indices) > 1):
                continue  # padded batches of different videos stay batched
            if session is None:
                try:
                    with self.device_placement():
                        session = VideoSession(self.model, self.processor, video, chat=requests[indices[0]],
                                               processor_kwargs=processor_kwargs)
                except NotCacheable as error:
                    logger.warning(f"answering without a video session: {error}")
                    reasons.update({i: str(error) for i in indices})
                    continue
                if nameable:
                    self.video_sessions.put(key, session)
            try:
                for n, i in enumerate(indices):
                    try:
                        with self.device_placement(), self.get_inference_context()():
                            out = session.generate(requests[i], **generate_kwargs)
                    except NotCacheable as error:
                        logger.warning(f"answering without a video session: {error}")
                        reasons[i] = str(error)
                        continue
                    paid = not reused and n == 0  # this answer waited for the shared stages
                    results[i] = self._session_result(session, out, paid, postprocess)
            finally:
                if not self.video_sessions.keeps(session):
                    session.close()
        return reasons

    def _session_result(self, session, out, paid: bool, postprocess: dict) -> dict:
        shared = session.timings if paid else {}
        own = out.timings
        timings = {"decode": shared.get("decode", 0.0),
                   "preprocess": shared.get("preprocess", 0.0) + own["preprocess"],
                   "encode": shared.get("encode", 0.0),
                   "prefill": shared.get("prefill", 0.0) + own["copy"] + own["prefill"],
                   "generate": own["generate"]}
        result = self.postprocess({"sequences": out.sequences, "prompt_length": out.prompt_length, "timings": timings,
                                   "batch_size": 1}, **postprocess)[0]
        if postprocess.get("return_timings"):
            result["video_session"] = {
                "used": True, "reused": not paid,
                "shared": {k: round(session.timings.get(k, 0.0), 2) for k in SHARED_STAGES},
                "question": {k: round(own[k], 2) for k in QUESTION_STAGES},
                "prefix_tokens": session.prefix_tokens, "cache_mb": round(session.cache_bytes / 2**20, 2),
            }
        return result

    def save_pretrained(self, save_directory, **kwargs):
        # Pipeline.save_pretrained records `custom_pipelines` and copies this file, but skips the processor.
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def _sanitize_parameters(self, generate_kwargs=None, return_timings=None, return_full_text=None,
                             skip_special_tokens=None, **kwargs):
        # generation arguments go to generate, everything else (num_frames, fps, size, ...) to the processor
        forward = {"generate_kwargs": {**(generate_kwargs or {}), **{k: v for k, v in kwargs.items() if k in GENERATE_ARGS}}}
        preprocess = {"processor_kwargs": {k: v for k, v in kwargs.items() if k not in GENERATE_ARGS}}
        postprocess = {"return_timings": bool(return_timings), "return_full_text": bool(return_full_text),
                       "skip_special_tokens": True if skip_special_tokens is None else skip_special_tokens}
        return preprocess, forward, postprocess

    def preprocess(self, batch: _Batch, processor_kwargs=None):
        timings = {}
        start = time.perf_counter()
        with time_method(self.processor.video_processor, "fetch_videos", timings, "decode"):
            inputs = self.processor.apply_chat_template(
                batch.conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
                processor_kwargs={"padding": True, **(processor_kwargs or {})},
            )
        timings["preprocess"] = (time.perf_counter() - start) * 1e3 - timings.get("decode", 0.0)
        inputs.pop("video_metadata", None)
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.dtype)
        return {"inputs": inputs, "timings": timings}

    def _forward(self, model_inputs, generate_kwargs=None):
        inputs, timings = model_inputs["inputs"], dict(model_inputs["timings"])
        generate_kwargs = dict(generate_kwargs or {})
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)

        start = time.perf_counter()
        video = self.model.get_video_features(inputs.pop("pixel_values_videos"), inputs.pop("video_num_frames", None))
        sync()
        timings["encode"] = (time.perf_counter() - start) * 1e3

        clock = FirstStepClock()
        processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
        processors.insert(0, clock)
        start = time.perf_counter()
        sequences = self.model.generate(**inputs, mm_encoder_outputs={"video": video}, logits_processor=processors,
                                        **generate_kwargs)
        sync()
        end = time.perf_counter()
        first = clock.first or end
        timings["prefill"], timings["generate"] = (first - start) * 1e3, (end - first) * 1e3
        return {"sequences": sequences, "prompt_length": inputs["input_ids"].shape[1], "timings": timings,
                "batch_size": inputs["input_ids"].shape[0]}

    def postprocess(self, model_outputs, return_timings=False, return_full_text=False, skip_special_tokens=True):
        sequences = model_outputs["sequences"]
        kept = sequences if return_full_text else sequences[:, model_outputs["prompt_length"]:]
        texts = self.processor.tokenizer.batch_decode(kept, skip_special_tokens=skip_special_tokens)
        per_request = len(texts) // model_outputs["batch_size"]  # num_return_sequences
        results = []
        for i in range(model_outputs["batch_size"]):
            answers = texts[i * per_request:(i + 1) * per_request]
            result = {"generated_text": answers[0].strip() if per_request == 1 else [a.strip() for a in answers]}
            if return_timings:
                result["timings"] = {k: round(v, 2) for k, v in model_outputs["timings"].items()}
            results.append(result)
        return results


__all__ = ["VideoTextToTextPipeline"]
