"""Full-data training: the reference every selection method is measured against.

    python -m experiments.full_data --dataset digits --model cnn --epochs 10

Prints test accuracy and the cost ledger; ``--out FILE.json`` saves them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from envs.data import load_dataset
from envs.models import MODEL_NAMES
from envs.schedules import SCHEDULES
from envs.trainer import Trainer, TrainerConfig, resolve_device


def run_full_data(dataset: str = "digits", model: str = "cnn", *, seed: int = 0, device: str = "auto",
                  train_size: int | None = None, noise: str | None = None, noise_rate: float = 0.0,
                  root: str | None = None, progress: bool = True, **trainer_options: Any) -> dict[str, Any]:
    """Train ``model`` on all of ``dataset`` and return test metrics, the ledger and the config."""
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_options)
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


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI options shared by every experiment that trains an inner model."""
    d = TrainerConfig()
    g = parser.add_argument_group("inner training")
    g.add_argument("--dataset", default="digits", help="digits | synthetic | fashion-mnist | cifar10 | cifar100 | imagefolder:<path>")
    g.add_argument("--data-root", default=None, help="folder holding the dataset's files (file-backed datasets)")
    g.add_argument("--model", default="cnn", choices=MODEL_NAMES)
    g.add_argument("--train-size", type=int, default=None, help="stratified subset of the training set")
    g.add_argument("--noise", choices=("symmetric", "asymmetric"), default=None, help="label noise type")
    g.add_argument("--noise-rate", type=float, default=0.0)
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    g.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--seed", type=int, default=0)


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, schedule=args.schedule,
                weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, amp=args.amp)


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
    l = result["ledger"]
    print(f"ledger: back-propagated {l['samples_backpropagated']:,}, forwarded {l['samples_forwarded']:,}, "
          f"steps {l['optimizer_steps']:,}, train {l['train_seconds']:.1f}s, overhead {l['overhead_seconds']:.1f}s, eval {l['eval_seconds']:.1f}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
