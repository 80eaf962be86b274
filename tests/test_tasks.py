"""Tasks (named data problems): what each does to the data, its provenance, RS2, the oracles, the scores,
and that every task runs on both envs and every baseline (tiny synthetic configs)."""

from __future__ import annotations

import functools
import json

import pytest
import torch

from envs import CoverSelectEnv, DataAgentEnv
from envs.core.data import load_dataset
from envs.core.instances import GRID, Instance, InstanceGrid
from envs.core.tasks import POOL_SHARE, TASKS, long_tail_sizes, parse_task, task_slug
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig
from envs.methods.baselines.dynamic import (DYNAMIC_BASELINES, PER_EPOCH_BASELINES, DynamicSetup, make_dynamic_baseline,
                                            run_dynamic)
from envs.methods.baselines.static import STATIC_BASELINES, select_coreset
from envs.methods.oracle import real_methods
from experiments import benchmark, train
from experiments.run.benchmark import report
from experiments.run.benchmark.leaderboard import write_leaderboard
from experiments.run.benchmark.scores import aggregate, normalised_scores

#: every task, sized for a 160-sample synthetic set (imbalanced:100 would leave its smallest class empty there)
TINY_TASKS = ("clean", "noisy", "noisy:asym:0.2", "redundant", "redundant:0.3:exact", "imbalanced:10", "mixed")


def test_every_registered_task_parses_and_bad_specs_name_the_valid_tasks():
    assert {parse_task(t).name for t in TINY_TASKS} == set(TASKS)
    assert parse_task("noisy:asym:0.2") == parse_task("noisy:0.2:asym")
    for bad in ("bogus", "noisy:1.5", "noisy:often", "redundant:0", "imbalanced:0.5", "imbalanced:10:20", "clean:1"):
        with pytest.raises(ValueError, match=r"valid tasks: clean, noisy\[:sym\|asym\]\[:rate\]"):
            parse_task(bad)


@pytest.mark.parametrize("task, rate", [("noisy", 0.4), ("noisy:asym:0.25", 0.25)])
def test_noise_hits_exactly_the_stated_count(task, rate):
    data = load_dataset("digits", task=task, seed=2)
    assert int(data.noisy_mask.sum()) == round(rate * data.num_train)
    assert torch.equal(data.train_y_true, load_dataset("digits", seed=2).train_y)
    assert int((data.duplicate_of >= 0).sum()) == 0 and not data.minority.any()


@pytest.mark.parametrize("exact", [True, False])
def test_duplicates_are_copies_of_a_small_pool(exact):
    data = load_dataset("digits", task="redundant:0.5" + (":exact" if exact else ""), seed=1)
    clean = load_dataset("digits", seed=1)
    copies = torch.nonzero(data.duplicate_of >= 0).squeeze(1)
    sources = data.duplicate_of[copies]
    assert abs(len(copies) - 0.5 * data.num_train) <= 10  # per-class rounding
    assert (data.duplicate_of[sources] == -1).all()  # a source is no copy itself
    assert len(sources.unique()) <= round(POOL_SHARE * data.num_train) + 10  # a small pool
    assert torch.equal(data.train_y[copies], data.train_y[sources])
    unchanged = data.duplicate_of == -1  # pool and untouched samples are the original images
    assert torch.equal(data.train_x[unchanged], clean.train_x[unchanged])
    if exact:
        assert torch.equal(data.train_x[copies], data.train_x[sources])
        return
    # an augmented copy is its source shifted by at most one pixel (reflect padding)
    src = torch.nn.functional.pad(data.train_x[sources].float(), (1, 1, 1, 1), mode="reflect")
    shifts = torch.stack([src[:, :, dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)])
    assert (shifts == data.train_x[copies].float()).flatten(2).all(2).any(0).all()


