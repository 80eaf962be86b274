"""Reward objects: per-sample rewards computed from one training forward pass.

Why objects: the reward is the part of each method most worth ablating, so an environment takes
it as a plug-in. Each reward is a small class whose call returns the per-sample reward tensor
(on the device, no host sync) plus the scalar weight it used, for logging. Rewards never touch
the model; they read the pass's detached losses and logits.

Data Agent (docs/methods.md A.2/A.3) and its ablations:

``composite``  ``a * (lam * L~ + (1 - lam) * H~)``, lam = variance ratio (the paper's reward)
``loss``       lam fixed at 1 (difficulty only)
``entropy``    lam fixed at 0 (uncertainty only)
``learnability`` ``a * RL~``: the difficulty of the *reducible* loss (training loss minus a reference
               model's, RHO-LOSS's learnability; the env needs a ``reference``)
``composite_learnability`` the composite with the reducible loss in place of the loss:
               ``a * (lam * RL~ + (1 - lam) * H~)``, lam the same variance ratio
:class:`FixedWeightReward` any fixed lam (removes the adaptive weighting)

A reward whose ``reads_reducible_loss`` is True is given the batch's reducible losses as ``losses``.

Each takes a ``baseline`` (:data:`REWARD_BASELINES`) subtracted from the signal ``x`` before it is
multiplied by the score: ``none`` is the paper's ``a * x``. With ``x >= 0`` that reward is maximised
by a score of 1 for *every* sample, so a policy that learns it saturates and stops ranking (measured
in BENCHMARKS.md). ``batch_mean`` rewards ``a * (x - mean x)``: a below-average sample now earns more
for a *lower* score. ``keep_quantile`` rewards ``a * (x - q)`` with ``q`` the batch quantile at
``1 - keep_ratio``: a high score pays exactly for the samples that would make the kept budget
within their batch, so the optimum is a ranking at the env's own budget.

RL-Selector's rewards (``CoverSelect-v0``) are in :mod:`envs.cover_select.rewards`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from envs.core import signals
from envs.methods.ranking import interpolated_quantile
from envs.methods.reward_terms import NormalizedReward, composite_signal, variance_weight


class RewardOutput(NamedTuple):
    """Per-sample rewards ``(B,)`` and the scalar weight lambda used (a 0-d tensor)."""

    rewards: torch.Tensor
    lam: torch.Tensor


class BatchReward(Protocol):
    """What a Data Agent environment expects of a reward object."""

    def __call__(self, losses: torch.Tensor, logits: torch.Tensor, scores: torch.Tensor) -> RewardOutput: ...

    def reset(self) -> None: ...


REWARD_BASELINES = ("none", "batch_mean", "keep_quantile")


def check_reward_baseline(baseline: str, keep_ratio: float | None) -> None:
    """Validate a reward ``baseline`` name (``keep_quantile`` needs the env's ``keep_ratio``)."""
    if baseline not in REWARD_BASELINES:
        raise ValueError(f"reward_baseline={baseline!r} is invalid; valid choices: {', '.join(REWARD_BASELINES)}")
    if baseline == "keep_quantile" and not (keep_ratio is not None and 0.0 < keep_ratio <= 1.0):
        raise ValueError(f"reward_baseline='keep_quantile' needs keep_ratio in (0, 1]; got {keep_ratio!r}")


class CompositeReward(NormalizedReward):
    """Data Agent's composite reward ``r_i = a_i * (lam * L~_i + (1 - lam) * H~_i)``.

    ``L~`` is :func:`difficulty` of the per-sample training losses, ``H~`` the normalised
    predictive entropy (:func:`envs.core.signals.normalized_entropy`), ``a_i`` the sample's score in
    [0, 1]. The adaptive weight is ``lam = clamp(Var L~ / (Var L~ + Var H~ + eps_w), 0, 1)``
    with unbiased batch variances, so a batch needs at least 2 samples.

    With a ``baseline`` other than ``none`` the signal ``x = lam * L~ + (1 - lam) * H~`` is replaced by
    ``x - b`` (module docstring): ``b`` = the batch mean of ``x`` (``batch_mean``) or its batch quantile
    at ``1 - keep_ratio`` (``keep_quantile``).

    :param normalize: apply a :class:`RunningBatchNormalizer` (the paper's ``use_reward_norm``)
    :param clip_quantile: batch quantile at which losses are clipped before normalising
    :param eps_w: the variance-ratio epsilon (``--variance-adaptive-epsilon``)
    :param baseline: ``none`` (the paper), ``batch_mean`` or ``keep_quantile``
    :param keep_ratio: the env's kept fraction (only read by ``keep_quantile``)
    """

    #: True: the env passes reducible losses (loss minus the reference's) as ``losses``
    reads_reducible_loss = False

    def __init__(self, normalize: bool = True, clip_quantile: float = 0.95, eps_w: float = 1e-8,
                 baseline: str = "none", keep_ratio: float | None = None):
        if not 0.0 < clip_quantile <= 1.0:
            raise ValueError(f"clip_quantile={clip_quantile!r} is invalid; valid range: (0, 1]")
        if not eps_w >= 0:
            raise ValueError(f"eps_w={eps_w!r} is invalid; valid: >= 0")
        check_reward_baseline(baseline, keep_ratio)
        self.clip_quantile = clip_quantile
        self.eps_w = eps_w
        self.baseline = baseline
        self.keep_ratio = keep_ratio
        super().__init__(normalize)

    def signal(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` minus the batch baseline (unchanged for ``none``)."""
        if self.baseline == "batch_mean":
            return x - x.mean()
        if self.baseline == "keep_quantile":
            return x - interpolated_quantile(x, 1.0 - self.keep_ratio)
        return x

    def weight(self, diff: torch.Tensor, unc: torch.Tensor) -> torch.Tensor:
        """The batch's lambda: the share of the difficulty signal's variance."""
        return variance_weight(diff, unc, self.eps_w)

    @torch.no_grad()
    def __call__(self, losses: torch.Tensor, logits: torch.Tensor, scores: torch.Tensor) -> RewardOutput:
        """Rewards of one batch from its per-sample ``losses``, ``logits`` and ``scores`` in [0, 1]."""
        x, lam = composite_signal(losses.detach().float(), signals.normalized_entropy(logits.detach()),
                                  self.clip_quantile, self.weight)
        return RewardOutput(self._normalize(scores * self.signal(x)), lam)


class FixedWeightReward(CompositeReward):
    """The composite reward with a fixed ``lam`` (ablation: no adaptive weighting).

    :param lam: weight of the difficulty signal, in [0, 1]
    :param normalize: apply a :class:`RunningBatchNormalizer`
    :param clip_quantile: batch quantile at which losses are clipped
    """

    def __init__(self, lam: float, normalize: bool = True, clip_quantile: float = 0.95, baseline: str = "none",
                 keep_ratio: float | None = None):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam={lam!r} is invalid; valid range: [0, 1]")
        super().__init__(normalize=normalize, clip_quantile=clip_quantile, baseline=baseline, keep_ratio=keep_ratio)
        self.lam = float(lam)

    def weight(self, diff: torch.Tensor, unc: torch.Tensor) -> torch.Tensor:
        return diff.new_full((), self.lam)  # a fill kernel: no host-to-device copy


class LossOnlyReward(FixedWeightReward):
    """Ablation: difficulty only, ``r_i = a_i * L~_i``."""

    def __init__(self, normalize: bool = True, clip_quantile: float = 0.95, baseline: str = "none",
                 keep_ratio: float | None = None):
        super().__init__(1.0, normalize, clip_quantile, baseline, keep_ratio)


class EntropyOnlyReward(FixedWeightReward):
    """Ablation: uncertainty only, ``r_i = a_i * H~_i``."""

    def __init__(self, normalize: bool = True, clip_quantile: float = 0.95, baseline: str = "none",
                 keep_ratio: float | None = None):
        super().__init__(0.0, normalize, clip_quantile, baseline, keep_ratio)


class LearnabilityReward(LossOnlyReward):
    """RHO-LOSS's learnability as the reward, ``r_i = a_i * RL~_i``: :func:`difficulty` of the reducible
    losses (a noisy sample is hard for the reference too, so it is not rewarded like a learnable one)."""

    reads_reducible_loss = True


class CompositeLearnabilityReward(CompositeReward):
    """The composite reward on the reducible loss, ``a_i * (lam * RL~_i + (1 - lam) * H~_i)``, with Data Agent's
    variance-ratio ``lam``."""

    reads_reducible_loss = True


#: The Data Agent rewards: name -> class built as ``cls(normalize=, baseline=, keep_ratio=)``. To add one,
#: subclass :class:`CompositeReward` (override :meth:`~CompositeReward.weight`, or ``__call__`` returning a
#: :class:`RewardOutput`) and add ``"name": MyReward`` here: ``DataAgent-v0(reward="name")`` and
#: ``experiments.train --reward`` read this dict.
DATA_AGENT_REWARDS: dict[str, type[CompositeReward]] = {
    "composite": CompositeReward, "loss": LossOnlyReward, "entropy": EntropyOnlyReward,
    "learnability": LearnabilityReward, "composite_learnability": CompositeLearnabilityReward}


def make_data_agent_reward(name: str, normalize: bool = True, baseline: str = "none",
                           keep_ratio: float | None = None) -> CompositeReward:
    """A Data Agent reward by name (:data:`DATA_AGENT_REWARDS`; ``composite``: the paper's), with a
    ``baseline`` from :data:`REWARD_BASELINES` (``none``: the paper's)."""
    if name not in DATA_AGENT_REWARDS:
        raise ValueError(f"reward={name!r} is invalid; valid choices: {', '.join(DATA_AGENT_REWARDS)}")
    return DATA_AGENT_REWARDS[name](normalize=normalize, baseline=baseline, keep_ratio=keep_ratio)

