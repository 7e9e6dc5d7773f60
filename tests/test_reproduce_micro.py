"""scripts/reproduce_micro.sh end to end with tiny settings: a 3-video needle split stands in for every split,
each training stage takes one step with the real parts (DINOv2-S, SmolLM2, liteframe-micro), every model is
evaluated on 2 questions at 4 frames, and the tables and plot are written. A second run skips every stage.
Slow: the real micro models are assembled and loaded several times (minutes on a 2-core CPU)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from liteframe_hf.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("teacher-vlm-micro", "teacher-vlm-micro-posthoc", "liteframe-micro-ctd", "liteframe-micro")
ONE_STEP = "--max_steps 1 --per_device_batch_size 1 --gradient_accumulation_steps 1 --num_workers 0 --no-eval_on_start"


@pytest.fixture(scope="module")
def bench(needle_haystacks, tmp_path_factory):
    """One 3-video split, linked as train, val, test and test-unseen (plumbing, not a benchmark)."""
    out = tmp_path_factory.mktemp("needle")
    assert cli_main(["data", "needle", "--split", "val", "--out", str(out), "--videos", "3", "--seed", "1",
                     "--haystacks", str(needle_haystacks), "--workers", "1"]) == 0
    for split in ("train", "test", "test-unseen"):
        os.symlink(out / "val", out / split)
    return out


@pytest.mark.slow
def test_reproduce_micro_chain_runs_and_resumes(bench, tmp_path):
    env = dict(os.environ, RUN=str(tmp_path / "run"), BENCH=str(bench), DOCS=str(tmp_path / "docs"), SPLITS="test",
               TEACHER_FRAMES="4", LITEFRAME_FRAMES="4", CTD_FRAMES="4",
               TEACHER_ARGS=f"{ONE_STEP} --frame_budgets 4 --num_eval_samples 1",
               LMA_ARGS=f"{ONE_STEP} --frame_budgets 4 --num_eval_samples 1",
               CTD_ARGS=f"{ONE_STEP} --clips_per_video 1 --num_eval_clips 2 --num_calibration_clips 2 --warmup_steps 0",
               EVAL_ARGS="--limit 2 --warmup 0 --max-new-tokens 2", HF_HUB_OFFLINE="1")
    script = str(ROOT / "scripts" / "reproduce_micro.sh")
    first = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    run, docs = tmp_path / "run", tmp_path / "docs"
    stages = [line.split()[0] for line in (run / "logs" / "stage_seconds.txt").read_text().splitlines()]
    assert stages[:4] == ["teacher_vlm", "ctd", "liteframe_lma", "models"]  # data was already there: skipped
    assert len(stages) == 4 + 4 + 1  # + one eval per model, one plot
    table = (docs / "results_test.md").read_text()
    for model in MODELS:
        result = json.loads((docs / f"eval_{model}_test.json").read_text())
        assert result["label"] == model and [p["frames"] for p in result["points"]] == [4]
        assert result["points"][0]["n"] == 2
        assert model in table
    assert (docs / "accuracy_latency_test.png").stat().st_size > 1000
    # The LiteFrame LMA started from the teacher VLM's trained projector; the CTD-only model uses it unchanged.
    record = json.loads((run / "models" / "liteframe-micro-ctd" / "reproduce_micro.json").read_text())
    assert record["trained_kind"] == "PEFT adapter, merged"
    assert "init_projector_from" in (run / "liteframe_lma" / "config.yaml").read_text()

    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "running" not in again.stdout and again.stdout.count("skipped") == 10  # every stage, nothing rerun
