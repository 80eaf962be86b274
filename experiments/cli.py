"""Command-line options shared by every experiment that trains an inner model.

Why: the same flag must mean the same thing in every CLI (``full_data``, ``train``, ``benchmark``,
``evaluate_coreset``...), so they are declared once here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from envs.files import atomic_write
from envs.models import MODEL_NAMES
from envs.schedules import SCHEDULES
from envs.trainer import TrainerConfig


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
    """Which data: dataset, its folder, subset size and label noise."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="digits", help="digits | synthetic | fashion-mnist | cifar10 | cifar100 | imagefolder:<path>")
    g.add_argument("--data-root", default=None, help="folder holding the dataset's files (file-backed datasets)")
    g.add_argument("--train-size", type=int, default=None, help="stratified subset of the training set")
    g.add_argument("--noise", choices=("symmetric", "asymmetric"), default=None, help="label noise type")
    g.add_argument("--noise-rate", type=float, default=0.0)


def add_training_arguments(parser: argparse.ArgumentParser, model: str = "cnn", seed: bool = True) -> None:
    """How the inner model trains: model, epochs, optimizer, schedule, device and (``seed``) one ``--seed``.

    CLIs that run several seeds pass ``seed=False`` and declare ``--seeds`` themselves
    (:func:`add_seeds_argument`), so that no accepted ``--seed`` is silently ignored."""
    d = TrainerConfig()
    g = parser.add_argument_group("inner training")
    g.add_argument("--model", default=model, choices=MODEL_NAMES)
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    g.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if seed:
        g.add_argument("--seed", type=seed_value, default=0)


def add_trainer_arguments(parser: argparse.ArgumentParser, model: str = "cnn", seed: bool = True) -> None:
    """Data and training options together."""
    add_data_arguments(parser)
    add_training_arguments(parser, model, seed)


def add_seeds_argument(parser: argparse.ArgumentParser, default: list[int]) -> None:
    """``--seeds S [S ...]`` for CLIs that repeat runs over seeds; ``--seed S`` is the same option."""
    parser.add_argument("--seeds", "--seed", type=seed_value, nargs="+", default=default,
                        help="run every configuration with each of these seeds (--seed is an alias)")


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~envs.trainer.TrainerConfig` keywords of parsed arguments."""
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, amp=args.amp)


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file + rename); nothing when ``path`` is None."""
    if path is None:
        return
    text = json.dumps(data, indent=2, default=str).encode()
    atomic_write(path, lambda f: f.write(text))
