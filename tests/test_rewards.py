"""Data Agent's reward objects against hand computations in NumPy (docs/methods.md A.2/A.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.data_agent.rewards import CompositeReward, EntropyOnlyReward, FixedWeightReward, LossOnlyReward, make_data_agent_reward
from envs.methods.ranking import interpolated_quantile
from envs.methods.reward_terms import RunningBatchNormalizer, difficulty


def _batch(seed: int, b: int = 12, c: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g) * 2
    labels = torch.randint(0, c, (b,), generator=g)
    losses = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    scores = torch.rand(b, generator=g)
    return losses, logits, scores


def _hand_raw(losses: np.ndarray, logits: np.ndarray, scores: np.ndarray, lam: float | None = None) -> tuple[np.ndarray, float]:
    """The composite reward before normalisation, written out in float64 NumPy."""
    clipped = np.minimum(losses, np.quantile(losses, 0.95))
    diff = (clipped - clipped.min()) / (clipped.max() - clipped.min() + 1e-8)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    unc = -(p * np.log(p)).sum(axis=1) / np.log(logits.shape[1])
    if lam is None:
        vd, vu = diff.var(ddof=1), unc.var(ddof=1)
        lam = float(np.clip(vd / (vd + vu + 1e-8), 0.0, 1.0))
    return scores * (lam * diff + (1 - lam) * unc), lam


def _np(*ts: torch.Tensor) -> list[np.ndarray]:
    return [t.double().numpy() for t in ts]


@pytest.mark.parametrize("n", [1, 2, 7, 128])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.95, 1.0])
def test_interpolated_quantile_matches_numpy(n, q):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert float(interpolated_quantile(x, q)) == pytest.approx(np.quantile(x.numpy(), q), rel=1e-12)


def test_difficulty_clips_at_the_95th_percentile_and_min_max_normalises():
    losses = torch.tensor([0.1, 0.5, 0.2, 3.0, 0.4, 0.3, 9.0, 0.6, 0.2, 0.1])
    got = difficulty(losses).double().numpy()
    x = losses.double().numpy()
    q = np.quantile(x, 0.95)
    assert q < 9.0  # the outlier is clipped
    clipped = np.minimum(x, q)
    np.testing.assert_allclose(got, (clipped - clipped.min()) / (clipped.max() - clipped.min() + 1e-8), rtol=1e-5, atol=1e-6)
    assert got.min() == 0.0 and got.max() == pytest.approx(1.0)


def test_composite_reward_without_normaliser_matches_hand_computation():
    losses, logits, scores = _batch(0)
    out = CompositeReward(normalize=False)(losses, logits, scores)
    want, lam = _hand_raw(*_np(losses, logits, scores))
    assert 0.0 < lam < 1.0  # an interior weight, so the comparison below is not decided by the clamp
    assert float(out.lam) == pytest.approx(lam, rel=1e-5)
    np.testing.assert_allclose(out.rewards.double().numpy(), want, rtol=1e-5, atol=1e-6)
    assert out.rewards.dtype == torch.float32


def test_running_batch_normaliser_first_batch_uses_within_batch_std_then_std_of_batch_means():
    batches = [np.array([1.0, 2.0, 4.0, 7.0]), np.array([0.5, 0.5, 1.5, 2.0]), np.array([3.0, 1.0, 2.0, 2.0])]
    norm = RunningBatchNormalizer()
    means = []
    for i, b in enumerate(batches):
        got = norm(torch.tensor(b, dtype=torch.float64)).numpy()
        means.append(b.mean())
        if i == 0:
            mu, sigma = b.mean(), b.std(ddof=1)  # first batch: its own (unbiased) std
        else:
            # Welford over batch means gives their running mean and population std
            mu, sigma = np.mean(means), np.std(means)
        np.testing.assert_allclose(got, (b - mu) / (sigma + 1e-8), rtol=1e-10)
    assert norm.count == 3
    norm.reset()
    first = norm(torch.tensor(batches[2], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(first, (batches[2] - batches[2].mean()) / (batches[2].std(ddof=1) + 1e-8), rtol=1e-10)


def test_composite_reward_with_normaliser_over_two_batches():
    reward = CompositeReward()
    raws = []
    for seed in (1, 2):
        losses, logits, scores = _batch(seed)
        got = reward(losses, logits, scores).rewards.double().numpy()
        raw, _ = _hand_raw(*_np(losses, logits, scores))
        raws.append(raw)
        if seed == 1:
            want = (raw - raw.mean()) / (raw.std(ddof=1) + 1e-8)
        else:
            m = np.array([r.mean() for r in raws])
            want = (raw - m.mean()) / (m.std() + 1e-8)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    reward.reset()
    assert reward.normalizer.count == 0


@pytest.mark.parametrize("cls,lam", [(LossOnlyReward, 1.0), (EntropyOnlyReward, 0.0)])
def test_ablations_fix_lambda(cls, lam):
    losses, logits, scores = _batch(3)
    out = cls(normalize=False)(losses, logits, scores)
    want, _ = _hand_raw(*_np(losses, logits, scores), lam=lam)
    assert float(out.lam) == lam
    np.testing.assert_allclose(out.rewards.double().numpy(), want, rtol=1e-5, atol=1e-6)


def test_fixed_weight_reward_and_its_range():
    losses, logits, scores = _batch(4)
    out = FixedWeightReward(0.3, normalize=False)(losses, logits, scores)
    want, _ = _hand_raw(*_np(losses, logits, scores), lam=0.3)
    np.testing.assert_allclose(out.rewards.double().numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"lam=1\.5.*\[0, 1\]"):
        FixedWeightReward(1.5)


def test_raw_reward_increases_with_the_score():
    losses, logits, _ = _batch(5)
    reward = CompositeReward(normalize=False)
    low = reward(losses, logits, torch.full((12,), 0.2)).rewards
    high = reward(losses, logits, torch.full((12,), 0.8)).rewards
    assert bool((low >= 0).all()) and bool((high >= low).all())
    torch.testing.assert_close(high, 4 * low)


def test_lambda_is_zero_when_both_signals_are_constant():
    logits = torch.zeros(6, 3)  # uniform predictions: entropy 1 everywhere
    losses = torch.full((6,), 1.0986)
    out = CompositeReward(normalize=False)(losses, logits, torch.ones(6))
    assert float(out.lam) == 0.0
    torch.testing.assert_close(out.rewards, torch.ones(6))


def test_reward_names():
    assert isinstance(make_data_agent_reward("composite"), CompositeReward)
    assert make_data_agent_reward("loss", normalize=False).normalizer is None
    assert isinstance(make_data_agent_reward("entropy"), EntropyOnlyReward)
    with pytest.raises(ValueError, match="reward='bogus'.*composite, loss, entropy"):
        make_data_agent_reward("bogus")
    with pytest.raises(ValueError, match="clip_quantile=0"):
        CompositeReward(clip_quantile=0)
