"""Full-data training: the reference every selection method is measured against.

    python -m experiments.full_data --dataset digits --model cnn --epochs 10

Prints test accuracy and the cost ledger; ``--out FILE.json`` saves them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from envs.data import load_dataset
from envs.ledger import format_ledger
from envs.trainer import Trainer, TrainerConfig, resolve_device
from experiments.cli import add_trainer_arguments, trainer_options, write_json


def run_full_data(dataset: str = "digits", model: str = "cnn", *, seed: int = 0, device: str = "auto",
                  train_size: int | None = None, noise: str | None = None, noise_rate: float = 0.0,
                  root: str | None = None, progress: bool = True, **trainer_kw: Any) -> dict[str, Any]:
    """Train ``model`` on all of ``dataset`` and return test metrics, the ledger and the config."""
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_kw)
    data = load_dataset(dataset, device=dev, train_size=train_size, noise=noise, noise_rate=noise_rate, seed=seed, root=root)
    trainer = Trainer(data, model, config, seed=seed)
    start = time.perf_counter()
    bar = tqdm(range(config.epochs), desc=f"full data {dataset}/{model}", disable=not progress, leave=False)
    for _ in bar:
        loss = trainer.train_epoch()
        bar.set_postfix(loss=f"{float(loss):.3f}")
    test = trainer.evaluate()
    return {
        "method": "full",
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "device": str(dev),
        "train_size": data.num_train,
        "trainer": config.as_dict(),
        "test": test,
        "ledger": trainer.ledger.as_dict(),
        "wall_seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trainer_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    try:
        result = run_full_data(args.dataset, args.model, seed=args.seed, device=args.device, train_size=args.train_size,
                               noise=args.noise, noise_rate=args.noise_rate, root=args.data_root, **trainer_options(args))
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    t = result["test"]
    print(f"{args.dataset}/{args.model}, {args.epochs} epochs on {result['train_size']} samples ({result['device']}): "
          f"test top-1 {t['top1']:.2f}%, top-5 {t['top5']:.2f}%, wall {result['wall_seconds']:.1f}s")
    print("ledger:", format_ledger(result["ledger"]))
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
