"""What a new user runs first: one cache root (LITEFRAME_HOME) and `liteframe demo` on an empty cache."""

import pytest
import torch

from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameProcessor, LiteFrameVideoProcessor
from liteframe_hf import assets
from liteframe_hf.cli import main as cli_main
from liteframe_hf.micro import default_model_dir

from tiny import tiny_liteframe_config, tiny_tokenizer


def test_liteframe_home_is_the_one_cache_root(tmp_path, monkeypatch):
    monkeypatch.delenv(assets.ENV_VAR, raising=False)
    monkeypatch.setenv("LITEFRAME_HOME", str(tmp_path / "home"))
    assert assets.cache_dir() == tmp_path / "home" / "assets"
    assert default_model_dir() == tmp_path / "home" / "models" / "liteframe-micro"
    with pytest.raises(assets.AssetNotFoundError, match=str(tmp_path / "home" / "assets")):
        assets.asset_path("videos")
    # LITEFRAME_ASSETS stays as an override for the assets alone
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path / "elsewhere"))
    assert assets.cache_dir() == tmp_path / "elsewhere"
    assert default_model_dir() == tmp_path / "home" / "models" / "liteframe-micro"


def test_demo_answers_a_free_form_question_about_any_video(tmp_path, monkeypatch, capsys):
    """`liteframe demo --video ANY --question ...` on a fresh LITEFRAME_HOME: the shapes, the answer, the timings."""
    model_dir = tmp_path / "tiny"
    torch.manual_seed(0)
    config = tiny_liteframe_config()
    LiteFrameForConditionalGeneration(config).save_pretrained(model_dir)
    video_processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=8)
    LiteFrameProcessor(video_processor, tiny_tokenizer(), tokens_per_clip=config.tokens_per_clip()).save_pretrained(model_dir)
    video = assets.asset_path("bikes.mp4")

    monkeypatch.delenv(assets.ENV_VAR, raising=False)
    monkeypatch.setenv("LITEFRAME_HOME", str(tmp_path / "home"))
    assert cli_main(["demo", "--model", str(model_dir), "--video", str(video), "--question", "What moves?",
                     "--num-frames", "8", "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert str(video) in out and "sampled frames   8" in out and "question: What moves?" in out
    assert "stage timings" in out and "answer:" in out
