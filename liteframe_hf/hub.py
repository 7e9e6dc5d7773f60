"""Hub publishing (`liteframe push`): a LiteFrame checkpoint folder -> a Hub repo that loads with plain transformers.

Data flow: a folder written by `save_pretrained` (or a model in memory) -> `prepare_hub_folder` writes exactly
what a Hub user needs -> `validate_hub_folder` checks it, also in a fresh Python process where `liteframe_hf`
cannot be imported (what a user with plain transformers sees) -> `push_to_hub` uploads it with huggingface_hub
(`create_repo` + `upload_folder`). `--dry-run OUT_DIR` stops after validation: OUT_DIR is byte for byte what
would be uploaded.

Three kinds of repo, each with its card template in `model_cards/`. A model (LiteFrameForConditionalGeneration):
sharded safetensors, config.json with auto_map and the `video-text-to-text` custom_pipelines entry, the
remote-code files, generation config, processor + tokenizer + chat template. A vision encoder
(LiteFrameVisionModel, the CTD student; `--vision-only` extracts it from a model): weights, config, remote
code, video processor. An LMA adapter (PEFT LoRA): adapter_config.json + adapter_model.safetensors, pointing
at its base model's Hub repo.

Cards carry measured numbers only: latency / accuracy tables come from JSON files given with `--card-data`
(e.g. `liteframe bench arch --json`); without them the card says "not measured". Rendering fails if any
placeholder (`{{`, `{%`, TODO, TBD, ...) survives.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
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
import torch
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers.dynamic_module_utils import custom_object_save, get_relative_import_files

from . import __version__
from .modeling import configuration_liteframe
from .modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameVisionConfig
from .modeling.modeling_liteframe import LiteFrameForConditionalGeneration, LiteFrameVisionModel
from .profile import paper_flops

logger = logging.getLogger(__name__)

__all__ = [
    "HubFolder",
    "HubPublishError",
    "HubFolderError",
    "ResultTable",
    "prepare_hub_folder",
    "validate_hub_folder",
    "push_to_hub",
    "write_pipeline_entry",
    "render_model_card",
    "load_card_data",
    "format_file_list",
    "add_arguments",
    "main",
]

KINDS = ("model", "vision", "adapter")
TEMPLATES = {"model": "liteframe_model.md", "vision": "liteframe_vision.md", "adapter": "liteframe_adapter.md"}
PIPELINE_TASK = "video-text-to-text"
PIPELINE_MODULE, PIPELINE_CLASS = "pipeline_liteframe", "VideoTextToTextPipeline"
# auto_map keys each kind must carry in config.json (processor keys are added when a processor is shipped).
REQUIRED_AUTO_KEYS = {
    "model": ("AutoConfig", "AutoModel", "AutoModelForImageTextToText"),
    "vision": ("AutoConfig", "AutoModel"),
}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
PAPER = "LiteFrame: Efficient Vision Encoders Unlock Frame Scaling in Video LLMs (Kim et al., arXiv 2605.17260)"
PAPER_URL = "https://arxiv.org/abs/2605.17260"
# Text that must never reach a published card: unrendered Jinja, or an author's unfinished note.
PLACEHOLDER = re.compile(r"\{\{|\{%|\{#|\bTODO\b|\bTBD\b|\bFIXME\b|\bORG/NAME\b|<your[ _-]", re.IGNORECASE)
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
# Token counts shown in the architecture table (the paper's frame budgets).
EXAMPLE_FRAMES = (64, 256, 512)


class HubPublishError(RuntimeError):
    """Publishing cannot go on; the message says what to do."""


class HubFolderError(HubPublishError):
    """A prepared folder is not what a Hub user could load; the message lists every problem."""


@dataclass
class HubFolder:
    """A folder ready to upload: `files` maps each path (relative, POSIX) to its size in bytes."""

    path: Path
    kind: str
    files: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


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

    @property
    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(cell(h) for h in self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


# Column titles for the fields `liteframe bench` writes; other fields get their key, de-underscored.
COLUMN_TITLES = {
    "variant": "variant",
    "params_m": "params (M)",
    "tflops": "TFLOPs (paper rule)",
    "latency_ms": "latency (ms)",
    "paper_params_m": "paper params (M)",
    "paper_tflops": "paper TFLOPs",
    "paper_latency_ms": "paper latency (ms, A100)",
    "accuracy": "accuracy",
    # `liteframe eval --json` rows
    "questions": "questions",
    "accuracy_pct": "accuracy (%)",
    "ci95_pct": "95 % CI (%)",
    "chance_pct": "chance (%)",
}
NOT_MEASURED = "not measured"
ACCURACY_KEYS = ("accuracy", "acc", "score")


def _format_value(value: Any, missing: str = NOT_MEASURED) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def _is_cell(value: Any) -> bool:
    """Scalars and short lists of scalars fit a table cell; nested results and long lists do not."""
    if isinstance(value, (list, tuple)):
        return len(value) <= 4 and all(isinstance(v, (int, float, str)) for v in value)
    return not isinstance(value, dict)


def _column_title(key: str) -> str:
    if key in COLUMN_TITLES:
        return COLUMN_TITLES[key]
    if key.endswith("_ms"):
        return key[:-3].replace("_", " ") + " (ms)"
    if key.endswith("_acc_pct"):  # per-category accuracy of `liteframe eval`
        return key[: -len("_acc_pct")].replace("_", " ") + " (%)"
    return key.replace("_", " ")


def _is_accuracy_key(key: str) -> bool:
    key = key.lower()
    return any(key == k or key.endswith("_" + k) or key.startswith(k) for k in ACCURACY_KEYS)


def _table_from_rows(path: Path, payload: dict, rows: list[dict], kind: str) -> ResultTable:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    # Left out: paper columns without any paper figure, and nested values (per-method dicts, timestamp lists).
    # Our own columns stay even when empty, so an unmeasured latency reads "not measured".
    keys = [k for k in keys
            if all(_is_cell(row.get(k)) for row in rows)
            and not (k.startswith("paper_") and all(row.get(k) is None for row in rows))]
    skip = {"rows", "results", "kind", "title", "configs", "config", "versions", "n-shot", "higher_is_better",
            # `liteframe eval --json`: local paths and long settings stay in the file, not in the card
            "label", "model_path", "data", "prompt", "latency_protocol"}
    provenance = ", ".join(
        f"{k}: {_format_value(v)}" for k, v in payload.items() if k not in skip and not isinstance(v, (dict, list))
    )
    if "title" in payload:
        title = str(payload["title"])
    elif {"variant", "tflops"} <= set(keys):
        title = "Encoder architectures (`liteframe bench arch`)"
    elif {"method", "encode_ms", "prefill_ms"} <= set(keys):
        title = "End-to-end latency: video encoding + LLM prefill (`liteframe bench e2e`)"
    else:
        title = path.stem.replace("_", " ")
    # A paper column without a paper figure for that row is "n/a", not an unmeasured value of ours.
    return ResultTable(
        kind=kind,
        title=title,
        source=path.name,
        provenance=provenance,
        headers=[_column_title(k) for k in keys],
        rows=[[_format_value(row.get(k), "n/a" if k.startswith("paper_") else NOT_MEASURED) for k in keys]
              for row in rows],
    )


def _harness_rows(results: dict) -> list[dict]:
    """lmms-eval / lm-evaluation-harness `results`: {task: {"metric,filter": value, "alias": ...}} -> rows."""
    rows = []
    for task, metrics in results.items():
        if not isinstance(metrics, dict):
            raise ValueError(f"results[{task!r}] is not a dict of metrics")
        for name, value in metrics.items():
            if name == "alias" or "stderr" in name or not isinstance(value, (int, float)):
                continue
            metric, _, filt = name.partition(",")
            rows.append({"benchmark": metrics.get("alias", task), "metric": metric if filt in ("", "none") else name,
                         "value": value})
    return rows


def load_card_data(paths: Iterable[str | os.PathLike]) -> list[ResultTable]:
    """Read benchmark / evaluation JSON files into card tables.

    Accepted shapes (the kind is recognised from the content; `"kind": "latency" | "accuracy"` forces it):
      * `{"rows": [{...}, ...], <provenance fields>}` - what `liteframe bench ... --json` writes. Rows with a
        `*_ms` field are latency; rows with an `accuracy` / `*_acc` / `score` field are accuracy.
      * `{"results": {task: {"metric,filter": value}}}` - lmms-eval / lm-evaluation-harness output (accuracy).
      * `liteframe eval --json` output: its `rows` (one per frame count: accuracy with 95 % CI, chance,
        per-category accuracy, median latencies per question), with `"kind": "accuracy"`.
    Numbers are copied, never derived; a missing value (null) shows as "not measured".
    """
    tables = []
    for raw in paths:
        path = Path(raw)
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise HubPublishError(f"card data file {str(path)!r} could not be read as JSON: {error}") from error
        if not isinstance(payload, dict):
            raise HubPublishError(f"card data file {str(path)!r} must hold a JSON object, got {type(payload).__name__}")
        kind = payload.get("kind")
        listed = payload.get("rows")
        if isinstance(listed, list) and listed and all(isinstance(r, dict) for r in listed):
            rows = listed
        elif isinstance(payload.get("results"), dict):
            try:
                rows = _harness_rows(payload["results"])
            except ValueError as error:
                raise HubPublishError(f"card data file {str(path)!r}: {error}") from error
            kind = kind or "accuracy"
        else:
            rows = []
        keys = {k for row in rows for k in row}
        if kind is None:
            if any(k.endswith("_ms") for k in keys):
                kind = "latency"
            elif any(_is_accuracy_key(k) for k in keys):
                kind = "accuracy"
        if not rows or kind not in ("latency", "accuracy"):
            raise HubPublishError(
                f"card data file {str(path)!r} is not a benchmark or evaluation JSON this card understands: expected "
                "`liteframe bench ... --json` output ({'rows': [...]} with *_ms latency fields), an accuracy file "
                "({'rows': [{'benchmark': ..., 'accuracy': ...}]}), or lmms-eval output ({'results': {...}}); "
                "add \"kind\": \"latency\" or \"accuracy\" to force one."
            )
        tables.append(_table_from_rows(path, payload, rows, kind))
    return tables


# ---------------------------------------------------------------------------------------------- sources
@dataclass
class _Source:
    kind: str
    model: Any = None  # PreTrainedModel / PeftModel in memory (None for an adapter folder)
    processor: Any = None
    adapter_dir: Path | None = None  # adapter given as a folder
    notes: list[str] = field(default_factory=list)


def _modeling_dir() -> Path:
    return Path(configuration_liteframe.__file__).parent


def _optional_modeling_module(name: str):
    """`liteframe_hf.modeling.<name>` if this install ships that file, else None (import errors propagate)."""
    if not (_modeling_dir() / f"{name}.py").is_file():
        return None
    return importlib.import_module(f"liteframe_hf.modeling.{name}")


def _is_peft_model(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _load_processor(folder: Path, notes: list[str]):
    """The processor saved next to a checkpoint: LiteFrameProcessor (or the video processor alone, for an encoder
    folder) when this install has those files, else the tokenizer alone; None when the folder has neither."""
    processing = _optional_modeling_module("processing_liteframe")
    video_processing = _optional_modeling_module("video_processing_liteframe")
    has_tokenizer = any((folder / name).is_file() for name in TOKENIZER_FILES)
    if (folder / "processor_config.json").is_file():
        if processing is not None and video_processing is not None:
            from transformers import AutoTokenizer

            # Built from its parts: LiteFrameProcessor.from_pretrained finds the video processor through
            # AutoVideoProcessor, which knows our class only where it was registered.
            processor_dict, _ = processing.LiteFrameProcessor.get_processor_dict(folder)
            parts = {"video_processor": video_processing.LiteFrameVideoProcessor.from_pretrained(folder),
                     "tokenizer": AutoTokenizer.from_pretrained(folder)}
            attributes = processing.LiteFrameProcessor.get_attributes()
            return processing.LiteFrameProcessor.from_args_and_dict([parts[a] for a in attributes], processor_dict)
        notes.append(
            f"{folder} has processor_config.json but this liteframe-hf install lacks modeling/processing_liteframe.py "
            "or video_processing_liteframe.py: only the tokenizer is published."
        )
    elif (folder / "video_preprocessor_config.json").is_file() and video_processing is not None and not has_tokenizer:
        return video_processing.LiteFrameVideoProcessor.from_pretrained(folder)
    if has_tokenizer:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    return None


def _video_processor_of(processor: Any, notes: list[str]):
    """What an encoder repo ships: the video processor alone (no tokenizer: the encoder reads no text)."""
    if processor is None:
        return None
    from transformers.video_processing_utils import BaseVideoProcessor

    if isinstance(processor, BaseVideoProcessor):
        return processor
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is None:
        notes.append(f"the {type(processor).__name__} is not published with the vision encoder (it reads no text).")
    return video_processor


def _build_processor(tokenizer: Any, config: Any, notes: list[str]):
    """A LiteFrameProcessor from a bare tokenizer and the model's config (frame size, clip_len, tokens per clip);
    the video processor's other settings are its class defaults."""
    processing = _optional_modeling_module("processing_liteframe")
    video_processing = _optional_modeling_module("video_processing_liteframe")
    if tokenizer is None or processing is None or video_processing is None:
        raise HubPublishError(
            "build_processor (--build-processor) needs a tokenizer next to the weights (or --processor DIR) and this "
            "install's modeling/processing_liteframe.py + video_processing_liteframe.py."
        )
    v = config.vision_config
    video_processor = video_processing.LiteFrameVideoProcessor(size={"height": v.image_size, "width": v.image_size},
                                                               clip_len=v.clip_len)
    notes.append(
        f"built a LiteFrameProcessor from the tokenizer: {v.image_size} px frames, clip_len {v.clip_len}, "
        f"{config.tokens_per_clip()} tokens per clip, other video settings at their defaults (num_frames "
        f"{video_processor.num_frames}); save your own processor next to the weights to choose them."
    )
    return processing.LiteFrameProcessor(video_processor=video_processor, tokenizer=tokenizer,
                                         tokens_per_clip=config.tokens_per_clip())


