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
    assert default_model_dir() == tmp_path / "home" / "models" / "liteframe-micro-s"
    with pytest.raises(assets.AssetNotFoundError, match=str(tmp_path / "home" / "assets")):
        assets.asset_path("videos")
    # LITEFRAME_ASSETS stays as an override for the assets alone
    monkeypatch.setenv(assets.ENV_VAR, str(tmp_path / "elsewhere"))
    assert assets.cache_dir() == tmp_path / "elsewhere"
    assert default_model_dir() == tmp_path / "home" / "models" / "liteframe-micro-s"


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


@pytest.mark.parametrize("scoring", ["likelihood", "generate"])
def test_demo_answers_the_benchmark_question_by_option_likelihood_or_by_letter(scoring, tmp_path, monkeypatch, capsys):
    """Without --video the demo asks a benchmark question: by default the most likely option is the answer (each
    option's score printed), with --scoring generate the decoded letter."""
    import liteframe_hf.demo as demo
    from liteframe_hf.eval.data import Question

    model_dir = tmp_path / "tiny"
    torch.manual_seed(0)
    config = tiny_liteframe_config()
    LiteFrameForConditionalGeneration(config).save_pretrained(model_dir)
    video_processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=8)
    processor = LiteFrameProcessor(video_processor, tiny_tokenizer(), tokens_per_clip=config.tokens_per_clip())
    processor.save_pretrained(model_dir)
    question = Question(id="test-000000-identity-0", video=assets.asset_path("bikes.mp4"),
                        question="Which of these objects appears in the video?",
                        options=["A bear.", "A raspberry.", "A green fedora.", "A bicycle."], answer="D",
                        category="identity", line=1)
    monkeypatch.setattr(demo, "_benchmark_question", lambda pick, index: question)
    assert cli_main(["demo", "--model", str(model_dir), "--num-frames", "8", "--max-new-tokens", "2",
                     "--scoring", scoring]) == 0
    out = capsys.readouterr().out
    assert "question (test-000000-identity-0): Which of these objects appears in the video?" in out
    assert "  D. A bicycle." in out and "truth: D" in out
    assert out.count("mean log-probability per token") == (4 if scoring == "likelihood" else 0)
    if scoring == "likelihood":  # the answer is the option of the highest score
        import re

        scores = [float(x) for x in re.findall(r"mean log-probability per token (-?[0-9.]+)", out)]
        best = "ABCD"[scores.index(max(scores))]
        assert re.search(rf"answer: '{best}' -> {best}; truth: D", out), out


def test_demo_test_video_picks_that_videos_questions(tmp_path, monkeypatch):
    """--test-video N asks about the test split's video N: its questions only, rendered as the first N+1 videos."""
    import json
    import shutil

    import liteframe_hf.data.needle as needle
    import liteframe_hf.demo as demo

    rendered = []

    def build_split(split, out, first=None, **kwargs):  # the first `first` videos' questions, as build_split writes
        rendered.append((split, first))
        manifest = tmp_path / f"manifest_first{first}.jsonl"
        for v in range(first):  # one video file per video (a copy of a real clip)
            if not (tmp_path / f"test-{v:06d}.mp4").exists():
                shutil.copyfile(assets.asset_path("bikes.mp4"), tmp_path / f"test-{v:06d}.mp4")
        rows = [{"id": f"test-{v:06d}-identity-{i}", "video": f"test-{v:06d}.mp4",
                 "question": "Which of these objects appears in the video?", "options": ["A.", "B.", "C.", "D."],
                 "answer": "ABCD"[i], "category": "identity"} for v in range(first) for i in range(2)]
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return manifest

    monkeypatch.setattr(needle, "build_split", build_split)
    assert demo._benchmark_question(None, 2).id == "test-000002-identity-0"
    assert demo._benchmark_question("1", 2).id == "test-000002-identity-1"
    assert rendered == [("test", 3), ("test", 3)]
    with pytest.raises(SystemExit, match="no question '2'"):
        demo._benchmark_question("2", 0)
    with pytest.raises(SystemExit, match="videos 0-"):
        demo._benchmark_question(None, 10_000)
