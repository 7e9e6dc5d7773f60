import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# The haystacks of the tiny needle benchmarks the tests build: three real clips, a scene description each.
NEEDLE_SCENES = {"bigbuckbunny.mp4": "A cartoon rabbit in a meadow.", "bikes.mp4": "A city street with bicycles.",
                 "carphone_pristine.mp4": "A man talks in a car."}


@pytest.fixture(scope="session")
def needle_haystacks(tmp_path_factory):
    """A `--haystacks` folder: the three clips (links into the asset cache) and their scenes.json."""
    from liteframe_hf.assets import ensure_assets

    videos = ensure_assets(["videos", "stamps"])["videos"]
    folder = tmp_path_factory.mktemp("haystacks")
    for name in NEEDLE_SCENES:
        os.symlink(videos / name, folder / name)
    (folder / "scenes.json").write_text(json.dumps(NEEDLE_SCENES))
    return folder


# ------------------------------------------------------------------------------ the tiny recipes' models
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> str:
    """A folder holding a tiny random DINOv2 (tests/tiny.py): a teacher for `liteframe-tiny` at 56 px."""
    from tiny import save_tiny_teacher

    return str(save_tiny_teacher(tmp_path_factory.mktemp("tiny_teacher")))


@pytest.fixture(scope="session")
def tiny_language_model(tmp_path_factory) -> str:
    """A folder holding a tiny random causal LM and its word-level tokenizer (tests/tiny.py)."""
    from tiny import save_tiny_language_model

    return str(save_tiny_language_model(tmp_path_factory.mktemp("tiny_llm")))


@pytest.fixture(scope="session")
def tiny_recipes(tmp_path_factory, tiny_teacher, tiny_language_model) -> dict[str, str]:
    """{"ctd": path, "lma": path}: tests/configs/{ctd,lma}_tiny.yaml with the tiny teacher / language model folders
    filled in, for `--config` (in process or in a launched script)."""
    folder = tmp_path_factory.mktemp("tiny_recipes")
    recipes = {}
    for stage, key, model in (("ctd", "teacher", tiny_teacher), ("lma", "language_model", tiny_language_model)):
        path = folder / f"{stage}_tiny.yaml"
        path.write_text((TESTS / "configs" / path.name).read_text() + f"{key}: {json.dumps(model)}\n")
        recipes[stage] = str(path)
    return recipes


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A saved tiny LiteFrame (56 px, 2-layer Qwen2) with a real word-level tokenizer and the LiteFrame processor
    (read-only: tests that change a model copy it first)."""
    import torch

    from liteframe_hf import LiteFrameForConditionalGeneration, LiteFrameProcessor, LiteFrameVideoProcessor

    from tiny import tiny_liteframe_config, tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    LiteFrameForConditionalGeneration(tiny_liteframe_config()).save_pretrained(path)
    video_processor = LiteFrameVideoProcessor(size={"height": 56, "width": 56}, num_frames=8)
    LiteFrameProcessor(video_processor, tiny_tokenizer(),
                       tokens_per_clip=tiny_liteframe_config().tokens_per_clip()).save_pretrained(path)
    return path
