"""What one benchmark run is: a method at a ratio with a seed, under a configuration every run of a suite shares.

Why typed: every runner, the record and the resume key read the same fields; a misspelt key in a dict fails
hours into a suite, a misspelt attribute at once. The key hashes the configuration's :meth:`BenchConfig.as_dict`,
which leaves out the options a suite did not set, so suites recorded before an option existed keep their keys
and resume.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from envs.core.data import DataConfig
from envs.core.text import DEFAULT_SEQ_LEN, DEFAULT_VOCAB_SIZE
from envs.core.trainer import TrainerConfig

#: options that join :meth:`BenchConfig.as_dict` (and so the run keys) only when they differ from their default
OPTIONAL = ("holdout", "trusted", "reference", "vocab_size", "seq_len", "load_agent")


@dataclass(frozen=True)
class BenchConfig:
    """The configuration every run of a suite shares.

    :param dataset: a registry name of :mod:`envs.core.data`
    :param model: a registry name of :mod:`envs.core.models`
    :param trainer: the inner training's options (the fields of :class:`~envs.core.trainer.TrainerConfig`)
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param data_root: the dataset's folder (None: the usual places)
    :param train_size: the class-stratified training subset (None: all)
    :param task: the data problem (:mod:`envs.core.tasks`: ``clean``, ``noisy:sym:0.4``, ``imbalanced:100``...)
    :param anneal: dynamic suite: the fraction of epochs with selection
    :param score_epochs: static suite: the proxy run's epochs before its scores are read
    :param holdout: the held-out fraction a reference model trains on (None: no holdout)
    :param trusted: the holdout keeps clean labels
    :param reference: the reference model's options (:class:`~envs.core.reference.ReferenceConfig` fields)
    :param vocab_size: text data: the subword tokenizer's vocabulary
    :param seq_len: text data: token ids per sample
    :param load_agent: the saved agent ``dataagent_loaded`` runs (a train run's ``agent.zip``; None: none)
    """

    dataset: str
    model: str
    trainer: dict[str, Any]
    device: str = "cpu"
    data_root: str | None = None
    train_size: int | None = None
    task: str = "clean"
    anneal: float = 0.875
    score_epochs: int = 2
    holdout: float | None = None
    trusted: bool = False
    reference: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = DEFAULT_VOCAB_SIZE
    seq_len: int = DEFAULT_SEQ_LEN
    load_agent: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (records and run keys): every field, the :data:`OPTIONAL` ones only when not at their default."""
        out = {"dataset": self.dataset, "data_root": self.data_root, "model": self.model, "train_size": self.train_size,
               "task": self.task, "device": self.device, "anneal": self.anneal,
               "score_epochs": self.score_epochs, "trainer": dict(self.trainer)}
        defaults = BenchConfig("", "", {})
        out.update({name: getattr(self, name) for name in OPTIONAL if getattr(self, name) != getattr(defaults, name)})
        return out

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> BenchConfig:
        """The inverse of :meth:`as_dict` (a record's ``config``)."""
        return cls(**config)

    def data(self, seed: int) -> DataConfig:
        """The data options of a run with ``seed`` (its subset, noise and holdout are seeded by it)."""
        return DataConfig(train_size=self.train_size, task=self.task, root=self.data_root,
                          holdout=self.holdout, trusted=self.trusted, seed=seed, vocab_size=self.vocab_size,
                          seq_len=self.seq_len)

    def trainer_config(self, **changes: Any) -> TrainerConfig:
        """The inner training's options, with ``changes`` on top."""
        return TrainerConfig(**{**self.trainer, **changes})

    def reference_options(self) -> dict[str, Any]:
        """The reference model's options: ``reference`` over the default kind (the holdout when there is one, else
        swapped halves)."""
        return {"kind": "holdout" if self.holdout else "halves", **self.reference}



@dataclass(frozen=True)
class RunSpec:
    """One benchmark run: ``method`` of ``suite`` at ``ratio`` with ``seed``, under ``config``."""

    suite: str
    method: str
    ratio: float
    seed: int
    config: BenchConfig

    @property
    def key(self) -> str:
        """The run's identity in ``runs.jsonl``: a rerun of the suite skips the keys already there."""
        blob = json.dumps([self.suite, self.method, self.ratio, self.seed, self.config.as_dict()], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]
