"""DataAgent-v0: API conformance, seeding, selection mechanics, cost accounting and robustness."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs
from envs.core.batches import fixed_size_batches
from envs.core.store import SIGNAL_NAMES
from envs.data_agent.env import DataAgentEnv
from envs.data_agent.rewards import CompositeReward
from envs.methods.selection import AnnealedTopKPlanner
from tiny import tiny_env

TINY = tiny_env(train_size=64)


def _tiny(trainer: dict | None = None, data: dict | None = None) -> dict:
    """TINY with some of its trainer and data options changed."""
    return {**TINY, "trainer": {**TINY["trainer"], **(trainer or {})}, "data": {**TINY["data"], **(data or {})}}


def _run(env: DataAgentEnv, policy, seed: int | None = 0):
    """Run one episode; returns the observations, rewards and last info."""
    obs, info = env.reset(seed=seed)
    observations, rewards = [obs], []
    while True:
        obs, r, terminated, truncated, info = env.step(policy(info))
        assert terminated is False
        observations.append(obs)
        rewards.append(r)
        if truncated:
            return observations, rewards, info


def _record_steps(env: DataAgentEnv) -> list[dict]:
    """Wrap the (already reset) env's trainer.step to record what each optimizer step trains."""
    trainer, calls = env.trainer, []
    original = trainer.step

    def step(fwd, weights=None):
        calls.append(dict(epoch=trainer.epoch, idx=fwd.idx.clone(), weights=weights.clone(),
                          losses=fwd.losses.detach().clone(), logits=fwd.logits.detach().clone()))
        return original(fwd, weights)

    trainer.step = step
    return calls


