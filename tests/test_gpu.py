"""GPU correctness (CUDA only; skipped where there is none, as on CI): the paper-scale encoder in bf16 against an
fp32 reference, attention backends agreeing at 448 px, activation checkpointing under bf16 autocast, and batched
generation on the GPU. Run on a GPU machine with `python -m pytest -q tests/test_gpu.py`."""

import importlib.util

import pytest
import torch

from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from liteframe_hf.bench import exact_fp32, relative_error
from liteframe_hf.bench.encoder import random_encoder

from tiny import (
    assert_greedy_batched_equals_single,
    left_padded_prompts,
    tiny_liteframe_config,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


def encoder(variant: str, **overrides) -> LiteFrameVisionModel:
    return random_encoder(variant, temporal_std=0.1, **overrides)


def test_cuda_fp32_matches_cpu():
    model = encoder("liteframe-tiny")
    x = torch.randn(2, 8, 3, 56, 56)
    with torch.no_grad(), exact_fp32():
        cpu = model(x).last_hidden_state
        gpu = model.to(CUDA)(x.to(CUDA)).last_hidden_state.cpu()
    assert relative_error(gpu, cpu) < 1e-5


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_paper_encoder_bf16_close_to_fp32(attn):
    """LiteFrame-B at 448 px, two 4-frame clips: bf16 on the GPU within bf16 rounding of the fp32 forward."""
    model = encoder("liteframe-b").to(CUDA)
    x = torch.randn(2, 4, 3, 448, 448, device=CUDA)
    with torch.no_grad(), exact_fp32():
        model.config._attn_implementation = "eager"
        reference = model(x).last_hidden_state
        model.config._attn_implementation = attn
        out = model.to(torch.bfloat16)(x.to(torch.bfloat16)).last_hidden_state
    assert out.shape == (2, 1, 16, 16, 1024)
    assert relative_error(out, reference) < 2e-2


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_flash_attention_2_matches_sdpa():
    model = encoder("liteframe-b").to(CUDA, torch.bfloat16)
    x = torch.randn(1, 4, 3, 448, 448, device=CUDA, dtype=torch.bfloat16)
    with torch.no_grad():
        model.config._attn_implementation = "sdpa"
        sdpa = model(x).last_hidden_state
        model.config._attn_implementation = "flash_attention_2"
        flash = model(x).last_hidden_state
    assert relative_error(flash, sdpa) < 1e-2


def test_activation_checkpointing_under_bf16_autocast():
    x = torch.randn(2, 4, 3, 224, 224, device=CUDA)
    grads = []
    for checkpointing in (False, True):
        model = encoder("liteframe-b", image_size=224).to(CUDA).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).last_hidden_state.float().square().mean()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    # Recomputation replays the same bf16 kernels, so the gradients agree to bf16 rounding at most.
    assert relative_error(grads[1], grads[0]) < 1e-2
    torch.cuda.empty_cache()


def test_batched_generate_on_gpu_equals_single():
    torch.manual_seed(0)
    model = LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval().to(CUDA)
    pixels = torch.randn(2, 8, 3, 56, 56, device=CUDA)
    ids, mask = left_padded_prompts([8, 4], pad_to=14, device=CUDA)  # video 1: 4 real frames + 4 padded
    with exact_fp32():
        assert_greedy_batched_equals_single(model, pixels, ids, mask, [8, 4])
