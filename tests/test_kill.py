"""Kill a run again and again, resume it each time, and it still ends exactly as the uninterrupted run.

For each model (mlp, cnn, resnet18) on both envs, ``python -m experiments.train`` is SIGKILLed at seeded random
moments of its training and once while a checkpoint file is being written (its temporary file written, not yet
renamed: that process holds each write open half a second, so the kill lands there), and continued as a user would: ``--resume`` once a checkpoint exists, else the same command again with
``--overwrite``. The final metrics, per-sample scores and agent weights must equal those of a run never killed.
Figures from one pass are in docs/running.md (Long runs). tests/test_resume.py covers single stops in seconds.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stable_baselines3 import A2C, PPO

from envs.core.checkpoint import CheckpointDir
from experiments.train import main
from same_run import assert_same_run

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
#: random kills per configuration, besides the one during a checkpoint write
KILLS = 3
CONFIGS = {
    "DataAgent-v0": ["--algo", "ppo", "--hyperparams", "n_steps=4", "n_epochs=2", "batch_size=4"],
    "CoverSelect-v0": ["--env", "CoverSelect-v0", "--algo", "a2c", "--hyperparams", "n_steps=2", "--keep-ratio", "0.4"],
}


EPOCHS = 5


def _argv(model: str, env_id: str) -> list[str]:
    return ["--dataset", "synthetic", "--model", model, "--train-size", "96", "--batch-size", "16", "--epochs", str(EPOCHS),
            "--reference", "none", "--no-progress", "--checkpoint-every", "1", "--seed", "5", *CONFIGS[env_id]]


#: ``python -m experiments.train`` whose checkpoint writes pause between the bytes and the rename
SLOW_WRITES = """import runpy, time
import envs.core.checkpoint as checkpoint
write = checkpoint.atomic_write
checkpoint.atomic_write = lambda path, fill: write(path, lambda f: (fill(f), f.flush(), time.sleep(0.5)))
runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
"""


def _start(argv: list[str], log: Path, slow_writes: bool = False) -> subprocess.Popen:
    command = ["-c", SLOW_WRITES] if slow_writes else ["-m", "experiments.train"]
    with log.open("a") as f:
        return subprocess.Popen([sys.executable, *command, *argv], cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.STDOUT)


def _training_started(folder: Path, since: float) -> bool:
    """The run got past its set-up: a new run has written config.yml, a resumed one has loaded its checkpoint."""
    record = folder / "config.yml"
    return record.is_file() and record.stat().st_mtime >= since


def _kill_when(proc: subprocess.Popen, ready, poll: float, timeout: float = 300) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` (asked every ``poll`` seconds); False when it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the run neither got ready nor ended"
        time.sleep(poll)
    proc.kill()
    proc.wait()
    return proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(CONFIGS))
@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet18"])
def test_a_run_killed_again_and_again_ends_as_the_uninterrupted_one(tmp_path, model, env_id):
    argv = _argv(model, env_id)
    whole = main([*argv, "--out", str(tmp_path / "whole")], quiet=True)["run"]
    wall = whole["wall_seconds"]  # the training alone, set-up excluded
    rng = random.Random(f"{model}-{env_id}")
    folder, log = tmp_path / "killed", tmp_path / "killed.log"
    checkpoints = CheckpointDir(folder / "checkpoints")
    # the moments: during the second checkpoint's write (a later process may have none left to write), then KILLS
    # random points of what is left of training when the process resumes
    plan = [("mid-write", None)] + [("random", rng.uniform(0.05, 0.8)) for _ in range(KILLS)]
    killed, mid_write, starts = 0, 0, 0
    for kind, delay in [*plan, ("finish", None)]:
        resume = bool(checkpoints.steps())
        started = time.time() - 1  # config.yml's mtime has a coarse clock on some file systems
        proc = _start(["--resume", str(folder)] if resume else [*argv, "--out", str(folder), "--overwrite"], log,
                      slow_writes=kind == "mid-write")
        starts += 1
        if kind == "finish":
            assert proc.wait(timeout=600) == 0, log.read_text()
            break
        if resume:
            before = len(log.read_text())
            ready = lambda: "resuming" in log.read_text()[before:]  # noqa: E731
        else:
            ready = lambda: _training_started(folder, started)  # noqa: E731
        if kind == "random":
            moment: list[float] = []  # when training started, and the kill's delay from there

            def after_delay() -> bool:
                if not moment and ready():
                    epoch = re.search(r"\(epoch (\d+),", log.read_text()[before:]) if resume else None
                    left = 1 - int(epoch.group(1)) / EPOCHS if epoch else 1.0
                    moment.extend([time.monotonic(), delay * left * wall])
                return bool(moment) and time.monotonic() - moment[0] >= moment[1]

            killed += _kill_when(proc, after_delay, poll=0.01)
        else:
            # the second checkpoint's write: the first one is there to resume from, beside the half-published file
            writing = lambda: bool(checkpoints.steps()) and any(  # noqa: E731
                p.suffix == ".tmp" for p in checkpoints.folder.iterdir())
            if _kill_when(proc, writing, poll=0.01):
                killed += 1
                mid_write += any(p.suffix == ".tmp" for p in checkpoints.folder.iterdir())
        if proc.returncode == 0:  # it ended before the moment came: nothing left to kill
            break
    print(f"\n{model} / {env_id}: {killed} kills survived ({mid_write} during a checkpoint write), "
          f"{starts} processes, training {wall:.1f} s uninterrupted")
    assert mid_write == 1 and killed >= 2
    assert_same_run(folder, tmp_path / "whole", PPO if "ppo" in argv else A2C)
    assert not checkpoints.folder.exists()
