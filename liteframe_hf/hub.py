"""Hub publishing (`liteframe push`): a LiteFrame checkpoint folder -> a Hub repo that loads with plain transformers.

`prepare_hub_folder` writes what a Hub user needs (`save_pretrained` of the model and processor, or PEFT's for a
LoRA adapter), plus a model card; `validate_hub_folder` checks it, also in a fresh Python process where `liteframe_hf`
cannot be imported; `push_to_hub` uploads exactly that folder with `create_repo` + `upload_folder`. `--dry-run
OUT_DIR` stops after validation and prints each check with what it found.

Three kinds of repo, each with its card template in `model_cards/`: a model (LiteFrameForConditionalGeneration, with
auto_map, the `video-text-to-text` custom_pipelines entry and the processor), a vision encoder (LiteFrameVisionModel,
the CTD student, with its video processor) and an LMA adapter (PEFT LoRA, pointing at its base model's Hub repo).
Cards carry measured numbers only, from the JSON files given with `--card-data`; otherwise they say "not measured".
The cards use our own Jinja environment: `ModelCard.from_template` renders one template string with no includes, no
whitespace trimming and no error on an undefined value. The result is a `huggingface_hub.ModelCard`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from tqdm import tqdm
from transformers.dynamic_module_utils import custom_object_save, get_relative_import_files
from transformers.video_processing_utils import BaseVideoProcessor

from . import __version__
from .modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from .modeling.pipeline_liteframe import VideoTextToTextPipeline
from .modeling.processing_liteframe import LiteFrameProcessor
from .modeling.video_processing_liteframe import LiteFrameVideoProcessor
from .profile import paper_flops

logger = logging.getLogger(__name__)

TEMPLATES = {"model": "liteframe_model.md", "vision": "liteframe_vision.md", "adapter": "liteframe_adapter.md"}
PIPELINE_TASK = "video-text-to-text"
# auto_map keys each kind must carry in config.json (processor keys are added when a processor is shipped).
REQUIRED_AUTO_KEYS = {"model": ("AutoConfig", "AutoModel", "AutoModelForImageTextToText"),
                      "vision": ("AutoConfig", "AutoModel")}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
PAPER = "LiteFrame: Efficient Vision Encoders Unlock Frame Scaling in Video LLMs (Kim et al., arXiv 2605.17260)"
PAPER_URL = "https://arxiv.org/abs/2605.17260"
# Text that must never reach a published card: unrendered Jinja, or an author's unfinished note.
PLACEHOLDER = re.compile(r"\{\{|\{%|\{#|\bTODO\b|\bTBD\b|\bFIXME\b|\bORG/NAME\b|<your[ _-]", re.IGNORECASE)
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
EXAMPLE_FRAMES = (64, 256, 512)  # token counts shown in the architecture table (the paper's frame budgets)
NOT_MEASURED = "not measured"


class HubPublishError(RuntimeError):
    """Publishing cannot go on; the message says what to do."""


class HubFolderError(HubPublishError):
    """A prepared folder is not what a Hub user could load; the message lists every problem."""


@dataclass
class Check:
    """One check of a prepared folder: what was checked, what it found (when it passed), what is wrong."""

    name: str
    detail: str = ""
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.problems:
            return "\n".join([f"FAIL {self.name}"] + [f"       - {p}" for p in self.problems])
        return f"ok   {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class HubFolder:
    """A folder ready to upload: `files` maps each path (relative, POSIX) to its size in bytes."""

    path: Path
    kind: str
    files: dict[str, int]
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # what was checked, in order


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")  # transformers' config.json formatting


def _list_files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------- card data (JSON)
@dataclass
class ResultTable:
    """One measured table for the card, read from a benchmark or evaluation JSON file."""

    kind: str  # "latency" or "accuracy"
    title: str
    source: str  # file name the numbers came from
    provenance: str  # device, dtype, frames, ... as recorded in the file
    headers: list[str]
    rows: list[list[str]]
    marked: bool = False  # a row is marked as this checkpoint's architecture
    note: str = ""  # shown under the table

    @property
    def markdown(self) -> str:
        lines = [self.headers, ["---"] * len(self.headers), *self.rows]
        return "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines)


# Column titles that the key's name does not say; other keys lose `_` and get their unit from the suffix.
COLUMN_TITLES = {"tflops": "TFLOPs (paper rule)", "paper_tflops": "paper TFLOPs",
                 "paper_latency_ms": "paper latency (ms, A100)", "ci95_pct": "95 % CI (%)"}
UNITS = (("_acc_pct", "%"), ("_pct", "%"), ("_ms", "ms"), ("_mb", "MB"), ("_m", "M"))
# Fields of `liteframe bench` / `liteframe eval` / lmms-eval files that are not provenance (rows, local paths, ...).
NOT_PROVENANCE = {"rows", "results", "kind", "title", "configs", "config", "versions", "n-shot", "higher_is_better",
                  "label", "model_path", "data", "prompt", "latency_protocol"}


def _format_value(value: Any, missing: str = NOT_MEASURED) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):  # small values (a micro encoder's TFLOPs) keep two significant digits
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2g}"
    return "x".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _column_title(key: str) -> str:
    suffix, unit = next(((s, u) for s, u in UNITS if key.endswith(s)), ("", ""))
    title = key[: len(key) - len(suffix)].replace("_", " ") + (f" ({unit})" if unit else "")
    return COLUMN_TITLES.get(key, title)


def _table_from_rows(path: Path, payload: dict, rows: list[dict], kind: str) -> ResultTable:
    keys = list(dict.fromkeys(k for row in rows for k in row))

    def fits_a_cell(value: Any) -> bool:  # scalars and short lists of scalars, not nested results
        if isinstance(value, (list, tuple)):
            return len(value) <= 4 and all(isinstance(v, (int, float, str)) for v in value)
        return not isinstance(value, dict)

    # Left out: paper columns without any paper figure, and nested values. Our own columns stay even when empty,
    # so an unmeasured latency reads "not measured".
    keys = [k for k in keys if all(fits_a_cell(row.get(k)) for row in rows)
            and not (k.startswith("paper_") and all(row.get(k) is None for row in rows))]
    if "title" in payload:
        title = str(payload["title"])
    elif {"variant", "tflops"} <= set(keys):
        title = "Encoder architectures (`liteframe bench arch`)"
    elif {"method", "encode_ms", "prefill_ms"} <= set(keys):
        title = "End-to-end latency: video encoding + LLM prefill (`liteframe bench e2e`)"
    else:
        title = path.stem.replace("_", " ")
    provenance = ", ".join(f"{k}: {_format_value(v)}" for k, v in payload.items()
                           if k not in NOT_PROVENANCE and not isinstance(v, (dict, list)))
    # A paper column without a paper figure for that row is "n/a", not an unmeasured value of ours.
    rows = [[_format_value(row.get(k), "n/a" if k.startswith("paper_") else NOT_MEASURED) for k in keys] for row in rows]
    return ResultTable(kind, title, path.name, provenance, [_column_title(k) for k in keys], rows)


def _harness_rows(path: Path, results: dict) -> list[dict]:
    """lmms-eval / lm-evaluation-harness `results`: {task: {"metric,filter": value, "alias": ...}} -> rows."""
    rows = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict):
            raise HubPublishError(f"card data file {str(path)!r}: results[{task!r}] is not a dict of metrics")
        for name, value in metrics.items():
            if name != "alias" and "stderr" not in name and isinstance(value, (int, float)):
                metric, _, filt = name.partition(",")
                rows.append({"benchmark": metrics.get("alias", task),
                             "metric": metric if filt in ("", "none") else name, "value": value})
    return rows


def load_card_data(paths: Iterable[str | os.PathLike]) -> list[ResultTable]:
    """Read benchmark / evaluation JSON files into card tables; numbers are copied, never derived, and a missing
    value (null) shows as "not measured". Accepted: `{"rows": [{...}, ...], <provenance fields>}` as `liteframe bench
    ... --json` and `liteframe eval --json` write (rows with a `*_ms` field are latency, with an `accuracy` / `*_acc` /
    `score` field accuracy; `"kind": "latency" | "accuracy"` forces it), and lmms-eval / lm-evaluation-harness output
    `{"results": {task: {"metric,filter": value}}}` (accuracy)."""
    tables = []
    for path in map(Path, paths):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise HubPublishError(f"card data file {str(path)!r} could not be read as JSON: {error}") from error
        if not isinstance(payload, dict):
            raise HubPublishError(f"card data file {str(path)!r} must hold a JSON object, got {type(payload).__name__}")
        kind, rows = payload.get("kind"), payload.get("rows")
        if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
            rows = []
        if not rows and isinstance(payload.get("results"), dict):
            rows, kind = _harness_rows(path, payload["results"]), kind or "accuracy"
        keys = {k.lower() for row in rows for k in row}
        if kind is None:
            kind = "latency" if any(k.endswith("_ms") for k in keys) else "accuracy" if any(
                k.startswith(a) or k.endswith("_" + a) for k in keys for a in ("acc", "score")) else None
        if not rows or kind not in ("latency", "accuracy"):
            raise HubPublishError(
                f"card data file {str(path)!r} is not a benchmark or evaluation JSON this card understands: expected "
                "`liteframe bench ... --json` output ({'rows': [...]} with *_ms latency fields), an accuracy file "
                "({'rows': [{'benchmark': ..., 'accuracy': ...}]}), or lmms-eval output ({'results': {...}}); "
                "add \"kind\": \"latency\" or \"accuracy\" to force one."
            )
        tables.append(_table_from_rows(path, payload, rows, kind))
    return tables


def _mark_checkpoint_row(table: ResultTable, variant: str) -> None:
    """Mark the row that measured this checkpoint's encoder architecture, or say in the table's note that none did
    (a `liteframe bench arch` file of the paper's variants does not hold a micro or custom encoder)."""
    if "variant" not in table.headers:
        return
    column = table.headers.index("variant")
    names = {"liteframe-b", "dwtempconv"} if variant in ("liteframe-b", "dwtempconv") else {variant}
    for row in table.rows:
        if row[column] in names:
            row[column] += " (this checkpoint)"
            table.marked = True
    if not table.marked:
        how = (f"`liteframe bench arch --variants {variant} --json FILE` measures it; publish again with "
               "`--card-data FILE`" if variant != "custom" else "its architecture matches no named variant")
        table.note = (f"This checkpoint's encoder ({variant}) is not among these rows, which measure other "
                      f"architectures for comparison: {how}.")


# ---------------------------------------------------------------------------------------------- sources
def _load_processor(folder: Path):
    """The processor saved next to a checkpoint: the LiteFrameProcessor, the video processor alone (an encoder
    folder), or the tokenizer alone; None when the folder has none of them."""
    from transformers import AutoProcessor, AutoTokenizer

    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
    if (folder / "processor_config.json").is_file():
        try:  # resolves to our class (`import liteframe_hf` registered it), checked against the config.json beside it
            return AutoProcessor.from_pretrained(folder)
        except ValueError as error:
            raise HubPublishError(f"the processor in {folder} does not fit its model: {error}") from error
    if (folder / "video_preprocessor_config.json").is_file() and not has_tokenizer:
        return LiteFrameVideoProcessor.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder) if has_tokenizer else None


