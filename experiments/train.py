"""Train an SB3 agent and the inner model together: one episode of the env is one training run.

    python -m experiments.train                                   # DataAgent-v0 + PPO on digits, about a minute
    python -m experiments.train --env CoverSelect-v0 --algo a2c --target-ratio 0.3
    python -m experiments.train --mode per_sample --epochs 10 --out runs/da
    python -m experiments.train --load-agent runs/da/agent.zip --no-learn --seed 1   # reuse a trained policy
    python -m experiments.train --resume runs/da                  # continue a killed or interrupted run

Agent hyper-parameters come from ``agents/hyperparams/{algo}.yml``, RL Zoo files (``--hyperparams
key=value`` overrides them). The run writes to ``--out``: the agent (``agent.zip``, SB3 format), ``config.yml``,
``metrics.json``, TensorBoard logs (``tb/``) and, for ``CoverSelect-v0``, the coreset
(``coreset.npy`` + ``coreset.json``). With ``--reference full`` a full-data run of the same
dataset, model, seed and trainer options (:func:`experiments.full_data.run_full_data`) is the
yardstick for accuracy and cost. ``--load-agent`` starts from a saved agent (its policy must fit
the env's ``state_dim``: ``--state signals`` makes Data Agent's state model-agnostic); with
``--no-learn`` the policy only acts.

Long runs survive: the whole run (inner model, optimizer, schedule position, sample statistics,
scores, selection state, RNG states, ledger, the SB3 agent and its rollout position) is saved to
``--out``/checkpoints every ``--checkpoint-every`` epochs at the next rollout boundary, and when
SIGTERM or SIGINT arrives (at the end of the current rollout; a second signal stops at once). Only
the last ``--keep-checkpoints`` are kept; writes are atomic. ``--resume DIR`` continues the newest
one with the options recorded in ``DIR/config.yml``, and on CPU ends exactly as the uninterrupted
run would (same accuracy, scores and ledger counts). The full-data reference run is checkpointed
per epoch in ``checkpoints/reference``. ``--no-learn`` runs are not checkpointed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import threading
import time
import contextlib
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from tqdm import tqdm

import envs  # noqa: F401  (registers the env ids)
from agents import ALGOS, MODES, agent_state, episode_steps, load_agent_state, load_hyperparams, make_agent, preset_mode
from envs.checkpoint import CheckpointDir, CheckpointError, load_checkpoint, rng_state, set_rng_state
from envs.coreset import save_coreset
from envs.cover_rewards import COVER_REWARDS
from envs.cover_select import DEGREE_NORMS
from envs.rewards import DATA_AGENT_REWARDS, REWARD_BASELINES
from envs.selection import SELECTIONS
from envs.trainer import DivergenceError, resolve_device
from experiments.cli import add_trainer_arguments, trainer_options, write_json
from experiments.full_data import run_full_data

ENV_IDS = ("DataAgent-v0", "CoverSelect-v0")
ENV_OPTIONS = {  # CLI option -> env keyword, per env
    "DataAgent-v0": ("keep_ratio", "anneal", "state", "reward", "reward_baseline", "selection", "refresh", "temperature"),
    "CoverSelect-v0": ("target_ratio", "epsilon", "train_on", "reward", "ratio_scale", "degree_norm", "class_budget"),
}


class RunEndResults(gym.Wrapper):
    """Adds what the CLI reports to the info of a run's last step, before a ``VecEnv``'s auto-reset
    replaces the run: the model's test metrics when the env does not report them (CoverSelect-v0's
    selection model), every sample's final score and, for envs that produce one, the coreset and
    its metadata."""

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            base = self.env.unwrapped
            if "final_test" not in info:
                info["final_test"] = base.trainer.evaluate()
            info["scores"] = base.scores.cpu().numpy()
            if callable(getattr(base, "coreset", None)):
                info["coreset"], info["coreset_meta"] = base.coreset(), base.coreset_meta()
        return obs, reward, terminated, truncated, info


class RunTracker:
    """Progress bar, per-step env metrics for SB3's logger, the mean reward and mean score of each
    epoch (the agent's learning curve within the run) and the run's last info."""

    LOGGED = ("train_loss", "lambda", "ratio", "lr")

    def __init__(self, total: int, desc: str, progress: bool):
        self.bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
        self.final_info: dict[str, Any] | None = None
        self.epoch_rewards: dict[int, list[float]] = {}
        self.epoch_scores: dict[int, list[float]] = {}

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]], actions: np.ndarray,
               logger: Any = None) -> bool:
        """Account one env step (``actions`` in [-1, 1]); returns False once the run (episode) has ended."""
        info = infos[0]
        reward = float(np.mean(rewards))
        score = float(np.mean((np.clip(actions, -1.0, 1.0) + 1.0) / 2.0))
        self.epoch_rewards.setdefault(info.get("epoch", 0), []).append(reward)
        self.epoch_scores.setdefault(info.get("epoch", 0), []).append(score)
        if logger is not None:
            logger.record_mean("env/reward", reward)
            logger.record_mean("env/score", score)
            for key in self.LOGGED:
                if key in info:
                    logger.record_mean(f"env/{key}", info[key])
        self.bar.update(1)
        if "epoch" in info:
            self.bar.set_postfix(epoch=info["epoch"], refresh=False)
        if dones[0]:
            self.final_info = info
            self.bar.close()
            return False
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.bar.n, "epoch_rewards": {k: list(v) for k, v in self.epoch_rewards.items()},
                "epoch_scores": {k: list(v) for k, v in self.epoch_scores.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bar.update(state["steps"])
        self.epoch_rewards = {k: list(v) for k, v in state["epoch_rewards"].items()}
        self.epoch_scores = {k: list(v) for k, v in state["epoch_scores"].items()}

    def curves(self) -> dict[str, list[float]]:
        """Mean reward and mean score of each epoch, in epoch order."""
        return {f"{name}_by_epoch": [float(np.mean(v)) for _, v in sorted(values.items())]
                for name, values in (("reward", self.epoch_rewards), ("score", self.epoch_scores))}


class RunCallback(BaseCallback):
    """Feeds SB3's rollout steps to a :class:`RunTracker` and stops learning when the run ends."""

    def __init__(self, tracker: RunTracker):
        super().__init__()
        self.tracker = tracker

    def _on_step(self) -> bool:
        loc = self.locals
        return self.tracker.update(loc["rewards"], loc["dones"], loc["infos"], loc["clipped_actions"], self.logger)


class RunInterrupted(Exception):
    """A stop signal arrived and the run was checkpointed."""

    def __init__(self, signum: int, path: Path):
        super().__init__(f"{signal.Signals(signum).name}: checkpoint saved to {path}")
        self.signum = signum


class RunCheckpointer(BaseCallback):
    """Saves the whole run (env episode, agent, tracker, RNG states) at rollout boundaries: every
    ``every`` epochs of inner training (0: never) and when :attr:`stop_signal` is set, after which
    it raises :class:`RunInterrupted`. A rollout boundary is the one point where no transition of
    the agent is in flight, so continuing from there replays the run exactly.

    :param folder: where the numbered checkpoints go
    :param config: the run configuration a checkpoint must match to be loaded
    :param env: the run's env (as wrapped by ``gym.make``)
    :param tracker: the run's tracker (progress, reward curve)
    :param every: epochs between periodic checkpoints
    """

    def __init__(self, folder: CheckpointDir, config: dict[str, Any], env: gym.Env, tracker: RunTracker, every: int):
        super().__init__()
        self.folder, self.config, self.wrapped, self.tracker, self.every = folder, config, env, tracker, every
        self.env = env.unwrapped
        self.started = time.perf_counter()  # moved back by the saved run time on restore()
        self.saved_epoch = self.env.trainer.epoch if self.env.trainer is not None else 0
        self.stop_signal: int | None = None

    def _on_rollout_start(self) -> None:
        epoch = self.env.trainer.epoch
        if self.stop_signal is None and not (self.every and epoch >= self.saved_epoch + self.every):
            return
        path = self.save()
        self.saved_epoch = epoch
        if self.stop_signal is not None:
            raise RunInterrupted(self.stop_signal, path)

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        payload = {"agent": agent_state(self.model), "env": self.env.state_dict(), "tracker": self.tracker.state_dict(),
                   "elapsed": time.perf_counter() - self.started, "rng": rng_state()}
        return self.folder.save(self.model.num_timesteps, payload, self.config)

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from ``payload``: env first (its trainer re-seeds the global RNGs), then the
        agent, then the RNG states of the moment of the save."""
        self.wrapped.reset()  # through every wrapper, so their reset-before-step checks pass
        self.env.load_state_dict(payload["env"])  # then the saved episode replaces the fresh one
        load_agent_state(self.model, payload["agent"])
        self.tracker.load_state_dict(payload["tracker"])
        self.started = time.perf_counter() - payload["elapsed"]
        self.saved_epoch = self.env.trainer.epoch
        set_rng_state(payload["rng"])


@contextmanager
def _on_stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` answers SIGTERM and SIGINT inside the block (only in the main thread, where Python
    delivers signals); the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def checkpoint_on_signals(checkpointer: RunCheckpointer) -> contextlib.AbstractContextManager[None]:
    """While learning, SIGTERM and SIGINT ask ``checkpointer`` to save and stop at the end of the
    rollout; a second signal stops at once (``KeyboardInterrupt``)."""

    def handler(signum: int, frame: Any) -> None:
        if checkpointer.stop_signal is not None:
            raise KeyboardInterrupt
        checkpointer.stop_signal = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this rollout, then stopping "
              "(send it again to stop at once, without saving)", file=sys.stderr, flush=True)

    return _on_stop_signals(handler)


def exit_on_signals(explain: str) -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGINT stop at once with exit status 128 + signal, after printing ``explain``:
    a stop never goes unexplained, whatever phase the run is in."""

    def handler(signum: int, frame: Any) -> None:
        print(f"\n{signal.Signals(signum).name}: {explain}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    return _on_stop_signals(handler)


def act_without_learning(agent: BaseAlgorithm, seed: int, tracker: RunTracker) -> None:
    """One run driven by the agent's deterministic policy, with no update."""
    venv = agent.get_env()
    venv.seed(seed)
    obs = venv.reset()
    running = True
    while running:
        action, _ = agent.predict(obs, deterministic=True)
        obs, rewards, dones, infos = venv.step(action)
        running = tracker.update(rewards, dones, infos, action)


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


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values read as YAML (``n_steps=5``, ``policy_kwargs={net_arch: [64]}``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--hyperparams {pair!r} is invalid; valid: key=value")
        out[key] = yaml.safe_load(value)
    return out


def env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The env's constructor keywords from the CLI; options of the other env are an error."""
    kw: dict[str, Any] = dict(dataset=args.dataset, model=args.model, device=args.device, train_size=args.train_size,
                              noise=args.noise, noise_rate=args.noise_rate, data_root=args.data_root,
                              **trainer_options(args))
    for name in dict.fromkeys(n for names in ENV_OPTIONS.values() for n in names):
        value = getattr(args, name)
        if value is None:
            continue
        owners = [env_id for env_id, names in ENV_OPTIONS.items() if name in names]
        if args.env not in owners:
            raise ValueError(f"--{name.replace('_', '-')} is an option of {' and '.join(owners)}, not of {args.env}")
        kw[name] = value
    if args.env == "CoverSelect-v0":
        kw["data_seed"] = args.seed  # the same training subset as the full-data reference of this seed
    return kw


def run_summary(info: dict[str, Any], num_samples: int, epochs: int, wall: float) -> dict[str, Any]:
    ledger = info["ledger"]
    return {"test": info["final_test"], "ledger": ledger, "wall_seconds": wall,
            "backprop_fraction": ledger["samples_backpropagated"] / (epochs * num_samples),
            **{key: info[key] for key in ("error", "noisy_kept_fraction") if info.get(key) is not None}}


def format_run(name: str, run: dict[str, Any]) -> str:
    t, l = run["test"], run["ledger"]
    return (f"  {name:<10} test top-1 {t['top1']:6.2f}%  top-5 {t['top5']:6.2f}%  loss {t['loss']:.3f} | "
            f"back-propagated {l['samples_backpropagated']:,} ({run['backprop_fraction']:.1%} of full data) | "
            f"wall {run['wall_seconds']:.1f}s (train {l['train_seconds']:.1f}s, overhead {l['overhead_seconds']:.1f}s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("agent")
    g.add_argument("--env", choices=ENV_IDS, default="DataAgent-v0")
    g.add_argument("--algo", choices=tuple(ALGOS), default="ppo")
    g.add_argument("--mode", choices=MODES, default=None, help="agent layout (default: the preset's)")
    g.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE", help="override preset SB3 arguments")
    g.add_argument("--agent-device", default="cpu", help="device of the agent's networks")
    g.add_argument("--load-agent", type=Path, default=None, help="start from this saved agent (.zip)")
    g.add_argument("--no-learn", action="store_true", help="with --load-agent: act with the policy, no updates")
    add_trainer_arguments(parser)
    parser.set_defaults(model="cnn", epochs=30)  # the default run: about 15 s on an idle 2-core CPU
    e = parser.add_argument_group("DataAgent-v0")
    e.add_argument("--keep-ratio", type=float, default=None, help="fraction kept per pruned epoch (env default 0.5)")
    e.add_argument("--anneal", type=float, default=None, help="fraction of epochs with selection (env default 0.875)")
    e.add_argument("--state", choices=("features", "signals", "both"), default=None,
                   help="agent state (env default features)")
    e.add_argument("--reward", choices=(*DATA_AGENT_REWARDS, *COVER_REWARDS), default=None,
                   help=f"reward: {' | '.join(DATA_AGENT_REWARDS)} (DataAgent-v0, default composite); "
                        f"{' | '.join(COVER_REWARDS)} (CoverSelect-v0, default cover)")
    e.add_argument("--reward-baseline", choices=REWARD_BASELINES, default=None,
                   help="subtracted from the reward signal: none (the paper's), batch_mean, keep_quantile (env default none)")
    e.add_argument("--selection", choices=SELECTIONS, default=None,
                   help="kept set from the scores: topk (the paper's), soft (a score-weighted draw) or importance "
                        "(keep probability from the score, 1/probability weights) (env default topk)")
    e.add_argument("--refresh", type=float, default=None,
                   help="share of each pruned epoch's budget re-admitted at random from the left-out samples (env default 0)")
    e.add_argument("--temperature", type=float, default=None, help="soft selection's temperature (env default 1)")
    c = parser.add_argument_group("CoverSelect-v0")
    c.add_argument("--target-ratio", type=float, default=None, help="coreset fraction (env default 0.5)")
    c.add_argument("--epsilon", default=None, help="ε rule: mean | median | quantile:<q> | <float> (env default mean)")
    c.add_argument("--train-on", choices=("all", "selected"), default=None, help="selection-model training data")
    c.add_argument("--ratio-scale", type=float, default=None, help="weight of the ratio reward (env default 1)")
    c.add_argument("--degree-norm", choices=DEGREE_NORMS, default=None,
                   help="ε-cover degrees as they are (none, env default) or ranked within their class (rank)")
    c.add_argument("--class-budget", action="store_true", default=None,
                   help="the coreset keeps the class proportions (the top scores of each class)")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="output folder (default runs/<env>_<algo>_s<seed>)")
    o.add_argument("--reference", choices=("full", "none"), default="full", help="also run full-data training")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    k = parser.add_argument_group("checkpoints")
    k.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                   help="save the run every EPOCHS epochs of inner training (0: only on SIGTERM/SIGINT)")
    k.add_argument("--keep-checkpoints", type=int, default=2, metavar="K", help="keep the newest K checkpoints")
    k.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the run saved in DIR (its --out) with the options in DIR/config.yml")
    return parser


def resume_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     argv: list[str]) -> tuple[list[str], argparse.Namespace]:
    """With ``--resume DIR`` alone, the command line recorded in ``DIR/config.yml``; with further
    options, those (the checkpoint then refuses to load if they describe another run)."""
    folder: Path = args.resume
    config_file = folder / "config.yml"
    if not config_file.is_file():
        parser.error(f"--resume {folder}: {config_file} does not exist; valid: the --out folder of a run of this CLI")
    saved = yaml.safe_load(config_file.read_text())
    given = vars(parser.parse_args(["--resume", str(folder)] + (["--no-progress"] if args.no_progress else [])))
    if given == vars(args):  # nothing but --resume (and --no-progress): the recorded options
        argv = [*saved["argv"], *argv]
        args = parser.parse_args(argv)
    if args.out is not None and args.out.resolve() != folder.resolve():
        parser.error(f"--out {args.out} differs from --resume {folder}; a run continues in its own folder")
    args.out = folder
    return argv, args


def checkpoint_identity(config: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match: the run config without devices, output and checkpoint options,
    flattened one level (``env_kwargs.lr``) so that a refusal names the option that differs."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("command", "argv", "agent_device"):
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if (key, k) != ("env_kwargs", "device")})
        else:
            flat[key] = value
    return flat