def _load_source(model: Any, processor: Any, vision_only: bool, build_processor: bool = False) -> _Source:
    notes: list[str] = []
    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if not folder.is_dir():
            raise HubPublishError(
                f"{str(folder)!r} is not a folder: pass a folder written by save_pretrained (a LiteFrame model, its "
                "vision encoder, or a PEFT LoRA adapter)."
            )
        if (folder / "adapter_config.json").is_file():
            if processor is not None or vision_only:
                raise HubPublishError("an adapter folder is published on its own: drop processor / vision_only.")
            return _Source("adapter", adapter_dir=folder)
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise HubPublishError(
                f"{str(folder)!r} has neither config.json nor adapter_config.json: not a checkpoint folder."
            )
        model_type = json.loads(config_path.read_text()).get("model_type")
        if model_type == "liteframe":
            loaded = LiteFrameForConditionalGeneration.from_pretrained(folder, dtype="auto")
        elif model_type == "liteframe_vision":
            loaded = LiteFrameVisionModel.from_pretrained(folder, dtype="auto")
        else:
            raise HubPublishError(
                f"{str(folder)!r} holds a {model_type!r} model, not a LiteFrame one (model_type 'liteframe' or "
                "'liteframe_vision'); `liteframe push` publishes LiteFrame models and their LoRA adapters."
            )
        if processor is None:
            processor = _load_processor(folder, notes)
        model = loaded
    if isinstance(processor, (str, os.PathLike)):
        loaded_processor = _load_processor(Path(processor), notes)
        if loaded_processor is None:
            raise HubPublishError(f"processor folder {str(processor)!r} has no processor_config.json or tokenizer files.")
        processor = loaded_processor

    if _is_peft_model(model):
        if processor is not None or vision_only:
            raise HubPublishError("an adapter is published on its own: drop processor / vision_only.")
        base_type = getattr(model.get_base_model().config, "model_type", None)
        if base_type != "liteframe":
            raise HubPublishError(
                f"this PEFT adapter sits on a {base_type!r} model, not a LiteFrame one (model_type 'liteframe')."
            )
        return _Source("adapter", model=model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type == "liteframe":
        if not hasattr(model, "lm_head"):
            raise HubPublishError(
                f"got a {type(model).__name__}: publish LiteFrameForConditionalGeneration (the model with its LM head)."
            )
        if vision_only:
            video_processor = _video_processor_of(processor, notes)
            return _Source("vision", model=model.vision_tower, processor=video_processor, notes=notes)
        if build_processor and not hasattr(processor, "video_processor"):
            processor = _build_processor(processor, model.config, notes)
        if hasattr(processor, "bind_model_config"):
            try:  # a processor saved for another configuration would write the wrong placeholder count
                processor.bind_model_config(model.config)
            except ValueError as error:
                raise HubPublishError(f"the processor does not fit this model: {error}") from error
        return _Source("model", model=model, processor=processor, notes=notes)
    if model_type == "liteframe_vision":
        return _Source("vision", model=model, processor=_video_processor_of(processor, notes), notes=notes)
    raise HubPublishError(
        f"cannot publish a {type(model).__name__} (model_type {model_type!r}): pass a LiteFrame model, its vision "
        "encoder, a PEFT adapter on a LiteFrame model, or a folder holding one of them."
    )


# ----------------------------------------------------------------------------------------- folder writing
def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise HubPublishError(
                f"output folder {str(out)!r} exists and is not empty: pick a new folder or pass overwrite=True "
                "(--overwrite)."
            )
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _class_ref(obj_or_cls: Any) -> str:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return f"{cls.__module__.split('.')[-1]}.{cls.__name__}"


def _is_liteframe_code(obj: Any) -> bool:
    """Classes defined in our remote-code files (ours, or their transformers_modules copies)."""
    return obj is not None and type(obj).__module__.split(".")[-1].endswith("_liteframe")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, payload: dict) -> None:
    # transformers' own formatting for config.json (indent 2, sorted keys).
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