def _video_processor_of(processor: Any, encoder: Any, folder: Path | None, notes: list[str]):
    """What an encoder repo ships: the video processor alone (the encoder reads no text). A CTD student folder has
    none, so it is built from the encoder's config (frame size, clip_len) and the pixel normalisation of the training
    run that wrote the folder (its `config.yaml` one level up), else ImageNet's, which every recipe uses: the encoder
    is only usable on frames prepared the way it was trained."""
    if isinstance(processor, BaseVideoProcessor):
        return processor
    if getattr(processor, "video_processor", None) is not None:
        return processor.video_processor
    if processor is not None:
        notes.append(f"the {type(processor).__name__} is not published with the vision encoder (it reads no text).")
    v, stats, source = encoder.config, {}, "ImageNet mean/std (the training recipes' default)"
    run_config = folder.parent / "config.yaml" if folder is not None else None
    if run_config is not None and run_config.is_file():
        import yaml

        recorded = yaml.safe_load(run_config.read_text()) or {}
        stats = {k: recorded[k] for k in ("image_mean", "image_std") if isinstance(recorded.get(k), list)}
        source = f"image_mean / image_std of {run_config}" if stats else source
    notes.append(f"built the encoder's video processor from its config ({v.image_size} px frames, clip_len "
                 f"{v.clip_len}) and {source}; pass --processor DIR to publish another.")
    return LiteFrameVideoProcessor(size={"height": v.image_size, "width": v.image_size}, clip_len=v.clip_len, **stats)


