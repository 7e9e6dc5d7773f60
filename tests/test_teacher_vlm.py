"""The micro-scale baselines as LiteFrame configurations: the per-frame DINOv2-S tower (`dinov2-s`, final
LayerNorm, no merging) equals transformers' Dinov2Model, post-hoc WAP as output pooling (`dinov2-s-wap`)
equals `liteframe_hf.wap` on it, token counts, config validation, and the vision model's hidden states."""

import pytest
import torch

from liteframe_hf import LiteFrameConfig, LiteFrameVisionConfig, LiteFrameVisionModel
from liteframe_hf.bench.encoder import random_encoder
from liteframe_hf.wap import wap

# ------------------------------------------------------------------ configurations


@pytest.mark.parametrize(
    "variant, grid, per_clip",
    [
        ("dinov2-s", (4, 16, 16), 256),  # teacher VLM: 64 LLM tokens per frame
        ("dinov2-s-wap", (1, 8, 8), 16),  # post-hoc WAP (4, 2, 2): 4 per frame
        ("liteframe-micro", (1, 8, 8), 16),
        ("liteframe-b", (1, 16, 16), 64),  # the paper's encoder, unchanged
    ],
)
def test_tokens_per_clip(variant, grid, per_clip):
    vision = LiteFrameVisionConfig.from_variant(variant)
    config = LiteFrameConfig(vision_config=vision)
    assert vision.output_grid() == grid
    assert config.tokens_per_clip() == per_clip
    if variant != "liteframe-b":  # the three micro models share one projector input: 2x2 x 384 DINOv2 channels
        assert config.projector_input_size == 1536


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(output_wap_block=(4, 2)), "must be three positive ints"),
        (dict(output_wap_block=(4, 0, 2)), "must be three positive ints"),
        (dict(output_wap_block=(3, 2, 2)), r"does not tile the encoder's \(T', H', W'\)=\(4, 16, 16\)"),
        (dict(output_wap_block=(4, 3, 3)), "does not tile"),
        (dict(output_wap_weighting="mean"), "has no effect without output_wap_block"),
        (dict(out_hidden_size=-1), "out_hidden_size=-1"),
        (dict(num_hidden_layers=0), "num_hidden_layers=0"),
    ],
)
def test_nonsense_configs_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        LiteFrameVisionConfig.from_variant("dinov2-s", **overrides)


def test_output_wap_after_token_merging_must_fit_the_merged_grid():
    # liteframe-micro merges each clip to (1, 8, 8): a temporal WAP block of 4 cannot apply any more.
    with pytest.raises(ValueError, match=r"\(T', H', W'\)=\(1, 8, 8\)"):
        LiteFrameVisionConfig.from_variant("liteframe-micro", output_wap_block=(4, 2, 2))
    assert LiteFrameVisionConfig.from_variant("liteframe-micro", output_wap_block=(1, 2, 2)).output_grid() == (1, 4, 4)


def test_config_json_round_trip_keeps_the_new_fields(tmp_path):
    config = LiteFrameConfig(vision_config=LiteFrameVisionConfig.from_variant("dinov2-s-wap"))
    config.save_pretrained(tmp_path)
    loaded = LiteFrameConfig.from_pretrained(tmp_path)
    assert loaded.vision_config.output_wap_block == (4, 2, 2)  # JSON list back to a tuple
    assert loaded.vision_config.post_layernorm is True
    assert loaded.to_dict() == config.to_dict()


# ------------------------------------------------------------------ output pooling on a tiny tower


def tiny_tower(**overrides):
    # liteframe-tiny without merging: a per-frame ViT (4, 8, 8) grid per clip, random temporal mixers.
    fields = dict(downsample_layers={}, out_hidden_size=None, post_layernorm=True)
    return random_encoder("liteframe-tiny", temporal_std=0.2, seed=3, **{**fields, **overrides})


@pytest.mark.parametrize("weighting", ["cls_dot", "mean"])
def test_output_wap_equals_wap_on_the_unpooled_tower(weighting):
    plain = tiny_tower()
    with torch.no_grad():  # LayerNorms start at identity; make the final one act
        plain.post_layernorm.weight.normal_(1.0, 0.3)
        plain.post_layernorm.bias.normal_(0.0, 0.3)
    pooled = tiny_tower(output_wap_block=(4, 2, 2), output_wap_weighting=weighting)
    pooled.load_state_dict(plain.state_dict())  # WAP has no parameters
    x = torch.randn(2, 8, 3, 56, 56, generator=torch.Generator().manual_seed(0))  # 2 videos x 2 clips
    with torch.no_grad():
        full = plain(x)
        out = pooled(x)
    grid, cls = full.last_hidden_state, full.pooler_output  # (4, 4, 8, 8, 32), (4, 4, 32)
    torch.testing.assert_close(out.last_hidden_state, wap(grid, cls, (4, 2, 2), weighting=weighting))
    torch.testing.assert_close(out.pooler_output, cls.mean(1, keepdim=True))
    assert out.last_hidden_state.shape == (4, *pooled.config.output_grid(), 32)
    if weighting == "cls_dot":  # the CLS weighting is not plain averaging on these features
        assert (out.last_hidden_state - wap(grid, cls, (4, 2, 2), weighting="mean")).abs().max() > 1e-3


