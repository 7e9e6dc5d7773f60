"""Models for the training scripts: the CTD teacher/student pair and the LMA video LLM with its LoRA config.

Model specs accepted by the recipes:
  a folder or Hub id           loaded with from_pretrained
  asset:NAME                   a cached LiteFrame asset (`liteframe assets fetch`): asset:dinov2, asset:smollm2
  random:internvit-300m        (teacher) random InternViT-300M (the paper's teacher shape), for throughput benchmarks
  micro:NAME                   (LMA vision_model) a whole micro video LLM assembled by liteframe_hf.micro
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameConfig, LiteFrameVisionConfig
from ..modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from ..modeling.processing_liteframe import CLIP_CONTEXT, LiteFrameProcessor
from ..teachers import Teacher
from .config import CTDConfig, LMAConfig
from .data import resolve_spec

__all__ = ["load_align_model", "load_teacher", "student_config", "build_student", "build_lma_model", "lma_lora_config",
           "check_student_matches_teacher", "load_projector"]


def _seeded(builder, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return builder()


def _random_internvit_300m():
    from transformers import InternVLVisionModel

    from ..paper import internvit_300m_config

    return _seeded(lambda: InternVLVisionModel(internvit_300m_config()))


_RANDOM_TEACHERS = {"internvit-300m": _random_internvit_300m}


# ----------------------------------------------------------------------------------------------- CTD
def load_teacher(cfg: CTDConfig, device: torch.device, dtype: torch.dtype | None = None) -> Teacher:
    """The frozen teacher in `dtype` (the run's precision; default bf16 on GPU, fp32 on CPU) with the recipe's WAP
    weighting and block."""
    kwargs = dict(weighting=cfg.teacher_weighting, block=tuple(cfg.wap_block), device=device, dtype=dtype,
                  chunk_size=cfg.teacher_chunk_size)
    if cfg.teacher.startswith("random:"):
        name = cfg.teacher.split(":", 1)[1]
        if name not in _RANDOM_TEACHERS:
            raise ValueError(f"unknown random teacher {name!r}; choose one of {sorted(_RANDOM_TEACHERS)}")
        return Teacher(_RANDOM_TEACHERS[name](), **kwargs)
    return Teacher.from_pretrained(resolve_spec(cfg.teacher), **kwargs)


def check_student_matches_teacher(config: LiteFrameVisionConfig, teacher: Teacher, image_size: int) -> None:
    """The student's output grid and width must equal the WAP-pooled teacher grid, or the loss has no meaning."""
    t, h, w = teacher.block
    gh, gw = teacher.grid_size(image_size, image_size)
    target = (config.clip_len // t, gh // h, gw // w)
    student = config.output_grid(image_size)
    if student != target or config.output_size != teacher.hidden_size:
        raise ValueError(
            f"student output {student} x {config.output_size} does not match the WAP target {target} x "
            f"{teacher.hidden_size} at {image_size}px (teacher patch {teacher.patch_size}, WAP block {teacher.block}); "
            f"adjust the student's patch_size/downsample_layers or wap_block"
        )


def student_config(cfg: CTDConfig, teacher: Teacher) -> LiteFrameVisionConfig:
    """`student_variant` + `student_overrides`, with out_hidden_size = the teacher's width; checked against the
    WAP target grid."""
    if cfg.student_init not in ("teacher", "random"):
        config = LiteFrameVisionConfig.from_pretrained(resolve_spec(cfg.student_init))
    else:
        overrides = dict(cfg.student_overrides)
        overrides.update(clip_len=cfg.clip_len, out_hidden_size=teacher.hidden_size)
        if cfg.image_size:
            overrides["image_size"] = cfg.image_size
        config = LiteFrameVisionConfig.from_variant(cfg.student_variant, **overrides)
    check_student_matches_teacher(config, teacher, cfg.image_size or config.image_size)
    return config


def build_student(cfg: CTDConfig, teacher: Teacher, config: LiteFrameVisionConfig,
                  calibration_clips: torch.Tensor | None = None, initialise: bool = True):
    """(student, init report or None). `student_init`: 'teacher' clips the teacher's weights
    (`liteframe_hf.student_init`, head fitted on `calibration_clips`), 'random' keeps the config's init, anything
    else is a LiteFrameVisionModel folder to continue from. `initialise=False` (resuming: the checkpoint will
    overwrite the weights) skips the work."""
    if cfg.student_init not in ("teacher", "random"):
        return LiteFrameVisionModel.from_pretrained(resolve_spec(cfg.student_init)), None
    student = _seeded(lambda: LiteFrameVisionModel(config), cfg.seed)
    if cfg.student_init == "random" or not initialise:
        return student, None
    from ..student_init import init_student_from_teacher

    report = init_student_from_teacher(
        student, teacher, layer_map=cfg.student_layer_map, head_init=cfg.student_head_init,
        calibration_clips=calibration_clips, image_mean=cfg.image_mean, image_std=cfg.image_std, seed=cfg.seed)
    return student, report


# ----------------------------------------------------------------------------------------------- LMA
def _load_language_model(spec: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_spec(spec)
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=dtype)


def _micro_name(spec: str) -> str | None:
    """The `liteframe_hf.micro` model a vision spec stands for: `micro:NAME`, or an encoder variant that only means
    something with DINOv2-S's weights copied in (`dinov2-s`, `dinov2-s-wap`; a random one would be no teacher)."""
    from ..micro import MICRO_MODELS

    if spec.startswith("micro:"):
        name = spec.split(":", 1)[1]
        if name not in MICRO_MODELS:
            raise ValueError(f"unknown micro model {name!r} in {spec!r}; choose one of {', '.join(MICRO_MODELS)}")
        return name
    copies = {m.vision_variant: m.name for m in MICRO_MODELS.values() if m.encoder_init == "copy"}
    return copies.get(spec)


def _assemble_micro(cfg: LMAConfig, name: str, dtype: torch.dtype):
    """The micro video LLM `name`, assembled once by `liteframe_hf.micro` (the same weights as `liteframe eval NAME`
    before training: DINOv2-S copied or clipped, the seeded projector, SmolLM2 with InternVL's tokens)."""
    from ..micro import IMAGE_SIZE, assemble_micro_model

    if cfg.language_model != "asset:smollm2":
        raise ValueError(f"vision_model {cfg.vision_model!r} is a whole micro model built on SmolLM2-135M-Instruct; "
                         f"language_model must be asset:smollm2, got {cfg.language_model!r}")
    if cfg.image_size not in (None, IMAGE_SIZE):
        raise ValueError(f"the micro models run at {IMAGE_SIZE} px; got image_size={cfg.image_size}")
    model, processor, _ = assemble_micro_model(name, weights=None, progress=lambda *_: None)  # untrained: the start
    return model.to(dtype), processor


def _load_vision_model(spec: str, image_size: int | None, seed: int) -> LiteFrameVisionModel:
    name = _micro_name(spec)
    if name is not None:  # DINOv2-S copied exactly, never a random tower of its shape
        from ..micro import assemble_micro_model

        return assemble_micro_model(name, weights=None, progress=lambda *_: None)[0].model.vision_tower
    if spec in VISION_VARIANTS:
        config = LiteFrameVisionConfig.from_variant(spec, **({"image_size": image_size} if image_size else {}))
        return _seeded(lambda: LiteFrameVisionModel(config), seed)
    try:
        return LiteFrameVisionModel.from_pretrained(resolve_spec(spec))
    except OSError as err:  # a Hub-shaped id (one '/') that is neither a folder here nor loadable from the Hub
        raise _missing_vision_model(spec) from err


def _missing_vision_model(spec: str) -> FileNotFoundError:
    return FileNotFoundError(f"the vision model {spec!r} does not exist: run training/ctd.py first (it writes "
                             f"{spec}), or pass --vision_model liteframe-micro")


def check_vision_spec(spec: str) -> None:
    """Fail fast (before the LLM is loaded) on a vision_model that is a missing local folder: the usual cause is LMA
    run before CTD, and huggingface_hub would otherwise answer with a bare 'Repo id must be in the form' error."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if spec in VISION_VARIANTS or _micro_name(spec) is not None or spec.startswith("asset:"):
        return
    if Path(spec).expanduser().exists():
        return
    try:
        validate_repo_id(spec)
    except HFValidationError:
        raise _missing_vision_model(spec) from None


def build_lma_model(cfg: LMAConfig, dtype: torch.dtype = torch.float32, base: str | None = None):
    """(LiteFrameForConditionalGeneration in `dtype`, LiteFrameProcessor) for LMA.

    From `base` or `base_model` (a LiteFrame checkpoint folder, with its processor when it has one) or assembled from
    `vision_model` (the CTD student) and `language_model`: InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>` are added
    to the tokenizer when missing (new embedding rows start at the mean embedding), `video_token_id` is
    `<IMG_CONTEXT>`'s id, and the processor gets the recipe's frame size and normalisation.
    """
    from transformers import AutoProcessor, AutoTokenizer

    if base or cfg.base_model:
        path = base or resolve_spec(cfg.base_model)
        model = LiteFrameForConditionalGeneration.from_pretrained(path, dtype=dtype)
        try:
            processor = AutoProcessor.from_pretrained(path)
        except (OSError, ValueError, TypeError):
            processor = None
        if isinstance(processor, LiteFrameProcessor):
            image_size = processor.video_processor.size["height"]
            if processor.tokens_per_clip != model.config.tokens_per_clip(image_size):
                raise ValueError(f"{path}: the processor writes {processor.tokens_per_clip} tokens per clip but the "
                                 f"model makes {model.config.tokens_per_clip(image_size)} at {image_size}px")
            return model, processor
        tokenizer = AutoTokenizer.from_pretrained(path)
    elif cfg.vision_model.startswith("micro:"):
        model, processor = _assemble_micro(cfg, _micro_name(cfg.vision_model), dtype)
        tokenizer = processor.tokenizer
    else:
        check_vision_spec(cfg.vision_model)
        tokenizer, llm = _load_language_model(cfg.language_model, dtype)
        from ..micro import add_clip_tokens

        add_clip_tokens(tokenizer, llm)
        vision = _load_vision_model(cfg.vision_model, cfg.image_size, cfg.seed)
        config = LiteFrameConfig(vision_config=vision.config.to_dict(), text_config=llm.config.to_dict(),
                                 video_token_id=tokenizer.convert_tokens_to_ids(CLIP_CONTEXT))
        model = _seeded(lambda: LiteFrameForConditionalGeneration(config), cfg.seed)
        model.model.vision_tower.load_state_dict(vision.state_dict())
        model.model.language_model.load_state_dict(llm.model.state_dict())
        model.lm_head.load_state_dict(llm.lm_head.state_dict())
        model.to(dtype)
    if cfg.init_projector_from:
        load_projector(model, cfg.init_projector_from)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    processor = LiteFrameProcessor.for_model(tokenizer, model.config, image_size=cfg.image_size,
                                             image_mean=cfg.image_mean, image_std=cfg.image_std)
    return model, processor


PROJECTOR = "multi_modal_projector."


@torch.no_grad()
def load_projector(model: LiteFrameForConditionalGeneration, folder: str) -> None:
    """Copy the projector weights saved in `folder` (a PEFT adapter whose modules_to_save hold the projector, or a
    LiteFrame folder) into `model`. Shapes must match: the teacher VLM and LiteFrame-micro share the projector
    (pixel shuffle of 384-wide tokens), which is what lets LiteFrame's LMA start from the teacher's."""
    from pathlib import Path

    from safetensors.torch import load_file

    files = sorted(Path(resolve_spec(folder)).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"init_projector_from: no .safetensors weights in {folder}")
    found = {}
    for file in files:
        for key, value in load_file(str(file)).items():
            if PROJECTOR in key:
                name = key.split(PROJECTOR, 1)[1].replace("modules_to_save.default.", "")
                found[name] = value
    if not found:
        raise ValueError(f"init_projector_from: {folder} holds no projector weights (no '{PROJECTOR}' keys; an "
                         f"adapter saves them only when trained with train_projector: true)")
    projector = model.model.multi_modal_projector
    own = projector.state_dict()
    bad = sorted(set(own) ^ set(found)) or [k for k in own if own[k].shape != found[k].shape]
    if bad:
        raise ValueError(f"init_projector_from: the projector in {folder} does not fit this model ({', '.join(bad)})")
    projector.load_state_dict({k: v.to(own[k].dtype) for k, v in found.items()})


def lma_lora_config(cfg: LMAConfig):
    """LoRA on the LLM's linear layers only (a full-match regex), the projector/encoder fully trained by config."""
    from peft import LoraConfig

    modules_to_save = (["multi_modal_projector"] if cfg.train_projector else []) + (
        ["vision_tower"] if cfg.train_vision_tower else [])
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=cfg.lora_target_modules, modules_to_save=modules_to_save or None)


def load_align_model(spec: str):
    """(LiteFrameForConditionalGeneration in fp32, eval mode; its processor) for token alignment and the probe: a
    micro model name (`liteframe_hf.micro.MICRO_MODELS`, built on first use) or a LiteFrame folder."""
    from transformers import AutoProcessor

    from ..micro import MICRO_MODELS, build_micro_model

    folder = build_micro_model(name=spec) if spec in MICRO_MODELS else Path(resolve_spec(spec))
    if not (Path(folder) / "config.json").is_file():
        raise FileNotFoundError(f"{spec}: not a micro model name ({', '.join(MICRO_MODELS)}) nor a "
                                f"LiteFrame folder (no config.json)")
    model = LiteFrameForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(folder)
