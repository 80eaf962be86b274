"""Benchmark selection methods on equal terms: same trainer, data, model, schedule, seeds and cost ledger.

    python -m experiments.benchmark --suite dynamic --dataset digits --model cnn --epochs 6 --seeds 0 1 2
    python -m experiments.benchmark --suite static --dataset digits --keep-ratios 0.3 0.5 0.7 --seeds 0 1 2
    python -m experiments.benchmark --suite tasks --tasks clean noisy redundant imbalanced:100 --seeds 0 1 2

``--suite tasks`` runs the dynamic methods on every data problem of ``--tasks`` (docs/tasks.md) and adds a
leaderboard: normalised scores between RS2 and the oracle, IQM with confidence intervals (``experiments.run.benchmark.scores``,
``experiments.run.benchmark.leaderboard``); ``--instances`` and ``--load-agent`` run a saved agent on held-out instances.

Every finished run is appended to ``<out>/runs.jsonl`` as it ends. A rerun skips the runs already there, so an
interrupted benchmark resumes where it stopped (or grows: more seeds, methods or ratios of the same suite and
options). A folder that holds another benchmark is never mixed into: an unnamed one gives way to ``<folder>_1``,
``_2``..., a named ``--out`` is refused unless ``--overwrite`` (which starts the suite afresh). At the end the script
writes ``runs.csv``, ``summary.json`` and ``summary.md`` (mean ± std over seeds), and draws ``accuracy_vs_cost.png``
and ``accuracy_vs_ratio.png``.
With ``--ray local|auto|HOST:PORT`` each run is a Ray task instead: same records, streamed into the same
``runs.jsonl``; runs that fail go to ``failed.jsonl`` and the next call retries them.

The methods, their variants and controls are described in :mod:`experiments.run.benchmark.methods`; the tables
(equal-cost differences, savings near full data, margins over the controls) in
:mod:`experiments.run.benchmark.stats`. ``--prune-ratios`` sets InfoBatch's own parameter list, so that its costs
can bracket the others'.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from envs.core.data import DataConfig
from envs.core.instances import SPLITS, InstanceGrid
from envs.core.reference import REFERENCE_KINDS, ReferenceConfig
from envs.core.text import TEXT_DATASETS
from envs.core.trainer import TrainerConfig
from experiments.cli import (add_output_arguments, add_ray_arguments, add_seeds_argument, add_trainer_arguments,
                             console_script, make_parser, output_folder, ray_options, task_spec, trainer_config)
from experiments.run.benchmark import DEFAULT_METHODS, RUNNERS, BenchConfig, RunSpec, execute, write_outputs
from experiments.run.benchmark.methods import (DEFAULT_TASKS, LOADED_AGENT, TASK_SUITE, TASK_SUITE_METHODS,
                                               suite_methods)
from experiments.run.benchmark.report import write_task_outputs
from experiments.run.benchmark.scores import CEILING, REFERENCE
from experiments.run.benchmark.execution import BENCHMARK_OUTPUTS, continues
from experiments.run.folders import clear_outputs
from experiments.run.ray_tasks import RayResourceError


def benchmark_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, default: Path, suite: str,
                     configs: list[BenchConfig]) -> Path:
    """The folder of this benchmark: the one named (or the default) when it is new or continues this suite (any of
    its ``configs``: a task suite has one per task), a fresh ``<default>_N`` when the default holds another benchmark;
    ``--overwrite`` starts the suite afresh there."""
    folder = args.out or default
    if any(continues(folder, suite, c) for c in configs) and not args.overwrite:
        return folder
    out = output_folder(parser, args, default, BENCHMARK_OUTPUTS, "benchmark")
    if args.overwrite:
        clear_outputs(out, BENCHMARK_OUTPUTS)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", choices=(*RUNNERS, TASK_SUITE), default="dynamic",
                   help="dynamic (per-epoch pruning), static (coresets) or tasks (the dynamic methods on every --tasks "
                        "problem, scored against RS2 and the oracle: a leaderboard, docs/tasks.md)")
    p.add_argument("--methods", default=None,
                   help="comma-separated, or all (every real method: no oracle); default: the suite's baselines, Data "
                        "Agent's paper preset and recommended variant with its controls (dynamic), every method (static), "
                        f"{','.join(TASK_SUITE_METHODS)} (tasks)")
    p.add_argument("--tasks", type=task_spec, nargs="+", default=list(DEFAULT_TASKS),
                   help="--suite tasks: the data problems (docs/tasks.md)")
    p.add_argument("--instances", choices=SPLITS, default="all",
                   help="--suite tasks: run the training or the held-out test instances of the grid --tasks x --dataset "
                        "x --seeds (the last quarter of the seeds is held out; envs.core.instances)")
    p.add_argument("--load-agent", type=Path, default=None, metavar="AGENT_ZIP",
                   help=f"add {LOADED_AGENT}: this saved agent (a train run's agent.zip) acting with its policy, no updates")
    p.add_argument("--keep-ratios", type=float, nargs="+", default=[0.5],
                   help="fractions of training samples kept: per pruned epoch (dynamic) or the coreset's size (static)")
    p.add_argument("--prune-ratios", type=float, nargs="+", default=None,
                   help="dynamic: InfoBatch's own parameter, the pruned fraction of its below-mean samples (default: "
                        "1 - each keep ratio); pick them so that InfoBatch's costs bracket the other methods'")
    add_seeds_argument(p, default=[0])
    p.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection (dynamic)")
    p.add_argument("--score-epochs", type=int, default=2,
                   help="static: epochs of the proxy run before its scores are read (EL2N, GraNd... are early-training scores)")
    p.add_argument("--reference", choices=REFERENCE_KINDS, default=None,
                   help="the reference model of rholoss and the learnability variants: holdout (default with --holdout, "
                        "which every method's data then lacks) or halves (two models on swapped halves)")
    p.add_argument("--reference-epochs", type=int, default=None, help="the reference's epochs (default: --epochs)")
    add_trainer_arguments(p, seed=False)
    add_output_arguments(p, None, "runs.jsonl, runs.csv, summary.json, summary.md, diagnosis.md (static), the plots "
                                  "(default: results/<suite>-<dataset>-<model>)")
    add_ray_arguments(p)
    return p


def main(argv: list[str] | None = None) -> str:
    parser = build_parser()
    args = parser.parse_args(argv)
    tasks = args.suite == TASK_SUITE
    suite = "dynamic" if tasks else args.suite  # a task suite runs dynamic methods on every task
    if tasks and args.task != "clean":
        parser.error("--task is one problem; with --suite tasks, name them all with --tasks")
    methods = suite_methods(args.methods, suite, TASK_SUITE_METHODS if tasks else DEFAULT_METHODS[suite])
    if args.load_agent is not None:
        if suite != "dynamic" or not (args.load_agent.parent / "config.yml").is_file():
            parser.error(f"--load-agent {args.load_agent}: valid: the agent.zip of an experiments.train run (its folder "
                         "holds config.yml), with --suite dynamic or tasks")
        methods.append(LOADED_AGENT)
    if args.instances != "all":
        if not tasks:
            parser.error("--instances needs --suite tasks (the instance grid is --tasks x --dataset x --seeds)")
        try:
            args.seeds = list(InstanceGrid(tuple(args.tasks), (args.dataset,), tuple(args.seeds)).split_seeds(args.instances))
        except ValueError as err:
            parser.error(f"--instances {args.instances}: {err}")
    unknown = [m for m in methods if m not in RUNNERS[suite]]
    if unknown:
        parser.error(f"--methods: unknown {suite} method(s) {unknown}; valid choices: all, {', '.join(RUNNERS[suite])}")
    checks = [("--keep-ratios", args.keep_ratios, all(0 < r < 1 for r in args.keep_ratios), "values in (0, 1)"),
              ("--prune-ratios", args.prune_ratios, all(0 <= r < 1 for r in args.prune_ratios or []), "values in [0, 1)"),
              ("--anneal", args.anneal, 0 <= args.anneal <= 1, "[0, 1]"),
              ("--score-epochs", args.score_epochs, args.score_epochs >= 1, "an integer >= 1")]
    for name, value, ok, valid in checks:
        if not ok:
            parser.error(f"{name}={value} is invalid; valid: {valid}")
    reference = {k: v for k, v in (("kind", args.reference), ("epochs", args.reference_epochs)) if v is not None}
    trainer = trainer_config(args).as_dict()
    if trainer["augment"] is None and args.dataset not in TEXT_DATASETS:
        trainer["augment"] = True  # what the data's default means on images: earlier runs keep their keys
    if trainer["threads"] == TrainerConfig.threads:  # --threads joins the run keys only when set: earlier runs keep theirs
        del trainer["threads"]
    try:
        config = BenchConfig(dataset=args.dataset, data_root=args.data_root, model=args.model, train_size=args.train_size,
                             task=args.task, device=args.device, anneal=args.anneal,
                             score_epochs=min(args.score_epochs, args.epochs), trainer=trainer, holdout=args.holdout,
                             trusted=args.trusted, reference=reference, vocab_size=args.vocab_size, seq_len=args.seq_len,
                             load_agent=None if args.load_agent is None else str(args.load_agent.resolve()))
        config.trainer_config().validate()
        DataConfig(holdout=args.holdout, trusted=args.trusted, vocab_size=args.vocab_size, seq_len=args.seq_len).validate()
        ReferenceConfig(**config.reference_options()).validate()
        if reference.get("kind") == "holdout" and not args.holdout:
            raise ValueError("--reference holdout needs --holdout; valid: --holdout <fraction in (0, 0.5]>, or --reference halves")
        ray = ray_options(args)
    except ValueError as err:
        parser.error(str(err))
    if ray is not None and ray.cpus != TrainerConfig.threads:  # a Ray run's torch threads are its CPUs (unless --threads)
        trainer.setdefault("threads", ray.cpus)

    def ratios(method: str) -> list[float]:
        if method == "full":  # full data does not depend on the ratio
            return args.keep_ratios[:1]
        if method == "infobatch" and args.prune_ratios is not None:
            return [round(1.0 - p, 6) for p in args.prune_ratios]
        if tasks and method in (REFERENCE, CEILING):  # their curves must reach below every method's wall-clock
            return sorted({*args.keep_ratios, *(round(0.75 * r, 6) for r in args.keep_ratios)})
        return args.keep_ratios

    configs = [replace(config, task=t) for t in args.tasks] if tasks else [config]
    specs = [RunSpec(suite, m, r, s, c) for c in configs for m in methods for r in ratios(m) for s in args.seeds]
    default = Path("results") / f"{args.suite}-{args.dataset.replace(':', '_').replace('/', '_')}-{args.model}"
    out = benchmark_folder(parser, args, default, suite, configs)
    try:
        records = execute(specs, out, progress=not args.no_progress, ray=ray)
    except RayResourceError as err:
        parser.error(str(err))
    if not records:
        parser.exit(1, f"error: every run failed; their errors are in {out}/failed.jsonl\n")
    task = f", task {args.task}" if args.task != "clean" else ""
    title = f"{args.suite}: {args.dataset} / {args.model}, {args.epochs} epochs{task}"
    if tasks:
        table = write_task_outputs(records, out, title, args.tasks)
    else:
        table = write_outputs(records, out, title)
        print(f"\nwritten: {out}/runs.jsonl, runs.csv, summary.json, summary.md, accuracy_vs_cost.png, accuracy_vs_ratio.png")
    print(table)
    if len(records) < len(specs):
        parser.exit(1, f"error: {len(specs) - len(records)} of {len(specs)} runs failed; their errors are in "
                       f"{out}/failed.jsonl. The same command retries them and keeps the finished runs.\n")
    return table


cli = console_script(main)

if __name__ == "__main__":
    main()
