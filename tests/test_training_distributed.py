"""training/ctd.py and training/lma.py on 2 CPU processes (gloo), launched as a user launches them:
`ACCELERATE_USE_CPU=1 accelerate launch --config_file training/accelerate/cpu_ddp.yaml ...`.

* Exact resume: a run SIGKILLed mid-epoch after a checkpoint taken at a step that is neither an epoch boundary nor
  a logging step, then resumed with `--resume_from_checkpoint latest`, ends with bit-identical weights, the same
  per-step losses and item counts, the same sample keys on each process (data order) and the same metrics.csv as
  an uninterrupted run.
* Multi-node: two `accelerate launch --num_machines 2 --machine_rank R` commands on one machine form one run.
"""

import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from safetensors.torch import load_file

from liteframe_hf.training.synthetic import write_synthetic_video_qa, write_synthetic_videos

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = ROOT / "training" / "accelerate"
# How each case is launched: DDP as a user launches it on a CPU machine; FSDP2 (fsdp.yaml) through the test-only
# shim tests/fsdp_on_cpu.py, since Accelerate enables FSDP on accelerators only.
LAUNCHES = {
    "ddp": (["--config_file", str(ACCELERATE / "cpu_ddp.yaml")], [], {"ACCELERATE_USE_CPU": "1"}),
    "fsdp": (["--config_file", str(ACCELERATE / "fsdp.yaml"), "--num_processes", "2", "--mixed_precision", "no"],
             [str(ROOT / "tests" / "fsdp_on_cpu.py")], {}),
}

# Small schedules whose checkpoint falls mid-epoch and between two logging steps:
# CTD: 6 videos / (2 processes x batch 1) = 3 steps per epoch; checkpoint at 4, logs at 3, 6 and 8.
# LMA: 8 training records / (2 x batch 1 x accumulation 2) = 2 steps per epoch; checkpoint at 3, logs at 2, 4, 6, 7.
CASES = {
    "ctd": dict(script="ctd.py", steps_per_epoch=3, save=4, log=3, max_steps=8,
                args=["--per_device_batch_size", "1", "--eval_steps", "0"], weights="student/model.safetensors",
                launch="ddp"),
    "lma": dict(script="lma.py", steps_per_epoch=2, save=3, log=2, max_steps=7,
                args=["--per_device_batch_size", "1", "--gradient_accumulation_steps", "2", "--eval_steps", "0"],
                weights="adapter/adapter_model.safetensors", launch="ddp"),
}
CASES["ctd-fsdp"] = {**CASES["ctd"], "launch": "fsdp"}
CASES["lma-fsdp"] = {**CASES["lma"], "launch": "fsdp"}
TIMING = ("_per_s", "time/")


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_recipes):
    """Each stage's training data, and the tiny recipes (conftest) under "recipes"."""
    root = tmp_path_factory.mktemp("data")
    write_synthetic_videos(root / "videos", 6, size=64, num_frames=24, fps=8)
    return {"ctd": str(root / "videos"), "lma": str(write_synthetic_video_qa(root / "qa", 10, size=64, num_frames=24)),
            "recipes": tiny_recipes}


def launch(*flags: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *flags]


def cpu_env(kind: str = "ctd") -> dict:
    # ACCELERATE_USE_CPU: Accelerate's own switch for gloo processes without a GPU.
    return {**os.environ, **LAUNCHES[CASES[kind]["launch"]][2]}


def command(kind: str, data: dict, output_dir: Path, *extra: str) -> list[str]:
    case = CASES[kind]
    flags, shim, _ = LAUNCHES[case["launch"]]
    return launch(*flags, *shim, str(ROOT / "training" / case["script"]),
                  "--config", data["recipes"][kind.split("-")[0]], "--train_data", data[kind.split("-")[0]],
                  "--output_dir", str(output_dir), "--max_steps", str(case["max_steps"]),
                  "--save_steps", str(case["save"]), "--logging_steps", str(case["log"]), "--save_total_limit", "none",
                  "--num_workers", "1", "--trace_steps", *case["args"], *extra)


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def trace(output_dir: Path, rank: int) -> list[dict]:
    path = output_dir / "trace" / f"rank-{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def metrics(output_dir: Path) -> list[dict]:
    with (output_dir / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CASES))
