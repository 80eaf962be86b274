"""BatchOfSamplesPolicy: equivariance, batch-size independence, init, distributions, save/load, PPO's KL."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from agent_helpers import FakeBatchEnv, learn_and_record
from agents import BatchOfSamplesPolicy, make_agent


def make_policy(batch_size: int = 8, state_dim: int = 5, **kwargs) -> BatchOfSamplesPolicy:
    obs_space = gym.spaces.Box(-np.inf, np.inf, (batch_size, state_dim), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (batch_size,), np.float32)
    torch.manual_seed(0)
    policy = BatchOfSamplesPolicy(obs_space, act_space, lambda _: 1e-3, **kwargs)
    with torch.no_grad():  # move the action head off its 0.01-gain init so rows really differ
        for p in policy.action_net.parameters():
            p.normal_(0.0, 0.3)
    return policy


def rows(batch_size: int, state_dim: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch_size, state_dim)).astype(np.float32)


def values(policy: BatchOfSamplesPolicy, obs: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return policy.predict_values(torch.as_tensor(obs)[None])


@pytest.mark.parametrize("distribution", ["gaussian", "beta"])
def test_permuting_rows_permutes_actions_and_keeps_value(distribution):
    policy = make_policy(distribution=distribution)
    obs = rows(8)
    perm = np.random.default_rng(2).permutation(8)
    act, _ = policy.predict(obs, deterministic=True)
    act_perm, _ = policy.predict(obs[perm], deterministic=True)
    assert np.unique(act.round(5)).size == 8  # rows really get different actions
    np.testing.assert_allclose(act_perm, act[perm], atol=1e-6)
    torch.testing.assert_close(values(policy, obs[perm]), values(policy, obs))
    with torch.no_grad():
        a = torch.as_tensor(act)[None]
        _, logp, _ = policy.evaluate_actions(torch.as_tensor(obs)[None], a)
        _, logp_perm, _ = policy.evaluate_actions(torch.as_tensor(obs[perm])[None], a[:, perm])
    torch.testing.assert_close(logp_perm, logp)


def test_same_weights_give_same_per_row_actions_at_any_batch_size():
    big, small = make_policy(batch_size=16), make_policy(batch_size=4)
    small.load_state_dict(big.state_dict())  # strict: no parameter depends on the batch size
    obs = rows(16)
    act_big, _ = big.predict(obs, deterministic=True)
    act_small, _ = small.predict(obs[:4], deterministic=True)
    np.testing.assert_allclose(act_small, act_big[:4], atol=1e-6)


def test_one_shared_log_std_and_orthogonal_gains():
    policy = make_policy(batch_size=32, hidden_gain=1.0, log_std_init=-0.5)
    assert policy.log_std.shape == (1,) and float(policy.log_std.detach()) == -0.5
    fresh = BatchOfSamplesPolicy(policy.observation_space, policy.action_space, lambda _: 1e-3, hidden_gain=1.0)
    first_hidden = fresh.mlp_extractor.policy_net[0].weight  # (128, 5): orthonormal columns times the gain
    torch.testing.assert_close(torch.linalg.svdvals(first_hidden), torch.ones(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.svdvals(fresh.action_net.weight), torch.tensor([0.01]), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.linalg.svdvals(fresh.value_net.weight), torch.tensor([1.0]), atol=1e-5, rtol=0)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in fresh.modules() if isinstance(m, torch.nn.Linear))


def test_mean_reduction_is_sum_over_batch_size():
    mean_policy, sum_policy = make_policy(), make_policy(log_prob_reduction="sum")
    sum_policy.load_state_dict(mean_policy.state_dict())
    obs = torch.as_tensor(np.stack([rows(8, seed=s) for s in range(3)]))
    actions = torch.rand(3, 8) * 2 - 1
    with torch.no_grad():
        v_mean, lp_mean, ent_mean = mean_policy.evaluate_actions(obs, actions)
        v_sum, lp_sum, ent_sum = sum_policy.evaluate_actions(obs, actions)
    assert lp_mean.shape == (3,) and v_mean.shape == (3, 1)
    torch.testing.assert_close(lp_sum, 8 * lp_mean)
    torch.testing.assert_close(ent_sum, 8 * ent_mean)
    # independent Gaussians with the shared std
    normal = torch.distributions.Normal(mean_policy.action_net(mean_policy.mlp_extractor.forward_actor(obs)).squeeze(-1),
                                        mean_policy.log_std.exp())
    torch.testing.assert_close(lp_sum, normal.log_prob(actions).sum(-1))


def test_beta_head_matches_data_agent_parameterisation():
    policy = make_policy(distribution="beta")
    assert not hasattr(policy, "log_std")
    obs = torch.as_tensor(rows(8))[None]
    with torch.no_grad():
        params = policy.action_net(policy.mlp_extractor.forward_actor(obs))
        alpha, beta = (torch.nn.functional.softplus(params) + 1).unbind(-1)
        dist = policy.get_distribution(obs)
        sample = dist.get_actions()
        u = (sample + 1) / 2
        expected = torch.distributions.Beta(alpha, beta).log_prob(u).mean(-1) - math.log(2)
        torch.testing.assert_close(dist.log_prob(sample), expected)
        torch.testing.assert_close(dist.get_actions(deterministic=True), 2 * alpha / (alpha + beta) - 1)
    assert (alpha >= 1).all() and (beta >= 1).all()
    assert sample.abs().max() < 1


def test_rejects_spaces_that_are_not_a_batch_of_samples():
    with pytest.raises(ValueError, match="batch_size, state_dim"):
        BatchOfSamplesPolicy(gym.spaces.Box(-1, 1, (5,)), gym.spaces.Box(-1, 1, (5,)), lambda _: 1e-3)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        BatchOfSamplesPolicy(gym.spaces.Box(-1, 1, (4, 3)), gym.spaces.Box(-1, 1, (3,)), lambda _: 1e-3)
    with pytest.raises(ValueError, match="log_prob_reduction"):
        make_policy(log_prob_reduction="max")
    with pytest.raises(ValueError, match="distribution"):
        make_policy(distribution="cauchy")


@pytest.mark.parametrize("distribution", ["gaussian", "beta"])
def test_save_load_round_trip_gives_identical_actions(tmp_path, distribution):
    policy = make_policy(distribution=distribution, log_prob_reduction="sum", net_arch=[32])
    obs = rows(8)
    policy.save(str(tmp_path / "policy.pt"))
    loaded = BatchOfSamplesPolicy.load(str(tmp_path / "policy.pt"))
    assert (loaded.distribution, loaded.log_prob_reduction, loaded.net_arch) == (distribution, "sum", [32])
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0])

    env = FakeBatchEnv(batch_size=8, state_dim=5, episode_steps=12)
    agent = make_agent("ppo", env, "batch", env_id="DataAgent-v0", seed=0, policy_kwargs=dict(distribution=distribution))
    agent.learn(12)
    agent.save(tmp_path / "agent.zip")
    reloaded = PPO.load(tmp_path / "agent.zip", device="cpu")
    assert isinstance(reloaded.policy, BatchOfSamplesPolicy) and reloaded.policy.distribution == distribution
    np.testing.assert_array_equal(reloaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])


def test_mean_log_prob_keeps_ppo_kl_per_sample_on_a_batch_of_128():
    """The joint log-probability of 128 samples makes log-ratios 128x and the approximate KL about
    128^2 x larger than the per-sample mean does, for the same parameter change."""
    kls = {}
    for reduction in ("mean", "sum"):
        env = FakeBatchEnv(batch_size=128, state_dim=4, episode_steps=40)
        agent = make_agent("ppo", env, "batch", env_id="DataAgent-v0", seed=0, learning_rate=3e-4,
                           policy_kwargs=dict(log_prob_reduction=reduction))
        records = learn_and_record(agent, 40)
        kls[reduction] = np.array([r["train/approx_kl"] for r in records], dtype=float)
        assert len(kls[reduction]) == 4  # one update per 10-batch rollout
    assert np.isfinite(kls["mean"]).all() and (kls["mean"] < 0.1).all()
    assert (kls["sum"] > 128 * kls["mean"]).all()
