"""Train an SB3 agent and the inner model together: one episode of the env is one training run.

    python -m experiments.train                                   # DataAgent-v0 + PPO on digits, 10 epochs
    python -m experiments.train --env CoverSelect-v0 --algo a2c --keep-ratio 0.3
    python -m experiments.train --layout per_sample --epochs 30 --out runs/da
    python -m experiments.train --load-agent runs/da/agent.zip --no-learn --seed 1   # reuse a trained policy
    python -m experiments.train --resume runs/da                  # continue a killed or interrupted run

This CLI parses its options into an experiments.run.RunConfig and runs it with experiments.run.run_training
(the run library; call it from Python the same way). Agent hyper-parameters come from
agents/hyperparams/{algo}.yml, RL Zoo files (--hyperparams key=value overrides them). The run writes to the
--out folder: the agent (agent.zip, SB3 format), config.yml, metrics.json, scores.npy, TensorBoard logs (tb/)
and, for CoverSelect-v0, the coreset (coreset.npy + coreset.json). A new run never replaces an earlier run's
results: when the default folder holds one it writes to runs/<env>_<algo>_s<seed>_1, _2... and says so; a named
--out that holds one is refused unless --overwrite, which never deletes the --load-agent file. With --reference full a full-data run of
the same dataset, model, seed and trainer options is the yardstick for accuracy and cost. --load-agent starts
from a saved agent (its policy must fit the env's state_dim: --state signals makes Data Agent's state
model-agnostic); with --no-learn the policy only acts.

Long runs survive: the whole run (inner model, optimizer, schedule position, sample statistics, scores,
selection state, RNG states, ledger, the SB3 agent and its rollout position) is saved to --out/checkpoints
every --checkpoint-every epochs at the next rollout boundary, and when SIGTERM or SIGINT arrives (at the end
of the current rollout; a second signal stops at once). Only the last --keep-checkpoints are kept; writes are
atomic. --resume DIR continues the newest one with the options recorded in DIR/config.yml, and on CPU ends
exactly as the uninterrupted run would (same accuracy, scores and ledger counts). The full-data reference run
is checkpointed per epoch in checkpoints/reference. --no-learn runs are not checkpointed.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from envs.core.distributed import is_leader
from experiments.cli import console_script
from experiments.run import RunInterrupted, RunResult, run_training
from experiments.run.training import resume_command
from experiments.train_args import build_parser, resume_config, run_config


def main(argv: list[str] | None = None, *, quiet: bool = False) -> dict[str, Any]:
    """Run the CLI on ``argv`` (``sys.argv[1:]`` when None) and return what ``metrics.json`` holds.

    :param argv: command-line arguments
    :param quiet: print no results
    """
    parser = build_parser(__doc__)
    args = parser.parse_args(argv)
    try:
        config = run_config(args) if args.resume is None else resume_config(parser, args)
        result = run_training(config, resume=args.resume is not None)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    except RunInterrupted as stop:
        print(f"{stop}; continue with: {resume_command(config.folder)}", file=sys.stderr)
        raise SystemExit(128 + stop.signum) from None
    except torch.cuda.OutOfMemoryError:
        parser.exit(1, f"error: out of GPU memory on {config.device} with --batch-size {config.trainer.batch_size}: use "
                       "a smaller --batch-size (or --amp). Checkpoints of this run keep its batch size, so start a new "
                       "run (another --out) rather than --resume.\n")
    if not quiet and is_leader():  # under torchrun, rank 0 speaks for the run
        print_results(result)
    return result.metrics


def format_run(name: str, run: dict[str, Any]) -> str:
    """One line of a run's results: test metrics, back-propagated samples and wall-clock."""
    t, l = run["test"], run["ledger"]
    return (f"  {name:<10} test top-1 {t['top1']:6.2f}%  top-5 {t['top5']:6.2f}%  loss {t['loss']:.3f} | "
            f"back-propagated {l['samples_backpropagated']:,} ({run['backprop_fraction']:.1%} of full data) | "
            f"wall {run['wall_seconds']:.1f}s (train {l['train_seconds']:.1f}s, overhead {l['overhead_seconds']:.1f}s)")


def print_results(result: RunResult) -> None:
    """The run's results, as the README shows them."""
    c, metrics, run = result.config, result.metrics, result.metrics["run"]
    print(f"{c.env} / {c.algo} ({result.layout}{', no learning' if c.no_learn else ''}) on {c.dataset}/{c.model}, "
          f"{c.trainer.epochs} epochs, {result.num_samples} training samples, seed {c.seed}, {result.device}")
    print(format_run("agent run", run))
    reference = metrics.get("reference")
    if reference is not None:
        print(format_run("full data", reference) if "test" in reference else f"  full data  {reference['error']}")
    if "error" in run:
        print(f"  warning: {run['error']}")
    if c.env == "CoverSelect-v0":
        print("  note: a CoverSelect run trains its selection model on all the data every epoch (on the selected "
              "samples with --train-on selected), in full batches: an epoch's last batch is topped up with its first "
              "samples, so it can back-propagate more than full data. What it saves is training on the coreset it "
              "returns (experiments.evaluate_coreset)")
    if "coreset" in metrics:
        s = metrics["coreset"]
        print(f"  coreset    {s['size']} samples ({s['ratio']:.1%}) -> {s['path']}")
    print(f"  saved to   {result.folder}/ ({'' if c.no_learn else 'agent.zip, tb/, '}config.yml, metrics.json, scores.npy)")


cli = console_script(main)

if __name__ == "__main__":
    main()
