"""Per-batch selection from a larger candidate batch: RHO-LOSS, proxy loss and their shared loop.

Why: RHO-LOSS (Mindermann et al. 2022), airbench's proxy ranking and selective back-propagation choose
*within* each step: forward ``factor x batch_size`` candidates without a graph, rank them, and
back-propagate the top ``batch_size`` at once. Per-epoch top-k acts an epoch later; here the choice
takes effect in the very step. The candidate forwards are the method's own cost: the trainer books
them under ``candidates`` and counts them as forwarded samples (:meth:`Trainer.candidate_forward`),
and a proxy model's training under ``reference``.

A :class:`CandidateRanker` scores the candidates of one step; :func:`train_candidate_epoch` runs one
epoch with it (every sample is a candidate once per epoch, so an epoch back-propagates about
``N / factor`` samples). ``DataAgent-v0(selection="candidates")`` uses the same :func:`top_share`.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from envs.core.checks import is_real
from envs.core.models import SMALLEST_MODEL
from envs.core.trainer import BatchForward, DivergenceError, Trainer


def check_candidate_factor(factor: float) -> float:
    """A candidate factor ``k`` >= 1 (the candidate batch is ``round(k * batch_size)``), else a one-line error."""
    if not (is_real(factor) and math.isfinite(factor) and factor >= 1):
        raise ValueError(f"candidate_factor={factor!r} is invalid; valid: a number >= 1 (candidates per trained sample)")
    return float(factor)


def top_share(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` highest ``scores`` (on the device, no host sync)."""
    return torch.topk(scores, min(count, len(scores))).indices


class CandidateRanker(Protocol):
    """Scores one step's candidates (the highest train). ``factor``: candidates per trained sample;
    ``begin_epoch`` is told how many steps the epoch about to start has."""

    factor: float

    def begin_epoch(self, trainer: Trainer, steps: int) -> None: ...

    def rank(self, trainer: Trainer, candidates: BatchForward) -> torch.Tensor: ...


class RhoLoss:
    """RHO-LOSS: rank candidates by reducible loss, the learner's loss minus a reference model's
    (:mod:`envs.core.reference`; :func:`envs.core.reference.attach_reference` must have given the store its scores).

    :param factor: candidates per trained sample (the paper's 10)
    """

    def __init__(self, factor: float = 10.0):
        self.factor = check_candidate_factor(factor)

    def begin_epoch(self, trainer: Trainer, steps: int) -> None:
        """Nothing to do: the reference's scores are fixed for the run."""

    def rank(self, trainer: Trainer, candidates: BatchForward) -> torch.Tensor:
        store = trainer.store
        if store is None or not store.has_reference:
            raise ValueError("rholoss needs a reference model; valid: attach one with envs.core.reference.attach_reference "
                             "(data holdout=<fraction> and a ReferenceConfig, or kind='halves')")
        with trainer.ledger.timed("overhead"):
            return candidates.losses - store.reference_loss[candidates.idx]


class ProxyLoss:
    """Proxy-loss ranking (airbench96): a small proxy model, trained alongside on every candidate batch,
    ranks the candidates by its own training loss; the inner model back-propagates the top share. The
    proxy's forward serves both its ranking and its own step; all of it is booked under ``reference``.

    :param factor: candidates per trained sample
    :param model: the proxy's architecture (a registry name; None: the data's smallest, ``mlp``, or ``bow`` for text)
    :param seed: seeds the proxy's initialisation
    """

    def __init__(self, factor: float = 10.0, model: str | None = None, seed: int = 0):
        self.factor = check_candidate_factor(factor)
        self.model, self.seed = model, seed
        self.proxy: Trainer | None = None

    def begin_epoch(self, trainer: Trainer, steps: int) -> None:
        """Build the proxy on the first epoch; it follows the inner run's LR schedule step for step."""
        with trainer.ledger.timed("reference"):
            if self.proxy is None:
                model = self.model or SMALLEST_MODEL[trainer.dataset.modality]
                self.proxy = Trainer(trainer.dataset, model, trainer.config, seed=self.seed, track_samples=False)
            self.proxy.begin_epoch(trainer.epoch, steps)

    def rank(self, trainer: Trainer, candidates: BatchForward) -> torch.Tensor:
        with trainer.ledger.timed("reference"):
            fwd = self.proxy.forward(candidates.idx)
            losses = fwd.losses.detach()
            self.proxy.step(fwd)
        trainer.ledger.reference_samples += len(candidates.idx)
        return losses


def train_candidate_epoch(trainer: Trainer, ranker: CandidateRanker) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of per-batch selection: every training sample is a candidate once; each step forwards
    ``round(factor * batch_size)`` candidates (:meth:`Trainer.candidate_forward`), ``ranker`` scores them and
    the top ``batch_size`` are forwarded with their graph and back-propagated.

    Returns the epoch's mean training loss and the indices it back-propagated (device tensors); raises
    :class:`DivergenceError` on a non-finite loss."""
    pools = trainer.shuffled_batches(batch_size=round(ranker.factor * trainer.config.batch_size))
    trainer.begin_epoch(trainer.epoch, len(pools))
    ranker.begin_epoch(trainer, len(pools))
    total = torch.zeros((), device=trainer.device)
    trained = []
    for pool in pools:
        candidates = trainer.candidate_forward(pool)
        scores = ranker.rank(trainer, candidates)  # a ranker books its own time (the proxy's: reference)
        with trainer.ledger.timed("overhead"):
            chosen = pool[top_share(scores, max(1, round(len(pool) / ranker.factor)))]
        total += trainer.step(trainer.forward(chosen, record=False))
        trained.append(chosen)
    mean = total / len(pools)
    if not torch.isfinite(mean):
        raise DivergenceError(f"non-finite training loss in epoch {trainer.epoch} (lr {trainer.lr:.3g}); try a lower lr")
    trainer.epoch += 1
    return mean, torch.cat(trained)
