"""Model core: encoder stages, paper-exact sizes, attention backends, checkpointing, save/load, generate."""

import copy

import pytest
import torch

import liteframe_hf
from liteframe_hf import (
    LiteFrameConfig,
    LiteFrameForConditionalGeneration,
    LiteFrameVisionConfig,
    LiteFrameVisionModel,
)
from liteframe_hf.bench.encoder import random_encoder
from liteframe_hf.modeling.modeling_liteframe import pixel_shuffle

from tiny import (
    TINY_VIDEO_TOKEN_ID,
    assert_greedy_batched_equals_single,
    left_padded_prompts,
    tiny_liteframe_config,
)

V = TINY_VIDEO_TOKEN_ID


def tiny_vision(**overrides) -> LiteFrameVisionModel:
    # Non-zero temporal convs so tests see them act (they start at zero by design).
    return random_encoder("liteframe-tiny", temporal_std=0.2, **overrides)


def tiny_lm(**overrides) -> LiteFrameForConditionalGeneration:
    torch.manual_seed(0)
    return LiteFrameForConditionalGeneration(tiny_liteframe_config(**overrides)).eval()


prompt_ids = left_padded_prompts  # (tokens_per_video, pad_to, text=3) -> (ids, mask)


# ---------------------------------------------------------------- encoder


def test_stage_shapes():
    model = tiny_vision()
    out = model(torch.randn(2, 8, 3, 56, 56), output_hidden_states=True)  # 2 videos x 2 clips
    # 56 px / patch 7 = 8x8 grid; merge (2,2,2) after block 1, (2,1,1) after block 2. Embeddings, then each block.
    assert [tuple(h.shape) for h in out.hidden_states] == [
        (4, 4, 65, 32), (4, 4, 65, 32), (4, 2, 17, 32), (4, 1, 17, 32), (4, 1, 17, 32)]
    assert tuple(out.last_hidden_state.shape) == (4, 1, 4, 4, 48)
    assert tuple(out.pooler_output.shape) == (4, 1, 32)


def test_paper_sizes_exact():
    from transformers import InternVLVisionModel

    from liteframe_hf.paper import internvit_300m_config
    from liteframe_hf.profile import count_parameters, paper_flops

    with torch.device("meta"):
        teacher = InternVLVisionModel(internvit_300m_config())
        lite = LiteFrameVisionModel(LiteFrameVisionConfig())
        vitb = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("vit-b-12l"))
    assert count_parameters(lite) == 87_146_752
    assert count_parameters(vitb) == 86_313_216
    assert count_parameters(teacher) == 304_012_288
    assert round(paper_flops(lite, (64, 4, 3, 448, 448)) / 1e12, 2) == 17.92
    assert round(paper_flops(vitb, (64, 4, 3, 448, 448)) / 1e12, 2) == 44.81
    assert round(paper_flops(teacher, (256, 3, 448, 448)) / 1e12, 2) == 158.80


def test_output_grid_matches_config_and_wap_target_shape():
    config = LiteFrameVisionConfig()
    assert config.output_grid() == (1, 16, 16)
    assert LiteFrameConfig(vision_config=config).tokens_per_clip() == 64  # 16 tokens per frame


def test_temporal_mixer_mixes_only_within_clip():
    model = tiny_vision()
    x = torch.randn(1, 8, 3, 56, 56)
    base = model(x).last_hidden_state
    y = x.clone()
    y[0, 1] += 1.0  # change one frame of the first clip
    out = model(y).last_hidden_state
    assert not torch.allclose(out[0], base[0])  # its clip changes (temporal mixing + merging)
    torch.testing.assert_close(out[1], base[1])  # the other clip does not: clips are independent


