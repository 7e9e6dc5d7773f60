"""LiteFrameProcessor: tokenizer + LiteFrameVideoProcessor, and the prompt's token layout.

Each `<video>` marker in the text becomes one compact header + placeholder run per 4-frame clip: the
clip's time span in whole seconds, then InternVL's special tokens (so its tokenizer works unchanged):

    0-3s<img><IMG_CONTEXT>...<IMG_CONTEXT></img>3-6s<img>...</img>      (tokens_per_clip placeholders each)

That is 4 text tokens plus one per digit of the two times per clip with the SmolLM2 and Qwen2.5 tokenizers
(both split digits one per token): 6-8 for clips ending before 100 s, 12 at one hour. The model scatters
each clip's projected tokens into the `<IMG_CONTEXT>` positions. `clip_prompt` is the one place that writes
this layout (docs/design.md, "Token layout").

This file is Hub remote code: absolute `transformers` imports, single-dot sibling imports only.
"""

import math

from transformers.processing_utils import ProcessorMixin
from transformers.video_processing_utils import BaseVideoProcessor

VIDEO_MARKER = "<video>"
CLIP_START, CLIP_END, CLIP_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"

# ChatML (the format of Qwen2.5 / InternVL3 and SmolLM2); `{"type": "video"}` items render as the marker.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# Timestamps come from float pts: a frame at 14.9999996 s is at 15 s, not in the 15th second.
_SPAN_TOLERANCE_S = 1e-3


def clip_span_text(span: tuple[float, float]) -> str:
    """A clip's time span as whole seconds that contain it: (12.4, 15.4) -> "12-16s".

    Whole seconds because both tokenizers spend one token per digit (a "12.4-15.4s" span costs 10 tokens,
    "12-16s" 6); floor/ceil so the written span always contains the clip's frames.
    """
    start, end = float(span[0]), float(span[1])
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"a clip's time span must be finite seconds with start <= end, got {span}")
    first = max(0, math.floor(start + _SPAN_TOLERANCE_S))  # some containers start slightly below 0
    last = max(first, math.ceil(end - _SPAN_TOLERANCE_S))
    return f"{first}-{last}s"


def clip_prompt(span: tuple[float, float] | None, tokens_per_clip: int) -> str:
    """The prompt text of one clip: its time span (when known), then `<img>`, the placeholders and `</img>`.

    The `<img>`/`</img>` pair stays because stock InternVL3 (post-hoc WAP) was trained with it around every
    image; it also separates one clip's placeholders from the next clip's span, so no newline is needed.
    """
    if tokens_per_clip < 1:
        raise ValueError(f"tokens_per_clip must be >= 1, got {tokens_per_clip}")
    when = clip_span_text(span) if span is not None else ""
    return f"{when}{CLIP_START}{CLIP_CONTEXT * tokens_per_clip}{CLIP_END}"


def video_prompt(spans: list[tuple[float, float] | None], tokens_per_clip: int) -> str:
    """The text that replaces one `<video>` marker: `clip_prompt` of every clip, in order, back to back."""
    return "".join(clip_prompt(span, tokens_per_clip) for span in spans)


class LiteFrameProcessor(ProcessorMixin):
    """Tokenizer + `LiteFrameVideoProcessor`. `processor(text=..., videos=...)` returns `input_ids`,
    `attention_mask` (left padding), `pixel_values_videos`, `video_num_frames` (and `video_metadata` with
    `return_metadata=True`)."""

    text_kwargs = {"padding_side": "left"}
    videos_kwargs = {"return_metadata": True}  # clip time spans go into the prompt

    def __init__(self, video_processor=None, tokenizer=None, chat_template=None, tokens_per_clip: int = 64, **kwargs):
        """
        tokens_per_clip: LLM tokens per 4-frame clip, `LiteFrameConfig.tokens_per_clip()` (64 for liteframe-8b).
        """
        self.tokens_per_clip = int(tokens_per_clip)
        self.video_token = VIDEO_MARKER
        vocab = tokenizer.get_vocab()
        missing = [t for t in (CLIP_START, CLIP_END, CLIP_CONTEXT) if t not in vocab]
        if missing:
            raise ValueError(
                f"The tokenizer has no {missing} token(s). LiteFrame prompts use InternVL's special tokens; add them with "
                f"`tokenizer.add_special_tokens({{'additional_special_tokens': {missing}}})` and resize the model's "
                f"embeddings (`model.resize_token_embeddings(len(tokenizer))`)."
            )
        self.video_context_token_id = vocab[CLIP_CONTEXT]
        self.clip_start_token_id, self.clip_end_token_id = vocab[CLIP_START], vocab[CLIP_END]
        super().__init__(video_processor, tokenizer, chat_template=chat_template or CHAT_TEMPLATE, **kwargs)

    def check_argument_for_proper_class(self, argument_name, argument):
        # Remote-code video processors are not in transformers' auto mapping; accept any video processor.
        if argument_name == "video_processor":
            if not isinstance(argument, BaseVideoProcessor):
                raise TypeError(f"video_processor must be a video processor, got {type(argument).__name__}")
            return BaseVideoProcessor
        return super().check_argument_for_proper_class(argument_name, argument)

    @property
    def video_token_ids(self) -> list[int]:
        return [self.video_context_token_id, self.clip_start_token_id, self.clip_end_token_id]

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        clip_len = self.video_processor.clip_len
        num_frames = int(video_inputs["video_num_frames"][video_idx])
        spans = [None] * (num_frames // clip_len)
        metadata = video_inputs.get("video_metadata")
        if metadata is not None:
            timestamps = getattr(metadata[video_idx], "timestamps", None)
            if timestamps is not None and len(timestamps) >= num_frames and getattr(metadata[video_idx], "fps", None):
                spans = [(float(timestamps[i]), float(timestamps[i + clip_len - 1])) for i in range(0, num_frames, clip_len)]
        return video_prompt(spans, self.tokens_per_clip)

    def _check_special_mm_tokens(self, text, text_inputs, modalities):
        # Guard against truncation: every <IMG_CONTEXT> written must survive tokenization.
        input_ids = text_inputs["input_ids"]
        input_ids = input_ids.tolist() if hasattr(input_ids, "tolist") else input_ids
        written = [sample.count(CLIP_CONTEXT) for sample in text]
        tokenized = [list(ids).count(self.video_context_token_id) for ids in input_ids]
        if written != tokenized:
            raise ValueError(
                f"Video placeholder tokens were lost in tokenization (text has {written}, input_ids have {tokenized}): "
                f"do not truncate LiteFrame prompts, or raise max_length."
            )

    @property
    def model_input_names(self):
        return list(self.tokenizer.model_input_names) + ["pixel_values_videos", "video_num_frames"]


__all__ = ["LiteFrameProcessor", "clip_prompt", "clip_span_text", "video_prompt", "CHAT_TEMPLATE"]
