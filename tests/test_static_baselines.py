"""Static coreset baselines: each method's defining rule, per-class budgets, the proxy run, saving."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from envs.core import signals
from envs.core.data import load_dataset
from envs.core.reference import ReferenceConfig, ReferenceScores, load_reference
from envs.core.store import SampleStore
from envs.core.trainer import TrainerConfig
from envs.methods.baselines.static import (
                                           STATIC_BASELINES, ProxyScores, forgetting_scores, grand_scores, herding_order, kcenter_order, label_only_methods,
                                           moderate_scores, run_proxy, select_coreset, stratified_per_class,
                                           )
from envs.methods.coreset import coreset_target_size, load_coreset, save_coreset
from envs.methods.cover import class_members, cover_adjacency, cover_degrees, greedy_cover_order
from envs.methods.oracle import real_methods
from envs.methods.ranking import keep_top_per_class

RATIOS = (0.05, 0.3, 0.5, 0.77, 0.95)
REAL_METHODS = real_methods(STATIC_BASELINES)  # the oracle reads the provenance, not a proxy (tests/test_tasks.py)
PROPORTIONAL_METHODS = [m for m in REAL_METHODS if m != "random_uniform"]  # every method but the unstratified one


def fake_proxy(labels: torch.Tensor, seed: int = 0, dim: int = 3, **fields: torch.Tensor) -> ProxyScores:
    """Scores and features drawn at random (forgetting: small integers with ties and a few inf), overridable."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    forgetting = torch.randint(0, 3, (n,), generator=g).float()
    forgetting[torch.randperm(n, generator=g)[: n // 10]] = float("inf")
    values = {"el2n": torch.rand(n, generator=g), "grand": torch.rand(n, generator=g), "forgetting": forgetting,
              "features": torch.randn(n, dim, generator=g), "losses": torch.rand(n, generator=g), **fields}
    ledger = {"samples_forwarded": 7, "samples_backpropagated": 5, "optimizer_steps": 1, "eval_samples_forwarded": 0,
              "train_seconds": 1.0, "overhead_seconds": 0.5, "eval_seconds": 0.0}
    return ProxyScores(labels, values["el2n"], values["grand"], values["forgetting"], values["features"], ledger,
                       {"dataset": "fake", "num_train": n, "proxy_seed": seed}, values["losses"],
                       ReferenceScores(torch.rand(n, generator=g), torch.rand(n, generator=g), 0, 0.0, {}))


def uneven_labels() -> torch.Tensor:
    """Four classes of sizes 7, 13, 30, 50, interleaved."""
    y = torch.cat([torch.full((s,), k) for k, s in enumerate((7, 13, 30, 50))])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


# --- each method's defining rule ------------------------------------------------------------------


def test_herding_greedily_matches_the_class_mean_brute_force():
    x = torch.randn(15, 4, generator=torch.Generator().manual_seed(0)) * 3 + 5
    order = herding_order(x, 8).tolist()
    mu = x.mean(0)
    assert order[0] == int((x - mu).norm(dim=1).argmin())  # first pick: the sample closest to the class mean
    for t in range(8):
        rest = [j for j in range(15) if j not in order[:t]]
        gap = [float((mu - x[order[:t] + [j]].mean(0)).norm()) for j in rest]
        assert order[t] == rest[int(np.argmin(gap))]
    assert len(set(order)) == 8


def test_kcenter_picks_the_farthest_point_from_the_current_centres_brute_force():
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(3))
    order = kcenter_order(x, 7).tolist()
    assert order[0] == int((x - x.mean(0)).norm(dim=1).argmin())
    for t in range(1, 7):
        rest = [j for j in range(20) if j not in order[:t]]
        to_centres = sq_dist(x[rest], x[order[:t]]).min(dim=1).values
        assert order[t] == rest[int(to_centres.argmax())]
    # the picks are the greedy max-min set: the covering radius shrinks monotonically
    radius = [float(sq_dist(x, x[order[:t]]).min(dim=1).values.max()) for t in range(1, 8)]
    assert all(a >= b for a, b in zip(radius, radius[1:]))


def test_greedy_orders_never_repeat_a_sample_even_among_duplicates():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    for order_fn in (herding_order, kcenter_order):
        assert sorted(order_fn(x, 5).tolist()) == [0, 1, 2, 3, 4]
        assert order_fn(x, 0).numel() == 0


def test_forgetting_counts_flips_from_a_fixed_logits_sequence_and_keeps_the_most_forgotten():
    store = SampleStore(5)
    labels = torch.zeros(5, dtype=torch.long)
    right, wrong = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    # sample: 0 flips twice, 1 always right, 2 never right, 3 flips once, 4 learned late (never forgotten)
    sequence = [
        [right, right, wrong, wrong, wrong],
        [wrong, right, wrong, right, wrong],
        [right, right, wrong, wrong, right],
        [wrong, right, wrong, wrong, right],
    ]
    for epoch, rows in enumerate(sequence):
        store.update(torch.arange(5), torch.zeros(5), torch.stack(rows), labels, epoch)
    assert store.forgetting.tolist() == [2, 0, 0, 1, 0]
    scores = forgetting_scores(store)
    assert scores.tolist() == [2.0, 0.0, math.inf, 1.0, 0.0]
    kept = select_coreset("forgetting", fake_proxy(labels, forgetting=scores), 0.6).indices
    assert kept.tolist() == [0, 2, 3]


def test_forgetting_ties_are_broken_by_the_seed():
    labels = torch.zeros(40, dtype=torch.long)
    proxy = fake_proxy(labels, forgetting=torch.tensor([1.0] * 10 + [0.0] * 30))
    draws = {tuple(select_coreset("forgetting", proxy, 0.5, seed=s).indices) for s in range(6)}
    for kept in draws:
        assert set(range(10)) <= set(kept)  # every forgotten sample, then a seeded draw among the ties
    assert len(draws) > 1
    assert np.array_equal(select_coreset("forgetting", proxy, 0.5, seed=3).indices,
                          select_coreset("forgetting", proxy, 0.5, seed=3).indices)


def test_el2n_keeps_the_largest_error_norms_per_class():
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 1] * 10)
    logits = torch.randn(20, 3, generator=g) * 2
    el2n = signals.el2n(logits, labels)
    p = torch.softmax(logits, 1)
    assert torch.allclose(el2n, (p - F.one_hot(labels, 3)).norm(dim=1))
    kept = select_coreset("el2n", fake_proxy(labels, el2n=el2n), 0.3).indices
    for k in (0, 1):
        members = (labels == k).nonzero().squeeze(1)
        top3 = members[el2n[members].argsort(descending=True)[:3]]
        assert set(kept[labels[kept] == k].tolist()) == set(top3.tolist())