# Arguments of one from_pretrained call that transformers stores in tokenizer_config.json (a tokenizer loaded
# offline from a folder gets "local_files_only": true); they describe this machine, not the tokenizer.
LOAD_TIME_KEYS = ("is_local", "local_files_only", "cache_dir", "force_download", "_commit_hash")


def _strip_load_time_keys(path: Path) -> None:
    if path.is_file():
        payload = _read_json(path)
        if any(key in payload for key in LOAD_TIME_KEYS):
            kept = {k: v for k, v in payload.items() if k not in LOAD_TIME_KEYS}
            path.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")


def _write_model(source: _Source, out: Path, max_shard_size: str | int, notes: list[str]) -> None:
    model, processor = source.model, source.processor
    # The classes are marked as remote code on `import liteframe_hf`; a remote-code copy loaded with
    # trust_remote_code is marked by transformers. Either way save_pretrained writes auto_map + copies files.
    model.save_pretrained(out, max_shard_size=max_shard_size)
    config = _read_json(out / "config.json")
    auto_map = dict(config.get("auto_map") or {})

    if processor is not None:
        from transformers.video_processing_utils import BaseVideoProcessor

        if isinstance(processor, BaseVideoProcessor):
            # Saving a LiteFrameProcessor writes its own AutoProcessor entry into the video processor's auto_map;
            # the encoder repo ships no processing_liteframe.py, so publish a copy without that entry.
            processor = copy.deepcopy(processor)
            saved_map = getattr(processor, "auto_map", None) or {}
            processor.auto_map = {k: v for k, v in saved_map.items() if k == "AutoVideoProcessor"}
            components = [("AutoVideoProcessor", processor)]
        else:
            components = [("AutoProcessor", processor),
                          ("AutoVideoProcessor", getattr(processor, "video_processor", None))]
        # Our processor classes are Hub remote code too: mark them so their save writes auto_map and copies files.
        for auto_class, component in components:
            if _is_liteframe_code(component) and getattr(type(component), "_auto_class", None) is None:
                type(component).register_for_auto_class(auto_class)
        processor.save_pretrained(out)
        _strip_load_time_keys(out / "tokenizer_config.json")
        for auto_class, component in components:
            if _is_liteframe_code(component):
                custom_object_save(component, out)  # the file and its sibling imports, whatever save_pretrained did
                # AutoProcessor / AutoVideoProcessor also read config.json's auto_map.
                auto_map[auto_class] = _class_ref(component)
    elif source.kind == "model":
        notes.append(
            "no processor or tokenizer was given or found next to the weights: the repo loads as a model only "
            "(AutoProcessor and the video-text-to-text pipeline will not work); pass processor=/--processor DIR."
        )

    config["auto_map"] = auto_map
    _write_json(out / "config.json", config)
    if source.kind == "model":
        write_pipeline_entry(out, notes)


