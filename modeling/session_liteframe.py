"""A video session: decode, encode and pre-fill a video once, then answer any number of questions about it.

    session = VideoSession(model, processor, "clip.mp4", processor_kwargs={"num_frames": 64})
    session.ask("What happens?", max_new_tokens=64).text    # the first question pays nothing more than usual
    session.ask("Who is there?").text                       # no decode, no encode, no video prefill
    session.close()                                         # frees the cache (or use `with VideoSession(...)`)

The *prefix* is the prompt up to and including the video's last clip (`</img>`): the chat template's opening
(system prompt, the user turn's header) and every clip. It is the same for every question about the video, because
LiteFrame prompts put the video before the question (the layout the model was trained with). The session runs the
processor (decode + preprocess), the encoder and one LM forward over the prefix once, into a transformers
`DynamicCache`. Each question then calls `generate` with the whole prompt's `input_ids` and a `copy.deepcopy` of that
cache through the normal cache argument (transformers' documented prompt-reuse recipe): `generate` pre-fills only
the tokens past the cache, and the model gets no video inputs. Greedy answers are the uncached path's, token for
token (tests/test_session.py; docs/benchmarks.md on 20 needle videos).

A chat is answered from the session when its only video is in its first user turn and the chat template writes
nothing of that turn's text before the video; otherwise `NotCacheable` says why and callers take the uncached path.
The question's tokens are the tokenizer's tokens of the prompt text after the video (the clip end token is a special
token, so no merge crosses it); the session checks this once against the processor's own tokens of a full prompt.

This file is Hub remote code: absolute `transformers` imports, single-dot sibling imports only.
"""

import copy
import hashlib
import os
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutputWithPast

# transformers 5.24 renamed generate's cache argument `past_key_values` -> `cache`; pass the running release's name.
CACHE_ARG = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"
SHARED_STAGES = ("decode", "preprocess", "encode", "prefill")  # paid once per session
QUESTION_STAGES = ("preprocess", "copy", "prefill", "generate")  # paid per question


class NotCacheable(ValueError):
    """This chat cannot be answered from a video session; the message says why (callers fall back to the uncached
    path)."""


class FirstStepClock(LogitsProcessor):
    """Notes when the first token's logits exist (after `sync`): everything before is prefill."""

    def __init__(self, sync=None):
        self.sync, self.first = sync or (lambda: None), None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.sync()
            self.first = time.perf_counter()
        return scores


@contextmanager
def time_method(obj, name: str, timings: dict, key: str):
    """Time the outermost calls of `obj.name` into `timings[key]` (ms) while the context is open."""
    original, depth = getattr(obj, name), [0]
    own = vars(obj).get(name)  # an instance-level override, put back after

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
        if own is None:
            delattr(obj, name)  # back to the class attribute
        else:
            setattr(obj, name, own)


def device_sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def video_items(chat) -> list[tuple[int, int]]:
    """(message index, item index) of every `{"type": "video"}` item of a chat."""
    found = []
    for m, message in enumerate(chat):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, (list, tuple)):
            found += [(m, i) for i, item in enumerate(content) if isinstance(item, dict) and item.get("type") == "video"]
    return found


def session_video(chat):
    """The video of a chat a session can answer (its only video, in its first user turn, before that turn's text),
    else raises `NotCacheable` saying why."""
    if not (isinstance(chat, (list, tuple)) and chat and all(isinstance(m, dict) for m in chat)):
        raise NotCacheable("not a chat (a list of {'role': ..., 'content': ...} messages)")
    found = video_items(chat)
    if len(found) != 1:
        raise NotCacheable(f"the chat holds {len(found)} videos; a video session serves chats with one video")
    m, i = found[0]
    first_user = next((k for k, message in enumerate(chat) if message.get("role") == "user"), None)
    if m != first_user:
        raise NotCacheable("the video is not in the chat's first user turn")
    content = chat[m]["content"]
    if any(isinstance(item, dict) and item.get("type") == "text" and item.get("text") for item in content[:i]):
        raise NotCacheable("the chat puts text before the video in its turn; LiteFrame was trained with the video "
                           "before the question")
    item = content[i]
    key = next((k for k in ("video", "url", "path") if k in item), None)
    if key is None:
        raise NotCacheable("the chat's video item has no 'video', 'url' or 'path'")
    return item[key]


def render_prompt(processor, chat) -> str:
    """The chat's prompt text (video markers unexpanded). Video items are swapped for a name first: the template
    writes only a marker for them, and the processor would otherwise copy arrays of frames to check them."""
    light = []
    for message in chat:
        content = message.get("content")
        if isinstance(content, (list, tuple)):
            content = [{"type": "video", "video": "video"} if isinstance(item, dict) and item.get("type") == "video"
                       else item for item in content]
            message = {**message, "content": content}
        light.append(message)
    return processor.apply_chat_template(light, add_generation_prompt=True, tokenize=False)


