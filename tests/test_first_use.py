"""What a new user meets first, from a fresh clone: each rough edge found that way has its test here (each failed
before its fix). Losing a run's results is tests/test_run_folders.py."""

from __future__ import annotations

import importlib
import signal
import subprocess
import tomllib
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the env ids)
from envs.core.checkpoint import CheckpointDir
from experiments import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "64", "--batch-size", "16", "--epochs", "3",
        "--reference", "none", "--no-progress", "--hyperparams", "n_steps=2"]


def _error(argv: list[str], capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        train.main(argv, quiet=True)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _stop_after_save(monkeypatch, argv: list[str], saves: int) -> None:
    """Run ``argv`` until its ``saves``-th checkpoint is written, then stop it as SIGTERM would."""
    import experiments.run as run

    original, count = run.RunCheckpointer.save, []

    def save(self):
        path = original(self)
        count.append(path)
        if len(count) == saves:
            raise run.RunInterrupted(signal.SIGTERM, path)
        return path

    monkeypatch.setattr(run.RunCheckpointer, "save", save)
    with pytest.raises(SystemExit):
        train.main(argv, quiet=True)
    monkeypatch.undo()


@pytest.mark.parametrize("env_id", ["DataAgent-v0", "CoverSelect-v0"])
@pytest.mark.parametrize("option, group", [("epochs", "trainer"), ("batch_size", "trainer"), ("train_size", "data")])
def test_1_a_flat_trainer_or_data_option_says_where_it_belongs(env_id, option, group):
    with pytest.raises(TypeError, match=rf": {option} is a {group} option: pass {group}={{'{option}': 3}}"):
        gym.make(env_id, dataset="synthetic", **{option: 3})


def test_1_an_unknown_env_option_lists_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown option\(s\) lrate; valid: dataset, model, trainer, data, device"):
        gym.make("DataAgent-v0", lrate=0.1)


def test_2_resuming_a_finished_run_says_it_has_finished(tmp_path, capsys):
    out = tmp_path / "run"
    train.main([*TINY, "--out", str(out)], quiet=True)
    err = _error(["--resume", str(out)], capsys)
    assert f"resume {out}: the run has finished (its results are in {out / 'metrics.json'}); nothing to resume" in err
    assert "before its first one" not in err


def test_3_a_corrupt_newest_checkpoint_falls_back_to_the_newest_good_one(tmp_path, monkeypatch, capsys):
    whole = train.main([*TINY, "--out", str(tmp_path / "whole")], quiet=True)["run"]
    out = tmp_path / "run"
    _stop_after_save(monkeypatch, [*TINY, "--out", str(out)], saves=2)
    checkpoints = CheckpointDir(out / "checkpoints")
    older, newest = (checkpoints.path(step) for step in checkpoints.steps())
    newest.write_bytes(newest.read_bytes()[:1000])
    capsys.readouterr()
    resumed = train.main(["--resume", str(out)], quiet=True)["run"]
    err = capsys.readouterr().err
    assert f"note: skipped a checkpoint that does not load: checkpoint '{newest}' is corrupt or truncated" in err
    assert f"resuming {out} from {older.name}" in err
    assert resumed["test"] == whole["test"]  # the epochs since the older one are redone, exactly


def test_4_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert f"error: --out {target} is a file; valid: a folder" in _error([*TINY, "--out", str(target)], capsys)
    assert target.read_text() == "mine"


def test_5_an_agent_of_the_other_env_is_named_for_what_it_was_trained_for(tmp_path, capsys):
    cover = tmp_path / "cover"
    train.main([*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--out", str(cover)], quiet=True)
    err = _error([*TINY, "--algo", "a2c", "--load-agent", str(cover / "agent.zip"), "--out", str(tmp_path / "x")], capsys)
    line = err.strip().splitlines()[-1]
    assert f"load_agent={cover / 'agent.zip'}: it was trained for CoverSelect-v0, layout batch" in line
    assert "this run is DataAgent-v0, layout per_sample" in line
    assert "size mismatch" not in err and "state_dict" not in err


def test_6_data_root_for_a_dataset_that_reads_no_files_is_refused(tmp_path, capsys):
    err = _error([*TINY, "--dataset", "digits", "--data-root", str(tmp_path), "--out", str(tmp_path / "x")], capsys)
    assert f"root='{tmp_path}' (--data-root) is ignored by 'digits': it reads no files" in err
    assert not (tmp_path / "x").exists()


def _clis() -> dict[str, str]:
    """Every console script's module, from pyproject.toml."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target.split(":")[0] for name, target in scripts.items()}


class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize("module", sorted(set(_clis().values())))
def test_7_every_cli_takes_the_shared_flags(module, monkeypatch):
    """The flags docs/running.md promises in every CLI: --no-progress everywhere, --out with --overwrite wherever a
    new run's folder is chosen, --threads wherever the inner model trains (parsed, never run)."""
    import argparse

    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)  # parse_args calls it too
    main = importlib.import_module(module).main
    with pytest.raises(_Parsed) as parsed:
        main([])
    flags = parsed.value.parser._option_string_actions
    assert "--no-progress" in flags, module
    if "--out" in flags and module not in ("experiments.tune", "experiments.gpu_report"):  # these continue their folder
        assert "--overwrite" in flags, module
    if "--epochs" in flags and module not in ("experiments.own_loop", "experiments.bench_threads"):
        # own_loop's epochs are the user's own loop's; bench_threads sets the threads it measures
        assert "--threads" in flags, module


def test_8_a_cover_select_run_explains_why_it_back_propagates_more_than_full_data(tmp_path, capsys):
    train.main([*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--train-size", "72", "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    fraction = float(out.split("% of full data")[0].rsplit("(", 1)[1])
    assert fraction > 100  # 72 samples in batches of 16: 5 full batches, 80 back-propagated per epoch
    assert "an epoch's last batch is topped up with its first samples, so it can back-propagate more than full data" in out


def test_9_rl_zoo_logs_are_ignored_and_the_fashion_mnist_variation_says_how_to_get_it():
    ignored = subprocess.run(["git", "check-ignore", "logs/ppo/DataAgent-v0_1/x"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 0
    readme = (ROOT / "README.md").read_text()
    variation = readme.index("--dataset fashion-mnist --model cnn --train-size 10000")
    assert "apt-get install -y dataset-fashion-mnist" in readme[variation:variation + 300]


def test_resuming_from_the_fallback_checkpoint_keeps_the_scores(tmp_path, monkeypatch):
    """Item 3, the scores too: the fallback replays the epochs after the older checkpoint exactly."""
    train.main([*TINY, "--out", str(tmp_path / "whole")], quiet=True)
    out = tmp_path / "run"
    _stop_after_save(monkeypatch, [*TINY, "--out", str(out)], saves=2)
    newest = CheckpointDir(out / "checkpoints").latest()
    newest.write_bytes(b"not a checkpoint")
    train.main(["--resume", str(out)], quiet=True)
    np.testing.assert_array_equal(np.load(out / "scores.npy"), np.load(tmp_path / "whole" / "scores.npy"))
