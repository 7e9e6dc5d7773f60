"""What a training run reports and leaves behind (issue 16): train_summary.json gives the throughput it measured,
a finished run resumed leaves every file as it was, and --help answers before torch is imported."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HELP_PROBE = '''
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("HEAVY", sorted(m for m in ("torch", "transformers", "peft", "accelerate", "liteframe_hf") if m in sys.modules))
'''


@pytest.mark.parametrize("script", ["lma", "ctd"])
def test_help_answers_before_torch_is_imported(script):
    # --help used to import torch, peft and transformers first (about 29 s on a busy 2-core machine).
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE, str(ROOT / "training" / f"{script}.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout
    assert f"--config FILE         YAML recipe (e.g. training/configs/{script}_micro.yaml)" in proc.stdout


def _lma(*argv: str) -> tuple[dict, str]:
    spec = importlib.util.spec_from_file_location("_outputs_lma", ROOT / "training" / "lma.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        summary = module.main(list(argv))
    return summary, log.getvalue()


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_lma_summary_measures_throughput_and_a_finished_run_is_left_alone(tmp_path, tiny_recipes):
    from liteframe_hf.training.synthetic import write_synthetic_video_qa

    qa = str(write_synthetic_video_qa(tmp_path / "qa", 6, size=64, num_frames=24))
    out = tmp_path / "run"
    # 5 training rows in batches of 2, 2 micro-batches per step: the epoch's last batch holds 1 video, so the two
    # steps read 4 + 3 videos, not the nominal 2 x 4.
    args = ["--config", tiny_recipes["lma"], "--train_data", qa, "--output_dir", str(out), "--num_eval_samples", "1",
            "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--frame_budgets", "4"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary, _ = _lma(*args, "--save_merged")
    # No deprecation notice on a plain run (peft's is_gradient_checkpointing probe printed one per run).
    assert [str(w.message) for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))] == []
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["step"] == "2" and rows[-1]["videos"] == "7"
    assert summary["videos_per_step"] == 3.5 and summary["nominal_videos_per_step"] == 4
    assert summary == json.loads((out / "train_summary.json").read_text())
    assert summary["eval/loss"] > 0

    # Resumed at its last step: says so, returns the run's own summary and rewrites nothing (it used to rewrite
    # train_summary.json with zeros and no eval/loss, and adapter/ and merged/ again).
    before = _files(out)
    again, log = _lma(*args, "--save_merged", "--resume_from_checkpoint", "latest")
    assert f"{out} already finished at step 2" in log and "--max_steps N > 2" in log
    assert again == summary
    assert _files(out) == before

    with pytest.raises(ValueError, match=r"checkpoint-2 is at step 2, past --max_steps 1"):
        _lma(*[a if a != "2" else "1" for a in args], "--resume_from_checkpoint", "latest")

    # Killed after its last checkpoint but before the summary: the resumed run writes the summary, keeping the
    # final evaluation, and reports no rate for the steps it did not run.
    (out / "train_summary.json").unlink()
    finished, _ = _lma(*args, "--resume_from_checkpoint", "latest")
    assert finished["step"] == 2 and finished["steps_this_run"] == 0
    assert finished["eval/loss"] == pytest.approx(summary["eval/loss"], rel=1e-5)
    assert finished["videos_per_step"] is None and finished["videos_per_s"] is None


def test_ctd_cache_follows_output_dir_and_another_plan_is_refused(tmp_path, tiny_recipes):
    from liteframe_hf.training.synthetic import write_synthetic_videos

    videos = write_synthetic_videos(tmp_path / "videos", 3, size=64, num_frames=24, fps=8)[0].parent
    spec = importlib.util.spec_from_file_location("_outputs_ctd", ROOT / "training" / "ctd.py")
    ctd = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ctd)
    out = tmp_path / "run"
    args = ["--config", tiny_recipes["ctd"], "--train_data", str(videos), "--output_dir",
            str(out), "--clip_plan", "fixed", "--target_cache", "auto", "--clips_per_video", "2", "--max_steps", "2",
            "--eval_steps", "0", "--num_eval_clips", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        summary = ctd.main(args)
    assert json.loads((out / "target_cache" / "index.json").read_text())["num_clips"] == 6
    # 6 clips in batches of 4: an epoch is one batch of 4 and one of 2, as the summary measures.
    assert summary["clips_per_step"] == 3 and summary["nominal_clips_per_step"] == 4 and summary["eval/mse"] > 0
    cache = _files(out / "target_cache")
    # Starting over with another clip plan on the same folder: refused before the cache is touched.
    with pytest.raises(ValueError, match=r"videos x --clips_per_video\): 6 cached, 9 now"):
        with contextlib.redirect_stdout(io.StringIO()):
            ctd.main([*args, "--clips_per_video", "3", "--overwrite_output_dir"])
    assert _files(out / "target_cache") == cache
