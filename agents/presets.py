"""Paper presets for SB3 agents on the batch envs, and :func:`make_agent`.

The hyper-parameters live only in ``agents/hyperparams/{algo}.yml``: RL Zoo hyper-parameter files
(one entry per env id) that ``rl_zoo3.train --conf-file`` reads as they are. This module reads an
entry the way Zoo does (policy by import path, ``policy_kwargs`` as a Python expression,
``lin_<start>`` schedules, the :mod:`agents.zoo` hooks) and adapts what depends on the env it is
given: the agent layout and a rollout never longer than one episode (one training run).
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Iterable
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
import yaml
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from torch import nn

from agents.adapters import PerSampleVecEnv
from agents.policies import BatchOfSamplesPolicy
from agents.zoo import PresetAdjustments
from envs.core.checks import is_count

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: The algorithm presets: name -> SB3 on-policy class (its policy must be an ``ActorCriticPolicy``). To add
#: one, add ``"name": SomeClass`` here and its RL Zoo file ``agents/hyperparams/<name>.yml`` (one entry per
#: env id); make_agent, ``experiments.train --algo``, ``tune`` and ``compare_layouts`` read this dict.
ALGOS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
#: the folder of the preset files (a package resource, so an installed wheel finds them)
HYPERPARAMS_DIR: Traversable = files("agents") / "hyperparams"
LAYOUTS = ("batch", "per_sample")
#: the hook paths of the presets (see agents.zoo)
PER_SAMPLE_WRAPPER = "agents.zoo.per_sample"
ADJUSTMENTS = "agents.zoo.PresetAdjustments"
BATCH_POLICY = "agents.BatchOfSamplesPolicy"
#: Zoo keys make_agent does not need: it is given its env, and experiments.train runs one episode
ZOO_RUN_KEYS = ("n_timesteps", "n_envs")
#: keys whose string values Zoo reads as a linear schedule ``lin_<start>`` (start -> 0)
SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf")
#: options of BatchOfSamplesPolicy that SB3's ActorCriticPolicy (the per-sample layout's) does not have
BATCH_POLICY_OPTIONS = tuple(sorted(set(inspect.signature(BatchOfSamplesPolicy).parameters)
                                    - set(inspect.signature(ActorCriticPolicy).parameters)))


def _choice(kind: str, value: str, valid: Iterable[str]) -> str:
    if value not in valid:
        raise ValueError(f"{kind}={value!r} is invalid; valid choices: {', '.join(valid)}")
    return value


def hyperparams_file(algo: str) -> Traversable:
    """The preset file of ``algo``: ``agents/hyperparams/{algo}.yml`` (pass it to Zoo's ``--conf-file``)."""
    return HYPERPARAMS_DIR / f"{_choice('algo', algo, ALGOS)}.yml"


def algo_parameters(algo: str) -> frozenset[str]:
    """The constructor options of ``algo``'s SB3 class: what its presets may set (e.g. only PPO-like
    classes have ``batch_size`` and ``n_epochs``)."""
    return frozenset(inspect.signature(ALGOS[_choice("algo", algo, ALGOS)]).parameters)


def load_hyperparams(algo: str, env_id: str) -> dict[str, Any]:
    """The raw YAML entry of ``env_id`` in :func:`hyperparams_file` (a fresh copy)."""
    table = yaml.safe_load(hyperparams_file(algo).read_text())
    if env_id not in table:
        raise ValueError(f"no {algo} preset for env id {env_id!r}; presets exist for: {', '.join(table)}")
    return copy.deepcopy(table[env_id])


def preset_layout(entry: dict[str, Any]) -> str:
    """``per_sample`` when the entry wraps its env with the per-sample hook, else ``batch``."""
    return "per_sample" if entry.get("vec_env_wrapper") == PER_SAMPLE_WRAPPER else "batch"


def eval_policy_kwargs(value: str | dict[str, Any]) -> dict[str, Any]:
    """``policy_kwargs`` as Zoo reads them: a dict, or a Python expression over ``dict``, ``nn`` (torch.nn)
    and ``th`` (torch), e.g. ``"dict(net_arch=[64], activation_fn=nn.Tanh)"``."""
    if isinstance(value, dict):
        return dict(value)
    try:
        kwargs = eval(value, {"__builtins__": {}}, {"dict": dict, "nn": nn, "th": torch})  # noqa: S307 (Zoo's format)
    except Exception as err:  # a syntax or name error of the expression: the user's input, not a bug
        raise ValueError(f"policy_kwargs={value!r} is invalid ({type(err).__name__}: {err}); valid: a dict, or an "
                         "expression over dict, nn and th such as 'dict(net_arch=[64], activation_fn=nn.Tanh)'") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"policy_kwargs={value!r} is invalid; valid: a dict, or an expression that makes one")
    return kwargs


