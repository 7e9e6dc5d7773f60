"""training/ctd.py and training/lma.py end to end, as a user runs them: tiny recipes on generated MP4s.

* The LMA loss is the mean over every answer token of the optimizer step: accumulating 2 micro-batches of 1 record
  gives the loss and the update of one batch of 2, though the records' answers differ in length.
* Precision comes from Accelerate (`accelerate launch --mixed_precision bf16`): frozen weights held in bf16,
  trained ones in fp32.
* The LMA adapter and merged model reload with transformers and give the trained model's logits.
(Multi-process runs, exact resume and multi-node launches: test_training_distributed.py.)
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from liteframe_hf.training.synthetic import write_synthetic_video_qa

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lma_script(tiny_recipes) -> list[str]:
    return [str(ROOT / "training" / "lma.py"), "--config", tiny_recipes["lma"], "--num_workers", "0"]


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    return str(write_synthetic_video_qa(tmp_path_factory.mktemp("qa"), 10, size=64, num_frames=24))


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def lma(script: list[str], qa: str, out: Path, *extra: str, launch: tuple[str, ...] = ()) -> Path:
    prefix = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *launch] if launch else [sys.executable]
    run([*prefix, *script, "--train_data", qa, "--output_dir", str(out), *extra])
    return out


@pytest.fixture(scope="module")
def lma_run(tmp_path_factory, qa, lma_script):
    return lma(lma_script, qa, tmp_path_factory.mktemp("lma_full"), "--max_steps", "8", "--save_merged")


def test_lma_loss_is_the_mean_over_the_answer_tokens_of_the_whole_step(tmp_path, lma_script):
    """Two records whose answers have 3 and 14 tokens: batch 2 and 2 x batch 1 accumulated give one loss and
    one update. A mean per micro-batch (the old loss) would weigh the short answer's tokens 14/3 times more."""
    records = write_synthetic_video_qa(tmp_path / "qa", 3, size=64, num_frames=24)
    rows = [json.loads(line) for line in records.read_text().splitlines()]
    rows[0]["conversations"] = rows[0]["conversations"][:2]
    rows[0]["conversations"][1]["value"] = "red."
    rows[1]["conversations"] = rows[1]["conversations"][:2]
    rows[1]["conversations"][1]["value"] = "the square is red and it moves to the left of the frame."
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ("--max_steps", "1", "--lora_dropout", "0", "--num_eval_samples", "1", "--trace_steps",
              "--frame_budgets", "4")
    batch = lma(lma_script, str(records), tmp_path / "batch", *common, "--per_device_batch_size", "2",
                "--gradient_accumulation_steps", "1")
    accumulated = lma(lma_script, str(records), tmp_path / "accumulated", *common, "--per_device_batch_size", "1",
                      "--gradient_accumulation_steps", "2")

    (step,) = [json.loads(line) for line in (accumulated / "trace" / "rank-0.jsonl").read_text().splitlines()]
    (together,) = [json.loads(line) for line in (batch / "trace" / "rank-0.jsonl").read_text().splitlines()]
    assert sorted(sum(step["keys"], [])) == sorted(together["keys"][0]) == [0, 1]
    short, long = sorted(step["items"])
    assert long >= 3 * short  # the answers really differ in length (tokens incl. end of turn)
    loss = sum(float(x) for x in step["loss"])
    assert loss == pytest.approx(float(together["loss"][0]), rel=1e-5)
    per_micro_batch_mean = sum(float(x) * sum(step["items"]) / n for x, n in zip(step["loss"], step["items"])) / 2
    assert abs(per_micro_batch_mean - loss) > 1e-3 * loss  # the weighting matters for these records

    weights = [load_file(run_dir / "adapter" / "adapter_model.safetensors") for run_dir in (batch, accumulated)]
    base = load_file(batch / "checkpoint-1" / "model.safetensors")
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-4, atol=1e-6)
    assert base  # the checkpoint holds the trained weights only
    assert all("lora_" in k or "multi_modal_projector" in k for k in base)


def test_precision_comes_from_accelerate_and_frozen_weights_are_held_in_it(tmp_path, qa, lma_script):
    out = lma(lma_script, qa, tmp_path / "bf16", "--max_steps", "1", "--eval_steps", "0", "--num_eval_samples", "2",
              launch=("--cpu", "--mixed_precision", "bf16", "--num_processes", "1"))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["mixed_precision"] == "bf16" and summary["frozen_dtype"] == "torch.bfloat16"
    base = load_file(out / "base" / "model.safetensors")  # the frozen base, as trained on
    assert {t.dtype for t in base.values()} == {torch.bfloat16}
    trained = load_file(out / "checkpoint-1" / "model.safetensors")
    assert trained and {t.dtype for t in trained.values()} == {torch.float32}

    proc = subprocess.run([sys.executable, *lma_script, "--train_data", qa, "--output_dir", str(tmp_path / "x"),
                           "--mixed_precision", "bf16"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "accelerate launch --mixed_precision bf16" in proc.stderr


def test_lma_adapter_and_merged_model_reload(lma_run):
    from transformers import AutoModelForImageTextToText

    import liteframe_hf  # noqa: F401  (registers LiteFrame with the Auto classes)

    out = lma_run
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
