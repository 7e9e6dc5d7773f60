"""Regenerate tests/data/tiny_reference.safetensors (only when a change to the numbers is intended).

Stores a tiny LiteFrame (weights with non-zero temporal convs and trained-looking merger weights), an input
video and prompt, and the expected encoder tokens and LM logits. `tests/test_reference.py` checks that the
current code reproduces them.

    .venv/bin/python tests/data/make_reference.py
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from liteframe_hf import LiteFrameForConditionalGeneration

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # tests/tiny.py
from tiny import TINY_VIDEO_TOKEN_ID, tiny_liteframe_config  # noqa: E402


def main() -> None:
    torch.manual_seed(1234)
    config = tiny_liteframe_config()
    model = LiteFrameForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "temporal_mixer" in name or "token_mergers" in name:
                p.normal_(0, 0.1)
    pixels = torch.randn(1, 8, 3, 56, 56)
    input_ids = torch.tensor([[1, 2, 3] + [TINY_VIDEO_TOKEN_ID] * 8 + [4, 5, 6]])
    with torch.no_grad():
        tokens = model.model.vision_tower(pixels).last_hidden_state
        logits = model(input_ids=input_ids, pixel_values_videos=pixels).logits
    tensors = {f"weight.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update({"input.pixels": pixels, "input.input_ids": input_ids, "expected.tokens": tokens, "expected.logits": logits})
    save_file(tensors, HERE / "tiny_reference.safetensors", metadata={"config": json.dumps(config.to_dict())})
    print("wrote", HERE / "tiny_reference.safetensors", tokens.shape, logits.shape)


if __name__ == "__main__":
    main()
