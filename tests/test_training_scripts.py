"""training/ctd.py and training/lma.py end to end, as a user runs them: tiny recipes on generated MP4s.

* SIGKILL mid-run, then `--resume_from_checkpoint latest`: the metrics.csv of the resumed run equals the one of an
  uninterrupted run step by step (losses, eval, counters), every step logged exactly once.
* A real 2-process CPU run (`accelerate launch`, gloo DDP): replicas bit-identical after training, checkpoints and
  metrics written once (slow).
* The LMA adapter and merged model reload with transformers and give the trained model's logits.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from liteframe_hf.training.synthetic import write_synthetic_video_qa, write_synthetic_videos

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 8
SCRIPTS = {"ctd": ("ctd.py", "ctd_tiny.yaml"), "lma": ("lma.py", "lma_tiny.yaml")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic_videos(root / "videos", 6, size=64, num_frames=24, fps=8)
    return {"ctd": str(root / "videos"), "lma": str(write_synthetic_video_qa(root / "qa", 10, size=64, num_frames=24))}


def command(kind: str, data: dict, output_dir: Path, *extra: str, processes: int = 1) -> list[str]:
    script, recipe = SCRIPTS[kind]
    args = [str(ROOT / "training" / script), "--config", str(ROOT / "training" / "configs" / recipe),
            "--train_data", data[kind], "--output_dir", str(output_dir), "--max_steps", str(MAX_STEPS),
            "--num_workers", "1", *extra]
    if processes == 1:
        return [sys.executable, *args]
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--config_file",
            str(ROOT / "training" / "accelerate" / "cpu_ddp.yaml"), "--num_processes", str(processes), *args]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def rows(output_dir: Path) -> list[dict]:
    with (output_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data):
    runs = {}
    for kind in SCRIPTS:
        out = tmp_path_factory.mktemp(f"{kind}_full")
        run(command(kind, data, out, *(["--save_merged"] if kind == "lma" else [])))
        runs[kind] = out
    return runs


@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_sigkill_then_resume_continues_the_same_curve(kind, tmp_path, data, uninterrupted):
    out = tmp_path / "run"
    proc = subprocess.Popen(command(kind, data, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.csv").is_file() and len(rows(out)) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged_before_kill = len(rows(out))
    assert 5 <= logged_before_kill < MAX_STEPS, "the run was not killed mid-way"
    assert not (out / "student").exists() and not (out / "adapter").exists()

    resumed = run(command(kind, data, out, "--resume_from_checkpoint", "latest"))
    assert "resumed from" in resumed.stdout
    expected, got = rows(uninterrupted[kind]), rows(out)
    assert [r["step"] for r in got] == [str(s) for s in range(1, MAX_STEPS + 1)]  # nothing lost, nothing twice
    for want, have in zip(expected, got):
        for column in ("loss", "lr", "grad_norm", "eval/mse", "eval/cosine", "eval/loss"):
            if want.get(column):
                assert float(have[column]) == pytest.approx(float(want[column]), rel=1e-5, abs=1e-7), (want["step"], column)
        for column in ("epoch", "clips", "videos", "frames", "answer_tokens", "skipped_videos"):
            assert have.get(column) == want.get(column), (want["step"], column)
    assert float(got[-1]["loss"]) < float(got[0]["loss"])


def test_lma_adapter_and_merged_model_reload(uninterrupted):
    from transformers import AutoModelForImageTextToText

    import liteframe_hf  # noqa: F401  (registers LiteFrame with the Auto classes)

    out = uninterrupted["lma"]
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8 and adapter_config["lora_dropout"] == 0.05
    assert adapter_config["base_model_name_or_path"] == str((out / "base").resolve())
    with_adapter = AutoModelForImageTextToText.from_pretrained(out / "adapter").eval()
    merged = AutoModelForImageTextToText.from_pretrained(out / "merged").eval()
    base = AutoModelForImageTextToText.from_pretrained(out / "base").eval()
    config = merged.config
    ids = torch.tensor([[3, 5, 7] + [config.video_token_id] * config.tokens_per_clip() * 2 + [9, 11]])
    pixels = torch.randn(1, 8, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = [m(input_ids=ids, pixel_values_videos=pixels).logits for m in (with_adapter, merged, base)]
    torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(logits[1], logits[2], atol=1e-3)  # training changed the model


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_two_process_cpu_run_keeps_replicas_identical_and_writes_once(kind, tmp_path, data):
    out = tmp_path / "ddp"
    run(command(kind, data, out, "--max_steps", "4", "--save_steps", "2", processes=2))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["replicas_in_sync"] is True  # per-parameter digests gathered from both ranks are equal
    assert [r["step"] for r in rows(out)] == ["1", "2", "3", "4"]  # one CSV row per step: only rank 0 logs
    # Counters are global: 2 processes x 4 clips (CTD), 2 processes x 2 videos x 2 accumulated (LMA).
    assert int(rows(out)[0]["clips" if kind == "ctd" else "videos"]) == 8
    for step in (2, 4):
        files = sorted(os.listdir(out / f"checkpoint-{step}"))
        assert files == ["custom_checkpoint_0.pkl", "model.safetensors", "optimizer.bin", "random_states_0.pkl",
                         "random_states_1.pkl", "trainer_state.json"], files
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["step"] == 4
