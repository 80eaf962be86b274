"""Transfer: a Data Agent policy trained on one dataset and model, used unchanged on another.

    python -m experiments.transfer --agents runs/transfer-features/agent.zip runs/transfer-signals/agent.zip \\
        --dataset fashion-mnist --train-size 2000 --model mlp --epochs 10 --seeds 0 1 2 --threads 1

Each agent (e.g. trained by ``experiments.train`` on digits with the small CNN) selects, through the
drop-in :class:`~agents.selector.Selector`, while the shared :class:`~envs.trainer.Trainer` trains
``--model`` on ``--dataset``: no learning, no fine-tuning. ``random`` keeps a fresh random subset of
the same size each pruned epoch, with the same padding, so its cost (back-propagated samples) equals
the agents' exactly; ``full`` trains on all data. Every run is one line of ``runs.jsonl`` in ``--out``;
the table (mean ± std over seeds) goes to ``table.md`` and the terminal.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.selector import Selector
from envs.data import load_dataset
from envs.trainer import Trainer, TrainerConfig, resolve_device
from experiments.cli import add_trainer_arguments, trainer_options


def run_with_selector(trainer: Trainer, selector: Selector) -> dict[str, Any]:
    """Train ``trainer`` for its configured epochs in the order and with the weights of ``selector``."""
    start = time.perf_counter()
    for epoch in range(trainer.config.epochs):
        batches = selector.next_epoch().split(trainer.config.batch_size)
        trainer.begin_epoch(epoch, len(batches))
        for idx in batches:
            fwd = trainer.forward(idx)
            with trainer.ledger.timed("overhead"):
                selector.update(idx, fwd.losses.detach(), fwd.logits, fwd.features, labels=fwd.labels)
            trainer.step(fwd, selector.loss_weights(idx))
    ledger = trainer.ledger.as_dict()
    return {"test": trainer.evaluate(), "ledger": ledger, "wall_seconds": time.perf_counter() - start,
            "backprop_fraction": ledger["samples_backpropagated"] / (trainer.config.epochs * trainer.dataset.num_train)}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per method, mean ± std of test top-1 and the back-propagated fraction over seeds."""
    lines = ["| method | seeds | test top-1 (%) | back-propagated (of full data) |", "|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        top1 = np.array([r["test"]["top1"] for r in rows if r["method"] == method])
        frac = np.array([r["backprop_fraction"] for r in rows if r["method"] == method])
        lines.append(f"| {method} | {len(top1)} | {top1.mean():.2f} ± {top1.std(ddof=1) if len(top1) > 1 else 0:.2f} "
                     f"| {frac.mean():.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=Path, nargs="+", required=True, help="agent.zip files saved by experiments.train")
    parser.add_argument("--keep-ratio", type=float, default=0.3, help="fraction kept per pruned epoch")
    parser.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("results/transfer"))
    add_trainer_arguments(parser, model="mlp")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = TrainerConfig(**trainer_options(args))
    methods = [*(str(a) for a in args.agents), "random", "full"]
    rows: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "runs.jsonl", "w") as log:
        for seed in args.seeds:
            data = load_dataset(args.dataset, device=resolve_device(args.device), seed=seed,
                                train_size=args.train_size, noise=args.noise, noise_rate=args.noise_rate, root=args.data_root)
            for method in methods:
                trainer = Trainer(data, args.model, config, seed=seed, track_samples=False)
                sizes = dict(num_samples=data.num_train, epochs=config.epochs, batch_size=config.batch_size,
                             device=trainer.device, seed=seed)
                if method in ("random", "full"):
                    selector = Selector.from_baseline(method, num_classes=data.num_classes, keep_ratio=args.keep_ratio,
                                                      anneal=args.anneal, **sizes)
                else:
                    selector = Selector.from_agent(method, keep_ratio=args.keep_ratio, anneal=args.anneal, **sizes)
                row = {"method": method, "seed": seed, "dataset": args.dataset, "train_size": data.num_train,
                       "model": args.model, "keep_ratio": args.keep_ratio, **run_with_selector(trainer, selector)}
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"seed {seed} {method}: top-1 {row['test']['top1']:.2f}%, back-propagated {row['backprop_fraction']:.1%}",
                      flush=True)
    text = table(rows)
    (args.out / "table.md").write_text(text + "\n")
    print(text)
    return rows


if __name__ == "__main__":
    main()
