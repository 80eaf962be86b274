"""Long runs survive: killed or interrupted runs resume to exactly the uninterrupted result (CPU),
and corrupt or mismatched checkpoints are refused with a clear error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO

from envs.core.checkpoint import CheckpointDir
from envs.core.data import DataConfig
from envs.core.models import MODEL_NAMES, TEXT_MODELS
from envs.core.trainer import TrainerConfig
from experiments.run.full_data import run_full_data
from experiments.train import main
from same_run import COUNTERS, assert_same_run
from tiny import tiny_cli

ROOT = Path(__file__).resolve().parents[1]
# runs of a few seconds: a kill right after the first (epoch 1) checkpoint lands mid-run. Data Agent uses the
# CLI's default cnn (batch norm), as in the README's long-run example
RUNS = {
    "data-agent-ppo": ["--dataset", "digits", "--model", "cnn", "--train-size", "640", "--epochs", "6",
                       "--batch-size", "64", "--seed", "3"],
    "cover-select-a2c": ["--env", "CoverSelect-v0", "--algo", "a2c", "--dataset", "digits", "--model", "mlp",
                         "--train-size", "640", "--epochs", "6", "--batch-size", "64", "--keep-ratio", "0.4",
                         "--seed", "3"],
}
COMMON = ["--reference", "none", "--no-progress", "--checkpoint-every", "1"]
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.train", *args], cwd=ROOT, env=SUBPROCESS_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _finish(args: list[str]) -> str:
    proc = _train(args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out + err


@pytest.mark.slow
@pytest.mark.parametrize("case, sig", [("data-agent-ppo", signal.SIGKILL), ("cover-select-a2c", signal.SIGTERM)])
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_result(tmp_path, case, sig):
    args = [*RUNS[case], *COMMON]
    main([*args, "--out", str(tmp_path / "whole")])  # in-process: one interpreter start less

    folder = tmp_path / "killed"
    proc = _train([*args, "--out", str(folder)])
    checkpoints = CheckpointDir(folder / "checkpoints")
    deadline = time.monotonic() + 120
    while not checkpoints.steps():  # kill as soon as the first epoch is saved: mid-run, mid-epoch
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (-sig, 128 + sig), err
    assert not (folder / "metrics.json").exists()
    if sig == signal.SIGTERM:  # a graceful stop saves where it stopped and says how to continue
        assert "checkpoint saved" in err and f"--resume {folder}" in err

    printed = _finish(["--resume", str(folder), "--no-progress"])
    assert "resuming" in printed and "ckpt-" in printed
    assert_same_run(folder, tmp_path / "whole", A2C if "a2c" in case else PPO)
    assert not (folder / "checkpoints").exists()  # a finished run leaves nothing to resume


TINY = tiny_cli(epochs=3, extra=("--reference", "none", "--no-progress"))


def _stop_after_first_checkpoint(tmp_path: Path, monkeypatch, argv: list[str] = TINY) -> Path:
    """Run ``argv`` until its first checkpoint is saved, then stop it as SIGTERM would."""
    import experiments.run as run

    folder = tmp_path / "run"
    original = run.RunCheckpointer.save

    def save_then_stop(self):
        path = original(self)
        raise run.RunInterrupted(signal.SIGTERM, path)

    monkeypatch.setattr(run.RunCheckpointer, "save", save_then_stop)
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(folder)])
    assert stop.value.code == 128 + signal.SIGTERM
    monkeypatch.setattr(run.RunCheckpointer, "save", original)
    return folder


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("env_args", [["--algo", "a2c"], ["--env", "CoverSelect-v0", "--algo", "a2c"]],
                         ids=["DataAgent-v0", "CoverSelect-v0"])
def test_every_model_resumes_to_exactly_the_uninterrupted_result_on_both_envs(tmp_path, monkeypatch, request, model,
                                                                              env_args):
    """Stopped after the first checkpoint (as by SIGTERM) and resumed in-process: tiny runs, so that
    even ResNet-18 takes seconds on a CPU; the subprocess kills above cover real signals. Text models
    train on a slice of AG News (tests/conftest.py's ``text_slices``)."""
    data = ["--dataset", "synthetic"] if model not in TEXT_MODELS else [
        "--dataset", "agnews", "--data-root", str(request.getfixturevalue("text_slices")), "--vocab-size", "300",
        "--seq-len", "16"]
    argv = [*data, "--model", model, "--train-size", "16", "--batch-size", "8", "--epochs", "2",
            "--reference", "none", "--no-progress", "--hyperparams", "n_steps=2", "--seed", "1", *env_args]
    whole = main([*argv, "--out", str(tmp_path / "whole")])["run"]
    folder = _stop_after_first_checkpoint(tmp_path, monkeypatch, argv)
    resumed = main(["--resume", str(folder)])["run"]
    assert resumed["test"] == whole["test"]
    assert resumed["reward_by_epoch"] == whole["reward_by_epoch"]
    assert {k: resumed["ledger"][k] for k in COUNTERS} == {k: whole["ledger"][k] for k in COUNTERS}
    np.testing.assert_array_equal(np.load(folder / "scores.npy"), np.load(tmp_path / "whole" / "scores.npy"))
    agent, expected = A2C.load(folder / "agent.zip").get_parameters()["policy"], \
        A2C.load(tmp_path / "whole" / "agent.zip").get_parameters()["policy"]
    assert all(torch.equal(agent[name], tensor) for name, tensor in expected.items())


def test_a_truncated_checkpoint_is_refused_clearly(tmp_path, monkeypatch, capsys):
    folder = _stop_after_first_checkpoint(tmp_path, monkeypatch)
    latest = CheckpointDir(folder / "checkpoints").latest()
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--resume", str(folder)])
    assert "corrupt or truncated" in capsys.readouterr().err


def test_a_checkpoint_of_another_configuration_is_refused_naming_the_difference(tmp_path, monkeypatch, capsys):
    folder = _stop_after_first_checkpoint(tmp_path, monkeypatch)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*TINY, "--lr", "0.05", "--resume", str(folder)])
    err = capsys.readouterr().err
    assert "another configuration" in err and "lr" in err and "0.05" in err


