"""Batch layout vs per-sample layout of the agents: which one learns the env's reward.

    python -m experiments.compare_layouts --dataset digits --model mlp --epochs 40 --seeds 0 1 2 --out results/modes

Why: the two layouts of :func:`agents.make_agent` differ in credit assignment. ``batch`` trains
:class:`agents.BatchOfSamplesPolicy` on the batch-mean reward; ``per_sample`` trains SB3's
``MlpPolicy`` on :class:`agents.PerSampleVecEnv`, where each sample's score earns that sample's own
reward. An agent that learns raises the env's reward over its run (one run = one episode), so
the table compares the mean reward of the run's first and last epochs, plus the final test
accuracy, for every env, algorithm and layout, over seeds. The presets' default layout per env is
the one that learned here.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents import ALGOS, LAYOUTS
from envs.core.files import write_json
from experiments.cli import (add_output_arguments, add_seeds_argument, add_trainer_arguments, console_script,
                             data_config, make_parser, output_folder, trainer_config)
from experiments.run import ENV_IDS, RunConfig, run_training


def run(env_id: str, algo: str, layout: str, seed: int, base: RunConfig) -> dict[str, Any]:
    """One learning run of ``base`` with this env, algorithm, layout and seed; its reward curve and final accuracy."""
    with tempfile.TemporaryDirectory() as out:
        config = dataclasses.replace(base, env=env_id, algo=algo, layout=layout, seed=seed, out=Path(out))
        result = run_training(config).metrics["run"]
    rewards, scores = result["reward_by_epoch"], result["score_by_epoch"]
    return {"env": env_id, "algo": algo, "layout": layout, "seed": seed, "reward_first_epoch": rewards[0],
            "reward_last_epoch": rewards[-1], "score_first_epoch": scores[0], "score_last_epoch": scores[-1],
            "top1": result["test"]["top1"]}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sample std (n - 1; 0 for one seed) over seeds per env, algorithm and layout."""
    columns = ("reward_first_epoch", "reward_last_epoch", "score_first_epoch", "score_last_epoch")
    lines = ["| env | algo | layout | reward, first epoch | reward, last epoch | score, first epoch | score, last epoch "
             "| top-1 (%) | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["env"], r["algo"], r["layout"]) for r in rows})
    for key in keys:
        group = [r for r in rows if (r["env"], r["algo"], r["layout"]) == key]
        ddof = 1 if len(group) > 1 else 0
        cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=ddof):.3f}" for v in ([r[c] for r in group] for c in columns)]
        top1 = [r["top1"] for r in group]
        lines.append(f"| {' | '.join(key)} | {' | '.join(cells)} | {np.mean(top1):.2f} ± {np.std(top1, ddof=ddof):.2f} "
                     f"| {len(group)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = make_parser(__doc__)
    add_trainer_arguments(parser, seed=False)
    parser.add_argument("--envs", nargs="+", choices=ENV_IDS, default=list(ENV_IDS), help="the envs compared")
    parser.add_argument("--algos", nargs="+", choices=tuple(ALGOS), default=list(ALGOS), help="the algorithms compared")
    add_seeds_argument(parser, default=[0, 1, 2])
    add_output_arguments(parser, None, "runs.json, every run (default: none written)")
    args = parser.parse_args(argv)
    out = output_folder(parser, args, None, ("runs.json",), "comparison")
    base = RunConfig(dataset=args.dataset, data=data_config(args), model=args.model, device=args.device, trainer=trainer_config(args),
                     reference=False, checkpoint_every=0, progress=False)
    grid = [(e, a, m, s) for e in args.envs for a in args.algos for m in LAYOUTS for s in args.seeds]
    try:
        rows = [run(*point, base) for point in tqdm(grid, desc="runs", disable=args.no_progress)]
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    print(table(rows))
    command = ["python", "-m", "experiments.compare_layouts", *(sys.argv[1:] if argv is None else argv)]
    write_json(None if out is None else out / "runs.json", {"command": " ".join(command), "runs": rows})
    return rows


cli = console_script(main)

if __name__ == "__main__":
    main()
