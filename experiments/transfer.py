"""Transfer: a Data Agent policy trained on one dataset and model, used unchanged on another.

    python -m experiments.transfer --agents runs/transfer-features/agent.zip runs/transfer-signals/agent.zip \\
        --dataset fashion-mnist --train-size 2000 --model mlp --epochs 10 --seeds 0 1 2 --threads 1

Each agent (e.g. trained by ``experiments.train`` on digits with the small CNN) selects, through the
drop-in :class:`~agents.selector.Selector`, while the shared :class:`~envs.core.trainer.Trainer` trains
``--model`` on ``--dataset``: no learning, no fine-tuning. ``random`` keeps a fresh random subset of
the same size each pruned epoch, with the same padding, so its cost (back-propagated samples) equals
the agents' exactly; ``full`` trains on all data. Every run is one line of ``runs.jsonl`` in ``--out``;
the table (mean ± std over seeds) goes to ``table.md`` and the terminal. ``kept again`` is the share of
a pruned epoch's kept samples that the previous pruned epoch kept too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from agents.selector import Selector
from envs.core.trainer import Trainer, resolve_device
from experiments.cli import (add_output_arguments, add_seeds_argument, add_trainer_arguments, console_script,
                             data_config, make_parser, output_folder, trainer_config)


def run_with_selector(trainer: Trainer, selector: Selector) -> dict[str, Any]:
    """Train ``trainer`` for its configured epochs in the order and with the weights of ``selector``.

    Also reports ``kept_again``: the mean share of a pruned epoch's kept samples that the previous
    pruned epoch kept too (how persistent the selection is; random keeps about ``keep_ratio``)."""
    start = time.perf_counter()
    previous, kept_again = None, []
    for epoch in range(trainer.config.epochs):
        batches = selector.next_epoch().split(trainer.config.batch_size)
        if selector.pruned:
            kept = torch.zeros(selector.num_samples, dtype=torch.bool, device=selector.device)
            kept[selector.kept_indices] = True
            if previous is not None:
                kept_again.append((kept & previous).sum() / kept.sum())
            previous = kept
        trainer.begin_epoch(epoch, len(batches))
        for idx in batches:
            fwd = trainer.forward(idx)
            with trainer.ledger.timed("overhead"):
                selector.update(idx, fwd.losses.detach(), fwd.logits, fwd.features, labels=fwd.labels)
            trainer.step(fwd, selector.loss_weights(idx))
    ledger = trainer.ledger.as_dict()
    return {"test": trainer.evaluate(), "ledger": ledger, "wall_seconds": time.perf_counter() - start,
            "kept_again": float(torch.stack(kept_again).mean()) if kept_again else None,
            "backprop_fraction": ledger["samples_backpropagated"] / (trainer.config.epochs * trainer.dataset.num_train)}


def agent_label(path: Path) -> str:
    """``agent (<dataset>/<model>, state=<state>)`` from the ``config.yml`` beside an agent, else its path."""
    config_file = path.parent / "config.yml"
    if not config_file.is_file():
        return str(path)
    kw = yaml.safe_load(config_file.read_text())["env_kwargs"]
    return f"agent ({kw['dataset']}/{kw['model']}, state={kw.get('state') or 'features'})"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per method and keep ratio, mean ± std over seeds of test top-1 and the back-propagated fraction."""
    lines = ["| method | keep ratio | seeds | test top-1 (%) | back-propagated (of full data) | kept again |",
             "|---|---|---|---|---|---|"]
    for method, ratio in dict.fromkeys((r["method"], r["keep_ratio"]) for r in rows):
        runs = [r for r in rows if r["method"] == method and r["keep_ratio"] == ratio]
        top1 = np.array([r["test"]["top1"] for r in runs])
        frac = np.mean([r["backprop_fraction"] for r in runs])
        spread = top1.std(ddof=1) if len(top1) > 1 else 0.0
        again = [r["kept_again"] for r in runs if r["kept_again"] is not None]
        lines.append(f"| {method} | {'–' if method == 'full' else ratio} | {len(top1)} | {top1.mean():.2f} ± {spread:.2f} "
                     f"| {frac:.3f} | {f'{np.mean(again):.2f}' if again else '–'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = make_parser(__doc__)
    parser.add_argument("--agents", type=Path, nargs="+", required=True, help="agent.zip files saved by experiments.train")
    parser.add_argument("--keep-ratios", type=float, nargs="+", default=[0.3, 0.5], help="fractions kept per pruned epoch")
    parser.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection")
    add_seeds_argument(parser, default=[0, 1, 2])
    add_trainer_arguments(parser, seed=False)
    add_output_arguments(parser, None, "runs.jsonl, table.md (default: results/transfer)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, Path("results/transfer"), ("runs.jsonl", "table.md"), "comparison")
    config = trainer_config(args)
    methods = [*args.agents, "random"]
    rows: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "runs.jsonl", "w") as log:
        for seed in args.seeds:
            data = data_config(args).load(args.dataset, resolve_device(args.device), run_seed=seed)
            runs = [("full", 1.0), *((m, r) for r in args.keep_ratios for m in methods)]
            for method, ratio in runs:
                trainer = Trainer(data, args.model, config, seed=seed, track_samples=False)
                sizes = dict(num_samples=data.num_train, epochs=config.epochs, batch_size=config.batch_size,
                             keep_ratio=ratio, anneal=args.anneal, device=trainer.device, seed=seed)
                if isinstance(method, str):
                    selector = Selector.from_baseline(method, num_classes=data.num_classes, **sizes)
                else:
                    selector = Selector.from_agent(method, **sizes)
                    method = agent_label(method)
                row = {"method": method, "seed": seed, "dataset": args.dataset, "train_size": data.num_train,
                       "model": args.model, "keep_ratio": ratio, **run_with_selector(trainer, selector)}
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"seed {seed} {method} keep {ratio}: top-1 {row['test']['top1']:.2f}%, back-propagated {row['backprop_fraction']:.1%}",
                      flush=True)
    text = table(rows)
    (out / "table.md").write_text(text + "\n")
    print(text)
    return rows


cli = console_script(main)

if __name__ == "__main__":
    main()
