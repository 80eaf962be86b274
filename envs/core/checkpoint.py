"""Checkpoints that survive kills: atomic writes, integrity checks, clear refusals.

Why: selection runs last hours. A kill during a save must never leave a checkpoint that loads half-way. A
checkpoint from another configuration must never be loaded into this one. So every file is written to a
temporary name and renamed (atomic on POSIX), carries a SHA-256 of its payload, and records the run
configuration it belongs to. Loading checks all three and raises :class:`CheckpointError` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.core.distributed import is_leader
from envs.core.files import atomic_write

FORMAT = "data-select-gym-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another configuration."""


class CorruptCheckpoint(CheckpointError):
    """A checkpoint file that does not load (truncated, another format, failed checksum): an older one may."""


def rng_state() -> dict[str, Any]:
    """The state of every global RNG a run touches: Python, NumPy, torch CPU and CUDA."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def save_checkpoint(path: str | Path, payload: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``payload`` for the run described by ``config`` to ``path``, atomically."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    blob = buf.getvalue()
    record = {"format": FORMAT, "config": _canonical(config), "sha256": hashlib.sha256(blob).hexdigest(), "payload": blob}
    return atomic_write(path, lambda f: torch.save(record, f))


def load_checkpoint(path: str | Path, config: dict[str, Any] | None = None, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    :param config: when given, the checkpoint's recorded configuration must equal it
    :raises CheckpointError: missing or truncated file, wrong format, checksum mismatch, other configuration
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or overwritten zip archive fails in many ways
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} is corrupt or truncated and was not loaded ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} is not a {FORMAT} file")
    blob = record["payload"]
    if hashlib.sha256(blob).hexdigest() != record["sha256"]:
        raise CorruptCheckpoint(f"checkpoint {str(path)!r} failed its checksum: its payload is corrupt")
    if config is not None and record["config"] != _canonical(config):
        saved, wanted = json.loads(record["config"]), json.loads(_canonical(config))
        diff = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        details = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {wanted.get(k)!r}" for k in diff)
        raise CheckpointError(f"checkpoint {str(path)!r} belongs to another configuration ({details}); refusing to load it")
    return torch.load(io.BytesIO(blob), map_location=map_location, weights_only=False)


class CheckpointDir:
    """Numbered checkpoints in one folder, keeping the last ``keep``.

    :param folder: where ``ckpt-<step>.pt`` files live
    :param keep: how many of the newest checkpoints to keep (older ones are deleted after each save)
    """

    PATTERN = re.compile(r"^ckpt-(\d+)\.pt$")

    def __init__(self, folder: str | Path, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep={keep} must be >= 1")
        self.folder = Path(folder)
        self.keep = keep

    def steps(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := self.PATTERN.match(p.name)))

    def path(self, step: int) -> Path:
        return self.folder / f"ckpt-{step:010d}.pt"

    def save(self, step: int, payload: dict[str, Any], config: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` and delete those beyond the newest ``keep``. Under ``torchrun`` only rank 0
        writes: every rank holds the same run, and every rank reads rank 0's checkpoints to resume."""
        if not is_leader():
            return self.path(step)
        out = save_checkpoint(self.path(step), payload, config)
        for old in self.steps()[: -self.keep]:
            self.path(old).unlink(missing_ok=True)
        return out

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def load_newest(self, config: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any], list[str]]:
        """The newest checkpoint that loads, its payload, and why each newer one was skipped: a corrupt newest
        checkpoint (a disk error, a copy cut short) costs the epochs since the one before it, not the run.

        :param config: the configuration every checkpoint must match (:func:`load_checkpoint`)
        :raises CheckpointError: no checkpoint; the newest one that loads belongs to another configuration; none
            loads (the newest one's reason)
        """
        skipped: list[str] = []
        for step in reversed(self.steps()):
            try:
                return self.path(step), load_checkpoint(self.path(step), config), skipped
            except CorruptCheckpoint as err:
                skipped.append(str(err))
        if not skipped:
            raise CheckpointError(f"no checkpoint in {self.folder}")
        older = f"; the {len(skipped) - 1} older one(s) do not load either" if len(skipped) > 1 else ""
        raise CheckpointError(f"{skipped[0]}{older}")
