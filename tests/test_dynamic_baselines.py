"""Dynamic baselines: each method's defining behaviour on tiny inputs, and an end-to-end run."""

from __future__ import annotations

import pytest
import torch

from envs.core import signals
from envs.core.data import load_dataset
from envs.core.store import SampleStore
from envs.core.trainer import Trainer, TrainerConfig
from envs.data_agent.rewards import CompositeReward
from envs.methods.baselines.dynamic import PER_EPOCH_BASELINES, InfoBatch, ScoredTopK, DynamicSetup, composite_score, make_dynamic_baseline, run_dynamic


def store_with(losses: torch.Tensor, entropies: torch.Tensor | None = None) -> SampleStore:
    s = SampleStore(len(losses))
    s.last_loss.copy_(losses)
    s.loss_ema.copy_(losses)
    s.loss_sq_ema.copy_(losses**2)
    s.entropy.copy_(entropies if entropies is not None else torch.zeros_like(losses))
    return s


def test_infobatch_prunes_only_below_mean_and_rescales():
    n, r = 10_000, 0.3
    losses = torch.rand(n, generator=torch.Generator().manual_seed(0))
    ib = InfoBatch(n, epochs=8, prune_ratio=r, anneal=0.875, generator=torch.Generator().manual_seed(1))
    plan = ib.plan(0, store_with(losses))
    kept = torch.zeros(n, dtype=torch.bool)
    kept[plan.indices] = True
    below = losses < losses.mean()
    assert kept[~below].all()  # above-mean samples are never pruned
    pruned_share = (~kept[below]).float().mean().item()
    assert abs(pruned_share - r) < 0.02  # a random r of the well-learned ones
    assert torch.allclose(plan.weights[kept & below], torch.tensor(1 / (1 - r)))
    assert torch.all(plan.weights[~below] == 1.0)
    # annealing: epoch 7 of 8 trains everything with weight 1
    last = ib.plan(7, store_with(losses))
    assert len(last.indices) == n and torch.all(last.weights == 1)


def test_infobatch_unseen_samples_score_three_and_are_kept():
    losses = torch.tensor([float("nan")] * 4 + [0.1] * 4)
    plan = InfoBatch(8, epochs=4, prune_ratio=0.999, generator=torch.Generator().manual_seed(0)).plan(0, store_with(losses))
    assert set(range(4)) <= set(plan.indices.tolist())


def selector(method, n=100, **kw):
    return ScoredTopK(method, n, 10, epochs=10, keep_ratio=0.3, anneal=0.5, generator=torch.Generator().manual_seed(0), **kw)


def kept_set(plan):
    return set(plan.indices.tolist())


def test_loss_topk_keeps_highest_losses_and_unseen_first():
    losses = torch.arange(100, dtype=torch.float32)
    losses[5] = float("nan")
    plan = selector("loss_topk").plan(0, store_with(losses))
    assert kept_set(plan) == {5} | set(range(71, 100))
    assert torch.allclose(plan.weights[plan.indices], torch.tensor(1 / 0.3))


def test_ucb_ranks_by_mean_plus_c_std():
    s = store_with(torch.zeros(100))
    s.loss_ema.copy_(torch.linspace(0, 1, 100))
    s.loss_sq_ema.copy_(s.loss_ema**2)
    s.loss_sq_ema[:10] += 4.0  # high spread: std = 2 for the first ten
    plan = selector("ucb", ucb_c=1.0).plan(0, s)
    assert set(range(10)) <= kept_set(plan)
    assert len(plan.indices) == 30


def test_epsgreedy_spends_epsilon_of_the_budget_on_random_samples():
    losses = torch.arange(100, dtype=torch.float32)
    plan = selector("epsgreedy", epsilon=0.2).plan(0, store_with(losses))
    kept = kept_set(plan)
    assert len(kept) == 30
    assert set(range(76, 100)) <= kept  # the greedy 24 = (1 - 0.2) * 30
    assert len(kept - set(range(76, 100))) == 6


def test_random_is_seeded_and_changes_each_epoch():
    a, b = selector("random"), selector("random")
    s = store_with(torch.rand(100))
    p0, q0 = a.plan(0, s), b.plan(0, s)
    assert kept_set(p0) == kept_set(q0)
    assert kept_set(a.plan(1, s)) != kept_set(p0)


def test_composite_score_is_the_composite_reward_over_the_seen_samples():
    """The baseline ranks by Data Agent's own reward signal: CompositeReward (no normaliser, every score 1)
    on the seen samples, with the store's entropies (nats) read as the reward reads logits."""
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    losses = torch.tensor([0.1, 0.5, 2.0, 1.0, float("nan")])
    got = composite_score(losses, signals.entropy(logits), num_classes=4)
    want = CompositeReward(normalize=False)(losses[:4], logits[:4], torch.ones(4)).rewards
    torch.testing.assert_close(got[:4], want)
    assert torch.isnan(got[4])
    assert torch.isnan(composite_score(torch.tensor([0.3, float("nan")]), torch.zeros(2), 4)).all()  # < 2 seen


def test_bad_options():
    with pytest.raises(ValueError, match="prune_ratio"):
        InfoBatch(10, 5, prune_ratio=1.0)
    with pytest.raises(ValueError, match="epsilon"):
        selector("epsgreedy", epsilon=2.0)
    ds = load_dataset("synthetic")
    t = Trainer(ds, "mlp", TrainerConfig(epochs=2))
    with pytest.raises(ValueError, match="valid choices: full, random"):
        make_dynamic_baseline("gradmatch", DynamicSetup.of(t))


@pytest.mark.parametrize("method", PER_EPOCH_BASELINES)
def test_every_method_runs_on_the_shared_trainer_and_ledger(method):
    ds = load_dataset("synthetic")
    t = Trainer(ds, "mlp", TrainerConfig(epochs=4, batch_size=64), seed=0)
    out = run_dynamic(t, make_dynamic_baseline(method, DynamicSetup.of(t, keep_ratio=0.5, anneal=0.5)))
    n = ds.num_train
    kept = [round(f * n) for f in out["kept_fraction"]]
    assert out["ledger"]["samples_backpropagated"] == sum(kept)  # the ledger counts exactly what trained
    assert kept[2:] == [n, n]  # annealed epochs use all data
    if method not in ("full", "infobatch"):
        assert kept[:2] == [n // 2, n // 2]
    assert out["test"]["top1"] > 90.0  # every method trains the model (chance: 25%)