def test_class_counts_follow_the_factor_and_the_test_set_stays_balanced():
    data = load_dataset("digits", task="imbalanced:10", seed=0)
    clean = load_dataset("digits", seed=0)
    counts = torch.bincount(data.train_y, minlength=10)
    expected = long_tail_sizes(int(torch.bincount(clean.train_y).min()), 10, 10.0)
    assert counts.tolist() == expected.tolist() and expected[0] / expected[-1] == pytest.approx(10, rel=0.1)
    assert torch.equal(data.test_y, clean.test_y)
    assert data.minority.float().mean() == pytest.approx(float(counts[5:].sum() / counts.sum()))  # the smaller half
    with pytest.raises(ValueError, match="leaves a class of 'digits' with no samples"):
        load_dataset("digits", task="imbalanced:1000")


def test_the_holdout_comes_after_the_task_and_holds_no_copy():
    data = load_dataset("digits", task="redundant", seed=3, holdout=0.1, trusted=True)
    assert len(data.holdout_y) == round(0.1 * 1437) and torch.equal(data.holdout_y, data.holdout_y_true)
    copies = data.duplicate_of >= 0
    assert torch.equal(data.train_y[copies], data.train_y[data.duplicate_of[copies]])  # renumbered sources
    flat = data.train_x.flatten(1).float()
    assert torch.cdist(data.holdout_x.flatten(1).float(), flat).min() > 0  # no training image sits in the holdout


def test_rs2_draws_without_replacement_until_the_data_is_exhausted():
    data = load_dataset("synthetic", train_size=100, seed=0)
    trainer = Trainer(data, "mlp", TrainerConfig(epochs=4, batch_size=16), seed=0, track_samples=True)
    rs2 = make_dynamic_baseline("rs2", DynamicSetup.of(trainer, keep_ratio=0.4, anneal=1.0))
    plans = [set(rs2.plan(e, trainer.store).indices.tolist()) for e in range(4)]
    assert all(len(p) == 40 for p in plans)
    assert not plans[0] & plans[1] and len(plans[2] - plans[0] - plans[1]) == 20  # the last 20, then a fresh order
    assert len(plans[0] | plans[1] | plans[2]) == 100


def test_the_oracle_keeps_no_noisy_sample_or_copy_and_minority_classes_first():
    noisy = load_dataset("digits", task="noisy", seed=0)
    trainer = Trainer(noisy, "mlp", TrainerConfig(epochs=2, batch_size=64), seed=0, track_samples=True)
    out = run_dynamic(trainer, make_dynamic_baseline("oracle", DynamicSetup.of(trainer, keep_ratio=0.5, anneal=0.5)))
    assert out["problem_shares"]["kept_noisy"] == 0.0 and out["problem_shares"]["base_noisy"] == pytest.approx(0.4, abs=1e-3)
    assert not noisy.noisy_mask[select_coreset("oracle", noisy, 0.5).indices].any()
    redundant = load_dataset("digits", task="redundant", seed=0)
    assert (redundant.duplicate_of[select_coreset("oracle", redundant, 0.4).indices] == -1).all()
    imbalanced = load_dataset("digits", task="imbalanced:10", seed=0)
    kept = select_coreset("oracle", imbalanced, 0.2).indices
    assert imbalanced.minority[kept].all()  # the minority classes fill a 20% budget: nothing else is kept
    with pytest.raises(ValueError, match="reads the training set's provenance"):
        select_coreset("oracle", imbalanced.train_y, 0.2)


def test_the_oracle_is_never_offered_as_a_real_method():
    assert "oracle" in DYNAMIC_BASELINES and "oracle" in STATIC_BASELINES
    for names in (real_methods(DYNAMIC_BASELINES), PER_EPOCH_BASELINES, benchmark.DEFAULT_METHODS["dynamic"],
                  benchmark.DEFAULT_METHODS["static"], benchmark.suite_methods("all", "static", ())):
        assert "oracle" not in names
    assert "rs2" in benchmark.DEFAULT_METHODS["dynamic"] and "oracle" in benchmark.TASK_SUITE_METHODS


