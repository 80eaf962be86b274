"""The run library (experiments.run) and the CLIs around it: every TrainerConfig option reaches the env from
every CLI that trains, runs are config objects, and every console script answers --help with its defaults."""

from __future__ import annotations

import json

import dataclasses
import importlib
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import experiments.run.training as training
from envs.core.trainer import TrainerConfig
from experiments import benchmark
from experiments.run.benchmark import methods
from experiments.run.docstrings import plain
from experiments.run import RunConfig, env_kwargs, load_run_config, run_training
from experiments.train import build_parser, run_config

ROOT = Path(__file__).resolve().parents[1]
#: a value other than the default for every TrainerConfig field
CHANGED = dict(batch_size=16, epochs=2, lr=0.05, momentum=0.8, nesterov=False, weight_decay=1e-4, schedule="cosine",
               label_smoothing=0.0, amp=True, augment=False, eval_batch_size=64, threads=2)
DATA = ["--dataset", "synthetic", "--model", "mlp", "--train-size", "160", "--device", "cpu"]


def trainer_flags(values: dict) -> list[str]:
    """The command-line flags that set ``values`` (``--x``/``--no-x`` for the switches)."""
    flags = []
    for name, value in values.items():
        flag = name.replace("_", "-")
        flags += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return flags


def test_the_changed_values_cover_every_trainer_field():
    defaults = TrainerConfig()
    assert set(CHANGED) == {f.name for f in dataclasses.fields(TrainerConfig)}
    assert all(getattr(defaults, name) != value for name, value in CHANGED.items())


class _Reached(Exception):
    """The run was about to start: its env exists."""


def _capture_env(monkeypatch) -> list:
    """Stop a run where the agent would start, keeping its env."""
    seen = []

    def reached(config, agent, checkpointer, tracker, resume):
        seen.append(checkpointer.env)
        raise _Reached

    monkeypatch.setattr(training, "run_agent", reached)
    return seen


@pytest.mark.parametrize("env_id", ["DataAgent-v0", "CoverSelect-v0"])
def test_every_trainer_option_reaches_the_env_from_the_train_cli(tmp_path, monkeypatch, env_id):
    seen = _capture_env(monkeypatch)
    args = build_parser().parse_args([*DATA, "--env", env_id, "--algo", "a2c", *trainer_flags(CHANGED),
                                      "--out", str(tmp_path), "--no-progress"])
    with pytest.raises(_Reached):
        run_training(run_config(args))
    assert seen[0].config == TrainerConfig(**CHANGED)


def test_every_trainer_option_reaches_the_env_and_the_baselines_from_the_benchmark(tmp_path, monkeypatch):
    specs = []
    monkeypatch.setattr(benchmark, "execute", lambda s, *a, **k: specs.extend(s) or [])
    with pytest.raises(SystemExit):  # no records: "every run failed"
        benchmark.main([*DATA, *trainer_flags(CHANGED), "--methods", "random,dataagent_ppo", "--out", str(tmp_path)])
    by_method = {s.method: s for s in specs}
    assert methods._trainer(by_method["random"]).config == TrainerConfig(**CHANGED)
    seen = _capture_env(monkeypatch)
    with pytest.raises(_Reached):
        methods.run_data_agent(by_method["dataagent_ppo"], methods.RunCache())
    assert seen[0].config == TrainerConfig(**CHANGED)


def test_keep_ratio_is_one_option_for_both_envs():
    data_agent = env_kwargs(RunConfig(env_options={"keep_ratio": 0.3}))
    cover = env_kwargs(RunConfig(env="CoverSelect-v0", env_options={"keep_ratio": 0.3}, seed=4))
    assert data_agent["keep_ratio"] == 0.3 and data_agent["data"].seed is None
    assert cover["keep_ratio"] == 0.3 and cover["data"].seed == 4
    with pytest.raises(ValueError, match="anneal is an option of DataAgent-v0, not of CoverSelect-v0"):
        env_kwargs(RunConfig(env="CoverSelect-v0", env_options={"anneal": 0.5}))
    with pytest.raises(ValueError, match="env option 'target_ratio' is unknown"):
        env_kwargs(RunConfig(env_options={"target_ratio": 0.5}))


