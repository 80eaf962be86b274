"""docs/extending.md runs as written: a new dynamic baseline, two rewards and an algorithm
preset, each one class or function plus one registry line, reach the env, the selector factory and the CLI.

The page's code adds to the real registries; a fixture restores them after the test, so no other test sees
the additions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C

import agents.presets
from agents import make_agent
from agents.presets import ALGOS
from envs.core.store import SampleStore
from envs.cover_select.rewards import COVER_REWARDS
from envs.data_agent.rewards import DATA_AGENT_REWARDS
from envs.methods.baselines.dynamic import DYNAMIC_BASELINES, DynamicSetup
from envs.methods.baselines.static import STATIC_BASELINES
from experiments.train import build_parser

PAGE = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
REGISTRIES = (DYNAMIC_BASELINES, STATIC_BASELINES, DATA_AGENT_REWARDS, COVER_REWARDS, ALGOS)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S)


@pytest.fixture
def registries():
    """Every registry as it was before the test, restored in place (other modules hold the same dicts)."""
    saved = [dict(r) for r in REGISTRIES]
    yield
    for registry, content in zip(REGISTRIES, saved):
        registry.clear()
        registry.update(content)


@pytest.fixture
def readme(registries, tmp_path, monkeypatch):
    """The section's Python run in one namespace, its preset file in a temporary preset folder."""
    (yaml_block,) = blocks("yaml")
    folder = tmp_path / "hyperparams"
    folder.mkdir()
    (folder / "a2c_rms.yml").write_text(yaml_block)
    monkeypatch.setattr(agents.presets, "HYPERPARAMS_DIR", folder)
    code = blocks("python")
    assert len(code) == 3  # a dynamic baseline, the rewards, the algorithm preset
    namespace: dict = {"__name__": "readme"}
    exec(compile("\n".join(code), str(PAGE), "exec"), namespace)
    return namespace


def test_the_new_dynamic_baseline_is_built_by_name_and_keeps_the_lowest_losses(readme):
    result = readme["result"]
    assert result["kept_fraction"] == [0.5, 0.5, 1.0, 1.0]  # two pruned epochs at keep_ratio 0.5, then annealed
    assert result["test"]["top1"] > 50.0  # easy samples still teach the model something (chance: 25%)
    selector = DYNAMIC_BASELINES["lowest_loss"](DynamicSetup(8, 2, epochs=2, keep_ratio=0.5, anneal=0.5,
                                                             generator=torch.Generator().manual_seed(0)))
    assert isinstance(selector, readme["LowestLoss"])
    store = SampleStore(8)
    store.last_loss.copy_(torch.tensor([5.0, 0.1, 4.0, 0.2, 3.0, 0.3, 2.0, 0.4]))
    assert sorted(selector.plan(0, store).indices.tolist()) == [1, 3, 5, 7]


def test_the_new_rewards_are_what_the_envs_use_and_what_the_cli_accepts(readme):
    data_agent, cover_select = readme["data_agent"].unwrapped, readme["cover_select"].unwrapped
    assert type(data_agent.reward_fn) is readme["EvenReward"]
    assert type(cover_select.reward_fn) is readme["CoverLossReward"]
    data_agent.reset(seed=0)
    _, _, _, _, info = data_agent.step(np.zeros(data_agent.action_space.shape, dtype=np.float32))
    assert info["lambda"] == 0.5  # the new weight, not the variance ratio
    cover_select.reset(seed=0)
    _, reward, _, _, info = cover_select.step(np.ones(cover_select.action_space.shape, dtype=np.float32))
    assert np.isfinite(reward) and info["sample_rewards"].shape == (16,)
    assert build_parser().parse_args(["--reward", "even"]).reward == "even"
    assert build_parser().parse_args(["--reward", "cover_loss"]).reward == "cover_loss"


def test_the_new_algorithm_preset_builds_from_its_yaml_and_trains(readme):
    env = readme["data_agent"]
    agent = make_agent("a2c_rms", env, seed=0)
    assert type(agent) is A2C and agent.n_steps == 5 and agent.learning_rate == pytest.approx(7e-4)
    assert type(agent.policy.optimizer) is torch.optim.RMSprop  # use_rms_prop from the preset
    agent.learn(env.unwrapped.episode_steps)
    assert agent.num_timesteps == env.unwrapped.episode_steps
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())
    assert build_parser().parse_args(["--algo", "a2c_rms"]).algo == "a2c_rms"

