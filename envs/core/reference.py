"""Reference models: a learnability signal for every sample, trained once per configuration and paid for.

Why: a sample's own training loss cannot tell one worth learning from one that is mislabelled or
already learnt. RHO-LOSS (Mindermann et al. 2022) and JEST subtract the loss of a *reference* model
that never trained on the sample: what stays high for the learner but low for the reference is
learnable (``reducible_loss``); what is high for both is noise. The reference is scored once, in
eval mode without augmentation, on every training sample; the inner model's own loss comes from the
forward passes the trainer makes anyway, so the signal costs no extra forward of the inner model
(:class:`envs.core.store.SampleStore`).

Two kinds (:data:`REFERENCE_KINDS`):

``holdout``  one model trained on the data's holdout (:attr:`envs.core.data.DataConfig.holdout`, never
             trained on by the inner model; noisy like the rest, or clean with ``trusted``)
``halves``   no holdout: two models on swapped, class-stratified halves of the training set, each
             scoring the half it did not see (RHO-LOSS's holdout-free variant)

**Cost.** The reference's training is booked in the run's ledger under ``reference`` (back-propagated
samples and seconds) by :func:`attach_reference`, also when it came from the cache, so every
equal-cost comparison includes it.

**Cache.** A reference depends on the dataset, the data options (subset, noise, holdout, seed), the
labels themselves, the model and every training option. :func:`load_reference` keys it by all of
them: a benchmark trains it once per cell, and any change trains a new one. ``cache=True`` keeps one
file per key under ``<cache dir>/references``; ``cache=<path>`` uses that file and *refuses* it,
with a one-line error, when it holds another configuration's reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from envs.core import signals
from envs.core.checks import Options, is_count, is_real
from envs.core.data import CACHE_DIR, DeviceDataset, stratified_holdout
from envs.core.files import atomic_write
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig

REFERENCE_KINDS = ("holdout", "halves")


@dataclass
class ReferenceConfig(Options):
    """How the reference model is trained.

    :param kind: ``holdout`` (one model on the data's holdout) or ``halves`` (two models on swapped halves)
    :param model: the reference's architecture, a registry name; ``None``: the inner model's
    :param epochs: its training epochs; ``None``: the inner run's
    :param lr: its peak learning rate; ``None``: the inner run's
    :param seed: seeds its initialisation and shuffling (the halves' split uses the data seed)
    :param cache: ``True``: one file per configuration in the cache folder; ``False``: train every time;
        a file path: that file, refused when it holds another configuration's reference
    """

    keyword = "reference"
    kind: str = "holdout"
    model: str | None = None
    epochs: int | None = None
    lr: float | None = None
    seed: int = 0
    cache: bool | str | os.PathLike[str] = True

    def validate(self) -> None:
        checks = [
            ("kind", self.kind, isinstance(self.kind, str) and self.kind in REFERENCE_KINDS,
             f"one of {', '.join(REFERENCE_KINDS)}"),
            ("model", self.model, self.model is None or isinstance(self.model, str), "None or a model registry name"),
            ("epochs", self.epochs, self.epochs is None or (is_count(self.epochs) and self.epochs >= 1),
             "None or an integer >= 1"),
            ("lr", self.lr, self.lr is None or (is_real(self.lr) and self.lr > 0), "None or a number > 0"),
            ("seed", self.seed, is_count(self.seed) and self.seed >= 0, "an integer >= 0"),
            ("cache", self.cache, isinstance(self.cache, (bool, str, os.PathLike)), "True, False or a file path"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")

    def trainer_config(self, inner: TrainerConfig) -> TrainerConfig:
        """The reference's training options: the inner run's, with this config's epochs and lr."""
        return replace(inner, epochs=self.epochs or inner.epochs, lr=self.lr or inner.lr)


@dataclass
class ReferenceScores:
    """A reference model's view of every training sample, and what it cost.

    :param loss: ``(N,)`` its loss on each training label (the inner trainer's loss function)
    :param entropy: ``(N,)`` its normalised predictive entropy in [0, 1] (high: the reference is unsure)
    :param samples: samples its training back-propagated
    :param seconds: wall-clock of its training and scoring, as measured when it was trained
    :param key: the configuration it belongs to (:func:`reference_key`)
    :param top1: its test top-1 (%), mean over its models: how good a reference it is
    """

    loss: torch.Tensor
    entropy: torch.Tensor
    samples: int
    seconds: float
    key: dict[str, Any]
    top1: float = float("nan")


def reference_key(dataset: DeviceDataset, model: str, inner: TrainerConfig, reference: ReferenceConfig,
                  data: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a reference depends on: the data's name and options, a fingerprint of its training and
    holdout labels, the model and every training option (the cache setting aside)."""
    digest = hashlib.sha1()
    for t in (dataset.train_y, dataset.holdout_y):
        if t is not None:
            digest.update(t.cpu().numpy().tobytes())
    return {"dataset": dataset.name, "data": {k: str(v) if isinstance(v, os.PathLike) else v for k, v in data.items()},
            "num_train": dataset.num_train, "labels": digest.hexdigest(), "model": reference.model or model,
            "reference": {k: v for k, v in asdict(reference).items() if k != "cache"},
            "trainer": reference.trainer_config(inner).as_dict()}


def _train_and_score(train_on: DeviceDataset, score: DeviceDataset, idx: torch.Tensor, model: str,
                     config: TrainerConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """Train a model on ``train_on`` and return its losses and normalised entropies on ``score``'s samples
    ``idx``, how many samples it back-propagated and its test top-1."""
    trainer = Trainer(train_on, model, config, seed=seed, track_samples=False)
    for _ in range(config.epochs):
        trainer.train_epoch()
    logits, _ = trainer.embed(idx, dataset=score)
    losses = F.cross_entropy(logits, score.train_y[idx], reduction="none", label_smoothing=config.label_smoothing)
    if not torch.isfinite(losses).all():
        raise DivergenceError("the reference model diverged (non-finite loss); try a lower reference lr")
    return losses, signals.normalized_entropy(logits), trainer.ledger.samples_backpropagated, trainer.evaluate()["top1"]


def train_reference(dataset: DeviceDataset, model: str, inner: TrainerConfig, reference: ReferenceConfig,
                    key: dict[str, Any], data_seed: int = 0) -> ReferenceScores:
    """Train the reference of ``reference.kind`` and score every training sample of ``dataset``.

    :param dataset: the inner run's data (with a holdout for ``kind="holdout"``)
    :param model: the inner model's registry name (the reference's unless ``reference.model`` is set)
    :param inner: the inner run's training options (the reference's, see :meth:`ReferenceConfig.trainer_config`)
    :param reference: the reference's options
    :param key: its configuration (:func:`reference_key`), stored with the scores
    :param data_seed: seeds the halves' split
    """
    config, arch = reference.trainer_config(inner), reference.model or model
    sync = dataset.device.type == "cuda"
    if sync:
        torch.cuda.synchronize(dataset.device)
    start = time.perf_counter()
    n = dataset.num_train
    if reference.kind == "holdout":
        losses, entropy, samples, top1 = _train_and_score(dataset.holdout_split(), dataset,
                                                          torch.arange(n, device=dataset.device), arch, config, reference.seed)
    else:
        halves = [torch.as_tensor(h, device=dataset.device)
                  for h in stratified_holdout(dataset.train_y.cpu().numpy(), 0.5, data_seed, dataset.name)]
        losses, entropy = torch.empty(n, device=dataset.device), torch.empty(n, device=dataset.device)
        samples, top1 = 0, 0.0
        for m, (train_half, score_half) in enumerate((halves, halves[::-1])):
            part = dataset.with_training(dataset.train_x[train_half], dataset.train_y[train_half],
                                         dataset.train_y_true[train_half])
            lo, en, s, t = _train_and_score(part, dataset, score_half, arch, config, reference.seed + m)
            losses[score_half], entropy[score_half] = lo, en
            samples, top1 = samples + s, top1 + t / 2
    if sync:
        torch.cuda.synchronize(dataset.device)
    return ReferenceScores(losses, entropy, samples, time.perf_counter() - start, key, top1)


_MEMO: dict[str, ReferenceScores] = {}


def _key_hash(key: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _differences(stored: dict[str, Any], key: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(stored) | set(key) if stored.get(k) != key.get(k))


def load_reference(dataset: DeviceDataset, model: str, inner: TrainerConfig, reference: ReferenceConfig,
                   data: Mapping[str, Any], data_seed: int = 0) -> ReferenceScores:
    """The reference scores of this configuration: from memory or the cache when they were made before,
    else trained (and cached). A ``reference.cache`` file holding another configuration is refused.

    :param dataset: the inner run's data
    :param model: the inner model's registry name
    :param inner: the inner run's training options
    :param reference: the reference's options (checked here)
    :param data: the data options that built ``dataset`` (part of the key)
    :param data_seed: the seed of the data (subset, noise, holdout; the halves' split)
    """
    reference = ReferenceConfig.coerce(reference)
    if not isinstance(model, str):
        raise ValueError(f"a reference needs a registry model name, got {type(model).__name__}; valid: "
                         "ReferenceConfig(model=<registry name>) beside your own inner model")
    if reference.kind == "holdout" and dataset.holdout_x is None:
        raise ValueError("reference kind='holdout' needs data with a holdout; valid: data holdout=<fraction in (0, 0.5]>, "
                         "or reference kind='halves'")
    key = reference_key(dataset, model, inner, reference, data)
    h = _key_hash(key)
    path = (None if reference.cache is False else
            CACHE_DIR / "references" / f"{h}.pt" if reference.cache is True else Path(reference.cache))
    if path is not None and path.exists():
        stored = torch.load(path, map_location=dataset.device, weights_only=False)
        if stored["key"] != key:
            raise ValueError(f"reference cache {str(path)!r} belongs to another configuration (differs in "
                             f"{', '.join(_differences(stored['key'], key))}); valid: delete it or point cache= elsewhere")
        return ReferenceScores(stored["loss"], stored["entropy"], stored["samples"], stored["seconds"], key,
                               stored.get("top1", float("nan")))
    if reference.cache is not False and h in _MEMO:
        return _MEMO[h]
    scores = train_reference(dataset, model, inner, reference, key, data_seed)
    if path is not None:
        blob = {"key": key, "loss": scores.loss.cpu(), "entropy": scores.entropy.cpu(), "samples": scores.samples,
                "seconds": scores.seconds, "top1": scores.top1}
        atomic_write(path, lambda f: torch.save(blob, f))
        _MEMO[h] = scores
    return scores


def attach_reference(trainer: Trainer, scores: ReferenceScores) -> None:
    """Give ``trainer``'s sample store the reference's scores and book the reference's cost in its ledger
    (``reference_samples``, ``reference_seconds``), cached or not."""
    if trainer.store is None:
        raise ValueError("a reference needs a trainer with track_samples=True (its store holds the reference's scores)")
    trainer.store.set_reference(scores.loss, scores.entropy)
    trainer.ledger.reference_samples += scores.samples
    trainer.ledger.reference_seconds += scores.seconds
