"""Convert an InternVL3-*-hf checkpoint into a LiteFrame video LLM checkpoint (`liteframe convert`).

Where it sits: InternVL3-8B-hf (InternViT-300M + projector + Qwen2.5-7B) -> **convert** -> liteframe-8b
(LiteFrame-B encoder initialised from InternViT by clipping + the same projector and LLM) -> LMA/CTD
training or inference with `LiteFrameForConditionalGeneration.from_pretrained(out)`.

    liteframe convert --internvl InternVL3-8B-hf --out liteframe-8b-init
    liteframe convert --internvl DIR --out DIR --student-config liteframe-b --layer-map even --dtype bf16

Try it without downloading InternVL3-8B-hf: from a source checkout,
    pytest tests/test_convert.py -k cli
builds a tiny random checkpoint in InternVL3-*-hf's layout (its `internvl` fixture shows how, with InternVL's
special tokens and chat template) and runs `liteframe convert` on it. The other InternVL3-*-hf sizes (the smallest
is OpenGVLab/InternVL3-1B-hf) share that layout; this repository's tests run only the tiny one.

What is written:
* weights: the student tower (`model.vision_tower.*`) from :func:`liteframe_hf.student_init.init_student_from_teacher`,
  then every projector / LLM / lm_head tensor of the source, renamed to our layout, in the source's dtype
  unless `dtype` says otherwise (values otherwise unchanged; the summary says which dtype was written and
  whether anything was cast), in safetensors shards of at most `max_shard_size` with an index;
* config.json (`LiteFrameConfig`: the student config with `out_hidden_size` = the teacher's width,
  `text_config` copied, `video_token_id` = `image_token_id`, `pixel_shuffle_ratio` = `downsample_ratio`),
  the remote-code files, generation_config.json;
* the tokenizer and a `LiteFrameProcessor` (placeholders per clip from `config.tokens_per_clip()`);
* liteframe_conversion.json: what was done (layer map, head fit quality, source).

Memory: the 8B model is never held whole. Tensors are read one at a time with `safe_open` (reopened per
tensor, so the mapped pages a read touches are released after it) and written one output shard at a time
with `save_file`, on the shard plan of `huggingface_hub.split_torch_state_dict_into_shards`. Only the InternViT
tower (0.3B) and the student are in memory as models. Peak RSS is about the tower + the student + one output
shard (`--max-shard-size`, 5GB by default; pass a smaller size to convert on a small machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import GenerationConfig
from transformers.modeling_utils import str_to_torch_dtype

from .modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from .student_init import StudentInitReport, init_student_from_teacher

__all__ = [
    "convert_internvl",
    "ConversionReport",
    "ConversionError",
    "INTERNVL_TO_LITEFRAME",
    "internvl_to_liteframe_key",
    "load_student_config",
    "SafetensorsFile",
    "write_safetensors_shards",
    "add_arguments",
    "main",
]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "auto": None}

# InternVL3-*-hf checkpoints as published / saved by transformers ("legacy" layout) and as named in memory,
# -> LiteFrameForConditionalGeneration names. First matching rule wins.
INTERNVL_TO_LITEFRAME: tuple[tuple[str, str], ...] = (
    (r"^language_model\.lm_head\.", "lm_head."),
    (r"^language_model\.model\.", "model.language_model."),
    (r"^language_model\.", "model.language_model."),
    (r"^vision_tower\.", "model.vision_tower."),
    (r"^multi_modal_projector\.", "model.multi_modal_projector."),
    (r"^(model\.(?:vision_tower|multi_modal_projector|language_model)\.|lm_head\.)", r"\1"),
)
VISION_PREFIX = "model.vision_tower."
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.model", "chat_template.jinja", "chat_template.json",
)
REPORT_FILE = "liteframe_conversion.json"


class ConversionError(ValueError):
    """The source folder or the requested student cannot be converted; the message says why and what to do."""


def internvl_to_liteframe_key(name: str) -> str | None:
    """Our name for an InternVL3-*-hf tensor name, or None when it belongs to no known part."""
    for pattern, replacement in INTERNVL_TO_LITEFRAME:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name, count=1)
    return None


# ----------------------------------------------------------------------------------------------- safetensors IO
class SafetensorsFile:
    """One .safetensors file: names, dtypes and shapes from its header, tensors read one at a time with
    `safe_open`. The file is opened per read, so the memory map (whose touched pages count against RSS) is
    dropped after each tensor instead of growing to the whole shard."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with safe_open(self.path, framework="pt") as f:
                self.metadata = f.metadata() or {}
                self.entries = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
        except SafetensorError as e:
            raise ConversionError(f"{self.path} is not a readable safetensors file ({e})") from None

    def keys(self) -> list[str]:
        return list(self.entries)

    def dtype(self, name: str) -> torch.dtype:
        return str_to_torch_dtype[self.entries[name][0]]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def read(self, name: str) -> torch.Tensor:
        try:
            with safe_open(self.path, framework="pt") as f:
                return f.get_tensor(name)
        except SafetensorError as e:
            raise ConversionError(f"{self.path}: cannot read tensor {name!r} ({e})") from None