def _record(task: str, method: str, seed: int, cost: float, top1: float) -> dict:
    return {"method": method, "seed": seed, "ratio": 0.5, "top1": top1, "backprop_fraction": cost,
            "wall_seconds": 10.0 * cost, "config": {"task": task}}


def test_normalised_score_and_iqm_on_a_hand_computed_example():
    records = []
    for seed in (0, 1):
        records += [_record("noisy", "full", seed, 1.0, 80.0), _record("noisy", "rs2", seed, 0.5, 70.0),
                    _record("noisy", "oracle", seed, 0.5, 90.0), _record("clean", "full", seed, 1.0, 90.0),
                    _record("clean", "rs2", seed, 0.5, 86.0)]
    # noisy at cost 0.75: RS2 (70 + 80) / 2 = 75, the oracle (90 + 80) / 2 = 85; 80 scores 50. At 0.5: 74 scores 20
    records += [_record("noisy", "m", 0, 0.75, 80.0), _record("noisy", "m", 1, 0.5, 74.0),
                # clean: the ceiling is full data (90); 88 at 0.5 scores 50, 85 scores -25
                _record("clean", "m", 0, 0.5, 88.0), _record("clean", "m", 1, 0.5, 85.0)]
    rows = {(r["task"], r["seed"]): r["score"] for r in normalised_scores(records) if r["method"] == "m"}
    assert rows == pytest.approx({("noisy", 0): 50.0, ("noisy", 1): 20.0, ("clean", 0): 50.0, ("clean", 1): -25.0})
    board = {b["method"]: b for b in aggregate(normalised_scores(records), reps=50)}
    # IQM of {-25, 20, 50, 50}: the mean of the middle two, (20 + 50) / 2
    assert board["m"]["iqm"] == pytest.approx(35.0) and board["m"]["iqm_low"] <= 35.0 <= board["m"]["iqm_high"]
    assert board["m"]["p_improve"] == pytest.approx(0.75)  # three of four scores above RS2's 0
    assert board["rs2"]["iqm"] == 0.0


def _episode(env) -> dict:
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, _, _, done, info = env.step(env.action_space.sample())
    return info


@pytest.mark.parametrize("task", TINY_TASKS)
def test_every_task_runs_on_both_envs_and_reports_problem_shares(task):
    kw = dict(trainer=dict(batch_size=16, epochs=2), data=dict(train_size=160, task=task), device="cpu")
    info = _episode(DataAgentEnv("synthetic", "mlp", keep_ratio=0.5, anneal=0.5, **kw))
    shares = info["problem_shares"]
    problem = parse_task(task)
    assert (shares["base_noisy"] > 0) == (problem.noise is not None)
    assert (shares["base_duplicate"] > 0) == (problem.redundant > 0)
    assert (shares["base_minority"] > 0) == (problem.imbalance > 1)
    info = _episode(CoverSelectEnv("synthetic", "mlp", keep_ratio=0.5, **kw))
    assert set(info["problem_shares"]) == set(shares)


