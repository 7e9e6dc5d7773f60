"""WAP against an independent, explicit per-block loop (float64, math.exp softmax), plus error cases."""

import itertools
import math

import pytest
import torch

from liteframe_hf.wap import wap, wap_weights


def reference_wap(patches, cls, block, weighting, attn=None):
    """Slow, obviously-correct WAP: visit every block, list its tokens, weight them, sum."""
    B, T, H, W, D = patches.shape
    t, h, w = block
    x = patches.double()
    out = torch.zeros(B, T // t, H // h, W // w, D, dtype=torch.float64)
    for b, i, j, k in itertools.product(range(B), range(T // t), range(H // h), range(W // w)):
        tokens, scores = [], []
        for dt, dh, dw in itertools.product(range(t), range(h), range(w)):
            tau, r, c = i * t + dt, j * h + dh, k * w + dw
            tokens.append(x[b, tau, r, c])
            if weighting == "cls_dot":
                scores.append(float(torch.dot(cls.double()[b, tau], x[b, tau, r, c])) / math.sqrt(D))
            elif weighting == "cls_attn":
                scores.append(float(attn.double()[b, tau, r, c]))
        if weighting == "cls_dot":
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            weights = [e / sum(exps) for e in exps]
        elif weighting == "cls_attn":
            weights = [s / sum(scores) for s in scores]
        else:
            weights = [1.0 / len(tokens)] * len(tokens)
        out[b, i, j, k] = sum(wt * tok for wt, tok in zip(weights, tokens))
    return out


def random_inputs(B=2, T=8, H=4, W=6, D=16, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    patches = torch.randn(B, T, H, W, D, generator=g) * scale
    cls = torch.randn(B, T, D, generator=g) * scale
    attn = torch.rand(B, T, H, W, generator=g) + 0.01
    attn = attn / attn.flatten(2).sum(-1)[..., None, None]  # per-frame probabilities
    return patches, cls, attn


@pytest.mark.parametrize("weighting", ["cls_dot", "cls_attn", "mean"])
@pytest.mark.parametrize("block", [(4, 2, 2), (2, 1, 3), (1, 2, 1), (8, 4, 6)])
def test_matches_loop_reference(weighting, block):
    patches, cls, attn = random_inputs(scale=2.0)
    got = wap(patches, cls, block=block, weighting=weighting, attn=attn)
    ref = reference_wap(patches, cls, block, weighting, attn)
    B, T, H, W, D = patches.shape
    assert got.shape == (B, T // block[0], H // block[1], W // block[2], D)
    assert got.dtype == patches.dtype
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)


def test_default_block_shape_and_compression():
    patches, cls, _ = random_inputs(B=3, T=4, H=8, W=8, D=32)
    out = wap(patches, cls)  # (4, 2, 2), cls_dot
    assert out.shape == (3, 1, 4, 4, 32)
    assert patches[0].numel() // out[0].numel() == 16


def test_each_token_is_scored_against_its_own_frame_cls():
    """Swapping the CLS tokens of two frames changes cls_dot weights; a shared-query variant would not notice."""
    patches, cls, _ = random_inputs(B=1, T=4, H=2, W=2, D=8, scale=3.0)
    swapped = cls.clone()
    swapped[:, [0, 1]] = cls[:, [1, 0]]
    a = wap(patches, cls, block=(4, 2, 2))
    b = wap(patches, swapped, block=(4, 2, 2))
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b.double(), reference_wap(patches, swapped, (4, 2, 2), "cls_dot"), rtol=1e-5, atol=1e-5)


def test_token_aligned_with_cls_gets_most_weight():
    D = 64
    g = torch.Generator().manual_seed(1)
    patches = torch.randn(1, 4, 2, 2, D, generator=g) * 0.1
    cls = torch.randn(1, 4, D, generator=g)
    cls = cls / cls.norm(dim=-1, keepdim=True) * 8
    patches[0, 2, 1, 0] = cls[0, 2]  # token in frame 2 equals that frame's CLS: logit 64/8 = 8, others ~0
    weights = wap_weights(patches, cls, block=(4, 2, 2))
    assert weights.shape == (1, 1, 1, 1, 16)
    k = 2 * 4 + 1 * 2 + 0  # (frame, row, col) row-major inside the block
    assert weights[0, 0, 0, 0].argmax().item() == k
    assert weights[0, 0, 0, 0, k] > 0.9
    out = wap(patches, cls, block=(4, 2, 2))
    assert torch.nn.functional.cosine_similarity(out[0, 0, 0, 0], cls[0, 2], dim=0) > 0.95
    # mean pooling of the same block does not single it out
    mean = wap(patches, cls, block=(4, 2, 2), weighting="mean")
    torch.testing.assert_close(mean[0, 0, 0, 0], patches[0].reshape(16, D).mean(0))


def test_weights_sum_to_one_and_unit_block_is_identity():
    patches, cls, attn = random_inputs()
    for weighting in ("cls_dot", "cls_attn", "mean"):
        wts = wap_weights(patches, cls, (4, 2, 2), weighting, attn)
        torch.testing.assert_close(wts.sum(-1), torch.ones(wts.shape[:-1]))
        torch.testing.assert_close(wap(patches, cls, (1, 1, 1), weighting, attn), patches)


def test_cls_attn_is_renormalised_within_the_block():
    patches, cls, attn = random_inputs(B=1, T=4, H=2, W=2)
    # Scaling the probabilities of a whole block must not change the result (only relative weights count).
    torch.testing.assert_close(wap(patches, cls, weighting="cls_attn", attn=attn),
                               wap(patches, cls, weighting="cls_attn", attn=attn * 0.01))


def test_bf16_inputs_stable_softmax_in_fp32():
    patches, cls, _ = random_inputs(B=1, T=4, H=4, W=4, D=64, scale=40.0)  # logits ~ +-1e4: naive exp overflows
    out = wap(patches.bfloat16(), cls.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.isfinite(out.float()).all()
    ref = reference_wap(patches.bfloat16().float(), cls.bfloat16().float(), (4, 2, 2), "cls_dot")
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2 * 40)
    wts = wap_weights(patches.bfloat16(), cls.bfloat16())
    assert wts.dtype == torch.float32 and torch.isfinite(wts).all()


def test_gradients_flow_to_patches():
    patches, cls, _ = random_inputs(B=1, T=4, H=2, W=2, D=8)
    patches.requires_grad_(True)
    wap(patches, cls).sum().backward()
    assert patches.grad is not None and torch.isfinite(patches.grad).all()


@pytest.mark.parametrize(
    "shape, match",
    [((1, 6, 4, 4, 8), r"T \(frames\)=6 is not divisible by 4"),
     ((1, 4, 5, 4, 8), r"H \(patch rows\)=5 is not divisible by 2"),
     ((1, 4, 4, 3, 8), r"W \(patch columns\)=3 is not divisible by 2")],
)
def test_indivisible_grid_names_the_fix(shape, match):
    patches = torch.randn(*shape)
    cls = torch.randn(*shape[:2], shape[-1])
    with pytest.raises(ValueError, match=match) as err:
        wap(patches, cls)
    assert "Fix:" in str(err.value) and "multiple" in str(err.value)


def test_missing_cls_points_to_mean():
    with pytest.raises(ValueError, match="teacher has no CLS token: use weighting='mean'"):
        wap(torch.randn(1, 4, 2, 2, 8), None, weighting="cls_dot")
    assert wap(torch.randn(1, 4, 2, 2, 8), None, weighting="mean").shape == (1, 1, 1, 1, 8)


def test_other_errors():
    patches, cls, attn = random_inputs(B=1, T=4, H=2, W=2)
    with pytest.raises(ValueError, match="unknown WAP weighting 'max'.*cls_dot, cls_attn, mean"):
        wap(patches, cls, weighting="max")
    with pytest.raises(ValueError, match="needs the teacher's last-layer CLS attention"):
        wap(patches, cls, weighting="cls_attn")
    with pytest.raises(ValueError, match="attn must have shape"):
        wap(patches, cls, weighting="cls_attn", attn=attn[:, :2])
    with pytest.raises(ValueError, match="cls must have shape"):
        wap(patches, cls[:, :, :3])
    with pytest.raises(ValueError, match=r"patches must be a \(B, T, H, W, D\) tensor"):
        wap(patches[0], cls)
    with pytest.raises(ValueError, match="block must be three positive integers"):
        wap(patches, cls, block=(4, 2))
    with pytest.raises(ValueError, match="block must be three positive integers"):
        wap(patches, cls, block=(0, 2, 2))
