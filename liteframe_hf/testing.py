"""Tiny, fast configurations for tests and examples (CPU, milliseconds per forward)."""

from __future__ import annotations

from .modeling.configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig

TINY_VOCAB = 256
TINY_VIDEO_TOKEN_ID = TINY_VOCAB - 1


def tiny_text_config(**overrides) -> dict:
    fields = dict(
        model_type="qwen2",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=TINY_VOCAB,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    fields.update(overrides)
    return fields


def tiny_liteframe_config(vision_overrides: dict | None = None, **overrides) -> LiteFrameConfig:
    """LiteFrame with the `liteframe-tiny` encoder (56 px frames, 4 LLM tokens per clip) and a 2-layer Qwen2."""
    text = tiny_text_config(**overrides.pop("text_overrides", {}))
    vision = LiteFrameVisionConfig.from_variant("liteframe-tiny", **(vision_overrides or {}))
    return LiteFrameConfig(vision_config=vision, text_config=text, video_token_id=TINY_VIDEO_TOKEN_ID, **overrides)