def _load_source(model: Any, processor: Any, vision_only: bool, build_processor: bool,
                 notes: list[str]) -> tuple[str, Any, Any]:
    """(kind, model, processor) to publish; the model is a PeftModel or the folder (a Path) for an adapter."""
    from peft import PeftModel

    folder = None  # the checkpoint folder, when the model comes from one
    if isinstance(model, (str, os.PathLike)) and (Path(model) / "adapter_config.json").is_file():
        model = Path(model)  # an adapter folder is published as it is
    elif isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise HubPublishError(f"{str(folder)!r} is not a checkpoint folder (no config.json or adapter_config.json):"
                                  " pass a folder written by save_pretrained (a LiteFrame model, its vision encoder, or "
                                  "a PEFT LoRA adapter).")
        model_type = _read_json(folder / "config.json").get("model_type")
        model_class = {"liteframe": LiteFrameForConditionalGeneration, "liteframe_vision": LiteFrameVisionModel}.get(
            model_type)
        if model_class is None:
            raise HubPublishError(
                f"{str(folder)!r} holds a {model_type!r} model, not a LiteFrame one (model_type 'liteframe' or "
                "'liteframe_vision'); `liteframe push` publishes LiteFrame models and their LoRA adapters.")
        model = model_class.from_pretrained(folder, dtype="auto")
        processor = _load_processor(folder) if processor is None else processor
    if isinstance(processor, (str, os.PathLike)):
        processor_dir, processor = processor, _load_processor(Path(processor))
        if processor is None:
            raise HubPublishError(f"processor folder {str(processor_dir)!r} has no processor_config.json or tokenizer "
                                  "files.")

    if isinstance(model, (Path, PeftModel)):
        if processor is not None or vision_only:
            raise HubPublishError("an adapter is published on its own: drop processor / vision_only.")
        base_type = "liteframe" if isinstance(model, Path) else model.get_base_model().config.model_type
        if base_type != "liteframe":
            raise HubPublishError(
                f"this PEFT adapter sits on a {base_type!r} model, not a LiteFrame one (model_type 'liteframe').")
        return "adapter", model, None
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type == "liteframe_vision":
        return "vision", model, _video_processor_of(processor, model, folder, notes)
    if model_type != "liteframe":
        raise HubPublishError(
            f"cannot publish a {type(model).__name__} (model_type {model_type!r}): pass a LiteFrame model, its vision "
            "encoder, a PEFT adapter on a LiteFrame model, or a folder holding one of them.")
    if not hasattr(model, "lm_head"):
        raise HubPublishError(
            f"got a {type(model).__name__}: publish LiteFrameForConditionalGeneration (the model with its LM head).")
    if vision_only:
        return "vision", model.vision_tower, _video_processor_of(processor, model.vision_tower, folder, notes)
    if build_processor and not hasattr(processor, "video_processor"):
        # The video processor's other settings are its class defaults.
        if processor is None:
            raise HubPublishError("build_processor (--build-processor) needs a tokenizer next to the weights (or "
                                  "--processor DIR).")
        processor, v = LiteFrameProcessor.for_model(processor, model.config), model.config.vision_config
        notes.append(
            f"built a LiteFrameProcessor from the tokenizer: {v.image_size} px frames, clip_len {v.clip_len}, "
            f"{model.config.tokens_per_clip()} tokens per clip, other video settings at their defaults (num_frames "
            f"{processor.video_processor.num_frames}); save your own processor next to the weights to choose them.")
    if hasattr(processor, "bind_model_config"):
        try:  # a processor saved for another configuration would write the wrong placeholder count
            processor.bind_model_config(model.config)
        except ValueError as error:
            raise HubPublishError(f"the processor does not fit this model: {error}") from error
    return "model", model, processor


# ----------------------------------------------------------------------------------------- folder writing
# Arguments of one from_pretrained call that transformers stores in tokenizer_config.json (a tokenizer loaded
# offline from a folder gets "local_files_only": true); they describe this machine, not the tokenizer.
LOAD_TIME_KEYS = ("is_local", "local_files_only", "cache_dir", "force_download", "_commit_hash")


def _write_model(kind: str, model: Any, processor: Any, out: Path, max_shard_size: str | int,
                 notes: list[str]) -> None:
    # `import liteframe_hf` marks our classes as remote code (a trust_remote_code copy is marked by transformers),
    # so save_pretrained writes auto_map and copies the code files for the model and the processor alike.
    model.save_pretrained(out, max_shard_size=max_shard_size)
    if isinstance(processor, BaseVideoProcessor):
        # A video processor saved as part of a LiteFrameProcessor keeps its AutoProcessor entry; the encoder repo
        # ships no processing_liteframe.py, so publish a copy without that entry.
        processor = copy.deepcopy(processor)
        processor.auto_map = {k: v for k, v in (getattr(processor, "auto_map", None) or {}).items()
                              if k == "AutoVideoProcessor"}
    if processor is not None:
        processor.save_pretrained(out)
        tokenizer_config = out / "tokenizer_config.json"
        if tokenizer_config.is_file():
            kept = {k: v for k, v in _read_json(tokenizer_config).items() if k not in LOAD_TIME_KEYS}
            tokenizer_config.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
    elif kind == "model":
        notes.append("no processor or tokenizer was given or found next to the weights: the repo loads as a model "
                     "only (AutoProcessor and the video-text-to-text pipeline will not work); pass "
                     "processor=/--processor DIR.")
    if kind == "model":
        write_pipeline_entry(out, notes)
    else:  # AutoVideoProcessor also reads config.json's auto_map
        config = _read_json(out / "config.json")
        _write_json(out / "config.json", {**config, "auto_map": _processor_auto_map(out, config)})


def _auto_maps(path: Path) -> list[dict]:
    """Every auto_map in a JSON file, outermost first (processor_config.json nests the video processor's own)."""
    found: list[dict] = []

    def collect(obj: dict) -> dict:  # json calls this on inner objects first
        if isinstance(obj.get("auto_map"), dict):
            found.insert(0, obj["auto_map"])
        return obj

    json.loads(path.read_text(), object_hook=collect)
    return found


def _processor_auto_map(folder: Path, config: dict) -> dict:
    """config.json's auto_map plus the AutoProcessor / AutoVideoProcessor entries of the saved processor files
    (transformers' Auto classes also look there), for those whose code file is in the folder."""
    auto_map = dict(config.get("auto_map") or {})
    for name in ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json"):
        for saved in _auto_maps(folder / name) if (folder / name).is_file() else []:
            for key, ref in saved.items():
                if key in ("AutoProcessor", "AutoVideoProcessor") and isinstance(ref, str) \
                        and (folder / f"{ref.split('.')[0]}.py").is_file():
                    auto_map.setdefault(key, ref)
    return auto_map


def write_pipeline_entry(folder: str | os.PathLike, notes: list[str] | None = None) -> bool:
    """Write config.json's `custom_pipelines` entry and the processor keys of its auto_map, so that a saved LiteFrame
    video LLM folder works with `pipeline("video-text-to-text", model=folder, trust_remote_code=True)`. Used by every
    script that saves a full model (push, lma.py's merged/, convert, reproduce_micro), after `save_pretrained` of
    the model and processor. Returns whether the entry was written; why not goes to `notes`."""
    folder = Path(folder)
    config = _read_json(folder / "config.json")
    config["auto_map"] = _processor_auto_map(folder, config)
    config.pop("custom_pipelines", None)
    written = "AutoProcessor" in config["auto_map"]
    if written:
        custom_object_save(VideoTextToTextPipeline, folder)
        # "pt" is an Auto class name: transformers resolves it with getattr(transformers, name).
        config["custom_pipelines"] = {PIPELINE_TASK: {"impl": "pipeline_liteframe.VideoTextToTextPipeline",
                                                      "pt": ["AutoModelForImageTextToText"], "type": "multimodal"}}
    elif notes is not None:
        notes.append(f"custom `{PIPELINE_TASK}` pipeline not included: it needs the LiteFrame processor, which is "
                     "not published.")
    _write_json(folder / "config.json", config)
    return written


def _looks_local(name: str) -> bool:
    """A path rather than a Hub repo id (an existing folder, or a name no repo id can have)."""
    return (Path(name).expanduser().exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
            or os.sep in name.replace("/", ""))