def split_prompt(processor, chat) -> tuple[str, str]:
    """(text before the video marker, text after it) of the chat's prompt; `NotCacheable` when the text before the
    video would hold the turn's text."""
    marker = processor.video_token
    text = render_prompt(processor, chat)
    if text.count(marker) != 1:
        raise NotCacheable(f"the rendered prompt holds {text.count(marker)} {marker} markers, not one")
    before, after = text.split(marker)
    # A template may write a turn's text before its video whatever the item order: then the prefix would hold the
    # question. Render the turn with other text and compare.
    m, _ = video_items(chat)[0]
    other = [dict(message) for message in chat]
    other[m]["content"] = [{**item, "text": "~" + item["text"]} if isinstance(item, dict) and item.get("type") == "text"
                           and isinstance(item.get("text"), str) else item for item in chat[m]["content"]]
    if render_prompt(processor, other).split(marker)[0] != before:
        raise NotCacheable("the chat template writes the turn's text before the video; LiteFrame was trained with the "
                           "video before the question")
    return before, after


def video_key(video):
    """A key that names the same video across calls: a local file by path, modification time and size; a URL by
    itself; bytes by their hash. None for other forms (arrays, frames, file objects): those share a session only
    within one call."""
    if isinstance(video, (str, os.PathLike)):
        path = os.fspath(video)
        try:
            stat = os.stat(path)
        except OSError:
            return ("url", path)
        return ("file", os.path.realpath(path), stat.st_mtime_ns, stat.st_size)
    if isinstance(video, (bytes, bytearray)):
        return ("bytes", hashlib.sha256(video).hexdigest())
    return None


def _cache_bytes(cache) -> int:
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


@dataclass
class SessionOutput:
    """What `VideoSession.generate` returns: `generate`'s sequences (the whole prompt, then the new tokens), the
    prompt's length and this question's stage timings (ms: preprocess, copy, prefill, generate)."""

    sequences: torch.Tensor
    prompt_length: int
    timings: dict[str, float]


@dataclass
class SessionAnswer:
    """What `VideoSession.ask` returns: the answer's text, its new tokens and this question's timings (ms)."""

    text: str
    new_tokens: int
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class SessionScores:
    """What `VideoSession.score` returns: each option's mean log-probability per token, the index of the most
    likely option, the prompt's length and this question's timings (ms: preprocess, copy, score)."""

    scores: list[float]
    best: int
    prompt_tokens: int
    timings: dict[str, float] = field(default_factory=dict)


