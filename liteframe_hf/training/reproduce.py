"""The models that issue 17's `scripts/reproduce_micro.sh` evaluates, composed from its training stages' outputs.

    python -m liteframe_hf.training.reproduce RUN_DIR

reads RUN_DIR/teacher_vlm/adapter (teacher VLM LMA), RUN_DIR/ctd/student (CTD) and RUN_DIR/liteframe_lma/adapter
(LiteFrame LMA) and writes one LiteFrame folder per model under RUN_DIR/models/ (skipping any already there):

  teacher-vlm-micro          the trained teacher VLM: frozen DINOv2-S, its trained projector + LoRA (merged)
  teacher-vlm-micro-posthoc  the same weights with post-hoc WAP (4, 2, 2) per clip, training-free
  liteframe-micro-ctd        the CTD encoder in the trained teacher VLM (its projector + LoRA): CTD only, no LMA
  liteframe-micro            the CTD encoder + LiteFrame's own LMA (projector started from the teacher's + LoRA)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..micro import POSTHOC_NAME, TEACHER_VLM_NAME, assemble_micro_model, load_trained_weights
from ..modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel

__all__ = ["MODELS", "compose_models"]

MODELS = ("teacher-vlm-micro", "teacher-vlm-micro-posthoc", "liteframe-micro-ctd", "liteframe-micro")
RECORD = "reproduce_micro.json"


def _save(model, processor, out: Path, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORD).unlink(missing_ok=True)  # written last: a folder without it is rebuilt
    model.save_pretrained(out)
    processor.save_pretrained(out)
    from ..hub import write_pipeline_entry

    write_pipeline_entry(out)  # loads with plain transformers, pipeline included, like a pushed folder
    (out / RECORD).write_text(json.dumps(record, indent=2))


@torch.no_grad()
def compose_models(run: str | Path, progress=print) -> dict[str, Path]:
    """{model name: folder} for every model of `MODELS` whose stage outputs exist in `run`."""
    run = Path(run)
    teacher, student, lma = run / "teacher_vlm" / "adapter", run / "ctd" / "student", run / "liteframe_lma" / "adapter"
    plan = {
        "teacher-vlm-micro": (teacher,),
        "teacher-vlm-micro-posthoc": (teacher,),
        "liteframe-micro-ctd": (teacher, student),
        "liteframe-micro": (lma,),
    }
    folders = {}
    for name, needs in plan.items():
        out = run / "models" / name
        if (out / RECORD).is_file():
            folders[name] = out
            continue
        missing = [str(p) for p in needs if not p.exists()]
        if missing:
            progress(f"{name}: not built ({', '.join(missing)} missing)")
            continue
        record = {"name": name, "from": [str(p.resolve()) for p in needs]}
        if name in (TEACHER_VLM_NAME, POSTHOC_NAME):
            model, processor, _ = assemble_micro_model(name, trained=teacher, progress=progress)
        elif name == "liteframe-micro-ctd":
            model, processor, _ = assemble_micro_model("liteframe-micro", progress=progress)
            encoder = LiteFrameVisionModel.from_pretrained(student)
            model.model.vision_tower.load_state_dict(encoder.state_dict())
            record["trained_kind"] = load_trained_weights(model, teacher)
        else:
            # The LMA adapter sits on the base lma.py saved (CTD encoder + SmolLM2); merged, it is a plain folder.
            from peft import PeftModel

            from transformers import AutoProcessor

            base_dir = json.loads((lma / "adapter_config.json").read_text())["base_model_name_or_path"]
            base = LiteFrameForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, str(lma)).merge_and_unload()
            processor = AutoProcessor.from_pretrained(lma)
        _save(model.eval(), processor, out, record)
        progress(f"{name}: {out}")
        folders[name] = out
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the reproduce_micro output folder (teacher_vlm/, ctd/, liteframe_lma/)")
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        print(f"{args.run} is not a folder", file=sys.stderr)
        return 2
    folders = compose_models(args.run)
    return 0 if folders else 1


if __name__ == "__main__":
    sys.exit(main())
