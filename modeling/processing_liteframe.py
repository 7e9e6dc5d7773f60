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

import json
import math

from transformers.processing_utils import ProcessorMixin
from transformers.utils import cached_file
from transformers.video_processing_utils import BaseVideoProcessor

from .configuration_liteframe import LiteFrameConfig
from .video_processing_liteframe import make_video_list
from .version_liteframe import check_transformers_version  # noqa: F401 - importing it checks the version

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


def _placeholder_config(model_config) -> dict:
    """The part of a LiteFrame config that decides the placeholder count: the vision config (geometry, token
    reduction) and the pixel shuffle. Accepts a `LiteFrameConfig` or its dict."""
    if hasattr(model_config, "to_dict"):
        model_config = model_config.to_dict()
    vision = (model_config or {}).get("vision_config")
    if hasattr(vision, "to_dict"):
        vision = vision.to_dict()
    if not isinstance(vision, dict):
        raise ValueError("model_config must be a LiteFrameConfig (or its dict) with a vision_config")
    return {"vision_config": vision, "pixel_shuffle_ratio": model_config.get("pixel_shuffle_ratio", 0.5)}


def _folder_config(path, **hub_kwargs) -> dict | None:
    """config.json of a LiteFrame model folder / repo, or None when there is none (or it is another model)."""
    keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
    try:
        resolved = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False,
                               **{k: v for k, v in hub_kwargs.items() if k in keys and v is not None})
    except (OSError, ValueError):
        return None
    if resolved is None:
        return None
    with open(resolved, encoding="utf-8") as f:
        config = json.load(f)
    return config if config.get("model_type") == "liteframe" else None


