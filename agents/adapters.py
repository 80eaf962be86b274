"""Per-sample credit assignment: each batch position of one env becomes a sub-env of a ``VecEnv``.

Why: a batch env pays one scalar (the batch mean) for a ``(B,)`` action, so a policy-gradient
estimate cannot tell which sample's score earned it. The envs also report every sample's own
reward (``info["sample_rewards"]``). Exposing batch position ``i`` as sub-env ``i`` hands that
reward to the transition that produced it, and lets stock ``PPO("MlpPolicy")`` or
``A2C("MlpPolicy")`` learn a per-sample policy on ``(state_dim,)`` observations; this is the
``VecEnv`` layout both papers' blueprints describe (docs/methods.md A.11, B.11).

The env's semantics are untouched: one ``step_wait`` is one env step (one mini-batch); GAE links
consecutive batches per slot, as the Data Agent code does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn


class PerSampleVecEnv(VecEnv):
    """A ``VecEnv`` of ``batch_size`` sub-envs, one per row of ONE batch env.

    Spaces: observation ``Box(shape=(state_dim,), float32)`` (one row of the env's observation);
    action ``Box(-1, 1, shape=(1,), float32)`` (that row's score action). Rewards are the env's
    ``info["sample_rewards"]``. When the env's episode ends every slot is done together: each
    slot's info carries its ``terminal_observation`` and ``TimeLimit.truncated``, and the env is
    reset (SB3's auto-reset convention). Every slot's info also carries the env's own info keys
    (``final_test``, ``ledger``...) except the reward vector.

    All slots share the one env, so ``get_attr``/``env_method`` read or call it once and return the
    result for each requested index, and ``set_attr`` sets it once whatever the indices. Reset
    seeds: the env is seeded with the first slot's seed.

    :param env: a Gymnasium env with observation ``Box(shape=(B, D))``, action ``Box(shape=(B,))``
        and a per-sample ``info["sample_rewards"]`` of length ``B``
    """

    def __init__(self, env: gym.Env):
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 2:
            raise ValueError(f"expected an observation space Box(shape=(batch_size, state_dim)), got {obs_space}")
        batch_size = obs_space.shape[0]
        if not isinstance(act_space, gym.spaces.Box) or act_space.shape != (batch_size,):
            raise ValueError(f"expected an action space Box(shape=({batch_size},)), got {act_space}")
        self.env = env
        super().__init__(
            batch_size,
            gym.spaces.Box(obs_space.low[0], obs_space.high[0], dtype=np.float32),
            gym.spaces.Box(act_space.low[:1], act_space.high[:1], dtype=np.float32),
        )
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        options = self._options[0] or None
        obs, info = self.env.reset(seed=self._seeds[0], options=options)
        self.reset_infos = [dict(info) for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return np.array(obs, dtype=np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async()")
        obs, _, terminated, truncated, info = self.env.step(self._actions)
        self._actions = None
        rewards = np.array(info["sample_rewards"], dtype=np.float32).reshape(self.num_envs)
        common = {k: v for k, v in info.items() if k != "sample_rewards"}
        done = bool(terminated or truncated)
        common["TimeLimit.truncated"] = bool(truncated and not terminated)
        infos = [dict(common) for _ in range(self.num_envs)]
        obs = np.array(obs, dtype=np.float32)
        if done:
            for slot, slot_info in enumerate(infos):
                slot_info["terminal_observation"] = obs[slot]
            obs = self.reset()
        return obs, rewards, np.full(self.num_envs, done), infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = self.env.get_wrapper_attr(attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self.env.set_wrapper_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        result = self.env.get_wrapper_attr(method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        wrapped = is_wrapped(self.env, wrapper_class)
        return [wrapped for _ in self._get_indices(indices)]