@dataclass
class TensorPlan:
    """One output tensor: its name, dtype and shape (known before any data is read) and how to get it."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    load: Callable[[], torch.Tensor]


def write_safetensors_shards(
    plans: Sequence[TensorPlan],
    out_dir: str | os.PathLike,
    max_shard_size: int | str = "5GB",
    progress: bool = True,
) -> dict:
    """Write tensors as `save_pretrained` does: shards planned by `split_torch_state_dict_into_shards` (on meta
    tensors, so nothing is read to plan), `model.safetensors` or `model-0000i-of-0000N.safetensors` files
    written by `save_file`, and `model.safetensors.index.json` when sharded. Tensors are loaded and cast one
    shard at a time, so at most one output shard is in memory. Returns the index dict."""
    meta = {p.name: torch.empty(p.shape, dtype=p.dtype, device="meta") for p in plans}
    split = split_torch_state_dict_into_shards(meta, max_shard_size=max_shard_size)
    by_name = {p.name: p for p in plans}
    out_dir = Path(out_dir)
    bar = tqdm(total=split.metadata["total_size"], desc="writing shards", unit="B", unit_scale=True, unit_divisor=1024,
               disable=not progress)
    try:
        for filename, names in split.filename_to_tensors.items():
            shard = {}
            for name in names:
                plan = by_name[name]
                tensor = plan.load()
                if tuple(tensor.shape) != plan.shape:
                    raise ConversionError(f"{name}: planned shape {plan.shape}, got {tuple(tensor.shape)}")
                shard[name] = tensor.to(plan.dtype).contiguous()
            save_file(shard, out_dir / filename, metadata={"format": "pt"})
            bar.update(sum(t.nbytes for t in shard.values()))
            del shard
    finally:
        bar.close()
    total_parameters = sum(t.numel() for t in meta.values())
    index = {"metadata": {"total_parameters": total_parameters, **split.metadata},
             "weight_map": split.tensor_to_filename}
    if split.is_sharded:
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


# ----------------------------------------------------------------------------------------------- source
@dataclass
class _Source:
    folder: Path
    config: object  # InternVLConfig
    files: dict[str, SafetensorsFile]  # file name -> reader
    location: dict[str, str]  # source tensor name -> file name


def _open_source(folder: Path) -> _Source:
    if not folder.is_dir():
        raise ConversionError(f"--internvl {str(folder)!r} is not a folder: pass a local InternVL3-*-hf checkpoint folder")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{folder} has no config.json: not a transformers checkpoint folder")
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "internvl":
        hint = ""
        if model_type == "internvl_chat":
            hint = (" This is the original OpenGVLab format; use the transformers version of the checkpoint "
                    "(e.g. OpenGVLab/InternVL3-8B-hf).")
        raise ConversionError(
            f"{folder} holds a {model_type!r} checkpoint, not InternVL3-*-hf (config.json model_type 'internvl').{hint}"
        )
    from transformers import InternVLConfig

    config = InternVLConfig.from_pretrained(folder)
    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text()).get("weight_map") or {}
        if not weight_map:
            raise ConversionError(f"{index_path} has an empty weight_map")
        wanted = sorted(set(weight_map.values()))
        missing = [name for name in wanted if not (folder / name).is_file()]
        if missing:
            raise ConversionError(
                f"{folder} is missing {len(missing)} of the {len(wanted)} shards listed in model.safetensors.index.json: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. Download the complete checkpoint."
            )
        files = {name: SafetensorsFile(folder / name) for name in wanted}
        for key, name in weight_map.items():
            if key not in files[name].entries:
                raise ConversionError(f"the index says {key!r} is in {name}, but that shard does not contain it")
        location = dict(weight_map)
    elif (folder / "model.safetensors").is_file():
        files = {"model.safetensors": SafetensorsFile(folder / "model.safetensors")}
        location = {key: "model.safetensors" for key in files["model.safetensors"].keys()}
    elif any(folder.glob("*.bin")):
        raise ConversionError(f"{folder} has only PyTorch .bin weights; re-save it with safetensors "
                              "(model.save_pretrained(dir, safe_serialization=True)) and convert that")
    else:
        raise ConversionError(f"{folder} has no model.safetensors or model.safetensors.index.json")
    return _Source(folder, config, files, location)


# ----------------------------------------------------------------------------------------------- student config
def load_student_config(spec: str | os.PathLike | dict | LiteFrameVisionConfig | None = None) -> LiteFrameVisionConfig:
    """The student encoder's config from a variant name (`liteframe-b`, `liteframe-micro`, ...), a JSON/YAML
    file (a LiteFrameVisionConfig dict, optionally with `variant:` plus overrides, or a LiteFrameConfig dict
    with `vision_config`), a saved folder, a dict or a config. Default: `liteframe-b`."""
    if spec is None:
        return LiteFrameVisionConfig.from_variant("liteframe-b")
    if isinstance(spec, LiteFrameVisionConfig):
        return LiteFrameVisionConfig(**spec.to_dict())
    if isinstance(spec, dict):
        fields = dict(spec.get("vision_config", spec))
        for key in ("model_type", "transformers_version", "architectures", "auto_map"):
            fields.pop(key, None)
        variant = fields.pop("variant", None)
        return LiteFrameVisionConfig.from_variant(variant, **fields) if variant else LiteFrameVisionConfig(**fields)
    spec = str(spec)
    if spec in VISION_VARIANTS:
        return LiteFrameVisionConfig.from_variant(spec)
    path = Path(spec)
    if path.is_dir():
        return LiteFrameVisionConfig.from_pretrained(path)
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ConversionError(f"{path} does not hold a config mapping")
        return load_student_config(data)
    raise ConversionError(
        f"--student-config {spec!r} is neither a variant ({', '.join(sorted(VISION_VARIANTS))}) nor an existing "
        f".json/.yaml file or folder"
    )


# ----------------------------------------------------------------------------------------------- conversion
@dataclass
class ConversionReport:
    out_dir: str
    source: str
    student: StudentInitReport
    dtype: str
    tensors_copied: int
    bytes_written: int
    shards: int
    tokens_per_clip: int
    processor: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "dtype": self.dtype,
            "tensors_copied": self.tensors_copied,
            "bytes_written": self.bytes_written,
            "shards": self.shards,
            "tokens_per_clip": self.tokens_per_clip,
            "processor": self.processor,
            "seconds": round(self.seconds, 2),
            "notes": list(self.notes),
            "student_init": self.student.to_dict(),
        }

    def summary(self) -> str:
        gb = self.bytes_written / 1e9
        lines = [
            f"converted {self.source} -> {self.out_dir} in {self.seconds:.1f}s",
            f"  {self.shards} shard(s), {gb:.2f} GB ({self.dtype}); {self.tensors_copied} projector/LLM tensors copied",
            f"  {self.tokens_per_clip} LLM tokens per clip; processor: {self.processor}",
        ]
        lines += ["  " + line for line in self.student.summary().splitlines()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def convert_internvl(
    internvl_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    student_config: str | os.PathLike | dict | LiteFrameVisionConfig | None = None,
    layer_map: str | Sequence[int] | None = None,
    dtype: str = "auto",
    max_shard_size: int | str = "5GB",
    *,
    head_init: str = "lstsq",
    calibration_clips: torch.Tensor | None = None,
    num_calibration_clips: int = 8,
    calibration_size: int | None = None,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ConversionReport:
    """Convert an InternVL3-*-hf folder into a LiteFrame checkpoint folder (see the module docstring).

    Args:
        internvl_dir: local InternVL3-*-hf folder (config.json with model_type 'internvl', safetensors weights).
        out_dir: output folder (must be empty or absent unless `overwrite`).
        student_config: see :func:`load_student_config`; `out_hidden_size` is set to the teacher's width.
        layer_map: "even" (default), "first", a list or "0,2,4,..." (see `student_init.resolve_layer_map`).
        dtype: "auto" (default: keep each source tensor's dtype), "bf16", "fp16" or "fp32".
        max_shard_size: e.g. "5GB" (transformers' units) or bytes.
        head_init, calibration_clips, num_calibration_clips, calibration_size: the student head's
            initialisation (see `init_student_from_teacher`); calibration clips are normalised with the
            checkpoint's image mean/std.
        device: where the teacher and student run for the head fit (default: cuda if available).
    """
    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    if dtype not in DTYPES:
        raise ConversionError(f"dtype={dtype!r}; choose one of {', '.join(DTYPES)}")
    out_dtype = DTYPES[dtype]
    source = _open_source(Path(internvl_dir))
    src_cfg = source.config
    vision_src = src_cfg.vision_config
    teacher_width = int(vision_src.hidden_size)
    notes: list[str] = []

    # ---- student and composite configs (checked before any weight is read)
    student_cfg = load_student_config(student_config)
    if student_cfg.hidden_size > teacher_width:
        raise ConversionError(
            f"the student is wider than the InternViT teacher (hidden_size {student_cfg.hidden_size} > {teacher_width}); "
            f"clipping can only shrink: choose a student with hidden_size <= {teacher_width}"
        )
    if student_cfg.intermediate_size > int(vision_src.intermediate_size):
        raise ConversionError(
            f"the student's intermediate_size {student_cfg.intermediate_size} exceeds the teacher's {vision_src.intermediate_size}"
        )
    if student_cfg.out_hidden_size not in (None, teacher_width):
        notes.append(f"student out_hidden_size {student_cfg.out_hidden_size} -> {teacher_width} (the teacher's width, "
                     "which the InternVL projector reads)")
    student_cfg.out_hidden_size = teacher_width
    if src_cfg.vision_feature_select_strategy != "default":
        raise ConversionError(
            f"vision_feature_select_strategy={src_cfg.vision_feature_select_strategy!r}: LiteFrame feeds patch tokens "
            "only (InternVL3's 'default' strategy)"
        )
    feature_layer = src_cfg.vision_feature_layer
    if isinstance(feature_layer, (list, tuple)):
        raise ConversionError(f"vision_feature_layer={feature_layer}: multi-layer features are not supported")
    feature_layer = None if feature_layer == -1 else int(feature_layer)
    if feature_layer is not None:
        notes.append(f"the projector reads InternViT layer {feature_layer}: the student head is fit to that layer's features")
    # transformers does not tie a checkpoint that holds its own lm_head (it warns and keeps both), so the
    # checkpoint, not the config flag, decides: the converted model then computes what the source computes.
    has_lm_head = any(internvl_to_liteframe_key(k) == "lm_head.weight" for k in source.location)
    tie = bool(src_cfg.tie_word_embeddings) and not has_lm_head
    if bool(src_cfg.tie_word_embeddings) and has_lm_head:
        notes.append("the source config says tie_word_embeddings but the checkpoint has its own lm_head.weight "
                      "(transformers does not tie it): written untied")
    config = LiteFrameConfig(
        vision_config=student_cfg.to_dict(),
        text_config=src_cfg.text_config.to_dict(),
        video_token_id=int(src_cfg.image_token_id),
        pixel_shuffle_ratio=float(src_cfg.downsample_ratio),
        projector_hidden_act=src_cfg.projector_hidden_act,
        tie_word_embeddings=tie,
    )

    # ---- map source tensors to our names, and check them against the model we will load into
    vision_keys, copy_plan, unknown = {}, [], []
    for key in sorted(source.location, key=lambda k: (source.location[k], k)):
        ours = internvl_to_liteframe_key(key)
        if ours is None:
            unknown.append(key)
        elif ours.startswith(VISION_PREFIX):
            vision_keys[ours[len(VISION_PREFIX):]] = key
        else:
            copy_plan.append((ours, key))
    if unknown:
        raise ConversionError(
            f"{len(unknown)} tensors belong to no known InternVL part (vision_tower / multi_modal_projector / "
            f"language_model / lm_head): {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}"
        )
    expected = _expected_shapes(config)
    _check_plan(expected, copy_plan, source, config)

    # ---- output folder
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConversionError(f"{out} exists and is not empty; pass overwrite=True / --overwrite or choose another --out")
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)

    # ---- the teacher tower (small: loaded whole) and the student
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    say(f"loading the InternViT tower ({len(vision_keys)} tensors) from {source.folder}")
    teacher = _load_vision_tower(source, vision_keys)
    teacher.to(device)
    image_mean, image_std = _image_stats(source.folder)
    student = LiteFrameVisionModel(config.vision_config).to(device)
    say(f"initialising the student ({config.vision_config.hidden_size} wide, {config.vision_config.num_hidden_layers} blocks) "
        f"from the teacher ({teacher_width} wide, {vision_src.num_hidden_layers} blocks); head: {head_init}")
    student_report = init_student_from_teacher(
        student, teacher, layer_map, head_init=head_init, calibration_clips=calibration_clips,
        num_calibration_clips=num_calibration_clips, calibration_size=calibration_size, feature_layer=feature_layer,
        image_mean=image_mean, image_std=image_std,
    )
    del teacher
    student_state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
    del student

    # ---- stream the weights
    plans = []
    for name, tensor in student_state.items():
        out_name = VISION_PREFIX + name
        plans.append(TensorPlan(out_name, out_dtype or _vision_dtype(source, vision_keys), tuple(tensor.shape),
                                (lambda t=tensor: t)))
    for ours, key in copy_plan:
        reader = source.files[source.location[key]]
        src_dtype = reader.dtype(key)
        target = out_dtype if (out_dtype is not None and src_dtype.is_floating_point) else src_dtype
        plans.append(TensorPlan(ours, target, reader.shape(key), (lambda r=reader, k=key: r.read(k))))
    missing = sorted(set(expected) - {p.name for p in plans} - _tied_keys(config))
    if missing:  # a bug in the student's names or in the plan: fail before writing
        raise ConversionError(f"internal: the output would miss {missing[:5]}")
    say(f"writing {len(plans)} tensors to {out} (max shard size {max_shard_size})")
    index = write_safetensors_shards(plans, out, max_shard_size, progress=progress)
    del student_state, plans

    # ---- config, code, generation config, tokenizer / processor
    source_dtype = _vision_dtype(source, vision_keys)
    config.dtype = out_dtype or source_dtype
    if out_dtype is not None and out_dtype != source_dtype:
        notes.append(f"weights cast from the source's {str(source_dtype).replace('torch.', '')} to "
                     f"{str(out_dtype).replace('torch.', '')} (dtype={dtype!r})")
    else:
        notes.append(f"weights kept in the source's dtype ({str(source_dtype).replace('torch.', '')})")
    _write_config_and_code(config, out)
    if (source.folder / "generation_config.json").is_file():
        GenerationConfig.from_pretrained(source.folder).save_pretrained(out)
    else:
        GenerationConfig.from_model_config(config).save_pretrained(out)
    processor_note = _write_processor(source.folder, config, out, image_mean, image_std, notes)
    from .hub import write_pipeline_entry

    write_pipeline_entry(out, notes)  # the same auto_map + video-text-to-text entry a pushed folder carries
    report = ConversionReport(
        out_dir=str(out),
        source=str(source.folder),
        student=student_report,
        dtype=str(config.dtype).replace("torch.", ""),
        tensors_copied=len(copy_plan),
        bytes_written=int(index["metadata"]["total_size"]),
        shards=len(set(index["weight_map"].values())),
        tokens_per_clip=config.tokens_per_clip(),
        processor=processor_note,
        seconds=time.perf_counter() - start,
        notes=notes,
    )
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _expected_shapes(config: LiteFrameConfig) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the model the output must load into (built on the meta device: free)."""
    with torch.device("meta"):
        model = LiteFrameForConditionalGeneration(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _tied_keys(config: LiteFrameConfig) -> set[str]:
    return set(LiteFrameForConditionalGeneration._tied_weights_keys) if config.tie_word_embeddings else set()


def _check_plan(expected: dict, copy_plan: list, source: _Source, config: LiteFrameConfig) -> None:
    shapes = {ours: source.files[source.location[key]].shape(key) for ours, key in copy_plan}
    wanted = {k: v for k, v in expected.items() if not k.startswith(VISION_PREFIX) and k not in _tied_keys(config)}
    missing = sorted(set(wanted) - set(shapes))
    extra = sorted(set(shapes) - set(wanted))
    wrong = sorted(k for k in set(wanted) & set(shapes) if tuple(wanted[k]) != tuple(shapes[k]))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})")
        if extra:
            parts.append(f"{len(extra)} unexpected tensors ({', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''})")
        if wrong:
            parts.append("shape mismatches: " + ", ".join(f"{k} {shapes[k]} vs {wanted[k]}" for k in wrong[:4]))
        raise ConversionError(
            f"the projector / LLM tensors of {source.folder} do not fit the LiteFrame model built from its config: "
            + "; ".join(parts)
        )


def _load_vision_tower(source: _Source, vision_keys: dict[str, str]):
    """InternVLVisionModel (float32, eval) from the source's vision tensors only."""
    from transformers import InternVLVisionModel

    if not vision_keys:
        raise ConversionError(f"{source.folder} has no vision tower tensors (vision_tower.* / model.vision_tower.*)")
    with torch.device("meta"):
        tower = InternVLVisionModel(source.config.vision_config)
    expected = set(tower.state_dict())
    missing, extra = sorted(expected - set(vision_keys)), sorted(set(vision_keys) - expected)
    if missing or extra:
        raise ConversionError(
            f"the vision tower of {source.folder} does not match its vision_config: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
        )
    state = {name: source.files[source.location[key]].read(key).float() for name, key in vision_keys.items()}
    tower.load_state_dict(state, strict=True, assign=True)
    return tower.eval()


def _vision_dtype(source: _Source, vision_keys: dict[str, str]) -> torch.dtype:
    key = next(iter(vision_keys.values()))
    return source.files[source.location[key]].dtype(key)


def _image_stats(folder: Path) -> tuple[list[float] | None, list[float] | None]:
    """The checkpoint's pixel normalisation (InternVL: ImageNet mean/std), from its image/video processor files."""
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        for block in (data, data.get("image_processor", {}), data.get("video_processor", {})):
            if isinstance(block, dict) and block.get("image_mean") and block.get("image_std"):
                return list(block["image_mean"]), list(block["image_std"])
    return None, None


def _write_config_and_code(config: LiteFrameConfig, out: Path) -> None:
    """config.json with auto_map + the remote-code files, as `LiteFrameForConditionalGeneration.save_pretrained`
    writes them (the model itself is only instantiated on the meta device)."""
    from transformers.dynamic_module_utils import custom_object_save

    with torch.device("meta"):
        model = LiteFrameForConditionalGeneration(config)
    if getattr(model, "_auto_class", None) is not None:  # set on `import liteframe_hf`
        custom_object_save(model, out, config=config)
        config.auto_map = {**(config.auto_map or {}), "AutoModel": f"modeling_liteframe.{type(model).__name__}"}
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)


