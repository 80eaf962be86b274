"""The train CLI's options and how they become a :class:`~experiments.run.RunConfig`.

Why a module of its own: ``experiments.train`` and ``experiments.tune`` (which runs the train options in every trial)
parse the same options, and one CLI never imports another.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from agents import ALGOS, LAYOUTS
from envs.core.reference import REFERENCE_KINDS
from experiments.cli import add_output_arguments, add_trainer_arguments, data_config, make_parser, trainer_config
from experiments.run import ALL_ENV_OPTIONS, ENV_IDS, RunConfig, load_run_config
from experiments.run.env_options import EnvOption, env_options

OUTPUTS = "agent.zip, config.yml, metrics.json, scores.npy, tb/, checkpoints/ while unfinished, coreset.npy + .json " \
          "(CoverSelect-v0)"


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """The train CLI's parser (``doc``: the help's description)."""
    parser = make_parser(doc)
    g = parser.add_argument_group("agent")
    g.add_argument("--env", choices=ENV_IDS, default="DataAgent-v0", help="the environment")
    g.add_argument("--algo", choices=tuple(ALGOS), default="ppo", help="the SB3 algorithm")
    g.add_argument("--layout", choices=LAYOUTS, default=None, help="agent layout (default: the preset's)")
    g.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override preset SB3 arguments, values read as YAML")
    g.add_argument("--agent-device", default="cpu", help="device of the agent's networks")
    g.add_argument("--load-agent", type=Path, default=None, help="start from this saved agent (.zip)")
    g.add_argument("--no-learn", action="store_true", help="with --load-agent: act with the policy, no updates")
    add_trainer_arguments(parser)
    s = add_env_arguments(parser)
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


#: env options with a flag of their own elsewhere: ``reference`` is ``--reference-model``
OWN_FLAGS = ("reference",)


def _describe(option: EnvOption) -> str:
    default = "" if option.default is None else f" (default {option.default})"
    return f"{option.help}{default}"


def add_env_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """One flag per env method option, generated from the envs' constructors (:mod:`experiments.run.env_options`):
    options of both envs in one group, each env's own in its group. Every flag defaults to None, which leaves the
    env's default; returns the group of shared options."""
    per_env = {env_id: env_options(env_id) for env_id in ENV_IDS}
    groups = {"both": parser.add_argument_group("selection (both envs)"),
              **{env_id: parser.add_argument_group(env_id) for env_id in ENV_IDS}}
    for name in ALL_ENV_OPTIONS:
        if name in OWN_FLAGS:
            continue
        owners = {env_id: options[name] for env_id, options in per_env.items() if name in options}
        first = next(iter(owners.values()))
        if len(owners) == 1:
            group, text = groups[next(iter(owners))], _describe(first)
        else:
            group = groups["both"]
            text = "; ".join(f"{env_id}: {_describe(option)}" for env_id, option in owners.items())
        flag = f"--{name.replace('_', '-')}"
        if first.kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        choices = tuple(dict.fromkeys(c for option in owners.values() for c in option.choices or ())) or None
        group.add_argument(flag, type=first.kind, choices=choices, default=None, help=text)
    return groups["both"]


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
    return RunConfig(env=args.env, algo=args.algo, layout=args.layout, seed=args.seed, dataset=args.dataset,
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