def test_zero_temporal_convs_make_frames_independent_in_first_block():
    torch.manual_seed(0)
    model = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("liteframe-tiny")).eval()
    x = torch.randn(1, 4, 3, 56, 56)
    y = x.clone()
    y[0, 2] += 1.0
    h_x = model(x, output_hidden_states=True).hidden_states[1]  # after block 1
    h_y = model(y, output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(h_x[:, [0, 1, 3]], h_y[:, [0, 1, 3]])  # fresh init: a per-frame image ViT


@pytest.mark.parametrize("variant", ["vit-b-12l", "tempattn", "spatiotempattn", "tempconv", "dwtempconv"])
def test_every_paper_variant_runs(variant):
    overrides = {k: v for k, v in LiteFrameVisionConfig.from_variant("liteframe-tiny").to_dict().items()
                 if k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size", "patch_size")}
    config = LiteFrameVisionConfig.from_variant(variant, **overrides, downsample_layers={1: (2, 2, 2), 2: (2, 1, 1)}
                                                if variant != "vit-b-12l" else {})
    out = LiteFrameVisionModel(config).eval()(torch.randn(1, 4, 3, 56, 56))
    assert out.last_hidden_state.shape[1:4] == config.output_grid()


def test_eager_and_sdpa_agree():
    model = tiny_vision(attention_scope="clip")
    x = torch.randn(1, 8, 3, 56, 56)
    model.config._attn_implementation = "sdpa"
    sdpa = model(x).last_hidden_state
    model.config._attn_implementation = "eager"
    eager = model(x).last_hidden_state
    torch.testing.assert_close(sdpa, eager, rtol=1e-4, atol=1e-5)


def test_higher_resolution_interpolates_positions():
    model = tiny_vision()
    out = model(torch.randn(1, 4, 3, 112, 112)).last_hidden_state  # zero-shot 2x resolution
    assert tuple(out.shape) == (1, 1, 8, 8, 48)


def test_activation_checkpointing_backward_matches():
    x = torch.randn(1, 8, 3, 56, 56)
    grads = []
    for checkpointing in (False, True):
        model = tiny_vision().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(x).last_hidden_state.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)
    assert grads[1]["layers.0.temporal_mixer.weight"].abs().sum() > 0


# ---------------------------------------------------------------- bad inputs


def test_frames_not_multiple_of_clip_len():
    with pytest.raises(ValueError, match="not a multiple of clip_len=4"):
        tiny_vision()(torch.randn(1, 6, 3, 56, 56))


def test_wrong_resolution():
    with pytest.raises(ValueError, match="Frame size 50x50 does not fit"):
        tiny_vision()(torch.randn(1, 4, 3, 50, 50))


def test_wrong_rank():
    with pytest.raises(ValueError, match=r"\(num_clips, clip_len, 3, H, W\)"):
        tiny_vision()(torch.randn(4, 3, 56, 56))


def test_placeholder_mismatch():
    model = tiny_lm()
    ids, mask = prompt_ids([7], pad_to=13)  # 2 clips need 8 placeholders
    with pytest.raises(ValueError, match="prompt has 7 placeholder tokens .* give 8 features"):
        model(input_ids=ids, attention_mask=mask, pixel_values_videos=torch.randn(1, 8, 3, 56, 56))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(image_size=440), "not a multiple of patch_size"),
        (dict(image_size=462), "not divisible by the total spatial downsampling"),
        (dict(hidden_size=100), "not divisible by num_attention_heads"),
        (dict(downsample_layers={12: (2, 2, 2)}), "downsample layer 12"),
        (dict(clip_len=3), "clip_len=3 is not divisible"),
    ],
)
def test_config_validation_names_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiteFrameVisionConfig(**kwargs)


def test_composite_config_checks_pixel_shuffle():
    with pytest.raises(ValueError, match="not divisible by the pixel-shuffle factor 2"):
        LiteFrameConfig(vision_config=dict(image_size=420))  # 30x30 grid -> 15x15 after merging


def test_config_json_round_trip(tmp_path):
    config = tiny_liteframe_config()
    config.save_pretrained(tmp_path)
    loaded = LiteFrameConfig.from_pretrained(tmp_path)
    assert loaded.vision_config.downsample_layers == {1: (2, 2, 2), 2: (2, 1, 1)}
    assert loaded.to_dict() == config.to_dict()


# ---------------------------------------------------------------- composite model


def test_pixel_shuffle_matches_internvl():
    from transformers import InternVLConfig, InternVLModel

    x = torch.randn(3, 8, 8, 12)
    theirs = InternVLModel.pixel_shuffle(None, x, scale_factor=0.5)
    torch.testing.assert_close(pixel_shuffle(x, 2), theirs)


def test_auto_classes_resolve_after_import():
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

    config = tiny_liteframe_config()
    assert type(AutoConfig.for_model("liteframe")) is LiteFrameConfig
    assert type(AutoModelForImageTextToText.from_config(config)) is LiteFrameForConditionalGeneration
    assert type(AutoModel.from_config(config.vision_config)).__name__ == "LiteFrameVisionModel"


