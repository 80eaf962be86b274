"""Data Agent's remedies for the saturating reward (baselines, soft selection, refresh), the staleness
control, the agent's booked time, and the benchmark's equal-cost reports."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from agents import make_agent
from envs.core.store import SampleStore
from envs.data_agent.env import DataAgentEnv
from envs.data_agent.rewards import CompositeReward, make_data_agent_reward
from envs.methods.baselines.dynamic import ScoredTopK
from envs.methods.ranking import interpolated_quantile
from envs.methods.selection import AnnealedTopKPlanner
from experiments import benchmark
from experiments.run import benchmark as bench
from tiny import tiny_env

TINY = tiny_env(train_size=64)


def _batch(seed: int, b: int = 20, c: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g) * 2
    losses = torch.nn.functional.cross_entropy(logits, torch.randint(0, c, (b,), generator=g), reduction="none")
    return losses, logits


def test_paper_reward_always_pays_a_higher_score_but_baselines_make_it_a_ranking():
    losses, logits = _batch(0)
    ones = torch.ones(len(losses))
    paper = CompositeReward(normalize=False)(losses, logits, ones).rewards
    assert (paper >= 0).all()  # a*x with x >= 0: score 1 is best for every sample
    x = paper  # the signal itself, since every score is 1
    centered = make_data_agent_reward("composite", normalize=False, baseline="batch_mean")(losses, logits, ones).rewards
    torch.testing.assert_close(centered, x - x.mean())
    budget = make_data_agent_reward("composite", normalize=False, baseline="keep_quantile", keep_ratio=0.25)
    r = budget(losses, logits, ones).rewards
    torch.testing.assert_close(r, x - interpolated_quantile(x, 0.75))
    # exactly the samples above the batch's keep threshold earn more for a higher score
    assert int((r > 0).sum()) == int((x > interpolated_quantile(x, 0.75)).sum())
    assert 0 < int((r > 0).sum()) <= 0.25 * len(x) + 1


def test_reward_baseline_options_are_checked():
    with pytest.raises(ValueError, match="reward_baseline='median'.*none, batch_mean, keep_quantile"):
        DataAgentEnv(**TINY, reward_baseline="median")
    with pytest.raises(ValueError, match="keep_quantile' needs keep_ratio"):
        CompositeReward(baseline="keep_quantile")


@pytest.mark.parametrize("kwargs,match", [
    (dict(selection="greedy"), r"selection='greedy' is invalid; valid choices: topk, soft, importance, candidates"),
    (dict(refresh=1.5), r"refresh=1\.5 is invalid; valid: \[0, 1\]"),
    (dict(temperature=0.0), r"temperature=0\.0 is invalid; valid: > 0"),
])
def test_selection_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DataAgentEnv(**TINY, **kwargs)


def _selector(**kw) -> AnnealedTopKPlanner:
    return AnnealedTopKPlanner(1000, 4, keep_ratio=0.2, generator=torch.Generator().manual_seed(0), **kw)


def test_soft_selection_favours_high_scores_but_keeps_every_sample_a_chance():
    sel = _selector(selection="soft")
    sel.scores.copy_(torch.linspace(0.01, 1.0, 1000))  # sample i has score ~ i / 1000
    counts = torch.zeros(1000)
    for _ in range(50):
        kept = sel.plan(0).indices
        assert len(kept) == 200 and len(set(kept.tolist())) == 200
        counts[kept] += 1
    top, bottom = counts[800:].mean(), counts[:200].mean()
    assert top > 3 * bottom > 0  # favoured, not exclusive
    hard = _selector()  # top-k keeps exactly the 200 highest
    hard.scores.copy_(torch.linspace(0.01, 1.0, 1000))
    assert set(hard.plan(0).indices.tolist()) == set(range(800, 1000))


def test_low_temperature_soft_selection_approaches_top_k():
    sel = _selector(selection="soft", temperature=0.01)
    sel.scores.copy_(torch.linspace(0.01, 1.0, 1000))
    kept = set(sel.plan(0).indices.tolist())
    assert len(kept & set(range(800, 1000))) >= 190


def test_refresh_readmits_its_share_of_the_budget_from_the_left_out_samples():
    sel = _selector(refresh=0.25)
    sel.scores.copy_(torch.linspace(0.01, 1.0, 1000))
    kept = sel.plan(0).indices.tolist()
    assert len(kept) == 200 and len(set(kept)) == 200
    assert set(range(850, 1000)) <= set(kept)  # 150 by score
    assert len([i for i in kept if i < 850]) == 50  # 50 re-admitted from the rest
    again = _selector(refresh=0.25)
    again.scores.copy_(sel.scores)
    assert again.plan(0).indices.tolist() == kept  # seeded


def test_stale_control_keeps_the_least_recently_trained_samples():
    store = SampleStore(10)
    store.last_epoch.copy_(torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=torch.int32))
    sel = ScoredTopK("stale", 10, 2, epochs=4, keep_ratio=0.5, generator=torch.Generator().manual_seed(0))
    assert set(sel.plan(1, store).indices.tolist()) == {0, 1, 2, 3, 4}
    store.last_epoch.copy_(torch.tensor([-1, 0, 0, 0, 0, 1, 1, 1, 1, 1], dtype=torch.int32))
    assert 0 in sel.plan(2, store).indices.tolist()  # never trained comes first


def test_env_books_the_time_between_steps_as_agent_time():
    env = DataAgentEnv(**TINY)
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, np.float32)
    env.step(a)
    time.sleep(0.05)  # the "agent" thinks
    env.step(a)
    ledger = env.trainer.ledger
    assert 0.05 <= ledger.agent_seconds < 1.0
    assert ledger.as_dict()["agent_seconds"] == ledger.agent_seconds


@pytest.mark.parametrize("kwargs", [dict(reward_baseline="keep_quantile", selection="soft"),
                                    dict(reward_baseline="batch_mean", refresh=0.5, state="signals")])
def test_remedy_options_run_a_whole_episode_on_the_same_budget(kwargs):
    paper, remedy = DataAgentEnv(**TINY, keep_ratio=0.5), DataAgentEnv(**TINY, keep_ratio=0.5, **kwargs)
    infos = []
    for env in (paper, remedy):
        env.reset(seed=0)
        done = False
        while not done:
            _, r, _, done, info = env.step(env.action_space.sample())
            assert np.isfinite(r)
        infos.append(info)
    assert infos[0]["ledger"]["samples_backpropagated"] == infos[1]["ledger"]["samples_backpropagated"]


def _rec(method: str, seed: int, bp: float, top1: float, ratio: float = 0.5) -> dict:
    return {"method": method, "seed": seed, "backprop_fraction": bp, "top1": top1, "top5": 99.0, "ratio": ratio,
            "wall_seconds": 10 * bp, "agent_seconds": 0.0, "overhead_seconds": 0.0, "suite": "dynamic"}


def _records() -> list[dict]:
    recs = []
    for seed, shift in ((0, 0.0), (1, 0.4)):
        recs += [_rec("full", seed, 1.0, 90 + shift),
                 _rec("random", seed, 0.4, 80 + shift, 0.3), _rec("random", seed, 0.6, 84 + shift, 0.5),
                 _rec("agent", seed, 0.5, 84 + shift, 0.4), _rec("agent", seed, 0.8, 89.5 + shift, 0.7)]
    return recs


def test_matched_cost_interpolates_the_reference_at_each_runs_cost():
    rows = {(r["method"], r["ratio"]): r for r in bench.matched_cost(_records(), references=("random",))}
    # random at 0.5 is halfway between (0.4, 80) and (0.6, 84): 82 -> +2 points, the same for both seeds
    assert rows[("agent", 0.4)]["vs_random"] == pytest.approx(2.0)
    assert rows[("agent", 0.4)]["vs_random_std"] == pytest.approx(0.0)
    # at 0.8, random's curve runs from (0.6, 84) to full data (1.0, 90): 87 -> +2.5
    assert rows[("agent", 0.7)]["vs_random"] == pytest.approx(2.5)
    assert "vs_random" not in rows[("random", 0.3)]


def test_savings_within_tolerance_of_full_data():
    rows = {r["method"]: r for r in bench.savings_within(_records())}
    full = 90.2
    # agent: mean curve (0.5, 84.2), (0.8, 89.7), (1.0, full); within 0.3 -> 89.9 between 0.8 and 1.0
    x = 0.8 + (full - 0.3 - 89.7) / (full - 89.7) * 0.2
    assert rows["agent"]["within_0.3"] == pytest.approx(1 - x)
    assert rows["agent"]["within_1"] == pytest.approx(1 - (0.5 + (full - 1.0 - 84.2) / (89.7 - 84.2) * 0.3))
    assert not rows["agent"]["within_1_at_least"]
    # within 0.3 lies on the line to full data (an estimate); within 1.0 between two measured costs
    assert rows["agent"]["within_0.3_to_full"] and not rows["agent"]["within_1_to_full"]


def test_every_data_agent_method_names_a_policy_and_a_variant():
    for method in bench.DATA_AGENT_METHODS:
        policy, variant = bench.data_agent_method(method)
        assert policy in bench.DATA_AGENT_POLICIES and bench.data_agent_method_name(policy, variant) == method
        options = bench.DATA_AGENT_VARIANTS[variant]
        env_options = {k: v for k, v in options.items() if k != "hyperparams"}
        if env_options.pop("reference", False):  # the benchmark gives such a variant its cell's reference model
            env_options["reference"] = {"kind": "halves", "epochs": 1, "cache": False}
        env = DataAgentEnv(**TINY, keep_ratio=0.5, **env_options)  # every variant is a valid env configuration
        overrides = options.get("hyperparams", {}).get(policy)
        if overrides:  # and its agent overrides are valid for its algorithm
            agent = make_agent(policy, env, **overrides)
            for key, value in overrides.items():
                if key != "policy_kwargs":
                    assert getattr(agent, key) == value
    assert set(bench.DEFAULT_METHODS["dynamic"]) <= set(bench.RUNNERS["dynamic"])


def test_controls_and_equal_cost_tables_in_a_tiny_suite(tmp_path):
    variant = bench.RECOMMENDED_VARIANT
    methods = ["full", "random", "stale", "infobatch", *(bench.data_agent_method_name(p, variant) for p in ("const", "randact"))]
    text = benchmark.main(["--suite", "dynamic", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--anneal", "0.5",
                           "--seeds", "0", "--keep-ratios", "0.3", "0.6", "--prune-ratios", "0.9", "--methods", ",".join(methods),
                           "--out", str(tmp_path)])
    recs = [__import__("json").loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert {(r["method"], r["ratio"]) for r in recs if r["method"] == "infobatch"} == {("infobatch", 0.1)}
    assert len(recs) == 1 + 2 * 4 + 1
    assert "Accuracy at equal back-propagated fraction" in text and "Largest saving" in text
    const = [r for r in recs if r["method"].startswith("dataagent_const")]
    assert all(0.0 < r["backprop_fraction"] < 1.0 for r in const)


def test_a_diverging_run_is_recorded_as_failed_and_the_suite_goes_on(tmp_path):
    text = benchmark.main(["--suite", "dynamic", "--dataset", "synthetic", "--model", "mlp", "--epochs", "2", "--lr", "1e30",
                           "--methods", "random,dataagent_const", "--out", str(tmp_path)])
    recs = [__import__("json").loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all("non-finite" in r["error"] or "diverged" in r["error"] for r in recs)
    assert "every run failed" in (tmp_path / "summary.md").read_text() and "random" in text


@pytest.mark.parametrize("scores", [
    torch.linspace(0.0, 1.0, 1000) ** 4,  # proportional, nothing capped
    (torch.arange(1000) >= 900).float(),  # 100 positive scores for a budget of 200: the rest spreads uniformly
    torch.zeros(1000),  # nothing to be proportional to: uniform
    torch.cat([torch.ones(150), torch.full((850,), 1e-4)]),  # capped at 1, the rest proportional
])
@pytest.mark.parametrize("refresh", [0.0, 0.5])
def test_importance_selection_keeps_exactly_the_budget_with_unbiased_weights(scores, refresh):
    sel = _selector(selection="importance", refresh=refresh)
    sel.scores.copy_(scores)
    pi = sel.keep_probabilities()
    assert float(pi.sum()) == pytest.approx(200, abs=1e-2) and float(pi.max()) <= 1.0 + 1e-6
    plan = sel.plan(0)
    assert abs(len(plan.indices) - 200) <= 1 and len(set(plan.indices.tolist())) == len(plan.indices)
    torch.testing.assert_close(plan.weights[plan.indices], 1.0 / pi[plan.indices])


def test_control_margins_compare_a_learned_policy_with_controls_on_the_same_selection():
    recs = []
    for seed in (0, 1):
        recs += [_rec("dataagent_ppo_soft", seed, 0.5, 83.0 + seed), _rec("dataagent_const_soft", seed, 0.5, 82.5),
                 _rec("dataagent_randact_soft", seed, 0.5, 82.0), _rec("stale", seed, 0.5, 83.0),
                 _rec("dataagent_const", seed, 0.5, 99.0),  # another selection (top-k): not soft's control
                 _rec("dataagent_ppo_budget", seed, 0.5, 84.0)]  # top-k like the paper: const is its control
    rows = {r["method"]: r for r in bench.control_margins(recs)}
    soft = rows["dataagent_ppo_soft"]
    assert soft["vs_const"] == pytest.approx(1.0) and soft["vs_randact"] == pytest.approx(1.5)
    assert soft["vs_stale"] == pytest.approx(0.5) and soft["vs_const_std"] == pytest.approx(2 ** 0.5 / 2)
    assert rows["dataagent_ppo_budget"]["vs_const"] == pytest.approx(-15.0)
    assert "dataagent_const_soft" not in rows
