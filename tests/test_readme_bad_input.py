"""Every row of the "Bad input" table (docs/bad-input.md) is produced by the code: each input runs here and its
error must read as the table says ("..." stands for any text). A row without a case here fails the test,
so the table cannot drift from the code."""

from __future__ import annotations

import re
import shutil
import signal
import zipfile
from functools import partial
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import experiments.run as run
import experiments.train as train
from agents import make_agent
from envs import CoverSelectEnv, DataAgentEnv, TrainerConfig, build_model, load_dataset
from envs.core.checkpoint import CheckpointDir, CheckpointError, load_checkpoint
from envs.core.data import FASHION_MNIST_DIRS, DataConfig
from envs.core.reference import ReferenceConfig, load_reference
from envs.core.trainer import Trainer
from envs.methods.baselines.dynamic import DynamicSetup, make_dynamic_baseline, run_dynamic
from envs.methods.baselines.static import run_proxy, select_coreset
from experiments import benchmark, full_data, gpu_report, prepare_gpu
from tiny import tiny_cli, tiny_env

PAGE = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
TINY = tiny_cli(epochs=3, extra=("--reference", "none", "--no-progress"))
TEXTS = (["a good film", "a bad film", "good", "bad"] * 4, [1, 0, 1, 0] * 4)  # own text data
SMALL = tiny_env(train_size=None, batch_size=32, epochs=1)


def table_rows() -> list[tuple[str, str]]:
    """``(input, what you get)`` cells of the "Bad input" table."""
    text = PAGE.read_text()
    rows = [line.strip().strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
    return [(cells[0].strip(), cells[1].strip()) for cells in rows[1:]]  # without the header row


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _raises(make: Callable[[], object]) -> Callable[[], str]:
    def run() -> str:
        with pytest.raises(Exception) as info:
            make()
        return _message(info.value)
    return run


def _cli(capsys, main: Callable[[list[str]], object], argv: list[str]) -> Callable[[], str]:
    """The one-line ``error: ...`` of a CLI run (usage lines dropped)."""
    def run() -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code != 0
        return "error: " + capsys.readouterr().err.strip().splitlines()[-1].split("error: ", 1)[1]
    return run


def _stopped_run(folder: Path, monkeypatch) -> Path:
    """A run of ``TINY`` stopped (as SIGTERM would) right after its first checkpoint, in ``folder``."""
    original = run.RunCheckpointer.save

    def save_then_stop(self):
        raise run.RunInterrupted(signal.SIGTERM, original(self))

    with monkeypatch.context() as patch:
        patch.setattr(run.RunCheckpointer, "save", save_then_stop)
        with pytest.raises(SystemExit) as stop:
            train.main([*TINY, "--out", str(folder)])
    assert stop.value.code == 128 + signal.SIGTERM  # stopped by the signal, not refused
    return folder


def _step(env: object, action: object) -> Callable[[], str]:
    def run() -> str:
        env.reset(seed=0)
        with pytest.raises((TypeError, ValueError)) as info:
            env.step(action)
        return _message(info.value)
    return run


def _inference_mode_step() -> str:
    env = DataAgentEnv(**SMALL)
    with torch.inference_mode(), pytest.raises(RuntimeError) as info:
        env.reset(seed=0)
    return _message(info.value)


def _truncated_checkpoint(tmp: Path) -> str:
    path = CheckpointDir(tmp / "stopped" / "checkpoints").latest()
    copy = tmp / "truncated.pt"
    copy.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(copy, {})
    return _message(info.value)


def _other_configuration(tmp: Path) -> str:
    path = CheckpointDir(tmp / "stopped" / "checkpoints").latest()
    identity = run.checkpoint_identity(yaml.safe_load((tmp / "stopped" / "config.yml").read_text()))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, {**identity, "env_kwargs.model": "cnn"})
    return _message(info.value)


def _diverging_run() -> str:
    trainer = Trainer(load_dataset("synthetic"), "mlp", TrainerConfig(lr=1e30, batch_size=64, epochs=1))
    with pytest.raises(Exception) as info:
        trainer.train_epoch()
    return _message(info.value)


