"""Atomic file writes: a killed process never leaves a half-written output.

Why one function: checkpoints, coresets, dataset caches and every JSON result are written the same
way (a temporary file in the target's folder, flushed to disk, then renamed over the target, which
POSIX makes atomic), so each guarantee is implemented and tested once.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` on a temporary binary file beside ``path``, sync it, then rename it over ``path``.

    The parent folder is created. ``mkstemp`` creates the file private (0600); it gets the mode a plain
    ``open`` would give (0666 less the umask), like every other output of a run. On any error the
    temporary file is removed and ``path`` is left as it was.

    :param path: the file to (over)write
    :param write: writes the whole content to the open file it is given
    :return: ``path`` as a :class:`~pathlib.Path`
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file + rename); nothing when ``path`` is None."""
    if path is None:
        return
    text = json.dumps(data, indent=2, default=str).encode()
    atomic_write(path, lambda f: f.write(text))