def test_different_video_lengths_in_one_batch_match_single_runs():
    model = tiny_lm()
    torch.manual_seed(1)
    long_video, short_video = torch.randn(8, 3, 56, 56), torch.randn(4, 3, 56, 56)
    pixels = torch.stack([long_video, torch.cat([short_video, torch.zeros_like(short_video)])])
    ids, mask = prompt_ids([8, 4], pad_to=14)
    batched = model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, video_num_frames=torch.tensor([8, 4]))
    for row, video in enumerate((long_video, short_video)):
        n = mask[row].sum()
        single = model(input_ids=ids[row : row + 1, -n:], pixel_values_videos=video[None])
        torch.testing.assert_close(batched.logits[row, -1], single.logits[0, -1], rtol=1e-4, atol=1e-4)


def test_padded_clips_are_not_encoded():
    model = tiny_lm()
    pixels = torch.randn(2, 8, 3, 56, 56)
    features = model.get_video_features(pixels, torch.tensor([8, 4])).pooler_output
    assert [tuple(f.shape) for f in features] == [(8, 64), (4, 64)]
    pixels[1, 4:] = float("nan")  # padding content must not matter
    again = model.get_video_features(pixels, torch.tensor([8, 4])).pooler_output
    torch.testing.assert_close(again[1], features[1])


@pytest.mark.parametrize("mode", [dict(do_sample=False), dict(num_beams=3, num_return_sequences=2), dict(do_sample=True, top_k=4)])
def test_generate_batch_of_two_lengths(mode):
    model = tiny_lm()
    pixels = torch.randn(2, 8, 3, 56, 56)
    ids, mask = prompt_ids([8, 4], pad_to=14)
    out = model.generate(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels,
                         video_num_frames=torch.tensor([8, 4]), max_new_tokens=4, min_new_tokens=4, **mode)
    assert out.shape == (2 * mode.get("num_return_sequences", 1), 14 + 4)


def test_greedy_generate_batched_equals_single():
    model = tiny_lm()
    torch.manual_seed(2)
    pixels = torch.randn(2, 8, 3, 56, 56)
    ids, mask = prompt_ids([8, 4], pad_to=14)
    assert_greedy_batched_equals_single(model, pixels, ids, mask, [8, 4])


def test_training_step_reduces_loss():
    model = tiny_lm().train()
    head_before = model.model.vision_tower.head.weight.detach().clone()
    pixels = torch.randn(1, 8, 3, 56, 56)
    ids, _ = prompt_ids([8], pad_to=14)
    labels = ids.clone()
    labels[ids == V] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, pixel_values_videos=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8
    assert not torch.equal(model.model.vision_tower.head.weight, head_before)  # the encoder is trained end to end


def test_save_load_round_trip_bit_exact(tmp_path):
    model = tiny_lm()
    model.save_pretrained(tmp_path)
    loaded = LiteFrameForConditionalGeneration.from_pretrained(tmp_path).eval()
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for key in state:
        assert torch.equal(state[key], loaded_state[key]), key
    pixels = torch.randn(1, 8, 3, 56, 56)
    ids, _ = prompt_ids([8], pad_to=14)
    assert torch.equal(model(input_ids=ids, pixel_values_videos=pixels).logits,
                       loaded(input_ids=ids, pixel_values_videos=pixels).logits)


def test_tied_embeddings_follow_text_config():
    tied = tiny_lm(text_overrides=dict(tie_word_embeddings=True))
    assert tied.config.tie_word_embeddings is True
    assert tied.lm_head.weight.data_ptr() == tied.get_input_embeddings().weight.data_ptr()
    untied = tiny_lm()
    assert untied.lm_head.weight.data_ptr() != untied.get_input_embeddings().weight.data_ptr()


def test_vision_tower_loads_alone_from_composite(tmp_path):
    model = tiny_lm()
    model.save_pretrained(tmp_path)
    tower = LiteFrameVisionModel.from_pretrained(tmp_path, key_mapping={r"^model\.vision_tower\.": ""})
    x = torch.randn(1, 4, 3, 56, 56)
    torch.testing.assert_close(tower.eval()(x).last_hidden_state, model.model.vision_tower(x).last_hidden_state)


def test_vision_config_is_not_shared_between_copies():
    config = tiny_liteframe_config()
    other = copy.deepcopy(config)
    other.vision_config.clip_len = 8
    assert config.vision_config.clip_len == 4