def _rholoss_without_reference() -> str:
    trainer = Trainer(load_dataset("synthetic"), "mlp", TrainerConfig(batch_size=64, epochs=1))
    with pytest.raises(ValueError) as info:
        run_dynamic(trainer, make_dynamic_baseline("rholoss", DynamicSetup.of(trainer, candidate_factor=2)))
    return _message(info.value)


def _other_reference(tmp: Path) -> str:
    data = load_dataset("synthetic", train_size=128, holdout=0.25)
    config, path = TrainerConfig(batch_size=32, epochs=1), tmp / "reference.pt"
    load_reference(data, "mlp", config, ReferenceConfig(cache=str(path)), {"seed": 0})
    with pytest.raises(ValueError) as info:
        load_reference(data, "mlp", config, ReferenceConfig(cache=str(path), seed=1), {"seed": 0})
    return _message(info.value)


def _tsv(tmp: Path, name: str, files: dict[str, str]) -> str:
    """A folder holding ``name/`` with valid TSVs but for ``files`` (file name -> content); returns the folder."""
    folder = tmp / f"tsv-{len(list(tmp.glob('tsv-*')))}"
    good = {"sst2": {"train.tsv": "sentence\tlabel\ngood\t1\n", "test.tsv": "sentence\tlabel\nbad\t0\n"},
            "agnews": {"dev.tsv": "rain\tWorld\n", "test.tsv": "goal\tSports\n"}}[name]
    (folder / name).mkdir(parents=True)
    for file, text in {**good, **files}.items():
        (folder / name / file).write_text(text)
    return str(folder)


