"""Save and restore an SB3 agent between rollouts, so a killed run continues as if never stopped.

Why not ``agent.save``: its zip holds the networks and counters but not the episode statistics of
the ``Monitor``/``VecMonitor`` wrappers, and it is a second file to keep consistent with the env's
checkpoint. :func:`agent_state` returns one picklable dict that goes into the same checkpoint as
the env (:mod:`envs.episode`) and the global RNG states (:func:`envs.core.checkpoint.rng_state`).

Take it at a rollout boundary (a callback's ``_on_rollout_start``): the rollout buffer is empty
there, so nothing else of the algorithm is in flight. After :func:`load_agent_state`, continue with
``agent.learn(total - agent.num_timesteps, reset_num_timesteps=False)``: SB3 then neither resets
the env nor the counters, and the learning-rate schedule sees the same progress.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor

#: algorithm attributes that change while learning and are not network parameters
AGENT_ATTRS = ("num_timesteps", "_n_updates", "_episode_num", "_last_obs", "_last_episode_starts",
               "_last_original_obs", "ep_info_buffer", "ep_success_buffer", "_current_progress_remaining")
#: episode statistics of SB3's monitor wrappers (start times are wall-clock and stay fresh)
MONITOR_ATTRS: dict[type, tuple[str, ...]] = {
    Monitor: ("rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times", "total_steps"),
    VecMonitor: ("episode_returns", "episode_lengths", "episode_count"),
}


def _monitors(agent: BaseAlgorithm) -> list[Any]:
    """The agent's ``VecMonitor``/``Monitor`` wrappers, outermost first, in a stable order."""
    found, venv = [], agent.get_env()
    while isinstance(venv, VecEnvWrapper):
        if isinstance(venv, VecMonitor):
            found.append(venv)
        venv = venv.venv
    for env in getattr(venv, "envs", []) if isinstance(venv, DummyVecEnv) else []:
        while isinstance(env, gym.Wrapper):
            if isinstance(env, Monitor):
                found.append(env)
            env = env.env
    return found


def agent_state(agent: BaseAlgorithm) -> dict[str, Any]:
    """Networks, optimizer, counters, last observation and monitor statistics of ``agent`` (copies)."""
    return {
        "parameters": agent.get_parameters(),
        "attrs": {name: copy.deepcopy(getattr(agent, name, None)) for name in AGENT_ATTRS},
        "monitors": [{name: copy.deepcopy(getattr(m, name)) for name in MONITOR_ATTRS[type(m)]} for m in _monitors(agent)],
    }


def load_agent_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    """Restore what :func:`agent_state` saved into an agent built the same way (same algo, env layout)."""
    monitors = _monitors(agent)
    if len(monitors) != len(state["monitors"]):
        raise ValueError(f"the agent has {len(monitors)} monitor wrapper(s), the saved state {len(state['monitors'])}; "
                         "it was built with another env layout")
    agent.set_parameters(state["parameters"], exact_match=True)
    for name, value in state["attrs"].items():
        setattr(agent, name, copy.deepcopy(value))
    for monitor, saved in zip(monitors, state["monitors"]):
        for name, value in saved.items():
            setattr(monitor, name, copy.deepcopy(value))