def test_every_task_runs_on_every_baseline(tmp_path, monkeypatch):
    """Every dynamic baseline on every task in one task suite; every static one on ``mixed``, which has all three
    problems at once (a static suite per task would take a minute here)."""
    monkeypatch.setattr(report, "write_leaderboard", functools.partial(write_leaderboard, reps=20))
    common = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "160", "--epochs", "2", "--batch-size", "16",
              "--anneal", "0.5", "--no-progress"]
    tasks = ["clean", "noisy", "redundant:0.3", "imbalanced:10", "mixed"]
    benchmark.main(["--suite", "tasks", "--tasks", *tasks, "--methods", ",".join(DYNAMIC_BASELINES),
                    "--out", str(tmp_path / "dynamic"), *common])
    benchmark.main(["--suite", "static", "--task", "mixed", "--methods", ",".join(STATIC_BASELINES),
                    "--out", str(tmp_path / "static"), *common])
    for suite, methods in (("dynamic", DYNAMIC_BASELINES), ("static", STATIC_BASELINES)):
        records = [json.loads(line) for line in (tmp_path / suite / "runs.jsonl").read_text().splitlines()]
        assert not any("error" in r for r in records) and not (tmp_path / suite / "failed.jsonl").exists()
        assert {r["method"] for r in records} == set(methods)
        assert all(r["problem_shares"] for r in records if r["method"] != "full")
    assert {json.loads(line)["config"]["task"] for line in (tmp_path / "dynamic" / "runs.jsonl").open()} == set(tasks)
    board = (tmp_path / "dynamic" / "leaderboard.md").read_text()
    rows = [line.split(" | ")[0] for line in board.splitlines()]
    assert "| rs2" in rows and "| oracle" not in rows and "| mixed | oracle |" in board  # oracle: in the shares table only
    assert all((tmp_path / "dynamic" / task_slug(t) / "summary.md").exists() for t in tasks)


def test_instances_split_by_seed_and_a_saved_agent_runs_frozen_on_the_test_instances(tmp_path):
    assert GRID.split_seeds("test") == (6, 7) and GRID.split_seeds("train") == tuple(range(6))
    assert len(GRID.instances("test")) == len(GRID.tasks) * len(GRID.datasets) * 2
    assert InstanceGrid(("noisy",), ("digits",), (4, 5, 9)).instances("test") == [Instance("noisy", "digits", 9)]
    with pytest.raises(ValueError, match="at least two distinct seeds"):
        InstanceGrid(("noisy",), ("digits",), (1,))
    tiny = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "160", "--batch-size", "16", "--epochs", "2",
            "--no-progress"]
    train.main([*tiny, "--task", "noisy", "--algo", "a2c", "--reference", "none", "--out", str(tmp_path / "agent")])
    benchmark.main(["--suite", "tasks", *tiny, "--tasks", "noisy", "--methods", "rs2", "--seeds", "0", "1", "2", "3",
                    "--instances", "test", "--load-agent", str(tmp_path / "agent" / "agent.zip"), "--out", str(tmp_path / "b")])
    records = [json.loads(line) for line in (tmp_path / "b" / "runs.jsonl").read_text().splitlines()]
    assert {(r["method"], r["seed"]) for r in records} == {("rs2", 3), ("dataagent_loaded", 3)}
    assert all("top1" in r for r in records)


def test_back_propagation_is_counted_against_the_imbalanced_training_set(tmp_path):
    benchmark.main(["--suite", "tasks", "--tasks", "imbalanced:10", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
                    "--methods", "full", "--no-progress", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "runs.jsonl").read_text())
    assert record["backprop_fraction"] == 1.0 and record["backprop"] == load_dataset("digits", task="imbalanced:10").num_train


def test_a_collapsed_model_is_a_divergence_not_a_result():
    """The imbalanced:100 failure (Fashion-MNIST 10k, seed 1, RS2 at keep 0.375): the MLP blew up, every ReLU died and
    it predicted one class (10.0% top-1) with a finite loss; in an env its constant rewards met the running normaliser's
    zero spread. Now the trainer and both envs stop there with a clear error."""
    data = load_dataset("synthetic", train_size=64, task="imbalanced:10", seed=1)
    trainer = Trainer(data, "mlp", TrainerConfig(epochs=2, batch_size=16), seed=0)
    with torch.no_grad():
        features = [m for m in trainer.model.body.modules() if isinstance(m, torch.nn.Linear)][-1]
        features.weight.zero_()
        features.bias.fill_(-1.0)  # every feature unit dead (0 after its ReLU), whatever the input
    with pytest.raises(DivergenceError, match="the model collapsed in epoch 0 .*every feature of the last batch is 0"):
        trainer.train_epoch()
