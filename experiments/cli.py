"""Command-line options shared by every experiment, and how every CLI's help reads.

Why: the same flag must mean the same thing, with the same default, in every CLI (``full_data``,
``train``, ``benchmark``, ``evaluate_coreset``...), so they are declared once here. The inner-training
options are built from the fields of :class:`envs.core.trainer.TrainerConfig`, so every CLI takes all of
them with its defaults, and :func:`trainer_config` hands all of them on.

Names, the same in every CLI: ``--keep-ratio`` is the fraction of training samples kept (Data Agent's
kept fraction per pruned epoch, a coreset's size; ``--keep-ratios`` where a CLI takes several);
``--prune-ratio`` is InfoBatch's own parameter, the fraction of below-mean samples it prunes;
``--anneal`` the fraction of epochs with selection; ``--data-root`` the dataset's folder; ``--out``
always a folder; ``--no-progress`` turns progress bars off.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable

from envs.core.data import DataConfig
from envs.core.files import write_json
from envs.core.ledger import format_ledger
from envs.core.models import MODEL_NAMES
from envs.core.schedules import SCHEDULES
from envs.core.text import DEFAULT_SEQ_LEN, DEFAULT_VOCAB_SIZE
from envs.core.tasks import parse_task
from envs.core.trainer import TrainerConfig
from experiments.run.docstrings import param_help, plain
from experiments.run.folders import choose_folder
from experiments.run.ray_tasks import RayOptions


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written (its command examples keep their lines) and each option's default, unless
    its help already says it, or the default is None (the help says what leaving the option out means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        if action.default in (None, argparse.SUPPRESS) or "default" in text or isinstance(action, argparse._StoreConstAction):
            return text
        return f"{text} (default: %(default)s)"


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """The parser of a CLI whose module docstring is ``doc``: plain-text description, defaults shown, and
    ``--no-progress``, which every CLI takes (a script may pass it to any of them; those without bars ignore it)."""
    parser = argparse.ArgumentParser(description=plain(doc or ""), formatter_class=HelpFormatter)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def console_script(main: Callable[[], Any]) -> Callable[[], None]:
    """A ``[project.scripts]`` entry point that runs ``main`` on ``sys.argv``. Why not ``main`` itself: an
    entry point's return value goes to ``sys.exit``, where a returned result would read as an error."""

    def run() -> None:
        main()

    run.__doc__ = main.__doc__
    return run


def seed_value(text: str) -> int:
    """An argparse type: a seed that NumPy, torch and SB3 all accept, in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**32 - 1:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; valid: an integer in [0, 2**32 - 1]")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Which data: dataset, its folder, subset size and task."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="digits",
                   help="digits | synthetic | fashion-mnist | cifar10 | cifar100 | sst2 | agnews | imagefolder:<path>")
    add_data_root_argument(g)
    g.add_argument("--train-size", type=int, default=None, help="stratified subset of the training set (default: all)")
    g.add_argument("--task", type=task_spec, default="clean",
                   help="the data problem (docs/tasks.md): clean | noisy[:sym|asym][:rate] | redundant[:fraction][:exact] "
                        "| imbalanced[:factor] | mixed")
    g.add_argument("--holdout", type=float, default=None,
                   help="hold out this class-stratified fraction of the training set, in (0, 0.5], never trained on "
                        "(a reference model's data, docs/learnability.md)")
    g.add_argument("--trusted", action="store_true", help="the holdout keeps clean labels")
    g.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="text data: the subword tokenizer's vocabulary")
    g.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN, help="text data: token ids per sample (padded or truncated)")


def task_spec(text: str) -> str:
    """An argparse type: a task spec (:func:`envs.core.tasks.parse_task`), refused with its one-line error."""
    try:
        parse_task(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def add_data_root_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--data-root``, for CLIs that read the dataset's name from elsewhere (a saved coreset)."""
    parser.add_argument("--data-root", default=None, help="folder holding the dataset's files (file-backed datasets)")


