"""Where the CLI keeps what it can rebuild: ``$XDG_CACHE_HOME/inferfleet``, else
``~/.cache/inferfleet``."""

import os
from pathlib import Path


def user_cache_dir(name: str) -> Path:
    """The folder ``name`` of the CLI's cache (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferfleet" / name