# --- API conformance ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["features", "signals", "both"])
def test_checkers_pass_with_only_the_expected_warnings(state):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("DataAgent-v0", state=state, **TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2, messages
    assert "maximum value is infinity" in messages[0] and "minimum value is -infinity" in messages[1]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "unconventional shape" in messages[0], messages


def test_make_spaces_and_state_dims():
    env = gym.make("DataAgent-v0", state="both", **TINY)
    assert isinstance(env.unwrapped, envs.DataAgentEnv)
    assert env.observation_space.shape == (16, 128 + len(SIGNAL_NAMES))
    assert env.observation_space.dtype == np.float32
    assert env.action_space.shape == (16,) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (16, 138)
    assert info["batch_indices"].shape == (16,) and len(set(info["batch_indices"].tolist())) == 16
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
    assert info["sample_rewards"].dtype == np.float32 and info["sample_rewards"].shape == (16,)
    assert reward == pytest.approx(float(info["sample_rewards"].mean()), rel=1e-5, abs=1e-6)
    assert 0.0 < info["lambda"] < 1.0 and info["epoch"] == 0 and info["pruned"] is True
    assert info["ledger"]["samples_backpropagated"] == 16


def test_features_rows_belong_to_batch_indices():
    env = DataAgentEnv(**TINY)  # mlp without batch norm, synthetic without augmentation: deterministic rows
    obs, info = env.reset(seed=1)
    for _ in range(3):
        idx = torch.as_tensor(info["batch_indices"])
        x, _ = env.trainer.dataset.train_batch(idx, augment=False)
        with torch.no_grad():
            _, feats = env.trainer.model(x)
        np.testing.assert_allclose(obs, feats.numpy(), rtol=1e-5, atol=1e-6)
        obs, _, _, _, info = env.step(np.zeros(16, dtype=np.float32))


def test_signals_state_columns():
    env = DataAgentEnv(state="signals", **TINY)
    obs, info = env.reset(seed=0)
    col = {name: obs[:, i] for i, name in enumerate(SIGNAL_NAMES)}
    assert np.all(col["loss"] > 0)
    np.testing.assert_allclose(col["loss_ema"], col["loss"], rtol=1e-6)  # first sighting: the EMA is the loss
    assert np.all((col["entropy"] >= 0) & (col["entropy"] <= 1))
    assert np.all((col["margin"] >= -1) & (col["margin"] <= 1))
    assert np.all(col["score"] == 1.0) and np.all(col["times_selected"] == 1.0)
    assert np.all(col["progress"] == 0.0) and np.all(col["pruning"] == 1.0)
    obs, *_ = env.step(np.zeros(16, dtype=np.float32))
    assert np.all(obs[:, SIGNAL_NAMES.index("progress")] == pytest.approx(0.25))  # 1 of 2 batches of epoch 0 of 2


# --- seeding ------------------------------------------------------------------------------------


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda info: rng.uniform(-1, 1, size=16).astype(np.float32)


def test_same_seed_same_run_different_seed_different_run():
    env = DataAgentEnv(**TINY)
    obs_a, rew_a, info_a = _run(env, _random_policy(0), seed=7)
    obs_b, rew_b, info_b = _run(env, _random_policy(0), seed=7)
    for a, b in zip(obs_a, obs_b):
        np.testing.assert_array_equal(a, b)
    assert rew_a == rew_b
    assert info_a["final_test"] == info_b["final_test"]
    obs_c, rew_c, _ = _run(env, _random_policy(0), seed=8)
    assert not np.array_equal(obs_a[0], obs_c[0]) and rew_a != rew_c


def test_unseeded_reset_starts_a_new_reproducible_run():
    env_a, env_b = DataAgentEnv(**TINY), DataAgentEnv(**TINY)
    first_a, _ = env_a.reset(seed=3)
    env_b.reset(seed=3)
    second_a, _ = env_a.reset()
    second_b, _ = env_b.reset()
    assert not np.array_equal(first_a, second_a)  # a new run seed drawn from np_random
    np.testing.assert_array_equal(second_a, second_b)


# --- actions and divergence ---------------------------------------------------------------------


def test_bad_actions_raise_and_out_of_range_is_clipped():
    env = DataAgentEnv(**TINY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(15,\).*\(16,\)"):
        env.step(np.zeros(15, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((16, 1), dtype=np.float32))
    for bad in (np.nan, np.inf, -np.inf):
        a = np.zeros(16, dtype=np.float32)
        a[3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            env.step(a)
    idx = env._fwd.idx.clone()  # the batch the next action scores
    a = np.full(16, 5.0, dtype=np.float32)
    a[0] = -7.0
    env.step(a)
    scores = env.planner.scores[idx]
    assert float(scores[0]) == 0.0 and bool((scores[1:] == 1.0).all())


def test_large_lr_diverges_into_a_truncated_episode():
    env = DataAgentEnv(**_tiny(dict(epochs=3, lr=1e6, schedule="constant", label_smoothing=0.0)))
    env.reset(seed=0)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(np.zeros(16, dtype=np.float32))
        steps += 1
        if truncated:
            break
    assert "error" in info and "diverged" in info["error"] and "lr" in info["error"]
    assert steps < 12  # ended early, not at the planned last batch
    assert terminated is False and math.isfinite(reward)
    assert np.all(obs == 0) and obs.shape == env.observation_space.shape
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(16, dtype=np.float32))


def test_nan_loss_ends_the_episode_with_an_error(monkeypatch):
    env = DataAgentEnv(**TINY)
    env.reset(seed=0)
    original = env.trainer.forward

    def nan_forward(idx):
        fwd = original(idx)
        fwd.losses = fwd.losses * float("nan")
        return fwd

    monkeypatch.setattr(env.trainer, "forward", nan_forward)
    obs, reward, terminated, truncated, info = env.step(np.zeros(16, dtype=np.float32))
    assert truncated is True and terminated is False and "non-finite" in info["error"]
    assert math.isfinite(reward) and "final_test" in info


# --- selection and cost -------------------------------------------------------------------------


def test_selected_samples_are_the_high_scored_ones_and_annealing_trains_all():
    n, k = 64, 32
    env = DataAgentEnv(**_tiny(dict(epochs=4)), anneal=0.75)  # pruned epochs 0, 1, 2; epoch 3 full
    high = set(range(0, n, 2))  # the agent favours even indices: score 0.95 vs 0.05
    policy = lambda info: np.where(info["batch_indices"] % 2 == 0, 0.9, -0.9).astype(np.float32)  # noqa: E731
    _, info = env.reset(seed=0)
    calls = _record_steps(env)
    while True:
        _, _, _, truncated, info = env.step(policy(info))
        if truncated:
            break
    trained, weights = defaultdict(list), defaultdict(list)
    for c in calls:
        trained[c["epoch"]] += c["idx"].tolist()
        weights[c["epoch"]].append(c["weights"])
    for e in (0, 1, 2):
        assert len(trained[e]) == len(set(trained[e])) == k  # kept fraction = keep_ratio exactly (no padding here)
        assert bool((torch.cat(weights[e]) == 2.0).all())  # 1 / keep_ratio
    # never-scored samples rank first: epoch 1 trains exactly those epoch 0 did not see
    assert set(trained[1]) == set(range(n)) - set(trained[0])
    # every sample is scored now: epoch 2 trains exactly the high-scored set
    assert set(trained[2]) == high
    assert sorted(trained[3]) == list(range(n)) and bool((torch.cat(weights[3]) == 1.0).all())
    assert info["keep_ratio_effective"] == 1.0 and info["pruned"] is False


def test_ledger_matches_the_analytic_count_with_padding():
    n, b, keep, epochs = 60, 16, 0.5, 4  # pruned: 30 kept -> 2 batches (2 padded); full: 60 -> 4 batches (4 padded)
    env = DataAgentEnv(**_tiny(dict(epochs=epochs), dict(train_size=n)), keep_ratio=keep, anneal=0.5)
    env.reset(seed=0)
    calls = _record_steps(env)
    paddings = []
    info = {}
    while True:
        _, _, _, truncated, info = env.step(np.zeros(b, dtype=np.float32))
        if truncated:
            break
        paddings.append(int(info["padded"].sum()))
    assert env.episode_steps == len(paddings) + 1 == len(calls)
    kept = math.floor(keep * n)
    want = 2 * math.ceil(kept / b) * b + 2 * math.ceil(n / b) * b
    assert want == 2 * 32 + 2 * 64 == env.planner.backprop_count(b)
    assert info["ledger"]["samples_backpropagated"] == want
    # one forward per trained batch: state and reward reuse the training forward pass
    assert info["ledger"]["samples_forwarded"] == want
    assert info["backprop_fraction"] == pytest.approx(want / (epochs * n))
    assert env.summary()["backprop_fraction"] == pytest.approx(want / (epochs * n))
    for e in range(epochs):
        idx = torch.cat([c["idx"] for c in calls if c["epoch"] == e])
        unique = len(set(idx.tolist()))
        assert unique == (kept if e < 2 else n)  # the padding re-draws samples of the epoch's own subset
    # padding shows on each epoch's last batch: 2 in pruned epochs, 4 in full ones
    assert sorted(paddings) == [0] * (len(paddings) - 4) + [2, 2, 4, 4]


def test_env_reward_is_the_reward_object_on_the_training_forward_pass():
    env = DataAgentEnv(**TINY)
    env.reset(seed=0)
    calls = _record_steps(env)
    reference = CompositeReward()
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.uniform(-1, 1, size=16).astype(np.float32)
        _, reward, _, _, info = env.step(a)
        c = calls[-1]
        want = reference(c["losses"], c["logits"], torch.from_numpy((a + 1) / 2)).rewards.numpy()
        np.testing.assert_allclose(info["sample_rewards"], want, rtol=1e-5, atol=1e-5)
        assert reward == pytest.approx(float(want.mean()), abs=1e-5)


def test_end_of_run_info_and_evaluate():
    env = DataAgentEnv(**TINY)
    _, _, info = _run(env, _random_policy(1))
    assert set(info["final_test"]) == {"top1", "top5", "loss"}
    assert info["final_test"] == env.evaluate()  # evaluation does not change the model
    assert info["ledger"]["train_seconds"] > 0 and info["ledger"]["overhead_seconds"] > 0
    assert "error" not in info
    assert env.summary()["final_test"] == info["final_test"]


def test_selector_ties_are_random_and_reproducible():
    def kept(seed):
        sel = AnnealedTopKPlanner(10, 2, keep_ratio=0.5, generator=torch.Generator().manual_seed(seed))
        sel.update(torch.tensor([0, 1]), torch.tensor([0.0, 0.0]))
        return sel.plan(0).indices.tolist()

    assert 0 not in kept(0) and 1 not in kept(0) and len(kept(0)) == 5
    assert kept(0) == kept(0)
    assert len({tuple(sorted(kept(s))) for s in range(8)}) > 1
    sel = AnnealedTopKPlanner(10, 8, keep_ratio=0.3, anneal=0.875)
    assert sel.pruned_epochs == 7 and sel.is_pruned(6) and not sel.is_pruned(7)
    assert sel.loss_weight == pytest.approx(1 / 0.3) and sel.num_kept == 3


def test_fixed_size_batches_pads_with_distinct_samples():
    batches = list(torch.arange(10).split(4))
    padded, missing = fixed_size_batches(batches, 4)
    assert missing == 2 and padded[-1].tolist() == [8, 9, 0, 1]
    with pytest.raises(ValueError, match="cannot fill"):
        fixed_size_batches([torch.arange(3)], 4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(state="pixels"), r"state='pixels'.*features, signals, both"),
    (dict(keep_ratio=0.0), r"keep_ratio=0\.0.*\(0, 1\]"),
    (dict(anneal=1.5), r"anneal=1\.5.*\[0, 1\]"),
    (dict(trainer=dict(batch_size=1)), r"batch_size=1.*>= 2"),
    (dict(keep_ratio=0.2), r"keep_ratio=0\.2 keeps 12 .*batch_size=16.*keep_ratio >= 0\.25"),
    (dict(loss_weight=-1.0), r"loss_weight=-1\.0"),
    (dict(reward="bogus"), r"reward='bogus'"),
    (dict(trainer=dict(lr=-1.0)), r"lr=-1\.0"),
    (dict(model="vit"), r"unknown model 'vit'"),
    (dict(data=dict(train_size=10**6)), r"train_size=1000000"),
])
def test_invalid_options_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataAgentEnv(**{**TINY, **kwargs})