def test_grand_closed_form_equals_autograd_per_sample_head_gradient_norm():
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(5, 4)
    feats = torch.relu(torch.randn(6, 5, generator=g))
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    expected = []
    for i in range(6):
        head.zero_grad()
        F.cross_entropy(head(feats[i:i + 1]), labels[i:i + 1]).backward()
        expected.append(torch.cat([head.weight.grad.flatten(), head.bias.grad]).norm())
    got = grand_scores(head(feats).detach(), feats, labels)
    assert torch.allclose(got, torch.stack(expected), rtol=1e-5, atol=1e-6)


def test_moderate_keeps_the_samples_nearest_the_median_distance():
    # one class centred at 0: distances 1, 1, 2, 2, 3, 3, 10, 10 (median 2.5)
    x = torch.tensor([[1.0, 0], [-1, 0], [0, 2], [0, -2], [3, 0], [-3, 0], [0, 10], [0, -10]])
    labels = torch.zeros(8, dtype=torch.long)
    assert torch.allclose(moderate_scores(x, labels), -torch.tensor([1.5, 1.5, 0.5, 0.5, 0.5, 0.5, 7.5, 7.5]))
    assert select_coreset("moderate", fake_proxy(labels, features=x), 0.5).indices.tolist() == [2, 3, 4, 5]
    # a second class far away has its own centre and median
    both = torch.cat([x, x * 0.5 + 100])
    kept = select_coreset("moderate", fake_proxy(torch.tensor([0] * 8 + [1] * 8), features=both), 0.5).indices
    assert kept.tolist() == [2, 3, 4, 5, 10, 11, 12, 13]


def test_random_is_seeded_stratified_and_uniform():
    labels = torch.tensor([0] * 20 + [1] * 20)
    assert np.array_equal(select_coreset("random", labels, 0.25, seed=5).indices,
                          select_coreset("random", labels, 0.25, seed=5).indices)
    draws = np.stack([select_coreset("random", labels, 0.25, seed=s).indices for s in range(300)])
    assert len({tuple(d) for d in draws}) > 290
    assert ((draws < 20).sum(axis=1) == 5).all()  # 5 per class, every draw
    hits = np.bincount(draws.ravel(), minlength=40)  # each sample: Binomial(300, 0.25), mean 75, sd 7.5
    assert hits.min() > 45 and hits.max() < 105