def cases(tmp: Path, capsys) -> dict[str, Callable[[], str] | None]:
    """Table input cell -> the code that produces its error message (None: not on this machine)."""
    fresh = DataAgentEnv(**SMALL)
    cli = partial(_cli, capsys)
    (tmp / "empty").mkdir()
    (tmp / "bad.zip").write_bytes(np.random.default_rng(0).bytes(3000))
    with zipfile.ZipFile(tmp / "notes.zip", "w") as z:
        z.writestr("notes.txt", "not an agent")
    return {
        # data
        '`load_dataset("mnist-typo")`': _raises(lambda: load_dataset("mnist-typo")),
        '`load_dataset("digits", train_size=5000)`': _raises(lambda: load_dataset("digits", train_size=5000)),
        '`load_dataset("synthetic", train_size=3)`': _raises(lambda: load_dataset("synthetic", train_size=3)),
        '`task="noisy:sym:1.0"`': _raises(lambda: load_dataset("synthetic", task="noisy:sym:1.0")),
        '`task="noisy:pairflip"`': _raises(lambda: load_dataset("synthetic", task="noisy:pairflip")),
        '`task="bogus"`': _raises(lambda: load_dataset("synthetic", task="bogus")),
        '`task="redundant:1.5"`': _raises(lambda: load_dataset("synthetic", task="redundant:1.5")),
        '`task="imbalanced:0.5"`': _raises(lambda: load_dataset("synthetic", task="imbalanced:0.5")),
        '`load_dataset("synthetic", task="imbalanced:1000")`': _raises(lambda: load_dataset("synthetic", task="imbalanced:1000")),
        '`DataAgentEnv(data={"noise": "symmetric"})`': _raises(lambda: DataAgentEnv(**{**SMALL, "data": {"noise": "symmetric"}})),
        "`imagefolder:/missing`": _raises(lambda: load_dataset("imagefolder:/missing")),
        "`cifar10` without its files": _raises(lambda: load_dataset("cifar10", root=str(tmp / "empty"))),
        "`fashion-mnist` without its files": _raises(
            lambda: load_dataset("fashion-mnist", root=str(tmp / "empty"))) if not any(
            Path(p).is_dir() for p in FASHION_MNIST_DIRS) else None,
        # text
        "`sst2` without its files (`--data-root empty/`)": _raises(lambda: load_dataset("sst2", root=str(tmp / "empty"))),
        "a TSV line without exactly one tab": _raises(
            lambda: load_dataset("sst2", root=_tsv(tmp, "sst2", {"train.tsv": "sentence\tlabel\ngood\t1\na\tb\t1\n"}))),
        "a TSV line with an unknown label": _raises(
            lambda: load_dataset("agnews", root=_tsv(tmp, "agnews", {"dev.tsv": "news\tWorld\nrain\tWeather\n"}))),
        "an empty TSV (or a header only)": _raises(
            lambda: load_dataset("sst2", root=_tsv(tmp, "sst2", {"train.tsv": "sentence\tlabel\ngood\t1\n",
                                                                  "test.tsv": "sentence\tlabel\n"}))),
        "`DataConfig(vocab_size=0)`": _raises(lambda: DataConfig(vocab_size=0).validate()),
        "`DataConfig(seq_len=0)`": _raises(lambda: DataConfig(seq_len=0).validate()),
        '`Trainer(text data, "cnn")`': _raises(lambda: Trainer(load_dataset(TEXTS, vocab_size=50, seq_len=4), "cnn")),
        '`Trainer(digits, "bow")`': _raises(lambda: Trainer(load_dataset("digits"), "bow")),
        "`TrainerConfig(augment=True)` on text": _raises(
            lambda: Trainer(load_dataset(TEXTS, vocab_size=50, seq_len=4), "bow", TrainerConfig(augment=True))),
        # trainer and models
        '`build_model("vgg", ...)`': _raises(lambda: build_model("vgg", (1, 8, 8), 4)),
        '`TrainerConfig(schedule="step")`': _raises(lambda: TrainerConfig(schedule="step").validate()),
        '`TrainerConfig(lr="0.1")` (any option of the wrong type)': _raises(lambda: TrainerConfig(lr="0.1").validate()),
        '`device="cuda"` on a machine without CUDA': _raises(
            lambda: DataAgentEnv(**{**SMALL, "device": "cuda"})) if not torch.cuda.is_available() else None,
        "a diverging run (`lr=1e30`)": _diverging_run,
        # envs
        "an action of the wrong shape": _step(DataAgentEnv(**SMALL), np.zeros(5, np.float32)),
        "an action with NaN or inf": _step(DataAgentEnv(**SMALL), np.full(32, np.nan, np.float32)),
        '`env.step(["a"] * 32)` (not numbers)': _step(DataAgentEnv(**SMALL), ["a"] * 32),
        "`env.step(a)` inside `torch.inference_mode()`": _inference_mode_step,
        "`env.step(a)` before `reset()`": _raises(lambda: fresh.step(np.zeros(32, np.float32))),
        "`DataAgentEnv(keep_ratio=0.01)` on 512 samples": _raises(
            lambda: DataAgentEnv(**{**SMALL, "keep_ratio": 0.01, "trainer": dict(batch_size=32, epochs=8)})),
        '`DataAgentEnv(data={"train_size": 100}, trainer={"batch_size": 256})`': _raises(
            lambda: DataAgentEnv(**{**SMALL, "data": dict(train_size=100), "trainer": dict(batch_size=256)})),
        '`DataAgentEnv(state="pixels")`': _raises(lambda: DataAgentEnv(**{**SMALL, "state": "pixels"})),
        '`DataAgentEnv(reward="accuracy")`': _raises(lambda: DataAgentEnv(**{**SMALL, "reward": "accuracy"})),
        "`CoverSelectEnv(keep_ratio=1.5)`": _raises(lambda: CoverSelectEnv(**{**SMALL, "keep_ratio": 1.5})),
        '`gym.make("DataAgent-v0", epochs=3)` (a trainer option, flat)': _raises(
            lambda: gym.make("DataAgent-v0", epochs=3)),
        '`gym.make("CoverSelect-v0", train_size=100)` (a data option, flat)': _raises(
            lambda: gym.make("CoverSelect-v0", train_size=100)),
        '`DataAgentEnv(trainer={"lrate": 0.1})`': _raises(lambda: DataAgentEnv(**{**SMALL, "trainer": {"lrate": 0.1}})),
        "`CoverSelectEnv(epsilon=-1.0)`": _raises(lambda: CoverSelectEnv(**{**SMALL, "epsilon": -1.0})),
        '`make_agent("dqn", env)`': _raises(lambda: make_agent("dqn", fresh)),
        '`DataAgentEnv(reward_baseline="median")`': _raises(lambda: DataAgentEnv(**{**SMALL, "reward_baseline": "median"})),
        '`DataAgentEnv(selection="greedy")`': _raises(lambda: DataAgentEnv(**{**SMALL, "selection": "greedy"})),
        "`DataAgentEnv(refresh=1.5)`": _raises(lambda: DataAgentEnv(**{**SMALL, "refresh": 1.5})),
        '`DataAgentEnv(selection="importance", loss_weight=2.0)`': _raises(
            lambda: DataAgentEnv(**{**SMALL, "selection": "importance", "loss_weight": 2.0})),
        # learnability (envs.core.reference)
        "`DataConfig(holdout=0.7)`": _raises(lambda: DataConfig(holdout=0.7).validate()),
        '`load_dataset("synthetic", train_size=6, holdout=0.5)` (a class left empty)': _raises(
            lambda: load_dataset("synthetic", train_size=6, holdout=0.5)),
        "`DataConfig(trusted=True)` without a holdout": _raises(lambda: DataConfig(trusted=True).validate()),
        '`DataAgentEnv(reference={"kind": "holdout"})` without a holdout': _raises(
            lambda: DataAgentEnv(**{**SMALL, "reference": {"kind": "holdout"}})),
        '`DataAgentEnv(reward="learnability")` without a reference': _raises(
            lambda: DataAgentEnv(**{**SMALL, "reward": "learnability"})),
        '`CoverSelectEnv(difficulty="reducible_loss")` without a reference': _raises(
            lambda: CoverSelectEnv(**{**SMALL, "difficulty": "reducible_loss"})),
        '`DataAgentEnv(selection="candidates", candidate_factor=0.5)`': _raises(
            lambda: DataAgentEnv(**{**SMALL, "selection": "candidates", "candidate_factor": 0.5})),
        "`run_dynamic` with `rholoss` and no reference attached": _rholoss_without_reference,
        '`select_coreset("reducible_loss", proxy)` on a proxy run without a reference': _raises(
            lambda: select_coreset("reducible_loss", run_proxy(load_dataset("synthetic"), "mlp", TrainerConfig(epochs=1),
                                                               score_epochs=1), 0.5)),
        "a reference cache file (`ReferenceConfig(cache=path)`) of another configuration": lambda: _other_reference(tmp),
        # checkpoints
        "a truncated checkpoint file": lambda: _truncated_checkpoint(tmp),
        "a checkpoint of another configuration": lambda: _other_configuration(tmp),
        # experiments.train
        "`--resume runs/typo`": cli(train.main, ["--resume", "runs/typo"]),
        "a new run into a folder that holds an unfinished run": cli(train.main, [*TINY, "--out", "runs/x"]),
        "`--resume runs/x --lr 0.05 ...` (other options than the run's)": cli(
            train.main, [*TINY, "--lr", "0.05", "--resume", "runs/x"]),
        "`--resume runs/x --out runs/y`": cli(train.main, ["--resume", "runs/x", "--out", "runs/y"]),
        "`--keep-checkpoints 0`": cli(train.main, [*TINY, "--keep-checkpoints", "0"]),
        "`--load-agent missing.zip`": cli(train.main, [*TINY, "--load-agent", "missing.zip"]),
        "`--load-agent bad.zip` (a corrupt file)": cli(train.main, [*TINY, "--load-agent", str(tmp / "bad.zip")]),
        "`--load-agent notes.zip` (a zip, but no agent)": cli(
            train.main, [*TINY, "--load-agent", str(tmp / "notes.zip")]),
        "`--no-learn` without `--load-agent`": cli(train.main, [*TINY, "--no-learn"]),
        "`--load-agent runs/cover/agent.zip` (a CoverSelect-v0 agent) on `DataAgent-v0`": cli(
            train.main, [*TINY, "--load-agent", "runs/cover/agent.zip", "--out", "runs/y"]),
        "`--out runs/done` (a finished run's folder)": cli(train.main, [*TINY, "--out", "runs/done"]),
        "`--out notes.txt` (a file)": cli(train.main, [*TINY, "--out", "notes.txt"]),
        "`--out runs/cover --overwrite --load-agent runs/cover/agent.zip`": cli(
            train.main, [*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--out", "runs/cover", "--overwrite",
                         "--load-agent", "runs/cover/agent.zip"]),
        "`--resume runs/done` (a finished run)": cli(train.main, ["--resume", "runs/done"]),
        "`--resume runs/x --overwrite`": cli(train.main, ["--resume", "runs/x", "--overwrite"]),
        "`--dataset digits --data-root data/`": cli(train.main, [*TINY, "--dataset", "digits", "--data-root", "data/"]),
        "`--threads 100000`": cli(train.main, [*TINY, "--threads", "100000"]),
        "`--train-size 100 --batch-size 256`": cli(train.main, ["--train-size", "100", "--batch-size", "256"]),
        "`--epsilon 0.3` (a CoverSelect-v0 option) on `DataAgent-v0`": cli(
            train.main, [*TINY, "--epsilon", "0.3"]),
        "`--hyperparams foo=1`": cli(train.main, [*TINY, "--hyperparams", "foo=1"]),
        "`--hyperparams n_steps`": cli(train.main, [*TINY, "--hyperparams", "n_steps"]),
        "`--hyperparams n_steps=0`": cli(train.main, [*TINY, "--hyperparams", "n_steps=0"]),
        "`--seed -1`": cli(train.main, [*TINY, "--seed", "-1"]),
        "`--agent-device tpu`": cli(train.main, [*TINY, "--agent-device", "tpu"]),
        "`--dataset cifar10 --data-root empty/`": cli(
            train.main, ["--dataset", "cifar10", "--data-root", str(tmp / "empty"), "--no-progress"]),
        # other CLIs
        "`experiments.full_data --lr 1e30`": cli(
            full_data.main, ["--dataset", "synthetic", "--model", "mlp", "--epochs", "1", "--lr", "1e30"]),
        "`experiments.benchmark --methods full,magic`": cli(benchmark.main, ["--methods", "full,magic"]),
        "`experiments.benchmark --keep-ratios 1.5`": cli(benchmark.main, ["--keep-ratios", "1.5"]),
        "`experiments.benchmark --suite tasks --tasks bogus`": cli(benchmark.main, ["--suite", "tasks", "--tasks", "bogus"]),
        "`experiments.full_data --task noisy:2`": cli(full_data.main, ["--task", "noisy:2"]),
        "`benchmark --prune-ratios 1.0`": cli(benchmark.main, ["--prune-ratios", "1.0"]),
        "`experiments.gpu_report --out x --parts plots`": cli(gpu_report.main, ["--out", "x", "--parts", "plots"]),
        "`experiments.gpu_report --out x --cifar10-dir missing/`": cli(
            gpu_report.main, ["--out", "x", "--cifar10-dir", str(tmp / "missing")]),
        "`experiments.prepare_gpu --cifar10-dir empty/`": cli(prepare_gpu.main, ["--cifar10-dir", str(tmp / "empty")]),
    }


