"""Policies and features extractors for observations that are a batch of samples.

The envs observe a mini-batch as a ``(B, D)`` matrix (one row per sample) and act with a ``(B,)``
vector (one score per sample). Rows are exchangeable: shuffling the mini-batch must shuffle the
scores and nothing else. :class:`BatchOfSamplesPolicy` therefore applies one per-sample network to
every row (permutation-equivariant actor, any batch size), values the batch with a critic on the
mean of per-sample latents (permutation-invariant), and uses one shared exploration scale.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.distributions import SampleBetaDistribution, SampleGaussianDistribution, make_sample_distribution


def _batch_shape(observation_space: gym.Space) -> tuple[int, int]:
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 2:
        raise ValueError(f"expected a Box observation space of shape (batch_size, state_dim), got {observation_space}")
    return observation_space.shape  # type: ignore[return-value]


class SampleRowsExtractor(BaseFeaturesExtractor):
    """Keeps the ``(n, B, D)`` rows as they are, so the networks after it act per sample.

    :param observation_space: a ``Box`` of shape ``(batch_size, state_dim)``
    """

    def __init__(self, observation_space: gym.spaces.Box):
        super().__init__(observation_space, features_dim=_batch_shape(observation_space)[1])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations


class SampleFlattenExtractor(BaseFeaturesExtractor):
    """A shared per-sample embedding ``D -> embed_dim``, then the rows flattened to ``B * embed_dim``.

    Lets algorithms whose networks expect flat features (SAC, TD3, DDPG) consume a batch of samples
    without a first layer of ``B * D`` inputs: the embedding is equivariant and shared by all rows.

    :param observation_space: a ``Box`` of shape ``(batch_size, state_dim)``
    :param embed_dim: per-sample embedding size
    :param activation_fn: activation after the embedding
    """

    def __init__(self, observation_space: gym.spaces.Box, embed_dim: int = 8, activation_fn: type[nn.Module] = nn.ReLU):
        batch_size, state_dim = _batch_shape(observation_space)
        super().__init__(observation_space, features_dim=batch_size * embed_dim)
        self.embed = nn.Sequential(nn.Linear(state_dim, embed_dim), activation_fn())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.embed(observations).flatten(start_dim=-2)


class PooledCriticExtractor(MlpExtractor):
    """SB3's ``MlpExtractor`` applied per row; the critic's latents are mean-pooled over the rows.

    Actor latents: ``(n, B, latent_dim_pi)``. Critic latents: ``(n, latent_dim_vf)``.
    """

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward_critic(features).mean(dim=-2)


class BatchOfSamplesPolicy(ActorCriticPolicy):
    """Actor-critic policy for a ``(batch_size, state_dim)`` observation and a ``(batch_size,)`` action.

    The actor is one per-sample MLP shared across rows plus a per-sample action head; no parameter
    depends on ``batch_size``, so weights trained at one batch size run at any other (and on any
    env with the same ``state_dim``). The critic is the same kind of MLP, mean-pooled over rows,
    then a value head. Exploration uses one shared log-std (``gaussian``) or Data Agent's Beta head
    (``beta``). Orthogonal initialisation: ``hidden_gain`` for hidden layers, 0.01 for the action
    head, 1 for the value head, zero biases.

    Defaults are Data Agent's networks (docs/methods.md A.5): 128-128 ReLU actor and critic. RL-Selector's
    (B.5) are ``net_arch=dict(pi=[512, 256], vf=[512, 256])``.

    :param observation_space: ``Box`` of shape ``(batch_size, state_dim)``
    :param action_space: ``Box`` of shape ``(batch_size,)``
    :param lr_schedule: learning-rate schedule of the optimizer
    :param net_arch: hidden sizes, ``dict(pi=[...], vf=[...])`` or one list for both
    :param activation_fn: hidden activation
    :param log_prob_reduction: ``"mean"`` per-sample mean log-probability (keeps PPO's ratio at a
        per-sample scale) or ``"sum"`` (the joint log-probability of the batch action)
    :param distribution: ``"gaussian"`` (shared log-std) or ``"beta"`` (Data Agent's head)
    :param hidden_gain: orthogonal gain of hidden layers (SB3: sqrt(2); Data Agent's code: 1)
    :param kwargs: the rest of ``ActorCriticPolicy``'s options (``ortho_init``, ``log_std_init``,
        ``optimizer_class``, ``optimizer_kwargs``...); gSDE is not supported
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        *,
        log_prob_reduction: str = "mean",
        distribution: str = "gaussian",
        hidden_gain: float = math.sqrt(2),
        features_extractor_class: type[BaseFeaturesExtractor] = SampleRowsExtractor,
        **kwargs: Any,
    ):
        batch_size, _ = _batch_shape(observation_space)
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (batch_size,):
            raise ValueError(f"expected a Box action space of shape ({batch_size},), got {action_space}")
        if kwargs.get("use_sde"):
            raise ValueError("BatchOfSamplesPolicy does not support gSDE (use_sde=True)")
        self.log_prob_reduction = log_prob_reduction
        self.distribution = distribution
        self.hidden_gain = hidden_gain
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=dict(pi=[128, 128], vf=[128, 128]) if net_arch is None else net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(log_prob_reduction=self.log_prob_reduction, distribution=self.distribution, hidden_gain=self.hidden_gain)
        return data

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = PooledCriticExtractor(self.features_dim, self.net_arch, self.activation_fn, self.device)

    def _build(self, lr_schedule: Schedule) -> None:
        self.action_dist = make_sample_distribution(self.distribution, self.log_prob_reduction)
        self._build_mlp_extractor()
        if isinstance(self.action_dist, SampleBetaDistribution):
            self.action_net = self.action_dist.proba_distribution_net(self.mlp_extractor.latent_dim_pi)
        else:
            self.action_net, self.log_std = self.action_dist.proba_distribution_net(
                self.mlp_extractor.latent_dim_pi, log_std_init=self.log_std_init
            )
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        if self.ortho_init:
            gains = {self.mlp_extractor: self.hidden_gain, self.action_net: 0.01, self.value_net: 1.0}
            if not self.share_features_extractor:
                gains.update({self.pi_features_extractor: self.hidden_gain, self.vf_features_extractor: self.hidden_gain})
            else:
                gains[self.features_extractor] = self.hidden_gain
            for module, gain in gains.items():
                module.apply(partial(self.init_weights, gain=gain))
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(  # type: ignore[override]
        self, latent_pi: torch.Tensor
    ) -> SampleGaussianDistribution | SampleBetaDistribution:
        params = self.action_net(latent_pi)
        if isinstance(self.action_dist, SampleBetaDistribution):
            return self.action_dist.proba_distribution(params)
        return self.action_dist.proba_distribution(params, self.log_std)