def test_random_uniform_ignores_the_classes_and_is_seeded():
    labels = torch.tensor([0] * 20 + [1] * 20)
    draws = np.stack([select_coreset("random_uniform", labels, 0.25, seed=s).indices for s in range(300)])
    assert draws.shape == (300, 10) and np.array_equal(draws[0], select_coreset("random_uniform", labels, 0.25, 0).indices)
    per_class = (draws < 20).sum(axis=1)
    assert per_class.min() < 5 < per_class.max()  # class shares left to chance (hypergeometric around 5)
    hits = np.bincount(draws.ravel(), minlength=40)
    assert hits.min() > 45 and hits.max() < 105


def test_cover_keeps_the_smallest_cover_degrees_per_class():
    labels = uneven_labels()
    proxy = fake_proxy(labels, dim=4)
    kept = select_coreset("cover", proxy, 0.3, seed=0).indices
    degrees, _ = cover_degrees(proxy.features, class_members(labels, 4))
    inside = np.zeros(len(labels), bool)
    inside[kept] = True
    for k in range(4):
        member = (labels == k).numpy()
        assert degrees[inside & member].max() <= degrees[~inside & member].min()


def test_greedy_cover_picks_the_sample_covering_most_then_starts_new_rounds():
    # a dense cluster of 5 around 0, a pair at 10, a loner at 20; eps 1.5 (a fixed rule)
    x = torch.tensor([[0.0], [1.0], [-1.0], [0.5], [-0.5], [10.0], [10.5], [20.0]])
    order = greedy_cover_order(x, 8, epsilon=1.5).tolist()
    adj = cover_adjacency(x, 1.5)
    assert adj.equal(adj.T) and adj.diagonal().all() and adj.sum().item() == 23 + 4 + 1  # 1 and -1 are 2 apart
    assert order[0] == 0  # covers all 5 of the cluster (ties: [-0.5] and [0.5] also do; the lowest position wins)
    assert order[1:3] == [5, 7]  # then the pair (2 new), then the loner (1 new)
    # all covered after 3 picks: a new round over the unpicked samples, the densest first again
    assert order[3] == 3 and sorted(order) == list(range(8))
    assert greedy_cover_order(x, 0).numel() == 0


def test_stratified_selection_prunes_the_hardest_and_spreads_over_strata():
    scores = torch.cat([torch.linspace(0.0, 0.1, 80), torch.linspace(0.9, 1.0, 10), torch.full((10,), 5.0)])
    labels = torch.zeros(100, dtype=torch.long)
    kept = stratified_per_class(scores, labels, [20], strata=2, prune_hardest=0.1, generator=torch.Generator().manual_seed(0))
    assert len(kept) == 20 and len(kept.unique()) == 20
    assert (kept < 90).all()  # the 10 hardest (score 5) are pruned
    assert int((kept >= 80).sum()) == 10  # the sparse upper stratum gets its full half of the budget
    with pytest.raises(ValueError, match=r"prune_hardest=1.0 is invalid; valid range: \[0, 1\)"):
        stratified_per_class(scores, labels, [20], prune_hardest=1.0)
    with pytest.raises(ValueError, match="strata=0 is invalid"):
        stratified_per_class(scores, labels, [20], strata=0)


def test_keep_top_per_class_breaks_ties_at_random_only_among_equals():
    scores = torch.tensor([3.0, 1.0, 1.0, 1.0, 0.0, 5.0])
    labels = torch.tensor([0, 0, 0, 0, 0, 1])
    seen = set()
    for s in range(20):
        kept = keep_top_per_class(scores, labels, [2, 1], torch.Generator().manual_seed(s)).tolist()
        assert kept[0] == 0 and kept[-1] == 5 and kept[1] in (1, 2, 3)
        seen.add(kept[1])
    assert seen == {1, 2, 3}


# --- budgets, determinism, errors -----------------------------------------------------------------


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("method", PROPORTIONAL_METHODS)
def test_every_method_keeps_an_exact_proportional_budget(method, ratio):
    labels = uneven_labels()
    proxy = fake_proxy(labels)
    kept = select_coreset(method, proxy, ratio, seed=2).indices
    assert kept.dtype == np.int64
    assert len(kept) == coreset_target_size(len(labels), ratio) == round(ratio * len(labels))
    assert len(np.unique(kept)) == len(kept) and (np.diff(kept) > 0).all()
    per_class = np.bincount(labels[kept].numpy(), minlength=4)
    sizes = np.bincount(labels.numpy())
    assert (np.abs(per_class - ratio * sizes) < 1).all()
    assert np.array_equal(kept, select_coreset(method, proxy, ratio, seed=2).indices)


@pytest.mark.parametrize("ratio", [0.0, 1.0, 1.5, -0.2, float("nan"), True, "0.5", None])
def test_bad_ratio_is_a_clear_error(ratio):
    with pytest.raises(ValueError, match=r"ratio=.*invalid.*\(0, 1\)"):
        select_coreset("el2n", fake_proxy(uneven_labels()), ratio)


