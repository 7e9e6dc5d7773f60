"""Stored reference tensors: any change to modeling that moves the numbers shows up here."""

import json
from pathlib import Path

import torch
from safetensors import safe_open

from liteframe_hf import LiteFrameConfig, LiteFrameForConditionalGeneration

REFERENCE = Path(__file__).parent / "data" / "tiny_reference.safetensors"


def load_reference():
    with safe_open(REFERENCE, "pt") as f:
        config = LiteFrameConfig.from_dict(json.loads(f.metadata()["config"]))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return config, tensors


def test_tiny_model_reproduces_stored_outputs():
    config, t = load_reference()
    model = LiteFrameForConditionalGeneration(config).eval()
    weights = {k.removeprefix("weight."): v for k, v in t.items() if k.startswith("weight.")}
    missing, unexpected = model.load_state_dict(weights, strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        tokens = model.model.vision_tower(t["input.pixels"]).last_hidden_state
        logits = model(input_ids=t["input.input_ids"], pixel_values_videos=t["input.pixels"]).logits
    torch.testing.assert_close(tokens, t["expected.tokens"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, t["expected.logits"], rtol=1e-5, atol=1e-5)
