"""RL Zoo hooks: the parts of a preset that Zoo's YAML cannot say, as callable paths Zoo imports.

Why: ``rl_zoo3.train --conf-file agents/hyperparams/ppo.yml`` must build the papers' agents without
a fork of Zoo. Zoo's YAML has a ``vec_env_wrapper`` key and a ``callback`` key that take import
paths; these two hooks fill them:

- :func:`per_sample` (``vec_env_wrapper: agents.zoo.per_sample``): the per-sample layout, in which
  each row of ONE batch env is a sub-env with its own reward (:class:`agents.PerSampleVecEnv`);
- :class:`PresetAdjustments` (``callback: [agents.zoo.PresetAdjustments: {...}]``): the learning
  rate's linear decay to a floor (Zoo's ``lin_<start>`` ends at 0, the papers' at 1 %) and PPO's
  ``batch_size`` as a number of minibatches of the rollout of the env actually built.

:func:`agents.make_agent` applies the same hooks, so both readers of a preset build the same agent.
"""

from __future__ import annotations

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from agents.adapters import PerSampleVecEnv


def per_sample(venv: VecEnv) -> PerSampleVecEnv:
    """Zoo's ``vec_env_wrapper`` for the per-sample layout: the one batch env of Zoo's ``DummyVecEnv``
    (with its ``Monitor``) becomes a :class:`PerSampleVecEnv` of ``batch_size`` sub-envs.

    :param venv: Zoo's training (or evaluation) env: a ``DummyVecEnv`` of one batch env
    :return: the per-sample ``VecEnv`` over that env
    """
    if not isinstance(venv, DummyVecEnv) or venv.num_envs != 1:
        raise ValueError(f"the per-sample layout wraps ONE batch env, got a {type(venv).__name__} of {venv.num_envs}; "
                         "valid: n_envs 1 (the preset's) and --vec-env dummy")
    return PerSampleVecEnv(venv.envs[0])


class PresetAdjustments(BaseCallback):
    """Adjusts an agent to its preset when training starts (Zoo's ``callback`` hook); :meth:`adjust`
    does it at once (what :func:`agents.make_agent` calls).

    :param final_learning_rate: the learning rate decays linearly from its initial value to this
        over the run (SB3's progress); ``None``: the rate is left as built
    :param n_minibatches: PPO's ``batch_size = n_steps * num_envs / n_minibatches`` (1: full-batch
        updates); ``None``: ``batch_size`` is left as built
    """

    def __init__(self, final_learning_rate: float | None = None, n_minibatches: int | None = None):
        super().__init__()
        if n_minibatches is not None and n_minibatches < 1:
            raise ValueError(f"n_minibatches={n_minibatches} is invalid; valid: an integer >= 1")
        self.final_learning_rate = final_learning_rate
        self.n_minibatches = n_minibatches

    def batch_size(self, rollout: int) -> int:
        """PPO's minibatch size for a rollout of ``rollout`` transitions (``n_steps * num_envs``)."""
        if self.n_minibatches is None or rollout % self.n_minibatches:
            raise ValueError(f"n_minibatches={self.n_minibatches} does not divide the rollout of {rollout} transitions "
                             f"(n_steps * num_envs); valid: a divisor of {rollout}")
        return rollout // self.n_minibatches

    def adjust(self, agent: BaseAlgorithm) -> None:
        """Set ``agent``'s learning-rate schedule and PPO minibatch size as the preset says."""
        if self.final_learning_rate is not None:  # learning_rate too, which a saved agent rebuilds its schedule from
            schedule = LinearSchedule(agent.lr_schedule(1.0), self.final_learning_rate, end_fraction=1.0)
            agent.learning_rate = agent.lr_schedule = schedule
        if self.n_minibatches is not None:
            if not hasattr(agent, "batch_size") or not hasattr(agent, "n_steps"):
                raise ValueError(f"n_minibatches applies to PPO's rollout, not to {type(agent).__name__}; remove it")
            agent.batch_size = self.batch_size(agent.n_steps * agent.n_envs)

    def _init_callback(self) -> None:
        self.adjust(self.model)

    def _on_step(self) -> bool:
        return True
