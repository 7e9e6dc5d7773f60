"""The transformers releases LiteFrame's remote code runs on, checked when any of its files is imported.

A saved LiteFrame folder is loaded with whatever transformers the user has (`trust_remote_code=True`); the code
relies on 5.x internals that change between minor releases (5.24 renamed the decoding cache from
`past_key_values` to `cache`). Outside the tested range it stops with a clear message instead of failing deep
inside `generate`. The lower end is the oldest release the code needs, the upper end the newest tested one.

This file is Hub remote code: absolute `transformers` imports only.
"""

import transformers
from packaging.version import Version

MIN_TRANSFORMERS = "5.23.0"
MAX_TRANSFORMERS = "5.24.0"  # newest tested; later 5.24.x patch releases are accepted


def check_transformers_version(version: str | None = None) -> None:
    """Raise ImportError when the running transformers (or `version`) is outside [MIN_TRANSFORMERS, 5.25)."""
    found = Version(version or transformers.__version__)
    upper = Version(MAX_TRANSFORMERS)
    if found.release < Version(MIN_TRANSFORMERS).release or found.release[:2] > upper.release[:2]:
        raise ImportError(
            f"LiteFrame's code supports transformers {MIN_TRANSFORMERS} to {upper.major}.{upper.minor}.x; this "
            f"environment has {found}. Install a supported release: pip install "
            f"'transformers>={MIN_TRANSFORMERS},<{upper.major}.{upper.minor + 1}'"
        )


check_transformers_version()

__all__ = ["check_transformers_version", "MIN_TRANSFORMERS", "MAX_TRANSFORMERS"]
