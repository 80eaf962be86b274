"""Learnability: the holdout, reference models (cache, invalidation, cost), the reducible-loss signal in both envs,
the per-batch candidate mode and the rholoss / proxy_loss / reducible_loss baselines, on tiny configs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import envs.core.reference as reference_module
from envs import CoverSelectEnv, DataAgentEnv
from envs.core.data import DataConfig, load_dataset
from envs.core.reference import ReferenceConfig, attach_reference, load_reference
from envs.core.store import REFERENCE_SIGNAL_NAMES, SIGNAL_NAMES
from envs.core.trainer import Trainer, TrainerConfig
from envs.methods.baselines.dynamic import DynamicSetup, make_dynamic_baseline, run_dynamic
from envs.methods.baselines.static import run_proxy, select_coreset

NOISY = dict(task="noisy:sym:0.4")
TINY = TrainerConfig(batch_size=32, epochs=2, lr=0.05)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own reference cache (disk and memory)."""
    monkeypatch.setattr(reference_module, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(reference_module, "_MEMO", {})


def test_holdout_is_stratified_disjoint_and_never_trained_on():
    ids = np.arange(400, dtype=np.float32)[:, None]  # each row carries its own id
    labels = np.arange(400) % 4
    own = {"train": (ids, labels), "test": (ids[:40], labels[:40])}
    plain = load_dataset(own, **NOISY, seed=3)
    held = load_dataset(own, **NOISY, seed=3, holdout=0.25)
    train_ids, holdout_ids = set(held.train_x[:, 0].tolist()), set(held.holdout_x[:, 0].tolist())
    assert not train_ids & holdout_ids and train_ids | holdout_ids == set(range(400))
    assert len(holdout_ids) == 100 and torch.bincount(held.holdout_y_true).tolist() == [25] * 4  # stratified
    assert torch.equal(plain.train_y[held.holdout_x[:, 0].long()], held.holdout_y)  # noisy like the rest
    trusted = load_dataset(own, **NOISY, seed=3, holdout=0.25, trusted=True)
    assert torch.equal(trusted.holdout_y, trusted.holdout_y_true) and (held.holdout_y != held.holdout_y_true).any()
    # an episode only ever trains (and shows) training-set indices
    env = DataAgentEnv(own, "mlp", trainer=dict(batch_size=32, epochs=1), data=dict(holdout=0.25, seed=3),
                       device="cpu")
    _, info = env.reset(seed=0)
    seen, done = [info["batch_indices"]], False
    while not done:
        _, _, _, done, info = env.step(np.zeros(32, np.float32))
        seen.append(info["batch_indices"])
    trained = env.trainer.dataset.train_x[torch.as_tensor(np.concatenate(seen)[np.concatenate(seen) >= 0])]
    assert not set(trained[:, 0].tolist()) & holdout_ids


def test_reference_is_cached_invalidated_and_refused(monkeypatch, tmp_path):
    calls = []
    train = reference_module.train_reference
    monkeypatch.setattr(reference_module, "train_reference", lambda *a, **k: calls.append(1) or train(*a, **k))
    data = load_dataset("digits", **NOISY, holdout=0.2, trusted=True, seed=0)
    key = {"seed": 0, "trusted": True}
    first = load_reference(data, "mlp", TINY, ReferenceConfig(), key)
    monkeypatch.setattr(reference_module, "_MEMO", {})  # a new process: only the file remains
    again = load_reference(data, "mlp", TINY, ReferenceConfig(), key)
    assert len(calls) == 1 and torch.equal(first.loss, again.loss) and again.seconds == first.seconds
    assert again.top1 == first.top1 > 50  # the reference's own test accuracy travels with it
    load_reference(data, "mlp", TINY, ReferenceConfig(seed=1), key)  # another model seed: trained anew
    load_reference(data, "mlp", TrainerConfig(batch_size=32, epochs=1, lr=0.05), ReferenceConfig(), key)  # other epochs
    other = load_dataset("digits", **NOISY, holdout=0.2, trusted=True, seed=1)  # another data seed
    load_reference(other, "mlp", TINY, ReferenceConfig(), {"seed": 1, "trusted": True})
    assert len(calls) == 4
    path = tmp_path / "ref.pt"
    load_reference(data, "mlp", TINY, ReferenceConfig(cache=str(path)), key)
    with pytest.raises(ValueError, match="belongs to another configuration .*differs in data"):
        load_reference(other, "mlp", TINY, ReferenceConfig(cache=str(path)), {"seed": 1, "trusted": True})
    # the clean reference finds the noise: noisy labels cost it much more than clean ones
    noisy = data.noisy_mask
    assert first.loss[noisy].mean() > first.loss[~noisy].mean() + 0.5


def test_halves_score_each_half_with_the_model_that_did_not_see_it():
    data = load_dataset("synthetic", **NOISY, seed=0)
    scores = load_reference(data, "mlp", TINY, ReferenceConfig(kind="halves", cache=False), {"seed": 0})
    assert scores.samples == TINY.epochs * data.num_train  # two models, each on half the data
    assert torch.isfinite(scores.loss).all() and scores.loss[data.noisy_mask].mean() > scores.loss[~data.noisy_mask].mean()


def test_rholoss_keeps_less_noise_than_random_and_its_costs_are_counted():
    data = DataConfig(**NOISY, holdout=0.2, trusted=True, seed=0).load("digits", "cpu")
    config = TrainerConfig(batch_size=32, epochs=3, lr=0.05)
    ref = load_reference(data, "mlp", config, ReferenceConfig(), {"seed": 0})
    out = {}
    for method in ("random", "rholoss", "proxy_loss"):
        trainer = Trainer(data, "mlp", config, seed=0)
        attach_reference(trainer, ref)
        out[method] = run_dynamic(trainer, make_dynamic_baseline(method, DynamicSetup.of(
            trainer, keep_ratio=0.5, anneal=1.0, candidate_factor=2)))
    n, ledger = data.num_train, out["rholoss"]["ledger"]
    assert out["rholoss"]["noisy_kept_fraction"] < out["random"]["noisy_kept_fraction"] - 0.05
    assert ledger["samples_backpropagated"] == out["random"]["ledger"]["samples_backpropagated"]  # equal budget
    assert ledger["samples_forwarded"] == 3 * n + ledger["samples_backpropagated"]  # every candidate counted
    assert ledger["candidates_seconds"] > 0 and ledger["reference_samples"] == ref.samples
    assert ledger["reference_seconds"] == pytest.approx(ref.seconds)
    assert out["rholoss"]["wall_seconds"] >= ref.seconds  # the wall-clock pays for the reference
    assert 0 < out["rholoss"]["class_balance"] <= 1 and "class_balance" not in out["random"]
    proxy = out["proxy_loss"]["ledger"]
    assert proxy["reference_samples"] == ref.samples + 3 * n  # the proxy trains on every candidate


def test_the_signal_adds_no_forward_pass_and_is_loss_minus_reference():
    calls = {}

    def counting(env):
        env.reset(seed=0)
        calls[env] = 0
        env.trainer.model.register_forward_hook(lambda *a: calls.__setitem__(env, calls[env] + 1))
        for _ in range(5):
            env.step(np.zeros(32, np.float32))
        return calls[env]

    kw = dict(trainer=dict(batch_size=32, epochs=1), data=dict(**NOISY, holdout=0.2), device="cpu", state="signals")
    plain, learn = DataAgentEnv("digits", "mlp", **kw), DataAgentEnv("digits", "mlp", reference={}, **kw)
    assert counting(plain) == counting(learn)
    store = learn.trainer.store
    seen = store.times_selected > 0
    assert torch.allclose(store.reducible_loss[seen], store.last_loss[seen] - store.reference_loss[seen])
    assert learn.observation_space.shape == (32, len(SIGNAL_NAMES) + len(REFERENCE_SIGNAL_NAMES))


@pytest.mark.parametrize("env_cls,options", [
    (DataAgentEnv, dict(state="both", reward="learnability")),
    (DataAgentEnv, dict(state="signals", reward="composite_learnability", selection="candidates", candidate_factor=2)),
    (CoverSelectEnv, dict(state="both", reward="cover_difficulty", difficulty="reducible_loss")),
])
def test_both_envs_observe_and_reward_learnability(env_cls, options):
    env = env_cls("synthetic", "mlp", trainer=dict(batch_size=32, epochs=1), data=dict(**NOISY, holdout=0.25),
                  device="cpu", reference={"epochs": 1}, **options)
    obs, _ = env.reset(seed=0)
    columns = {"both": env.feature_dim if env_cls is CoverSelectEnv else 128, "signals": 0}[options["state"]]
    assert obs.shape[1] == columns + len(SIGNAL_NAMES) + len(REFERENCE_SIGNAL_NAMES)
    reducible = obs[:, -2]
    assert np.isfinite(obs).all() and np.ptp(reducible) > 0
    _, reward, _, _, info = env.step(np.linspace(-1, 1, obs.shape[0], dtype=np.float32))
    assert np.isfinite(reward) and info["ledger"]["samples_forwarded"] > 0
    assert env.trainer.ledger.reference_samples > 0  # booked in the run's ledger


def test_candidate_mode_trains_the_top_share_at_once_and_counts_every_candidate():
    env = DataAgentEnv("synthetic", "mlp", trainer=dict(batch_size=32, epochs=2), data=dict(**NOISY), device="cpu",
                       state="signals", selection="candidates", candidate_factor=4)
    obs, info = env.reset(seed=0)
    assert obs.shape == (128, len(SIGNAL_NAMES)) and env.episode_steps == 2 * 4
    loss = obs[:, 0]
    before = env.trainer.ledger.samples_backpropagated
    _, _, _, _, step = env.step(np.where(loss >= np.sort(loss)[-32], 1.0, -1.0).astype(np.float32))
    assert env.trainer.ledger.samples_backpropagated - before == 32  # the chosen quarter, in this very step
    chosen = set(env._chosen.tolist())
    assert chosen == set(info["batch_indices"][loss >= np.sort(loss)[-32]].tolist())
    done = False
    while not done:
        _, _, _, done, step = env.step(np.zeros(128, np.float32))
    ledger = step["ledger"]
    assert step["backprop_fraction"] == pytest.approx(0.25, abs=0.01)
    assert ledger["samples_forwarded"] == 2 * 512 + ledger["samples_backpropagated"]  # candidates + trained
    assert ledger["candidates_seconds"] > 0 and step["noisy_kept_fraction"] is not None


def test_candidate_mode_resumes_from_a_checkpoint_exactly():
    kw = dict(trainer=dict(batch_size=32, epochs=1), device="cpu", state="signals", selection="candidates",
              candidate_factor=2)
    a, b = DataAgentEnv("synthetic", "mlp", **kw), DataAgentEnv("synthetic", "mlp", **kw)
    a.reset(seed=1)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (6, 64)).astype(np.float32)
    for act in actions[:3]:
        a.step(act)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as a file would: no tensor shared with ``a``
    for act in actions[3:]:
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        assert ra == rb and np.array_equal(oa, ob)


def test_reducible_loss_coreset_keeps_the_highest_reducible_loss_and_pays_for_its_reference():
    data = load_dataset("digits", **NOISY, holdout=0.2, trusted=True, seed=0)
    config = TrainerConfig(batch_size=32, epochs=3, lr=0.05)
    ref = load_reference(data, "mlp", config, ReferenceConfig(), {"seed": 0})
    proxy = run_proxy(data, "mlp", config, score_epochs=2, reference=ref)
    coreset = select_coreset("reducible_loss", proxy, 0.5)
    kept = torch.zeros(data.num_train, dtype=torch.bool)
    kept[torch.as_tensor(coreset.indices)] = True
    for c in range(10):  # per class, every kept sample has a higher reducible loss than every dropped one
        mine = data.train_y == c
        reducible = proxy.losses - ref.loss
        assert reducible[kept & mine].min() >= reducible[~kept & mine].max()
    assert coreset.ledger["reference_samples"] == ref.samples and coreset.ledger["reference_seconds"] > 0
    with pytest.raises(ValueError, match="needs a reference model"):
        select_coreset("reducible_loss", run_proxy(data, "mlp", config, score_epochs=1), 0.5)