def _write_processor(folder: Path, config: LiteFrameConfig, out: Path, image_mean, image_std, notes: list[str]) -> str:
    """A LiteFrameProcessor (tokenizer + video processor) from the source's tokenizer. Returns a note."""
    from transformers import AutoTokenizer

    from .modeling.processing_liteframe import LiteFrameProcessor
    from .modeling.video_processing_liteframe import LiteFrameVideoProcessor

    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        notes.append(f"{folder} has no tokenizer files: add a tokenizer (and processor) to {out} before use")
        return "none (no tokenizer in the source)"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for cls, auto in ((LiteFrameProcessor, "AutoProcessor"), (LiteFrameVideoProcessor, "AutoVideoProcessor")):
        if getattr(cls, "_auto_class", None) is None:  # remote code: save writes auto_map and copies the files
            cls.register_for_auto_class(auto)
    template = _source_chat_template(folder)
    if template is not None and "video" not in template:
        notes.append("the source chat template has no video content type: wrote LiteFrame's (ChatML + <video>) instead")
        template = None
    normalisation = {"image_mean": image_mean, "image_std": image_std} if image_mean and image_std else {}
    processor = LiteFrameProcessor.for_model(tokenizer, config, chat_template=template, **normalisation)
    processor.save_pretrained(out)
    origin = "the source's chat template" if template is not None else "LiteFrame's chat template"
    return (f"LiteFrameProcessor (tokens_per_clip={config.tokens_per_clip()}, {config.vision_config.image_size} px, "
            f"{origin})")


