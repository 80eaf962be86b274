"""RL Zoo as a client: rl_zoo3 reads our preset files as they are and builds the same agents as make_agent;
rl_zoo3.train trains them on both envs, and the saved agents load with our loaders and run."""

from __future__ import annotations

import argparse
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the env ids)
from agents import ALGOS, hyperparams_file, make_agent
from experiments.train import main as train_main

pytest.importorskip("rl_zoo3", reason="rl_zoo3 is the optional 'zoo' extra (pip install -e '.[zoo]' or '.[dev]')")
from rl_zoo3.enjoy import enjoy  # noqa: E402
from rl_zoo3.exp_manager import ExperimentManager  # noqa: E402
from rl_zoo3.train import train as zoo_train  # noqa: E402
from tiny import tiny_cli, tiny_env

TINY = tiny_env()
TINY_CLI = tiny_cli(extra=("--device", "cpu", "--no-progress", "--reference", "none"))
ZOO_ENV_KWARGS = [f"{k}:{v!r}" for k, v in TINY.items()]  # Zoo evaluates each value as Python
# Zoo builds PPO with the file's batch_size (full batch for the env defaults) before the hook re-derives it
pytestmark = pytest.mark.filterwarnings("ignore:You have specified a mini-batch size:UserWarning")
CASES = [("ppo", "DataAgent-v0"), ("a2c", "DataAgent-v0"), ("ppo", "CoverSelect-v0"), ("a2c", "CoverSelect-v0")]


def zoo_agent(algo: str, env_id: str, tmp_path) -> tuple:
    """The agent rl_zoo3 builds from our preset file, as its training starts (callbacks initialised)."""
    manager = ExperimentManager(argparse.Namespace(), algo, env_id, str(tmp_path), env_kwargs=dict(TINY), eval_freq=-1,
                                seed=0, device="cpu", verbose=0, config=str(hyperparams_file(algo)))
    model, _ = manager.setup_experiment()
    for callback in manager.callbacks:
        callback.init_callback(model)
    return model, manager


@pytest.mark.parametrize(("algo", "env_id"), CASES)
def test_rl_zoo_and_make_agent_build_the_same_agent(algo, env_id, tmp_path):
    zoo, manager = zoo_agent(algo, env_id, tmp_path)
    ours = make_agent(algo, gym.make(env_id, **TINY), seed=0, device="cpu")
    try:
        assert type(zoo.policy) is type(ours.policy) and zoo.get_env().num_envs == ours.get_env().num_envs
        assert zoo.observation_space == ours.observation_space and zoo.action_space == ours.action_space
        zoo_weights, our_weights = zoo.policy.state_dict(), ours.policy.state_dict()
        assert zoo_weights.keys() == our_weights.keys()
        assert all(torch.equal(zoo_weights[k], our_weights[k]) for k in zoo_weights)  # same seed, same networks
        assert zoo.policy._get_constructor_parameters().keys() == ours.policy._get_constructor_parameters().keys()
        for key in ("n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm", "normalize_advantage",
                    "batch_size", "n_epochs", "target_kl"):
            assert getattr(zoo, key, None) == getattr(ours, key, None), key
        for progress in (1.0, 0.5, 0.0):  # the hook's decay from 3e-4 to 3e-6 in both
            assert zoo.lr_schedule(progress) == pytest.approx(ours.lr_schedule(progress))
            if algo == "ppo":
                assert zoo.clip_range(progress) == ours.clip_range(progress)
        assert ours.lr_schedule(0.0) == pytest.approx(3e-6)
        zoo_opt, our_opt = zoo.policy.optimizer, ours.policy.optimizer
        assert type(zoo_opt) is type(our_opt) and zoo_opt.defaults == our_opt.defaults
    finally:
        zoo.get_env().close()
        ours.get_env().close()


@pytest.mark.parametrize(("algo", "env_id"), [("ppo", "DataAgent-v0"), ("a2c", "CoverSelect-v0")])
def test_rl_zoo_trains_our_preset_and_the_saved_agent_loads_and_runs(algo, env_id, tmp_path, monkeypatch, capsys):
    # tiny runs: 15 (DataAgent-v0) or 20 (CoverSelect-v0) steps per episode; per-sample: 16 slots per step
    timesteps = 320 if env_id == "DataAgent-v0" else 40
    monkeypatch.setattr(sys, "argv", [
        "rl_zoo3.train", "--algo", algo, "--env", env_id, "--gym-packages", "envs", "--conf-file",
        str(hyperparams_file(algo)), "--env-kwargs", *ZOO_ENV_KWARGS, "-n", str(timesteps), "--eval-freq", "-1",
        "--seed", "0", "--device", "cpu", "-f", str(tmp_path / "logs")])
    zoo_train()
    saved = tmp_path / "logs" / algo / f"{env_id}_1" / f"{env_id}.zip"
    assert saved.is_file()

    # SB3's loader: the paper's agent, trained by Zoo with the hook's schedule
    agent = ALGOS[algo].load(saved, device="cpu")
    assert agent.num_timesteps >= timesteps and agent.lr_schedule(0.0) == pytest.approx(3e-6)
    # our loader and an evaluation run: experiments.train acts with the Zoo agent's policy on a fresh run
    result = train_main([*TINY_CLI, "--env", env_id, "--algo", algo, "--load-agent", str(saved), "--no-learn",
                         "--out", str(tmp_path / "eval")])
    assert result["run"]["test"]["top1"] > 90.0  # the run trained its model (chance: 25%)
    assert np.load(tmp_path / "eval" / "scores.npy").shape == (160,)
    if env_id == "CoverSelect-v0":  # rl_zoo3.enjoy too (its loop assumes one sub-env: the batch layout)
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", [
            "rl_zoo3.enjoy", "--algo", algo, "--env", env_id, "--gym-packages", "envs", "-f", str(tmp_path / "logs"),
            "--no-render", "--deterministic", "-n", "25", "--device", "cpu"])
        enjoy()
        assert "Episode Length 20" in capsys.readouterr().out  # one whole run (episode) of the tiny config
