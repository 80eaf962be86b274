"""RL-Selector's rewards (``CoverSelect-v0``, docs/methods.md B.3) as swappable objects.

Why objects, as for Data Agent (:mod:`envs.data_agent.rewards`): the paper leaves the reward's formula open
(docs/methods.md B.3, B.4), so the reward is the part most worth ablating. A reward object gets one
batch's new scores ``d``, the samples' ε-cover degrees ``c``, the global selected fraction ``rho``
and the batch's per-sample training losses, and returns per-sample rewards on the device (no host
sync) plus the shared ratio term, for logging.

``cover``             ``s * r_ratio - c * d``: the paper's reconstruction (the default)
``cover_difficulty``  ``s * r_ratio + d * (w * L~ - c)``: coverage with difficulty (keeping a hard
                      sample pays, keeping a redundant one costs)

``s`` (``ratio_scale``) scales the ratio term; 1 is the reconstruction. ``L~`` is Data Agent's
batch difficulty (:func:`envs.data_agent.rewards.difficulty`: losses clipped at the batch's 95% quantile, so
the hardest few, often mislabelled, pull no harder than the 95th percentile, then min-max scaled
to [0, 1]).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from envs.methods.reward_terms import NormalizedReward, difficulty


class CoverRewardOutput(NamedTuple):
    """Per-sample rewards ``(B,)`` and the shared ratio-alignment term (a 0-d tensor)."""

    rewards: torch.Tensor
    ratio_reward: torch.Tensor


class CoverReward(Protocol):
    """What ``CoverSelect-v0`` expects of a reward object (``keep_ratio`` sets the env's coreset size)."""

    keep_ratio: float

    def __call__(self, scores: torch.Tensor, degrees: torch.Tensor, ratio: torch.Tensor,
                 losses: torch.Tensor) -> CoverRewardOutput: ...

    def reset(self) -> None: ...


class CoverRatioReward(NormalizedReward):
    """RL-Selector's reward ``r_i = s * r_ratio + r_sel,i`` (Eq. 5 + Eq. 7, reconstructed in docs/methods.md B.3).

    * Ratio alignment, shared by the batch: with the global selected fraction ``rho = mean(d > 0.5)``
      and ``delta = rho - target``, ``r_ratio = -delta / (1 - target)`` if ``delta >= 0`` else
      ``delta / target``. The rescaling factors are the largest possible over- and under-shoot, so
      ``r_ratio`` lies in [-1, 0] and is exactly 0 at the target (-1 at the start, when all d are 1).
      ``s`` (``ratio_scale``, 1 in the reconstruction) weighs it against the selection term.
    * Selection, per sample: ``r_sel,i = -c_i * d_i`` with ``c_i`` the sample's ε-cover degree
      (:mod:`envs.methods.cover`) and ``d_i`` its new score in [0, 1]: keeping a redundant sample costs.

    The plain sum, the per-sample form and the absence of weights follow the paper's "no additional
    hyper-parameters"; the reward lies in [-2, 0] at ``s = 1``. Normalisation is off by default because
    the terms are already bounded; ``normalize=True`` applies Data Agent's
    :class:`~envs.data_agent.rewards.RunningBatchNormalizer` (the authors' sibling A2C code normalises this way).

    :param keep_ratio: the coreset's target fraction ``sr``, in (0, 1)
    :param normalize: apply a :class:`~envs.data_agent.rewards.RunningBatchNormalizer` to the summed rewards
    :param ratio_scale: weight ``s`` of the ratio term, > 0
    """

    def __init__(self, keep_ratio: float, normalize: bool = False, ratio_scale: float = 1.0):
        if not (isinstance(keep_ratio, (int, float)) and not isinstance(keep_ratio, bool) and 0.0 < keep_ratio < 1.0):
            raise ValueError(f"keep_ratio={keep_ratio!r} is invalid; valid range: (0, 1) exclusive")
        if isinstance(ratio_scale, bool) or not isinstance(ratio_scale, (int, float)) or not 0.0 < ratio_scale < float("inf"):
            raise ValueError(f"ratio_scale={ratio_scale!r} is invalid; valid: a finite number > 0")
        self.keep_ratio = float(keep_ratio)
        self.ratio_scale = float(ratio_scale)
        super().__init__(normalize)

    def ratio_reward(self, ratio: torch.Tensor) -> torch.Tensor:
        """``s * r_ratio`` of the selected fraction ``ratio`` (a tensor; no host sync)."""
        delta = ratio - self.keep_ratio
        return self.ratio_scale * torch.where(delta >= 0, -delta / (1.0 - self.keep_ratio), delta / self.keep_ratio)

    def selection_reward(self, scores: torch.Tensor, degrees: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``r_sel`` per sample: ``-c * d``."""
        return -degrees * scores

    @torch.no_grad()
    def __call__(self, scores: torch.Tensor, degrees: torch.Tensor, ratio: torch.Tensor,
                 losses: torch.Tensor) -> CoverRewardOutput:
        """Rewards of one batch from its scores ``d`` in [0, 1], degrees ``c``, the global ``rho`` (0-d)
        and the per-sample training ``losses``."""
        r_ratio = self.ratio_reward(ratio.float())
        return CoverRewardOutput(self._normalize(r_ratio + self.selection_reward(scores, degrees, losses)), r_ratio)


class CoverDifficultyReward(CoverRatioReward):
    """Coverage with difficulty: ``r_sel,i = d_i * (w * L~_i - c_i)``.

    Why: the degree alone rewards keeping the least covered samples, which are the class's
    outskirts (BENCHMARKS.md ("CoverSelect: controls, diagnosis and remedies")). Coverage-centric coreset methods (Zheng et al. 2023) keep
    hard samples too but spread the budget over the whole difficulty range; here a sample's batch
    difficulty ``L~`` (clipped at the 95% quantile) offsets its redundancy, so a covered but still
    hard sample is worth keeping and an isolated easy one is not preferred. The reward lies in
    ``[-s - 1, w]``.

    :param keep_ratio: the coreset's target fraction ``sr``, in (0, 1)
    :param normalize: apply a :class:`~envs.data_agent.rewards.RunningBatchNormalizer` to the summed rewards
    :param ratio_scale: weight ``s`` of the ratio term, > 0
    :param difficulty_weight: weight ``w`` of the difficulty, >= 0 (0 gives :class:`CoverRatioReward`)
    """

    def __init__(self, keep_ratio: float, normalize: bool = False, ratio_scale: float = 1.0,
                 difficulty_weight: float = 1.0):
        if isinstance(difficulty_weight, bool) or not isinstance(difficulty_weight, (int, float)) \
                or not 0.0 <= difficulty_weight < float("inf"):
            raise ValueError(f"difficulty_weight={difficulty_weight!r} is invalid; valid: a finite number >= 0")
        super().__init__(keep_ratio, normalize, ratio_scale)
        self.difficulty_weight = float(difficulty_weight)

    def selection_reward(self, scores: torch.Tensor, degrees: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``r_sel`` per sample: ``d * (w * L~ - c)``."""
        return scores * (self.difficulty_weight * difficulty(losses.detach().float()) - degrees)


#: The CoverSelect rewards: name -> class built as ``cls(keep_ratio, normalize=, ratio_scale=)``. To add
#: one, subclass :class:`CoverRatioReward` and override :meth:`~CoverRatioReward.selection_reward`, then add
#: ``"name": MyReward`` here: ``CoverSelect-v0(reward="name")`` and ``experiments.train --reward`` read this dict.
COVER_REWARDS: dict[str, type[CoverRatioReward]] = {"cover": CoverRatioReward, "cover_difficulty": CoverDifficultyReward}


def make_cover_reward(name: str, keep_ratio: float, normalize: bool = False, ratio_scale: float = 1.0) -> CoverRatioReward:
    """A CoverSelect reward by name: ``cover`` (the paper's reconstruction) or ``cover_difficulty``."""
    if name not in COVER_REWARDS:
        raise ValueError(f"reward={name!r} is invalid; valid choices: {', '.join(COVER_REWARDS)}")
    return COVER_REWARDS[name](keep_ratio, normalize=normalize, ratio_scale=ratio_scale)