def _source_chat_template(folder: Path) -> str | None:
    """The processor chat template of an InternVL3-*-hf folder (chat_template.jinja, chat_template.json or
    processor_config.json), or None. InternVL's handles {"type": "video"} items with the same <video> marker."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    for name in ("chat_template.json", "processor_config.json"):
        if (folder / name).is_file():
            template = json.loads((folder / name).read_text()).get("chat_template")
            if isinstance(template, str):
                return template
    return None


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--internvl", required=True, help="InternVL3-*-hf checkpoint folder (transformers layout)")
    parser.add_argument("--out", required=True, help="output folder for the LiteFrame checkpoint")
    parser.add_argument("--student-config", default=None,
                        help=f"variant ({', '.join(sorted(VISION_VARIANTS))}) or a .json/.yaml file (default liteframe-b)")
    parser.add_argument("--layer-map", default="even",
                        help="teacher block per student block: 'even' (default), 'first' or e.g. 0,2,4,...")
    parser.add_argument("--dtype", default="auto", choices=sorted(DTYPES),
                        help="dtype of the written weights (default auto: the source's dtype)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest output shard (default 5GB)")
    parser.add_argument("--head-init", default="lstsq", choices=["lstsq", "slice"],
                        help="student head: ridge fit to the teacher's WAP targets (default) or the [I; 0] slice")
    parser.add_argument("--calibration-clips", type=int, default=8,
                        help="synthetic 4-frame clips for the head fit (default 8)")
    parser.add_argument("--calibration-videos", nargs="+", default=None,
                        help="real videos whose clips calibrate the head fit instead of synthetic ones")
    parser.add_argument("--calibration-size", type=int, default=None,
                        help="frame size of the calibration clips (default: the student's image size; smaller is faster)")
    parser.add_argument("--device", default=None, help="device for the head fit (default: cuda if available)")
    parser.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --out")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def main(args: argparse.Namespace) -> int:
    """`liteframe convert`: InternVL3-*-hf -> LiteFrame checkpoint."""
    calibration = None
    try:
        if args.calibration_videos:
            student_cfg = load_student_config(args.student_config)
            size = args.calibration_size or student_cfg.image_size
            mean, std = _image_stats(Path(args.internvl))
            calibration = _video_calibration_clips(args.calibration_videos, args.calibration_clips, student_cfg.clip_len,
                                                   size, mean, std)
        report = convert_internvl(
            args.internvl, args.out, student_config=args.student_config, layer_map=args.layer_map, dtype=args.dtype,
            max_shard_size=args.max_shard_size, head_init=args.head_init, calibration_clips=calibration,
            num_calibration_clips=args.calibration_clips, calibration_size=args.calibration_size, device=args.device,
            overwrite=args.overwrite, progress=not args.quiet,
        )
    except ConversionError as e:
        print(f"liteframe convert: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _video_calibration_clips(paths: Iterable[str], num_clips: int, clip_len: int, size: int, mean, std) -> torch.Tensor:
    """`num_clips` clips spread over the given videos, decoded with LiteFrame's clip sampler, normalised."""
    from .modeling.video_decoding_liteframe import load_video_clips
    from .student_init import IMAGENET_MEAN, IMAGENET_STD

    paths = list(paths)
    per_video = max(1, -(-num_clips // len(paths)))
    mean = torch.tensor(mean or IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(std or IMAGENET_STD).view(1, 3, 1, 1)
    clips = []
    for path in paths:
        frames = load_video_clips(path, num_frames=per_video * clip_len, clip_len=clip_len, size=(size, size)).frames
        frames = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
        clips.append(((frames - mean) / std).reshape(-1, clip_len, 3, size, size))
    return torch.cat(clips)[:num_clips]
