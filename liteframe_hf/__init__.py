"""LiteFrame for Hugging Face: importing this package registers LiteFrame with the Auto classes.

After `import liteframe_hf`, `AutoConfig`, `AutoModel` and `AutoModelForImageTextToText` resolve
`model_type="liteframe"` / `"liteframe_vision"` to our classes without `trust_remote_code`, and every
`save_pretrained` of a LiteFrame model writes `auto_map` and copies the modeling files next to the weights,
so the folder loads with plain transformers (`trust_remote_code=True`) where this package is not installed.

`AutoModel` gives `LiteFrameForConditionalGeneration` (as InternVL's own remote code does): the model you
can `generate` with. `LiteFrameModel` (no LM head) is importable directly.

`pipeline("video-text-to-text", model=folder)` uses the pipeline registered here, without `trust_remote_code`, also
for the folders the package writes, whose `custom_pipelines` entry is there for plain transformers.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
from transformers.models.auto.video_processing_auto import AutoVideoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .modeling.configuration_liteframe import VISION_VARIANTS, LiteFrameConfig, LiteFrameVisionConfig
from .modeling.modeling_liteframe import (
    LiteFrameForConditionalGeneration,
    LiteFrameModel,
    LiteFramePreTrainedModel,
    LiteFrameVisionModel,
)
from .modeling.pipeline_liteframe import VideoTextToTextPipeline
from .modeling.processing_liteframe import LiteFrameProcessor
from .modeling.video_processing_liteframe import LiteFrameVideoProcessor

__version__ = "0.1.0"


def _register() -> None:
    AutoConfig.register("liteframe", LiteFrameConfig, exist_ok=True)
    AutoConfig.register("liteframe_vision", LiteFrameVisionConfig, exist_ok=True)
    AutoModel.register(LiteFrameConfig, LiteFrameForConditionalGeneration, exist_ok=True)
    AutoModel.register(LiteFrameVisionConfig, LiteFrameVisionModel, exist_ok=True)
    AutoModelForImageTextToText.register(LiteFrameConfig, LiteFrameForConditionalGeneration, exist_ok=True)
    AutoVideoProcessor.register(LiteFrameConfig, LiteFrameVideoProcessor, exist_ok=True)
    AutoProcessor.register(LiteFrameConfig, LiteFrameProcessor, exist_ok=True)
    # pt_model must be an Auto class name: saved configs record it and reloads resolve it inside transformers.
    PIPELINE_REGISTRY.register_pipeline("video-text-to-text", pipeline_class=VideoTextToTextPipeline,
                                        pt_model=AutoModelForImageTextToText, type="multimodal")


# The `custom_pipelines` entry hub.write_pipeline_entry puts in every folder the package writes, so that plain
# transformers runs the folder's copy of our pipeline (with trust_remote_code=True).
_OWN_PIPELINE_ENTRY = ("video-text-to-text", "pipeline_liteframe.VideoTextToTextPipeline")


def _custom_pipelines(config: LiteFrameConfig) -> dict:
    entries = config.__dict__.get("custom_pipelines")
    if entries is None:
        raise AttributeError("custom_pipelines")  # getattr(config, "custom_pipelines", {}) as before
    task, impl = _OWN_PIPELINE_ENTRY
    if (entries.get(task) or {}).get("impl") == impl:
        return {name: entry for name, entry in entries.items() if name != task}
    return entries


def _set_custom_pipelines(config: LiteFrameConfig, entries: dict) -> None:
    config.__dict__["custom_pipelines"] = entries


def _serve_own_pipeline_entry() -> None:
    # transformers' pipeline() lets a folder's custom_pipelines entry outrank a registered task and asks for
    # trust_remote_code before running it. With the package imported, our own entry names the pipeline registered
    # above, so LiteFrame configs read without it (only that entry: any other still needs trust_remote_code) and
    # the registered pipeline serves the task; saving still writes it (to_dict copies the attributes).
    LiteFrameConfig.custom_pipelines = property(_custom_pipelines, _set_custom_pipelines)


def _register_for_hub() -> None:
    # Marks the classes as remote code: save_pretrained then writes `auto_map` and copies their files.
    LiteFrameConfig.register_for_auto_class()
    LiteFrameVisionConfig.register_for_auto_class()
    LiteFrameForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    LiteFrameVisionModel.register_for_auto_class("AutoModel")
    LiteFrameVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    LiteFrameProcessor.register_for_auto_class("AutoProcessor")


_register()
_serve_own_pipeline_entry()
_register_for_hub()

__all__ = [
    "VISION_VARIANTS",
    "LiteFrameConfig",
    "LiteFrameVisionConfig",
    "LiteFrameForConditionalGeneration",
    "LiteFrameModel",
    "LiteFramePreTrainedModel",
    "LiteFrameVisionModel",
    "LiteFrameProcessor",
    "LiteFrameVideoProcessor",
    "VideoTextToTextPipeline",
]