def test_two_process_sigkill_mid_epoch_then_resume_is_exact(kind, tmp_path, data):
    case = CASES[kind]
    save, log, per_epoch = case["save"], case["log"], case["steps_per_epoch"]
    assert save % per_epoch != 0 and save % log != 0  # the checkpoint is mid-epoch and between logging steps

    full = tmp_path / "full"
    run(command(kind, data, full), cpu_env(kind))

    # SIGKILL the whole launch (launcher, torchrun agent, both ranks) once rank 0 has finished the step after the
    # checkpoint: the ranks run in their own process groups, so each is killed by its id.
    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(kind, data, killed), cwd=ROOT, env=cpu_env(kind), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None and len(trace(killed, 0)) < save + 1:
        time.sleep(0.02)
    launcher = psutil.Process(proc.pid)
    family = [*launcher.children(recursive=True), launcher]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(family, timeout=30)
    reached = len(trace(killed, 0))
    assert save < reached < case["max_steps"], f"killed after step {reached}: not mid-run"
    assert not (killed / case["weights"]).exists()

    resumed = run(command(kind, data, killed, "--resume_from_checkpoint", "latest"), cpu_env(kind))
    assert f"checkpoint-{save} at step {save}" in resumed.stdout

    for rank in (0, 1):  # data order, per-step loss share and item count of each process, every step once
        want, got = trace(full, rank), trace(killed, rank)
        assert [r["step"] for r in got] == list(range(1, case["max_steps"] + 1))
        assert got == want, rank
    epochs = [r["epoch"] for r in trace(full, 0)]
    assert epochs[save - 1] == epochs[save] and len(set(epochs)) >= 3  # crossed epochs; resumed inside one
    assert trace(full, 0)[save]["keys"] != trace(full, 1)[save]["keys"]  # the processes read different samples
    assert metrics(killed) == metrics(full)  # loss, lr, grad norm, counters, eval: bit-identical strings
    assert (killed / case["weights"]).read_bytes() == (full / case["weights"]).read_bytes()
    summary = json.loads((killed / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["device"].startswith("cpu")
    if case["launch"] == "fsdp":  # sharded: each process holds half of the weights, in FSDP's own checkpoint format
        assert summary["distributed_type"] == "DistributedType.FSDP" and summary["replicas_in_sync"] is None
        assert (killed / f"checkpoint-{save}" / "pytorch_model_fsdp_0").is_dir()
    else:
        assert summary["distributed_type"] == "DistributedType.MULTI_CPU" and summary["replicas_in_sync"] is True
        last = killed / f"checkpoint-{case['max_steps']}" / "model.safetensors"
        assert last.read_bytes() == (full / last.relative_to(killed)).read_bytes()
        if kind == "lma":  # trained weights only (LoRA, projector), without DDP's `module.` prefix
            names = load_file(last).keys()
            assert names and all(("lora_" in k or "multi_modal_projector" in k) and "module." not in k for k in names)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_machines_launch_as_one_run(tmp_path, data):
    """The multi-node command, with two 'machines' on this one: each runs one process of a 2-process run."""
    out, port = tmp_path / "run", free_port()
    script = [str(ROOT / "training" / "ctd.py"), "--config", data["recipes"]["ctd"],
              "--train_data", data["ctd"], "--output_dir", str(out), "--max_steps", "2", "--num_workers", "0"]
    procs = [subprocess.Popen(launch("--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank),
                                     "--num_processes", "2", "--main_process_ip", "127.0.0.1",
                                     "--main_process_port", str(port), *script),
                              cwd=ROOT, env=cpu_env("ctd"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["replicas_in_sync"] is True
    assert int(metrics(out)[0]["clips"]) == 2 * 4  # both machines' batches count
