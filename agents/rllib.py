"""Both environments for RLlib, registered with Ray's ``tune.register_env`` under their Gymnasium ids.

Why: RLlib builds environments by name inside each of its env runners (separate processes, possibly
on other machines, each with its own GPU), so the envs must be in Ray's registry, not only in
Gymnasium's. The observation is a batch of samples, 2-D ``(batch_size, features)``, while RLlib's
default models read flat vectors; the registered creator therefore flattens it (row after row, so
sample ``i`` keeps its block of features). The action is already a flat ``Box`` with one score per
sample. Ray is needed only when :func:`register_rllib_envs` is called (``pip install -e ".[rllib]"``).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import FlattenObservation

from envs import ENV_IDS  # importing envs registers the Gymnasium ids in this process (e.g. an env runner)



def make_rllib_env(env_id: str, env_config: dict[str, Any]) -> gym.Env:
    """``env_id`` built with ``env_config`` as its keywords, its batch observation flattened for RLlib.

    :param env_id: ``DataAgent-v0`` or ``CoverSelect-v0``
    :param env_config: the env's constructor keywords (RLlib's ``EnvContext`` is such a dict)
    """
    if env_id not in ENV_IDS:
        raise ValueError(f"env_id={env_id!r} is invalid; valid choices: {', '.join(ENV_IDS)}")
    return FlattenObservation(gym.make(env_id, **dict(env_config)))


def register_rllib_envs() -> tuple[str, ...]:
    """Register ``DataAgent-v0`` and ``CoverSelect-v0`` with ``ray.tune.register_env``; returns their ids."""
    from ray.tune.registry import register_env

    for env_id in ENV_IDS:
        register_env(env_id, functools.partial(make_rllib_env, env_id))
    return ENV_IDS
