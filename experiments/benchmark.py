"""Benchmark selection methods on equal terms: same trainer, data, model, schedule, seeds and cost ledger.

    python -m experiments.benchmark --suite dynamic --dataset digits --model cnn --epochs 6 --seeds 0 1 2
    python -m experiments.benchmark --suite static --dataset digits --keep-ratios 0.3 0.5 0.7 --seeds 0 1 2

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
from pathlib import Path

from envs.core.data import DataConfig
from envs.core.reference import REFERENCE_KINDS, ReferenceConfig
from envs.core.text import TEXT_DATASETS
from envs.core.trainer import TrainerConfig
from experiments.cli import (add_output_arguments, add_ray_arguments, add_seeds_argument, add_trainer_arguments,
                             console_script, make_parser, output_folder, ray_options, trainer_config)
from experiments.run.benchmark import DEFAULT_METHODS, RUNNERS, BenchConfig, RunSpec, execute, write_outputs
from experiments.run.benchmark.execution import BENCHMARK_OUTPUTS, continues
from experiments.run.ray_tasks import RayResourceError


def benchmark_folder(parser: argparse.ArgumentParser, args: argparse.Namespace, default: Path, suite: str,
                     config: BenchConfig) -> Path:
    """The folder of this benchmark: the one named (or the default) when it is new or continues this suite, a fresh
    ``<default>_N`` when the default holds another benchmark; ``--overwrite`` starts the suite afresh there."""
    folder = args.out or default
    if continues(folder, suite, config) and not args.overwrite:
        return folder
    out = output_folder(parser, args, default, BENCHMARK_OUTPUTS, "benchmark")
    for name in BENCHMARK_OUTPUTS if args.overwrite else ():
        (out / name).unlink(missing_ok=True)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", choices=tuple(RUNNERS), default="dynamic", help="dynamic (per-epoch pruning) or static (coresets)")
    p.add_argument("--methods", default=None,
                   help="comma-separated; default: the suite's baselines, Data Agent's paper preset and recommended variant "
                        "with its controls (dynamic), every method (static)")
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
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else list(DEFAULT_METHODS[args.suite])
    unknown = [m for m in methods if m not in RUNNERS[args.suite]]
    if unknown:
        parser.error(f"--methods: unknown {args.suite} method(s) {unknown}; valid choices: {', '.join(RUNNERS[args.suite])}")
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
                             noise=args.noise, noise_rate=args.noise_rate, device=args.device, anneal=args.anneal,
                             score_epochs=min(args.score_epochs, args.epochs), trainer=trainer, holdout=args.holdout,
                             trusted=args.trusted, reference=reference, vocab_size=args.vocab_size, seq_len=args.seq_len)
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
        return args.keep_ratios

    specs = [RunSpec(args.suite, m, r, s, config) for m in methods for r in ratios(m) for s in args.seeds]
    default = Path("results") / f"{args.suite}-{args.dataset.replace(':', '_').replace('/', '_')}-{args.model}"
    out = benchmark_folder(parser, args, default, args.suite, config)
    try:
        records = execute(specs, out, progress=not args.no_progress, ray=ray)
    except RayResourceError as err:
        parser.error(str(err))
    if not records:
        parser.exit(1, f"error: every run failed; their errors are in {out}/failed.jsonl\n")
    noise = f", {args.noise} noise {args.noise_rate:.0%}" if args.noise else ""
    title = f"{args.suite}: {args.dataset} / {args.model}, {args.epochs} epochs{noise}"
    table = write_outputs(records, out, title)
    print(table)
    print(f"\nwritten: {out}/runs.jsonl, runs.csv, summary.json, summary.md, accuracy_vs_cost.png, accuracy_vs_ratio.png")
    if len(records) < len(specs):
        parser.exit(1, f"error: {len(specs) - len(records)} of {len(specs)} runs failed; their errors are in "
                       f"{out}/failed.jsonl. The same command retries them and keeps the finished runs.\n")
    return table


cli = console_script(main)

if __name__ == "__main__":
    main()
