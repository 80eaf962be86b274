"""ε-cover degrees and ε rules against brute force; chunking, memory budget and option errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from envs.methods.cover import (BYTES_PER_ENTRY, chunk_rows, class_members, cover_degrees, mean_pairwise_distance,
                                pairwise_distance_quantile, parse_epsilon)


def brute_force(features: np.ndarray, labels: np.ndarray, rule: str | float) -> tuple[np.ndarray, np.ndarray]:
    """Degrees and per-class eps in float64 numpy from the full distance matrix."""
    degrees = np.zeros(len(labels))
    eps = np.zeros(labels.max() + 1)
    for k in range(labels.max() + 1):
        idx = np.flatnonzero(labels == k)
        x = features[idx].astype(np.float64)
        dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        n = len(idx)
        if n < 2:  # no pairs: a fixed eps is kept, a rule gives 0; the degree is 0 either way
            eps[k] = rule if not isinstance(rule, str) else 0.0
            continue
        pairs = dist[np.triu_indices(n, 1)]
        eps[k] = {"mean": pairs.mean(), "median": np.median(pairs), "quantile:0.1": np.quantile(pairs, 0.1)}.get(rule, rule)
        degrees[idx] = ((dist <= eps[k]).sum(1) - 1) / (n - 1)
    return degrees, eps


def _classes(sizes: list[int], seed: int) -> torch.Tensor:
    labels = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


@pytest.mark.parametrize("rule", ["mean", 2.5, 6.0])
def test_degrees_match_brute_force_on_random_features(rule):
    labels = _classes([1, 2, 37, 120, 61], seed=0)
    feats = torch.randn(len(labels), 24, generator=torch.Generator().manual_seed(1)) * 2 + 5  # offset: not centred
    degrees, eps = cover_degrees(feats, class_members(labels, 5), rule)
    ref_deg, ref_eps = brute_force(feats.numpy(), labels.numpy(), rule)
    np.testing.assert_allclose(eps.numpy(), ref_eps, rtol=1e-5)
    np.testing.assert_allclose(degrees.numpy(), ref_deg, atol=1e-6)  # float32 vs float64 division only
    assert degrees.dtype == torch.float32 and ((degrees >= 0) & (degrees <= 1)).all()
    assert degrees[labels == 0].item() == 0.0  # a class of one sample has no class-mate to cover it


@pytest.mark.parametrize("rule", ["mean", "median", "quantile:0.1", 2.0, 1.0])
def test_integer_features_give_exact_ties_under_every_rule(rule):
    """Distances such as exactly 2 or sqrt(12) tie with eps; a tied pair counts as covered, as in numpy."""
    labels = _classes([80, 55, 3], seed=2)
    feats = torch.randint(0, 4, (len(labels), 5), generator=torch.Generator().manual_seed(3)).float()
    degrees, eps = cover_degrees(feats, class_members(labels, 3), rule)
    ref_deg, ref_eps = brute_force(feats.numpy(), labels.numpy(), rule)
    np.testing.assert_allclose(eps.numpy(), ref_eps, rtol=1e-6)
    counts = degrees.double().numpy() * (np.bincount(labels.numpy())[labels.numpy()] - 1)
    ref_counts = ref_deg * (np.bincount(labels.numpy())[labels.numpy()] - 1)
    np.testing.assert_array_equal(np.round(counts), np.round(ref_counts))
    if rule == 2.0:  # some pair sits exactly at the radius, so the tie rule matters here
        x = feats[labels == 0].numpy()
        assert (((x[:, None] - x[None]) ** 2).sum(-1) == 4).any()


@pytest.mark.parametrize("rule", ["mean", "median", 1.7])
def test_chunked_and_unchunked_agree_exactly(rule):
    labels = _classes([300, 257], seed=4)
    feats = torch.randn(len(labels), 16, generator=torch.Generator().manual_seed(5))
    members = class_members(labels, 2)
    whole = cover_degrees(feats, members, rule, chunk_bytes=2**40, generator=torch.Generator().manual_seed(0))
    for budget in (1, 300 * BYTES_PER_ENTRY * 7, 300 * BYTES_PER_ENTRY * 64):  # 1 row, 7 rows, 64 rows per block
        chunked = cover_degrees(feats, members, rule, chunk_bytes=budget, generator=torch.Generator().manual_seed(0))
        assert torch.equal(whole[0], chunked[0])
        if rule != "mean":  # the mean's float64 accumulation order depends on the blocks
            assert torch.equal(whole[1], chunked[1])
        else:
            torch.testing.assert_close(whole[1], chunked[1], rtol=1e-6, atol=0)


def test_identical_features_cover_each_other_and_eps_zero_is_handled():
    feats = torch.ones(6, 3)
    degrees, eps = cover_degrees(feats, [torch.arange(6)], "mean")
    assert eps.item() == 0.0 and torch.equal(degrees, torch.ones(6))


def test_mean_rule_is_exact_for_large_offsets():
    """A shift of 1e3 would ruin ||a||^2 + ||b||^2 - 2ab in float32 without the in-class shift."""
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(6)) * 0.1 + 1000.0
    ref = torch.cdist(x.double(), x.double()).sum() / (200 * 199)
    assert math.isclose(mean_pairwise_distance(x, chunk_bytes=4096).item(), ref.item(), rel_tol=1e-4)


def test_quantile_rule_on_a_subsample_is_within_tolerance():
    """Above ``quantile_samples`` (default 2,048) the quantile comes from a seeded subsample: its rank
    among all pairs is within the stated 2 percentage points of q, and the same seed gives the same eps."""
    x = torch.randn(3000, 8, generator=torch.Generator().manual_seed(7))
    all_pairs = torch.pdist(x.double())
    for q in (0.1, 0.5):
        eps = pairwise_distance_quantile(x, q, generator=torch.Generator().manual_seed(1))
        rank = (all_pairs <= eps.double()).double().mean().item()
        assert abs(rank - q) < 0.02, (q, rank)
        again = pairwise_distance_quantile(x, q, generator=torch.Generator().manual_seed(1))
        assert torch.equal(eps, again)


def test_chunk_rows_respects_the_byte_budget():
    for n, budget in [(50_000, 256 * 2**20), (10_000, 2**20), (7, 10**9), (1000, 1)]:
        rows = chunk_rows(n, budget)
        assert 1 <= rows <= n
        assert rows == 1 or rows * n * BYTES_PER_ENTRY <= budget
    with pytest.raises(ValueError, match="chunk_bytes=0"):
        chunk_rows(10, 0)


_MEMORY_SCRIPT = r"""
import json, sys, torch
from envs.methods.cover import cover_degrees
torch.set_num_threads(1)
n, d, budget = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
feats = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
cover_degrees(feats[:4000], [torch.arange(4000)], "mean", chunk_bytes=budget)  # warm-up: kernels, allocator
def status_kib(key):  # VmHWM is this image's peak resident set (ru_maxrss may include the parent's, at fork)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current resident set
before = status_kib("VmRSS")
degrees, eps = cover_degrees(feats, [torch.arange(n)], "mean", chunk_bytes=budget)
print(json.dumps({"extra_kib": status_kib("VmHWM") - before, "mean_degree": degrees.mean().item()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak resident set from /proc")
def test_peak_memory_stays_within_the_chunk_budget():
    """A 12,000-sample class: the full distance matrix would take 576 MB; with a 16 MiB budget the
    process's peak resident memory grows by less than twice the budget (one block, two copies of
    the 1.5 MB class features, O(N) outputs). A fixed glibc mmap threshold makes freed blocks
    leave the resident set at once, so the peak measures live memory, not allocator caching."""
    n, budget = 12_000, 16 * 2**20
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(n), "32", str(budget)],
                         capture_output=True, text=True, check=True, timeout=120, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["extra_kib"] * 1024 < 2 * budget, result
    assert 0.0 < result["mean_degree"] < 1.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "max", "quantile:1.5", "quantile:0", "quantile:x",
                                 True, None])
def test_bad_epsilon_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"epsilon=.*valid: a rule name"):
        parse_epsilon(bad)


def test_epsilon_rules_parse():
    assert parse_epsilon("median").kind == "quantile" and parse_epsilon("median").value == 0.5
    assert parse_epsilon("quantile:0.1").value == 0.1 and str(parse_epsilon("quantile:0.1")) == "quantile:0.1"
    assert parse_epsilon(3).kind == "fixed" and parse_epsilon(3).value == 3.0
    assert parse_epsilon("mean").kind == "mean"
