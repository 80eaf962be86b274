"""Which folder a run writes to: a new run never replaces an earlier run's results unasked.

Why one rule for every CLI: a run folder holds hours of work (an agent, its logs, a coreset, a suite's
runs). Left to each CLI, a default folder was silently reused and a reused agent deleted the file it had
just been loaded from. The rule, as RL Zoo's: an unnamed (default) folder that already holds results gives
way to the first free ``<name>_1``, ``<name>_2``...; a folder the user named (``--out``) that holds results
is refused unless ``--overwrite``; ``--overwrite`` never reaches the file a run reads its agent from; a
resumed run keeps its own folder (it is not chosen here).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterable


def found_outputs(folder: Path, outputs: Iterable[str]) -> list[str]:
    """The names of ``outputs`` that exist in ``folder`` (an earlier run's results)."""
    return [name for name in outputs if (folder / name).exists()]


def free_folder(default: Path, outputs: Iterable[str]) -> Path:
    """``default`` when it holds none of ``outputs``, else the first ``<default>_N`` (N = 1, 2, ...) that holds
    none and is not a file."""
    outputs = tuple(outputs)
    candidate, n = default, 0
    while candidate.is_file() or found_outputs(candidate, outputs):
        n += 1
        candidate = default.with_name(f"{default.name}_{n}")
    return candidate


def _inside(path: Path, folder: Path, outputs: Iterable[str]) -> str | None:
    """The output of ``folder`` that holds ``path`` (the output itself or a file under it), or None."""
    resolved = path.resolve()
    for name in outputs:
        target = (folder / name).resolve()
        if resolved == target or target in resolved.parents:
            return name
    return None


def choose_folder(out: Path | None, default: Path, outputs: Iterable[str], *, overwrite: bool = False,
                  reads: Path | None = None, what: str = "run", flag: str = "--out") -> Path:
    """The folder a new run writes to (see the module's rule); raises ``ValueError`` naming ``--out`` and
    ``--overwrite`` where it refuses. A default folder that gives way is named on stderr.

    :param out: the folder the user named (None: ``default``)
    :param default: the CLI's default folder
    :param outputs: the names the run writes into its folder, the results an earlier run would have left
    :param overwrite: the user asked to replace an earlier run's results in the folder
    :param reads: a file the run reads (the agent it starts from): never inside what it would replace
    :param what: what the folder holds, for the messages (``run``, ``benchmark``, ``coreset``)
    :param flag: the option that names the folder, for the messages
    """
    outputs = tuple(outputs)
    folder = default if out is None else out
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} is a file; valid: a folder (new, or holding an earlier {what} with --overwrite)")
    found = found_outputs(folder, outputs)
    if not found:
        return folder
    if overwrite:
        hit = None if reads is None else _inside(reads, folder, outputs)
        if hit is not None:
            raise ValueError(f"--overwrite would delete {reads}, the agent this run starts from (its {hit}); "
                             f"copy it elsewhere first, or pick another {flag}")
        return folder
    if out is not None:
        raise ValueError(f"{flag} {folder} holds an earlier {what}'s results ({', '.join(found)}); pick another "
                         f"{flag}, or pass --overwrite to replace them")
    fresh = free_folder(default, outputs)
    print(f"note: {default} holds an earlier {what}'s results; this {what} writes to {fresh}", file=sys.stderr)
    return fresh


def clear_outputs(folder: Path, outputs: Iterable[str]) -> list[str]:
    """Remove the ``outputs`` an earlier run left in ``folder`` (files and folders) and return their names: what
    ``--overwrite`` does once :func:`choose_folder` allowed it (without it, ``tb/`` would keep every earlier run's logs
    and a suite's ``runs.jsonl`` would be continued)."""
    found = found_outputs(folder, outputs)
    for name in found:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return found
