"""`parse_recipe` of training/ctd.py and training/lma.py. It loads liteframe_hf.training.config (PyYAML only) by path,
without liteframe_hf's __init__, which loads torch and transformers: --help and a bad flag answer at once. The module
is registered under its own name, so the package import that follows reuses it (and its dataclasses)."""

import importlib.util
import sys
from pathlib import Path


def parse_recipe(kind: str, argv: list[str] | None, description: str):
    """`parse_config` of the config dataclass named `kind` ("CTDConfig" or "LMAConfig")."""
    name = "liteframe_hf.training.config"
    if name not in sys.modules:
        package = importlib.util.find_spec("liteframe_hf")  # locates the package without importing it
        spec = importlib.util.spec_from_file_location(
            name, Path(package.submodule_search_locations[0]) / "training" / "config.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    config = sys.modules[name]
    return config.parse_config(getattr(config, kind), argv, description=description)