def test_bad_method_lists_the_choices_and_proxy_methods_need_a_proxy():
    with pytest.raises(ValueError, match="method='glister' is invalid; valid choices: random, el2n, grand"):
        select_coreset("glister", uneven_labels(), 0.5)
    with pytest.raises(ValueError, match="method='herding' needs the ProxyScores"):
        select_coreset("herding", uneven_labels(), 0.5)


# --- the proxy run and the end-to-end path --------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", train_size=300)


@pytest.fixture(scope="module")
def proxy(digits):
    halves = ReferenceConfig(kind="halves", epochs=1, cache=False)  # for reducible_loss
    reference = load_reference(digits, "mlp", TrainerConfig(epochs=4, batch_size=32), halves, {"train_size": 300})
    return run_proxy(digits, "mlp", TrainerConfig(epochs=4, batch_size=32), score_epochs=2, seed=0, reference=reference)


def test_proxy_run_counts_its_cost_and_records_every_score(digits, proxy):
    n = digits.num_train
    assert proxy.ledger["samples_backpropagated"] == 2 * n  # score_epochs passes over all data
    assert proxy.ledger["samples_forwarded"] == 3 * n  # the training passes plus one embed()
    assert proxy.ledger["optimizer_steps"] == 2 * math.ceil(n / 32)
    assert proxy.features.shape == (n, 128)
    assert torch.equal(proxy.labels, digits.train_y)
    for name in ("el2n", "grand"):
        s = getattr(proxy, name)
        assert s.shape == (n,) and torch.isfinite(s).all() and (s > 0).all()
    f = proxy.forgetting
    assert ((f >= 0) & ((f == f.round()) | torch.isinf(f))).all() and f[torch.isfinite(f)].max() <= 1  # 2 passes
    assert proxy.meta["score_epochs"] == 2 and proxy.meta["num_train"] == n


def test_num_models_averages_independent_proxy_runs(digits):
    config = TrainerConfig(epochs=2, batch_size=64)
    runs = [run_proxy(digits, "mlp", config, score_epochs=1, seed=s) for s in (7, 8)]
    both = run_proxy(digits, "mlp", config, score_epochs=1, num_models=2, seed=7)
    for name in ("el2n", "grand", "forgetting"):
        assert torch.allclose(getattr(both, name), (getattr(runs[0], name) + getattr(runs[1], name)) / 2)
    assert torch.equal(both.features, runs[0].features)
    assert both.ledger["samples_backpropagated"] == 2 * digits.num_train


def test_run_proxy_validates_its_options(digits):
    with pytest.raises(ValueError, match=r"score_epochs=5 is invalid; valid: an integer in \[1, config.epochs=4\]"):
        run_proxy(digits, "mlp", TrainerConfig(epochs=4), score_epochs=5)
    with pytest.raises(ValueError, match="num_models=0 is invalid"):
        run_proxy(digits, "mlp", TrainerConfig(epochs=4), score_epochs=1, num_models=0)


def test_end_to_end_every_method_selects_and_saves(digits, proxy, tmp_path):
    n = digits.num_train
    sizes = np.bincount(digits.train_y.numpy())
    for method in REAL_METHODS:
        coreset = select_coreset(method, proxy, 0.3, seed=1)
        idx = coreset.indices
        assert len(idx) == round(0.3 * n) and len(np.unique(idx)) == len(idx)
        if method != "random_uniform":
            assert (np.abs(np.bincount(digits.train_y[idx].numpy(), minlength=10) - 0.3 * sizes) < 1).all()
        if method in label_only_methods():  # no proxy: only its own selection time
            assert coreset.ledger["samples_backpropagated"] == 0 and coreset.proxy == {}
        else:
            assert coreset.ledger["samples_backpropagated"] == proxy.ledger["samples_backpropagated"]
            assert coreset.ledger["overhead_seconds"] > proxy.ledger["overhead_seconds"]
        npy, _ = save_coreset(tmp_path / method, idx, coreset.meta(dataset="digits", train_size=300, data_seed=0))
        loaded, meta = load_coreset(npy)
        assert np.array_equal(loaded, idx)
        assert meta["method"] == method and meta["ratio"] == 0.3 and meta["seed"] == 1 and meta["num_train"] == n
        assert meta["ledger"] == coreset.ledger and meta["train_size"] == 300
    # different methods choose different subsets from the same proxy run
    chosen = {m: set(select_coreset(m, proxy, 0.3, seed=1).indices.tolist()) for m in REAL_METHODS}
    assert len({frozenset(c) for c in chosen.values()}) == len(REAL_METHODS)
