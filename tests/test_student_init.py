"""Student initialisation by clipping a teacher ViT: tiny random InternViT / DINOv2 teachers (fast) and the real
DINOv2-S/14 -> liteframe-micro (slow)."""

import pytest
import torch
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model, InternVLVisionConfig, InternVLVisionModel

from liteframe_hf import LiteFrameVisionConfig, LiteFrameVisionModel
from liteframe_hf.student_init import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    init_student_from_teacher,
    resolve_layer_map,
    synthetic_clips,
)
from liteframe_hf.teachers import Teacher

TEACHER = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128, image_size=56,
               patch_size=7, attention_bias=True, use_mean_pooling=True, layer_norm_eps=1e-6)


def randomise(model, seed=0):
    """Non-trivial weights everywhere (LayerNorm/LayerScale/CLS/positions are constants at init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif "lambda" in name:
                p.copy_(0.5 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return model.eval()


def internvit(seed=0, **overrides):
    return randomise(InternVLVisionModel(InternVLVisionConfig(**{**TEACHER, **overrides})), seed)


def tiny_student(**overrides):
    return LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("liteframe-tiny", **{"out_hidden_size": 64, **overrides})).eval()


def clips(n=2, size=56, seed=1):
    return torch.randn(n, 4, 3, size, size, generator=torch.Generator().manual_seed(seed))


def clipped_internvit(teacher, layers, width, heads, inter):
    """The clipped teacher, built independently: an InternVLVisionModel of the student's sizes whose weights are
    hand-sliced teacher weights (same head_dim, so the first heads are the first `width` q/k/v rows)."""
    cfg = InternVLVisionConfig(**{**TEACHER, "hidden_size": width, "num_attention_heads": heads,
                                  "intermediate_size": inter, "num_hidden_layers": len(layers)})
    ref = InternVLVisionModel(cfg).eval()
    t = teacher.state_dict()
    sliced = {
        "embeddings.cls_token": t["embeddings.cls_token"][..., :width],
        "embeddings.position_embeddings": t["embeddings.position_embeddings"][..., :width],
        "embeddings.patch_embeddings.projection.weight": t["embeddings.patch_embeddings.projection.weight"][:width],
        "embeddings.patch_embeddings.projection.bias": t["embeddings.patch_embeddings.projection.bias"][:width],
    }
    for i, j in enumerate(layers):
        src, dst = f"encoder.layer.{j}.", f"encoder.layer.{i}."
        for name in ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.projection_layer"):
            sliced[dst + name + ".weight"] = t[src + name + ".weight"][:width, :width]
            sliced[dst + name + ".bias"] = t[src + name + ".bias"][:width]
        for name in ("layernorm_before", "layernorm_after"):
            sliced[dst + name + ".weight"] = t[src + name + ".weight"][:width]
            sliced[dst + name + ".bias"] = t[src + name + ".bias"][:width]
        for name in ("lambda_1", "lambda_2"):
            sliced[dst + name] = t[src + name][:width]
        sliced[dst + "mlp.fc1.weight"] = t[src + "mlp.fc1.weight"][:inter, :width]
        sliced[dst + "mlp.fc1.bias"] = t[src + "mlp.fc1.bias"][:inter]
        sliced[dst + "mlp.fc2.weight"] = t[src + "mlp.fc2.weight"][:width, :inter]
        sliced[dst + "mlp.fc2.bias"] = t[src + "mlp.fc2.bias"][:width]
    ref.load_state_dict(sliced, strict=True)
    return ref


def per_frame(x):  # (N, T, L, D) -> (N*T, L, D)
    return x.flatten(0, 1)


def test_first_block_reproduces_the_clipped_teacher():
    teacher = internvit()
    student = tiny_student()  # 32 wide, 2 heads of 16 (teacher: 64 wide, 4 heads of 16), 64 MLP units
    report = init_student_from_teacher(student, teacher, head_init="slice", num_calibration_clips=0)
    assert report.layer_map == [0, 1, 2, 3] and report.attention_slicing == "per-head"
    ref = clipped_internvit(teacher, [0], width=32, heads=2, inter=64)
    x = clips()
    with torch.no_grad():
        got = student(x, output_hidden_states=True).hidden_states[1]  # after block 1 + its (zero) temporal conv
        want = ref(pixel_values=x.flatten(0, 1)).last_hidden_state  # (N*T, 1 + 64, 32), no final norm
    torch.testing.assert_close(per_frame(got), want, rtol=1e-5, atol=1e-5)
    # and it is not trivially equal: the full-width teacher differs
    with torch.no_grad():
        full = teacher(pixel_values=x.flatten(0, 1), output_hidden_states=True).hidden_states[1][..., :32]
    assert (per_frame(got) - full).abs().max() > 1e-2


def test_layer_map_through_the_whole_depth_without_merging():
    """A student without token merging or head is the clipped teacher (layers 1 and 3) at every token."""
    teacher = internvit(seed=3)
    student = tiny_student(num_hidden_layers=2, downsample_layers={}, out_hidden_size=None)
    report = init_student_from_teacher(student, teacher, layer_map="1,3")
    assert report.layer_map == [1, 3] and report.head["method"].startswith("none")
    ref = clipped_internvit(teacher, [1, 3], width=32, heads=2, inter=64)
    x = clips(seed=4)
    with torch.no_grad():
        got = student(x).last_hidden_state  # (N, T, 8, 8, 32) patch tokens
        want = ref(pixel_values=x.flatten(0, 1)).last_hidden_state[:, 1:]
    torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)


def test_position_embeddings_are_resized_like_the_teacher_does():
    teacher = internvit(seed=5)
    student = tiny_student(image_size=28)  # 4x4 grid instead of the teacher's 8x8
    report = init_student_from_teacher(student, teacher, head_init="slice", num_calibration_clips=0)
    assert any("position grid 8x8 -> 4x4" in n for n in report.notes)
    ref = clipped_internvit(teacher, [0], width=32, heads=2, inter=64)
    x = clips(size=28)
    with torch.no_grad():
        got = student(x, output_hidden_states=True).hidden_states[1]
        want = ref(pixel_values=x.flatten(0, 1)).last_hidden_state  # InternViT interpolates its 8x8 positions
    torch.testing.assert_close(per_frame(got), want, rtol=1e-5, atol=1e-5)


def test_smaller_head_dim_keeps_the_teachers_logits_over_the_kept_dims():
    teacher = internvit(seed=6)
    student = tiny_student(num_attention_heads=4)  # 4 heads of 8 (teacher 4 heads of 16)
    report = init_student_from_teacher(student, teacher, head_init="slice", num_calibration_clips=0)
    assert report.attention_slicing == "per-head" and any("head_dim 16 -> 8" in n for n in report.notes)
    rows = torch.cat([torch.arange(h * 16, h * 16 + 8) for h in range(4)])
    t_attn, s_attn = teacher.encoder.layer[0].attention, student.layers[0].attention
    xs = torch.randn(5, 32)  # the student's LayerNorm output: its first 32 channels
    with torch.no_grad():
        # the teacher restricted to those input channels and to the kept head dims, at the teacher's scale
        q_t = (xs @ t_attn.q_proj.weight[rows][:, :32].T + t_attn.q_proj.bias[rows]).view(5, 4, 8)
        k_t = (xs @ t_attn.k_proj.weight[rows][:, :32].T + t_attn.k_proj.bias[rows]).view(5, 4, 8)
        logits_t = torch.einsum("ihd,jhd->hij", q_t, k_t) / 16**0.5  # the teacher's scale
        q_s = s_attn.q_proj(xs).view(5, 4, 8)
        k_s = s_attn.k_proj(xs).view(5, 4, 8)
        logits_s = torch.einsum("ihd,jhd->hij", q_s, k_s) * s_attn.scale  # the student's scale, 8 ** -0.5
    torch.testing.assert_close(logits_s, logits_t, rtol=1e-5, atol=1e-5)


def test_dinov2_teacher_first_block():
    """DINOv2 names (norm1, attention.q_proj/o_proj, layer_scale1.lambda1) map onto the student; a clipped
    DINOv2 built independently agrees after block 1."""
    cfg = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, mlp_ratio=2, image_size=56, patch_size=7,
               layerscale_value=1.0, layer_norm_eps=1e-6)
    teacher = randomise(Dinov2Model(Dinov2Config(**cfg)), seed=7)
    student = tiny_student()
    report = init_student_from_teacher(student, teacher, layer_map="first", head_init="slice", num_calibration_clips=0)
    assert report.teacher == "Dinov2Model"
    assert ("layers.0.lambda_1", "encoder.layer.0.layer_scale1.lambda1", (64,), (32,)) in report.sliced
    ref = Dinov2Model(Dinov2Config(**{**cfg, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1})).eval()
    t = teacher.state_dict()
    sliced = {}
    for k, v in ref.state_dict().items():
        src = t[k]
        sliced[k] = src[tuple(slice(0, s) for s in v.shape)]  # first rows/columns of everything (same head_dim)
    ref.load_state_dict(sliced)
    x = clips(seed=8)
    with torch.no_grad():
        got = student(x, output_hidden_states=True).hidden_states[1]
        want = ref(pixel_values=x.flatten(0, 1), output_hidden_states=True).hidden_states[1]  # before the final norm
    torch.testing.assert_close(per_frame(got), want, rtol=1e-5, atol=1e-5)


def test_head_fit_beats_the_slice_and_teacher_flags_are_restored():
    teacher = internvit(seed=9)
    teacher.requires_grad_(True).train()
    fitted = tiny_student()
    r_fit = init_student_from_teacher(fitted, teacher, eval_clips=synthetic_clips(4, 4, 56, seed=11))
    sliced = tiny_student()
    r_slice = init_student_from_teacher(sliced, teacher, head_init="slice", eval_clips=synthetic_clips(4, 4, 56, seed=11))
    assert all(p.requires_grad for p in teacher.parameters()) and teacher.training  # borrowed, not frozen
    assert r_fit.head["eval_cosine"] > r_slice.head["eval_cosine"]
    assert r_fit.head["eval_cosine"] > r_fit.head["eval_mean_cosine"]  # better than predicting the mean target
    assert r_fit.head["ridge"] in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    # the head's cosine is measured on the actual student output against the teacher's WAP targets
    x = synthetic_clips(4, 4, 56, seed=11)
    wrapped = Teacher(teacher, device="cpu", dtype=torch.float32)
    with torch.no_grad():
        cos = F.cosine_similarity(fitted(x).last_hidden_state, wrapped.wap_targets(x), dim=-1).mean()
    assert abs(float(cos) - r_fit.head["eval_cosine"]) < 1e-4


def test_teacher_wrapper_and_composite_models_are_accepted():
    from transformers import InternVLConfig, InternVLForConditionalGeneration

    from tiny import tiny_text_config

    model = InternVLForConditionalGeneration(InternVLConfig(vision_config=TEACHER, text_config=tiny_text_config()))
    randomise(model.model.vision_tower, seed=10)
    a, b = tiny_student(), tiny_student()
    init_student_from_teacher(a, model, head_init="slice", num_calibration_clips=0)
    init_student_from_teacher(b, Teacher(model.model.vision_tower, device="cpu"), head_init="slice", num_calibration_clips=0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_pixel_normalisation_is_folded_into_the_patch_embedding():
    teacher = internvit(seed=12)
    student = tiny_student()
    s_mean, s_std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    init_student_from_teacher(student, teacher, head_init="slice", num_calibration_clips=0, image_mean=s_mean,
                              image_std=s_std, teacher_image_mean=IMAGENET_MEAN, teacher_image_std=IMAGENET_STD)
    raw = torch.rand(2, 4, 3, 56, 56)
    norm = lambda x, m, s: (x - torch.tensor(m).view(3, 1, 1)) / torch.tensor(s).view(3, 1, 1)  # noqa: E731
    ref = clipped_internvit(teacher, [0], width=32, heads=2, inter=64)
    with torch.no_grad():
        got = student(norm(raw, s_mean, s_std), output_hidden_states=True).hidden_states[1]
        want = ref(pixel_values=norm(raw, IMAGENET_MEAN, IMAGENET_STD).flatten(0, 1)).last_hidden_state
    torch.testing.assert_close(per_frame(got), want, rtol=1e-4, atol=1e-4)


def test_layer_maps():
    assert resolve_layer_map(None, 24, 12) == list(range(0, 24, 2))
    assert resolve_layer_map("even", 12, 6) == [0, 2, 4, 6, 8, 10]
    assert resolve_layer_map("first", 24, 3) == [0, 1, 2]
    assert resolve_layer_map("0, 5,23", 24, 3) == [0, 5, 23]
    assert resolve_layer_map([3, 3], 4, 2) == [3, 3]
    with pytest.raises(ValueError, match="has 2 entries but the student has 3"):
        resolve_layer_map([0, 1], 24, 3)
    with pytest.raises(ValueError, match="outside the teacher's blocks 0..3"):
        resolve_layer_map([0, 4], 4, 2)
    with pytest.raises(ValueError, match="only 4"):
        resolve_layer_map("even", 4, 6)
    with pytest.raises(ValueError, match="neither 'even', 'first'"):
        resolve_layer_map("every-other", 24, 12)


def test_clear_errors():
    teacher = internvit()
    with pytest.raises(ValueError, match="wider than the teacher"):
        init_student_from_teacher(tiny_student(hidden_size=128, num_attention_heads=4, out_hidden_size=64), teacher)
    with pytest.raises(ValueError, match="out_hidden_size 48 differs from the teacher's width 64"):
        init_student_from_teacher(tiny_student(out_hidden_size=48), teacher)
    with pytest.raises(ValueError, match="head_init"):
        init_student_from_teacher(tiny_student(), teacher, head_init="identity")
    with pytest.raises(ValueError, match="supported teachers"):
        init_student_from_teacher(tiny_student(), torch.nn.Linear(4, 4))


# ------------------------------------------------------------------------------------------ slow: real DINOv2-S
def _real_clips(name, num_clips, size=224, step=4):
    import av

    from liteframe_hf.assets import asset_path

    frames = []
    with av.open(str(asset_path(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % step == 0:
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
            if len(frames) == num_clips * 4:
                break
    x = torch.stack(frames[: len(frames) // 4 * 4]).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x.reshape(-1, 4, 3, size, size)


@pytest.mark.slow
def test_real_dinov2_small_to_liteframe_micro():
    from liteframe_hf.assets import asset_path, ensure_assets

    ensure_assets(["dinov2", "videos"], progress=None)
    teacher = Dinov2Model.from_pretrained(asset_path("dinov2")).eval()
    calibration = torch.cat([_real_clips("bikes.mp4", 8, step=6), _real_clips("carphone_pristine.mp4", 8, step=6)])
    held_out = _real_clips("bigbuckbunny.mp4", 8, step=3)  # another video
    results = {}
    for label, kwargs in {
        "slice": dict(head_init="slice"),
        "lstsq-synthetic": dict(num_calibration_clips=16),
        "lstsq-real": dict(calibration_clips=calibration),
    }.items():
        torch.manual_seed(0)
        student = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant("liteframe-micro")).eval()
        report = init_student_from_teacher(student, teacher, eval_clips=held_out, **kwargs)
        results[label] = report.head
        print(f"\n[DINOv2-S -> liteframe-micro, head {label}] " + ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.head.items()))
    print(report)
    assert report.layer_map == [0, 2, 4, 6, 8, 10]
    assert any("position grid 37x37 -> 16x16" in n for n in report.notes)
    real, synthetic, sliced = results["lstsq-real"], results["lstsq-synthetic"], results["slice"]
    # DINOv2 ends with a LayerNorm: the transposed slice cannot express it (cosine ~0), a fitted head can.
    assert sliced["eval_cosine"] < 0.2
    assert real["eval_cosine"] > sliced["eval_cosine"] + 0.3 and synthetic["eval_cosine"] > sliced["eval_cosine"] + 0.3
    assert real["cosine"] > 0.8 and synthetic["cosine"] > 0.9  # in-distribution fit quality
