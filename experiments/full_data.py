"""Full-data training: the reference every selection method is measured against.

    python -m experiments.full_data --dataset digits --model cnn --epochs 10 --out results/full

Prints test accuracy and the cost ledger; ``--out FOLDER`` saves them as ``FOLDER/metrics.json``.
"""

from __future__ import annotations

from typing import Any

from envs.core.trainer import DivergenceError
from experiments.cli import (add_output_arguments, add_trainer_arguments, console_script, data_config, make_parser,
                             output_folder, report_training, trainer_config)
from experiments.run.full_data import run_full_data


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser)
    add_output_arguments(parser, None, "metrics.json, the result (default: none written)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, None, ("metrics.json",))
    try:
        result = run_full_data(args.dataset, args.model, data_config(args), trainer_config(args), seed=args.seed,
                               device=args.device, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    except DivergenceError as e:  # a result of the options (--lr...), not a crash
        parser.exit(1, f"error: {e}\n")
    t = result["test"]
    return report_training(result, f"{args.dataset}/{args.model}, {args.epochs} epochs on {result['train_size']} samples "
                                   f"({result['device']}): test top-1 {t['top1']:.2f}%, top-5 {t['top5']:.2f}%, "
                                   f"wall {result['wall_seconds']:.1f}s", out)


cli = console_script(main)

if __name__ == "__main__":
    main()
