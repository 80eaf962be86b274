"""Train an SB3 agent and the inner model together: one episode of the env is one training run.

    python -m experiments.train                                   # DataAgent-v0 + PPO on digits, 10 epochs
    python -m experiments.train --env CoverSelect-v0 --algo a2c --keep-ratio 0.3
    python -m experiments.train --mode per_sample --epochs 30 --out runs/da
    python -m experiments.train --load-agent runs/da/agent.zip --no-learn --seed 1   # reuse a trained policy
    python -m experiments.train --resume runs/da                  # continue a killed or interrupted run

This CLI parses its options into an experiments.run.RunConfig and runs it with experiments.run.run_training
(the run library; call it from Python the same way). Agent hyper-parameters come from
agents/hyperparams/{algo}.yml, RL Zoo files (--hyperparams key=value overrides them). The run writes to the
--out folder: the agent (agent.zip, SB3 format), config.yml, metrics.json, scores.npy, TensorBoard logs (tb/)
and, for CoverSelect-v0, the coreset (coreset.npy + coreset.json). With --reference full a full-data run of
the same dataset, model, seed and trainer options is the yardstick for accuracy and cost. --load-agent starts
from a saved agent (its policy must fit the env's state_dim: --state signals makes Data Agent's state
model-agnostic); with --no-learn the policy only acts.

Long runs survive: the whole run (inner model, optimizer, schedule position, sample statistics, scores,
selection state, RNG states, ledger, the SB3 agent and its rollout position) is saved to --out/checkpoints
every --checkpoint-every epochs at the next rollout boundary, and when SIGTERM or SIGINT arrives (at the end
of the current rollout; a second signal stops at once). Only the last --keep-checkpoints are kept; writes are
atomic. --resume DIR continues the newest one with the options recorded in DIR/config.yml, and on CPU ends
exactly as the uninterrupted run would (same accuracy, scores and ledger counts). The full-data reference run
is checkpointed per epoch in checkpoints/reference. --no-learn runs are not checkpointed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from agents import ALGOS, MODES
from envs.cover_rewards import COVER_REWARDS
from envs.cover_select import DEGREE_NORMS
from envs.distributed import is_leader
from envs.rewards import DATA_AGENT_REWARDS, REWARD_BASELINES
from envs.selection import SELECTIONS
from experiments.cli import (add_output_arguments, add_trainer_arguments, console_script, data_config, make_parser,
                             trainer_config)
from experiments.run import ALL_ENV_OPTIONS, ENV_IDS, RunConfig, RunInterrupted, RunResult, load_run_config, run_training
from experiments.run.training import resume_command

OUTPUTS = "agent.zip, config.yml, metrics.json, scores.npy, tb/, checkpoints/ while unfinished, coreset.npy + .json " \
          "(CoverSelect-v0)"


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    g = parser.add_argument_group("agent")
    g.add_argument("--env", choices=ENV_IDS, default="DataAgent-v0", help="the environment")
    g.add_argument("--algo", choices=tuple(ALGOS), default="ppo", help="the SB3 algorithm")
    g.add_argument("--mode", choices=MODES, default=None, help="agent layout (default: the preset's)")
    g.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override preset SB3 arguments, values read as YAML")
    g.add_argument("--agent-device", default="cpu", help="device of the agent's networks")
    g.add_argument("--load-agent", type=Path, default=None, help="start from this saved agent (.zip)")
    g.add_argument("--no-learn", action="store_true", help="with --load-agent: act with the policy, no updates")
    add_trainer_arguments(parser)
    s = parser.add_argument_group("selection (both envs)")
    s.add_argument("--keep-ratio", type=float, default=None,
                   help="fraction of training samples kept: per pruned epoch (DataAgent-v0) or the coreset's "
                        "size (CoverSelect-v0) (env default 0.5)")
    s.add_argument("--reward", choices=(*DATA_AGENT_REWARDS, *COVER_REWARDS), default=None,
                   help=f"reward: {' | '.join(DATA_AGENT_REWARDS)} (DataAgent-v0, default composite); "
                        f"{' | '.join(COVER_REWARDS)} (CoverSelect-v0, default cover)")
    e = parser.add_argument_group("DataAgent-v0")
    e.add_argument("--anneal", type=float, default=None, help="fraction of epochs with selection (env default 0.875)")
    e.add_argument("--state", choices=("features", "signals", "both"), default=None,
                   help="agent state (env default features)")
    e.add_argument("--reward-baseline", choices=REWARD_BASELINES, default=None,
                   help="subtracted from the reward signal: none (the paper's), batch_mean, keep_quantile (env default none)")
    e.add_argument("--selection", choices=SELECTIONS, default=None,
                   help="kept set from the scores: topk (the paper's), soft (a score-weighted draw) or importance "
                        "(keep probability from the score, 1/probability weights) (env default topk)")
    e.add_argument("--refresh", type=float, default=None,
                   help="share of each pruned epoch's budget re-admitted at random from the left-out samples (env default 0)")
    e.add_argument("--temperature", type=float, default=None, help="soft selection's temperature (env default 1)")
    c = parser.add_argument_group("CoverSelect-v0")
    c.add_argument("--epsilon", default=None, help="ε rule: mean | median | quantile:<q> | <float> (env default mean)")
    c.add_argument("--train-on", choices=("all", "selected"), default=None,
                   help="selection-model training data (env default all)")
    c.add_argument("--ratio-scale", type=float, default=None, help="weight of the ratio reward (env default 1)")
    c.add_argument("--degree-norm", choices=DEGREE_NORMS, default=None,
                   help="ε-cover degrees as they are (none, env default) or ranked within their class (rank)")
    c.add_argument("--class-budget", action="store_true", default=None,
                   help="the coreset keeps the class proportions (the top scores of each class)")
    o = add_output_arguments(parser, None, f"{OUTPUTS} (default: runs/<env>_<algo>_s<seed>)")
    o.add_argument("--reference", choices=("full", "none"), default="full", help="also run full-data training")
    k = parser.add_argument_group("checkpoints")
    k.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                   help="save the run every EPOCHS epochs of inner training (0: only on SIGTERM/SIGINT)")
    k.add_argument("--keep-checkpoints", type=int, default=2, metavar="K", help="keep the newest K checkpoints")
    k.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the run saved in DIR (its --out) with the options in DIR/config.yml")
    return parser


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values read as YAML (``n_steps=5``, ``policy_kwargs={net_arch: [64]}``)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--hyperparams {pair!r} is invalid; valid: key=value")
        out[key] = yaml.safe_load(value)
    return out


def run_config(args: argparse.Namespace) -> RunConfig:
    """The :class:`RunConfig` of parsed arguments (``ValueError`` for a bad ``--hyperparams`` pair)."""
    return RunConfig(env=args.env, algo=args.algo, mode=args.mode, seed=args.seed, dataset=args.dataset,
                     data=data_config(args), model=args.model, device=args.device, trainer=trainer_config(args),
                     env_options={name: getattr(args, name) for name in ALL_ENV_OPTIONS if getattr(args, name) is not None},
                     hyperparams=parse_overrides(args.hyperparams), agent_device=args.agent_device,
                     load_agent=args.load_agent, no_learn=args.no_learn, reference=args.reference == "full",
                     out=args.out, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                     progress=not args.no_progress)


def resume_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """With ``--resume DIR`` alone (or with ``--no-progress``), the configuration recorded in ``DIR/config.yml``;
    with further options, those (the checkpoint then refuses to load if they describe another run)."""
    folder: Path = args.resume
    try:
        recorded = load_run_config(folder)
    except FileNotFoundError as err:
        parser.error(f"--resume {folder}: {err}")
    alone = vars(parser.parse_args(["--resume", str(folder)] + (["--no-progress"] if args.no_progress else [])))
    if alone == vars(args):
        recorded.progress = not args.no_progress
        return recorded
    if args.out is not None and args.out.resolve() != folder.resolve():
        parser.error(f"--out {args.out} differs from --resume {folder}; a run continues in its own folder")
    args.out = folder
    return run_config(args)


def main(argv: list[str] | None = None, *, quiet: bool = False) -> dict[str, Any]:
    """Run the CLI on ``argv`` (``sys.argv[1:]`` when None) and return what ``metrics.json`` holds.

    :param argv: command-line arguments
    :param quiet: print no results
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = run_config(args) if args.resume is None else resume_config(parser, args)
        result = run_training(config, resume=args.resume is not None)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    except RunInterrupted as stop:
        print(f"{stop}; continue with: {resume_command(config.folder)}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    except torch.cuda.OutOfMemoryError:
        parser.exit(1, f"error: out of GPU memory on {config.device} with --batch-size {config.trainer.batch_size}: use "
                       "a smaller --batch-size (or --amp). Checkpoints of this run keep its batch size, so start a new "
                       "run (another --out) rather than --resume.\n")
    if not quiet and is_leader():  # under torchrun, rank 0 speaks for the run
        print_results(result)
    return result.metrics


def format_run(name: str, run: dict[str, Any]) -> str:
    """One line of a run's results: test metrics, back-propagated samples and wall-clock."""
    t, l = run["test"], run["ledger"]
    return (f"  {name:<10} test top-1 {t['top1']:6.2f}%  top-5 {t['top5']:6.2f}%  loss {t['loss']:.3f} | "
            f"back-propagated {l['samples_backpropagated']:,} ({run['backprop_fraction']:.1%} of full data) | "
            f"wall {run['wall_seconds']:.1f}s (train {l['train_seconds']:.1f}s, overhead {l['overhead_seconds']:.1f}s)")


def print_results(result: RunResult) -> None:
    """The run's results, as the README shows them."""
    c, metrics, run = result.config, result.metrics, result.metrics["run"]
    print(f"{c.env} / {c.algo} ({result.mode}{', no learning' if c.no_learn else ''}) on {c.dataset}/{c.model}, "
          f"{c.trainer.epochs} epochs, {result.num_samples} training samples, seed {c.seed}, {result.device}")
    print(format_run("agent run", run))
    reference = metrics.get("reference")
    if reference is not None:
        print(format_run("full data", reference) if "test" in reference else f"  full data  {reference['error']}")
    if "error" in run:
        print(f"  warning: {run['error']}")
    if "coreset" in metrics:
        s = metrics["coreset"]
        print(f"  coreset    {s['size']} samples ({s['ratio']:.1%}) -> {s['path']}")
    print(f"  saved to   {result.folder}/ ({'' if c.no_learn else 'agent.zip, tb/, '}config.yml, metrics.json, scores.npy)")


cli = console_script(main)

if __name__ == "__main__":
    main()
