"""The drop-in selector: in a hand-written loop it selects exactly as DataAgent-v0; baselines; clear errors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from agents import Selector, make_agent
from envs import DataAgentEnv, FeatureModel
from envs.methods.baselines.dynamic import PER_EPOCH_BASELINES

N, BATCH, EPOCHS = 320, 32, 4


def user_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A user's tabular task: 10 features, 4 classes from the signs of two of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 10)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)


class UserNet(nn.Module):
    """A user's model: logits only; its penultimate features are the 16-d input of ``out``."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


ENV_OPTIONS = dict(trainer=dict(batch_size=BATCH, epochs=EPOCHS, lr=0.05, schedule="constant", label_smoothing=0.0),
                   keep_ratio=0.5, anneal=0.75, device="cpu")


def save_agent(tmp_path: Path, env: DataAgentEnv, layout: str) -> Path:
    agent = make_agent("ppo", env, layout, seed=1)
    path = tmp_path / layout / "agent.zip"
    path.parent.mkdir()
    agent.save(path)
    return path


def env_run(env: DataAgentEnv, agent_path: Path, seed: int) -> list[np.ndarray]:
    """The env driven by the saved agent's deterministic policy; the batches it trained, in order."""
    from stable_baselines3 import PPO

    agent = PPO.load(agent_path, device="cpu")
    obs, info = env.reset(seed=seed)
    batches, done = [info["batch_indices"]], False
    while not done:
        action, _ = agent.predict(obs, deterministic=True)
        obs, _, _, done, info = env.step(action.reshape(-1))
        if not done:
            batches.append(info["batch_indices"])
    return batches


def own_loop(net: nn.Module, x: np.ndarray, y: np.ndarray, selector: Selector, epochs: int = EPOCHS) -> tuple[list[np.ndarray], nn.Module]:
    """A plain PyTorch loop with the selector as sampler (the same optimizer as the env's trainer)."""
    model = FeatureModel(net)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(torch.arange(len(y)), torch.from_numpy(x), torch.from_numpy(y)),
                        batch_size=BATCH, sampler=selector)
    batches = []
    for _ in range(epochs):
        for idx, xb, yb in loader:
            batches.append(idx.numpy())
            logits, features = model(xb)
            loss = selector.update(idx, F.cross_entropy(logits, yb, reduction="none"), logits, features, labels=yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return batches, model


@pytest.mark.parametrize("state, layout, selection", [
    ("features", "per_sample", {}), ("signals", "batch", {}), ("both", "per_sample", {}),
    ("signals", "per_sample", {"selection": "soft", "refresh": 0.25, "temperature": 0.5}),
    ("features", "batch", {"selection": "importance", "refresh": 0.5}),
])
def test_a_hand_written_loop_selects_exactly_as_the_env(tmp_path, state, layout, selection):
    x, y = user_data()
    torch.manual_seed(0)
    net = UserNet()
    env = DataAgentEnv((x, y), net, state=state, **ENV_OPTIONS, **selection)
    path = save_agent(tmp_path, env, layout)
    expected = env_run(env, path, seed=7)
    # the env holds out 20% for testing: the loop trains on the same 256 samples
    data = env.trainer.dataset
    xs, ys = data.train_x.numpy(), data.train_y.numpy()
    selector = Selector.from_agent(path, num_samples=len(ys), epochs=EPOCHS, batch_size=BATCH, keep_ratio=0.5,
                                   anneal=0.75, state=state, seed=7, **selection)
    got, _ = own_loop(copy.deepcopy(net), xs, ys, selector)
    assert len(got) == len(expected)
    if selection.get("selection") != "importance":  # systematic sampling keeps the budget up to one sample
        assert len(got) == 3 * 4 + 8  # 3 pruned epochs of 128 kept, 1 full epoch of 256
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)
    assert torch.equal(selector.scores, env.scores)
    assert selector.backprop_fraction() == pytest.approx(env.summary()["backprop_fraction"])
    assert not selector.pruned and len(selector.kept_indices) == len(ys)  # the annealed last epoch


def test_the_state_is_read_from_the_config_beside_the_agent(tmp_path):
    x, y = user_data()
    env = DataAgentEnv((x, y), UserNet(), state="signals", **ENV_OPTIONS)
    path = save_agent(tmp_path, env, "per_sample")
    (path.parent / "config.yml").write_text(yaml.safe_dump({"env": "DataAgent-v0", "env_kwargs": {"state": "signals"}}))
    selector = Selector.from_agent(path, num_samples=256, epochs=2, batch_size=BATCH)
    assert selector.rule.state == "signals"
    (path.parent / "config.yml").write_text(yaml.safe_dump({"env": "CoverSelect-v0", "env_kwargs": {}}))
    with pytest.raises(ValueError, match="was trained on CoverSelect-v0; valid: an agent of DataAgent-v0"):
        Selector.from_agent(path, num_samples=256, epochs=2, batch_size=BATCH)


