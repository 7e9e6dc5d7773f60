"""scripts/reproduce_micro.sh end to end with tiny settings, each chain on its own: a 3-video needle split stands in
for every split, each training stage takes one step with the real parts (DINOv2-S, SmolLM2, liteframe-micro), every
model is evaluated on 2 questions at 4 frames, and the tables and plot are written. A second run skips every stage.
Slow: the real micro models are assembled and loaded several times (minutes on a 2-core CPU)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from liteframe_hf.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("teacher-vlm-micro", "teacher-vlm-micro-posthoc", "liteframe-micro-ctd", "liteframe-micro")
ONE_STEP = "--max_steps 1 --per_device_batch_size 1 --gradient_accumulation_steps 1 --num_workers 0 --no-eval_on_start"


@pytest.fixture(scope="module")
def bench(needle_haystacks, tmp_path_factory):
    """One 3-video split, linked as train, val, test and test-unseen (plumbing, not a benchmark)."""
    out = tmp_path_factory.mktemp("needle")
    assert cli_main(["data", "needle", "--split", "train", "--out", str(out), "--videos", "3", "--seed", "1",
                     "--haystacks", str(needle_haystacks), "--workers", "1"]) == 0  # + manifest_grounded.jsonl
    for split in ("val", "test", "test-unseen"):
        os.symlink(out / "train", out / split)
    return out


@pytest.mark.slow
def test_reproduce_micro_chain_runs_and_resumes(bench, tmp_path):
    plan = "".join(f"{model} test 2 4\n" for model in MODELS)
    env = dict(os.environ, RUN=str(tmp_path / "run"), BENCH=str(bench), DOCS=str(tmp_path / "docs"), SPLITS="test",
               CHAINS="first", EVAL_PLAN=plan, EVAL_THREADS="1",
               TEACHER_ARGS=f"{ONE_STEP} --frame_budgets 4 --num_eval_samples 1",
               LMA_ARGS=f"{ONE_STEP} --frame_budgets 4 --num_eval_samples 1",
               CTD_ARGS=f"{ONE_STEP} --clips_per_video 1 --num_eval_clips 2 --num_calibration_clips 2 --warmup_steps 0",
               EVAL_ARGS="--warmup 0 --max-new-tokens 2", HF_HUB_OFFLINE="1")
    script = str(ROOT / "scripts" / "reproduce_micro.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    run, docs = tmp_path / "run", tmp_path / "docs"
    stages = [line.split()[0] for line in (run / "logs" / "stage_seconds.txt").read_text().splitlines()]
    # data was already there: skipped; LiteFrame's LMA trains on the liteframe-micro-ctd model built before it
    assert stages[:5] == ["teacher_vlm", "ctd", "models_ctd", "liteframe_lma", "models"]
    assert len(stages) == 5 + 4 + 1  # + one eval per model, one plot
    table = (docs / "results_test.md").read_text()
    for model in MODELS:
        result = json.loads((docs / f"eval_{model}_test_n2_f4.json").read_text())
        assert result["label"] == model and [p["frames"] for p in result["points"]] == [4]
        assert result["points"][0]["n"] == 2
        assert model in table
    assert (docs / "accuracy_latency_test.png").stat().st_size > 1000
    # The weights set holds every trained part; each model merges its adapters in order (LiteFrame's LMA adapter was
    # trained on liteframe-micro-ctd, i.e. on top of the teacher VLM's), and LiteFrame's LMA ran on that folder.
    weights = run / "weights"
    assert sorted(p.relative_to(weights).as_posix() for p in weights.rglob("*") if p.is_file()) == [
        "liteframe-micro/adapter_config.json", "liteframe-micro/adapter_model.safetensors",
        "liteframe-micro/encoder.safetensors", "teacher-vlm-micro/adapter_config.json",
        "teacher-vlm-micro/adapter_model.safetensors"]
    for stored in ("liteframe-micro/adapter_model.safetensors", "liteframe-micro/encoder.safetensors",
                   "teacher-vlm-micro/adapter_model.safetensors"):  # every weights file is stored packed
        assert torch.int8 in {t.dtype for t in load_file(str(weights / stored)).values()}, stored
    record = lambda name: json.loads((run / "models" / name / "liteframe_micro.json").read_text())["trained"]
    assert record("liteframe-micro-ctd") == {"encoder": "liteframe-micro/encoder.safetensors",
                                             "adapters merged": ["teacher-vlm-micro"]}
    assert record("liteframe-micro")["adapters merged"] == ["teacher-vlm-micro", "liteframe-micro"]
    assert record("teacher-vlm-micro-posthoc") == {"encoder": None, "adapters merged": ["teacher-vlm-micro"]}
    assert "models/liteframe-micro-ctd" in (run / "liteframe_lma" / "config.yaml").read_text()

    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running" not in again.stdout and again.stdout.count("skipped") == 11  # every stage, nothing rerun


RECOGNITION_MODELS = ("teacher-vlm-micro-qa", "liteframe-micro-s-qa")


@pytest.mark.slow
def test_reproduce_micro_recognition_chain_runs_from_the_shipped_teacher(bench, tmp_path):
    """CHAINS=recognition: grounded clips of 4 objects, each alignment / caption / multiple-choice stage one step,
    the models built from the run's weights set (the first teacher VLM from the shipped set), two evals."""
    one = f"{ONE_STEP} --frame_budgets 4 --num_eval_samples 1"
    env = dict(os.environ, RUN=str(tmp_path / "run"), BENCH=str(bench), DOCS=str(tmp_path / "docs"), SPLITS="test",
               CHAINS="recognition", GROUNDED_VIEWS="2 1", GROUNDED_ARGS="--objects 4 --seconds 1",
               ALIGN_ARGS="--max_steps 1 --per_device_batch_size 4 --eval_steps 1 --save_steps 1 --warmup_steps 0",
               CAPTION_ARGS=one, MCQ_ARGS=one, EVAL_THREADS="1",
               EVAL_PLAN="teacher-vlm-micro-qa test 2 4\nliteframe-micro-s-qa test 2 4 8\n",
               EVAL_ARGS="--warmup 0 --scoring likelihood", HF_HUB_OFFLINE="1")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "eval_other-run_test_n2_f4.json").write_text("{}")  # not this plan's: kept out of the plot
    script = str(ROOT / "scripts" / "reproduce_micro.sh")
    done = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    run = tmp_path / "run"
    stages = [line.split()[0] for line in (run / "logs" / "stage_seconds.txt").read_text().splitlines()]
    assert stages == ["grounded_val", "grounded_train", "grounded_partial_val", "grounded_partial_train",
                      "models_teacher", "teacher_align_blocks", "teacher_caption_blocks", "models_recognition",
                      "liteframe_s_align", "liteframe_s_lma", "teacher_mcq", "liteframe_s_mcq", "models_qa",
                      "eval_teacher-vlm-micro-qa_test_n2_f4", "eval_liteframe-micro-s-qa_test_n2_f4-8", "plot_test"]
    partial = [json.loads(line) for line in (run / "grounded_partial" / "train" / "manifest.jsonl").open()]
    assert any("onscreen" in row for row in partial)  # LiteFrame-micro-S aligns on partly shown cut-outs
    assert "grounded_partial" in (run / "liteframe_s_align" / "config.yaml").read_text()
    assert "teacher_align_blocks/aligned" in (run / "liteframe_s_align" / "config.yaml").read_text()  # distilled
    record = lambda name: json.loads((run / "models" / name / "liteframe_micro.json").read_text())["trained"]
    assert record("liteframe-micro-s-qa") == {
        "encoder": "liteframe-micro-s/encoder.safetensors",
        "adapters merged": ["teacher-vlm-micro", "teacher-vlm-micro-caption", "liteframe-micro-s",
                            "liteframe-micro-s-qa"]}
    assert record("teacher-vlm-micro-qa")["adapters merged"][-1] == "teacher-vlm-micro-qa"
    for name, frames in (("teacher-vlm-micro-qa_test_n2_f4", [4]), ("liteframe-micro-s-qa_test_n2_f4-8", [4, 8])):
        result = json.loads((tmp_path / "docs" / f"eval_{name}.json").read_text())
        assert [p["frames"] for p in result["points"]] == frames and result["points"][0]["n"] == 2
    assert all(model in (tmp_path / "docs" / "results_test.md").read_text() for model in RECOGNITION_MODELS)