def run_agent(agent: BaseAlgorithm, checkpointer: RunCheckpointer, tracker: RunTracker, args: argparse.Namespace,
              out: Path) -> dict[str, Any]:
    """The agent's run (learning, or acting with ``--no-learn``) to its end; saves the agent, the
    final scores and any coreset to ``out`` and returns the run's part of ``metrics.json``."""
    base, num_envs, steps = checkpointer.env, agent.get_env().num_envs, tracker.bar.total
    if args.no_learn:
        start = time.perf_counter()
        act_without_learning(agent, args.seed, tracker)
        wall = time.perf_counter() - start
    else:
        with checkpoint_on_signals(checkpointer):
            agent.learn(steps * num_envs - agent.num_timesteps, callback=CallbackList([RunCallback(tracker), checkpointer]),
                        tb_log_name="agent", reset_num_timesteps=args.resume is None)
        wall = time.perf_counter() - checkpointer.started
    info = tracker.final_info
    run = run_summary(info, base.num_samples, args.epochs, wall)
    run.update(tracker.curves())
    result: dict[str, Any] = {"run": run}
    np.save(out / "scores.npy", info["scores"])
    if not args.no_learn:
        for key, value in (("final_top1", run["test"]["top1"]), ("backprop_fraction", run["backprop_fraction"])):
            agent.logger.record(f"run/{key}", value)
        agent.logger.dump(agent.num_timesteps)
        agent.save(out / "agent.zip")
    if "coreset" in info:
        npy, _ = save_coreset(out / "coreset", info["coreset"], info["coreset_meta"])
        result["coreset"] = {"path": str(npy), "size": int(len(info["coreset"])),
                             "ratio": len(info["coreset"]) / base.num_samples}
    return result


