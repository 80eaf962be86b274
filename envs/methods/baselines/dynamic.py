"""Dynamic (per-epoch) selection baselines on the shared trainer and ledger.

Why here: these methods need no agent. Each epoch they rank samples from the per-sample statistics that
the trainer already records on every training forward pass (:class:`envs.core.store.SampleStore`), so
ranking costs no extra forward pass. Every top-k method reuses Data Agent's own mechanism
(:class:`envs.methods.selection.AnnealedTopKPlanner`: keep ``floor(keep_ratio * N)``, weight kept losses by
``1/keep_ratio``, anneal to full data after ``anneal * epochs``). A comparison with Data Agent therefore
differs only in *who* is kept. InfoBatch has its own mechanics (below).

Methods (the registry :data:`DYNAMIC_BASELINES`), definitions in docs/methods.md C.1:

``full``       all data every epoch
``random``     a fresh uniform subset each pruned epoch
``rs2``        RS2 (Okanovic et al., ICLR 2024): each pruned epoch the next samples of a random order, drawn
               without replacement until the data is exhausted, then a fresh order
``oracle``     reads the task's provenance (:mod:`envs.methods.oracle`): never noisy samples or copies,
               minority classes first; a ceiling of the scores, never offered as a real method
``stale``      the least recently trained samples (ties at random): the staleness-only control of
               Data Agent, whose scores change only when a sample is drawn
``loss_topk``  the highest last loss (online batch selection, per epoch)
``ucb``        highest ``loss_ema + c * std`` (std from the EMA of the squared loss)
``epsgreedy``  highest last loss, with a fraction ``epsilon`` of the budget drawn at random from the rest
``composite``  highest Data Agent composite score ``lam * L~ + (1 - lam) * H~`` over the whole set,
               without RL (the paper's "top-k without the agent" ablation)
``infobatch``  prune a random fraction ``prune_ratio`` of the samples whose last loss is below the mean,
               rescale the remaining below-mean ones by ``1/(1 - prune_ratio)``, anneal
``rholoss``    per batch: forward ``candidate_factor`` x the batch, back-propagate the top share by
               reducible loss (needs a reference model, :mod:`envs.core.reference`)
``proxy_loss`` per batch: a small proxy model trained alongside ranks the candidates by its loss

The last two (:data:`PER_BATCH_BASELINES`) choose inside each step (:mod:`envs.methods.candidates`), so
they have no epoch plan: :func:`run_dynamic` runs them, the drop-in ``Selector`` (a Sampler) cannot.
"""

from __future__ import annotations

import functools
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from envs.core.data import DeviceDataset
from envs.core.store import SampleStore
from envs.core.trainer import Trainer
from envs.methods.candidates import CandidateRanker, ProxyLoss, RhoLoss, train_candidate_epoch
from envs.methods.oracle import oracle_priority, real_methods
from envs.methods.reward_terms import composite_signal
from envs.methods.selection import AnnealedTopKPlanner, EpochPlan


class DynamicBaseline(Protocol):
    """Chooses each epoch's samples and loss weights from the per-sample store.

    A baseline may also have ``needs``: the forward-pass outputs besides the losses that its store must be
    updated with (``"logits"`` for the entropy, ``"labels"``...); the drop-in :class:`agents.Selector`
    asks its caller for them. None: the losses suffice."""

    def plan(self, epoch: int, store: SampleStore) -> EpochPlan: ...


def _unseen_first(values: torch.Tensor) -> torch.Tensor:
    """Samples never seen (NaN statistics) rank above every seen one."""
    return torch.nan_to_num(values, nan=float("inf"))


