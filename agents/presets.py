"""Paper presets for SB3 agents on the batch envs, and :func:`make_agent`.

The hyper-parameters live only in ``experiments/hyperparams/{algo}.yml`` (RL Zoo's layout: one
entry per env id); this module turns an entry into SB3 constructor arguments and adapts the
parts that depend on the env: the agent layout (``mode``), the rollout length (never longer than
an episode) and PPO's minibatch size (``n_steps * num_envs / n_minibatches``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from importlib.resources import files
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from torch import nn, optim

from agents.adapters import PerSampleVecEnv
from agents.policies import BatchOfSamplesPolicy

ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
MODES = ("batch", "per_sample")
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
OPTIMIZERS: dict[str, type[optim.Optimizer]] = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}
_NOT_SB3 = ("mode", "n_minibatches", "batch_policy_kwargs")


def _choice(kind: str, value: str, valid: Iterable[str]) -> str:
    if value not in valid:
        raise ValueError(f"{kind}={value!r} is invalid; valid choices: {', '.join(valid)}")
    return value


def load_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The raw YAML entry of ``env_id`` in ``experiments/hyperparams/{algo}.yml`` (a fresh copy)."""
    _choice("algo", algo, ALGOS)
    table = yaml.safe_load((files("experiments") / "hyperparams" / f"{algo}.yml").read_text())
    if env_id not in table:
        raise ValueError(f"no {algo} preset for env id {env_id!r}; presets exist for: {', '.join(table)}")
    return copy.deepcopy(table[env_id])


def parse_learning_rate(value: float | str | Schedule) -> float | Schedule:
    """A float, a schedule, or ``"lin_<start>"`` / ``"lin_<start>_<end>"``: linear from start to end
    (default 0) over the run (SB3's ``progress_remaining`` from 1 to 0)."""
    if not isinstance(value, str):
        return value
    parts = value.split("_")
    if parts[0] != "lin" or len(parts) not in (2, 3):
        raise ValueError(f"learning_rate={value!r} is invalid; valid: a float, 'lin_<start>' or 'lin_<start>_<end>'")
    start, end = float(parts[1]), float(parts[2]) if len(parts) == 3 else 0.0
    return LinearSchedule(start, end, end_fraction=1.0)


def env_id_of(env: gym.Env | VecEnv) -> str:
    """The registered id of ``env``: its spec, else the registry entry whose entry point is its class."""
    if isinstance(env, VecEnv):
        spec = env.get_attr("spec", indices=0)[0]
        if spec is None:
            raise ValueError("cannot tell the env id of a VecEnv whose envs have no spec; pass env_id=")
        return spec.id
    if env.spec is not None:
        return env.spec.id
    cls = type(env.unwrapped)
    entry = f"{cls.__module__}:{cls.__name__}"
    for env_id, spec in gym.registry.items():
        if spec.entry_point == entry:
            return env_id
    raise ValueError(f"{cls.__name__} is not a registered env; pass env_id= to pick a preset")


def episode_steps(env: gym.Env | VecEnv) -> int | None:
    """Steps of one episode (one training run) when the env tells it (``episode_steps``), else None."""
    try:
        if isinstance(env, VecEnv):
            value = env.get_attr("episode_steps", indices=0)[0]
        else:
            value = env.get_wrapper_attr("episode_steps")
    except AttributeError:
        return None
    return int(value)


def _policy_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    kw = dict(raw)
    if isinstance(kw.get("activation_fn"), str):
        kw["activation_fn"] = ACTIVATIONS[_choice("activation_fn", kw["activation_fn"], ACTIVATIONS)]
    if isinstance(kw.get("optimizer_class"), str):
        kw["optimizer_class"] = OPTIMIZERS[_choice("optimizer_class", kw["optimizer_class"], OPTIMIZERS)]
    return kw


