"""The weights set and the models that issue 17's `scripts/reproduce_micro.sh` trains and evaluates.

    python -m liteframe_hf.training.reproduce RUN_DIR

collects the trained parts of RUN_DIR's stages into the weights set RUN_DIR/weights (the layout `liteframe_hf.micro`
reads and the package ships in liteframe_hf/weights/):

  teacher-vlm-micro/                      <- teacher_vlm/adapter (teacher VLM LMA: projector + LoRA)
  liteframe-micro/encoder.safetensors     <- ctd/student (the CTD encoder)
  liteframe-micro/                        <- liteframe_lma/adapter (LiteFrame LMA, trained on liteframe-micro-ctd)

and builds every model of `liteframe_hf.micro.MICRO_MODELS` whose parts are there into RUN_DIR/models/<name>/
(skipping folders already built from the same weights). Run it after each stage: LiteFrame's LMA trains on the
liteframe-micro-ctd folder, so that one must exist before it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..micro import ENCODER_FILE, MICRO_MODELS, MICRO_NAME, TEACHER_VLM_NAME, weights_files, build_micro_model

__all__ = ["collect_weights", "compose_models"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def collect_weights(run: str | Path, progress=print) -> Path:
    """Copy the trained parts of `run`'s finished stages into `run`/weights (a stage not run yet is left out)."""
    run = Path(run)
    weights = run / "weights"
    copies = [(run / "teacher_vlm" / "adapter" / f, weights / TEACHER_VLM_NAME / f) for f in ADAPTER_FILES]
    copies += [(run / "ctd" / "student" / "model.safetensors", weights / MICRO_NAME / ENCODER_FILE)]
    copies += [(run / "liteframe_lma" / "adapter" / f, weights / MICRO_NAME / f) for f in ADAPTER_FILES]
    for src, dst in copies:
        if src.is_file() and (not dst.is_file() or dst.read_bytes() != src.read_bytes()):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            progress(f"weights: {dst} <- {src}")
    return weights


def compose_models(run: str | Path, progress=print) -> dict[str, Path]:
    """{model name: folder} for every micro model whose weights-set parts exist in `run`/weights."""
    weights = collect_weights(run, progress)
    folders = {}
    for name in MICRO_MODELS:
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
    parser.add_argument("run", type=Path, help="the reproduce_micro output folder (teacher_vlm/, ctd/, liteframe_lma/)")
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        print(f"{args.run} is not a folder", file=sys.stderr)
        return 2
    return 0 if compose_models(args.run) else 1


if __name__ == "__main__":
    sys.exit(main())
