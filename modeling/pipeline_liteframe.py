"""`pipeline("video-text-to-text")`: a video (path, bytes, frames) and a question in, the answer out.

    pipe = pipeline("video-text-to-text", model="path/to/liteframe", trust_remote_code=True)
    pipe("clip.mp4", text="What happens?", num_frames=64, max_new_tokens=64)
    pipe([{"video": "a.mp4", "text": "..."}, {"video": "b.mp4", "text": "..."}])   # one padded batch
    pipe([{"role": "user", "content": [{"type": "video", "video": "a.mp4"}, {"type": "text", "text": "..."}]}])

With `return_timings=True` each result carries the stage timings in ms: decode (file -> sampled frames at the
encoder's size), preprocess (normalisation + prompt + tokenisation), encode (LiteFrame encoder + projector),
prefill (first LM forward) and generate (the remaining tokens). Pass a transformers streamer through
`generate_kwargs={"streamer": ...}` to stream tokens.

This file is Hub remote code: absolute `transformers` imports only.
"""

import time
from contextlib import contextmanager

import torch
from transformers import LogitsProcessor, LogitsProcessorList, Pipeline


class _FirstCallClock(LogitsProcessor):
    """Notes the time of the first decoding step: everything before it is prefill."""

    def __init__(self):
        self.first = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.first = time.perf_counter()
        return scores


@contextmanager
def _time_method(obj, name: str, timings: dict, key: str):
    """Time the outermost calls of `obj.name` into `timings[key]` (ms) while the context is open."""
    original, depth = getattr(obj, name), [0]

    def timed(*args, **kwargs):
        start = time.perf_counter()
        depth[0] += 1
        try:
            return original(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:  # the method may call itself per video
                timings[key] = timings.get(key, 0.0) + (time.perf_counter() - start) * 1e3

    setattr(obj, name, timed)
    try:
        yield
    finally:
        delattr(obj, name)  # back to the class attribute


class _Batch:
    """Several requests processed as one padded batch (one generate call); opaque to Pipeline's own batching."""

    def __init__(self, conversations):
        self.conversations = list(conversations)


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

    def __call__(self, inputs, text: str | None = None, **kwargs):
        if text is not None:  # pipe(video, text="question")
            inputs = {"video": inputs, "text": text}
        is_chat = isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], dict) and "role" in inputs[0]
        if isinstance(inputs, (list, tuple)) and not is_chat:
            return super().__call__(_Batch(_as_conversation(item) for item in inputs), **kwargs)
        return super().__call__(_Batch([_as_conversation(inputs)]), **kwargs)[0]

    def save_pretrained(self, save_directory, **kwargs):
        # Pipeline.save_pretrained records `custom_pipelines` and copies this file, but skips the processor.
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def _sanitize_parameters(self, num_frames=None, fps=None, max_new_tokens=None, generate_kwargs=None,
                             return_timings=None, return_full_text=None, skip_special_tokens=None, **processor_kwargs):
        preprocess = {"processor_kwargs": dict(processor_kwargs)}
        if num_frames is not None:
            preprocess["processor_kwargs"]["num_frames"] = num_frames
        if fps is not None:
            preprocess["processor_kwargs"]["fps"] = fps
        forward = {"generate_kwargs": dict(generate_kwargs or {})}
        if max_new_tokens is not None:
            forward["generate_kwargs"]["max_new_tokens"] = max_new_tokens
        postprocess = {"return_timings": bool(return_timings), "return_full_text": bool(return_full_text),
                       "skip_special_tokens": True if skip_special_tokens is None else skip_special_tokens}
        return preprocess, forward, postprocess

    def preprocess(self, batch: _Batch, processor_kwargs=None):
        timings = {}
        start = time.perf_counter()
        with _time_method(self.processor.video_processor, "fetch_videos", timings, "decode"):
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

        clock = _FirstCallClock()
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