class LiteFrameProcessor(ProcessorMixin):
    """Tokenizer + `LiteFrameVideoProcessor`. `processor(text=..., videos=...)` returns `input_ids`,
    `attention_mask` (left padding), `pixel_values_videos`, `video_num_frames` (and `video_metadata` with
    `return_metadata=True`).

    The number of `<IMG_CONTEXT>` placeholders per clip is derived, never stored by hand: from the model's
    configuration (`LiteFrameConfig.tokens_per_clip`) at the size of the processed frames, so a `size=` override
    at call time gets the right count. The configuration comes from `model_config=`, from the model folder's
    config.json when loaded with `from_pretrained`, or from the model when a pipeline is built; without any,
    the paper's LiteFrame-B geometry (liteframe-8b: 64 per clip at 448 px) is assumed.
    """

    text_kwargs = {"padding_side": "left"}
    videos_kwargs = {"return_metadata": True}  # clip time spans go into the prompt

    def __init__(
        self,
        video_processor=None,
        tokenizer=None,
        chat_template=None,
        tokens_per_clip: int | None = None,
        model_config=None,
        **kwargs,
    ):
        """
        model_config: the LiteFrame model's `LiteFrameConfig` (or its dict; only the vision config and the pixel
            shuffle are kept): placeholder counts are derived from it at every frame size.
        tokens_per_clip: a fixed count for the video processor's frame size, as older processors stored it;
            checked against `model_config` when both are known (a mismatch is refused, naming both values).
        """
        self.video_token = VIDEO_MARKER
        self.model_config = None
        self._fixed_tokens_per_clip = int(tokens_per_clip) if tokens_per_clip is not None else None
        self._config = None
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
        if model_config is not None:
            self.bind_model_config(model_config)

    # ------------------------------------------------------------------------------------------------------------
    # Placeholder count
    # ------------------------------------------------------------------------------------------------------------

    def _frame_side(self) -> int | None:
        """Side of the video processor's default (square) frames, when it resizes to a fixed size."""
        size = getattr(self.video_processor, "size", None)
        get = size.get if isinstance(size, dict) else (lambda key: getattr(size, key, None))
        height, width = (get("height"), get("width")) if size is not None else (None, None)
        return int(height) if height and height == width else None

    def _liteframe_config(self) -> LiteFrameConfig:
        if self._config is None:
            self._config = LiteFrameConfig(**self.model_config) if self.model_config else LiteFrameConfig()
        return self._config

    def clip_tokens(self, height: int, width: int) -> int:
        """Placeholders per clip for processed frames of `height` x `width` (`LiteFrameConfig.tokens_per_clip`)."""
        if height != width:
            raise ValueError(f"LiteFrame encodes square frames; these are {height}x{width}: set size={{'height': S, 'width': S}}")
        if self.model_config is None and self._fixed_tokens_per_clip is not None:
            side = self._frame_side()
            if side != height:
                raise ValueError(
                    f"this processor has a fixed tokens_per_clip={self._fixed_tokens_per_clip} for {side}x{side} frames "
                    f"but the frames are {height}x{width}: build it with model_config=model.config (or load it from the "
                    f"model's folder) so the count is derived for any frame size"
                )
            return self._fixed_tokens_per_clip
        return self._liteframe_config().tokens_per_clip(int(height))

    @property
    def tokens_per_clip(self) -> int:
        """Placeholders per clip at the video processor's frame size."""
        side = self._frame_side()
        if side is None:
            return self._fixed_tokens_per_clip or self._liteframe_config().tokens_per_clip()
        return self.clip_tokens(side, side)

    @tokens_per_clip.setter
    def tokens_per_clip(self, value: int) -> None:
        previous = self._fixed_tokens_per_clip
        self._fixed_tokens_per_clip = int(value)
        if self.model_config is not None:
            try:
                self._check_count(self._liteframe_config(), "the processor's config")
            except ValueError:
                self._fixed_tokens_per_clip = previous
                raise

    def _check_count(self, config: LiteFrameConfig, source: str) -> None:
        """Refuse a processor whose fixed count or own config disagrees with `config` at its frame size."""
        side = self._frame_side()
        derived = config.tokens_per_clip(side)
        if self._fixed_tokens_per_clip is not None:
            mine, what = self._fixed_tokens_per_clip, "its saved tokens_per_clip"
        elif self.model_config is not None:
            mine, what = self._liteframe_config().tokens_per_clip(side), "its own model_config"
        else:
            return
        if mine != derived:
            size = f"{side}x{side}" if side else "default"
            raise ValueError(
                f"tokens_per_clip mismatch: this processor writes {mine} placeholder tokens per clip ({what}) for "
                f"{size} frames, but {source} gives {derived} (LiteFrameConfig.tokens_per_clip). Fix: rebuild the "
                f"processor for this model - LiteFrameProcessor(video_processor, tokenizer, model_config=model.config) "
                f"- and save it over the old one (or delete \"tokens_per_clip\" from processor_config.json)."
            )
        clip_len = getattr(self.video_processor, "clip_len", None)
        if clip_len is not None and clip_len != config.vision_config.clip_len:
            raise ValueError(
                f"clip_len mismatch: the video processor makes {clip_len}-frame clips but {source} encodes "
                f"{config.vision_config.clip_len}-frame clips; set the video processor's clip_len to "
                f"{config.vision_config.clip_len}"
            )

    def bind_model_config(self, model_config, source: str = "the model's config") -> None:
        """Derive placeholder counts from `model_config` (a `LiteFrameConfig` or its dict) from now on. Refuses
        (ValueError naming tokens_per_clip, both values and the fix) when this processor's saved count or
        configuration disagrees with it at the video processor's frame size."""
        config = LiteFrameConfig(**_placeholder_config(model_config))
        self._check_count(config, source)
        # kept as it reads back from processor_config.json, so to_dict() is the same before and after a reload
        kept = json.loads(json.dumps(_placeholder_config(config)))
        self.model_config, self._config, self._fixed_tokens_per_clip = kept, config, None

    @classmethod
    def for_model(cls, tokenizer, model_config, image_size: int | None = None, chat_template=None, **video_kwargs):
        """The processor of a LiteFrame model built from a bare tokenizer: a `LiteFrameVideoProcessor` for square
        frames of `image_size` px (default: the config's) with the config's clip_len, and placeholder counts
        derived from `model_config` at any frame size. `video_kwargs` set other video settings (`num_frames`,
        `image_mean`, ...); None values keep the class defaults."""
        from .video_processing_liteframe import LiteFrameVideoProcessor

        vision = model_config.vision_config
        size = int(image_size or vision.image_size)
        video_processor = LiteFrameVideoProcessor(
            size={"height": size, "width": size}, clip_len=vision.clip_len,
            **{key: value for key, value in video_kwargs.items() if value is not None},
        )
        return cls(video_processor=video_processor, tokenizer=tokenizer, chat_template=chat_template,
                   model_config=model_config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        processor = loaded[0] if isinstance(loaded, tuple) else loaded
        # a processor saved in a model folder follows that model's config (refused when it disagrees)
        config = _folder_config(pretrained_model_name_or_path, **kwargs)
        if config is not None:
            processor.bind_model_config(config, source=f"the config.json next to it ({pretrained_model_name_or_path})")
        return loaded

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers sets `auto_map` on a remote-code processor while writing it; leave the processor as it was, so
        # its to_dict() matches a reload's (which drops auto_map) and a later save writes the same file.
        had_auto_map = "auto_map" in self.__dict__
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            if not had_auto_map:
                self.__dict__.pop("auto_map", None)

    def to_dict(self) -> dict:
        output = super().to_dict()
        for private in ("_fixed_tokens_per_clip", "_config"):
            output.pop(private, None)
        if self.model_config is not None or self._fixed_tokens_per_clip is not None:
            output["tokens_per_clip"] = self.tokens_per_clip  # for readers; re-checked against model_config on load
        return output

    # ------------------------------------------------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------------------------------------------------

    @staticmethod
    def _video_list(videos) -> list:
        """One entry per video, from any documented input form (transformers' make_batched_videos drops bytes and
        file objects, and fails on the nested lists of a batch of chats holding them)."""
        return make_video_list(videos)

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        if images is not None or audio is not None:
            raise ValueError("LiteFrameProcessor takes videos and text; images / audio are not supported")
        if text is None and videos is None:
            raise ValueError("LiteFrameProcessor needs text and/or videos")
        if text is None:
            return
        if not (isinstance(text, str) or (isinstance(text, list) and all(isinstance(t, str) for t in text))):
            raise ValueError("`text` must be a string or a list of strings")
        markers = sum(sample.count(self.video_token) for sample in ([text] if isinstance(text, str) else text))
        count = len(self._video_list(videos)) if videos is not None else 0
        if markers != count:
            raise ValueError(  # the first words are transformers' processors' own message for this mismatch
                f"The number of {self.video_token} tokens in the prompts should be the same as the number of videos "
                f"passed: the text has {markers} {self.video_token} marker(s) but {count} video(s) were passed; put "
                f"one {self.video_token} where each video goes"
            )

    def __call__(self, text=None, videos=None, **kwargs):
        """`processor(text=..., videos=...)`; the signature names the two modalities it takes (text first, as
        transformers' text+video processors), which is how transformers tells a video-only processor apart."""
        return super().__call__(text=text, videos=videos, **kwargs)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        # Each {"type": "video"} item is one video: normalise it here, where that is known, so a single frame or a
        # 2-D array is refused by name rather than read as a list of frames once the chats are batched.
        batched = isinstance(conversation, (list, tuple)) and bool(conversation) and isinstance(conversation[0], (list, tuple))
        chats = [self._chat_with_videos(chat) for chat in (conversation if batched else [conversation])]
        return super().apply_chat_template(chats if batched else chats[0], chat_template, **kwargs)

    @staticmethod
    def _chat_with_videos(chat):
        out = []
        for message in chat:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, (list, tuple)):
                items = []
                for item in content:
                    key = next((k for k in ("video", "url", "path") if k in item), None) if isinstance(item, dict) else None
                    if key is not None and item.get("type") == "video":
                        found = make_video_list(item[key])
                        if len(found) != 1:
                            raise ValueError(f"one {{'type': 'video'}} item holds {len(found)} videos; give each its own item")
                        item = {**item, key: found[0]}
                    items.append(item)
                message = {**message, "content": items}
            out.append(message)
        return out

    def _process_videos(self, videos, **kwargs):
        videos = self._video_list(videos)
        processed = self.video_processor(videos, **kwargs)
        return processed, [self.replace_video_token(processed, video_idx=i, **kwargs) for i in range(len(videos))]

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
        pixels = video_inputs["pixel_values_videos"]
        height, width = (pixels[video_idx] if isinstance(pixels, (list, tuple)) else pixels).shape[-2:]
        per_clip = self.clip_tokens(int(height), int(width))  # at the size the frames were processed to
        spans = [None] * (num_frames // clip_len)
        metadata = video_inputs.get("video_metadata")
        if metadata is not None:
            timestamps = getattr(metadata[video_idx], "timestamps", None)
            if timestamps is not None and len(timestamps) >= num_frames and getattr(metadata[video_idx], "fps", None):
                spans = [(float(timestamps[i]), float(timestamps[i + clip_len - 1])) for i in range(0, num_frames, clip_len)]
        return video_prompt(spans, per_clip)

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