def agent_kwargs(algo: str, hyperparams: dict[str, Any], mode: str, num_envs: int,
                 steps_per_episode: int | None = None, **overrides: Any) -> dict[str, Any]:
    """SB3 constructor arguments from a YAML entry, for ``num_envs`` sub-envs in ``mode``.

    ``overrides`` replace preset values; an overriding ``policy_kwargs`` is merged into the preset's.
    ``n_steps`` is capped at ``steps_per_episode`` so that an update happens within one training
    run; PPO's ``batch_size`` defaults to ``n_steps * num_envs / n_minibatches``.
    """
    _choice("mode", mode, MODES)
    hp = {**hyperparams, **{k: v for k, v in overrides.items() if k != "policy_kwargs"}}
    policy_kwargs = dict(hp.get("policy_kwargs", {}))
    if mode == "batch":
        policy_kwargs.update(hp.get("batch_policy_kwargs", {}))
    policy_kwargs.update(overrides.get("policy_kwargs", {}))
    n_minibatches = int(hp.get("n_minibatches", 1))
    kwargs = {k: v for k, v in hp.items() if k not in _NOT_SB3}
    kwargs["policy_kwargs"] = _policy_kwargs(policy_kwargs)
    kwargs["learning_rate"] = parse_learning_rate(kwargs.get("learning_rate", 3e-4))
    if steps_per_episode is not None and "n_steps" in kwargs and "n_steps" not in overrides:
        kwargs["n_steps"] = max(1, min(int(kwargs["n_steps"]), steps_per_episode))
    if algo == "ppo" and "batch_size" not in overrides:
        rollout = kwargs.get("n_steps", 2048) * num_envs
        if rollout % n_minibatches:
            raise ValueError(f"n_minibatches={n_minibatches} does not divide the rollout of {rollout} transitions "
                             f"(n_steps * num_envs); valid: a divisor of {rollout}")
        kwargs["batch_size"] = rollout // n_minibatches
    return kwargs


def make_agent(algo: str, env: gym.Env | VecEnv, mode: str | None = None, *, env_id: str | None = None,
               **overrides: Any) -> BaseAlgorithm:
    """An SB3 agent with the paper preset of ``env``'s id for ``algo`` (``ppo`` or ``a2c``).

    :param algo: ``ppo`` or ``a2c``
    :param env: a batch env (``DataAgent-v0``, ``CoverSelect-v0`` or any env with their interface);
        in ``batch`` mode also a ``VecEnv`` of such envs
    :param mode: ``batch``: :class:`BatchOfSamplesPolicy` on the ``(B, D)`` env, trained on the
        batch-mean reward; ``per_sample``: SB3's ``MlpPolicy`` on :class:`PerSampleVecEnv`, one
        sub-env per batch position, trained on per-sample rewards. ``None``: the preset's ``mode``
        (``batch`` for a ``VecEnv``, which the adapter cannot wrap)
    :param env_id: the preset to use (default: ``env``'s registered id)
    :param overrides: SB3 constructor arguments replacing the preset's (``seed``, ``verbose``,
        ``tensorboard_log``, ``device``, ``n_steps``, ``policy_kwargs`` (merged), ``n_minibatches``...)
    :return: an untrained ``PPO`` or ``A2C``
    """
    algo = algo.lower()
    hp = load_hyperparams(algo, env_id or env_id_of(env))
    mode = mode or ("batch" if isinstance(env, VecEnv) else hp["mode"])
    steps = episode_steps(env)
    if mode == "per_sample":
        if isinstance(env, VecEnv):
            raise ValueError("mode='per_sample' wraps ONE env in PerSampleVecEnv; pass a gym.Env, not a VecEnv")
        venv: gym.Env | VecEnv = VecMonitor(PerSampleVecEnv(env))
        policy: Any = "MlpPolicy"
        num_envs = venv.num_envs
    else:
        venv, policy = env, BatchOfSamplesPolicy
        num_envs = env.num_envs if isinstance(env, VecEnv) else 1
    kwargs = agent_kwargs(algo, hp, mode, num_envs, steps, **overrides)
    return ALGOS[algo](policy, venv, **kwargs)
