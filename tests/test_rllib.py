"""Both envs are in Ray's registry, and RLlib's PPO trains on each for a few iterations on a tiny config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents.rllib import make_rllib_env, register_rllib_envs
from envs import ENV_IDS
from tiny import tiny_env

TINY = tiny_env(train_size=None, batch_size=64)  # 512 samples: 8 batches an epoch


@pytest.fixture(scope="module")
def rllib():
    """Skips before Ray starts when RLlib's extra dependencies are absent."""
    return pytest.importorskip("ray.rllib", reason="needs RLlib: pip install -e '.[rllib]'")


def test_rllib_env_is_the_gymnasium_env_with_a_flat_observation():
    env = make_rllib_env("CoverSelect-v0", TINY)
    obs, _ = env.reset(seed=0)
    batch = env.unwrapped.observation_space.shape
    assert len(batch) == 2 and batch[0] == 64
    assert obs.shape == (batch[0] * batch[1],) and env.action_space.shape == (64,)
    with pytest.raises(ValueError, match="env_id='CartPole-v1' is invalid; valid choices: DataAgent-v0, CoverSelect-v0"):
        make_rllib_env("CartPole-v1", {})


@pytest.mark.filterwarnings("ignore:.*rllib-single-agent-env-v0 already in registry")  # RLlib re-registers its own wrapper
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rllib_ppo_trains_on_the_registered_env(rllib, local_ray, env_id):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    assert register_rllib_envs() == ENV_IDS
    config = (PPOConfig()
              .environment(env_id, env_config=TINY)  # the name RLlib looks up in Ray's registry
              .env_runners(num_env_runners=0)
              .learners(num_learners=0)
              .training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1, lr=1e-3)
              .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[32], vf_share_layers=True))
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        before = torch.nn.utils.parameters_to_vector(algo.get_module().parameters()).detach().clone()
        for _ in range(3):
            result = algo.train()
        after = torch.nn.utils.parameters_to_vector(algo.get_module().parameters()).detach()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert runners["num_env_steps_sampled_lifetime"] == 3 * 32
    # an episode is a whole inner training run: 2 epochs of at most 8 batches (Data Agent prunes one of them)
    assert runners["num_episodes_lifetime"] >= 5 and 8 < runners["episode_len_mean"] <= 16
    assert math.isfinite(runners["episode_return_mean"])
    assert not np.allclose(before.numpy(), after.numpy())  # PPO updated the policy