def parse_schedule(key: str, value: float | str | Schedule) -> float | Schedule:
    """A number, a schedule, or Zoo's ``"lin_<start>"`` (linear from start to 0 over the run)."""
    if not isinstance(value, str):
        return value
    kind, _, start = value.partition("_")
    try:
        return LinearSchedule(float(start), 0.0, end_fraction=1.0) if kind == "lin" else float(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} is invalid; valid: a float or 'lin_<start>'") from None


def resolve_class(path: str | type) -> Any:
    """A class or function named by its import path (``agents.BatchOfSamplesPolicy``), as Zoo imports it."""
    if not isinstance(path, str) or "." not in path:
        return path
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _callbacks(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The entry's ``callback`` list as (import path, keyword arguments) pairs, as Zoo reads it."""
    value = entry.get("callback") or []
    items = value if isinstance(value, list) else [value]
    pairs = [next(iter(item.items())) if isinstance(item, dict) else (item, {}) for item in items]
    return [(name, dict(options or {})) for name, options in pairs]


def adjustments_of(entry: dict[str, Any]) -> PresetAdjustments | None:
    """The entry's :class:`PresetAdjustments` hook, built from its YAML options; other callbacks are refused
    (they act while Zoo trains; make_agent builds the agent only)."""
    found = None
    for name, options in _callbacks(entry):
        if name != ADJUSTMENTS:
            raise ValueError(f"callback {name!r} is not applied by make_agent; valid: {ADJUSTMENTS}")
        found = PresetAdjustments(**options)
    return found


def with_overrides(entry: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``entry`` with ``overrides`` (Zoo's ``-params``: keys replace the preset's), except that an overriding
    ``policy_kwargs`` is merged into the preset's, and ``final_learning_rate`` / ``n_minibatches`` set the
    options of the :class:`PresetAdjustments` hook."""
    out = copy.deepcopy(entry)
    hook = {k: overrides[k] for k in ("final_learning_rate", "n_minibatches") if k in overrides}
    out.update(copy.deepcopy({k: v for k, v in overrides.items() if k not in hook and k != "policy_kwargs"}))
    if "policy_kwargs" in overrides:
        out["policy_kwargs"] = {**eval_policy_kwargs(out.get("policy_kwargs", {})),
                                **eval_policy_kwargs(overrides["policy_kwargs"])}
    if hook:
        callbacks = _callbacks(out)
        options = {**next((o for name, o in callbacks if name == ADJUSTMENTS), {}), **hook}
        out["callback"] = [*({name: o} for name, o in callbacks if name != ADJUSTMENTS), {ADJUSTMENTS: options}]
    return out


def with_layout(entry: dict[str, Any], layout: str) -> dict[str, Any]:
    """``entry`` in the other layout when ``layout`` differs from the entry's: ``batch`` uses
    :class:`BatchOfSamplesPolicy` on the env itself, ``per_sample`` SB3's ``MlpPolicy`` on the per-sample
    hook (without BatchOfSamplesPolicy's own options). The rest of the entry stays."""
    if _choice("layout", layout, LAYOUTS) == preset_layout(entry):
        return copy.deepcopy(entry)
    out = copy.deepcopy(entry)
    kwargs = eval_policy_kwargs(out.get("policy_kwargs", {}))
    if layout == "batch":
        out.pop("vec_env_wrapper", None)
        out["policy"] = BATCH_POLICY
    else:
        out["vec_env_wrapper"], out["policy"] = PER_SAMPLE_WRAPPER, "MlpPolicy"
        kwargs = {k: v for k, v in kwargs.items() if k not in BATCH_POLICY_OPTIONS}
    out["policy_kwargs"] = kwargs
    return out


def agent_kwargs(algo: str, entry: dict[str, Any], num_envs: int, steps_per_episode: int | None = None) -> dict[str, Any]:
    """SB3 constructor arguments of ``algo`` from a preset entry (``policy`` included, ``env`` not), for ``num_envs``
    sub-envs. ``n_steps`` is capped at ``steps_per_episode`` so that an update happens within one
    training run (Zoo, which trains over many runs, has no need of it); PPO's ``batch_size`` comes
    from the :class:`PresetAdjustments` hook when it sets ``n_minibatches``."""
    kwargs = {k: v for k, v in entry.items() if k not in (*ZOO_RUN_KEYS, "vec_env_wrapper", "callback")}
    unsupported = sorted(k for k in kwargs if k in ("normalize", "frame_stack", "env_wrapper", "env_kwargs",
                                                    "monitor_kwargs", "noise_type", "noise_std"))
    if entry.get("vec_env_wrapper") not in (None, PER_SAMPLE_WRAPPER):
        unsupported.append("vec_env_wrapper (other than agents.zoo.per_sample)")
    if unsupported:
        raise ValueError(f"{', '.join(unsupported)}: Zoo option(s) make_agent does not apply; remove them from the preset")
    kwargs["policy"] = resolve_class(kwargs.get("policy", "MlpPolicy"))
    kwargs["policy_kwargs"] = eval_policy_kwargs(kwargs.get("policy_kwargs", {}))
    for key in SCHEDULE_KEYS:
        if key in kwargs:
            kwargs[key] = parse_schedule(key, kwargs[key])
    if "n_steps" in kwargs and not (is_count(kwargs["n_steps"]) and kwargs["n_steps"] >= 1):
        raise ValueError(f"n_steps={kwargs['n_steps']!r} is invalid; valid: an integer >= 1 (steps per env per rollout)")
    if steps_per_episode is not None and "n_steps" in kwargs:
        kwargs["n_steps"] = max(1, min(int(kwargs["n_steps"]), steps_per_episode))
    hook = adjustments_of(entry)
    minibatched = "batch_size" in algo_parameters(algo)
    if minibatched and hook is not None and hook.n_minibatches is not None:  # else the hook refuses it
        kwargs["batch_size"] = hook.batch_size(kwargs.get("n_steps", 2048) * num_envs)
    return kwargs


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


def make_agent(algo: str, env: gym.Env | VecEnv, layout: str | None = None, *, env_id: str | None = None,
               **overrides: Any) -> BaseAlgorithm:
    """An SB3 agent with the paper preset of ``env``'s id for ``algo`` (a name in :data:`ALGOS`).

    :param algo: a name in :data:`ALGOS` (``ppo``, ``a2c``)
    :param env: a batch env (``DataAgent-v0``, ``CoverSelect-v0`` or any env with their interface);
        in ``batch`` layout also a ``VecEnv`` of such envs
    :param layout: ``batch``: :class:`BatchOfSamplesPolicy` on the ``(B, D)`` env, trained on the
        batch-mean reward; ``per_sample``: SB3's ``MlpPolicy`` on :class:`PerSampleVecEnv`, one
        sub-env per batch position, trained on per-sample rewards. ``None``: the preset's layout
        (``batch`` for a ``VecEnv``, which the adapter cannot wrap)
    :param env_id: the preset to use (default: ``env``'s registered id)
    :param overrides: preset keys to replace, as Zoo's ``-params`` does (``seed``, ``verbose``,
        ``tensorboard_log``, ``device``, ``n_steps``, ``learning_rate``, ``policy_kwargs`` (merged)...),
        and the hook's ``final_learning_rate`` (``None``: keep the rate as given) and ``n_minibatches``
    :return: an untrained agent of ``ALGOS[algo]``
    """
    algo = algo.lower()
    entry = load_hyperparams(algo, env_id or env_id_of(env))
    entry = with_overrides(with_layout(entry, layout or ("batch" if isinstance(env, VecEnv) else preset_layout(entry))), overrides)
    if preset_layout(entry) == "per_sample":
        if isinstance(env, VecEnv):
            raise ValueError("layout='per_sample' wraps ONE env in PerSampleVecEnv; pass a gym.Env, not a VecEnv")
        venv: gym.Env | VecEnv = VecMonitor(PerSampleVecEnv(env))
        num_envs = venv.num_envs
    else:
        venv, num_envs = env, env.num_envs if isinstance(env, VecEnv) else 1
    agent = ALGOS[algo](env=venv, **agent_kwargs(algo, entry, num_envs, episode_steps(env)))
    hook = adjustments_of(entry)
    if hook is not None:
        hook.adjust(agent)
    return agent
