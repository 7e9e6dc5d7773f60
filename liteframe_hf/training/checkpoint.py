"""Checkpoints: `accelerator.save_state` folders ``<output_dir>/checkpoint-<step>`` plus our ``trainer_state.json``.

What a checkpoint holds: model, optimizer, LR scheduler and gradient-accumulation counter (written once, by
the main process), each process's RNG states (``random_states_<rank>.pkl``), and ``trainer_state.json``: the
optimizer step, micro-batches consumed (the data position) and running counters. That file is written last and
atomically, so its presence marks a complete checkpoint: a job killed while saving leaves a folder that
``latest`` ignores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from accelerate import Accelerator, DistributedType
from accelerate.logging import get_logger

__all__ = ["STATE_FILE", "list_checkpoints", "resolve_checkpoint", "prepare_output_dir", "save_checkpoint",
           "load_checkpoint", "checkpoint_trainable_only"]

logger = get_logger(__name__)

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(output_dir: str | Path, complete_only: bool = True) -> list[tuple[int, Path]]:
    """(step, folder) of the checkpoints in `output_dir`, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (not complete_only or (child / STATE_FILE).is_file()):
            found.append((int(match.group(1)), child))
    return sorted(found)


def resolve_checkpoint(output_dir: str | Path, value: str | None) -> Path | None:
    """`--resume_from_checkpoint` -> a checkpoint folder, or None to start from scratch.

    'latest' with no complete checkpoint is refused: an empty or mistyped output_dir would otherwise start a new run
    that its config.yaml records as resumed. A job that may or may not be a restart passes the flag only when
    `list_checkpoints(output_dir)` is non-empty (scripts/reproduce_micro.sh does).
    """
    if not value:
        return None
    if value == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            incomplete = list_checkpoints(output_dir, complete_only=False)
            detail = (f" (only incomplete ones, without {STATE_FILE}: {', '.join(p.name for _, p in incomplete)})"
                      if incomplete else "")
            raise FileNotFoundError(f"no checkpoint-* under {output_dir}{detail}; drop --resume_from_checkpoint to "
                                    f"start a new run")
        return found[-1][1]
    path = Path(value)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(
            f"{path} is not a complete LiteFrame checkpoint (no {STATE_FILE}); pass a checkpoint-N folder written by "
            f"this script, or 'latest'"
        )
    return path


def prepare_output_dir(accelerator: Accelerator, output_dir: str | Path, resuming: bool, overwrite: bool) -> None:
    """Refuse to start from scratch on top of old checkpoints (they would confuse 'latest') unless told to."""
    old = list_checkpoints(output_dir, complete_only=False)
    if old and not resuming:
        if not overwrite:
            raise FileExistsError(
                f"{output_dir} already holds checkpoints ({old[-1][1].name}, ...). Continue that run with "
                f"--resume_from_checkpoint latest, or start over with --overwrite_output_dir"
            )
        if accelerator.is_main_process:
            for _, path in old:
                shutil.rmtree(path)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        Path(output_dir).mkdir(parents=True, exist_ok=True)


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, state: dict, total_limit: int | None) -> Path:
    """Save the accelerator state and `state` (must hold 'step') as checkpoint-<step>. Call on every process."""
    path = Path(output_dir) / f"checkpoint-{state['step']}"
    if accelerator.is_main_process and path.exists():
        shutil.rmtree(path)  # an incomplete folder left by a killed run at this same step
    accelerator.wait_for_everyone()
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        tmp = path / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path / STATE_FILE)
        if total_limit:
            for _, old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        logger.info(f"wrote checkpoint {path}")
    accelerator.wait_for_everyone()
    return path


def _bare(name: str) -> str:
    """A parameter name without the wrappers' prefixes (DDP's `module.`, torch.compile's `_orig_mod.`)."""
    while name.startswith(("module.", "_orig_mod.")):
        name = name.split(".", 1)[1]
    return name


def checkpoint_trainable_only(accelerator: Accelerator, model) -> set[str] | None:
    """Make checkpoints of a prepared `model` hold only its trainable parameters (LoRA, projector): the frozen
    LLM is reloaded from the run's saved base on resume instead of being copied into every checkpoint. Returns
    their names (as the unwrapped model calls them: the same with or without DDP), to pass to
    `load_checkpoint`; None under FSDP / DeepSpeed, whose own checkpoint formats are kept whole."""
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        return None
    bare_model = accelerator.unwrap_model(model)
    names = {_bare(name) for name, param in bare_model.named_parameters() if param.requires_grad}

    def keep_trainable(models, weights, output_dir):
        for i, m in enumerate(models):
            if accelerator.unwrap_model(m) is bare_model:  # Accelerate may list the model with or without DDP around it
                kept = {k: v for k, v in weights[i].items() if _bare(k) in names}
                missing = names - {_bare(k) for k in kept}
                if missing:  # never write a checkpoint that cannot be resumed
                    raise KeyError(f"trainable weights {sorted(missing)[:5]} are not in the state dict being saved")
                weights[i] = kept

    accelerator.register_save_state_pre_hook(keep_trainable)
    return names


def load_checkpoint(accelerator: Accelerator, path: str | Path, trainable_only: set[str] | None = None) -> dict:
    """Restore the accelerator state from `path`; returns its trainer_state.json.

    `trainable_only`: the names from `checkpoint_trainable_only`; the checkpoint must hold all of them and the
    other weights keep their freshly loaded values.
    """
    path = Path(path)
    if trainable_only is None:
        accelerator.load_state(str(path))
    else:
        from safetensors import safe_open

        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            missing = trainable_only - {_bare(k) for k in f.keys()}
        if missing:
            raise KeyError(f"{path} lacks trainable weights {sorted(missing)[:5]}...: was it written with another "
                           f"LoRA / modules_to_save configuration?")
        accelerator.load_state(str(path), strict=False)
    return json.loads((path / STATE_FILE).read_text())
