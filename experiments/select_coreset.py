"""Select a static coreset without RL and save it in the ``--out`` folder (``coreset.npy`` + ``coreset.json``).

    python -m experiments.select_coreset --method cover --dataset digits --model mlp --epochs 5 --keep-ratio 0.5
    python -m experiments.select_coreset --method random --dataset digits --keep-ratio 0.5

Methods:

``cover``   RL-Selector's "w/o RL" ablation: train ``--model`` on all data for ``--epochs`` epochs,
            embed every training sample, and keep in every class the samples with the smallest
            ε-cover degree (proportional to class size), ``--keep-ratio`` of the training set
            (:func:`envs.methods.coreset.select_by_cover_degree`).
``random``  a uniform random subset of the same size (no training).

The dataset (``--train-size`` subset, label noise) is drawn with ``--data-seed``, recorded in the
JSON so that ``python -m experiments.evaluate_coreset --coreset <out>`` rebuilds the same training set.
The RL-driven selection (``CoverSelect-v0`` with an agent) has its own CLI beside the agents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from envs.methods.coreset import save_coreset
from experiments.cli import add_output_arguments, add_trainer_arguments, console_script, make_parser, trainer_config
from experiments.run.coresets import METHODS, make_coreset


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