class VideoSession:
    """One video, decoded, encoded and pre-filled once; every question generates from a copy of its prefix cache.

    model: a LiteFrame video LLM (`LiteFrameForConditionalGeneration`); processor: its `LiteFrameProcessor`.
    chat: a chat whose first user turn holds `video` (its text does not matter): it fixes what comes before the video
        (a system prompt, for instance); default: one user turn with the video.
    processor_kwargs: the processor's arguments (`num_frames`, `fps`, `size`, ...), as for `apply_chat_template`.

    `timings` holds the shared stages (ms): decode, preprocess, encode, prefill (the prefix). `prefix_tokens` is the
    prefix's length, `cache_bytes` the memory its cache holds, `frame_times` the sampled frames' timestamps (s).
    Raises `NotCacheable` when the chat does not fit.
    """

    def __init__(self, model, processor, video, chat=None, processor_kwargs=None):
        self.model, self.processor, self.video = model, processor, video
        self.processor_kwargs = dict(processor_kwargs or {})
        self.questions = 0
        if chat is None:
            chat = [{"role": "user", "content": [{"type": "video", "video": video}, {"type": "text", "text": ""}]}]
        session_video(chat)
        self.prefix_text, _ = split_prompt(processor, chat)
        self.cache, self.prefix_ids, self.timings, self.frame_times = None, None, {}, None
        with torch.inference_mode():
            self._prefill(chat)

    # ---------------------------------------------------------------------------------------------- setup
    def _suffix_ids(self, text: str) -> list[int]:
        return self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prefill(self, chat) -> None:
        model, processor, timings = self.model, self.processor, self.timings
        device, sync = model.device, device_sync(model.device)
        start = time.perf_counter()
        with time_method(processor.video_processor, "fetch_videos", timings, "decode"):
            inputs = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                                   return_tensors="pt",
                                                   processor_kwargs={**self.processor_kwargs, "return_metadata": True})
        metadata = inputs.get("video_metadata")
        times = metadata[0].timestamps if metadata else None  # None for frames given without a frame rate
        self.frame_times = [float(t) for t in times] if times is not None else None
        ids = inputs["input_ids"][0]
        end_id = getattr(processor, "clip_end_token_id", None)
        marks = (ids == end_id).nonzero() if end_id is not None else (ids == model.config.video_token_id).nonzero()
        if not len(marks):
            raise NotCacheable("the prompt holds no video tokens")
        length = int(marks.max()) + 1
        # The questions' tokens come from the tokenizer alone: check once that it tokenizes the text after the video
        # as the processor did inside the whole prompt.
        if ids[length:].tolist() != self._suffix_ids(split_prompt(processor, chat)[1]):
            raise NotCacheable("the tokenizer splits the text after the video differently inside the whole prompt")
        pixels = inputs["pixel_values_videos"].to(device, model.dtype)
        frames = inputs.get("video_num_frames")
        self.prefix_ids = ids[:length].to(device)
        sync()
        timings["preprocess"] = (time.perf_counter() - start) * 1e3 - timings.get("decode", 0.0)

        start = time.perf_counter()
        video = model.get_video_features(pixels, frames.to(device) if frames is not None else None)
        sync()
        timings["encode"] = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        cache = DynamicCache(config=model.config)
        model(input_ids=self.prefix_ids[None], mm_encoder_outputs={"video": video}, use_cache=True, logits_to_keep=1,
              **{CACHE_ARG: cache})
        sync()
        timings["prefill"] = (time.perf_counter() - start) * 1e3
        self.cache, self.cache_bytes = cache, _cache_bytes(cache)  # pixels and features are dropped here

    @property
    def prefix_tokens(self) -> int:
        return int(self.prefix_ids.numel()) if self.prefix_ids is not None else 0

    # ------------------------------------------------------------------------------------------- questions
    def generate(self, chat=None, question: str | None = None, **generate_kwargs) -> SessionOutput:
        """Generate the answer to a chat whose first user turn holds this session's video (or to `question` asked
        alone). `generate_kwargs` go to `generate` (streamer, max_new_tokens, do_sample, num_return_sequences, ...).
        Raises `NotCacheable` when the chat's prompt does not start with this session's prefix."""
        if self.cache is None:
            raise RuntimeError("this video session is closed")
        if chat is None:
            chat = [{"role": "user", "content": [{"type": "video", "video": self.video},
                                                 {"type": "text", "text": question or ""}]}]
        for key in ("cache", "past_key_values", "pixel_values_videos", "mm_encoder_outputs"):
            if generate_kwargs.get(key) is not None:
                raise NotCacheable(f"`{key}` was passed: the session supplies the video through its cache")
        model, device = self.model, self.model.device
        sync, timings = device_sync(device), {}
        start = time.perf_counter()
        video = session_video(chat)
        if video is not self.video and (video_key(video) is None or video_key(video) != video_key(self.video)):
            raise NotCacheable("the chat's video is not this session's video")
        before, after = split_prompt(self.processor, chat)
        if before != self.prefix_text:
            raise NotCacheable("the chat's text before the video differs from the session's (another system prompt?)")
        suffix = torch.tensor(self._suffix_ids(after), dtype=self.prefix_ids.dtype, device=device)
        input_ids = torch.cat([self.prefix_ids, suffix])[None]
        timings["preprocess"] = (time.perf_counter() - start) * 1e3

        with torch.inference_mode():
            start = time.perf_counter()
            cache = copy.deepcopy(self.cache)  # generate appends to its cache: each question gets its own copy
            config = generate_kwargs.get("generation_config") or model.generation_config
            expand = max(int(generate_kwargs.get("num_beams") or config.num_beams or 1),
                         int(generate_kwargs.get("num_return_sequences") or config.num_return_sequences or 1))
            if expand > 1:  # generate expands the prompt, not a cache it is given
                cache.batch_repeat_interleave(expand)
            sync()
            timings["copy"] = (time.perf_counter() - start) * 1e3

            clock = FirstStepClock(sync)
            processors = LogitsProcessorList(generate_kwargs.pop("logits_processor", None) or [])
            processors.insert(0, clock)
            start = time.perf_counter()
            sequences = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                       logits_processor=processors, **{CACHE_ARG: cache}, **generate_kwargs)
            sync()
            end = time.perf_counter()
        del cache
        first = clock.first or end
        timings["prefill"], timings["generate"] = (first - start) * 1e3, (end - first) * 1e3
        self.questions += 1
        return SessionOutput(sequences=sequences, prompt_length=int(input_ids.shape[1]), timings=timings)

    def score(self, options: list[str], question: str | None = None, chat=None) -> SessionScores:
        """How likely the model finds each of `options` as its whole reply to `question` (or to `chat`'s last user
        turn): the mean log-probability per token of the option's text and the end-of-turn token after it. This is
        the cloze formulation of multiple-choice questions (lm-evaluation-harness's `multiple_choice`, OLMES), the
        one small LLMs are scored with: they cannot bind answer letters to options (SmolLM2-135M picks the right
        letter at chance even with the answer written in its prompt; docs/eval.md). All options run in one batch
        on copies of the video's prefix cache."""
        if self.cache is None:
            raise RuntimeError("this video session is closed")
        if not options or not all(isinstance(o, str) and o.strip() for o in options):
            raise ValueError(f"options must be non-empty strings, got {options!r}")
        if chat is None:
            chat = [{"role": "user", "content": [{"type": "video", "video": self.video},
                                                 {"type": "text", "text": question or ""}]}]
        model, device = self.model, self.model.device
        sync, timings = device_sync(device), {}
        start = time.perf_counter()
        before, after = split_prompt(self.processor, chat)
        if before != self.prefix_text:
            raise NotCacheable("the chat's text before the video differs from the session's (another system prompt?)")
        suffix = self._suffix_ids(after)
        end = self.processor.tokenizer.eos_token or ""  # the chat template's end of turn (<|im_end|> in ChatML)
        replies = [self._suffix_ids(option.strip() + end) for option in options]
        width = len(suffix) + max(len(r) for r in replies)
        pad = self.processor.tokenizer.pad_token_id or 0
        ids = torch.full((len(options), width), pad, dtype=self.prefix_ids.dtype, device=device)
        mask = torch.zeros(len(options), self.prefix_tokens + width, dtype=torch.long, device=device)
        mask[:, :self.prefix_tokens] = 1
        for i, reply in enumerate(replies):  # right padding: a causal row never sees the pads after it
            row = suffix + reply
            ids[i, :len(row)] = torch.tensor(row, dtype=ids.dtype, device=device)
            mask[i, self.prefix_tokens:self.prefix_tokens + len(row)] = 1
        timings["preprocess"] = (time.perf_counter() - start) * 1e3
        with torch.inference_mode():
            start = time.perf_counter()
            cache = copy.deepcopy(self.cache)
            cache.batch_repeat_interleave(len(options))
            sync()
            timings["copy"] = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            logits = model(input_ids=ids, attention_mask=mask, use_cache=True, **{CACHE_ARG: cache}).logits
            # the logit at position p predicts token p + 1: a reply's tokens are read from one position earlier
            logprobs = logits[:, len(suffix) - 1:-1].float().log_softmax(-1)
            scores = []
            for i, reply in enumerate(replies):
                target = torch.tensor(reply, device=device)
                scores.append(float(logprobs[i, torch.arange(len(reply), device=device), target].mean()))
            sync()
            timings["score"] = (time.perf_counter() - start) * 1e3
        del cache
        self.questions += 1
        return SessionScores(scores=scores, best=max(range(len(scores)), key=scores.__getitem__),
                             prompt_tokens=self.prefix_tokens + len(suffix), timings=timings)

    def ask(self, question: str, **generate_kwargs) -> SessionAnswer:
        """Ask one question about the video (greedy unless `generate_kwargs` say otherwise); the answer's text."""
        out = self.generate(question=question, **{"do_sample": False, **generate_kwargs})
        new = out.sequences[0, out.prompt_length:]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
        return SessionAnswer(text=text, new_tokens=int(new.numel()), prompt_tokens=out.prompt_length,
                             timings=out.timings)

    # ------------------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Free the cache; the session answers no more questions."""
        self.cache, self.prefix_ids = None, None

    @property
    def closed(self) -> bool:
        return self.cache is None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SessionStore:
    """At most `max_sessions` open sessions by key, least recently used closed first (one KV cache each)."""

    def __init__(self, max_sessions: int = 1):
        if int(max_sessions) < 0:
            raise ValueError(f"max_video_sessions must be >= 0, got {max_sessions}")
        self.max_sessions = int(max_sessions)
        self._sessions: "OrderedDict[object, VideoSession]" = OrderedDict()

    def get(self, key) -> VideoSession | None:
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
        return session

    def put(self, key, session: VideoSession) -> None:
        """Keep `session` under `key` (closing the least recently used beyond the bound; with a bound of 0, none is
        kept: the caller closes it when done)."""
        if self.max_sessions == 0:
            return
        old = self._sessions.pop(key, None)
        if old is not None and old is not session:
            old.close()
        self._sessions[key] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)[1].close()

    def __contains__(self, key) -> bool:
        return key in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    def keeps(self, session: VideoSession) -> bool:
        return any(s is session for s in self._sessions.values())

    def clear(self) -> None:
        while self._sessions:
            self._sessions.popitem(last=False)[1].close()


__all__ = ["CACHE_ARG", "NotCacheable", "SessionAnswer", "SessionOutput", "SessionScores", "SessionStore", "VideoSession",
           "render_prompt", "session_video", "split_prompt", "video_key"]
