import json
import os

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
