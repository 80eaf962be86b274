"""Reward terms both environments' rewards are built from: Data Agent's difficulty, its variance-ratio weight,
the composite signal, and the running normaliser.

Why here, below the environments: Data Agent's rewards, RL-Selector's rewards and the ``composite`` dynamic baseline
all score samples with these same terms, so they live in the methods layer that all three import.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from envs.methods.ranking import interpolated_quantile


class RunningBatchNormalizer:
    """Data Agent's reward normaliser: ``r <- (r - mu_run) / (sigma_run + eps)``.

    ``mu_run`` is the running mean of *batch-mean* rewards. ``sigma_run`` is, on the first batch,
    that batch's within-batch standard deviation (unbiased, torch's default); afterwards it is
    ``sqrt(S / n)`` with ``S`` accumulated Welford-style over the ``n`` batch means seen. The
    statistics are updated with the incoming batch *before* it is normalised. This is what the
    official code does (docs/methods.md A.2, step 5), quirks included: from the second batch on the
    scale is the spread of batch means, not of rewards, so normalised rewards can be large.

    All statistics stay device tensors, so a call never synchronises the device.

    :param eps: added to ``sigma_run`` before dividing
    """

    def __init__(self, eps: float = 1e-8):
        if not eps >= 0:
            raise ValueError(f"eps={eps!r} is invalid; valid: >= 0")
        self.eps = eps
        self.reset()

    def reset(self) -> None:
        """Forget all statistics (a new training run)."""
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, rewards: torch.Tensor) -> torch.Tensor:
        """Update the statistics with the batch ``rewards`` (1-D), then return it normalised."""
        batch_mean = rewards.mean()
        self.count += 1
        if self.count == 1:
            self.mean = batch_mean
            self._m2 = torch.zeros_like(batch_mean)
            self.std = rewards.std()
        else:
            old = self.mean
            self.mean = old + (batch_mean - old) / self.count
            self._m2 = self._m2 + (batch_mean - old) * (batch_mean - self.mean)
            self.std = (self._m2 / self.count).sqrt()
        return (rewards - self.mean) / (self.std + self.eps)

    def state_dict(self) -> dict[str, Any]:
        """The running statistics, for checkpoints."""
        return {"count": self.count, "mean": self.mean, "std": self.std, "m2": self._m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.mean, self.std, self._m2 = state["count"], state["mean"], state["std"], state["m2"]


def difficulty(losses: torch.Tensor, clip_quantile: float = 0.95, eps: float = 1e-8) -> torch.Tensor:
    """Data Agent's L~: losses clipped at the batch ``clip_quantile`` (linear interpolation, as
    ``numpy.quantile``), then min-max normalised within the batch to [0, 1]."""
    clipped = torch.minimum(losses, interpolated_quantile(losses, clip_quantile))
    low, high = clipped.min(), clipped.max()
    return (clipped - low) / (high - low + eps)


def variance_weight(diff: torch.Tensor, unc: torch.Tensor, eps_w: float = 1e-8) -> torch.Tensor:
    """Data Agent's adaptive ``lam = clamp(Var L~ / (Var L~ + Var H~ + eps_w), 0, 1)`` (unbiased variances)."""
    var_d, var_u = diff.var(), unc.var()
    return (var_d / (var_d + var_u + eps_w)).clamp(0.0, 1.0)


def composite_signal(losses: torch.Tensor, uncertainty: torch.Tensor, clip_quantile: float = 0.95,
                     weight: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = variance_weight,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Data Agent's composite score ``x = lam * L~ + (1 - lam) * H~`` without the action factor, and ``lam``.

    Why one function: the reward (:class:`CompositeReward`, per batch) and the ``composite`` dynamic
    baseline (over the whole set) must score a sample the same way.

    :param losses: per-sample losses (at least 2)
    :param uncertainty: per-sample normalised entropy ``H~`` in [0, 1]
    :param clip_quantile: quantile at which :func:`difficulty` clips the losses
    :param weight: maps ``(L~, H~)`` to ``lam`` (default :func:`variance_weight`)
    """
    diff = difficulty(losses, clip_quantile)
    lam = weight(diff, uncertainty)
    return lam * diff + (1.0 - lam) * uncertainty, lam


class NormalizedReward:
    """Base of the reward objects: an optional :class:`RunningBatchNormalizer` and the ``reset`` that clears it.

    :param normalize: apply a :class:`RunningBatchNormalizer` to each batch's rewards
    """

    def __init__(self, normalize: bool):
        self.normalizer = RunningBatchNormalizer() if normalize else None

    def _normalize(self, rewards: torch.Tensor) -> torch.Tensor:
        return rewards if self.normalizer is None else self.normalizer(rewards)

    def reset(self) -> None:
        """Start a new run: clear the normaliser's statistics."""
        if self.normalizer is not None:
            self.normalizer.reset()

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the run's rewards exactly (the normaliser's statistics)."""
        return {} if self.normalizer is None else self.normalizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.normalizer is not None:
            self.normalizer.load_state_dict(state)
