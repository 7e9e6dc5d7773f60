"""transformers' own common test mixins, imported as a library from the `transformers-tests` asset.

The asset holds the top-level tests/*.py of the transformers source package (sdist) of each supported release
(liteframe_hf/assets.py). The sdist leaves out four modules those files import; they are filled in here, none
with transformers' code:

- tests/generation/test_utils.py (GenerationTesterMixin) and tests/exporters/test_export.py (ExportTesterMixin):
  empty stand-ins, so test_modeling_common imports; no generation or export mixin test runs from them (our own
  generation tests stand in, tests/test_transformers_common.py).
- tests/utils/test_configuration_utils.py (config_common_kwargs, read by ConfigTester.check_config_arguments_init):
  our own non-default values of PreTrainedConfig's common arguments.
- utils/fetch_hub_objects_for_ci.py (url_to_local_path, for the processing mixin's hub fixtures): the video
  fixtures map to clips of the `videos` asset, anything else stays a URL (and fails offline if a test opens it).

Importing this module loads the installed release's files under the package name `transformers_common_tests`
(not `tests`, which is ours); `load()` returns it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

import pytest
import transformers

PACKAGE = "transformers_common_tests"


class GenerationTesterMixin:
    """Stands in for the mixin the sdist does not ship (tests/generation/test_utils.py): adds no tests."""


class ExportTesterMixin:
    """Stands in for the mixin the sdist does not ship (tests/exporters/test_export.py): adds no tests."""


def _stub(name: str, **attrs) -> None:
    module = types.ModuleType(name)
    module.__path__ = []  # a package too, so dotted children resolve
    module.__dict__.update(attrs)
    sys.modules[name] = module


def _config_common_kwargs() -> dict:
    # Every value differs from PreTrainedConfig's default, so ConfigTester sees each one set from kwargs.
    return {
        "return_dict": False,
        "output_hidden_states": True,
        "output_attentions": True,
        "dtype": "float16",  # ConfigTester compares this one with torch.float16
        "chunk_size_feed_forward": 5,
        "architectures": ["LiteFrameVisionModel"],
        "id2label": {0: "label"},
        "label2id": {"label": 0},
        "problem_type": "regression",
    }


def _url_to_local_path(url: str) -> str:
    from liteframe_hf.assets import asset_path

    local = {"big_buck_bunny_320x240_10s.mp4": "bigbuckbunny.mp4", "sample_demo_1_320x240.mp4": "bikes.mp4",
             "tiny_video_320x240.mp4": "carphone_pristine.mp4"}
    name = url.rsplit("/", 1)[-1]
    return str(asset_path(local[name])) if name in local else url


def tests_folder():
    """The installed release's tests/ folder in the asset cache; raises AssetNotFoundError / KeyError."""
    from liteframe_hf.assets import TRANSFORMERS_SDISTS, asset_path

    version = transformers.__version__
    if version not in TRANSFORMERS_SDISTS:
        raise KeyError(f"no pinned transformers sdist for the installed transformers {version} "
                       f"(liteframe_hf.assets.TRANSFORMERS_SDISTS has {', '.join(TRANSFORMERS_SDISTS)})")
    return asset_path("transformers-tests") / version / "tests"


def load() -> types.ModuleType:
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    folder = tests_folder()
    _stub(f"{PACKAGE}.generation")
    _stub(f"{PACKAGE}.generation.test_utils", GenerationTesterMixin=GenerationTesterMixin)
    _stub(f"{PACKAGE}.exporters")
    _stub(f"{PACKAGE}.exporters.test_export", ExportTesterMixin=ExportTesterMixin)
    _stub(f"{PACKAGE}.utils")
    _stub(f"{PACKAGE}.utils.test_configuration_utils", config_common_kwargs=_config_common_kwargs())
    if "fetch_hub_objects_for_ci" not in sys.modules:
        _stub("fetch_hub_objects_for_ci", url_to_local_path=_url_to_local_path)
    spec = importlib.util.spec_from_file_location(PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    for child in ("generation", "exporters", "utils"):
        setattr(package, child, sys.modules[f"{PACKAGE}.{child}"])
    return package


def module(name: str) -> types.ModuleType:
    """`module("test_modeling_common")`: one of the release's common test modules."""
    load()
    with warnings.catch_warnings():
        # their marks (flash_attn_test, torch_compile_test, ...) are registered by transformers' own conftest
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return importlib.import_module(f"{PACKAGE}.{name}")