class ScoredTopK:
    """Top-k by a score read from the store, on Data Agent's selection mechanism.

    :param method: one of ``random``, ``stale``, ``loss_topk``, ``ucb``, ``epsgreedy``, ``composite``
    :param num_samples: training-set size
    :param num_classes: classes of the task (normalises the entropy of ``composite``)
    :param epochs: epochs of the run
    :param keep_ratio: fraction kept per pruned epoch
    :param anneal: fraction of epochs with selection
    :param ucb_c: UCB's exploration weight ``c``
    :param epsilon: ε-greedy's random fraction of the budget
    :param generator: random source (ties, random picks)
    """

    def __init__(self, method: str, num_samples: int, num_classes: int, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 ucb_c: float = 1.0, epsilon: float = 0.1, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None):
        if method not in TOPK_SCORES:
            raise ValueError(f"method={method!r} is not a top-k method; valid choices: {', '.join(TOPK_SCORES)}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon={epsilon!r} is invalid; valid: [0, 1]")
        if ucb_c < 0:
            raise ValueError(f"ucb_c={ucb_c!r} is invalid; valid: >= 0")
        self.method, self.num_classes, self.ucb_c, self.epsilon = method, num_classes, ucb_c, epsilon
        self.needs = ("logits",) if method == "composite" else ()  # the composite score reads the entropy
        self.generator = generator
        self.planner = AnnealedTopKPlanner(num_samples, epochs, keep_ratio, anneal, device=device, generator=generator)

    def scores(self, store: SampleStore) -> torch.Tensor:
        """This epoch's score of every sample (the highest are kept)."""
        # one uniform draw per sample for every method, used or not: the generator's stream (and so every
        # later tie-break) is the same whichever score is read
        rand = torch.rand(store.num_samples, device=store.last_loss.device, generator=self.generator)
        return TOPK_SCORES[self.method](self, store, rand)

    def plan(self, epoch: int, store: SampleStore) -> EpochPlan:
        if self.planner.is_pruned(epoch):
            self.planner.update(torch.arange(store.num_samples, device=store.last_loss.device), self.scores(store))
        return self.planner.plan(epoch)