# Processor files whose auto_map entries AutoProcessor / AutoVideoProcessor also look up in config.json.
_PROCESSOR_FILES = ("processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json")


def write_pipeline_entry(folder: str | os.PathLike, notes: list[str] | None = None) -> bool:
    """Make a saved LiteFrame video LLM folder work with plain transformers and trust_remote_code, including
    `pipeline("video-text-to-text", model=folder, trust_remote_code=True)`.

    The one writer of config.json's `custom_pipelines` entry (and the processor keys of its auto_map), used by every
    script that saves a full model: `liteframe push`/`prepare_hub_folder`, lma.py's merged/, `liteframe convert` and
    the reproduce_micro model folders. Expects `save_pretrained` of the model and processor already in `folder` (with
    the LiteFrame classes marked as remote code, as `import liteframe_hf` does). Returns whether the entry was written;
    why not goes to `notes`."""
    folder = Path(folder)
    notes = notes if notes is not None else []
    config = _read_json(folder / "config.json")
    auto_map = dict(config.get("auto_map") or {})
    for name in _PROCESSOR_FILES:
        if (folder / name).is_file():
            for key, ref in (_read_json(folder / name).get("auto_map") or {}).items():
                if key in ("AutoProcessor", "AutoVideoProcessor") and isinstance(ref, str) \
                        and (folder / f"{ref.split('.')[0]}.py").is_file():
                    auto_map.setdefault(key, ref)
    config.pop("custom_pipelines", None)
    written = False
    pipeline_module = _optional_modeling_module(PIPELINE_MODULE)
    if pipeline_module is None:
        notes.append(
            f"custom `{PIPELINE_TASK}` pipeline not included: this liteframe-hf install has no "
            f"modeling/{PIPELINE_MODULE}.py (the card shows the model used directly)."
        )
    elif "AutoProcessor" not in auto_map:
        notes.append(
            f"custom `{PIPELINE_TASK}` pipeline not included: it needs the LiteFrame processor, which is not published."
        )
    else:
        custom_object_save(getattr(pipeline_module, PIPELINE_CLASS), folder)
        config["custom_pipelines"] = {
            PIPELINE_TASK: {
                "impl": f"{PIPELINE_MODULE}.{PIPELINE_CLASS}",
                # An Auto class name: transformers resolves `pt` with getattr(transformers, name).
                "pt": ["AutoModelForImageTextToText"],
                "type": "multimodal",
            }
        }
        written = True
    config["auto_map"] = auto_map
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


def _write_adapter(source: _Source, out: Path, base_model: str | None, notes: list[str]) -> dict:
    if source.model is not None:
        peft_model = source.model
        adapter_name = peft_model.active_adapter
        with tempfile.TemporaryDirectory(prefix="liteframe-adapter-") as tmp:
            peft_model.save_pretrained(tmp, selected_adapters=[adapter_name])
            saved = [p.parent for p in Path(tmp).rglob("adapter_config.json")]
            if len(saved) != 1:
                raise HubPublishError(
                    f"expected one saved adapter, found {len(saved)} in the PEFT save of {adapter_name!r}."
                )
            for name in ADAPTER_FILES:
                shutil.copy2(saved[0] / name, out / name)
    else:
        missing = [n for n in ADAPTER_FILES if not (source.adapter_dir / n).is_file()]
        if missing:
            raise HubPublishError(
                f"adapter folder {str(source.adapter_dir)!r} lacks {', '.join(missing)}: save the adapter with "
                "PeftModel.save_pretrained (safetensors)."
            )
        for name in ADAPTER_FILES:
            shutil.copy2(source.adapter_dir / name, out / name)
        extra = sorted(p.name for p in source.adapter_dir.iterdir() if p.name not in ADAPTER_FILES + ("README.md",))
        if extra:
            notes.append(f"not published from the adapter folder (not part of a PEFT adapter): {', '.join(extra)}")

    adapter_config = _read_json(out / "adapter_config.json")
    recorded = adapter_config.get("base_model_name_or_path")
    base_model = base_model or recorded
    if not base_model:
        raise HubPublishError("the adapter does not name its base model: pass base_model='ORG/NAME' (--base-model).")
    if _looks_local(base_model):
        raise HubPublishError(
            f"the adapter's base model is the local folder {base_model!r}: pass base_model='ORG/NAME' (--base-model), "
            "the Hub repo of that base model, so adapter_config.json and the card point users at it."
        )
    _check_repo_id(base_model, "base model")
    adapter_config["base_model_name_or_path"] = base_model
    _write_json(out / "adapter_config.json", adapter_config)
    return adapter_config


