"""Run the agent and the inner model together, and the full-data reference beside it.

Why a library: the train CLI, the benchmark, compare_layouts, tune and own_loop all run the same thing;
they describe it with a :class:`~experiments.run.config.RunConfig` and call :func:`run_training`, so no
option is lost on the way through an argument list. Bad options raise ``ValueError`` (or
``FileNotFoundError`` for missing data) naming the option; a CLI shows the message as its error.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.save_util import load_from_zip_file

import envs  # noqa: F401  (registers the env ids)
from agents import episode_steps, load_hyperparams, make_agent, preset_layout
from envs.core.checkpoint import CheckpointDir, CheckpointError
from envs.core.distributed import ReplicatedEnv, is_leader, world_size
from envs.core.files import write_json
from envs.core.trainer import DivergenceError, resolve_device
from envs.methods.coreset import save_coreset
from experiments.run.full_data import run_full_data
from experiments.run.checkpointing import RunCheckpointer, checkpoint_on_signals, exit_on_signals
from experiments.run.config import RunConfig, checkpoint_identity, env_kwargs, yaml_ready
from experiments.run.folders import choose_folder, clear_outputs
from experiments.run.tracking import RunCallback, RunTracker, act_without_learning, run_summary

#: what a run leaves in its folder (``config.yml`` besides; ``checkpoints`` while unfinished): an earlier run's
#: results, which a new run replaces only with ``overwrite``
RUN_OUTPUTS = ("agent.zip", "tb", "metrics.json", "scores.npy", "coreset.npy", "coreset.json", "agent_run.json",
               "checkpoints")


def resume_command(folder: Path) -> str:
    """The command that continues the run in ``folder``: under torchrun, on as many processes again."""
    size = world_size()
    launcher = f"torchrun --nproc-per-node {size}" if size > 1 else "python"
    return f"{launcher} -m experiments.train --resume {folder}"


@dataclass
class RunResult:
    """A finished run.

    :param config: the run's configuration
    :param layout: the agent layout it used (the preset's when the config left it open)
    :param num_samples: training samples of the inner model
    :param device: the inner model's device
    :param metrics: what ``metrics.json`` holds: ``run``, and ``reference`` and ``coreset`` when there are any
    :param folder: where the run's files are
    """

    config: RunConfig
    layout: str
    num_samples: int
    device: str
    metrics: dict[str, Any]
    folder: Path


def agent_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a saved SB3 agent (missing, not a zip, corrupt, not SB3's layout), or None.

    SB3 itself answers a missing file with the path plus a second ``.zip`` and a corrupt one with
    an error that reads like a policy mismatch, so the file is checked first."""
    if not path.exists():
        return "no such file"
    if not path.is_file():
        return "not a regular file"
    if not zipfile.is_zipfile(path):
        return "not a zip archive (corrupt, truncated or another format)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f"a corrupt zip archive ({err})"
    if bad is not None:
        return f"a corrupt zip archive ({bad!r} fails its checksum)"
    if not {"data", "policy.pth"} <= names:
        return "a zip archive without an SB3 agent inside (no 'data' and 'policy.pth')"
    return None


def agent_trained_for(path: Path) -> str:
    """What the saved agent at ``path`` was trained for: its env and layout (from the ``config.yml`` beside it,
    when there is one) and its observation and action shapes (from the agent itself)."""
    data, _, _ = load_from_zip_file(path, load_data=True, device="cpu")
    shapes = f"observation {data['observation_space'].shape}, action {data['action_space'].shape}"
    record = path.parent / "config.yml"
    if not record.is_file():
        return shapes
    run = yaml.safe_load(record.read_text())
    state = (run.get("env_kwargs") or {}).get("state")
    return f"{run.get('env')}, layout {run.get('layout', run.get('mode'))}{f', state {state}' if state else ''}, {shapes}"


def load_run_config(folder: Path) -> RunConfig:
    """The configuration recorded in ``folder/config.yml`` by the run that wrote ``folder``, to resume it."""
    config_file = folder / "config.yml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} does not exist; valid: the out folder of a run")
    config = RunConfig.from_dict(yaml.safe_load(config_file.read_text())["run"])
    config.out = folder
    return config


def _check(config: RunConfig, resume: bool) -> None:
    """Refuse a configuration that cannot run, before anything is built (after :meth:`RunConfig.validate`)."""
    try:
        resolve_device(config.agent_device)
    except ValueError as err:
        raise ValueError(f"agent_device: {err}") from None
    problem = None if config.load_agent is None else agent_file_problem(config.load_agent)
    if problem is not None:
        raise ValueError(f"load_agent={config.load_agent}: {problem}; valid: an agent.zip saved by experiments.train")
    if config.no_learn and resume:
        raise ValueError("resume continues learning runs; no_learn runs are not checkpointed")
    folder = config.folder
    if resume and (folder / "metrics.json").is_file() and not (folder / "checkpoints").is_dir() \
            and not (folder / "agent_run.json").is_file():
        raise ValueError(f"resume {folder}: the run has finished (its results are in {folder / 'metrics.json'}); "
                         f"nothing to resume. A new run needs another --out (or --overwrite)")
    if not resume and config.out is not None and not config.overwrite and (config.out / "checkpoints").is_dir():
        raise ValueError(f"{config.out} holds checkpoints of an unfinished run; continue it with --resume "
                         f"{config.out}, or pick another --out (or pass --overwrite to start over)")