def run_reference(args: argparse.Namespace, out: Path, checkpoints: CheckpointDir) -> dict[str, Any]:
    """The full-data reference run's part of ``metrics.json``. It is checkpointed per epoch (not
    with ``--no-learn``); a stop signal ends it at once with a message saying how to continue,
    and a diverging reference is reported in the results (``error``) rather than raised."""
    learning = not args.no_learn
    explain = (f"stopped during the full-data reference; continue with: python -m experiments.train --resume {out}"
               if learning else "stopped during the full-data reference (--no-learn runs are not checkpointed)")
    try:
        with exit_on_signals(explain):
            reference = run_full_data(args.dataset, args.model, seed=args.seed, device=args.device,
                                      train_size=args.train_size, noise=args.noise, noise_rate=args.noise_rate,
                                      root=args.data_root, progress=not args.no_progress,
                                      checkpoints=CheckpointDir(checkpoints.folder / "reference", 1) if learning else None,
                                      checkpoint_every=args.checkpoint_every, **trainer_options(args))
    except DivergenceError as err:
        return {"error": f"the full-data reference diverged: {err}"}
    return run_summary({"final_test": reference["test"], "ledger": reference["ledger"]},
                       reference["train_size"], args.epochs, reference["wall_seconds"])


RUN_OUTPUTS = ("agent.zip", "tb", "metrics.json", "scores.npy", "coreset.npy", "coreset.json", "agent_run.json")


