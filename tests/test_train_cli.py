"""experiments.train: outputs, cost accounting against the full-data reference, coresets, and transfer."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO

from envs.methods.coreset import coreset_size_bounds, load_coreset
from experiments.train import main
from tiny import tiny_cli

TINY = tiny_cli()


def test_data_agent_run_writes_everything_and_counts_cost_against_full_data(tmp_path, capsys):
    out = tmp_path / "run"
    result = main([*TINY, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "agent run" in printed and "full data" in printed and "of full data" in printed

    run, ref = result["run"], result["reference"]
    # 2 epochs of 160 samples: the first keeps 80 (5 batches), the second trains all (10 batches)
    assert run["ledger"]["samples_backpropagated"] == (5 + 10) * 16
    assert run["backprop_fraction"] == pytest.approx(240 / 320)
    assert ref["ledger"]["samples_backpropagated"] == 320 and ref["backprop_fraction"] == 1.0
    for r in (run, ref):
        assert 90.0 < r["test"]["top1"] <= r["test"]["top5"] <= 100.0 and r["wall_seconds"] > 0  # chance: 25%
    assert json.loads((out / "metrics.json").read_text()) == result

    config = yaml.safe_load((out / "config.yml").read_text())
    preset = yaml.safe_load((files("agents") / "hyperparams" / "ppo.yml").read_text())["DataAgent-v0"]
    assert config["hyperparams"] == preset and config["env_kwargs"]["data"]["train_size"] == 160
    assert config["layout"] == "per_sample"  # the preset's default layout on DataAgent-v0
    assert config["effective"] == {"n_steps": 10, "num_envs": 16, "episode_steps": 15, "batch_size": 160}

    agent = PPO.load(out / "agent.zip", device="cpu")
    assert agent.num_timesteps == 15 * 16 and agent.observation_space.shape == (128,)
    events = list((out / "tb").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_cover_select_run_saves_a_coreset_at_the_target_ratio(tmp_path):
    out = tmp_path / "cover"
    result = main([*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--keep-ratio", "0.3", "--reference", "none",
                   "--out", str(out)])
    indices, meta = load_coreset(out / "coreset")
    low, high = coreset_size_bounds(160, 0.3)
    assert low <= len(indices) <= high and result["coreset"]["size"] == len(indices)
    assert meta["dataset"] == "synthetic" and meta["ratio"] == 0.3 and meta["num_train"] == 160
    assert np.all(np.diff(indices) > 0) and indices.max() < 160
    assert result["run"]["backprop_fraction"] == 1.0  # the selection model trains on all data
    assert "reference" not in result


def test_cover_select_remedy_options_reach_the_env_and_the_coreset(tmp_path):
    out = tmp_path / "remedy"
    main([*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--keep-ratio", "0.3", "--reward", "cover_difficulty",
          "--ratio-scale", "2", "--degree-norm", "rank", "--class-budget", "--reference", "none", "--out", str(out)])
    indices, meta = load_coreset(out / "coreset")
    assert (meta["reward"], meta["ratio_scale"], meta["degree_norm"], meta["class_budget"]) == ("cover_difficulty", 2.0,
                                                                                                "rank", True)
    assert len(indices) == round(0.3 * 160)  # the per-class budget: exactly the target size


def test_a_trained_policy_transfers_to_another_dataset_without_learning(tmp_path):
    trained = tmp_path / "trained"
    main([*TINY, "--state", "signals", "--reference", "none", "--out", str(trained)])
    reuse = ["--dataset", "digits", "--model", "mlp", "--train-size", "320", "--batch-size", "32", "--epochs", "2",
             "--no-progress", "--state", "signals", "--seed", "3", "--reference", "none",
             "--load-agent", str(trained / "agent.zip"), "--no-learn"]
    first = main([*reuse, "--out", str(tmp_path / "a")])
    second = main([*reuse, "--out", str(tmp_path / "b")])
    assert not (tmp_path / "a" / "agent.zip").exists()  # nothing learned, nothing to save
    assert not (tmp_path / "a" / "agent_run.json").exists()  # a finished run leaves no resume state behind
    assert first["run"]["test"] == second["run"]["test"]  # a fixed (deterministic) policy and seed: the same run
    assert first["run"]["ledger"]["samples_backpropagated"] < 2 * 320


def test_policy_that_does_not_fit_the_env_and_misplaced_options_are_cli_errors(tmp_path, capsys):
    trained = tmp_path / "trained"
    main([*TINY, "--reference", "none", "--out", str(trained)])  # features of the mlp: state_dim 128
    for argv, message in [
        ([*TINY, "--state", "signals", "--load-agent", str(trained / "agent.zip"), "--no-learn"],
         "it was trained for DataAgent-v0, layout per_sample, observation (128,), action (1,); this run is DataAgent-v0, "
         "layout per_sample, observation (10,)"),
        ([*TINY, "--epsilon", "0.3"], "option of CoverSelect-v0"),
        ([*TINY, "--class-budget"], "class_budget is an option of CoverSelect-v0, not of DataAgent-v0"),
        ([*TINY, "--reward", "cover"], "reward='cover' is invalid; valid choices: composite, loss, entropy"),
        ([*TINY, "--env", "CoverSelect-v0", "--reward", "loss"], "reward='loss' is invalid; valid choices: cover"),
        ([*TINY, "--no-learn"], "no_learn needs load_agent"),
        ([*TINY, "--hyperparams", "n_steps"], "key=value"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--out", str(tmp_path / "x")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_diverging_reference_is_reported_and_the_results_are_still_written(tmp_path, capsys):
    out = tmp_path / "run"
    result = main([*TINY, "--lr", "1e30", "--out", str(out)])
    assert "diverged" in result["reference"]["error"] and "try a lower lr" in result["reference"]["error"]
    assert json.loads((out / "metrics.json").read_text())["reference"] == result["reference"]
    assert "full data  the full-data reference diverged" in capsys.readouterr().out


def test_a_stop_signal_during_the_reference_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import experiments.run.training as training

    def stopped(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the reference")

    monkeypatch.setattr(training, "run_full_data", stopped)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main([*TINY, "--out", str(out)])
    assert stop.value.code == 128 + signal.SIGTERM
    assert f"SIGTERM: stopped during the full-data reference; continue with: python -m experiments.train " \
           f"--resume {out}" in capsys.readouterr().err
    assert (out / "agent_run.json").is_file()  # --resume continues with the reference alone


def test_a_rerun_with_overwrite_says_it_replaces_the_earlier_run(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY, "--reference", "none", "--out", str(out)]
    main(argv)
    capsys.readouterr()
    main([*argv, "--overwrite"])
    assert f"note: --overwrite: {out} held an earlier run; this run replaces its agent.zip, tb, metrics.json" \
        in capsys.readouterr().err
    assert [p.name for p in (out / "tb").iterdir()] == ["agent_1"]  # not agent_1 and agent_2


def test_bad_agent_files_are_named_for_what_they_are(tmp_path, capsys):
    import zipfile

    (tmp_path / "random.zip").write_bytes(np.random.default_rng(0).bytes(3000))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("readme.txt", "not an agent")
    for name, message in [("missing.zip", "no such file"), ("random.zip", "not a zip archive"),
                          ("other.zip", "a zip archive without an SB3 agent inside")]:
        with pytest.raises(SystemExit) as exit_info:
            main([*TINY, "--load-agent", str(tmp_path / name), "--out", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"load_agent={tmp_path / name}: {message}" in err
        assert "does not fit" not in err and ".zip.zip" not in err


@pytest.mark.parametrize("env_id", ["DataAgent-v0", "CoverSelect-v0"])
def test_every_env_option_has_a_flag_generated_from_the_constructor_that_reaches_the_env(env_id):
    """The flags follow the envs' signatures: an option added to an env gets its flag, type and choices."""
    import inspect

    from envs.data_agent.env import DataAgentEnv
    from envs.cover_select.env import CoverSelectEnv
    from experiments.run import env_kwargs
    from experiments.train_args import OWN_FLAGS, build_parser, run_config

    cls = {"DataAgent-v0": DataAgentEnv, "CoverSelect-v0": CoverSelectEnv}[env_id]
    keywords = [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
    options = {a.dest: a for a in build_parser()._actions}
    owned = {"trainer", "data", "device", *OWN_FLAGS}
    assert [k for k in keywords if k not in owned and k not in options] == []
    assert set(options["state"].choices) == {"features", "signals", "both"}
    value = {"DataAgent-v0": ["--temperature", "0.5"], "CoverSelect-v0": ["--quantile-samples", "64"]}[env_id]
    args = build_parser().parse_args([*tiny_cli(), "--env", env_id, *value])
    kw = env_kwargs(run_config(args))
    name = value[0][2:].replace("-", "_")
    assert kw[name] == type(getattr(cls, "__init__").__kwdefaults__[name])(value[1])
    assert "reward_norm" not in kw  # an option left out keeps the env's default