@pytest.mark.parametrize("name", PER_EPOCH_BASELINES)
def test_every_baseline_runs_as_a_drop_in(name):
    x, y = user_data()
    selector = Selector.from_baseline(name, num_samples=N, num_classes=4, epochs=3, batch_size=BATCH, keep_ratio=0.5,
                                      anneal=0.67, seed=0)
    kept = []
    model = FeatureModel(UserNet())
    loader = DataLoader(TensorDataset(torch.arange(N), torch.from_numpy(x), torch.from_numpy(y)), batch_size=BATCH,
                        sampler=selector)
    for epoch in range(3):
        assert len(loader) == len(selector) // BATCH  # plans the epoch from the statistics so far
        before = torch.nan_to_num(selector.rule.store.last_loss, nan=float("inf"))  # unseen samples rank first
        for idx, xb, yb in loader:
            logits, _ = model(xb)
            losses = F.cross_entropy(logits, yb, reduction="none")
            selector.update(idx, losses, logits).backward()
        kept.append(len(selector.kept_indices))
        if name == "loss_topk" and epoch == 1:
            # the epoch trained the samples with the highest losses recorded before it
            dropped = torch.ones(N, dtype=torch.bool)
            dropped[selector.kept_indices] = False
            assert before[selector.kept_indices].min() >= before[dropped].max()
    if name == "full":
        assert kept == [N, N, N]
    elif name == "infobatch":
        assert kept[0] == N and N / 2 <= kept[1] < N and kept[2] == N  # prunes only below-mean samples
    else:
        assert kept == [N // 2, N // 2, N]
    assert selector.backprop_fraction() == pytest.approx(sum(-(-k // BATCH) * BATCH for k in kept) / (3 * N))


def test_bad_use_gets_one_line_errors(tmp_path):
    x, y = user_data()
    env = DataAgentEnv((x, y), UserNet(), **ENV_OPTIONS)
    path = save_agent(tmp_path, env, "per_sample")  # reads 16-d features
    sizes = dict(num_samples=256, epochs=2, batch_size=BATCH)
    errors = []
    selector = Selector.from_agent(path, **sizes)
    with pytest.raises(RuntimeError, match="iterate over the selector first"):
        selector.update(torch.arange(BATCH), torch.zeros(BATCH))
    order = selector.next_epoch()
    with pytest.raises(ValueError, match="agent reads 16 values per sample, but state='features' of this model gives 24") as e:
        selector.update(order[:BATCH], torch.zeros(BATCH), torch.zeros(BATCH, 4), torch.zeros(BATCH, 24))
    errors.append(e)
    with pytest.raises(ValueError, match="needs features= in update") as e:
        selector.update(order[:BATCH], torch.zeros(BATCH), torch.zeros(BATCH, 4))
    errors.append(e)
    with pytest.raises(ValueError, match="valid: batch_size=32 of each \\(give the DataLoader batch_size=32\\)") as e:
        selector.update(order[:64], torch.zeros(64), torch.zeros(64, 4), torch.zeros(64, 16))
    errors.append(e)
    bad = [
        (lambda: Selector.from_agent(path, state="signals", **sizes), "reads 16 values per sample, but state='signals' has 10"),
        (lambda: Selector.from_agent(path, state="pixels", **sizes), "state='pixels' is invalid"),
        (lambda: Selector.from_agent(tmp_path / "missing.zip", **sizes), "does not exist"),
        (lambda: Selector.from_agent(path, num_samples=256, epochs=2, batch_size=32, keep_ratio=0.1), "keeps 25 of 256 samples"),
        (lambda: Selector.from_baseline("oracle", num_classes=4, **sizes), "baseline 'oracle' is invalid; valid choices: full"),
        (lambda: Selector.from_baseline("random", num_classes=4, num_samples=0, epochs=2, batch_size=8), "num_samples=0"),
    ]
    for make, message in bad:
        with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
            make()
        errors.append(e)
    signals = Selector.from_baseline("composite", num_classes=4, **sizes)
    with pytest.raises(ValueError, match="needs logits= in update"):
        signals.update(signals.next_epoch()[:BATCH], torch.zeros(BATCH))
    assert all("\n" not in str(e.value) for e in errors)
