"""A saved LiteFrame loads with plain transformers + trust_remote_code where our package cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from liteframe_hf import LiteFrameForConditionalGeneration

from tiny import TINY_VIDEO_TOKEN_ID, tiny_liteframe_config

FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.modules["liteframe_hf"] = None  # importing our package now raises ImportError
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText
    path, video_token = sys.argv[1], int(sys.argv[2])
    config = AutoConfig.from_pretrained(path, trust_remote_code=True)
    model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
    lm = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True).eval()
    assert type(model).__name__ == lm.__class__.__name__ == "LiteFrameForConditionalGeneration"
    assert type(config).__module__.startswith("transformers_modules"), type(config).__module__
    torch.manual_seed(0)
    pixels = torch.randn(1, 8, 3, 56, 56)
    ids = torch.tensor([[5] * 3 + [video_token] * 8 + [9] * 3])
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values_videos=pixels).logits
    torch.save(logits, path + "/remote_logits.pt")
    print(model.generate(input_ids=ids, pixel_values_videos=pixels, max_new_tokens=3, do_sample=False).shape)
    """
)


def test_remote_code_load_without_package(tmp_path):
    torch.manual_seed(0)
    model = LiteFrameForConditionalGeneration(tiny_liteframe_config()).eval()
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"configuration_liteframe.py", "modeling_liteframe.py", "model.safetensors", "config.json"} <= files
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == auto_map["AutoModelForImageTextToText"] == "modeling_liteframe.LiteFrameForConditionalGeneration"

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path), str(TINY_VIDEO_TOKEN_ID)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.Size([1, 17])" in result.stdout

    torch.manual_seed(0)
    pixels = torch.randn(1, 8, 3, 56, 56)
    ids = torch.tensor([[5] * 3 + [TINY_VIDEO_TOKEN_ID] * 8 + [9] * 3])
    with torch.no_grad():
        expected = model(input_ids=ids, pixel_values_videos=pixels).logits
    assert torch.equal(torch.load(tmp_path / "remote_logits.pt"), expected)



CHECKED_ON_LOAD = textwrap.dedent(
    """
    import sys
    sys.modules["liteframe_hf"] = None
    from transformers import AutoModel
    AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
    print(sorted(name.rsplit(".", 1)[-1] for name in sys.modules if name.startswith("transformers_modules.")))
    """
)


def test_remote_code_checks_the_transformers_version(tmp_path):
    from liteframe_hf.modeling.version_liteframe import MAX_TRANSFORMERS, MIN_TRANSFORMERS, check_transformers_version

    check_transformers_version(MIN_TRANSFORMERS)
    check_transformers_version(MAX_TRANSFORMERS)
    check_transformers_version(MAX_TRANSFORMERS + ".post1")
    for version in ("5.22.2", "5.25.0", "6.0.0", "4.57.1"):
        try:
            check_transformers_version(version)
        except ImportError as error:
            assert f"this environment has {version}" in str(error) and f"transformers>={MIN_TRANSFORMERS}" in str(error)
        else:
            raise AssertionError(f"{version} accepted")

    # the check travels with the remote code and runs when a user loads the folder
    LiteFrameForConditionalGeneration(tiny_liteframe_config()).save_pretrained(tmp_path)
    assert (tmp_path / "version_liteframe.py").exists()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", CHECKED_ON_LOAD, str(tmp_path)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "'version_liteframe'" in result.stdout
