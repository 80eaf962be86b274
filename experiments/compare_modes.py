"""Batch mode vs per-sample mode of the agents: which one learns the env's reward.

    python -m experiments.compare_modes --dataset digits --model mlp --epochs 40 --seeds 0 1 2

Why: the two layouts of :func:`agents.make_agent` differ in credit assignment. ``batch`` trains
:class:`agents.BatchOfSamplesPolicy` on the batch-mean reward; ``per_sample`` trains SB3's
``MlpPolicy`` on :class:`agents.PerSampleVecEnv`, where each sample's score earns that sample's own
reward. An agent that learns raises the env's reward over its run (one run = one episode), so
the table compares the mean reward of the run's first and last epochs, plus the final test
accuracy, for every env, algorithm and mode, over seeds. The presets' default mode per env is
the one that learned here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from agents import ALGOS, MODES
from experiments.cli import add_seeds_argument, add_trainer_arguments, write_json
from experiments.train import ENV_IDS
from experiments.train import main as train


def run(env_id: str, algo: str, mode: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One learning run through ``experiments.train``; its reward curve and final accuracy."""
    argv = ["--env", env_id, "--algo", algo, "--mode", mode, "--dataset", args.dataset, "--model", args.model,
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(seed),
            "--device", args.device, "--reference", "none", "--no-progress", "--checkpoint-every", "0"]
    if args.train_size is not None:
        argv += ["--train-size", str(args.train_size)]
    with tempfile.TemporaryDirectory() as out:
        result = train([*argv, "--out", out], quiet=True)["run"]
    rewards, scores = result["reward_by_epoch"], result["score_by_epoch"]
    return {"env": env_id, "algo": algo, "mode": mode, "seed": seed, "reward_first_epoch": rewards[0],
            "reward_last_epoch": rewards[-1], "score_first_epoch": scores[0], "score_last_epoch": scores[-1],
            "top1": result["test"]["top1"]}


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sample std (n - 1; 0 for one seed) over seeds per env, algorithm and mode."""
    columns = ("reward_first_epoch", "reward_last_epoch", "score_first_epoch", "score_last_epoch")
    lines = ["| env | algo | mode | reward, first epoch | reward, last epoch | score, first epoch | score, last epoch "
             "| top-1 (%) | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["env"], r["algo"], r["mode"]) for r in rows})
    for key in keys:
        group = [r for r in rows if (r["env"], r["algo"], r["mode"]) == key]
        ddof = 1 if len(group) > 1 else 0
        cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=ddof):.3f}" for v in ([r[c] for r in group] for c in columns)]
        top1 = [r["top1"] for r in group]
        lines.append(f"| {' | '.join(key)} | {' | '.join(cells)} | {np.mean(top1):.2f} ± {np.std(top1, ddof=ddof):.2f} "
                     f"| {len(group)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trainer_arguments(parser, model="mlp", seed=False)
    parser.set_defaults(epochs=40)
    parser.add_argument("--envs", nargs="+", choices=ENV_IDS, default=list(ENV_IDS))
    parser.add_argument("--algos", nargs="+", choices=tuple(ALGOS), default=list(ALGOS))
    add_seeds_argument(parser, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help="write every run as JSON here")
    args = parser.parse_args(argv)
    grid = [(e, a, m, s) for e in args.envs for a in args.algos for m in MODES for s in args.seeds]
    rows = [run(*point, args) for point in tqdm(grid, desc="runs")]
    print(table(rows))
    command = ["python", "-m", "experiments.compare_modes", *(sys.argv[1:] if argv is None else argv)]
    write_json(args.out, {"command": " ".join(command), "runs": rows})
    return rows


if __name__ == "__main__":
    main()