def clear_earlier_run(out: Path) -> list[str]:
    """Remove an earlier run's outputs from ``out`` and return their names: a new run replaces them
    (without this, ``tb/`` would keep every earlier run's logs beside the new one)."""
    found = [name for name in RUN_OUTPUTS if (out / name).exists()]
    for name in found:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return found


def main(argv: list[str] | None = None, *, quiet: bool = False) -> dict[str, Any]:
    """Run the CLI on ``argv`` (``sys.argv[1:]`` when None) and return what ``metrics.json`` holds.

    :param argv: command-line arguments
    :param quiet: print no results (for callers that report runs themselves and may delete ``--out``)
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.resume is not None:
        argv, args = resume_arguments(parser, args, argv)
    if args.no_learn and args.load_agent is None:
        parser.error("--no-learn needs --load-agent")
    try:
        resolve_device(args.agent_device)
    except ValueError as err:
        parser.error(f"--agent-device: {err}")
    problem = None if args.load_agent is None else agent_file_problem(args.load_agent)
    if problem is not None:
        parser.error(f"--load-agent {args.load_agent}: {problem}; valid: an agent.zip saved by this CLI")
    if args.no_learn and args.resume is not None:
        parser.error("--resume continues learning runs; --no-learn runs are not checkpointed")
    for flag, value, low in (("--checkpoint-every", args.checkpoint_every, 0), ("--keep-checkpoints", args.keep_checkpoints, 1)):
        if value < low:
            parser.error(f"{flag}={value} is invalid; valid: an integer >= {low}")
    out: Path = args.out or Path("runs") / f"{args.env}_{args.algo}_s{args.seed}"
    checkpoints = CheckpointDir(out / "checkpoints", keep=args.keep_checkpoints)
    if args.resume is None and not args.no_learn and checkpoints.steps():
        parser.error(f"{out} holds checkpoints of an unfinished run; continue it with --resume {out}, "
                     f"or pick another --out (or delete {checkpoints.folder} to start over)")
    try:
        overrides = parse_overrides(args.hyperparams)
        env_options = env_kwargs(args)
        env = RunEndResults(gym.make(args.env, **env_options))
        hyperparams = load_hyperparams(args.algo, args.env)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    mode = args.mode or preset_mode(hyperparams)
    try:
        agent = make_agent(args.algo, env, mode, seed=args.seed, device=args.agent_device,
                           tensorboard_log=None if args.no_learn else str(out / "tb"), **overrides)
    except (TypeError, ValueError, ZeroDivisionError, AssertionError) as err:
        if not overrides:  # the presets always build: anything else is a bug, and its traceback is wanted
            raise
        # SB3 checks its arguments as it uses them, with whatever exception comes first
        parser.error(f"--hyperparams {' '.join(args.hyperparams)}: {type(err).__name__}: {err}")
    if args.load_agent is not None:
        try:
            agent.set_parameters(str(args.load_agent), exact_match=True, device=args.agent_device)
        except (RuntimeError, ValueError) as err:
            parser.error(f"--load-agent {args.load_agent}: its policy does not fit {args.env} with these options "
                         f"(observation {env.observation_space.shape}): {err}")
    base = env.unwrapped
    steps = episode_steps(env)
    if steps is None:
        parser.error(f"{args.env} does not report episode_steps, so one run's length is unknown")
    num_envs = agent.get_env().num_envs
    config = {"command": shlex.join([sys.executable, "-m", "experiments.train", *argv]), "argv": argv,
              "env": args.env, "env_kwargs": env_options, "algo": args.algo, "mode": mode, "seed": args.seed,
              "agent_device": args.agent_device, "hyperparams": hyperparams, "overrides": overrides,
              "effective": {"n_steps": agent.n_steps, "num_envs": num_envs, "episode_steps": steps,
                            **({"batch_size": agent.batch_size} if hasattr(agent, "batch_size") else {})},
              "load_agent": None if args.load_agent is None else str(args.load_agent), "no_learn": args.no_learn,
              "reference": args.reference}
    identity = checkpoint_identity(config)
    out.mkdir(parents=True, exist_ok=True)
    if args.resume is None:
        replaced = clear_earlier_run(out)
        if replaced:
            print(f"note: {out} held an earlier run; this run replaces its {', '.join(replaced)}", file=sys.stderr)
        (out / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    tracker = RunTracker(steps, f"{args.env}/{args.algo} {args.dataset}/{args.model}", not args.no_progress)
    checkpointer = RunCheckpointer(checkpoints, identity, env, tracker, args.checkpoint_every)
    agent_done = out / "agent_run.json"  # the agent run's results, once it has finished
    finished = args.resume is not None and agent_done.is_file()
    if args.resume is not None and not finished:
        latest = checkpoints.latest()
        if latest is None:
            parser.error(f"--resume {out}: no checkpoint in {checkpoints.folder}; the run stopped before its first one")
        checkpointer.init_callback(agent)
        try:
            checkpointer.restore(load_checkpoint(latest, identity))
        except CheckpointError as err:
            parser.error(f"--resume {out}: {err}")
        print(f"resuming {out} from {latest.name} (epoch {base.trainer.epoch}, "
              f"{agent.num_timesteps // num_envs} of {steps} steps)", file=sys.stderr)

    try:
        if finished:
            result = json.loads(agent_done.read_text())
            print(f"resuming {out}: the agent run has finished; continuing its full-data reference", file=sys.stderr)
        else:
            result = run_agent(agent, checkpointer, tracker, args, out)
            write_json(agent_done, result)
        if args.reference == "full":
            result["reference"] = run_reference(args, out, checkpoints)
    except RunInterrupted as stop:
        print(f"{stop}; continue with: python -m experiments.train --resume {out}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    except torch.cuda.OutOfMemoryError:
        parser.exit(1, f"error: out of GPU memory on {base.device} with --batch-size {args.batch_size}: use a smaller "
                       "--batch-size (or --amp). Checkpoints of this run keep its batch size, so start a new run "
                       "(another --out) rather than --resume.\n")
    write_json(out / "metrics.json", result)
    # finished: nothing left to resume, and the same --out may start a new run
    shutil.rmtree(checkpoints.folder, ignore_errors=True)
    agent_done.unlink(missing_ok=True)
    if not quiet:
        print_results(args, mode, base, result, out)
    return result


def print_results(args: argparse.Namespace, mode: str, base: gym.Env, result: dict[str, Any], out: Path) -> None:
    """The run's results, as the README shows them."""
    run = result["run"]
    print(f"{args.env} / {args.algo} ({mode}{', no learning' if args.no_learn else ''}) on {args.dataset}/{args.model}, "
          f"{args.epochs} epochs, {base.num_samples} training samples, seed {args.seed}, {base.device}")
    print(format_run("agent run", run))
    reference = result.get("reference")
    if reference is not None:
        print(format_run("full data", reference) if "test" in reference else f"  full data  {reference['error']}")
    if "error" in run:
        print(f"  warning: {run['error']}")
    if "coreset" in result:
        c = result["coreset"]
        print(f"  coreset    {c['size']} samples ({c['ratio']:.1%}) -> {c['path']}")
    print(f"  saved to   {out}/ ({'' if args.no_learn else 'agent.zip, tb/, '}config.yml, metrics.json, scores.npy)")


if __name__ == "__main__":
    main()
