"""Action distributions over a batch of samples: one independent scalar action per row.

Why not SB3's ``DiagGaussianDistribution``: for an action of shape ``(B,)`` it learns one log-std
per batch *position*, which has no meaning when rows are shuffled samples, and its log-probability
is a sum over the ``B`` rows. A sum over hundreds of samples turns PPO's probability ratio
``exp(log pi - log pi_old)`` into a product of hundreds of per-sample ratios, which explodes after
a tiny per-sample change. ``reduction="mean"`` uses the per-sample mean log-probability instead
(the ratio becomes the geometric mean of per-sample ratios), so clip range and target KL keep their
usual per-sample scale.

Both distributions produce actions in the envs' ``[-1, 1]`` range (score = (a + 1) / 2).
"""

from __future__ import annotations

import math

import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from torch import nn

REDUCTIONS = ("mean", "sum")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """``(n, B)`` per-sample terms -> ``(n,)`` per observation."""
    return per_sample.mean(dim=-1) if reduction == "mean" else per_sample.sum(dim=-1)


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"log_prob_reduction={reduction!r} is invalid; valid choices: {', '.join(REDUCTIONS)}")
    return reduction


class SampleGaussianDistribution(DiagGaussianDistribution):
    """Independent Gaussians per row with one shared, state-independent log-std.

    The action head maps each row's latent to one mean (``Linear(latent, 1)``), so it is shared by
    every row and independent of the batch size.

    :param reduction: ``"mean"`` (per-sample mean) or ``"sum"`` (joint) log-probability and entropy
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__(action_dim=1)
        self.reduction = _check_reduction(reduction)

    def proba_distribution_net(self, latent_dim: int, log_std_init: float = 0.0) -> tuple[nn.Module, nn.Parameter]:
        return nn.Linear(latent_dim, 1), nn.Parameter(torch.full((1,), float(log_std_init)), requires_grad=True)

    def proba_distribution(self, mean_actions: torch.Tensor, log_std: torch.Tensor) -> SampleGaussianDistribution:
        """:param mean_actions: ``(n, B, 1)`` head outputs; :param log_std: the shared ``(1,)`` log-std."""
        mean = mean_actions.squeeze(-1)
        self.distribution = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return _reduce(self.distribution.log_prob(actions), self.reduction)

    def entropy(self) -> torch.Tensor:
        return _reduce(self.distribution.entropy(), self.reduction)


class SampleBetaDistribution(Distribution):
    """Data Agent's Beta head (docs/methods.md A.5): per row ``u ~ Beta(alpha, beta)`` with
    ``alpha = softplus(h_a) + 1``, ``beta = softplus(h_b) + 1`` (unimodal or uniform), mapped to
    the action ``a = 2u - 1`` in ``[-1, 1]`` so the env's score ``(a + 1) / 2`` is ``u`` itself.

    The deterministic action is the Beta mean (the mode is undefined for the uniform alpha = beta = 1).

    :param reduction: ``"mean"`` (per-sample mean) or ``"sum"`` (joint) log-probability and entropy
    :param eps: ``u`` is clamped to ``[eps, 1 - eps]`` when scoring actions clipped to the bounds
    """

    def __init__(self, reduction: str = "mean", eps: float = 1e-6):
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.eps = eps
        self.distribution: torch.distributions.Beta

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        return nn.Linear(latent_dim, 2)

    def proba_distribution(self, params: torch.Tensor) -> SampleBetaDistribution:
        """:param params: ``(n, B, 2)`` head outputs (pre-softplus alpha and beta)."""
        concentration = nn.functional.softplus(params) + 1.0
        self.distribution = torch.distributions.Beta(concentration[..., 0], concentration[..., 1])
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        u = ((actions + 1.0) / 2.0).clamp(self.eps, 1.0 - self.eps)
        # density of a = 2u - 1 is density(u) / 2
        return _reduce(self.distribution.log_prob(u) - math.log(2.0), self.reduction)

    def entropy(self) -> torch.Tensor:
        return _reduce(self.distribution.entropy() + math.log(2.0), self.reduction)

    def sample(self) -> torch.Tensor:
        return 2.0 * self.distribution.rsample() - 1.0

    def mode(self) -> torch.Tensor:
        return 2.0 * self.distribution.mean - 1.0

    def actions_from_params(self, params: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        self.proba_distribution(params)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.actions_from_params(params)
        return actions, self.log_prob(actions)


DISTRIBUTIONS = ("gaussian", "beta")


def make_sample_distribution(name: str, reduction: str = "mean") -> SampleGaussianDistribution | SampleBetaDistribution:
    """The per-sample distribution ``name`` (``gaussian`` or ``beta``)."""
    if name == "gaussian":
        return SampleGaussianDistribution(reduction)
    if name == "beta":
        return SampleBetaDistribution(reduction)
    raise ValueError(f"distribution={name!r} is invalid; valid choices: {', '.join(DISTRIBUTIONS)}")