# ------------------------------------------------------------------------------------------- card context
ARCH_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act", "layer_norm_eps",
    "attention_bias", "layer_scale_init_value", "image_size", "patch_size", "num_channels", "clip_len",
    "downsample_layers", "temporal_mixer", "attention_scope", "temporal_kernel_size", "out_hidden_size",
    "post_layernorm", "output_wap_block", "output_wap_weighting",
)
VARIANT_LABELS = {
    "liteframe-b": "LiteFrame-B (DWTempConv, the paper's encoder)",
    "vit-b-12l": "ViT-B-12L (no compression, paper ablation)",
    "tempattn": "TempAttn (paper ablation)",
    "spatiotempattn": "SpatioTempAttn (paper ablation)",
    "tempconv": "TempConv (paper ablation)",
    "liteframe-micro": "liteframe-micro (CPU-sized, for a DINOv2-S teacher)",
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
    scaled = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M"
    return f"{n:,} ({scaled})"


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _merge_schedule(vision_config: Any) -> str:
    items = sorted(vision_config.downsample_layers.items(), key=lambda kv: int(kv[0]))
    return "; ".join(f"after block {layer}: {tuple(factors)}" for layer, factors in items) or "none"


def _vision_facts(encoder: torch.nn.Module) -> list[tuple[str, str]]:
    v = encoder.config
    variant = detect_variant(v)
    t, h, w = v.output_grid()
    clip_shape = (1, v.clip_len, v.num_channels, v.image_size, v.image_size)
    gflops = paper_flops(encoder, clip_shape) / 1e9
    return [
        ("encoder variant", VARIANT_LABELS.get(variant, variant)),
        ("frames per clip (`clip_len`)", str(v.clip_len)),
        ("frame size / patch", f"{v.image_size} px / {v.patch_size} px"),
        ("width / depth / heads", f"{v.hidden_size} / {v.num_hidden_layers} / {v.num_attention_heads}"),
        ("temporal mixer", f"`{v.temporal_mixer}` (attention scope `{v.attention_scope}`)"),
        ("token merging (t, h, w)", _merge_schedule(v)),
        ("encoder output per clip (T', H', W', D)", f"({t}, {h}, {w}, {v.output_size})"),
        ("encoder parameters", _count(_params(encoder))),
        ("encoder compute per clip",
         f"{gflops:.4g} GFLOPs (paper rule: 2 x MACs of Linear/Conv layers; computed, not measured)"),
    ]


def _model_facts(model: torch.nn.Module) -> list[tuple[str, str]]:
    cfg = model.config
    v, text = cfg.vision_config, cfg.text_config
    per_clip = cfg.tokens_per_clip()
    per_frame = per_clip / v.clip_len
    per_frame_text = str(int(per_frame)) if per_frame == int(per_frame) else f"{per_frame:.2f}"
    lm_params = _params(model.language_model) + (0 if cfg.tie_word_embeddings else _params(model.lm_head))
    facts = _vision_facts(model.vision_tower)
    facts += [
        ("LLM tokens per clip / per frame", f"{per_clip} / {per_frame_text} (pixel shuffle {cfg.pixel_shuffle_ratio})"),
        ("visual tokens at " + " / ".join(map(str, EXAMPLE_FRAMES)) + " frames",
         " / ".join(str(per_clip * (n // v.clip_len)) for n in EXAMPLE_FRAMES)),
        ("projector", f"LayerNorm({cfg.projector_input_size}) -> Linear -> {cfg.projector_hidden_act.upper()} -> "
                      f"Linear({text.hidden_size}); {_count(_params(model.model.multi_modal_projector))}"),
        ("language model", f"{text.model_type}: {text.num_hidden_layers} layers, width {text.hidden_size}, "
                           f"vocab {text.vocab_size}; {_count(lm_params)}"),
        ("total parameters", _count(_params(model))),
        ("video placeholder token id (`video_token_id`)", str(cfg.video_token_id)),
    ]
    return facts


def _weights_dtype(model: torch.nn.Module) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


def _adapter_facts(adapter_config: dict, weights: Path) -> tuple[list[tuple[str, str]], int]:
    from safetensors import safe_open

    tensors, total, lm_modules, other_modules = 0, 0, set(), set()
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            n = 1
            for dim in handle.get_slice(key).get_shape():
                n *= dim
            total += n
            tensors += 1
            if ".lora_" in key:  # modules_to_save tensors are counted in the parameters, not as adapted modules
                module = key.split(".lora_")[0]
                (lm_modules if "language_model" in module else other_modules).add(module)
    targets = adapter_config.get("target_modules")
    facts = [
        ("base model", f"`{adapter_config['base_model_name_or_path']}`"),
        ("PEFT method", str(adapter_config.get("peft_type", "LORA"))),
        ("rank `r` / `lora_alpha` / `lora_dropout`",
         " / ".join(str(adapter_config.get(k)) for k in ("r", "lora_alpha", "lora_dropout"))),
        ("target modules", f"`{targets}`" if isinstance(targets, str) else ", ".join(f"`{t}`" for t in targets or [])),
        ("adapted modules", f"{len(lm_modules)} in the language model, {len(other_modules)} elsewhere"),
        ("modules saved in full (`modules_to_save`)", ", ".join(adapter_config.get("modules_to_save") or []) or "none"),
        ("adapter parameters", f"{_count(total)} in {tensors} tensors"),
        ("PEFT version", str(adapter_config.get("peft_version", "unknown"))),
    ]
    return facts, len(other_modules)


def _read_training_configs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    languages = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml", ".py": "python", ".sh": "bash"}
    configs = []
    for raw in paths:
        path = Path(raw)
        try:
            text = path.read_text()
        except OSError as error:
            raise HubPublishError(f"training config {str(path)!r} could not be read: {error}") from error
        language = languages.get(path.suffix.lower(), "text")
        configs.append({"name": path.name, "language": language, "text": text.rstrip()})
    return configs


def _fence(text: str) -> str:
    """A backtick fence longer than any run of backticks inside `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


# ---------------------------------------------------------------------------------------------- rendering
def templates_dir() -> Path:
    """The `model_cards/` templates: packaged as `liteframe_hf/model_cards` or beside the package (editable)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "model_cards", here.parent / "model_cards"):
        if (candidate / TEMPLATES["model"]).is_file():
            return candidate
    raise HubPublishError(
        f"model card templates not found next to {here}: reinstall liteframe-hf (the model_cards/ folder must ship "
        "with it)."
    )


def render_model_card(kind: str, card_data: ModelCardData, context: dict) -> ModelCard:
    """Render `model_cards/<template>` for `kind` with `context`; the result must parse and hold no placeholder."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,  # a missing value is an error, never an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["fence"] = _fence
    env.filters["cell"] = lambda text: str(text).replace("|", "\\|")  # a literal | ends a table cell
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
        line = text[: match.start()].count("\n") + 1
        problems.append(f"placeholder {match.group(0)!r} on line {line}")
    try:
        card = ModelCard(text, ignore_metadata_errors=False)
    except Exception as error:  # ModelCard raises ValueError / yaml errors on malformed metadata
        return problems + [f"metadata does not parse: {error}"]
    data = card.data.to_dict()
    for key in ("license", "library_name", "tags"):
        if not data.get(key):
            problems.append(f"metadata has no {key!r}")
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
    extra: dict[str, Any] = {}
    if kind == "adapter":
        extra["base_model_relation"] = "adapter"
    return ModelCardData(
        license=license,
        base_model=list(base_model) or None,
        # The encoder alone answers no pipeline task (it outputs teacher-space tokens): no pipeline_tag for it.
        pipeline_tag=None if kind == "vision" else PIPELINE_TASK,
        library_name="peft" if kind == "adapter" else "transformers",
        tags=list(dict.fromkeys(default_tags + list(tags))),
        datasets=list(datasets) or None,
        language=list(language) or None,
        **extra,
    )


def _list_files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ public API
def prepare_hub_folder(
    model: Any,
    out_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    processor: Any = None,
    vision_only: bool = False,
    build_processor: bool = False,
    max_shard_size: str | int = "5GB",
    base_model: str | Sequence[str] | None = None,
    license: str = "apache-2.0",
    datasets: Sequence[str] = (),
    tags: Sequence[str] = (),
    language: Sequence[str] = (),
    card_data: Sequence[str | os.PathLike] = (),
    training_commands: Sequence[str] = (),
    training_configs: Sequence[str | os.PathLike] = (),
    example_video: str = "video.mp4",
    overwrite: bool = False,
    check_remote_code: bool = True,
) -> HubFolder:
    """Write into `out_dir` exactly what `push_to_hub` uploads, and validate it.

    `model`: a folder written by `save_pretrained` (LiteFrame model, its vision encoder, or a PEFT adapter)
    or the object itself (`LiteFrameForConditionalGeneration`, `LiteFrameVisionModel`, `PeftModel`).
    `vision_only`: publish only the encoder of a full model. `processor`: a processor / tokenizer object or
    folder (default: the one saved next to the weights). `build_processor`: when only a tokenizer is found, build
    the LiteFrameProcessor from it and the model config (AutoProcessor and the pipeline need it). `repo_id`: what
    the card's usage snippets load (the absolute `out_dir` when None). `base_model`: Hub id(s) of the model this
    one derives from (required for an adapter whose adapter_config.json names a local folder). `card_data`:
    benchmark / evaluation JSON files (see `load_card_data`). `training_commands` / `training_configs`: shown
    verbatim in the card.
    `check_remote_code`: also load the folder in a fresh process without liteframe_hf (a few seconds).
    """
    out = Path(out_dir)
    if repo_id is not None:
        _check_repo_id(repo_id, "repo id")
    if isinstance(model, (str, os.PathLike)) and Path(model).resolve() == out.resolve():
        raise HubPublishError("out_dir must differ from the model folder: the Hub folder is written fresh.")
    bases = [base_model] if isinstance(base_model, str) else list(base_model or [])
    if not LICENSE_ID.match(license or ""):
        raise HubPublishError(f"license {license!r} is not a Hub license id (e.g. apache-2.0, mit, other).")
    tables = load_card_data(card_data)  # fail on a bad JSON before writing anything
    configs = _read_training_configs(training_configs)

    for base in bases:
        _check_repo_id(base, "base model")

    source = _load_source(model, processor, vision_only, build_processor)
    notes = list(source.notes)
    _prepare_out_dir(out, overwrite)

    context: dict[str, Any] = {
        "repo": repo_id or str(out.resolve()),
        "title": (repo_id or out.resolve().name).split("/")[-1],
        "paper": PAPER,
        "paper_url": PAPER_URL,
        "version": __version__,
        "latency_tables": [t for t in tables if t.kind == "latency"],
        "accuracy_tables": [t for t in tables if t.kind == "accuracy"],
        "not_measured": NOT_MEASURED,
        "training_commands": list(training_commands),
        "training_configs": configs,
        "example_video": example_video,
    }
    if source.kind == "adapter":
        adapter_config = _write_adapter(source, out, bases[0] if bases else None, notes)
        bases = [adapter_config["base_model_name_or_path"]] + bases[1:]
        facts, vision_modules = _adapter_facts(adapter_config, out / "adapter_model.safetensors")
        context.update(facts=facts, base_model=bases[0], adapter_in_vision=vision_modules > 0,
                       has_modules_to_save=bool(adapter_config.get("modules_to_save")))
    else:
        _write_model(source, out, max_shard_size, notes)
        files = _list_files(out)
        video_processor = getattr(source.processor, "video_processor", source.processor)
        config = _read_json(out / "config.json")
        has_video_processor = _is_liteframe_code(video_processor) and "AutoVideoProcessor" in config["auto_map"]
        encoder = source.model if source.kind == "vision" else source.model.vision_tower
        v = encoder.config
        context.update(
            facts=_model_facts(source.model) if source.kind == "model" else _vision_facts(encoder),
            dtype=_weights_dtype(source.model),
            remote_code=sorted(name for name in files if name.endswith(".py")),
            has_processor=source.processor is not None and (out / "processor_config.json").is_file(),
            has_pipeline="custom_pipelines" in config,
            has_video_processor=has_video_processor,
            num_frames=getattr(video_processor, "num_frames", None) if has_video_processor else None,
            clip_len=v.clip_len,
            image_size=v.image_size,
            output_shape=(2, *v.output_grid(), v.output_size),
            tokens_per_clip=source.model.config.tokens_per_clip() if source.kind == "model" else None,
        )
    for note in notes:
        logger.warning("liteframe push: %s", note)

    metadata = _card_data(source.kind, license, bases, datasets, tags, language)
    card = render_model_card(source.kind, metadata, context)
    (out / "README.md").write_text(str(card), encoding="utf-8")

    validate_hub_folder(out, fresh_process=check_remote_code)
    return HubFolder(path=out, kind=source.kind, files=_list_files(out), notes=notes)


def _folder_kind(folder: Path) -> str:
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    model_type = _read_json(folder / "config.json").get("model_type") if (folder / "config.json").is_file() else None
    return {"liteframe": "model", "liteframe_vision": "vision"}.get(model_type, "unknown")


def _auto_map_refs(folder: Path) -> list[tuple[str, str]]:
    """(json file, "module.Class") for every auto_map entry in every JSON file (nested ones included)."""
    refs = []

    def walk(node: Any, source: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "auto_map" and isinstance(value, dict):
                    for ref in value.values():
                        for item in ref if isinstance(ref, (list, tuple)) else [ref]:
                            if isinstance(item, str):
                                refs.append((source, item))
                else:
                    walk(value, source)
        elif isinstance(node, list):
            for value in node:
                walk(value, source)

    for path in sorted(folder.glob("*.json")):
        try:
            walk(_read_json(path), path.name)
        except ValueError:
            pass  # reported by the JSON check
    return refs


def _defined_classes(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)}


FRESH_PROCESS_CHECK = textwrap.dedent(
    """
    import json, sys
    sys.modules["liteframe_hf"] = None  # a Hub user's environment: plain transformers, no liteframe_hf
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText
    folder, kind, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    report = {}
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    report["AutoConfig"] = type(config).__name__
    with torch.device("meta"):  # builds the modules from the remote code without allocating weights
        report["AutoModel"] = type(AutoModel.from_config(config, trust_remote_code=True)).__name__
        if kind == "model":
            lm = AutoModelForImageTextToText.from_config(config, trust_remote_code=True)
            report["AutoModelForImageTextToText"] = type(lm).__name__
    for auto_class in extra:  # AutoProcessor / AutoVideoProcessor / AutoTokenizer
        loaded = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True)
        report[auto_class] = type(loaded).__name__
    print("LITEFRAME_CHECK " + json.dumps(report))
    """
)


def _fresh_process_check(folder: Path, kind: str, auto_classes: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="liteframe-modules-") as modules:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": modules, "TOKENIZERS_PARALLELISM": "false"}
        result = subprocess.run(
            [sys.executable, "-c", FRESH_PROCESS_CHECK, str(folder.resolve()), kind, *auto_classes],
            capture_output=True, text=True, env=env, cwd=modules, timeout=600,
        )
    if result.returncode != 0:
        return ["the folder does not load with plain transformers (trust_remote_code=True, no liteframe_hf): "
                + result.stderr.strip()[-2000:]]
    line = next((l for l in result.stdout.splitlines() if l.startswith("LITEFRAME_CHECK ")), None)
    report = json.loads(line.split(" ", 1)[1]) if line else {}
    expected = "LiteFrameForConditionalGeneration" if kind == "model" else "LiteFrameVisionModel"
    if report.get("AutoModel") != expected:
        return [f"AutoModel loads {report.get('AutoModel')!r} from the folder, expected {expected!r}"]
    return []


def validate_hub_folder(folder: str | os.PathLike, *, for_upload: bool = False, fresh_process: bool = True) -> None:
    """Check a folder before upload; raise HubFolderError listing every problem.

    Checks: the card (parses, metadata, no placeholder); for models, config.json loads with our config class,
    every auto_map / custom_pipelines module file is present and defines the class, sibling imports of those
    files are present, the safetensors index matches the shards, generation_config.json exists; for adapters,
    the PEFT config loads and names a Hub base model. `fresh_process`: also load config + model (meta device)
    + processor in a process where liteframe_hf cannot be imported. `for_upload`: no local paths in the
    files users see.
    """
    folder = Path(folder)
    problems: list[str] = []
    kind = _folder_kind(folder)
    if kind == "unknown":
        raise HubFolderError(f"{folder} holds neither a LiteFrame config.json nor an adapter_config.json.")
    readme = folder / "README.md"
    if not readme.is_file():
        problems.append("README.md (the model card) is missing")
    else:
        card_text = readme.read_text(encoding="utf-8")
        problems += [f"README.md: {p}" for p in card_problems(card_text)]
        if for_upload and str(folder.resolve()) in card_text:
            problems.append("README.md: usage snippets point at the local folder; render the card with repo_id")
    for path in folder.glob("*.json"):
        try:
            _read_json(path)
        except ValueError as error:
            problems.append(f"{path.name} is not valid JSON: {error}")

    if kind == "adapter":
        from peft import PeftConfig

        for name in ADAPTER_FILES:
            if not (folder / name).is_file():
                problems.append(f"{name} is missing")
        if not problems:
            try:
                peft_config = PeftConfig.from_pretrained(str(folder))
            except Exception as error:  # peft raises several types for a bad config
                problems.append(f"adapter_config.json does not load with peft: {error}")
            else:
                base = peft_config.base_model_name_or_path or ""
                if _looks_local(base) or not base:
                    problems.append(f"adapter_config.json names the base model {base!r}, not a Hub repo id")
        if problems:
            raise HubFolderError(f"{folder} is not ready to publish:\n  - " + "\n  - ".join(problems))
        return

    from .modeling.configuration_liteframe import LiteFrameConfig

    try:
        (LiteFrameConfig if kind == "model" else LiteFrameVisionConfig).from_pretrained(folder)
    except Exception as error:  # strict dataclass validation raises several types
        problems.append(f"config.json does not load: {error}")
    config = _read_json(folder / "config.json")
    auto_map = config.get("auto_map") or {}
    for key in REQUIRED_AUTO_KEYS[kind]:
        if key not in auto_map:
            problems.append(f"config.json auto_map has no {key!r}")
    refs = _auto_map_refs(folder)
    pipelines = config.get("custom_pipelines") or {}
    refs += [("config.json custom_pipelines", info.get("impl", "")) for info in pipelines.values()]
    for source, ref in refs:
        if "--" in ref:
            problems.append(f"{source}: {ref!r} points at code in another repo; publish the code in this one")
            continue
        module, _, class_name = ref.rpartition(".")
        path = folder / f"{module}.py"
        if not module or not path.is_file():
            problems.append(f"{source}: {ref!r} needs {module}.py, which is not in the folder")
        elif class_name not in _defined_classes(path):
            problems.append(f"{source}: {module}.py does not define {class_name}")
    for path in sorted(folder.glob("*.py")):
        for needed in get_relative_import_files(str(path)):
            if not Path(needed).is_file():
                problems.append(f"{path.name} imports {Path(needed).name}, which is not in the folder")
    for task, info in pipelines.items():
        import transformers

        for name in info.get("pt", []):
            if not hasattr(transformers, name):
                problems.append(f"custom_pipelines[{task!r}]['pt'] names {name!r}, which transformers does not export")

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = set(_read_json(index).get("weight_map", {}).values())
        problems += [f"{shard} (listed in the safetensors index) is missing"
                     for shard in sorted(shards) if not (folder / shard).is_file()]
        stray = {p.name for p in folder.glob("*.safetensors")} - shards
        problems += [f"{name} is not referenced by model.safetensors.index.json" for name in sorted(stray)]
    elif not (folder / "model.safetensors").is_file():
        problems.append("no weights: model.safetensors (or a safetensors index) is missing")
    if list(folder.glob("*.bin")):
        problems.append("pickle weights (*.bin) found: publish safetensors only")
    if kind == "model" and not (folder / "generation_config.json").is_file():
        problems.append("generation_config.json is missing")
    if for_upload:
        local = str(folder.resolve())
        for path in folder.glob("*.json"):
            if local in path.read_text():
                problems.append(f"{path.name} contains the local path {local}")

    if not problems and fresh_process:
        auto_classes = [name for name in ("AutoProcessor", "AutoVideoProcessor") if name in auto_map]
        if "AutoProcessor" not in auto_map and any((folder / name).is_file() for name in TOKENIZER_FILES):
            auto_classes.append("AutoTokenizer")
        problems += _fresh_process_check(folder, kind, auto_classes)
    if problems:
        raise HubFolderError(f"{folder} is not ready to publish:\n  - " + "\n  - ".join(problems))


def _require_upload_access(token: str | None) -> str:
    """The token to upload with; fails before any work when offline or not logged in."""
    if constants.is_offline_mode():
        raise HubPublishError(
            "HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) is set, so nothing can be uploaded: unset it to push, or use "
            "`--dry-run OUT_DIR` (prepare_hub_folder) to write and check the folder without uploading."
        )
    token = token or get_token()
    if not token:
        raise HubPublishError(
            "no Hugging Face token found: run `hf auth login` (formerly `huggingface-cli login`), or set HF_TOKEN, or "
            "pass --token / token=; a token with write access is needed. Use `--dry-run OUT_DIR` to write and check "
            "the folder without uploading."
        )
    return token


def push_to_hub(
    model: Any,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    progress: Callable[[str], None] | None = print,
    **prepare_kwargs: Any,
) -> Any:
    """Prepare, validate and upload: `create_repo(exist_ok=True)` then `upload_folder`. Returns the CommitInfo.

    Fails fast (before any work) when offline or without a token; the folder is validated before the Hub is
    contacted, so a bad card never creates a repo. `private` applies when the repo is created (an existing repo
    keeps its visibility). `progress` receives the file list before the upload. Other keyword arguments go to
    `prepare_hub_folder`.
    """
    _check_repo_id(repo_id, "repo id")
    token = _require_upload_access(token)
    with tempfile.TemporaryDirectory(prefix="liteframe-push-") as tmp:
        folder = prepare_hub_folder(model, Path(tmp) / "repo", repo_id=repo_id, **prepare_kwargs)
        validate_hub_folder(folder.path, for_upload=True, fresh_process=False)
        if progress is not None:
            progress(format_file_list(folder))
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            logger.info("liteframe push: repo %s", url)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder.path,
                repo_type="model",
                commit_message=commit_message or f"Upload LiteFrame {folder.kind} (liteframe-hf {__version__})",
                revision=revision,
                create_pr=create_pr,
            )
        except Exception as error:  # transport errors differ across huggingface_hub versions (httpx, httpx2)
            status = getattr(getattr(error, "response", None), "status_code", None)
            hint = {
                401: "the token was rejected: log in again with `hf auth login` or set a valid HF_TOKEN",
                403: f"the token cannot write to {repo_id!r}: use a write token for a namespace you own",
            }.get(status, "check your network connection and token")
            kind = "HTTP error" if isinstance(error, HfHubHTTPError) else type(error).__name__
            raise HubPublishError(
                f"upload of {repo_id!r} to {constants.ENDPOINT} failed ({kind}: {error}); {hint}. The folder itself "
                "was valid: `--dry-run OUT_DIR` writes it for inspection without uploading."
            ) from error


def format_file_list(folder: HubFolder) -> str:
    def size(n: int) -> str:
        for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
            if n >= scale:
                return f"{n / scale:.1f} {unit}"
        return f"{n} B"

    width = max(len(name) for name in folder.files)
    lines = [f"{folder.kind} folder {folder.path} ({len(folder.files)} files, {size(folder.total_bytes)}):"]
    lines += [f"  {name.ljust(width)}  {size(n):>9}  ({n:,} bytes)" for name, n in folder.files.items()]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("model_dir", help="folder written by save_pretrained: a LiteFrame model, its vision encoder, or a PEFT adapter")
    add("--repo", required=True, help="Hub repo id, ORG/NAME")
    add("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    add("--dry-run", metavar="OUT_DIR", default=None,
        help="write exactly what would be uploaded into OUT_DIR, print the file list, upload nothing")
    add("--overwrite", action="store_true", help="with --dry-run: replace a non-empty OUT_DIR")
    add("--card-data", nargs="+", action="extend", default=[], metavar="JSON",
        help="benchmark / evaluation JSON files for the card's latency and accuracy tables "
             "(e.g. `liteframe bench arch --json`)")
    add("--vision-only", action="store_true", help="publish only the vision encoder of a full model")
    add("--processor", default=None, metavar="DIR", help="processor / tokenizer folder (default: the one in MODEL_DIR)")
    add("--build-processor", action="store_true",
        help="when MODEL_DIR has a tokenizer but no LiteFrame processor, build one from the tokenizer and the config")
    add("--max-shard-size", default="5GB", help="largest safetensors shard (default 5GB)")
    add("--base-model", nargs="+", action="extend", default=[], metavar="ORG/NAME",
        help="Hub id(s) of the base model: card metadata; for an adapter also its adapter_config.json")
    add("--license", default="apache-2.0", help="Hub license id (default apache-2.0; must suit the base model's license)")
    add("--datasets", nargs="+", action="extend", default=[], metavar="ID", help="training datasets (Hub ids)")
    add("--tags", nargs="+", action="extend", default=[], help="extra card tags")
    add("--language", nargs="+", action="extend", default=[], help="ISO language codes")
    add("--training-command", action="append", default=[], metavar="CMD",
        help="exact training command, shown verbatim (repeatable)")
    add("--training-config", action="append", default=[], metavar="FILE",
        help="training config file, shown verbatim (repeatable)")
    add("--token", default=None, help="Hub token (default: HF_TOKEN, then the `hf auth login` token)")
    add("--commit-message", default=None)
    add("--revision", default=None, help="branch to upload to")
    add("--create-pr", action="store_true", help="open a pull request instead of committing to the branch")
    add("--skip-remote-check", action="store_true",
        help="skip loading the folder in a fresh process without liteframe_hf")


def main(args: argparse.Namespace) -> int:
    prepare_kwargs = dict(
        processor=args.processor,
        vision_only=args.vision_only,
        build_processor=args.build_processor,
        max_shard_size=args.max_shard_size,
        base_model=args.base_model,
        license=args.license,
        datasets=args.datasets,
        tags=args.tags,
        language=args.language,
        card_data=args.card_data,
        training_commands=args.training_command,
        training_configs=args.training_config,
        check_remote_code=not args.skip_remote_check,
    )
    try:
        if args.dry_run:
            folder = prepare_hub_folder(args.model_dir, args.dry_run, repo_id=args.repo, overwrite=args.overwrite,
                                        **prepare_kwargs)
            print(format_file_list(folder))
            visibility = "private" if args.private else "public"
            print(f"dry run: nothing uploaded. Without --dry-run this folder goes to "
                  f"https://huggingface.co/{args.repo} ({visibility}).")
        else:
            commit = push_to_hub(args.model_dir, args.repo, private=args.private, token=args.token,
                                 commit_message=args.commit_message, revision=args.revision, create_pr=args.create_pr,
                                 **prepare_kwargs)
            print(f"uploaded: {getattr(commit, 'commit_url', commit)}")
    except HubPublishError as error:
        print(f"liteframe push: error: {error}", file=sys.stderr)
        return 2
    return 0
