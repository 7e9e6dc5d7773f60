"""The configs' field types are checked by `@strict` (huggingface_hub's strict dataclasses, as in transformers'
own configs): a wrongly typed value or an unknown string choice is refused when the config is built, whether it
comes from Python or from a config.json."""

import json

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError

from liteframe_hf import LiteFrameConfig, LiteFrameVisionConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("clip_len", 4.0),
        ("layer_norm_eps", "1e-6"),
        ("hidden_size", True),
        ("post_layernorm", "yes"),
        ("temporal_mixer", "lstm"),
        ("attention_scope", "video"),
        ("output_wap_weighting", "max"),
        ("downsample_layers", {4: (2, 2.0, 2)}),
        ("output_wap_block", (1, "2", 2)),
        ("out_hidden_size", 1024.0),
    ],
)
def test_wrongly_typed_vision_field_is_rejected(field, value):
    with pytest.raises(StrictDataclassFieldValidationError, match=f"field '{field}'"):
        LiteFrameVisionConfig(**{field: value})


def test_wrongly_typed_composite_field_is_rejected():
    with pytest.raises(StrictDataclassFieldValidationError, match="field 'video_token_id'"):
        LiteFrameConfig(vision_config=LiteFrameVisionConfig.from_variant("liteframe-tiny"), video_token_id="151667")


def test_literal_choices_and_json_forms_are_accepted(tmp_path):
    config = LiteFrameVisionConfig.from_variant(
        "dinov2-s", temporal_mixer="attn", attention_scope="clip", output_wap_block=[4, 2, 2],
        output_wap_weighting="mean", attention_dropout=0,
    )
    assert config.output_wap_block == (4, 2, 2)
    config.save_pretrained(tmp_path)
    assert LiteFrameVisionConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()


def test_config_json_with_a_wrong_type_is_rejected(tmp_path):
    config = LiteFrameVisionConfig.from_variant("liteframe-tiny")
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, "clip_len": 4.0}))
    with pytest.raises(StrictDataclassFieldValidationError, match="field 'clip_len'"):
        LiteFrameVisionConfig.from_pretrained(tmp_path)