def _pattern(expected: str) -> re.Pattern:
    """The table's message as a pattern: its code span, with "..." matching anything."""
    code = re.match(r"`([^`]*)`", expected).group(1)
    return re.compile(".*".join(re.escape(part) for part in code.split("...")), re.DOTALL)


def test_every_bad_input_row_is_what_the_code_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the table's relative paths (runs/x...) are real folders here
    _stopped_run(tmp_path / "stopped", monkeypatch)
    shutil.copytree(tmp_path / "stopped", tmp_path / "runs" / "x")
    train.main([*TINY, "--out", "runs/done"], quiet=True)  # a finished run
    train.main([*TINY, "--env", "CoverSelect-v0", "--algo", "a2c", "--out", "runs/cover"], quiet=True)
    (tmp_path / "notes.txt").write_text("mine")
    runs = cases(tmp_path, capsys)
    rows = table_rows()
    assert len(rows) >= 30
    assert sorted(cell for cell, _ in rows) == sorted(runs), "docs/bad-input.md rows and test cases differ"
    for cell, expected in rows:
        run = runs[cell]
        if run is None:  # needs a machine without this dataset / without CUDA
            continue
        got = run()
        assert "\n" not in got.strip(), (cell, got)
        assert _pattern(expected).match(got), f"{cell}: docs/bad-input.md says {expected}, the code says {got}"
