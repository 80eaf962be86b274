"""Following a run as it happens: the tracker (progress bar, env metrics for SB3's logger, per-epoch
reward and score) and the callback that feeds the tracker and ends learning.

Why a module of its own: learning (``agent.learn``), acting without learning and a checkpoint's
restore all go through the same tracker, so the run's curves and progress are counted one way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm


class RunTracker:
    """Progress bar, per-step env metrics for SB3's logger, the mean reward and mean score of each
    epoch (the agent's learning curve within the run) and the run's last info."""

    LOGGED = ("train_loss", "lambda", "ratio", "lr")

    def __init__(self, total: int, desc: str, progress: bool):
        self.bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
        self.final_info: dict[str, Any] | None = None
        self.epoch_rewards: dict[int, list[float]] = {}
        self.epoch_scores: dict[int, list[float]] = {}

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]], actions: np.ndarray,
               logger: Any = None) -> bool:
        """Account one env step (``actions`` in [-1, 1]); returns False once the run (episode) has ended."""
        info = infos[0]
        reward = float(np.mean(rewards))
        score = float(np.mean((np.clip(actions, -1.0, 1.0) + 1.0) / 2.0))
        self.epoch_rewards.setdefault(info.get("epoch", 0), []).append(reward)
        self.epoch_scores.setdefault(info.get("epoch", 0), []).append(score)
        if logger is not None:
            logger.record_mean("env/reward", reward)
            logger.record_mean("env/score", score)
            for key in self.LOGGED:
                if key in info:
                    logger.record_mean(f"env/{key}", info[key])
        self.bar.update(1)
        if "epoch" in info:
            self.bar.set_postfix(epoch=info["epoch"], refresh=False)
        if dones[0]:
            self.final_info = info
            self.bar.close()
            return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.bar.n, "epoch_rewards": {k: list(v) for k, v in self.epoch_rewards.items()},
                "epoch_scores": {k: list(v) for k, v in self.epoch_scores.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bar.update(state["steps"])
        self.epoch_rewards = {k: list(v) for k, v in state["epoch_rewards"].items()}
        self.epoch_scores = {k: list(v) for k, v in state["epoch_scores"].items()}

    def curves(self) -> dict[str, list[float]]:
        """Mean reward and mean score of each epoch, in epoch order."""
        return {f"{name}_by_epoch": [float(np.mean(v)) for _, v in sorted(values.items())]
                for name, values in (("reward", self.epoch_rewards), ("score", self.epoch_scores))}


class RunCallback(BaseCallback):
    """Feeds SB3's rollout steps to a :class:`RunTracker` and stops learning when the run ends."""

    def __init__(self, tracker: RunTracker):
        super().__init__()
        self.tracker = tracker

    def _on_step(self) -> bool:
        loc = self.locals
        return self.tracker.update(loc["rewards"], loc["dones"], loc["infos"], loc["clipped_actions"], self.logger)


def act_without_learning(agent: BaseAlgorithm, seed: int, tracker: RunTracker) -> None:
    """One run driven by the agent's deterministic policy, with no update."""
    venv = agent.get_env()
    venv.seed(seed)
    obs = venv.reset()
    running = True
    while running:
        action, _ = agent.predict(obs, deterministic=True)
        obs, rewards, dones, infos = venv.step(action)
        running = tracker.update(rewards, dones, infos, action)


def run_summary(info: dict[str, Any], num_samples: int, epochs: int, wall: float) -> dict[str, Any]:
    """A run's part of ``metrics.json`` from its last info; the back-propagated fraction is of ``epochs``
    full passes over ``num_samples``, the cost of full-data training."""
    ledger = info["ledger"]
    return {"test": info["final_test"], "ledger": ledger, "wall_seconds": wall,
            "backprop_fraction": ledger["samples_backpropagated"] / (epochs * num_samples),
            **{key: info[key] for key in ("error", "noisy_kept_fraction", "problem_shares") if info.get(key) is not None}}