def _build_agent(config: RunConfig, env: gym.Env, layout: str) -> BaseAlgorithm:
    """The SB3 agent of the run, from its preset, the overrides and (``load_agent``) a saved policy."""
    try:
        agent = make_agent(config.algo, env, layout, seed=config.seed, device=config.agent_device,
                           tensorboard_log=None if config.no_learn else str(config.folder / "tb"), **config.hyperparams)
    except (TypeError, ValueError, ZeroDivisionError, AssertionError) as err:
        if not config.hyperparams:  # the presets always build: anything else is a bug, and its traceback is wanted
            raise
        # SB3 checks its arguments as it uses them, with whatever exception comes first
        raise ValueError(f"hyperparams {config.hyperparams}: {type(err).__name__}: {err}") from None
    if config.load_agent is not None:
        try:
            agent.set_parameters(str(config.load_agent), exact_match=True, device=config.agent_device)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"load_agent={config.load_agent}: it was trained for {agent_trained_for(config.load_agent)}; "
                             f"this run is {config.env}, layout {layout}, observation {agent.observation_space.shape}, "
                             f"action {agent.action_space.shape}; valid: an agent of the same env, layout and shapes") from None
    return agent


def run_training(config: RunConfig, *, resume: bool = False) -> RunResult:
    """Train (or, with ``no_learn``, run) the agent for one run of the env, then the full-data reference.

    The folder gets ``config.yml``, ``agent.zip``, ``tb/``, ``scores.npy``, ``metrics.json`` and, for
    CoverSelect-v0, ``coreset.npy`` + ``coreset.json``; ``checkpoints/`` exists while the run is
    unfinished. With ``resume``, the run continues from its newest checkpoint (the configuration must
    be the recorded one). A stop signal raises :class:`~experiments.run.checkpointing.RunInterrupted`
    after the checkpoint is saved.

    :param config: the run; a new run's ``out`` becomes the folder it writes to
        (:func:`~experiments.run.folders.choose_folder`: never over an earlier run's results unasked)
    :param resume: continue the unfinished run in ``config.folder``
    """
    config.validate()
    _check(config, resume)
    if not resume:
        config.out = choose_folder(config.out, config.default_folder, RUN_OUTPUTS, overwrite=config.overwrite,
                                   reads=config.load_agent)
    folder = config.folder
    checkpoints = CheckpointDir(folder / "checkpoints", keep=config.keep_checkpoints)
    # the env is created and the agent is run here, and only here. Under torchrun every rank runs
    # this function in the same order (the inner model trains with DDP); only rank 0's agent acts
    # (ReplicatedEnv repeats its calls on the other ranks) and only rank 0 writes or prints.
    leader = is_leader()
    progress = config.progress and leader
    options = env_kwargs(config)
    try:
        env = ReplicatedEnv(gym.make(config.env, **options))
    except FileNotFoundError as err:  # the data's own message names the files, not the option
        raise FileNotFoundError(f"dataset={config.dataset!r}: {err}") from None
    hyperparams = load_hyperparams(config.algo, config.env)
    layout = config.layout or preset_layout(hyperparams)
    agent = _build_agent(config, env, layout)
    base = env.unwrapped
    steps = episode_steps(env)
    if steps is None:
        raise ValueError(f"{config.env} does not report episode_steps, so one run's length is unknown")
    num_envs = agent.get_env().num_envs
    record = {"run": config.as_dict(), "env": config.env, "env_kwargs": yaml_ready(options), "algo": config.algo, "layout": layout,
              "seed": config.seed, "agent_device": config.agent_device, "hyperparams": hyperparams,
              "overrides": config.hyperparams,
              "effective": {"n_steps": agent.n_steps, "num_envs": num_envs, "episode_steps": steps,
                            **({"batch_size": agent.batch_size} if hasattr(agent, "batch_size") else {})},
              "load_agent": None if config.load_agent is None else str(config.load_agent),
              "no_learn": config.no_learn, "reference": config.reference}
    identity = checkpoint_identity(record)
    folder.mkdir(parents=True, exist_ok=True)
    if not resume and leader:
        replaced = clear_outputs(folder, RUN_OUTPUTS)  # only with overwrite: choose_folder refused or moved on otherwise
        if replaced:
            print(f"note: --overwrite: {folder} held an earlier run; this run replaces its {', '.join(replaced)}",
                  file=sys.stderr)
        (folder / "config.yml").write_text(yaml.safe_dump(record, sort_keys=False))
    tracker = RunTracker(steps, f"{config.env}/{config.algo} {config.dataset}/{config.model}", progress)
    checkpointer = RunCheckpointer(checkpoints, identity, env, tracker, config.checkpoint_every)
    agent_done = folder / "agent_run.json"  # the agent run's results, once it has finished
    finished = resume and agent_done.is_file()
    if resume and not finished:
        if not checkpoints.steps():
            raise ValueError(f"resume {folder}: no checkpoint in {checkpoints.folder}; the run stopped before its first one")
        checkpointer.init_callback(agent)
        try:
            latest, payload, skipped = checkpoints.load_newest(identity)
        except CheckpointError as err:
            raise ValueError(f"resume {folder}: {err}") from None
        checkpointer.restore(payload)
        if leader:
            for reason in skipped:
                print(f"note: skipped a checkpoint that does not load: {reason}", file=sys.stderr)
            print(f"resuming {folder} from {latest.name} (epoch {base.trainer.epoch}, "
                  f"{agent.num_timesteps // num_envs} of {steps} steps)", file=sys.stderr)
    if finished:
        metrics = json.loads(agent_done.read_text())
        if leader:
            print(f"resuming {folder}: the agent run has finished; continuing its full-data reference", file=sys.stderr)
    else:
        metrics = env.replicate(lambda: run_agent(config, agent, checkpointer, tracker, resume))
        if leader:
            write_json(agent_done, metrics)
    if config.reference:
        metrics["reference"] = run_reference(config, None if config.no_learn else checkpoints)
    if leader:
        write_json(folder / "metrics.json", metrics)
        # finished: nothing left to resume, and the same folder may start a new run
        shutil.rmtree(checkpoints.folder, ignore_errors=True)
        agent_done.unlink(missing_ok=True)
    return RunResult(config, layout, base.num_samples, str(base.device), metrics, folder)