def composite_score(losses: torch.Tensor, entropies: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Data Agent's composite score (:func:`envs.data_agent.rewards.composite_signal`) over a whole set instead of a
    batch: the entropies (nats) are normalised by ``log C``. NaN (unseen) entries stay NaN."""
    seen = ~torch.isnan(losses)
    out = torch.full_like(losses, float("nan"))
    if seen.sum() < 2:
        return out
    out[seen] = composite_signal(losses[seen], entropies[seen] / math.log(num_classes))[0]
    return out


def _epsgreedy_scores(topk: ScoredTopK, store: SampleStore, rand: torch.Tensor) -> torch.Tensor:
    """The greedy top by last loss scores 2, ``epsilon`` of the budget drawn at random from the rest 1, others -1."""
    loss = _unseen_first(store.last_loss)
    k = topk.planner.num_kept
    explore = int(round(topk.epsilon * k))
    greedy = torch.argsort(loss, descending=True)[: k - explore]
    bonus = torch.full_like(loss, float("inf"))
    bonus[greedy] = 0.0
    rest = torch.nonzero(bonus > 0).squeeze(1)
    picked = rest[torch.randperm(len(rest), device=loss.device, generator=topk.generator)[:explore]]
    out = torch.full_like(loss, -1.0)
    out[greedy] = 2.0
    out[picked] = 1.0
    return out


def _ucb_scores(topk: ScoredTopK, store: SampleStore, rand: torch.Tensor) -> torch.Tensor:
    std = (store.loss_sq_ema - store.loss_ema**2).clamp_min(0).sqrt()
    return _unseen_first(store.loss_ema + topk.ucb_c * std)


#: score of each top-k method: ``(the ScoredTopK, the store, one uniform draw per sample) -> scores``
TOPK_SCORES: dict[str, Callable[[ScoredTopK, SampleStore, torch.Tensor], torch.Tensor]] = {
    "random": lambda topk, store, rand: rand,
    # never trained (-1) first; equal epochs keep the planner's random order
    "stale": lambda topk, store, rand: -store.last_epoch.float(),
    "loss_topk": lambda topk, store, rand: _unseen_first(store.last_loss),
    "ucb": _ucb_scores,
    "epsgreedy": _epsgreedy_scores,
    "composite": lambda topk, store, rand: _unseen_first(composite_score(store.last_loss, store.entropy, topk.num_classes)),
}


class InfoBatch:
    """InfoBatch (Qin et al., ICLR 2024): each pruned epoch, prune a random ``prune_ratio`` of the samples whose
    last loss is below the mean loss, and rescale the remaining below-mean samples by ``1/(1 - prune_ratio)``.
    Samples not yet seen have score ``initial_score`` (3, as in InfoBatch). After ``anneal * epochs``, all data
    with weight 1.

    ``prune_ratio`` is the pruned fraction of the *well-learned* samples, not a kept fraction: the kept
    fraction of an epoch is ``1 - prune_ratio * |below mean| / N`` and varies from epoch to epoch.
    The ledger measures it. To compare with Data Agent at equal saving, compare back-propagated samples.

    :param num_samples: training-set size
    :param epochs: epochs of the run
    :param prune_ratio: fraction of below-mean samples pruned, in [0, 1)
    :param anneal: fraction of epochs with pruning
    """

    def __init__(self, num_samples: int, epochs: int, prune_ratio: float = 0.5, anneal: float = 0.875,
                 initial_score: float = 3.0, device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        if not 0.0 <= prune_ratio < 1.0:
            raise ValueError(f"prune_ratio={prune_ratio!r} is invalid; valid: [0, 1)")
        if not 0.0 <= anneal <= 1.0:
            raise ValueError(f"anneal={anneal!r} is invalid; valid: [0, 1]")
        self.prune_ratio = prune_ratio
        self.pruned_epochs = math.floor(anneal * epochs)
        self.initial_score = initial_score
        self.generator = generator
        self._all = torch.arange(num_samples, device=device)

    def plan(self, epoch: int, store: SampleStore) -> EpochPlan:
        n = store.num_samples
        weights = torch.ones(n, device=self._all.device)
        if epoch >= self.pruned_epochs:
            return EpochPlan(self._all, weights, pruned=False)
        scores = torch.nan_to_num(store.last_loss, nan=self.initial_score)
        well_learned = scores < scores.mean()
        prune = well_learned & (torch.rand(n, device=scores.device, generator=self.generator) < self.prune_ratio)
        weights[well_learned & ~prune] = 1.0 / (1.0 - self.prune_ratio)
        return EpochPlan(self._all[~prune], weights, pruned=True)


class FixedScoreTopK(ABC):
    """Data Agent's selection mechanism on scores that do not depend on training: each pruned epoch keeps the
    top ``keep_ratio`` of :meth:`epoch_scores`. Base of :class:`RS2` and :class:`Oracle`.

    :param num_samples: training-set size
    :param epochs: epochs of the run
    :param keep_ratio: fraction kept per pruned epoch
    :param anneal: fraction of epochs with selection
    :param generator: random source
    """

    def __init__(self, num_samples: int, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        self.generator = generator
        self.planner = AnnealedTopKPlanner(num_samples, epochs, keep_ratio, anneal, device=device, generator=generator)
        self._all = torch.arange(num_samples, device=device)

    @abstractmethod
    def epoch_scores(self) -> torch.Tensor:
        """This pruned epoch's score of every sample (the highest ``num_kept`` are kept)."""

    def plan(self, epoch: int, store: SampleStore) -> EpochPlan:
        if self.planner.is_pruned(epoch):
            self.planner.update(self._all, self.epoch_scores())
        return self.planner.plan(epoch)


class RS2(FixedScoreTopK):
    """RS2 without replacement (Okanovic et al., ICLR 2024): each pruned epoch keeps the next ``num_kept`` samples
    of a random order of the whole set; when fewer are left, it keeps those and starts a fresh order (where
    they come last) for the rest. Kept losses are weighted ``1/keep_ratio`` like every top-k method here."""

    def __init__(self, num_samples: int, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None):
        super().__init__(num_samples, epochs, keep_ratio, anneal, device, generator)
        self._order = torch.randperm(num_samples, device=device, generator=generator)
        self._pos = 0

    def epoch_scores(self) -> torch.Tensor:
        k, n = self.planner.num_kept, len(self._all)
        take = self._order[self._pos:self._pos + k]
        self._pos += len(take)
        if len(take) < k:  # the order is exhausted: reshuffle, the samples just taken last
            fresh = torch.randperm(n, device=self._all.device, generator=self.generator)
            taken = torch.zeros(n, dtype=torch.bool, device=fresh.device)
            taken[take] = True
            self._order = fresh[torch.argsort(taken[fresh].int(), stable=True)]
            self._pos = k - len(take)
            take = torch.cat([take, self._order[:self._pos]])
        scores = torch.zeros(n, device=self._all.device)
        scores[take] = 1.0
        return scores


class Oracle(FixedScoreTopK):
    """The oracle (:mod:`envs.methods.oracle`): each pruned epoch keeps the highest :func:`oracle_priority`
    (a fresh random order among equals).

    :param dataset: the training set with its provenance
    """

    def __init__(self, dataset: DeviceDataset, epochs: int, keep_ratio: float = 0.5, anneal: float = 0.875,
                 generator: torch.Generator | None = None):
        super().__init__(dataset.num_train, epochs, keep_ratio, anneal, dataset.device, generator)
        self.dataset = dataset

    def epoch_scores(self) -> torch.Tensor:
        return oracle_priority(self.dataset, self.generator)


class FullData:
    """Every sample, weight 1, every epoch."""

    def __init__(self, num_samples: int, device: torch.device | str = "cpu"):
        self._all = torch.arange(num_samples, device=device)
        self._ones = torch.ones(num_samples, device=device)

    def plan(self, epoch: int, store: SampleStore) -> EpochPlan:
        return EpochPlan(self._all, self._ones, pruned=False)


@dataclass(frozen=True)
class DynamicSetup:
    """Everything a dynamic baseline may be built from: the run's sizes and every baseline option.

    :param num_samples: training-set size
    :param num_classes: classes of the task
    :param epochs: epochs of the run
    :param keep_ratio: fraction kept per pruned epoch (top-k methods)
    :param anneal: fraction of epochs with selection
    :param prune_ratio: InfoBatch's pruned fraction of the below-mean samples
    :param ucb_c: UCB's exploration weight
    :param epsilon: ε-greedy's random fraction of the budget
    :param device: where the selection runs
    :param generator: the baseline's random source
    :param candidate_factor: per-batch methods' candidates per trained sample (RHO-LOSS's 10)
    :param dataset: the training set with its provenance (the oracle reads it; None: no oracle)
    """

    num_samples: int
    num_classes: int
    epochs: int
    keep_ratio: float = 0.5
    anneal: float = 0.875
    prune_ratio: float = 0.5
    ucb_c: float = 1.0
    epsilon: float = 0.1
    device: torch.device | str = "cpu"
    generator: torch.Generator | None = None
    candidate_factor: float = 10.0
    dataset: DeviceDataset | None = None


    @classmethod
    def of(cls, trainer: Trainer, **options: Any) -> DynamicSetup:
        """The setup of ``trainer``'s run: its sizes, device and shuffling generator (which draws the baseline's
        random numbers too) and its training set (the oracle reads its provenance), with the baseline ``options``."""
        return cls(trainer.dataset.num_train, trainer.dataset.num_classes, trainer.config.epochs, device=trainer.device,
                   generator=trainer.generator, dataset=trainer.dataset, **options)


def _oracle(s: DynamicSetup) -> Oracle:
    if s.dataset is None:
        raise ValueError("method 'oracle' reads the training set's provenance; valid: DynamicSetup.of(trainer) "
                         "or DynamicSetup(..., dataset=<the DeviceDataset>)")
    return Oracle(s.dataset, s.epochs, s.keep_ratio, s.anneal, s.generator)



def _scored_topk(method: str, s: DynamicSetup) -> ScoredTopK:
    return ScoredTopK(method, s.num_samples, s.num_classes, s.epochs, s.keep_ratio, s.anneal, s.ucb_c, s.epsilon,
                      s.device, s.generator)


#: The dynamic baselines: name -> factory building the baseline from a :class:`DynamicSetup`.
#: To add one, write a class with ``plan(epoch, store) -> EpochPlan`` (:class:`DynamicBaseline`) and add
#: ``"name": lambda s: MySelector(s.num_samples, ...)`` here: :func:`make_dynamic_baseline`, the benchmark, the
#: drop-in selector and the CLIs' choices all read this dict. A score for Data Agent's top-k mechanism is
#: one :data:`TOPK_SCORES` entry instead: every top-k score is registered here under its name.
DYNAMIC_BASELINES: dict[str, Callable[[DynamicSetup], DynamicBaseline]] = {
    "full": lambda s: FullData(s.num_samples, s.device),
    **{m: functools.partial(_scored_topk, m) for m in TOPK_SCORES},
    "rs2": lambda s: RS2(s.num_samples, s.epochs, s.keep_ratio, s.anneal, s.device, s.generator),
    "oracle": _oracle,
    "infobatch": lambda s: InfoBatch(s.num_samples, s.epochs, s.prune_ratio, s.anneal, device=s.device,
                                     generator=s.generator),
    "rholoss": lambda s: RhoLoss(s.candidate_factor),
    "proxy_loss": lambda s: ProxyLoss(s.candidate_factor),
}
#: the registered baselines that select per batch from candidates (no epoch plan; see the module docstring)
PER_BATCH_BASELINES = ("rholoss", "proxy_loss")
#: the others but the oracle: each plans whole epochs (what the drop-in ``Selector``, a Sampler, can run; the
#: oracle reads a dataset's provenance, which a Sampler does not have)
PER_EPOCH_BASELINES = tuple(m for m in real_methods(DYNAMIC_BASELINES) if m not in PER_BATCH_BASELINES)


def make_dynamic_baseline(method: str, setup: DynamicSetup) -> DynamicBaseline | CandidateRanker:
    """Build a registered dynamic baseline (:data:`DYNAMIC_BASELINES`): the one factory the benchmark, the tests and
    the drop-in selector of :mod:`agents.selector` (any training loop, no trainer) use.

    :param method: a key of :data:`DYNAMIC_BASELINES`
    :param setup: the run's sizes and the baseline's options (:meth:`DynamicSetup.of` builds it from a trainer)
    """
    if method not in DYNAMIC_BASELINES:
        raise ValueError(f"unknown dynamic method {method!r}; valid choices: {', '.join(DYNAMIC_BASELINES)}")
    return DYNAMIC_BASELINES[method](setup)


def run_dynamic(trainer: Trainer, baseline: DynamicBaseline | CandidateRanker, progress: bool = False) -> dict[str, Any]:
    """Train ``trainer`` for its configured epochs under ``baseline``; returns test metrics, the ledger and
    the kept fraction of each epoch (with label noise, also the mean share of noisy samples among those kept
    in pruned epochs, or, per batch, among those back-propagated) and ``problem_shares``
    (:meth:`~envs.core.data.DeviceDataset.problem_shares` of what the pruned epochs kept, weighted by the loss weights, or
    of what a per-batch method back-propagated; None without a pruned epoch). Ranking time is booked as overhead in the
    ledger; a per-batch method's candidate forwards under ``candidates``. ``wall_seconds`` includes the
    reference model's training (``ledger.reference_seconds``) booked before the run."""
    from tqdm import tqdm

    # a reference model attached before the run (trained or read from the cache) is charged to its wall-clock
    start = time.perf_counter() - trainer.ledger.reference_seconds
    kept, noisy_kept, trained = [], [], []
    store = trainer.store
    if store is None:
        raise ValueError("dynamic selection needs a trainer with track_samples=True")
    data = trainer.dataset
    noisy = data.noisy_mask
    has_noise = bool(noisy.any())
    kept_weight = torch.zeros(data.num_train, device=noisy.device)
    for epoch in tqdm(range(trainer.config.epochs), desc="epochs", disable=not progress, leave=False):
        if not hasattr(baseline, "plan"):  # a per-batch ranker (envs.methods.candidates)
            _, chosen = train_candidate_epoch(trainer, baseline)
            kept.append(len(chosen) / store.num_samples)
            trained.append(chosen)
            kept_weight.index_add_(0, chosen, torch.ones(len(chosen), device=chosen.device))
            if has_noise:
                noisy_kept.append(noisy[chosen].float().mean())
            continue
        with trainer.ledger.timed("overhead"):
            plan = baseline.plan(epoch, store)
            if has_noise and plan.pruned:
                noisy_kept.append(noisy[plan.indices].float().mean())
            if plan.pruned:
                kept_weight.index_add_(0, plan.indices, plan.weights[plan.indices])
        kept.append(len(plan.indices) / store.num_samples)
        trainer.train_epoch(plan.indices, plan.weights)
    out = {"test": trainer.evaluate(), "ledger": trainer.ledger.as_dict(), "kept_fraction": kept,
           "noisy_kept_fraction": float(torch.stack(noisy_kept).mean()) if noisy_kept else None,
           "wall_seconds": time.perf_counter() - start,
           "problem_shares": data.problem_shares(kept_weight) if bool(kept_weight.any()) else None}
    if trained:  # per batch: how class-balanced the back-propagated samples were (smallest / largest class share)
        counts = torch.bincount(trainer.dataset.train_y_true[torch.cat(trained)], minlength=trainer.dataset.num_classes)
        out["class_balance"] = float(counts.min() / counts.max())
    return out
