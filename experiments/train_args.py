"""The train CLI's options and how they become a :class:`~experiments.run.RunConfig`.

Why a module of its own: ``experiments.train`` and ``experiments.tune`` (which runs the train options in every trial)
parse the same options, and one CLI never imports another.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from agents import ALGOS, MODES
from envs.core.reference import REFERENCE_KINDS
from envs.cover_select.env import DEGREE_NORMS, DIFFICULTIES
from envs.cover_select.rewards import COVER_REWARDS
from envs.data_agent.env import DATA_AGENT_SELECTIONS
from envs.data_agent.rewards import DATA_AGENT_REWARDS, REWARD_BASELINES
from envs.episode import STATES
from experiments.cli import add_output_arguments, add_trainer_arguments, data_config, make_parser, trainer_config
from experiments.run import ALL_ENV_OPTIONS, ENV_IDS, RunConfig, load_run_config

OUTPUTS = "agent.zip, config.yml, metrics.json, scores.npy, tb/, checkpoints/ while unfinished, coreset.npy + .json " \
          "(CoverSelect-v0)"


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """The train CLI's parser (``doc``: the help's description)."""
    parser = make_parser(doc)
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
    s.add_argument("--state", choices=STATES, default=None,
                   help="agent state (env default features); signals and both gain the reference's columns with "
                        "--reference-model")
    e = parser.add_argument_group("DataAgent-v0")
    e.add_argument("--anneal", type=float, default=None, help="fraction of epochs with selection (env default 0.875)")
    e.add_argument("--reward-baseline", choices=REWARD_BASELINES, default=None,
                   help="subtracted from the reward signal: none (the paper's), batch_mean, keep_quantile (env default none)")
    e.add_argument("--selection", choices=DATA_AGENT_SELECTIONS, default=None,
                   help="kept set from the scores: topk (the paper's), soft (a score-weighted draw) or importance "
                        "(keep probability from the score, 1/probability weights); candidates: per batch, the top "
                        "share of --candidate-factor x the batch trains at once (env default topk)")
    e.add_argument("--refresh", type=float, default=None,
                   help="share of each pruned epoch's budget re-admitted at random from the left-out samples (env default 0)")
    e.add_argument("--temperature", type=float, default=None, help="soft selection's temperature (env default 1)")
    e.add_argument("--loss-weight", type=float, default=None,
                   help="loss weight of the kept samples in pruned epochs (env default 1 / keep ratio)")
    e.add_argument("--candidate-factor", type=float, default=None,
                   help="selection candidates: candidates forwarded per trained sample (env default 2)")
    c = parser.add_argument_group("CoverSelect-v0")
    c.add_argument("--difficulty", choices=DIFFICULTIES, default=None,
                   help="what cover_difficulty reads (env default loss; reducible_loss needs --reference-model)")
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
    s.add_argument("--reference-model", choices=REFERENCE_KINDS, default=None,
                   help="a reference model for the learnability state, rewards and difficulty (holdout needs --holdout; "
                        "docs/learnability.md)")
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
                     env_options={**{name: getattr(args, name) for name in ALL_ENV_OPTIONS
                                     if name != "reference" and getattr(args, name) is not None},
                                  **({"reference": {"kind": args.reference_model}} if args.reference_model else {})},
                     hyperparams=parse_overrides(args.hyperparams), agent_device=args.agent_device,
                     load_agent=args.load_agent, no_learn=args.no_learn, reference=args.reference == "full",
                     out=args.out, overwrite=args.overwrite, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                     progress=not args.no_progress)


def resume_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """With ``--resume DIR`` alone (or with ``--no-progress``), the configuration recorded in ``DIR/config.yml``;
    with further options, those (the checkpoint then refuses to load if they describe another run)."""
    folder: Path = args.resume
    if args.overwrite:
        parser.error(f"--overwrite starts a new run over an earlier one; --resume {folder} continues its run")
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
