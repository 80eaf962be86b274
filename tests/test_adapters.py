"""PerSampleVecEnv: SB3 VecEnv conventions, per-sample credit, auto-reset, and stock SB3 training on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecEnv, VecMonitor

from agent_helpers import FakeBatchEnv, learn_and_record
from agents import PerSampleVecEnv


def target_actions(env: FakeBatchEnv) -> np.ndarray:
    """The actions that earn every sample of the current batch its best reward (0)."""
    return 2.0 / (1.0 + np.exp(-3.0 * env._obs[:, 0])) - 1.0


def test_spaces_are_one_row_and_one_score():
    venv = PerSampleVecEnv(FakeBatchEnv(batch_size=6, state_dim=3))
    assert isinstance(venv, VecEnv) and venv.num_envs == 6
    assert venv.observation_space == gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    assert venv.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(ValueError, match="batch_size, state_dim"):
        PerSampleVecEnv(gym.make("CartPole-v1"))


def test_each_slot_gets_its_own_sample_reward():
    env = FakeBatchEnv(batch_size=6, state_dim=3)
    venv = PerSampleVecEnv(env)
    venv.seed(0)  # fixed rows: with random ones, a "bad" action can land on the target (about 1 run in 30)
    obs = venv.reset()
    np.testing.assert_array_equal(obs, env._obs)
    actions = target_actions(env)
    actions[[1, 4]] = -actions[[1, 4]] + 0.5  # only slots 1 and 4 act badly
    venv.step_async(actions[:, None])
    new_obs, rewards, dones, infos = venv.step_wait()
    assert rewards.shape == (6,) and rewards.dtype == np.float32 and dones.shape == (6,) and not dones.any()
    np.testing.assert_allclose(rewards[[0, 2, 3, 5]], 0.0, atol=1e-6)
    assert (rewards[[1, 4]] < -1e-3).all()
    np.testing.assert_array_equal(new_obs, env._obs)
    assert len(infos) == 6 and all(i["epoch"] == 1 and "sample_rewards" not in i for i in infos)
    assert all(i["TimeLimit.truncated"] is False for i in infos)


def test_episode_end_marks_every_slot_done_with_terminal_observation_and_resets():
    env = FakeBatchEnv(batch_size=4, state_dim=2, episode_steps=3)
    venv = PerSampleVecEnv(env)
    venv.reset()
    for _ in range(2):
        _, _, dones, _ = venv.step(np.zeros((4, 1), np.float32))
        assert not dones.any()
    last_rows = None

    original_step = env.step

    def spy_step(action):
        nonlocal last_rows
        out = original_step(action)
        last_rows = out[0]
        return out

    env.step = spy_step
    obs, rewards, dones, infos = venv.step(np.zeros((4, 1), np.float32))
    assert dones.all() and env.resets == 2
    for slot, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"], last_rows[slot])
        assert info["TimeLimit.truncated"] is True
        assert info["final_test"]["top1"] == 50.0 and info["ledger"]["samples_backpropagated"] == 12
    np.testing.assert_array_equal(obs, env._obs)  # the new episode's first batch


def test_attribute_methods_seed_and_close_address_the_one_env():
    env = FakeBatchEnv(batch_size=5, state_dim=2)
    venv = PerSampleVecEnv(Monitor(env))
    assert venv.get_attr("batch_size") == [5] * 5
    assert venv.get_attr("state_dim", indices=[0, 3]) == [2, 2]
    assert venv.has_attr("episode_steps") and not venv.has_attr("no_such_attribute")
    venv.set_attr("episode_steps", 7)
    assert env.episode_steps == 7
    assert venv.env_method("_observe", indices=2)[0].shape == (5, 2)
    assert venv.env_is_wrapped(Monitor) == [True] * 5 and venv.env_is_wrapped(gym.wrappers.TimeLimit, 1) == [False]

    assert venv.seed(7)[0] == 7
    obs = venv.reset()
    expected, _ = FakeBatchEnv(batch_size=5, state_dim=2).reset(seed=7)
    np.testing.assert_array_equal(obs, expected)
    closed = []
    env.close = lambda: closed.append(True)
    venv.close()
    assert closed == [True]


def test_passes_vec_check_nan_and_vec_monitor_over_whole_episodes():
    env = FakeBatchEnv(batch_size=4, state_dim=3, episode_steps=5)
    venv = VecCheckNan(VecMonitor(PerSampleVecEnv(env)), raise_exception=True)
    venv.reset()
    returns = np.zeros(4)
    for _ in range(5):
        _, rewards, dones, infos = venv.step(np.random.default_rng(0).uniform(-1, 1, (4, 1)).astype(np.float32))
        returns += rewards
    assert dones.all()
    np.testing.assert_allclose([i["episode"]["r"] for i in infos], returns, rtol=1e-5)
    assert [i["episode"]["l"] for i in infos] == [5] * 4


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_stock_sb3_learns_per_sample_scores(algo):
    """MlpPolicy on the adapter learns the per-sample target: the batch reward improves."""
    env = FakeBatchEnv(batch_size=32, state_dim=3, episode_steps=50)
    venv = VecMonitor(PerSampleVecEnv(env))
    kwargs = dict(n_steps=10, batch_size=320, n_epochs=4) if algo is PPO else dict(n_steps=5)
    agent = algo("MlpPolicy", venv, learning_rate=3e-3, seed=0, **kwargs)
    probe = PerSampleVecEnv(FakeBatchEnv(batch_size=32, state_dim=3))
    probe.seed(123)

    def mean_reward() -> float:
        obs = probe.reset()
        return float(probe.step(agent.predict(obs, deterministic=True)[0])[1].mean())

    before = mean_reward()
    records = learn_and_record(agent, 32 * 200)
    probe.seed(123)
    after = mean_reward()
    assert records and all(np.isfinite(r["train/value_loss"]) for r in records)
    assert after > before + 0.02, (before, after)
