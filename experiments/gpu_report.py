"""The whole GPU story in one command: device, inner-trainer throughput, the envs' cost, an equal-cost study.

    python -m experiments.gpu_report --out results/gpu --budget-minutes 9
    python -m experiments.gpu_report --out results/gpu-smoke --smoke          # seconds on a CPU

Writes ``report.md``, ``report.json`` and plots into ``--out`` after each part, in their order of value
(device, throughput, env, study), so a run cut short keeps the first parts; ``--parts`` picks some, so that
two short runs can cover different parts. What each part measures: :mod:`experiments.run.gpu_report`.
On a GPU machine without this project's packages, the launcher prepares everything (docs/gpu.md).
The task suite's data problems are not an option yet: DataConfig has no task to name.
"""

from __future__ import annotations

import shlex
import sys

from experiments.cli import add_output_arguments, console_script, make_parser, seed_value
from experiments.run.gpu_report import PARTS, Report, ReportConfig, run_report
from experiments.run.throughput import CIFAR10_JPEG


def main(argv: list[str] | None = None) -> Report:
    parser = make_parser(__doc__)
    parser.add_argument("--budget-minutes", type=float, default=9.0,
                        help="wall-clock allowance of the whole report; the study takes what the first parts leave")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of: {', '.join(PARTS)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the synthetic set: every part in seconds on a CPU")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--cifar10-dir", default=CIFAR10_JPEG, help="folder holding CIFAR-10's train and test .tar.xz (or .zip)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seeds every part")
    add_output_arguments(parser, None, "report.md, report.json, the plots, study/ (required; a rerun continues its study)",
                         overwrite=False)
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("--out is required: the folder the report is written to")
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    command = " ".join(["python -m experiments.gpu_report", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    config = ReportConfig(out=args.out, budget_minutes=args.budget_minutes, parts=parts, smoke=args.smoke,
                          device=args.device, cifar10_dir=args.cifar10_dir, seed=args.seed,
                          progress=not args.no_progress, command=command)
    try:
        config.validate()
    except ValueError as err:
        parser.error(str(err))
    report = run_report(config)
    print((args.out / "report.md").read_text())
    if report.failed:
        parser.exit(1, f"error: part(s) {', '.join(report.failed)} had errors; they are in {args.out / 'report.json'}\n")
    return report


cli = console_script(main)

if __name__ == "__main__":
    main()
