"""Where the zoo keeps what it derives or downloads, and how it writes there without leaving partial files.

The cache is ``cache_dir`` if a function is given one, else ``$TAYLORLENS_CACHE``, else ``~/.cache/taylorlens``.
Every file is written under a temporary name in the same directory and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

CACHE_ENV_VARIABLE = "TAYLORLENS_CACHE"
DEFAULT_CACHE_DIR = Path("~/.cache/taylorlens")


def cache_directory(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` if given, else ``$TAYLORLENS_CACHE``, else ``~/.cache/taylorlens``."""
    chosen = cache_dir or os.environ.get(CACHE_ENV_VARIABLE) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser()


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary)`` on a sibling temporary path, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
