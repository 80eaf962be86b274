"""Per-epoch data selection: scores -> which samples train this epoch, with which loss weight.

Why a separate object: the mechanism (keep the top fraction by score, re-weight the kept losses,
train on all data once annealing starts) is shared by Data Agent and by dynamic-pruning baselines
that only differ in how they score samples. Keeping it out of the environment lets one tested
implementation serve them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from envs.checks import is_real


@dataclass(frozen=True)
class EpochPlan:
    """What one epoch trains.

    :param indices: kept sample indices (unshuffled; the trainer shuffles them)
    :param weights: per-sample loss weight over the whole training set, ``(N,)``
    :param pruned: whether this epoch is a pruned (selection) epoch
    """

    indices: torch.Tensor
    weights: torch.Tensor
    pruned: bool


class AnnealedTopKSelector:
    """Keep the ``floor(keep_ratio * N)`` highest-scored samples in each of the first
    ``floor(anneal * epochs)`` epochs, then all samples with weight 1 (InfoBatch's annealing).

    Scores start at ``initial_score`` (1.0: the top of the [0, 1] score range, so samples that were
    never scored rank first and every sample is visited early). Ties are broken uniformly at random
    with ``generator``. Scores of samples that are not drawn stay as they were (stale) until the
    samples are drawn again, as in Data Agent.

    :param num_samples: size ``N`` of the training set
    :param epochs: epochs of the run
    :param keep_ratio: fraction of samples kept per pruned epoch, in (0, 1]
    :param anneal: fraction of epochs with selection, in [0, 1]
    :param loss_weight: loss weight of the kept samples in pruned epochs; ``None`` means
        ``1 / keep_ratio`` (Data Agent rescales every kept sample, which keeps the expected
        gradient of a pruned epoch at full-data scale); 1.0 disables re-weighting
    :param initial_score: score of every sample before it is first scored
    :param device: where scores and indices live
    :param generator: random source of tie-breaking (seed it for reproducible runs)
    """

    def __init__(self, num_samples: int, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 loss_weight: float | None = None, initial_score: float = 1.0,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        checks = [
            ("num_samples", num_samples, isinstance(num_samples, int) and num_samples >= 1, "an integer >= 1"),
            ("epochs", epochs, isinstance(epochs, int) and epochs >= 1, "an integer >= 1"),
            ("keep_ratio", keep_ratio, is_real(keep_ratio) and 0.0 < keep_ratio <= 1.0, "(0, 1]"),
            ("anneal", anneal, is_real(anneal) and 0.0 <= anneal <= 1.0, "[0, 1]"),
            ("loss_weight", loss_weight, loss_weight is None or (is_real(loss_weight) and loss_weight > 0), "None or > 0"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
        self.num_samples = num_samples
        self.epochs = epochs
        self.keep_ratio = float(keep_ratio)
        self.num_kept = max(1, math.floor(keep_ratio * num_samples))
        self.pruned_epochs = math.floor(anneal * epochs)
        self.loss_weight = 1.0 / keep_ratio if loss_weight is None else float(loss_weight)
        self.device = torch.device(device)
        self.generator = generator
        self.scores = torch.full((num_samples,), float(initial_score), device=self.device)
        self._ones = torch.ones(num_samples, device=self.device)
        self._all = torch.arange(num_samples, device=self.device)

    def is_pruned(self, epoch: int) -> bool:
        """Whether ``epoch`` trains on a selected subset (before annealing)."""
        return epoch < self.pruned_epochs

    def update(self, idx: torch.Tensor, scores: torch.Tensor) -> None:
        """Record the latest scores of the samples ``idx`` (overwrites; no host sync)."""
        self.scores[idx] = scores.to(self.scores.dtype)

    def plan(self, epoch: int) -> EpochPlan:
        """The samples and loss weights of ``epoch``."""
        if not self.is_pruned(epoch):
            return EpochPlan(self._all, self._ones, pruned=False)
        # a random permutation then a stable sort: equal scores keep the random order
        perm = torch.randperm(self.num_samples, device=self.device, generator=self.generator)
        order = torch.sort(self.scores[perm], descending=True, stable=True).indices
        kept = perm[order[: self.num_kept]]
        weights = torch.ones(self.num_samples, device=self.device)
        weights[kept] = self.loss_weight
        return EpochPlan(kept, weights, pruned=True)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        """Scores and the tie-breaking generator's state, for checkpoints."""
        return {"scores": self.scores.clone(), "generator": None if self.generator is None else self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.scores.copy_(state["scores"])
        if self.generator is not None and state["generator"] is not None:
            self.generator.set_state(state["generator"])

    def backprop_count(self, batch_size: int) -> int:
        """Samples back-propagated over the whole run when every epoch's last batch is padded to
        ``batch_size`` (see :func:`fixed_size_batches`): the analytic cost of a run."""
        pruned = self.pruned_epochs * math.ceil(self.num_kept / batch_size)
        full = (self.epochs - self.pruned_epochs) * math.ceil(self.num_samples / batch_size)
        return (pruned + full) * batch_size


def fixed_size_batches(batches: list[torch.Tensor], batch_size: int) -> tuple[list[torch.Tensor], int]:
    """Pad the last of an epoch's shuffled ``batches`` to ``batch_size`` with the epoch's first
    samples, so every batch has the same shape. Returns the batches and how many samples the last
    one received as padding (they are really trained twice this epoch, and counted as such).

    The padding samples are distinct from the last batch's own samples as long as the epoch has at
    least ``batch_size`` samples."""
    last = batches[-1]
    missing = batch_size - len(last)
    if missing == 0:
        return batches, 0
    if len(batches) < 2:
        raise ValueError(f"an epoch of {len(last)} samples cannot fill a batch of {batch_size} without repeats")
    return [*batches[:-1], torch.cat([last, batches[0][:missing]])], missing
