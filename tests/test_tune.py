"""experiments.tune: the batch-of-samples sampler builds valid agents, trial 0 is the preset, the objective is the
inner model's final accuracy at one fixed budget, and the best trial's printed command reproduces its value."""

from __future__ import annotations

import json
import math
import shlex
from types import SimpleNamespace

import pytest

from agent_helpers import FakeBatchEnv
from agents import BatchOfSamplesPolicy, make_agent

optuna = pytest.importorskip("optuna", reason="optuna is the optional 'zoo' extra (pip install -e '.[zoo]' or '.[dev]')")
from experiments.run import RunConfig  # noqa: E402
from experiments.train import main as train  # noqa: E402
from experiments.tune import CHOICES, NET_ARCHS, main, preset_params, sample_batch_policy  # noqa: E402
from tiny import tiny_cli

TINY = tiny_cli(extra=("--device", "cpu"))
CASES = [("ppo", "DataAgent-v0"), ("a2c", "DataAgent-v0"), ("ppo", "CoverSelect-v0"), ("a2c", "CoverSelect-v0")]


@pytest.mark.parametrize(("algo", "env_id"), CASES)
def test_the_preset_is_a_point_of_the_search_space_and_builds_the_preset_agent(algo, env_id):
    params = preset_params(algo, env_id)
    assert params["net_arch"] in NET_ARCHS and all(params[k] in CHOICES[k] for k in CHOICES if k in params)
    env = FakeBatchEnv(batch_size=8, episode_steps=1000)
    sampled = make_agent(algo, env, "batch", env_id=env_id, seed=0, **sample_batch_policy(optuna.trial.FixedTrial(params), algo))
    preset = make_agent(algo, FakeBatchEnv(batch_size=8, episode_steps=1000), "batch", env_id=env_id, seed=0)
    for key in ("n_steps", "gamma", "gae_lambda", "ent_coef", "n_epochs", "target_kl", "batch_size"):
        assert getattr(sampled, key, None) == getattr(preset, key, None), key
    assert all(math.isclose(sampled.lr_schedule(p), preset.lr_schedule(p)) for p in (1.0, 0.5, 0.0))
    assert sampled.policy.net_arch == preset.policy.net_arch
    assert all((a == b).all() for a, b in zip(sampled.policy.parameters(), preset.policy.parameters()))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_every_sampled_point_builds_a_batch_of_samples_agent(algo):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        trial = study.ask()
        overrides = sample_batch_policy(trial, algo)
        agent = make_agent(algo, FakeBatchEnv(batch_size=8, episode_steps=1000), "batch", env_id="CoverSelect-v0", **overrides)
        assert isinstance(agent.policy, BatchOfSamplesPolicy)
        assert agent.policy.net_arch["pi"] == NET_ARCHS[trial.params["net_arch"]]
        assert agent.policy.distribution == trial.params["distribution"] and agent.n_steps == trial.params["n_steps"]
        assert math.isclose(agent.lr_schedule(1.0), trial.params["learning_rate"])
        assert math.isclose(agent.lr_schedule(0.0), trial.params["learning_rate"] / 100, rel_tol=1e-3)
        study.tell(trial, 0.0)


def test_a_tiny_study_maximises_final_accuracy_at_a_fixed_budget_and_reports_a_true_command(tmp_path, capsys):
    out = tmp_path / "tune"
    study = main(["--trials", "3", "--startup-trials", "2", "--seeds", "0", "1", "--out", str(out), *TINY])
    records = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [r["number"] for r in records] == [0, 1, 2] and records[0]["preset"] is True
    assert records[0]["params"] == preset_params("ppo", "DataAgent-v0")
    for r in records:  # the value is the mean final top-1 over the seeds
        assert len(r["top1_by_seed"]) == 2 and r["value"] == pytest.approx(sum(r["top1_by_seed"]) / 2)
    # 2 epochs of 160 samples at keep_ratio 0.5: 5 + 10 batches of 16, the same in every trial
    assert study.user_attrs["budget"] == (5 + 10) * 16
    best = json.loads((out / "best.json").read_text())
    assert best["value"] == max(r["value"] for r in records) == study.best_value
    assert f"best trial {best['number']}" in capsys.readouterr().out
    argv = shlex.split(best["command"])[3:]  # after "python -m experiments.train"
    rerun = train([*argv, "--out", str(tmp_path / "rerun")])
    assert rerun["run"]["test"]["top1"] == best["top1_by_seed"][0]  # deterministic on CPU: the command is true
    assert rerun["run"]["ledger"]["samples_backpropagated"] == best["budget"]


def test_options_the_tuner_sets_are_refused(capsys):
    for argv, match in [(["--seed", "3"], "--seed"), (["--trials", "0"], "--trials"), (["--epochs", "x"], "epochs")]:
        with pytest.raises(SystemExit):
            main([*argv, *TINY])
        assert match in capsys.readouterr().err


def test_a_stored_study_continues_where_it_stopped(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["--env", "CoverSelect-v0", "--algo", "a2c", "--trials", "1", "--storage", storage, "--study-name", "cs",
            "--out", str(tmp_path / "tune"), *TINY]
    first = main(argv)
    assert [t.user_attrs.get("preset", False) for t in first.trials] == [True]
    assert first.trials[0].params == preset_params("a2c", "CoverSelect-v0")
    second = main(argv)  # a second call: one more trial, sampled, and the preset is not queued again
    assert len(second.trials) == 2 and not second.trials[1].user_attrs.get("preset", False)
    assert second.user_attrs["budget"] == 2 * 160  # the selection model trains on all data: 2 epochs of 160
    assert len((tmp_path / "tune" / "trials.jsonl").read_text().splitlines()) == 2


def test_a_trial_whose_budget_differs_is_an_error(monkeypatch):
    import experiments.tune as tune

    def fake_train(config):  # a budget that depends on the seed, as a coreset-trained selection model's can
        return SimpleNamespace(metrics={"run": {"test": {"top1": 50.0},
                                                "ledger": {"samples_backpropagated": 100 + config.seed}}})

    monkeypatch.setattr(tune, "run_training", fake_train)
    study = optuna.create_study(direction="maximize")
    with pytest.raises(RuntimeError, match="budget is not fixed"):
        tune.objective(study.ask(), RunConfig(env="CoverSelect-v0", algo="a2c"), [0, 1],
                       ["--env", "CoverSelect-v0", "--algo", "a2c"])