def _check_repo_id(repo_id: str, what: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubPublishError(f"{what} {repo_id!r} is not a Hub repo id (ORG/NAME or NAME): {error}") from error
    if _looks_local(repo_id):
        raise HubPublishError(f"{what} {repo_id!r} is a local path; give the Hub repo id (ORG/NAME).")


def _write_adapter(adapter: Any, out: Path, base_model: str | None, notes: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="liteframe-adapter-") as tmp:
        if not isinstance(adapter, Path):  # PEFT writes the adapter "default" into the folder, others into subfolders
            adapter.save_pretrained(tmp, selected_adapters=[adapter.active_adapter])
            adapter = Path(tmp) / ("" if adapter.active_adapter == "default" else adapter.active_adapter)
        missing = [n for n in ADAPTER_FILES if not (adapter / n).is_file()]
        if missing:
            raise HubPublishError(f"adapter folder {str(adapter)!r} lacks {', '.join(missing)}: save the adapter with "
                                  "PeftModel.save_pretrained (safetensors).")
        for file in ADAPTER_FILES:
            shutil.copy2(adapter / file, out / file)
        extra = sorted(p.name for p in adapter.iterdir() if p.name not in ADAPTER_FILES + ("README.md",))
    if extra:
        notes.append(f"not published from the adapter folder (not part of a PEFT adapter): {', '.join(extra)}")

    adapter_config = _read_json(out / "adapter_config.json")
    base_model = base_model or adapter_config.get("base_model_name_or_path")
    if not base_model:
        raise HubPublishError("the adapter does not name its base model: pass base_model='ORG/NAME' (--base-model).")
    if _looks_local(base_model):
        raise HubPublishError(
            f"the adapter's base model is the local folder {base_model!r}: pass base_model='ORG/NAME' (--base-model), "
            "the Hub repo of that base model, so adapter_config.json and the card point users at it.")
    _check_repo_id(base_model, "base model")
    adapter_config["base_model_name_or_path"] = base_model
    _write_json(out / "adapter_config.json", adapter_config)
    return adapter_config


# ------------------------------------------------------------------------------------------- card context
# The encoder config's own fields, less those that only matter for training.
ARCH_FIELDS = [f for f in LiteFrameVisionConfig.__annotations__ if f not in ("attention_dropout", "initializer_range")]
VARIANT_LABELS = {
    "liteframe-b": "LiteFrame-B (DWTempConv, the paper's encoder)",
    "vit-b-12l": "ViT-B-12L (no compression, paper ablation)",
    "tempattn": "TempAttn (paper ablation)",
    "spatiotempattn": "SpatioTempAttn (paper ablation)",
    "tempconv": "TempConv (paper ablation)",
    "liteframe-micro": "liteframe-micro (CPU-sized, for a DINOv2-S teacher)",
    "liteframe-micro-s": "liteframe-micro-s (liteframe-micro's token merging at DINOv2-S's width, its first six blocks)",
    "dinov2-s": "dinov2-s (DINOv2-S/14 per frame, no compression: the micro teacher VLM's tower)",
    "dinov2-s-wap": "dinov2-s-wap (DINOv2-S/14 per frame + post-hoc WAP (4, 2, 2), training-free)",
    "liteframe-tiny": "liteframe-tiny (test-sized)",
}


def detect_variant(vision_config: Any) -> str:
    """Name of the VISION_VARIANTS entry this encoder config matches, or "custom"."""
    for name in VISION_VARIANTS:
        reference = LiteFrameVisionConfig.from_variant(name)
        if all(getattr(vision_config, f, None) == getattr(reference, f) for f in ARCH_FIELDS):
            return name
    return "custom"


def _count(n: int) -> str:
    return f"{n:,} ({n / 1e9:.2f}B)" if n >= 1e9 else f"{n:,} ({n / 1e6:.2f}M)"


def _params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _vision_facts(encoder: Any) -> list[tuple[str, str]]:
    v = encoder.config
    merges = sorted(v.downsample_layers.items(), key=lambda kv: int(kv[0]))
    gflops = paper_flops(encoder, (1, v.clip_len, v.num_channels, v.image_size, v.image_size)) / 1e9
    variant = detect_variant(v)
    return [
        ("encoder variant", VARIANT_LABELS.get(variant, variant)),
        ("frames per clip (`clip_len`)", str(v.clip_len)),
        ("frame size / patch", f"{v.image_size} px / {v.patch_size} px"),
        ("width / depth / heads", f"{v.hidden_size} / {v.num_hidden_layers} / {v.num_attention_heads}"),
        ("temporal mixer", f"`{v.temporal_mixer}` (attention scope `{v.attention_scope}`)"),
        ("token merging (t, h, w)", "; ".join(f"after block {layer}: {tuple(f)}" for layer, f in merges) or "none"),
        ("encoder output per clip (T', H', W', D)", str((*v.output_grid(), v.output_size))),
        ("encoder parameters", _count(_params(encoder))),
        ("encoder compute per clip",
         f"{gflops:.4g} GFLOPs (paper rule: 2 x MACs of Linear/Conv layers; computed, not measured)"),
    ]


def _model_facts(model: Any) -> list[tuple[str, str]]:
    cfg = model.config
    v, text, per_clip = cfg.vision_config, cfg.text_config, cfg.tokens_per_clip()
    per_frame = per_clip / v.clip_len
    per_frame = f"{per_frame:.0f}" if per_frame.is_integer() else f"{per_frame:.2f}"
    lm_params = _params(model.language_model) + (0 if cfg.tie_word_embeddings else _params(model.lm_head))
    return _vision_facts(model.vision_tower) + [
        ("LLM tokens per clip / per frame",
         f"{per_clip} / {per_frame} (pixel shuffle {cfg.pixel_shuffle_ratio})"),
        ("visual tokens at " + " / ".join(map(str, EXAMPLE_FRAMES)) + " frames",
         " / ".join(str(per_clip * (n // v.clip_len)) for n in EXAMPLE_FRAMES)),
        ("projector", f"LayerNorm({cfg.projector_input_size}) -> Linear -> {cfg.projector_hidden_act.upper()} -> "
                      f"Linear({text.hidden_size}); {_count(_params(model.model.multi_modal_projector))}"),
        ("language model", f"{text.model_type}: {text.num_hidden_layers} layers, width {text.hidden_size}, "
                           f"vocab {text.vocab_size}; {_count(lm_params)}"),
        ("total parameters", _count(_params(model))),
        ("video placeholder token id (`video_token_id`)", str(cfg.video_token_id)),
    ]


def _adapter_facts(adapter_config: dict, weights: Path) -> tuple[list[tuple[str, str]], int]:
    from safetensors.torch import load_file

    tensors = load_file(weights)
    # modules_to_save tensors count in the parameters, not as adapted modules
    adapted = {key.split(".lora_")[0] for key in tensors if ".lora_" in key}
    in_lm = sum("language_model" in module for module in adapted)
    targets = adapter_config.get("target_modules")
    facts = [
        ("base model", f"`{adapter_config['base_model_name_or_path']}`"),
        ("PEFT method", str(adapter_config.get("peft_type", "LORA"))),
        ("rank `r` / `lora_alpha` / `lora_dropout`",
         " / ".join(str(adapter_config.get(k)) for k in ("r", "lora_alpha", "lora_dropout"))),
        ("target modules", f"`{targets}`" if isinstance(targets, str) else ", ".join(f"`{t}`" for t in targets or [])),
        ("adapted modules", f"{in_lm} in the language model, {len(adapted) - in_lm} elsewhere"),
        ("modules saved in full (`modules_to_save`)", ", ".join(adapter_config.get("modules_to_save") or []) or "none"),
        ("adapter parameters", f"{_count(sum(t.numel() for t in tensors.values()))} in {len(tensors)} tensors"),
        ("PEFT version", str(adapter_config.get("peft_version", "unknown"))),
    ]
    return facts, len(adapted) - in_lm


def _read_training_configs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    configs = []
    for path in map(Path, paths):
        try:
            text = path.read_text()
        except OSError as error:
            raise HubPublishError(f"training config {str(path)!r} could not be read: {error}") from error
        # the suffix names the fence's language (yaml, json, toml, py, sh: highlighters know them all)
        configs.append({"name": path.name, "language": path.suffix[1:].lower(), "text": text.rstrip()})
    return configs


# ---------------------------------------------------------------------------------------------- rendering
def render_model_card(kind: str, card_data: ModelCardData, context: dict) -> ModelCard:
    """Render `model_cards/<template>` for `kind` with `context`; the result must parse and hold no placeholder."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("liteframe_hf.model_cards", "."),  # the templates ship as package data
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty string
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )
    # A backtick fence longer than any run of backticks inside the text; a literal | ends a table cell.
    env.filters["fence"] = lambda text: "`" * max([3] + [len(m) + 1 for m in re.findall(r"`+", text)])
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|")
    text = env.get_template(TEMPLATES[kind]).render(card_data=card_data.to_yaml(), **context)
    text = re.sub(r"\n{3,}", "\n\n", text)
    problems = card_problems(text)
    if problems:
        raise HubFolderError(f"the rendered {kind} card is not publishable: " + "; ".join(problems))
    return ModelCard(text)


def card_problems(text: str) -> list[str]:
    """What makes a card text unpublishable: placeholders, or YAML metadata that does not parse."""
    problems = []
    for match in PLACEHOLDER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        problems.append(f"placeholder {match.group(0)!r} on line {line}")
    try:
        data = ModelCard(text, ignore_metadata_errors=False).data.to_dict()
    except Exception as error:  # ModelCard raises ValueError / yaml errors on malformed metadata
        return problems + [f"metadata does not parse: {error}"]
    problems += [f"metadata has no {key!r}" for key in ("license", "library_name", "tags") if not data.get(key)]
    if data.get("license") and not LICENSE_ID.match(str(data["license"])):
        problems.append(f"license {data['license']!r} is not a Hub license id (e.g. apache-2.0, mit, other)")
    bases = data.get("base_model") or []
    for base in [bases] if isinstance(bases, str) else bases:
        try:
            validate_repo_id(base)
        except HFValidationError:
            problems.append(f"base_model {base!r} is not a Hub repo id")
    return problems


def _card_data(kind: str, license: str, base_model: Sequence[str], datasets: Sequence[str], tags: Sequence[str],
               language: Sequence[str]) -> ModelCardData:
    default_tags = {
        "model": ["liteframe", "video", "video-text-to-text", "video-llm", "custom_code"],
        "vision": ["liteframe", "video", "vision-encoder", "feature-extraction", "custom_code"],
        "adapter": ["liteframe", "video", "lora", "peft", "lma"],
    }[kind]
    return ModelCardData(
        license=license,
        base_model=list(base_model) or None,
        # The encoder alone answers no pipeline task (it outputs teacher-space tokens): no pipeline_tag for it.
        pipeline_tag=None if kind == "vision" else PIPELINE_TASK,
        library_name="peft" if kind == "adapter" else "transformers",
        tags=list(dict.fromkeys(default_tags + list(tags))),
        datasets=list(datasets) or None,
        language=list(language) or None,
        **({"base_model_relation": "adapter"} if kind == "adapter" else {}),
    )


# ------------------------------------------------------------------------------------------ public API
def prepare_hub_folder(
    model: Any, out_dir: str | os.PathLike, *, repo_id: str | None = None, processor: Any = None,
    vision_only: bool = False, build_processor: bool = False, max_shard_size: str | int = "5GB",
    base_model: str | Sequence[str] | None = None, license: str = "apache-2.0", datasets: Sequence[str] = (),
    tags: Sequence[str] = (), language: Sequence[str] = (), card_data: Sequence[str | os.PathLike] = (),
    training_commands: Sequence[str] = (), training_configs: Sequence[str | os.PathLike] = (),
    example_video: str = "video.mp4", overwrite: bool = False, check_remote_code: bool = True,
) -> HubFolder:
    """Write into `out_dir` exactly what `push_to_hub` uploads, and validate it.

    `model`: a folder written by `save_pretrained` (LiteFrame model, its vision encoder, or a PEFT adapter) or the
    object itself. `vision_only`: publish only the encoder of a full model. `processor`: a processor / tokenizer
    object or folder (default: the one saved next to the weights). `build_processor`: when only a tokenizer is
    found, build the LiteFrameProcessor from it and the model config (AutoProcessor and the pipeline need it).
    `repo_id`: what the card's usage snippets load (the absolute `out_dir` when None). `base_model`: Hub id(s) of
    the model this one derives from (required for an adapter whose adapter_config.json names a local folder).
    `card_data`: see `load_card_data`. `training_commands` / `training_configs`: shown verbatim in the card.
    `check_remote_code`: also load the folder in a fresh process without liteframe_hf (a few seconds).
    """
    out = Path(out_dir)
    if isinstance(model, (str, os.PathLike)) and Path(model).resolve() == out.resolve():
        raise HubPublishError("out_dir must differ from the model folder: the Hub folder is written fresh.")
    if not LICENSE_ID.match(license or ""):
        raise HubPublishError(f"license {license!r} is not a Hub license id (e.g. apache-2.0, mit, other).")
    bases = [base_model] if isinstance(base_model, str) else list(base_model or [])
    for name, what in [(repo_id, "repo id")] + [(base, "base model") for base in bases]:
        if name is not None:
            _check_repo_id(name, what)
    tables = load_card_data(card_data)  # fail on a bad JSON before writing anything
    context: dict[str, Any] = {
        "repo": repo_id or str(out.resolve()), "title": (repo_id or out.resolve().name).split("/")[-1],
        "paper": PAPER, "paper_url": PAPER_URL, "version": __version__, "not_measured": NOT_MEASURED,
        "latency_tables": [t for t in tables if t.kind == "latency"],
        "accuracy_tables": [t for t in tables if t.kind == "accuracy"],
        "training_commands": list(training_commands), "training_configs": _read_training_configs(training_configs),
        "example_video": example_video,
    }

    notes: list[str] = []
    kind, model, processor = _load_source(model, processor, vision_only, build_processor, notes)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise HubPublishError(f"output folder {str(out)!r} exists and is not empty: pick a new folder or pass "
                                  "overwrite=True (--overwrite).")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    if kind == "adapter":
        adapter_config = _write_adapter(model, out, bases[0] if bases else None, notes)
        bases = [adapter_config["base_model_name_or_path"]] + bases[1:]
        facts, vision_modules = _adapter_facts(adapter_config, out / "adapter_model.safetensors")
        context.update(facts=facts, base_model=bases[0], adapter_in_vision=vision_modules > 0,
                       has_modules_to_save=bool(adapter_config.get("modules_to_save")))
    else:
        _write_model(kind, model, processor, out, max_shard_size, notes)
        config = _read_json(out / "config.json")
        encoder = model if kind == "vision" else model.vision_tower
        v, has_video_processor = encoder.config, "AutoVideoProcessor" in config["auto_map"]
        for table in context["latency_tables"]:
            _mark_checkpoint_row(table, detect_variant(v))
        context.update(
            facts=_model_facts(model) if kind == "model" else _vision_facts(encoder),
            dtype=str(model.dtype).removeprefix("torch."), remote_code=sorted(p.name for p in out.glob("*.py")),
            has_processor=(out / "processor_config.json").is_file(), has_pipeline="custom_pipelines" in config,
            has_video_processor=has_video_processor, clip_len=v.clip_len, image_size=v.image_size,
            num_frames=getattr(getattr(processor, "video_processor", processor), "num_frames", None)
            if has_video_processor else None,
            output_shape=(2, *v.output_grid(), v.output_size),
            tokens_per_clip=model.config.tokens_per_clip() if kind == "model" else None,
        )
    for note in notes:
        logger.warning("liteframe push: %s", note)

    metadata = _card_data(kind, license, bases, datasets, tags, language)
    (out / "README.md").write_text(str(render_model_card(kind, metadata, context)), encoding="utf-8")
    rows = "".join(f"; {t.source}: " + ("no row for this checkpoint (the card says so)" if t.note else
                                        "this checkpoint's row marked" if t.marked else "no variant column")
                   for t in context["latency_tables"])
    rendered = Check(f"model card rendered from model_cards/{TEMPLATES[kind]}",
                     f"{len(context['accuracy_tables'])} accuracy and {len(context['latency_tables'])} latency tables"
                     + rows)
    checks = [rendered, *validate_hub_folder(out, fresh_process=check_remote_code)]
    return HubFolder(path=out, kind=kind, files=_list_files(out), notes=notes, checks=checks)


FRESH_PROCESS_CHECK = textwrap.dedent(
    """
    import glob, json, os, shutil, sys, tempfile
    sys.modules["liteframe_hf"] = None  # a Hub user's environment: plain transformers, no liteframe_hf
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText
    folder, kind, load_weights, extra = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
    report = {}
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    report["AutoConfig"] = type(config).__name__
    if kind == "model":
        with torch.device("meta"):
            report["AutoModelForImageTextToText"] = type(
                AutoModelForImageTextToText.from_config(config, trust_remote_code=True)).__name__
    if load_weights:
        model, info = AutoModel.from_pretrained(folder, trust_remote_code=True, output_loading_info=True)
        keys = {k: sorted(map(str, info[k])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
        report["weights_how"] = "AutoModel.from_pretrained"
    else:  # too big to load here: the file headers against the model the remote code builds (meta device)
        from safetensors import safe_open
        with torch.device("meta"):
            model = AutoModel.from_config(config, trust_remote_code=True)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        tied = set(getattr(model, "all_tied_weights_keys", None) or {})
        saved = {}
        for path in glob.glob(os.path.join(folder, "*.safetensors")):
            with safe_open(path, framework="pt") as handle:
                saved.update({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()})
        keys = {"missing_keys": sorted(set(expected) - set(saved) - tied),
                "unexpected_keys": sorted(set(saved) - set(expected)),
                "mismatched_keys": sorted(k for k in set(saved) & set(expected) if saved[k] != expected[k])}
        report["weights_how"] = "safetensors headers vs. the meta-device model"
    report["AutoModel"], report["weights"], report["tensors"] = type(model).__name__, keys, len(model.state_dict())

    def state(p):  # what a processor round trip must keep
        video = getattr(p, "video_processor", p if hasattr(p, "clip_len") else None)
        tokenizer = getattr(p, "tokenizer", p if hasattr(p, "get_vocab") else None)
        return json.dumps({
            "video": video and {k: v for k, v in video.to_dict().items() if k not in ("auto_map", "processor_class")},
            "vocab": tokenizer and tokenizer.get_vocab(), "chat_template": getattr(p, "chat_template", None),
            "tokens_per_clip": getattr(p, "tokens_per_clip", None)}, sort_keys=True, default=str)

    for auto_class in extra:  # AutoProcessor / AutoVideoProcessor / AutoTokenizer: load, save, load again
        cls = getattr(transformers, auto_class)
        loaded = cls.from_pretrained(folder, trust_remote_code=True)
        with tempfile.TemporaryDirectory() as tmp:
            loaded.save_pretrained(tmp)
            shutil.copy(os.path.join(folder, "config.json"), tmp)
            again = cls.from_pretrained(tmp, trust_remote_code=True)
        # the class is compared by name: each folder gets its own transformers_modules copy of the code
        report[auto_class] = [type(loaded).__name__, type(again).__name__ == type(loaded).__name__ and state(again) == state(loaded)]
    print("LITEFRAME_CHECK " + json.dumps(report))
    """
)
# Above this size the fresh process compares the safetensors headers with the model instead of loading the weights.
FRESH_LOAD_MAX_BYTES = 2 << 30


def _fresh_process_checks(folder: Path, kind: str, auto_classes: list[str]) -> list[Check]:
    load = sum(p.stat().st_size for p in folder.glob("*.safetensors")) <= FRESH_LOAD_MAX_BYTES
    with tempfile.TemporaryDirectory(prefix="liteframe-modules-") as modules:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": modules, "TOKENIZERS_PARALLELISM": "false"}
        result = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS_CHECK, str(folder.resolve()), kind, "1" if load else "0", *auto_classes],
            capture_output=True, text=True, env=env, cwd=modules, timeout=600,
        )
    name = "fresh process without liteframe_hf"  # a Hub user: plain transformers, trust_remote_code=True
    line = next((l for l in result.stdout.splitlines() if l.startswith("LITEFRAME_CHECK ")), None)
    if result.returncode != 0 or line is None:
        return [Check(name, problems=["the folder does not load: " + result.stderr.strip()[-2000:]])]
    report = json.loads(line.split(" ", 1)[1])
    expected = "LiteFrameForConditionalGeneration" if kind == "model" else "LiteFrameVisionModel"
    loads = Check(f"{name}: config and model classes", ", ".join(
        f"{k} -> {report[k]}" for k in ("AutoConfig", "AutoModel", "AutoModelForImageTextToText") if k in report))
    if report["AutoModel"] != expected:
        loads.problems.append(f"AutoModel loads {report['AutoModel']!r} from the folder, expected {expected!r}")
    weights = Check(f"{name}: weights", f"all {report['tensors']} tensors match ({report['weights_how']})")
    weights.problems += [f"{what.replace('_', ' ')}: {', '.join(keys[:10])}" + (" ..." if len(keys) > 10 else "")
                         for what, keys in report["weights"].items() if keys]
    checks = [loads, weights]
    for auto_class in auto_classes:
        class_name, same = report[auto_class]
        checks.append(Check(f"{name}: {auto_class} round trip (load, save_pretrained, load again)",
                            f"{class_name}, same settings", [] if same else [f"{class_name} changed in the round trip"]))
    return checks


def validate_hub_folder(folder: str | os.PathLike, *, for_upload: bool = False,
                        fresh_process: bool = True) -> list[Check]:
    """Check a folder before upload; return the checks run (each prints what it found), or raise HubFolderError
    listing every problem. `fresh_process`: also load config, model weights (up to FRESH_LOAD_MAX_BYTES; above it
    the file headers are compared with the model) and a processor round trip in a process where liteframe_hf cannot
    be imported. `for_upload`: no local paths in the files users see."""
    folder = Path(folder)
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    kind = "adapter" if (folder / "adapter_config.json").is_file() else \
        {"liteframe": "model", "liteframe_vision": "vision"}.get(config.get("model_type"))
    if kind is None:
        raise HubFolderError(f"{folder} holds neither a LiteFrame config.json nor an adapter_config.json.")
    checks: list[Check] = []

    def check(name: str, detail: str = "") -> Check:
        checks.append(Check(name, detail))
        return checks[-1]

    card = check("model card README.md: metadata parses, required fields, no placeholder left")
    local = str(folder.resolve())
    if not (folder / "README.md").is_file():
        card.problems.append("README.md (the model card) is missing")
    else:
        card_text = (folder / "README.md").read_text(encoding="utf-8")
        card.problems += [f"README.md: {p}" for p in card_problems(card_text)]
        if for_upload and local in card_text:
            card.problems.append("README.md: usage snippets point at the local folder; render the card with repo_id")
    json_paths = sorted(folder.glob("*.json"))
    json_files, refs = check("JSON files parse", f"{len(json_paths)} files"), []
    for path in json_paths:
        try:
            auto_maps = _auto_maps(path)
        except ValueError as error:
            json_files.problems.append(f"{path.name} is not valid JSON: {error}")
            continue
        for values in [m.values() for m in auto_maps]:  # "module.Class", or a list of them (a tokenizer's)
            refs += [(path.name, r) for v in values for r in (v if isinstance(v, list) else [v]) if isinstance(r, str)]
    if for_upload:
        check("no local paths in the JSON files").problems += [
            f"{p.name} contains the local path {local}" for p in json_paths if local in p.read_text()]

    if kind == "adapter":
        from peft import PeftConfig

        peft = check("adapter_config.json loads with peft and names a Hub base model")
        peft.problems += [f"{name} is missing" for name in ADAPTER_FILES if not (folder / name).is_file()]
        if not peft.problems:
            try:
                peft_config = PeftConfig.from_pretrained(str(folder))
            except Exception as error:  # peft raises several types for a bad config
                peft.problems.append(f"adapter_config.json does not load with peft: {error}")
            else:
                base = peft_config.base_model_name_or_path or ""
                peft.detail = f"{peft_config.peft_type} on {base}"
                if not base or _looks_local(base):
                    peft.problems.append(f"adapter_config.json names the base model {base!r}, not a Hub repo id")
        return _raise_on_problems(folder, checks)

    config_class = LiteFrameConfig if kind == "model" else LiteFrameVisionConfig
    loads = check(f"config.json loads as {config_class.__name__}")
    try:
        config_class.from_pretrained(folder)
    except Exception as error:  # strict dataclass validation raises several types
        loads.problems.append(f"config.json does not load: {error}")
    auto_map, pipelines = config.get("auto_map") or {}, config.get("custom_pipelines") or {}
    code = check("auto_map and custom_pipelines entries point at classes defined in this folder",
                 "auto_map " + ", ".join(sorted(auto_map)) + "; custom_pipelines "
                 + (", ".join(f"{task} -> {info.get('impl')}" for task, info in pipelines.items()) or "none"))
    code.problems += [f"config.json auto_map has no {key!r}" for key in REQUIRED_AUTO_KEYS[kind] if key not in auto_map]
    for source, ref in refs + [("config.json custom_pipelines", info.get("impl", "")) for info in pipelines.values()]:
        module, _, class_name = ref.rpartition(".")
        path = folder / f"{module}.py"
        if "--" in ref:
            code.problems.append(f"{source}: {ref!r} points at code in another repo; publish the code in this one")
        elif not module or not path.is_file():
            code.problems.append(f"{source}: {ref!r} needs {module}.py, which is not in the folder")
        elif class_name not in {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}:
            code.problems.append(f"{source}: {module}.py does not define {class_name}")
    import transformers

    code.problems += [f"custom_pipelines[{task!r}]['pt'] names {name!r}, which transformers does not export"
                      for task, info in pipelines.items() for name in info.get("pt", []) if not hasattr(transformers, name)]
    code_files = sorted(folder.glob("*.py"))
    check("the remote-code files' sibling imports are in the folder", ", ".join(p.name for p in code_files)).problems += [
        f"{path.name} imports {Path(needed).name}, which is not in the folder"
        for path in code_files for needed in get_relative_import_files(str(path)) if not Path(needed).is_file()]

    weights = check("weights: safetensors only, index and shards agree", "model.safetensors")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(_read_json(index).get("weight_map", {}).values())
        weights.detail = f"{len(shards)} shards"
        weights.problems += [f"{shard} (listed in the safetensors index) is missing"
                             for shard in sorted(shards) if not (folder / shard).is_file()]
        weights.problems += [f"{name} is not referenced by model.safetensors.index.json"
                             for name in sorted({p.name for p in folder.glob("*.safetensors")} - shards)]
    elif not (folder / "model.safetensors").is_file():
        weights.problems.append("no weights: model.safetensors (or a safetensors index) is missing")
    if list(folder.glob("*.bin")):
        weights.problems.append("pickle weights (*.bin) found: publish safetensors only")
    if kind == "model" and not (folder / "generation_config.json").is_file():
        check("generation_config.json is present").problems.append("generation_config.json is missing")

    if fresh_process and not any(c.problems for c in checks):
        auto_classes = [name for name in ("AutoProcessor", "AutoVideoProcessor") if name in auto_map]
        if "AutoProcessor" not in auto_map and any((folder / name).is_file() for name in TOKENIZER_FILES):
            auto_classes.append("AutoTokenizer")
        checks += _fresh_process_checks(folder, kind, auto_classes)
    return _raise_on_problems(folder, checks)


def _raise_on_problems(folder: Path, checks: list[Check]) -> list[Check]:
    problems = [p for c in checks for p in c.problems]
    if problems:
        raise HubFolderError(f"{folder} is not ready to publish:\n  - " + "\n  - ".join(problems))
    return checks


def push_to_hub(model: Any, repo_id: str, *, private: bool = False, token: str | None = None,
                commit_message: str | None = None, revision: str | None = None, create_pr: bool = False,
                progress: Callable[[str], None] | None = print, **prepare_kwargs: Any) -> Any:
    """Prepare and validate (keywords of `prepare_hub_folder`), then `create_repo(exist_ok=True)` + `upload_folder`;
    returns the CommitInfo. Fails before any work when offline or without a token, and before the Hub is contacted
    when the folder is invalid. `private` applies to a new repo; `progress` receives `describe(folder)`."""
    _check_repo_id(repo_id, "repo id")
    if constants.is_offline_mode():
        raise HubPublishError(
            "HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) is set, so nothing can be uploaded: unset it to push, or use "
            "`--dry-run OUT_DIR` (prepare_hub_folder) to write and check the folder without uploading.")
    token = token or get_token()
    if not token:
        raise HubPublishError(
            "no Hugging Face token found: run `hf auth login` (formerly `huggingface-cli login`), or set HF_TOKEN, or "
            "pass --token / token=; a token with write access is needed. Use `--dry-run OUT_DIR` to write and check "
            "the folder without uploading.")
    with tempfile.TemporaryDirectory(prefix="liteframe-push-") as tmp:
        folder = prepare_hub_folder(model, Path(tmp) / "repo", repo_id=repo_id, **prepare_kwargs)
        ran = {check.name for check in folder.checks}  # the upload adds its own checks (no local paths)
        folder.checks += [c for c in validate_hub_folder(folder.path, for_upload=True, fresh_process=False)
                          if c.name not in ran]
        if progress is not None:
            progress(describe(folder))
        api = HfApi(token=token)
        try:
            logger.info("liteframe push: repo %s", api.create_repo(repo_id, private=private, exist_ok=True,
                                                                   repo_type="model"))
            return api.upload_folder(
                repo_id=repo_id, folder_path=folder.path, repo_type="model", revision=revision, create_pr=create_pr,
                commit_message=commit_message or f"Upload LiteFrame {folder.kind} (liteframe-hf {__version__})")
        except Exception as error:  # transport errors differ across huggingface_hub versions (httpx, httpx2)
            status = getattr(getattr(error, "response", None), "status_code", None)
            hint = {
                401: "the token was rejected: log in again with `hf auth login` or set a valid HF_TOKEN",
                403: f"the token cannot write to {repo_id!r}: use a write token for a namespace you own",
            }.get(status, "check your network connection and token")
            kind = "HTTP error" if isinstance(error, HfHubHTTPError) else type(error).__name__
            raise HubPublishError(
                f"upload of {repo_id!r} to {constants.ENDPOINT} failed ({kind}: {error}); {hint}. The folder itself "
                "was valid: `--dry-run OUT_DIR` writes it for inspection without uploading.") from error


def describe(folder: HubFolder) -> str:
    """The files with their sizes, then every check with what it found, then the notes."""
    size = functools.partial(tqdm.format_sizeof, suffix="B", divisor=1024)
    width = max(map(len, folder.files))
    lines = [f"{folder.kind} folder {folder.path} ({len(folder.files)} files, {size(sum(folder.files.values()))}):"]
    lines += [f"  {name.ljust(width)}  {size(n):>9}  ({n:,} bytes)" for name, n in folder.files.items()]
    lines += [f"checks ({len(folder.checks)}, all passed):"] + [f"  {check}" for check in folder.checks]
    return "\n".join(lines + [f"  note: {note}" for note in folder.notes])


# -------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model_dir", help="folder written by save_pretrained: a LiteFrame model, its vision encoder, or a PEFT adapter")
    add("--repo", required=True, help="Hub repo id, ORG/NAME")
    add("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    add("--dry-run", metavar="OUT_DIR", default=None,
        help="write exactly what would be uploaded into OUT_DIR, print the file list and every check run "
             "(card, config/auto_map, weights and processor loaded in a fresh process), upload nothing")
    add("--overwrite", action="store_true", help="with --dry-run: replace a non-empty OUT_DIR")
    add("--card-data", nargs="+", action="extend", default=[], metavar="JSON",
        help="benchmark / evaluation JSON files for the card's latency and accuracy tables "
             "(e.g. `liteframe bench arch --json`)")
    add("--vision-only", action="store_true", help="publish only the vision encoder of a full model")
    add("--processor", default=None, metavar="DIR",
        help="processor / tokenizer folder (default: the one in MODEL_DIR; a vision encoder saved without one, like "
             "the CTD student, gets a video processor built from its config and its training run's config.yaml)")
    add("--build-processor", action="store_true",
        help="when MODEL_DIR has a tokenizer but no LiteFrame processor, build one from the tokenizer and the config")
    add("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    add("--base-model", nargs="+", action="extend", default=[], metavar="ORG/NAME",
        help="Hub id(s) of the base model: card metadata; for an adapter also its adapter_config.json")
    add("--license", default="apache-2.0", help="Hub license id (default apache-2.0; must suit the base model's license)")
    add("--datasets", nargs="+", action="extend", default=[], metavar="ID", help="training datasets (Hub ids)")
    add("--tags", nargs="+", action="extend", default=[], help="extra card tags")
    add("--language", nargs="+", action="extend", default=[], help="ISO language codes")
    add("--training-command", dest="training_commands", action="append", default=[], metavar="CMD",
        help="exact training command, shown verbatim (repeatable)")
    add("--training-config", dest="training_configs", action="append", default=[], metavar="FILE",
        help="training config file, shown verbatim (repeatable)")
    add("--token", default=None, help="Hub token (default: HF_TOKEN, then the `hf auth login` token)")
    add("--commit-message", default=None)
    add("--revision", default=None, help="branch to upload to")
    add("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    add("--skip-remote-check", dest="check_remote_code", action="store_false",
        help="skip loading the folder in a fresh process without liteframe_hf")


# The CLI options that are `prepare_hub_folder` keywords of the same name.
PREPARE_OPTIONS = ("processor", "vision_only", "build_processor", "max_shard_size", "base_model", "license", "datasets",
                   "tags", "language", "card_data", "training_commands", "training_configs", "check_remote_code")


def main(args: argparse.Namespace) -> int:
    prepare_kwargs = {name: getattr(args, name) for name in PREPARE_OPTIONS}
    try:
        if args.dry_run:
            folder = prepare_hub_folder(args.model_dir, args.dry_run, repo_id=args.repo, overwrite=args.overwrite,
                                        **prepare_kwargs)
            print(describe(folder))
            print(f"dry run: nothing uploaded. Without --dry-run this folder goes to https://huggingface.co/{args.repo} "
                  f"({'private' if args.private else 'public'}).")
        else:
            commit = push_to_hub(args.model_dir, args.repo, private=args.private, token=args.token,
                                 commit_message=args.commit_message, revision=args.revision, create_pr=args.create_pr,
                                 **prepare_kwargs)
            print(f"uploaded: {getattr(commit, 'commit_url', commit)}")
    except HubPublishError as error:
        print(f"liteframe push: error: {error}", file=sys.stderr)
        return 2
    return 0