@pytest.mark.parametrize("config, message", [
    (RunConfig(env="CartPole-v1"), "env='CartPole-v1' is invalid; valid choices: DataAgent-v0, CoverSelect-v0"),
    (RunConfig(keep_checkpoints=0), "keep_checkpoints=0 is invalid; valid: an integer >= 1"),
    (RunConfig(no_learn=True), "no_learn needs load_agent"),
    (RunConfig(trainer=TrainerConfig(epochs=0)), "epochs=0 is invalid"),
])
def test_a_bad_run_config_names_the_option(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


def test_a_run_from_python_writes_its_folder_and_resumes_from_its_record(tmp_path):
    config = RunConfig(dataset="synthetic", model="mlp", data={"train_size": 160}, device="cpu", algo="a2c",
                       trainer=TrainerConfig(batch_size=16, epochs=2), env_options={"keep_ratio": 0.5},
                       out=tmp_path / "run", checkpoint_every=0, progress=False)
    result = run_training(config)
    assert result.layout == "per_sample" and result.num_samples == 160 and result.folder == tmp_path / "run"
    assert result.metrics["run"]["ledger"]["samples_backpropagated"] == (5 + 10) * 16
    assert result.metrics["reference"]["backprop_fraction"] == 1.0
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"agent.zip", "config.yml", "metrics.json", "scores.npy", "tb"}
    assert load_run_config(tmp_path / "run") == config  # config.yml records the whole configuration


def test_a_data_root_given_as_a_path_is_recorded_as_a_string(tmp_path):
    """config.yml is plain YAML: a ``pathlib.Path`` data root (valid for DataConfig) must not break it. A file-backed
    dataset, since the others refuse a root they would not read."""
    from envs.core.data import FASHION_MNIST_DIRS

    root = Path(FASHION_MNIST_DIRS[0])
    if not (root / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST is not in {root}: apt-get install -y dataset-fashion-mnist")
    config = RunConfig(dataset="fashion-mnist", model="mlp", data={"train_size": 160, "root": root}, device="cpu",
                       trainer={"batch_size": 16, "epochs": 1}, reference=False, out=tmp_path / "run",
                       checkpoint_every=0, progress=False)
    run_training(config)
    recorded = yaml.safe_load((tmp_path / "run" / "config.yml").read_text())
    assert recorded["run"]["data"]["root"] == recorded["env_kwargs"]["data"]["root"] == str(root)


def test_plain_strips_restructured_text_markup():
    assert plain("uses :class:`~envs.core.trainer.TrainerConfig` and :func:`envs.core.data.load_dataset` on ``x``") == \
        "uses TrainerConfig and envs.core.data.load_dataset on x"


def _scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_cli_has_a_console_script():
    clis = {p.stem for p in (ROOT / "experiments").glob("*.py") if 'if __name__ == "__main__"' in p.read_text()}
    assert {target.split(":")[0].removeprefix("experiments.") for target in _scripts().values()} == clis
    assert all(name.startswith("dsg-") for name in _scripts())


@pytest.mark.parametrize("name", sorted(_scripts()))
def test_every_console_script_resolves_and_its_help_shows_defaults_in_plain_text(name, monkeypatch, capsys):
    module, _, attr = _scripts()[name].partition(":")
    pytest.importorskip("optuna") if module == "experiments.tune" else None
    entry = getattr(importlib.import_module(module), attr)
    assert callable(entry)
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as done:
        entry()
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "(default: " in text
    assert not re.search(r"``|:(class|func|data|meth|mod):", text), text
    if "--out" in text:  # --out is a folder in every CLI
        assert "--out FOLDER" in text


def test_the_readme_run_library_example_runs_as_written(tmp_path, monkeypatch, capsys):
    text = (ROOT / "docs" / "running.md").read_text()
    section = text[text.index("## Run library"):]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)  # the example writes runs/library
    exec(compile(block, "docs/running.md", "exec"), {"__name__": "readme"})
    metrics = json.loads((tmp_path / "runs" / "library" / "metrics.json").read_text())
    top1, reference = map(float, capsys.readouterr().out.split())
    assert (top1, reference) == (metrics["run"]["test"]["top1"], metrics["reference"]["test"]["top1"])
    assert metrics["run"]["backprop_fraction"] < 1.0 and reference > 20.0  # selected at 0.3; the reference learnt digits


def test_a_config_yml_written_before_the_layout_rename_still_loads():
    assert RunConfig.from_dict({"mode": "batch"}).layout == "batch"
    with pytest.raises(ValueError, match=r"unknown run options \['modus'\]"):
        RunConfig.from_dict({"modus": "batch"})