def add_trainer_config_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One option per :class:`TrainerConfig` field, its default and help from the dataclass
    (``--flag/--no-flag`` for the switches)."""
    helps = param_help(TrainerConfig)
    for f in dataclasses.fields(TrainerConfig):
        flag, default = f"--{f.name.replace('_', '-')}", f.default
        if isinstance(default, bool) or f.name == "augment":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=helps[f.name])
        elif f.name == "schedule":
            parser.add_argument(flag, choices=SCHEDULES, default=default, help=helps[f.name])
        else:
            parser.add_argument(flag, type=type(default), default=default, help=helps[f.name])


def add_training_arguments(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """How the inner model trains: model, every :class:`TrainerConfig` option, device and (``seed``) ``--seed``.

    CLIs that run several seeds pass ``seed=False`` and declare ``--seeds`` themselves
    (:func:`add_seeds_argument`), so that no accepted ``--seed`` is silently ignored."""
    g = parser.add_argument_group("inner training")
    g.add_argument("--model", default="cnn", choices=MODEL_NAMES, help="the inner model")
    add_trainer_config_arguments(g)
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if seed:
        g.add_argument("--seed", type=seed_value, default=0, help="seeds the inner model (and the agent)")


def add_trainer_arguments(parser: argparse.ArgumentParser, seed: bool = True) -> None:
    """Data and training options together."""
    add_data_arguments(parser)
    add_training_arguments(parser, seed)


def add_seeds_argument(parser: argparse.ArgumentParser, default: list[int]) -> None:
    """``--seeds S [S ...]`` for CLIs that repeat runs over seeds; ``--seed S`` is the same option."""
    parser.add_argument("--seeds", "--seed", type=seed_value, nargs="+", default=default,
                        help="run every configuration with each of these seeds (--seed is an alias)")


def add_output_arguments(parser: argparse.ArgumentParser, default: Path | None, holds: str,
                         overwrite: bool = True) -> argparse._ArgumentGroup:
    """``--out FOLDER`` (``holds``: what the CLI writes there) and ``--overwrite`` (for CLIs whose folder
    :func:`output_folder` chooses; not for those that continue what their folder holds), the same in every CLI;
    returns their group."""
    g = parser.add_argument_group("output")
    g.add_argument("--out", type=Path, default=default, metavar="FOLDER", help=f"output folder: {holds}")
    if overwrite:
        g.add_argument("--overwrite", action="store_true",
                       help="replace an earlier run's results in --out (without it, a named --out holding results is "
                            "refused and a default one gives way to <folder>_1, _2...)")
    return g


def output_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, default: Path | None,
                  outputs: tuple[str, ...], what: str = "run") -> Path | None:
    """The folder this CLI writes ``outputs`` to (:func:`~experiments.run.folders.choose_folder`, with ``--out``,
    ``--overwrite`` and the CLI's ``default``; None when neither is set: nothing written), or the parser's error.

    :param default: the CLI's default folder (None: results are written only to a named ``--out``)
    :param outputs: the names the CLI writes into the folder
    :param what: what the folder holds, for the messages
    """
    if args.out is None and default is None:
        return None
    try:
        return choose_folder(args.out, default if args.out is None else args.out, outputs, overwrite=args.overwrite,
                             what=what)
    except ValueError as err:
        parser.error(str(err))


def add_coreset_arguments(parser: argparse.ArgumentParser, random_help: str) -> None:
    """What the coreset CLIs read: the saved coreset, ``--random`` (``random_help``: what it does there),
    the data folder and the training options of the model trained on the coreset's data."""
    parser.add_argument("--coreset", type=coreset_path, required=True,
                        help="the saved coreset: its folder, path prefix, or its .npy or .json file")
    parser.add_argument("--random", action="store_true", help=random_help)
    add_data_root_argument(parser)
    add_training_arguments(parser)


def report_training(result: dict[str, Any], summary: str, out: Path | None) -> dict[str, Any]:
    """Print a training's ``summary`` line and its ledger, write ``result`` to ``out/metrics.json``
    (when ``out`` is given) and return it: the end of the CLIs that train one model."""
    print(summary)
    print("ledger:", format_ledger(result["ledger"]))
    write_json(None if out is None else out / "metrics.json", result)
    return result


def coreset_path(text: str) -> Path:
    """An argparse type: a saved coreset given as its folder (holding ``coreset.npy`` + ``.json``), its
    path prefix or either file; a folder becomes its ``coreset`` prefix."""
    path = Path(text)
    return path / "coreset" if path.is_dir() else path


def trainer_config(args: argparse.Namespace) -> TrainerConfig:
    """The :class:`TrainerConfig` of parsed arguments: every field, none left at a default the user changed."""
    return TrainerConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainerConfig)})


def data_config(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` of parsed data arguments (:func:`add_data_arguments`); the seed is the run's."""
    return DataConfig(train_size=args.train_size, task=args.task, root=args.data_root, holdout=args.holdout,
                      trusted=args.trusted, vocab_size=args.vocab_size, seq_len=args.seq_len)


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ray``, ``--ray-cpus`` and ``--ray-retries``."""
    g = parser.add_argument_group("Ray (each run a task on a local instance or a cluster)")
    g.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="run each run as a Ray task: local (a private instance), auto (the cluster this machine "
                        "joined with `ray start`) or a cluster's HOST:PORT; default: one run after another in this process")
    g.add_argument("--ray-cpus", type=int, default=1, help="CPU threads per run (a --device cuda run also gets 1 GPU)")
    g.add_argument("--ray-retries", type=int, default=2, help="restarts of a run whose worker died")


def ray_options(args: argparse.Namespace) -> RayOptions | None:
    """The parsed ``--ray`` options (None without ``--ray``); raises ``ValueError`` on bad values."""
    if args.ray is None:
        return None
    options = RayOptions(args.ray, args.device, args.ray_cpus, args.ray_retries)
    options.validate()
    return options
