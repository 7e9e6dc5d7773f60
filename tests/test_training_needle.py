"""LMA on a needle benchmark manifest (issue 17's training data): a tiny real build (3 haystack videos, real
stamps) read by training/lma.py as one-turn chats with `liteframe eval`'s MCQ prompt and the answer letter as the
only trained tokens, frames planned as the processor plans `--frames N`; the teacher VLM's projector carried into
another model with `init_projector_from`; `dinov2-s` never built as a random tower."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from liteframe_hf.cli import main as cli_main
from liteframe_hf.eval.data import load_manifest, mcq_prompt
from liteframe_hf.training.config import LMAConfig, parse_config
from liteframe_hf.training.data import VideoConversationDataset, VideoTable
from liteframe_hf.training.models import _micro_name, build_lma_model, load_projector

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(needle_haystacks, tmp_path_factory):
    """A 3-video val split of the needle benchmark (seconds to build)."""
    out = tmp_path_factory.mktemp("needle")
    assert cli_main(["data", "needle", "--split", "val", "--out", str(out), "--videos", "3", "--seed", "1",
                     "--haystacks", str(needle_haystacks), "--workers", "1"]) == 0
    return out / "val" / "manifest.jsonl"


@pytest.fixture
def tiny_config(tiny_recipes):
    """manifest, *extra -> the tiny LMA recipe's LMAConfig."""
    return lambda manifest, *extra: parse_config(LMAConfig, ["--config", tiny_recipes["lma"], "--train_data",
                                                             str(manifest), *extra])


def test_needle_rows_are_the_eval_prompt_with_the_letter_as_the_only_target(bench, tiny_config):
    # SmolLM2's real tokenizer (the tiny one has no words for the prompt); the tiny encoder keeps it cheap.
    cfg = tiny_config(bench, "--frame_budgets", "8", "12", "--frame_sampling", "processor",
                      "--language_model", "asset:smollm2")
    model, processor = build_lma_model(cfg)
    table = VideoTable(cfg.train_data)
    data = VideoConversationDataset(table, cfg, processor, seed=0, fixed=True)
    questions = load_manifest(bench).questions
    tokenizer = processor.tokenizer
    frames = set()
    for i in range(len(data)):
        row, sample = table.row(i), data[i]
        assert sample["skipped"] == 0
        labels = sample["labels"]
        target = tokenizer.decode(labels[labels != -100])
        assert target == f"{row['answer']}<|im_end|>\n"  # the letter and the end of turn, nothing else
        assert mcq_prompt(row["question"], row["options"]) in tokenizer.decode(sample["input_ids"])
        # The prompt is token for token, and the frames pixel for pixel, what `liteframe eval --frames N` feeds.
        n = sample["pixel_values_videos"].shape[0]
        frames.add(n)
        chat = [{"role": "user", "content": [{"type": "video", "video": str(questions[i].video)},
                                             {"type": "text", "text": questions[i].prompt}]}]
        asked = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                              return_tensors="pt", num_frames=n)
        prompt = asked["input_ids"][0]
        assert torch.equal(sample["input_ids"][: len(prompt)], prompt)
        assert (labels[: len(prompt)] == -100).all() and (labels[len(prompt):] != -100).all()
        torch.testing.assert_close(sample["pixel_values_videos"], asked["pixel_values_videos"][0], rtol=0, atol=1e-5)
    assert frames == {8, 12}  # exactly the budget (whole clips), not capped by an fps draw


def test_mcq_answer_text_trains_the_right_options_text_after_the_question_alone(bench, tiny_config):
    """--mcq_answer text: the cloze formulation `liteframe eval --scoring likelihood` scores: the prompt is the
    question alone (token for token what the eval asks) and the right option's text + end of turn the target."""
    cfg = tiny_config(bench, "--frame_budgets", "8", "--frame_sampling", "processor", "--language_model",
                      "asset:smollm2", "--mcq_answer", "text")
    _, processor = build_lma_model(cfg)
    table = VideoTable(cfg.train_data)
    data = VideoConversationDataset(table, cfg, processor, seed=0, fixed=True)
    questions = load_manifest(bench).questions
    for i in range(len(data)):
        row, sample = table.row(i), data[i]
        labels = sample["labels"]
        right = row["options"]["ABCD".index(row["answer"])]
        assert processor.tokenizer.decode(labels[labels != -100]) == f"{right}<|im_end|>\n"
        chat = [{"role": "user", "content": [{"type": "video", "video": str(questions[i].video)},
                                             {"type": "text", "text": questions[i].question}]}]
        prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True,
                                               return_tensors="pt", num_frames=8)["input_ids"][0]
        assert torch.equal(sample["input_ids"][: len(prompt)], prompt)
        assert "A. " not in processor.tokenizer.decode(sample["input_ids"])  # no option list in the prompt


