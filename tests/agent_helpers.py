"""Test helpers for agents: a tiny stand-in for the batch envs and an in-memory SB3 log recorder.

``FakeBatchEnv`` has the batch envs' interface without training a model.

Each step shows ``batch_size`` random rows; sample ``i`` earns ``-(score_i - target_i)^2`` with
``target_i = sigmoid(3 * x_i0)``, so a per-sample policy can learn it and a reward tells how well.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import KVWriter, Logger


class FakeBatchEnv(gym.Env):
    """Observation ``Box(shape=(batch_size, state_dim), float32)``, action ``Box(-1, 1, (batch_size,))``,
    reward the batch mean, ``info["sample_rewards"]`` per sample; episodes of ``episode_steps`` steps
    end with ``truncated=True`` and ``final_test``/``ledger`` in ``info``."""

    metadata = {"render_modes": []}

    def __init__(self, batch_size: int = 8, state_dim: int = 4, episode_steps: int = 20):
        self.batch_size, self.state_dim, self.episode_steps = batch_size, state_dim, episode_steps
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (batch_size, state_dim), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (batch_size,), np.float32)
        self.resets = 0

    def _observe(self) -> np.ndarray:
        self._obs = self.np_random.standard_normal((self.batch_size, self.state_dim)).astype(np.float32)
        return self._obs.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        self.resets += 1
        return self._observe(), {"epoch": 0}

    def step(self, action: np.ndarray):
        score = (np.asarray(action, dtype=np.float32) + 1.0) / 2.0
        target = 1.0 / (1.0 + np.exp(-3.0 * self._obs[:, 0]))
        sample_rewards = (-((score - target) ** 2)).astype(np.float32)
        self.t += 1
        truncated = self.t >= self.episode_steps
        info = {"sample_rewards": sample_rewards, "epoch": self.t}
        if truncated:
            info["final_test"] = {"top1": 50.0, "top5": 100.0, "loss": 1.0}
            info["ledger"] = {"samples_backpropagated": self.t * self.batch_size}
        return self._observe(), float(sample_rewards.mean()), False, truncated, info


class RecordingWriter(KVWriter):
    """Keeps every dump of an SB3 logger in memory."""

    def __init__(self):
        self.records: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.records.append(dict(key_values))


def learn_and_record(model: BaseAlgorithm, total_timesteps: int, **learn_kwargs: Any) -> list[dict[str, Any]]:
    """``model.learn`` with a log dump after every rollout; returns the dumps that hold training stats."""
    writer = RecordingWriter()
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    model.learn(total_timesteps, log_interval=1, **learn_kwargs)
    model.logger.dump(model.num_timesteps)  # the last update is recorded after the last scheduled dump
    return [r for r in writer.records if any(k.startswith("train/") and k != "train/learning_rate" for k in r)]