def run_agent(config: RunConfig, agent: BaseAlgorithm, checkpointer: RunCheckpointer, tracker: RunTracker,
              resume: bool) -> dict[str, Any]:
    """The agent's run (learning, or acting with ``no_learn``) to its end; saves the agent, the final
    scores and any coreset to the run's folder and returns the run's part of ``metrics.json``."""
    folder, base, num_envs, steps = config.folder, checkpointer.env, agent.get_env().num_envs, tracker.bar.total
    if config.no_learn:
        start = time.perf_counter()
        act_without_learning(agent, config.seed, tracker)
        wall = time.perf_counter() - start
    else:
        with checkpoint_on_signals(checkpointer):
            agent.learn(steps * num_envs - agent.num_timesteps, callback=CallbackList([RunCallback(tracker), checkpointer]),
                        tb_log_name="agent", reset_num_timesteps=not resume)
        wall = time.perf_counter() - checkpointer.started
    info = tracker.final_info
    run = run_summary(info, base.num_samples, config.trainer.epochs, wall)
    run.update(tracker.curves())
    result: dict[str, Any] = {"run": run}
    np.save(folder / "scores.npy", info["scores"])
    if not config.no_learn:
        for key, value in (("final_top1", run["test"]["top1"]), ("backprop_fraction", run["backprop_fraction"])):
            agent.logger.record(f"run/{key}", value)
        agent.logger.dump(agent.num_timesteps)
        agent.save(folder / "agent.zip")
    if "coreset" in info:
        npy, _ = save_coreset(folder / "coreset", info["coreset"], info["coreset_meta"])
        result["coreset"] = {"path": str(npy), "size": int(len(info["coreset"])),
                             "ratio": len(info["coreset"]) / base.num_samples}
    return result


def run_reference(config: RunConfig, checkpoints: CheckpointDir | None = None) -> dict[str, Any]:
    """Full-data training with the run's dataset, model, seed and trainer options: the ``reference`` part of
    ``metrics.json``. With ``checkpoints`` (the run's) it is checkpointed per epoch in their ``reference``
    subfolder and continues from there; a stop signal ends it at once with a message saying how to
    continue, and a diverging reference is reported in the results (``error``) rather than raised.

    :param config: the run the reference belongs to
    :param checkpoints: the run's checkpoint folder (None: no checkpoints)
    """
    explain = (f"stopped during the full-data reference; continue with: {resume_command(config.folder)}"
               if checkpoints is not None else "stopped during the full-data reference (no_learn runs are not checkpointed)")
    try:
        with exit_on_signals(explain):
            reference = run_full_data(config.dataset, config.model, config.data, config.trainer, seed=config.seed,
                                      device=config.device, progress=config.progress and is_leader(),
                                      checkpoints=None if checkpoints is None else CheckpointDir(checkpoints.folder / "reference", 1),
                                      checkpoint_every=config.checkpoint_every)
    except DivergenceError as err:
        return {"error": f"the full-data reference diverged: {err}"}
    return run_summary({"final_test": reference["test"], "ledger": reference["ledger"]},
                       reference["train_size"], config.trainer.epochs, reference["wall_seconds"])