def test_post_layernorm_normalises_the_output():
    tower = tiny_tower()
    assert isinstance(tower.post_layernorm, torch.nn.LayerNorm)
    with torch.no_grad():
        out = tower(torch.randn(1, 4, 3, 56, 56), output_hidden_states=True)
    last_block = out.hidden_states[-1]  # (1, 4, 65, 32), before the final LayerNorm
    normed = torch.nn.functional.layer_norm(last_block, (32,), eps=tower.config.layer_norm_eps)
    torch.testing.assert_close(out.last_hidden_state, normed[:, :, 1:].reshape(1, 4, 8, 8, 32))
    torch.testing.assert_close(out.pooler_output, normed[:, :, 0])
    assert (last_block - normed).abs().max() > 0.1
    assert LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("liteframe-tiny")).post_layernorm is None


REMOTE_CODE = """
import sys
sys.modules["liteframe_hf"] = None  # importing our package now raises ImportError
import torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
torch.manual_seed(0)
with torch.no_grad():
    out = model.model.vision_tower(torch.randn(1, 8, 3, 56, 56))
torch.save((out.last_hidden_state, out.pooler_output), sys.argv[1] + "/remote_out.pt")
"""


def test_posthoc_configuration_loads_as_remote_code(tmp_path):
    import os
    import subprocess
    import sys

    from liteframe_hf import LiteFrameForConditionalGeneration
    from tiny import tiny_liteframe_config

    torch.manual_seed(0)
    config = tiny_liteframe_config(vision_overrides=dict(downsample_layers={}, post_layernorm=True,
                                                         output_wap_block=(4, 2, 2)))
    model = LiteFrameForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "wap_liteframe.py").is_file()  # the pooling code travels with the modeling file
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", REMOTE_CODE, str(tmp_path)], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.model.vision_tower(torch.randn(1, 8, 3, 56, 56))
    tokens, cls = torch.load(tmp_path / "remote_out.pt")
    assert tokens.shape == (2, 1, 4, 4, 48)
    assert torch.equal(tokens, out.last_hidden_state) and torch.equal(cls, out.pooler_output)


# ------------------------------------------------------------------ hidden states (transformers' convention)


def test_hidden_states_follow_the_transformers_convention():
    model = random_encoder("liteframe-tiny", temporal_std=0.2)
    x = torch.randn(1, 4, 3, 56, 56)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        embeddings = model.embeddings(x.flatten(0, 1)).view(1, 4, 65, 32)
        first = model.layers[0](embeddings)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(out.hidden_states[0], embeddings)  # embedding output first
    torch.testing.assert_close(out.hidden_states[1], first)  # then every block
    with torch.no_grad():
        assert model(x).hidden_states is None
        model.config.output_hidden_states = True  # honoured when the argument is None
        assert len(model(x).hidden_states) == model.config.num_hidden_layers + 1
        assert model(x, output_hidden_states=False).hidden_states is None  # an explicit argument wins


# ------------------------------------------------------------------ real DINOv2-S/14 on real frames


@pytest.fixture(scope="module")
def dinov2_and_frames():
    from transformers import Dinov2Model

    from liteframe_hf import LiteFrameVideoProcessor
    from liteframe_hf.assets import asset_path, ensure_assets
    from liteframe_hf.student_init import init_student_from_teacher

    ensure_assets(["dinov2", "videos"], progress=None)
    frames = LiteFrameVideoProcessor(size={"height": 224, "width": 224})(
        str(asset_path("bikes.mp4")), num_frames=8, return_tensors="pt")["pixel_values_videos"]  # (1, 8, 3, 224, 224)
    teacher = Dinov2Model.from_pretrained(asset_path("dinov2")).eval()
    tower = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("dinov2-s")).eval()
    report = init_student_from_teacher(tower, teacher)
    with torch.no_grad():
        reference = teacher(pixel_values=frames.flatten(0, 1)).last_hidden_state  # (8, 1 + 256, 384), post-LN
    return tower, report, frames, reference


def test_dinov2_s_tower_is_dinov2(dinov2_and_frames):
    tower, report, frames, reference = dinov2_and_frames
    assert report.layer_map == list(range(12))  # equal width and depth: the clipping rule is an exact copy
    assert "teacher final LayerNorm copied into post_layernorm" in report.notes
    with torch.no_grad():
        out = tower(frames)
    assert out.last_hidden_state.shape == (2, 4, 16, 16, 384)
    torch.testing.assert_close(out.last_hidden_state.reshape(8, 256, 384), reference[:, 1:], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.pooler_output.reshape(8, 384), reference[:, 0], rtol=1e-5, atol=1e-4)
    # Without the final LayerNorm the tower is far from DINOv2's output: the comparison can fail.
    with torch.no_grad():
        unnormed = tower(frames, output_hidden_states=True).hidden_states[-1][:, :, 1:]
    assert (unnormed.reshape(8, 256, 384) - reference[:, 1:]).abs().max() > 1.0


def test_posthoc_wap_tower_equals_wap_on_dinov2(dinov2_and_frames):
    tower, _, frames, reference = dinov2_and_frames
    posthoc = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("dinov2-s-wap")).eval()
    posthoc.load_state_dict(tower.state_dict())  # the same weights: WAP has no parameters
    with torch.no_grad():
        got = posthoc(frames).last_hidden_state
    want = wap(reference[:, 1:].reshape(2, 4, 16, 16, 384), reference[:, 0].reshape(2, 4, 384), block=(4, 2, 2))
    assert got.shape == want.shape == (2, 1, 8, 8, 384)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
