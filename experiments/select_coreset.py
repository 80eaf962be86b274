"""Select a static coreset without RL and save it in the ``--out`` folder (``coreset.npy`` + ``coreset.json``).

    python -m experiments.select_coreset --method cover --dataset digits --model mlp --epochs 5 --keep-ratio 0.5
    python -m experiments.select_coreset --method random --dataset digits --keep-ratio 0.5

``--method`` is any registered static method (the benchmark's static suite runs the same ones): ``cover`` is
RL-Selector's "w/o RL" ablation (keep the smallest ε-cover degrees in every class), ``el2n``, ``forgetting``,
``herding``, ``kcenter``, ``ccs``... read one proxy run of ``--model`` trained on all data for ``--epochs`` epochs
(its cost is the coreset's ledger); ``random`` (class-balanced) and ``random_uniform`` train nothing.

The dataset (``--train-size`` subset, label noise) is drawn with ``--data-seed``, recorded in the
JSON so that ``python -m experiments.evaluate_coreset --coreset <out>`` rebuilds the same training set.
The RL-driven selection (``CoverSelect-v0`` with an agent) is ``python -m experiments.train --env CoverSelect-v0``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from envs.methods.coreset import save_coreset
from experiments.cli import (add_output_arguments, add_trainer_arguments, console_script, data_config, make_parser, output_folder, trainer_config)
from experiments.run.coresets import METHODS, make_coreset


def main(argv: list[str] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser)
    g = parser.add_argument_group("selection")
    g.add_argument("--method", choices=METHODS, default="cover", help="how the coreset is chosen")
    g.add_argument("--keep-ratio", type=float, default=0.5, help="the coreset's fraction of the training set, in (0, 1)")
    g.add_argument("--data-seed", type=int, default=0, help="seeds the --train-size subset and the --task")
    add_output_arguments(parser, None, "coreset.npy + coreset.json (default: "
                                       "coresets/<dataset>-<method>-r<keep-ratio>-s<seed>)")
    args = parser.parse_args(argv)
    name = args.dataset.replace(":", "_").replace("/", "_")
    default = Path("coresets") / f"{name}-{args.method}-r{args.keep_ratio}-s{args.seed}"
    out = output_folder(parser, args, default, ("coreset.npy", "coreset.json"), "coreset")
    try:
        indices, meta = make_coreset(args.method, args.dataset, args.model, replace(data_config(args), seed=args.data_seed),
                                     trainer_config(args), keep_ratio=args.keep_ratio, seed=args.seed, device=args.device)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    npy, js = save_coreset(out / "coreset", indices, meta)
    print(f"{args.method} coreset of {args.dataset}: {len(indices)} of {meta['num_train']} samples "
          f"({len(indices) / meta['num_train']:.2%}, target {args.keep_ratio:.0%}) in {meta['wall_seconds']:.1f}s")
    if "model" in meta:
        print(f"proxy run: {args.model}, {meta['score_epochs']} epochs, "
              f"{meta['ledger']['samples_backpropagated']:,} samples back-propagated")
    print(f"saved {npy} and {js}")
    return indices, meta


cli = console_script(main)

if __name__ == "__main__":
    main()
