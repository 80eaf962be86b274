"""Train an SB3 agent and the inner model together: one episode of the env is one training run.

    python -m experiments.train                                   # DataAgent-v0 + PPO on digits, about a minute
    python -m experiments.train --env CoverSelect-v0 --algo a2c --target-ratio 0.3
    python -m experiments.train --mode per_sample --epochs 10 --out runs/da
    python -m experiments.train --load-agent runs/da/agent.zip --no-learn --seed 1   # reuse a trained policy

Agent hyper-parameters come from ``experiments/hyperparams/{algo}.yml`` (``--hyperparams key=value``
overrides them). The run writes to ``--out``: the agent (``agent.zip``, SB3 format), ``config.yml``,
``metrics.json``, TensorBoard logs (``tb/``) and, for ``CoverSelect-v0``, the coreset
(``coreset.npy`` + ``coreset.json``). With ``--reference full`` a full-data run of the same
dataset, model, seed and trainer options (:func:`experiments.full_data.run_full_data`) is the
yardstick for accuracy and cost. ``--load-agent`` starts from a saved agent (its policy must fit
the env's ``state_dim``: ``--state signals`` makes Data Agent's state model-agnostic); with
``--no-learn`` the policy only acts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

import envs  # noqa: F401  (registers the env ids)
from agents import ALGOS, MODES, episode_steps, load_hyperparams, make_agent
from envs.coreset import save_coreset
from experiments.cli import add_trainer_arguments, trainer_options
from experiments.full_data import run_full_data

ENV_IDS = ("DataAgent-v0", "CoverSelect-v0")
ENV_OPTIONS = {  # CLI option -> env keyword, per env
    "DataAgent-v0": ("keep_ratio", "anneal", "state", "reward"),
    "CoverSelect-v0": ("target_ratio", "epsilon", "train_on"),
}


class RunEndResults(gym.Wrapper):
    """Adds what the CLI reports to the info of a run's last step, before a ``VecEnv``'s auto-reset
    replaces the run: the model's test metrics when the env does not report them (CoverSelect-v0's
    selection model) and, for envs that produce one, the coreset and its metadata."""

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            base = self.env.unwrapped
            if "final_test" not in info:
                info["final_test"] = base.trainer.evaluate()
            if callable(getattr(base, "coreset", None)):
                info["coreset"], info["coreset_meta"] = base.coreset(), base.coreset_meta()
        return obs, reward, terminated, truncated, info


class RunTracker:
    """Progress bar, per-step env metrics for SB3's logger, the mean reward of each epoch (the
    agent's learning curve within the run) and the run's last info."""

    LOGGED = ("train_loss", "lambda", "ratio", "lr")

    def __init__(self, total: int, desc: str, progress: bool):
        self.bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
        self.final_info: dict[str, Any] | None = None
        self.epoch_rewards: dict[int, list[float]] = {}

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]], logger: Any = None) -> bool:
        """Account one env step; returns False once the run (episode) has ended."""
        info = infos[0]
        reward = float(np.mean(rewards))
        self.epoch_rewards.setdefault(info.get("epoch", 0), []).append(reward)
        if logger is not None:
            logger.record_mean("env/reward", reward)
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


class RunCallback(BaseCallback):
    """Feeds SB3's rollout steps to a :class:`RunTracker` and stops learning when the run ends."""

    def __init__(self, tracker: RunTracker):
        super().__init__()
        self.tracker = tracker

    def _on_step(self) -> bool:
        return self.tracker.update(self.locals["rewards"], self.locals["dones"], self.locals["infos"], self.logger)


def act_without_learning(agent: BaseAlgorithm, seed: int, tracker: RunTracker) -> None:
    """One run driven by the agent's deterministic policy, with no update."""
    venv = agent.get_env()
    venv.seed(seed)
    obs = venv.reset()
    running = True
    while running:
        action, _ = agent.predict(obs, deterministic=True)
        obs, rewards, dones, infos = venv.step(action)
        running = tracker.update(rewards, dones, infos)


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
    for env_id, names in ENV_OPTIONS.items():
        for name in names:
            value = getattr(args, name)
            if value is None:
                continue
            if env_id != args.env:
                raise ValueError(f"--{name.replace('_', '-')} is an option of {env_id}, not of {args.env}")
            kw[name] = value
    if args.env == "CoverSelect-v0":
        kw["data_seed"] = args.seed  # the same training subset as the full-data reference of this seed
    return kw


