"""Teacher wrapper on tiny random InternVL / DINOv2 / CLIP / SigLIP models (CPU, seconds)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    InternVLConfig,
    InternVLForConditionalGeneration,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from liteframe_hf.teachers import Teacher
from liteframe_hf.wap import wap

D = 32
VISION = dict(hidden_size=D, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, patch_size=14)


def clips(n=3, t=4, size=56, seed=0):
    return torch.randn(n, t, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def internvl_dir(tmp_path_factory):
    """A tiny InternVL3-style checkpoint (InternViT-300M layout: mean pooling -> no final norm, layer scale,
    attention bias) with a Qwen2 LLM, saved the way transformers saves InternVL3-*-hf."""
    torch.manual_seed(0)
    config = InternVLConfig(
        vision_config=dict(VISION, image_size=56, use_mean_pooling=True, attention_bias=True,
                           layer_scale_init_value=0.1, norm_type="layer_norm"),
        text_config=dict(model_type="qwen2", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, vocab_size=128),
        image_token_id=100,
    )
    model = InternVLForConditionalGeneration(config)
    with torch.no_grad():  # non-trivial CLS / position embeddings (zeros at init)
        model.model.vision_tower.embeddings.cls_token.normal_()
        model.model.vision_tower.embeddings.position_embeddings.normal_(std=0.5)
    path = tmp_path_factory.mktemp("internvl")
    model.save_pretrained(path)
    return path, model.model.vision_tower.eval()


def test_internvl_from_pretrained_loads_only_the_vision_tower(internvl_dir):
    path, tower = internvl_dir
    teacher = Teacher.from_pretrained(path)
    assert type(teacher.model).__name__ == "InternVLVisionModel"
    assert isinstance(teacher.model.layernorm, torch.nn.Identity)  # InternViT-300M: no final norm
    ref = tower.state_dict()
    got = teacher.model.state_dict()
    assert set(got) == set(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert teacher.has_cls and teacher.weighting == "cls_dot" and teacher.dtype == torch.float32

    x = clips()
    out = teacher.encode(x)
    assert out.cls.shape == (3, 4, D) and out.patches.shape == (3, 4, 4, 4, D) and out.attn is None
    with torch.no_grad():
        states = tower(pixel_values=x.flatten(0, 1)).last_hidden_state  # raw last block, CLS first
    torch.testing.assert_close(out.cls, states[:, 0].reshape(3, 4, D))
    torch.testing.assert_close(out.patches, states[:, 1:].reshape(3, 4, 4, 4, D))
    targets = teacher.wap_targets(x)
    assert targets.shape == (3, 1, 2, 2, D)
    torch.testing.assert_close(targets, wap(out.patches, out.cls))
    torch.testing.assert_close(teacher(x), targets)


def test_internvl_in_memory_key_layout(internvl_dir, tmp_path):
    """`model.vision_tower.*` keys (the in-memory InternVLForConditionalGeneration names) load too."""
    path, tower = internvl_dir
    sd = load_file(str(path / "model.safetensors"))
    save_file({("model." + k if k.startswith("vision_tower.") else k): v for k, v in sd.items()},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    teacher = Teacher.from_pretrained(tmp_path)
    assert all(torch.equal(teacher.model.state_dict()[k], v) for k, v in tower.state_dict().items())


def test_checkpoint_without_vision_tower_is_an_error(internvl_dir, tmp_path):
    path, _ = internvl_dir
    sd = load_file(str(path / "model.safetensors"))
    save_file({k: v for k, v in sd.items() if not k.startswith("vision_tower.")}, str(tmp_path / "model.safetensors"),
              metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(ValueError, match="does not hold a complete InternVLVisionModel vision tower"):
        Teacher.from_pretrained(tmp_path)


def test_frozen_eval_no_grad(internvl_dir):
    teacher = Teacher.from_pretrained(internvl_dir[0])
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not teacher.model.training
    parent = torch.nn.Sequential(teacher)
    parent.train()
    assert not teacher.model.training
    x = clips().requires_grad_(True)
    assert not teacher.wap_targets(x).requires_grad
    assert not teacher.encode(x).patches.requires_grad


@pytest.mark.parametrize("weighting", ["cls_dot", "cls_attn", "mean"])
def test_chunking_gives_identical_results(internvl_dir, weighting):
    x = clips(n=5)
    full = Teacher.from_pretrained(internvl_dir[0], weighting=weighting)
    chunked = Teacher.from_pretrained(internvl_dir[0], weighting=weighting, chunk_size=2)
    torch.testing.assert_close(chunked.wap_targets(x), full.wap_targets(x), rtol=1e-5, atol=1e-6)
    a, b = full.encode(x, need_attn=True), chunked.encode(x, need_attn=True)
    for name in ("cls", "patches", "attn"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-5, atol=1e-6)


def test_cls_attention_matches_eager_output_attentions(internvl_dir):
    teacher = Teacher.from_pretrained(internvl_dir[0], weighting="cls_attn")
    x = clips(n=2)
    out = teacher.encode(x, need_attn=True)
    assert out.attn.shape == (2, 4, 4, 4)
    teacher.model.set_attn_implementation("eager")
    with torch.no_grad():
        ref = teacher.model(pixel_values=x.flatten(0, 1), output_attentions=True).attentions[-1]
    probs = ref[:, :, 0, 1:].mean(1).reshape(2, 4, 4, 4)  # CLS row, patch columns, head mean
    torch.testing.assert_close(out.attn, probs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(teacher.wap_targets(x), wap(out.patches, out.cls, weighting="cls_attn", attn=probs),
                               rtol=1e-4, atol=1e-5)


def test_dinov2_teacher(tmp_path):
    torch.manual_seed(0)
    model = Dinov2Model(Dinov2Config(**VISION, image_size=56))
    model.save_pretrained(tmp_path)
    teacher = Teacher.from_pretrained(tmp_path, chunk_size=2)
    assert type(teacher.model).__name__ == "Dinov2Model" and teacher.has_cls
    x = clips(n=3, t=8, size=70)  # 5x5 grid, non-native size -> interpolated position embeddings
    out = teacher.encode(x)
    with torch.no_grad():
        ref = model.eval()(pixel_values=x.flatten(0, 1))
    torch.testing.assert_close(out.cls, ref.pooler_output.reshape(3, 8, D), rtol=1e-5, atol=1e-5)
    assert out.patches.shape == (3, 8, 5, 5, D)
    with pytest.raises(ValueError, match=r"W \(patch columns\)=5 is not divisible by 2"):
        teacher.wap_targets(x)
    assert teacher.wap_targets(x, block=(4, 5, 5)).shape == (3, 2, 1, 1, D)
    assert teacher.wap_targets(clips(n=1, t=8, size=56)).shape == (1, 2, 2, 2, D)


def test_clip_teacher_with_cls_attn():
    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(**VISION, image_size=56))
    teacher = Teacher(model, weighting="cls_attn")
    x = clips(n=2, size=84)  # 6x6 grid, needs interpolate_pos_encoding
    targets = teacher.wap_targets(x)
    assert targets.shape == (2, 1, 3, 3, D) and torch.isfinite(targets).all()


def test_siglip_has_no_cls_token_and_uses_mean(tmp_path):
    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(**VISION, image_size=56))
    model.save_pretrained(tmp_path)
    teacher = Teacher.from_pretrained(tmp_path)
    assert type(teacher.model).__name__ == "SiglipVisionModel"
    assert not teacher.has_cls and teacher.weighting == "mean"
    x = clips(n=2)
    out = teacher.encode(x)
    assert out.cls is None and out.patches.shape == (2, 4, 4, 4, D)
    with torch.no_grad():
        ref = model.eval()(pixel_values=x.flatten(0, 1)).last_hidden_state
    torch.testing.assert_close(out.patches, ref.reshape(2, 4, 4, 4, D))
    torch.testing.assert_close(teacher.wap_targets(x), wap(out.patches, None, weighting="mean"))
    for weighting in ("cls_dot", "cls_attn"):
        with pytest.raises(ValueError, match="has no CLS token: use weighting='mean'"):
            Teacher.from_pretrained(tmp_path, weighting=weighting)
        with pytest.raises(ValueError, match="has no CLS token: use weighting='mean'"):
            teacher.wap_targets(x, weighting=weighting)


def test_bfloat16_and_feature_layer(internvl_dir):
    teacher = Teacher.from_pretrained(internvl_dir[0], dtype=torch.bfloat16, feature_layer=-2)
    assert teacher.dtype == torch.bfloat16
    x = clips(n=1)
    targets = teacher.wap_targets(x)
    assert targets.dtype == torch.bfloat16 and targets.shape == (1, 1, 2, 2, D)
    with torch.no_grad():
        hidden = teacher.model(pixel_values=x.flatten(0, 1).bfloat16(), output_hidden_states=True).hidden_states
    torch.testing.assert_close(teacher.encode(x).patches, hidden[-2][:, 1:].reshape(1, 4, 4, 4, D))


def test_input_errors(internvl_dir):
    teacher = Teacher.from_pretrained(internvl_dir[0])
    with pytest.raises(ValueError, match=r"clips must be a \(N, clip_len, 3, H, W\) tensor"):
        teacher.encode(torch.randn(4, 3, 56, 56))
    with pytest.raises(ValueError, match=r"T \(frames\)=3 is not divisible by 4"):
        teacher.wap_targets(clips(n=1, t=3))
    with pytest.raises(ValueError, match="unknown WAP weighting"):
        Teacher.from_pretrained(internvl_dir[0], weighting="max")
    with pytest.raises(ValueError, match="chunk_size must be a positive"):
        Teacher.from_pretrained(internvl_dir[0], chunk_size=0)


def test_unsupported_composite_checkpoint_is_explained(tmp_path):
    config = {"model_type": "llava", "vision_config": {"model_type": "clip_vision_model"},
              "text_config": {"model_type": "llama"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="don't know how to take the vision tower out of a 'llava' checkpoint"):
        Teacher.from_pretrained(tmp_path)
