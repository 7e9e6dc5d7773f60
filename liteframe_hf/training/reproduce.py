"""The weights set and the models that issue 17's `scripts/reproduce_micro.sh` trains and evaluates.

    python -m liteframe_hf.training.reproduce RUN_DIR

collects the trained parts of RUN_DIR's stages into the weights set RUN_DIR/weights (the layout `liteframe_hf.micro`
reads and the package ships in liteframe_hf/weights/):

  teacher-vlm-micro/                      <- teacher_vlm/adapter (teacher VLM LMA: projector + LoRA)
  liteframe-micro/encoder.safetensors     <- ctd/student (the CTD encoder)
  liteframe-micro/                        <- liteframe_lma/adapter (LiteFrame LMA, trained on liteframe-micro-ctd)
  teacher-vlm-micro-caption/encoder.safetensors
                                          <- teacher_align_blocks/aligned (DINOv2-S's blocks align.py trained, packed)
  teacher-vlm-micro-caption/              <- teacher_caption_blocks/adapter (the teacher VLM's caption stage)
  liteframe-micro-s/encoder.safetensors   <- liteframe_s_align/aligned (the blocks align.py trained, packed)
  liteframe-micro-s/                      <- liteframe_s_lma/adapter (LiteFrame-micro-S's LMA)
  teacher-vlm-micro-qa/                   <- teacher_mcq/adapter (the teacher VLM's multiple-choice stage)
  liteframe-micro-s-qa/                   <- liteframe_s_mcq/adapter (LiteFrame-micro-S's multiple-choice stage)

and builds every model of `liteframe_hf.micro.MICRO_MODELS` whose parts are there into RUN_DIR/models/<name>/
(skipping folders already built from the same weights). Run it after each stage: LiteFrame's LMA trains on the
liteframe-micro-ctd folder, so that one must exist before it. Every weights file is stored packed
(`liteframe_hf.micro.pack_weights`: int8 matrices), which keeps the shipped set within its size budget.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load, save, save_file

from ..micro import (ENCODER_FILE, MICRO_MODELS, MICRO_NAME, MICRO_S_NAME, MICRO_S_QA_NAME, TEACHER_CAPTION_NAME,
                     TEACHER_QA_NAME, TEACHER_VLM_NAME, WEIGHTS_DIR, build_micro_model, pack_weights, weights_files)

__all__ = ["collect_weights", "compose_models", "trained_encoder_weights"]

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"
# weights-set entry <- the stage folder whose adapter/ it takes, and the align.py run whose trained blocks it takes
ADAPTER_STAGES = {MICRO_NAME: "liteframe_lma", TEACHER_CAPTION_NAME: "teacher_caption_blocks",
                  MICRO_S_NAME: "liteframe_s_lma", TEACHER_QA_NAME: "teacher_mcq", MICRO_S_QA_NAME: "liteframe_s_mcq"}
ENCODER_STAGES = {TEACHER_CAPTION_NAME: "teacher_align_blocks", MICRO_S_NAME: "liteframe_s_align"}


def collect_weights(run: str | Path, progress=print) -> Path:
    """Copy the trained parts of `run`'s finished stages into `run`/weights (a stage not run yet is left out). The
    teacher VLM's first LMA stage comes from the shipped set when `run` has no teacher_vlm/ of its own: a recognition
    run starts from the shipped teacher VLM, as align_teacher_micro.yaml's base_model does."""
    run = Path(run)
    weights = run / "weights"
    teacher = run / "teacher_vlm" / "adapter" if (run / "teacher_vlm").is_dir() else WEIGHTS_DIR / TEACHER_VLM_NAME
    adapters = [(teacher, TEACHER_VLM_NAME)]
    adapters += [(run / stage / "adapter", entry) for entry, stage in ADAPTER_STAGES.items()]
    copies = [(run / "ctd" / "student" / "model.safetensors", weights / MICRO_NAME / ENCODER_FILE)]
    for src, entry in adapters:
        copies += [(src / ADAPTER_CONFIG, weights / entry / ADAPTER_CONFIG),
                   (src / ADAPTER_WEIGHTS, weights / entry / ADAPTER_WEIGHTS)]
    for entry, stage in ENCODER_STAGES.items():
        aligned = run / stage / "aligned"
        if (aligned / "model.safetensors").is_file():
            exported = run / stage / ENCODER_FILE
            if not exported.is_file() or exported.stat().st_mtime < (aligned / "model.safetensors").stat().st_mtime:
                save_file(pack_weights(trained_encoder_weights(aligned)), str(exported))  # once per align run
            copies.append((exported, weights / entry / ENCODER_FILE))
    for src, dst in copies:
        if not src.is_file():
            continue
        data = src.read_bytes()
        if src.suffix == ".safetensors":  # packed unless it already is (the shipped set's, align exports)
            state = load(data)
            data = data if any(t.dtype == torch.int8 for t in state.values()) else save(pack_weights(state))
        if not dst.is_file() or dst.read_bytes() != data:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            progress(f"weights: {dst} <- {src}")
    return weights


def trained_encoder_weights(aligned: str | Path) -> dict:
    """The vision tower weights that align.py trained in `aligned` (its output's aligned/ folder), in fp32: the blocks
    after the frozen stem (train_blocks in the run's train_summary.json), the token mergers after them and the
    read-out (the rest is the student init's, rebuilt from DINOv2-S when the model is assembled)."""
    import json

    import torch
    from safetensors import safe_open

    aligned = Path(aligned)
    summary = json.loads((aligned.parent / "train_summary.json").read_text())
    config = json.loads((aligned / "config.json").read_text())["vision_config"]
    blocks, train_blocks = int(config["num_hidden_layers"]), int(summary.get("train_blocks", 0))
    if not train_blocks:
        raise ValueError(f"{aligned}: align.py trained no encoder block there (train_blocks 0)")
    stem = blocks - train_blocks

    def trained(name: str) -> bool:
        part = name.split(".")
        if part[0] == "layers":
            return int(part[1]) >= stem
        if part[0] == "token_mergers":
            return int(part[1]) > stem
        return part[0] in ("post_layernorm", "head")

    prefix = "model.vision_tower."
    with safe_open(str(aligned / "model.safetensors"), framework="pt") as f:
        return {k[len(prefix):]: f.get_tensor(k).float().contiguous()
                for k in f.keys() if k.startswith(prefix) and trained(k[len(prefix):])}


def compose_models(run: str | Path, progress=print, names=None) -> dict[str, Path]:
    """{model name: folder} for every micro model (of `names`, default all) whose weights-set parts exist in
    `run`/weights."""
    weights = collect_weights(run, progress)
    folders = {}
    for name in names or MICRO_MODELS:
        try:
            weights_files(name, weights)
        except FileNotFoundError as missing:
            progress(f"{name}: not built yet ({missing})")
            continue
        folders[name] = build_micro_model(Path(run) / "models" / name, name=name, weights=weights, progress=progress)
        progress(f"{name}: {folders[name]}")
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the reproduce_micro output folder (teacher_vlm/, ctd/, liteframe_lma/, "
                                                   "liteframe_s_align/, liteframe_s_lma/)")
    parser.add_argument("--models", nargs="+", choices=list(MICRO_MODELS), metavar="NAME",
                        help=f"build only these micro models (default: all of {', '.join(MICRO_MODELS)})")
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        print(f"{args.run} is not a folder", file=sys.stderr)
        return 2
    return 0 if compose_models(args.run, names=args.models) else 1


if __name__ == "__main__":
    sys.exit(main())
