"""The training-to-publishing path as a new user walks it (issue 16): the traps a first run falls into must end in
errors or log lines that say what to do, and every model folder a script writes must load with plain transformers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """training/<name>.py as a module, so its main(argv) runs in this process (no 30 s interpreter start-up)."""
    spec = importlib.util.spec_from_file_location(f"_journey_{name}", ROOT / "training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lma_before_ctd_says_to_run_ctd_first(tmp_path, monkeypatch):
    # The micro recipe's vision_model is the CTD output folder (relative to the working directory): before CTD ran,
    # the error names the folder and both ways out instead of huggingface_hub's repo-id validation message.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        _script("lma").main(["--config", str(ROOT / "training/configs/lma_micro.yaml"), "--output_dir", "out"])
    message = str(err.value)
    assert "'outputs/ctd_micro/student' does not exist" in message
    assert "training/ctd.py" in message and "--vision_model liteframe-micro" in message
