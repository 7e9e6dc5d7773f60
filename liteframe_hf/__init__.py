"""LiteFrame for Hugging Face: importing this package registers LiteFrame with the Auto classes.

After `import liteframe_hf`, `AutoConfig`, `AutoModel` and `AutoModelForImageTextToText` resolve
`model_type="liteframe"` / `"liteframe_vision"` to our classes without `trust_remote_code`, and every
`save_pretrained` of a LiteFrame model writes `auto_map` and copies the modeling files next to the weights,
so the folder loads with plain transformers (`trust_remote_code=True`) where this package is not installed.

`AutoModel` gives `LiteFrameForConditionalGeneration` (as InternVL's own remote code does): the model you
can `generate` with. `LiteFrameModel` (no LM head) is importable directly.
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


def _register_for_hub() -> None:
    # Marks the classes as remote code: save_pretrained then writes `auto_map` and copies their files.
    LiteFrameConfig.register_for_auto_class()
    LiteFrameVisionConfig.register_for_auto_class()
    LiteFrameForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    LiteFrameVisionModel.register_for_auto_class("AutoModel")
    LiteFrameVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    LiteFrameProcessor.register_for_auto_class("AutoProcessor")


_register()
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
