"""Every entry of the reward and algorithm registries runs on a tiny config (the baseline registries are
iterated by tests/test_dynamic_baselines.py and tests/test_static_baselines.py). The cases are read from the
registries, so a new entry is tested without a new test."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
import torch
import yaml

from agent_helpers import FakeBatchEnv, learn_and_record
from agents import ALGOS, LAYOUTS, make_agent
from agents.presets import HYPERPARAMS_DIR
from envs.cover_select.env import CoverSelectEnv
from envs.cover_select.rewards import COVER_REWARDS, make_cover_reward
from envs.data_agent.env import DataAgentEnv
from envs.data_agent.rewards import DATA_AGENT_REWARDS, REWARD_BASELINES, make_data_agent_reward
from experiments.train import build_parser
from tiny import tiny_env

TINY = tiny_env()
PRESETS = [(algo, env_id) for algo in ALGOS for env_id in yaml.safe_load((HYPERPARAMS_DIR / f"{algo}.yml").read_text())]


def batch(b: int = 12, c: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(b, c, generator=g) * 2
    losses = torch.nn.functional.cross_entropy(logits, torch.randint(0, c, (b,), generator=g), reduction="none")
    return losses, logits, torch.rand(b, generator=g)


@pytest.mark.parametrize("baseline", REWARD_BASELINES)
@pytest.mark.parametrize("name", DATA_AGENT_REWARDS)
def test_every_data_agent_reward_scores_a_batch(name, baseline):
    reward = make_data_agent_reward(name, normalize=False, baseline=baseline, keep_ratio=0.5)
    assert type(reward) is DATA_AGENT_REWARDS[name]
    out = reward(*batch())
    assert out.rewards.shape == (12,) and torch.isfinite(out.rewards).all() and 0.0 <= float(out.lam) <= 1.0
    assert out.rewards.std() > 0  # it ranks the samples


@pytest.mark.parametrize("name", DATA_AGENT_REWARDS)
def test_every_data_agent_reward_drives_the_env_and_the_cli(name):
    learnability = DATA_AGENT_REWARDS[name].reads_reducible_loss  # these read a reference model's losses
    env = DataAgentEnv(reward=name, **TINY, **({"reference": {"kind": "halves", "epochs": 1, "cache": False}}
                                               if learnability else {}))
    assert type(env.reward_fn) is DATA_AGENT_REWARDS[name]
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert np.isfinite(reward) and np.isfinite(info["sample_rewards"]).all()
    assert build_parser().parse_args(["--reward", name]).reward == name


@pytest.mark.parametrize("name", COVER_REWARDS)
def test_every_cover_reward_drives_the_env_and_the_cli(name):
    reward = make_cover_reward(name, 0.3)
    losses, _, scores = batch()
    out = reward(scores, torch.rand(12), torch.tensor(0.5), losses)
    assert out.rewards.shape == (12,) and torch.isfinite(out.rewards).all()
    env = CoverSelectEnv(reward=name, keep_ratio=0.3, **TINY)
    assert type(env.reward_fn) is COVER_REWARDS[name]
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.ones(env.action_space.shape, dtype=np.float32))
    assert np.isfinite(reward) and np.isfinite(info["sample_rewards"]).all()
    assert build_parser().parse_args(["--reward", name]).reward == name


def test_every_algorithm_has_its_preset_file():
    assert all((files("agents") / "hyperparams" / f"{algo}.yml").is_file() for algo in ALGOS)
    assert {env_id for _, env_id in PRESETS} == {"DataAgent-v0", "CoverSelect-v0"}  # every env has presets


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("algo", "env_id"), PRESETS)
def test_every_algorithm_preset_builds_and_learns_in_both_layouts(algo, env_id, layout):
    env = FakeBatchEnv(batch_size=8, episode_steps=20)
    agent = make_agent(algo, env, layout, env_id=env_id, seed=0, n_steps=4)
    assert type(agent) is ALGOS[algo]
    records = learn_and_record(agent, 8 * agent.get_env().num_envs)
    assert records and all(np.isfinite(v) for r in records for k, v in r.items() if k.startswith("train/"))
    assert build_parser().parse_args(["--algo", algo]).algo == algo
