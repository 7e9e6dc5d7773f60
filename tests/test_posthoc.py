"""Post-hoc WAP on a stock (tiny, random) InternVL: 16x fewer visual tokens, same pipeline, generate runs."""

import pytest
import torch
from transformers import InternVLConfig, InternVLForConditionalGeneration

from liteframe_hf.posthoc import (
    build_posthoc_prompt,
    compress_internvl_video_features,
    posthoc_generate,
    posthoc_inputs,
    posthoc_tokens_per_clip,
)
from liteframe_hf.wap import wap

from tiny import TINY_VIDEO_TOKEN_ID, tiny_text_config, tiny_tokenizer

VISION = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=56,
              patch_size=7, attention_bias=True, use_mean_pooling=True)


@pytest.fixture(scope="module")
def internvl():
    torch.manual_seed(0)
    config = InternVLConfig(vision_config=VISION, text_config=tiny_text_config(), image_token_id=TINY_VIDEO_TOKEN_ID,
                            tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.model.vision_tower.embeddings.cls_token.normal_()
        model.model.vision_tower.embeddings.position_embeddings.normal_(std=0.5)
    return model


def frames(n=8, seed=0):
    return torch.randn(n, 3, 56, 56, generator=torch.Generator().manual_seed(seed))


def test_16x_fewer_tokens_than_the_stock_path(internvl):
    x = frames(8)
    with torch.no_grad():
        stock = internvl.get_image_features(pixel_values=x).pooler_output  # (frames, 16, d_llm): 8x8 grid -> 4x4
    compressed = compress_internvl_video_features(internvl, x)
    assert stock.shape[:2] == (8, 16)
    assert compressed.shape == (stock.shape[0] * stock.shape[1] // 16, 64)  # 2 clips x (8/2/2)^2 = 8 tokens
    assert posthoc_tokens_per_clip(internvl.config) == 4
    # at InternVL3's 448 px: 16x16 after WAP, 8x8 after pixel shuffle = 64 tokens per clip = 16 per frame (stock 256)
    big = InternVLConfig(vision_config=dict(VISION, image_size=448, patch_size=14), text_config=tiny_text_config())
    assert posthoc_tokens_per_clip(big) == 64 and big.image_seq_length == 256


def test_pipeline_is_tower_wap_shuffle_projector(internvl):
    x = frames(8, seed=1)
    # identity pooling reproduces InternVL's own image features exactly: same tower output, shuffle and projector
    with torch.no_grad():
        stock = internvl.get_image_features(pixel_values=x).pooler_output
    identity = compress_internvl_video_features(internvl, x, clip_len=1, block=(1, 1, 1), weighting="mean")
    torch.testing.assert_close(identity, stock.reshape(-1, stock.shape[-1]), rtol=0, atol=0)
    # and the default is WAP (cls_dot, (4, 2, 2)) of the tower's last state, then InternVL's shuffle + projector
    base = internvl.model
    with torch.no_grad():
        states = base.vision_tower(pixel_values=x).last_hidden_state  # (8, 1 + 64, 64)
        pooled = wap(states[:, 1:].reshape(2, 4, 8, 8, 64), states[:, 0].reshape(2, 4, 64))  # (2, 1, 4, 4, 64)
        shuffled = base.pixel_shuffle(pooled.flatten(0, 1), scale_factor=0.5)  # (2, 2, 2, 256)
        expected = base.multi_modal_projector(shuffled.reshape(2, 4, 256)).reshape(-1, 64)
    torch.testing.assert_close(compress_internvl_video_features(internvl, x), expected, rtol=1e-5, atol=1e-6)
    # chunking does not change results; cls_attn works and differs from cls_dot
    torch.testing.assert_close(compress_internvl_video_features(internvl, x, chunk_size=1), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(compress_internvl_video_features(internvl, x, weighting="cls_attn"), expected)


def test_generate_with_compressed_tokens(internvl):
    tokenizer = tiny_tokenizer()
    inputs = posthoc_inputs(internvl, tokenizer, frames(8), "what happens ?", timestamps=[0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5])
    ids = inputs["input_ids"][0]
    assert int((ids == TINY_VIDEO_TOKEN_ID).sum()) == 8  # 128 on the stock path for these 8 frames
    text = tokenizer.decode(ids)  # the word-level test tokenizer splits "0-2s<img>" into "0 - 2 s <img>"
    assert text.index("0 - 2 s <img>") < text.index("2 - 4 s <img>") < text.index("what happens")
    out = internvl.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids.shape[0] + 4)
    # the answer equals a forward pass that scatters the same features into inputs_embeds by hand
    with torch.no_grad():
        embeds = internvl.get_input_embeddings()(inputs["input_ids"])
        mask = (inputs["input_ids"] == TINY_VIDEO_TOKEN_ID)[..., None]
        features = inputs["mm_encoder_outputs"]["image"].pooler_output.reshape(-1, 64)
        logits = internvl(inputs_embeds=embeds.masked_scatter(mask, features), attention_mask=inputs["attention_mask"]).logits
    assert int(logits[0, -1].argmax()) == int(out[0, ids.shape[0]])
    # beam search expands the pre-encoded features; uint8 frames of another size and odd counts are handled
    answer = posthoc_generate(internvl, tokenizer, (torch.rand(6, 40, 48, 3) * 255).to(torch.uint8), "what ?",
                              max_new_tokens=3, num_beams=2, do_sample=False)
    assert isinstance(answer, str)


def test_prompt_layout_and_errors(internvl):
    line = build_posthoc_prompt(2, 3, [(0.0, 1.5), (2.0, 3.5)])
    assert line == "0-2s<img>" + "<IMG_CONTEXT>" * 3 + "</img>2-4s<img>" + "<IMG_CONTEXT>" * 3 + "</img>"
    with pytest.raises(ValueError, match="not a multiple of clip_len=4"):
        compress_internvl_video_features(internvl, frames(6))
    with pytest.raises(TypeError, match="not a transformers InternVL model"):
        compress_internvl_video_features(torch.nn.Linear(2, 2), frames(4))
    tokenizer = tiny_tokenizer()
    other = InternVLForConditionalGeneration(InternVLConfig(vision_config=VISION, text_config=tiny_text_config(),
                                                            image_token_id=7))
    with pytest.raises(ValueError, match="image_token_id is 7"):
        posthoc_inputs(other, tokenizer, frames(4), "what ?")


def test_video_path_is_decoded_into_timed_clips(internvl):
    from liteframe_hf.assets import AssetNotFoundError, asset_path

    try:
        video = asset_path("bikes.mp4")
    except AssetNotFoundError as e:
        pytest.fail(str(e))  # `make test` fetches the sample videos first
    tokenizer = tiny_tokenizer()
    inputs = posthoc_inputs(internvl, tokenizer, str(video), "what happens ?", num_frames=8)
    assert int((inputs["input_ids"] == TINY_VIDEO_TOKEN_ID).sum()) == 2 * 4
    assert " s <img>" in tokenizer.decode(inputs["input_ids"][0])  # time spans from the decoder
    assert isinstance(posthoc_generate(internvl, tokenizer, str(video), "what ?", num_frames=8, max_new_tokens=2), str)
