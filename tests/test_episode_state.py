"""Env checkpoints: an episode saved at any step and loaded into a fresh env continues bit for bit."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401

CASES = {
    "DataAgent-v0": dict(state="both", keep_ratio=0.5),
    "CoverSelect-v0": dict(keep_ratio=0.3, train_on="selected"),
}


def _make(env_id: str, model: str = "mlp") -> gym.Env:
    return gym.make(env_id, dataset="synthetic", model=model, data=dict(train_size=96), trainer=dict(batch_size=16, epochs=3),
                    device="cpu",
                    **CASES[env_id]).unwrapped


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


# batch-norm models once crashed on the first step after a load: the replayed forward restored the running
# statistics in place, under the graph that saved them for backward (resnet18: tests/test_resume.py)
@pytest.mark.parametrize("env_id", CASES)
@pytest.mark.parametrize("model, stop", [
    ("mlp", 0), ("mlp", 5), ("mlp", 6), ("mlp", 11),  # first step, mid-epoch, an epoch's first and last batch
    ("cnn", 5),
])
def test_a_loaded_episode_continues_exactly(env_id, model, stop):
    whole = _make(env_id, model)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, whole.action_space.shape).astype(np.float32) for _ in range(40)]
    whole.reset(seed=4)
    steps = []
    for action in actions:
        steps.append(whole.step(action))
        if steps[-1][3]:
            break

    part = _make(env_id, model)
    part.reset(seed=4)
    for action in actions[:stop]:
        part.step(action)
    resumed = _make(env_id, model)
    resumed.load_state_dict(_roundtrip(part.state_dict()))
    for action, (obs, reward, _, truncated, info) in zip(actions[stop:], steps[stop:]):
        obs2, reward2, _, truncated2, info2 = resumed.step(action)
        np.testing.assert_array_equal(obs2, obs)
        assert reward2 == reward and truncated2 == truncated
        np.testing.assert_array_equal(info2["sample_rewards"], info["sample_rewards"])
    assert truncated2
    assert torch.equal(resumed.scores, whole.scores)
    for a, b in zip(resumed.trainer.model.state_dict().values(), whole.trainer.model.state_dict().values()):
        assert torch.equal(a, b)
    counters = ("samples_forwarded", "samples_backpropagated", "optimizer_steps")
    assert all(getattr(resumed.trainer.ledger, k) == getattr(whole.trainer.ledger, k) for k in counters)
    # and the env's own RNG carries on: the next episode starts the same
    np.testing.assert_array_equal(resumed.reset()[0], whole.reset()[0])


def test_state_dict_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="before reset"):
        _make("DataAgent-v0").state_dict()