@pytest.mark.parametrize("argv, message", [
    (["--resume", "{missing}"], "config.yml does not exist"),
    ([*TINY, "--out", "{folder}"], "holds checkpoints of an unfinished run"),
    (["--resume", "{folder}", "--out", "{other}"], "a run continues in its own folder"),
    ([*TINY, "--checkpoint-every", "-1"], "checkpoint_every=-1 is invalid"),
    ([*TINY, "--keep-checkpoints", "0"], "keep_checkpoints=0 is invalid"),
])
def test_bad_resume_options_get_clear_errors(tmp_path, monkeypatch, capsys, argv, message):
    folder = _stop_after_first_checkpoint(tmp_path, monkeypatch)
    names = {"folder": folder, "missing": tmp_path / "missing", "other": tmp_path / "other"}
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([a.format(**names) for a in argv])
    assert message in capsys.readouterr().err


def test_the_full_data_reference_resumes_from_its_epoch_checkpoints(tmp_path):
    options = dict(data=DataConfig(train_size=160), trainer=TrainerConfig(epochs=3, batch_size=16), progress=False, seed=2)
    whole = run_full_data("synthetic", "mlp", **options)
    checkpoints = CheckpointDir(tmp_path / "ref", keep=5)
    run_full_data("synthetic", "mlp", checkpoints=checkpoints, **options)
    for step in checkpoints.steps()[1:]:  # back to the state after epoch 1
        checkpoints.path(step).unlink()
    resumed = run_full_data("synthetic", "mlp", checkpoints=checkpoints, **options)
    assert resumed["test"] == whole["test"]
    counters = ("samples_forwarded", "samples_backpropagated", "optimizer_steps")
    assert all(resumed["ledger"][k] == whole["ledger"][k] for k in counters)
