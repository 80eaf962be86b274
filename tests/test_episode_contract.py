"""The episode base both envs share: the named host transfer, one info contract, and the trainer/data configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the env ids)
from envs.core.data import DataConfig
from envs.core.trainer import TrainerConfig
from envs.episode import LEDGER_COUNTERS, HostTransfer
from tiny import tiny_env

# 60 samples in batches of 16: every epoch's last batch holds 12 samples and 4 padded slots
TINY = tiny_env(train_size=60)
OPTIONS = {"DataAgent-v0": dict(keep_ratio=1.0, anneal=0.0), "CoverSelect-v0": dict(keep_ratio=0.3)}
EVERY = {"batch_indices", "padded", "ledger", "backprop_fraction"}
AFTER_A_STEP = EVERY | {"epoch", "sample_rewards", "train_loss", "lr"}
LAST = AFTER_A_STEP | {"final_test", "scores"}
EXTRAS = {"DataAgent-v0": {"pruned", "keep_ratio_effective", "lambda"}, "CoverSelect-v0": {"ratio", "ratio_reward"}}
LAST_EXTRAS = {"DataAgent-v0": {"noisy_kept_fraction", "problem_shares"},
               "CoverSelect-v0": {"coreset", "coreset_meta", "problem_shares"}}


# --- the host transfer --------------------------------------------------------------------------


def test_host_transfer_round_trips_named_values_of_any_shape():
    transfer = HostTransfer()
    rewards = torch.tensor([0.5, -1.0, 2.0])
    transfer.add("sample_rewards", rewards)
    transfer.add("lambda", torch.tensor(0.25))
    transfer.add("finite", torch.tensor(True))
    transfer.add("observation", torch.arange(6, dtype=torch.float64).reshape(2, 3))
    host = transfer.to_host()
    assert list(host) == ["sample_rewards", "lambda", "finite", "observation"]
    np.testing.assert_array_equal(host["sample_rewards"], rewards.numpy())
    assert host["lambda"].shape == () and float(host["lambda"]) == 0.25
    assert float(host["finite"]) == 1.0
    np.testing.assert_array_equal(host["observation"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert all(v.dtype == np.float32 for v in host.values())


def test_host_transfer_refuses_a_name_twice_and_an_empty_one_fetches_nothing():
    transfer = HostTransfer()
    transfer.add("train_loss", torch.tensor(1.0))
    with pytest.raises(ValueError, match="name='train_loss' is already packed"):
        transfer.add("train_loss", torch.tensor(2.0))
    assert HostTransfer().to_host() == {}


@pytest.mark.parametrize("env_id", OPTIONS)
def test_a_mid_epoch_step_copies_to_the_host_once(env_id, monkeypatch):
    env = gym.make(env_id, **TINY, **OPTIONS[env_id]).unwrapped
    env.reset(seed=0)
    calls = []
    original = torch.Tensor.cpu

    def counted(self, *args, **kwargs):
        calls.append(tuple(self.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counted)
    env.step(np.zeros(16, np.float32))
    assert len(calls) == 1, calls


# --- one info contract --------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", OPTIONS)
def test_both_envs_give_the_same_info_keys_every_step(env_id):
    env = gym.make(env_id, **TINY, **OPTIONS[env_id])
    _, info = env.reset(seed=0)
    assert set(info) == EVERY
    assert set(info["ledger"]) == set(LEDGER_COUNTERS)
    steps = []
    while True:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps.append((reward, info))
        assert not terminated
        if truncated:
            break
        assert set(info) == AFTER_A_STEP | EXTRAS[env_id]
        assert info["batch_indices"].dtype == np.int64 and info["padded"].dtype == bool
        assert set(info["ledger"]) == set(LEDGER_COUNTERS)
    assert len(steps) == env.unwrapped.episode_steps == 2 * 4
    assert set(info) == LAST | EXTRAS[env_id] | LAST_EXTRAS[env_id]
    assert set(info["final_test"]) == {"top1", "top5", "loss"}
    assert "train_seconds" in info["ledger"] and info["ledger"]["eval_samples_forwarded"] > 0  # the full ledger
    assert (info["batch_indices"] == -1).all() and not info["padded"].any()  # the last observation is no batch
    np.testing.assert_array_equal(info["scores"], env.unwrapped.scores.numpy())
    assert info["backprop_fraction"] == pytest.approx(2 * 4 * 16 / (2 * 60))


@pytest.mark.parametrize("env_id", OPTIONS)
def test_padded_marks_the_repeated_slots_of_each_epochs_last_batch(env_id):
    env = gym.make(env_id, **TINY, **OPTIONS[env_id])
    _, info = env.reset(seed=0)
    seen: list[int] = []
    rewards = []
    for step in range(4):  # the first epoch
        padded, idx = info["padded"], info["batch_indices"]
        if step < 3:
            assert not padded.any()
        else:
            assert padded.tolist() == [False] * 12 + [True] * 4
            assert set(idx[padded].tolist()) <= set(seen)  # repeats of samples the epoch already drew
        seen += idx[~padded].tolist()
        _, reward, _, _, info = env.step(env.action_space.sample())
        rewards.append((reward, info["sample_rewards"], padded))
    assert sorted(seen) == list(range(60))
    reward, sample_rewards, padded = rewards[-1]
    # Data Agent scores padded slots like the others; RL-Selector ignores their actions and rewards
    counted = sample_rewards if env_id == "DataAgent-v0" else sample_rewards[~padded]
    assert reward == pytest.approx(float(counted.mean(dtype=np.float64)))


@pytest.mark.parametrize("env_id", OPTIONS)
def test_a_divergence_ends_the_run_with_the_last_steps_info(env_id):
    trainer = dict(batch_size=16, epochs=3, lr=1e6, schedule="constant", label_smoothing=0.0)
    env = gym.make(env_id, **{**TINY, "trainer": trainer}, **OPTIONS[env_id])
    env.reset(seed=0)
    while True:
        obs, reward, _, truncated, info = env.step(np.zeros(16, np.float32))
        if truncated:
            break
    assert "error" in info and set(info) == LAST | EXTRAS[env_id] | LAST_EXTRAS[env_id] | {"error"}
    assert np.isfinite(reward) and not obs.any()


# --- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, name", [(TrainerConfig, "trainer"), (DataConfig, "data")])
def test_coerce_takes_none_a_mapping_or_a_config(cls, name):
    assert cls.coerce(None) == cls()
    config = cls()
    assert cls.coerce(config) is config
    field = "epochs" if cls is TrainerConfig else "train_size"
    assert getattr(cls.coerce({field: 7}), field) == 7
    with pytest.raises(ValueError, match=rf"{name} has unknown option\(s\) bogus, zz; valid: .*{field}"):
        cls.coerce({"zz": 1, "bogus": 2, field: 3})
    with pytest.raises(ValueError, match=rf"{name}=5 is invalid; valid: None, a {cls.__name__} or a mapping"):
        cls.coerce(5)


@pytest.mark.parametrize("value, match", [
    ({"train_size": 0.5}, r"train_size=0\.5 is invalid"),
    ({"task": "noisy:pairflip"}, r"task='noisy:pairflip': 'pairflip' is no noise kind \(sym, asym\) or rate; valid tasks"),
    ({"task": "noisy:1.0"}, r"noise rate 1\.0 is outside \(0, 1\)"),
    ({"noise": "symmetric"}, r"data option\(s\) noise \(use task='noisy:sym:0\.4' \(or noisy:asym:<rate>\)\) no longer exist"),
    ({"root": 3}, r"root=3 is invalid; valid: None or a folder path"),
    ({"seed": -1}, r"seed=-1 is invalid; valid: None or an integer >= 0"),
])
def test_data_config_names_the_bad_option(value, match):
    with pytest.raises(ValueError, match=match):
        DataConfig.coerce(value)


def test_trainer_config_coerce_validates():
    with pytest.raises(ValueError, match=r"lr=-1 is invalid"):
        TrainerConfig.coerce({"lr": -1})


@pytest.mark.parametrize("env_id", OPTIONS)
def test_gym_make_takes_dict_configs(env_id):
    env = gym.make(env_id, dataset="digits", trainer={"epochs": 3}, data={"train_size": 500}, device="cpu").unwrapped
    assert env.config == TrainerConfig(epochs=3) and env.num_samples == 500
    assert env.data_config == DataConfig(train_size=500)
    with pytest.raises(ValueError, match="trainer has unknown option"):
        gym.make(env_id, trainer={"epoch": 3}, device="cpu")


def test_data_agent_draws_its_subset_from_the_run_seed_unless_the_data_seed_fixes_it():
    def subsets(data: dict) -> list[torch.Tensor]:
        env = envs.DataAgentEnv("digits", trainer=dict(batch_size=16, epochs=1), data=data, device="cpu")
        out = []
        for seed in (0, 1):
            env.reset(seed=seed)
            out.append(env.trainer.dataset.train_x.clone())
        return out

    per_run = subsets({"train_size": 100})
    fixed = subsets({"train_size": 100, "seed": 4})
    assert not torch.equal(*per_run) and torch.equal(*fixed)


@pytest.mark.parametrize("env_id", OPTIONS)
def test_scores_are_one_read_only_property_with_one_error_before_reset(env_id):
    env = gym.make(env_id, **TINY, **OPTIONS[env_id]).unwrapped
    with pytest.raises(RuntimeError, match=r"scores read before reset\(\): there is no episode yet"):
        env.scores
    with pytest.raises(AttributeError):
        env.scores = torch.zeros(60)
    env.reset(seed=0)
    assert env.scores.shape == (60,) and bool(((env.scores >= 0) & (env.scores <= 1)).all())


@pytest.mark.parametrize("env_id", OPTIONS)
def test_hooks_are_told_how_many_slots_are_real_samples(env_id, monkeypatch):
    """The base passes ``num_valid`` to the hooks: 16 on full batches, 12 on each epoch's last (60 = 3 * 16 + 12)."""
    env = gym.make(env_id, **TINY, **OPTIONS[env_id]).unwrapped
    seen = {"score": [], "observe": []}
    score, observe = env._score_batch, env._observe
    monkeypatch.setattr(env, "_score_batch", lambda fwd, s, n, t: seen["score"].append(n) or score(fwd, s, n, t))
    monkeypatch.setattr(env, "_observe", lambda fwd, n: seen["observe"].append(n) or observe(fwd, n))
    env.reset(seed=0)
    truncated = False
    while not truncated:
        _, _, _, truncated, _ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    assert seen["score"] == [16, 16, 16, 12] * 2
    assert seen["observe"] == [16, 16, 16, 12] * 2  # reset observes the first batch, the last step none
