"""The env trains whatever the caller's autograd mode: agents that step it under ``torch.no_grad()``
(evolution strategies, hand-written policies) get exactly the run of any other agent."""

from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401


def _run(env_id: str, grad_mode: contextlib.AbstractContextManager) -> list[tuple]:
    env = gym.make(env_id, dataset="synthetic", model="cnn", data=dict(train_size=64), trainer=dict(batch_size=16, epochs=2),
                   device="cpu")
    rng = np.random.default_rng(0)
    with grad_mode:
        steps = [env.reset(seed=0)]
        for _ in range(6):
            steps.append(env.step(rng.uniform(-1, 1, 16).astype(np.float32)))
    return steps


@pytest.mark.parametrize("env_id", ["DataAgent-v0", "CoverSelect-v0"])
def test_stepping_under_no_grad_trains_exactly_as_with_grad(env_id):
    with_grad, without = _run(env_id, contextlib.nullcontext()), _run(env_id, torch.no_grad())
    for a, b in zip(with_grad, without):
        np.testing.assert_array_equal(a[0], b[0])
    assert [s[1] for s in with_grad[1:]] == [s[1] for s in without[1:]]


def test_inference_mode_is_refused_with_a_clear_error():
    with pytest.raises(RuntimeError, match=r"inference_mode\(\) forbids; step it under torch.no_grad"):
        _run("DataAgent-v0", torch.inference_mode())
