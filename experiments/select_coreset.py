"""Select a static coreset without RL and save it in the ``--out`` folder (``coreset.npy`` + ``coreset.json``).

    python -m experiments.select_coreset --method cover --dataset digits --model mlp --epochs 5 --keep-ratio 0.5
    python -m experiments.select_coreset --method random --dataset digits --keep-ratio 0.5

Methods:

``cover``   RL-Selector's "w/o RL" ablation: train ``--model`` on all data for ``--epochs`` epochs,
            embed every training sample, and keep in every class the samples with the smallest
            ε-cover degree (proportional to class size), ``--keep-ratio`` of the training set
            (:func:`envs.coreset.select_by_cover_degree`).
``random``  a uniform random subset of the same size (no training).

The dataset (``--train-size`` subset, label noise) is drawn with ``--data-seed``, recorded in the
JSON so that ``python -m experiments.evaluate_coreset --coreset <out>`` rebuilds the same training set.
The RL-driven selection (``CoverSelect-v0`` with an agent) has its own CLI beside the agents.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from envs.coreset import coreset_target_size, random_coreset, save_coreset, select_by_cover_degree, train_and_evaluate
from envs.data import load_dataset
from envs.trainer import Trainer, TrainerConfig, resolve_device
from experiments.cli import add_output_arguments, add_trainer_arguments, console_script, make_parser, trainer_config

METHODS = ("cover", "random")


def make_coreset(method: str = "cover", dataset: str = "digits", model: str = "mlp", *, keep_ratio: float = 0.5,
                   epsilon: str | float = "mean", seed: int = 0, data_seed: int = 0, device: str = "auto",
                   train_size: int | None = None, noise: str | None = None, noise_rate: float = 0.0,
                   root: str | None = None, progress: bool = True, **trainer_opts: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Load the data, run a non-RL selection (pre-training the model first for ``cover``) and return the
    coreset's indices and the metadata to save with them. (Not :func:`envs.baselines.static.select_coreset`,
    which selects from scores already computed.)"""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(METHODS)}")
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_opts)
    config.validate()
    data = load_dataset(dataset, device=dev, train_size=train_size, noise=noise, noise_rate=noise_rate,
                        seed=data_seed, root=root)
    meta: dict[str, Any] = {
        "method": method, "dataset": dataset, "num_train": data.num_train, "train_size": train_size,
        "data_seed": data_seed, "noise": noise, "noise_rate": noise_rate, "ratio": keep_ratio, "seed": seed,
    }
    start = time.perf_counter()
    if method == "random":
        indices = random_coreset(data.num_train, coreset_target_size(data.num_train, keep_ratio), seed)
    else:
        trainer = Trainer(data, model, config, seed=seed, track_samples=False)
        pretrained = train_and_evaluate(trainer, progress=progress, desc=f"pre-training {dataset}/{model}")
        indices, _ = select_by_cover_degree(trainer, keep_ratio, epsilon, seed=seed)
        meta.update(model=model, epsilon=str(epsilon), trainer=config.as_dict(), selector_test=pretrained["test"],
                    ledger=trainer.ledger.as_dict())
    meta["wall_seconds"] = time.perf_counter() - start
    return indices, meta


def main(argv: list[str] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser)
    g = parser.add_argument_group("selection")
    g.add_argument("--method", choices=METHODS, default="cover", help="how the coreset is chosen")
    g.add_argument("--keep-ratio", type=float, default=0.5, help="the coreset's fraction of the training set, in (0, 1)")
    g.add_argument("--epsilon", default="mean", help="mean | median | quantile:<q> | a float > 0 (cover only)")
    g.add_argument("--data-seed", type=int, default=0, help="seeds the --train-size subset and label noise")
    add_output_arguments(parser, None, "coreset.npy + coreset.json (default: "
                                       "coresets/<dataset>-<method>-r<keep-ratio>-s<seed>)")
    args = parser.parse_args(argv)
    try:
        epsilon: str | float = float(args.epsilon)
    except ValueError:
        epsilon = args.epsilon
    try:
        indices, meta = make_coreset(args.method, args.dataset, args.model, keep_ratio=args.keep_ratio, epsilon=epsilon,
                                       seed=args.seed, data_seed=args.data_seed, device=args.device,
                                       train_size=args.train_size, noise=args.noise, noise_rate=args.noise_rate,
                                       root=args.data_root, progress=not args.no_progress, **trainer_config(args).as_dict())
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    name = args.dataset.replace(":", "_").replace("/", "_")
    out = args.out or Path("coresets") / f"{name}-{args.method}-r{args.keep_ratio}-s{args.seed}"
    npy, js = save_coreset(out / "coreset", indices, meta)
    print(f"{args.method} coreset of {args.dataset}: {len(indices)} of {meta['num_train']} samples "
          f"({len(indices) / meta['num_train']:.2%}, target {args.keep_ratio:.0%}) in {meta['wall_seconds']:.1f}s")
    if "selector_test" in meta:
        print(f"selector model {args.model} after {args.epochs} epochs: test top-1 {meta['selector_test']['top1']:.2f}%")
    print(f"saved {npy} and {js}")
    return indices, meta


cli = console_script(main)

if __name__ == "__main__":
    main()
