"""Train a fresh model on a saved coreset and report its test accuracy and cost.

    python -m experiments.evaluate_coreset --coreset coresets/digits-cover-r0.5-s0 --model cnn --epochs 10
    python -m experiments.evaluate_coreset --coreset coresets/digits-cover-r0.5-s0 --model cnn --random

The training set is rebuilt from the coreset's JSON (dataset, train_size, data_seed, label noise),
so a selection made with a small model can be judged on any registered model. Training uses the
shared :class:`~envs.core.trainer.Trainer` (``train_epoch`` on the coreset's indices), the same recipe
as ``experiments.full_data``. ``--random`` trains instead on a uniform random subset of the same
size (seeded by ``--seed``), the static Random baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envs.core.trainer import Trainer, TrainerConfig, resolve_device
from envs.methods.coreset import load_coreset_data, random_coreset, train_and_evaluate
from experiments.cli import (add_coreset_arguments, add_output_arguments, console_script, make_parser, output_folder,
                             report_training,
                             trainer_config)


def evaluate_coreset(coreset: str | Path, model: str = "cnn", *, seed: int = 0, random: bool = False,
                     device: str = "auto", root: str | None = None, progress: bool = True,
                     **trainer_opts: Any) -> dict[str, Any]:
    """Train ``model`` on the coreset (or a same-size random subset) and return test metrics and the ledger."""
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_opts)
    config.validate()
    indices, meta, data = load_coreset_data(coreset, dev, root)
    if random:
        indices = random_coreset(data.num_train, len(indices), seed)
    trainer = Trainer(data, model, config, seed=seed, track_samples=False)
    run = train_and_evaluate(trainer, indices, progress=progress, desc=f"coreset {meta['dataset']}/{model}")
    return {
        "coreset": str(coreset), "selection": "random" if random else meta.get("method"),
        "selection_meta": meta, "model": model, "seed": seed, "device": str(dev), "size": len(indices),
        "num_train": data.num_train, "fraction": len(indices) / data.num_train, "trainer": config.as_dict(), **run,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    add_coreset_arguments(parser, "train on a random subset of the same size instead (seeded by --seed)")
    add_output_arguments(parser, None, "metrics.json, the result (default: none written)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, None, ("metrics.json",))
    try:
        result = evaluate_coreset(args.coreset, args.model, seed=args.seed, random=args.random, device=args.device,
                                  root=args.data_root, progress=not args.no_progress, **trainer_config(args).as_dict())
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    t = result["test"]
    return report_training(result, f"{result['selection']} coreset of {result['selection_meta']['dataset']} "
                                   f"({result['size']} of {result['num_train']} samples, {result['fraction']:.1%}), "
                                   f"{args.model} for {args.epochs} epochs ({result['device']}): test top-1 "
                                   f"{t['top1']:.2f}%, top-5 {t['top5']:.2f}%, loss {t['loss']:.4f}", out)


cli = console_script(main)

if __name__ == "__main__":
    main()