def run_summary(info: dict[str, Any], num_samples: int, epochs: int, wall: float) -> dict[str, Any]:
    ledger = info["ledger"]
    return {"test": info["final_test"], "ledger": ledger, "wall_seconds": wall,
            "backprop_fraction": ledger["samples_backpropagated"] / (epochs * num_samples),
            **({"error": info["error"]} if "error" in info else {})}


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
    e.add_argument("--reward", choices=("composite", "loss", "entropy"), default=None, help="reward (env default composite)")
    c = parser.add_argument_group("CoverSelect-v0")
    c.add_argument("--target-ratio", type=float, default=None, help="coreset fraction (env default 0.5)")
    c.add_argument("--epsilon", default=None, help="ε rule: mean | median | quantile:<q> | <float> (env default mean)")
    c.add_argument("--train-on", choices=("all", "selected"), default=None, help="selection-model training data")
    o = parser.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None, help="output folder (default runs/<env>_<algo>_s<seed>)")
    o.add_argument("--reference", choices=("full", "none"), default="full", help="also run full-data training")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_learn and args.load_agent is None:
        parser.error("--no-learn needs --load-agent")
    out: Path = args.out or Path("runs") / f"{args.env}_{args.algo}_s{args.seed}"
    try:
        overrides = parse_overrides(args.hyperparams)
        env_options = env_kwargs(args)
        env = RunEndResults(gym.make(args.env, **env_options))
        hyperparams = load_hyperparams(args.algo, args.env)
        mode = args.mode or hyperparams["mode"]
        agent = make_agent(args.algo, env, mode, seed=args.seed, device=args.agent_device,
                           tensorboard_log=None if args.no_learn else str(out / "tb"), **overrides)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
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
    tracker = RunTracker(steps, f"{args.env}/{args.algo} {args.dataset}/{args.model}", not args.no_progress)

    start = time.perf_counter()
    if args.no_learn:
        act_without_learning(agent, args.seed, tracker)
    else:
        agent.learn(steps * num_envs, callback=RunCallback(tracker), tb_log_name="agent")
    wall = time.perf_counter() - start
    info = tracker.final_info
    run = run_summary(info, base.num_samples, args.epochs, wall)
    run["reward_by_epoch"] = [float(np.mean(r)) for _, r in sorted(tracker.epoch_rewards.items())]

    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"run": run}
    if not args.no_learn:
        for key, value in (("final_top1", run["test"]["top1"]), ("backprop_fraction", run["backprop_fraction"])):
            agent.logger.record(f"run/{key}", value)
        agent.logger.dump(agent.num_timesteps)
        agent.save(out / "agent.zip")
    if "coreset" in info:
        npy, _ = save_coreset(out / "coreset", info["coreset"], info["coreset_meta"])
        result["coreset"] = {"path": str(npy), "size": int(len(info["coreset"])),
                             "ratio": len(info["coreset"]) / base.num_samples}
    if args.reference == "full":
        reference = run_full_data(args.dataset, args.model, seed=args.seed, device=args.device,
                                  train_size=args.train_size, noise=args.noise, noise_rate=args.noise_rate,
                                  root=args.data_root, progress=not args.no_progress, **trainer_options(args))
        result["reference"] = run_summary({"final_test": reference["test"], "ledger": reference["ledger"]},
                                          reference["train_size"], args.epochs, reference["wall_seconds"])
    command = [sys.executable, "-m", "experiments.train", *(argv if argv is not None else sys.argv[1:])]
    config = {"command": shlex.join(command),
              "env": args.env, "env_kwargs": env_options, "algo": args.algo, "mode": mode, "seed": args.seed,
              "agent_device": args.agent_device, "hyperparams": hyperparams, "overrides": overrides,
              "effective": {"n_steps": agent.n_steps, "num_envs": num_envs, "episode_steps": steps,
                            **({"batch_size": agent.batch_size} if hasattr(agent, "batch_size") else {})},
              "load_agent": None if args.load_agent is None else str(args.load_agent), "no_learn": args.no_learn,
              "reference": args.reference}
    (out / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))

    print(f"{args.env} / {args.algo} ({mode}{', no learning' if args.no_learn else ''}) on {args.dataset}/{args.model}, "
          f"{args.epochs} epochs, {base.num_samples} training samples, seed {args.seed}, {base.device}")
    print(format_run("agent run", run))
    if "reference" in result:
        print(format_run("full data", result["reference"]))
    if "error" in run:
        print(f"  warning: {run['error']}")
    if "coreset" in result:
        c = result["coreset"]
        print(f"  coreset    {c['size']} samples ({c['ratio']:.1%}) -> {c['path']}")
    print(f"  saved to   {out}/ ({'' if args.no_learn else 'agent.zip, tb/, '}config.yml, metrics.json)")
    return result


if __name__ == "__main__":
    main()
