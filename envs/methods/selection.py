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

from envs.core.checks import is_real
from envs.methods.ranking import tie_broken_order


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


SELECTIONS = ("topk", "soft", "importance")
SELECTION_OPTIONS = ("selection", "refresh", "temperature")  # how the kept set follows from the scores


class AnnealedTopKPlanner:
    """Keep ``floor(keep_ratio * N)`` samples chosen by score in each of the first
    ``floor(anneal * epochs)`` epochs, then all samples with weight 1 (InfoBatch's annealing).

    How the kept set follows from the scores (``selection``):

    - ``topk`` (Data Agent): the highest scores, ties at random;
    - ``soft``: a draw without replacement with probabilities from the scores (Gumbel top-k on
      ``log(score) / temperature``): every sample keeps a chance, higher scores a larger one. Hard
      top-k by a difficulty score is at or below random in BENCHMARKS.md, while InfoBatch, which
      drops *random* easy samples, is not; a soft draw keeps that randomness.
    - ``importance``: each sample is kept with probability ``pi_i`` proportional to its score (capped
      at 1, summing to the budget; systematic sampling keeps exactly the budget) and weighted
      ``1 / pi_i``, so a pruned epoch's expected gradient is the full epoch's whatever the scores
      (InfoBatch's rescaling, generalised). Scores that follow the per-sample gradient size lower
      its variance; constant scores give uniform random pruning with weight ``1 / keep_ratio``.

    ``refresh`` re-admits a random share of the budget: with ``topk``/``soft``, ``round(refresh *
    kept)`` places go to samples drawn uniformly from those the scores left out; with ``importance``
    it mixes that share of uniform probability into ``pi`` (which also bounds the weights by
    ``1 / (refresh * keep_ratio)``). Scores change only when a sample is drawn, so without it a
    sample scored low early may stay out, with a stale score, for the whole run.

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
    :param generator: random source of tie-breaking and draws (seed it for reproducible runs)
    :param selection: ``topk``, ``soft`` or ``importance``
    :param refresh: share of the kept budget re-admitted uniformly from the left-out samples (``importance``:
        mixed uniformly into the keep probabilities), in [0, 1]
    :param temperature: ``soft`` only: > 0; lower is closer to top-k, higher closer to uniform
    """

    def __init__(self, num_samples: int, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 loss_weight: float | None = None, initial_score: float = 1.0,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                 selection: str = "topk", refresh: float = 0.0, temperature: float = 1.0):
        checks = [
            ("num_samples", num_samples, isinstance(num_samples, int) and num_samples >= 1, "an integer >= 1"),
            ("epochs", epochs, isinstance(epochs, int) and epochs >= 1, "an integer >= 1"),
            ("keep_ratio", keep_ratio, is_real(keep_ratio) and 0.0 < keep_ratio <= 1.0, "(0, 1]"),
            ("anneal", anneal, is_real(anneal) and 0.0 <= anneal <= 1.0, "[0, 1]"),
            ("loss_weight", loss_weight, loss_weight is None or (is_real(loss_weight) and loss_weight > 0
                                                                 and selection != "importance"),
             "None or > 0 (None with selection='importance', whose weights are 1 / keep probability)"),
            ("selection", selection, selection in SELECTIONS, f"one of {', '.join(SELECTIONS)}"),
            ("refresh", refresh, is_real(refresh) and 0.0 <= refresh <= 1.0, "[0, 1]"),
            ("temperature", temperature, is_real(temperature) and temperature > 0, "> 0"),
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
        self.selection, self.refresh, self.temperature = selection, float(refresh), float(temperature)
        self.num_fresh = round(self.refresh * self.num_kept) if self.num_kept < num_samples else 0
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
        if self.selection == "importance":
            return self._importance_plan()
        ranked = self._ranking()
        chosen = self.num_kept - self.num_fresh
        kept = ranked[:chosen]
        if self.num_fresh:
            rest = ranked[chosen:]
            fresh = torch.randperm(len(rest), device=self.device, generator=self.generator)[: self.num_fresh]
            kept = torch.cat([kept, rest[fresh]])
        weights = torch.ones(self.num_samples, device=self.device)
        weights[kept] = self.loss_weight
        return EpochPlan(kept, weights, pruned=True)

    def keep_probabilities(self) -> torch.Tensor:
        """``pi``: proportional to the scores, capped at 1, summing to the kept budget, with the
        ``refresh`` share spread uniformly (no host sync: the cap is found by a vectorised water-filling)."""
        k, n = self.num_kept, self.num_samples
        s = self.scores.clamp_min(0.0)
        ordered, order = torch.sort(s, descending=True)
        # with the j highest capped at 1, the rest share k - j in proportion: c_j = (k - j) / sum of the rest
        rest = ordered.flip(0).cumsum(0).flip(0)  # rest[j] = sum of ordered[j:]
        j = torch.arange(n, device=s.device, dtype=s.dtype)
        c = (k - j) / rest.clamp_min(1e-12)
        fits = (c * ordered <= 1.0 + 1e-6) & (j < k)  # sample j itself is not pushed over 1
        first = torch.argmax(fits.to(torch.int8))  # the fewest capped samples that work
        pi_sorted = torch.where(j < first, torch.ones_like(ordered), (c[first] * ordered).clamp(max=1.0))
        pi = torch.empty_like(s).scatter_(0, order, pi_sorted)
        # fewer positive scores than the budget: keep them all, and spread the rest of the budget
        # uniformly over the zero-scored samples (there is nothing to be proportional to)
        positive = s > 0
        num_positive = positive.sum()
        spill = torch.where(positive, torch.ones_like(s), (k - num_positive) / (n - num_positive).clamp_min(1))
        pi = torch.where(num_positive <= k, spill, pi)
        return (1.0 - self.refresh) * pi + self.refresh * (k / n)

    def _importance_plan(self) -> EpochPlan:
        """Systematic sampling with inclusion probabilities :meth:`keep_probabilities`: exactly the
        budget (up to rounding), weights ``1 / pi``."""
        pi = self.keep_probabilities()
        perm = torch.randperm(self.num_samples, device=self.device, generator=self.generator)
        start = torch.rand((), device=self.device, generator=self.generator, dtype=pi.dtype)
        cum = torch.cumsum(pi[perm], 0) - start
        ticks = torch.floor(cum)
        previous = torch.cat([torch.floor(-start).reshape(1), ticks[:-1]])
        kept = perm[ticks > previous]
        weights = torch.ones(self.num_samples, device=self.device)
        weights[kept] = 1.0 / pi[kept]
        return EpochPlan(kept, weights, pruned=True)

    def _ranking(self) -> torch.Tensor:
        """Every sample index, best first: by score (``topk``) or by a Gumbel-perturbed log-score (``soft``)."""
        return tie_broken_order(self.scores, descending=True, generator=self.generator,
                                key=self._gumbel_keys if self.selection == "soft" else None)

    def _gumbel_keys(self, scores: torch.Tensor) -> torch.Tensor:
        """``log(score) / temperature`` plus Gumbel noise: sorting these samples without replacement."""
        u = torch.rand(self.num_samples, device=self.device, generator=self.generator).clamp_(1e-12, 1.0 - 1e-7)
        return scores.clamp_min(1e-6).log() / self.temperature - torch.log(-torch.log(u))

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