def test_random_fps_sampling_caps_frames_by_duration(bench, tiny_config):
    """The default rule keeps its meaning: at 1 fps a ~30 s video never gets the 512-frame budget."""
    cfg = tiny_config(bench, "--frame_budgets", "512", "--min_fps", "1", "--max_fps", "1")
    _, processor = build_lma_model(cfg)
    data = VideoConversationDataset(VideoTable(cfg.train_data), cfg, processor, seed=0, fixed=True)
    duration = json.loads(bench.read_text().splitlines()[0])["duration"]
    assert data[0]["pixel_values_videos"].shape[0] <= duration + 4


def test_projector_carried_from_an_lma_adapter(bench, tmp_path, tiny_config, tiny_recipes):
    run = subprocess.run([sys.executable, str(ROOT / "training" / "lma.py"), "--config", tiny_recipes["lma"],
                          "--train_data", str(bench), "--output_dir", str(tmp_path / "teacher"), "--max_steps", "2",
                          "--num_eval_samples", "1", "--frame_sampling", "processor"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    saved = load_file(tmp_path / "teacher" / "adapter" / "adapter_model.safetensors")
    trained = {k.split("multi_modal_projector.", 1)[1]: v for k, v in saved.items() if "multi_modal_projector." in k}
    assert trained

    fresh, _ = build_lma_model(tiny_config(bench, "--seed", "7"))
    before = {k: v.clone() for k, v in fresh.model.multi_modal_projector.state_dict().items()}
    assert any(not torch.equal(before[k], trained[k]) for k in before)  # the test can fail
    carried, _ = build_lma_model(tiny_config(bench, "--seed", "7", "--init_projector_from",
                                             str(tmp_path / "teacher" / "adapter")))
    for name, value in carried.model.multi_modal_projector.state_dict().items():
        torch.testing.assert_close(value, trained[name], rtol=0, atol=0)

    with pytest.raises(FileNotFoundError, match="no .safetensors"):
        load_projector(fresh, str(tmp_path))


def test_dinov2_variants_are_the_micro_teacher_not_a_random_tower(tiny_config):
    assert _micro_name("dinov2-s") == "teacher-vlm-micro"
    assert _micro_name("dinov2-s-wap") == "teacher-vlm-micro-posthoc"
    assert _micro_name("micro:liteframe-micro") == "liteframe-micro"
    assert _micro_name("liteframe-micro") is None  # a variant name stays a random tower (tests, smoke runs)
    with pytest.raises(ValueError, match="unknown micro model"):
        _micro_name("micro:nope")
    with pytest.raises(ValueError, match="language_model must be asset:smollm2"):
        build_lma_model(tiny_config("x", "--vision_model", "micro:teacher-vlm-micro"))


def test_grounded_rows_sample_one_clip_inside_the_needle_window(bench, tiny_config):
    """`liteframe data needle`'s grounded rows (`window` + `frames`): one 4-frame clip whose decoded frames, as the
    clip header says, lie inside the answer needle's interval; a window outside the video is skipped and counted."""
    import math
    import re

    from liteframe_hf.data.needle import grounded_rows

    rows = [json.loads(line) for line in bench.read_text().splitlines()]
    grounded = grounded_rows(rows)
    assert grounded and all(r["category"] == "identity" and r["frames"] == 4 for r in grounded)
    bad = dict(grounded[0], id="outside", window=[grounded[0]["duration"] + 1.0, grounded[0]["duration"] + 2.0])
    manifest = bench.parent / "manifest_grounded_test.jsonl"  # beside the videos: paths stay relative
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*grounded, bad]))
    cfg = tiny_config(manifest, "--frame_budgets", "16", "--frame_sampling", "processor",
                      "--language_model", "asset:smollm2")  # a tokenizer that spells the clip header
    _, processor = build_lma_model(cfg)
    data = VideoConversationDataset(VideoTable(cfg.train_data), cfg, processor, seed=0, fixed=True)
    for i, row in enumerate(grounded):
        sample = data[i]
        assert sample["skipped"] == 0 and sample["pixel_values_videos"].shape[0] == 4  # `frames`, not the budget
        spans = re.findall(r"(\d+)-(\d+)s", processor.tokenizer.decode(sample["input_ids"]))
        assert len(spans) == 1, spans  # one clip
        start, end = row["window"]
        assert math.floor(start) <= int(spans[0][0]) and int(spans[0][1]) <= math.ceil(end), (spans, row["window"])
    with pytest.warns(UserWarning, match="window"):
        assert data[len(grounded)]["skipped"] == 1  # falls through to the next row
