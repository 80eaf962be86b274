"""How many torch threads: one thread against torch's own choice, for each image model, idle and under load.

    OMP_NUM_THREADS=1 nice -n 10 python -m experiments.bench_threads --models mlp cnn resnet18 fastnet --main-job

Why: torch starts one intra-op thread per core. On a machine where another process is busy those threads wait on
each other at every operation, and a run becomes several times slower; ``torchrun`` sets one thread, which is why
its runs were not. This measures what the trainer's ``threads`` default (``--threads``) should be: each model's
full-data training (``--epochs`` on ``--train-size`` digits samples) and, with ``--main-job``, the README's main job
(``python -m experiments.train --epochs 30``), each with 1 thread and with torch's own choice (``--default-threads``,
the cores this process may use), on the machine as found ("as found": nothing added, but a shared machine is
rarely idle) and beside ``--load`` busy-looping processes ("+N busy").
Each cell is the best of ``--repeats`` runs; the 1-minute load average is recorded before each run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from envs.core.data import DataConfig
from envs.core.models import MODEL_NAMES
from envs.core.trainer import TrainerConfig
from experiments.cli import add_output_arguments, console_script, make_parser, output_folder
from experiments.run.full_data import run_full_data

MAIN_JOB = ["--epochs", "30", "--no-progress"]


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes spinning on a core each, for the length of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if procs else 0)  # let them reach the scheduler
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def time_model(model: str, threads: int, epochs: int, train_size: int) -> float:
    """Wall-clock seconds of a full-data training of ``model`` on digits with ``threads`` torch threads."""
    start = time.perf_counter()
    run_full_data("digits", model, DataConfig(train_size=train_size),
                  TrainerConfig(epochs=epochs, batch_size=64, threads=threads), device="cpu", progress=False)
    return time.perf_counter() - start


def time_main_job(threads: int) -> float:
    """Wall-clock seconds of the README's main job in a fresh process with ``--threads threads``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "experiments.train", *MAIN_JOB, "--threads", str(threads), "--out", out],
                       check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def measure(jobs: list[str], default_threads: int, load: int, repeats: int, epochs: int,
            train_size: int) -> list[dict[str, Any]]:
    """One row per job, machine state and thread count: best wall-clock of ``repeats`` and the load averages seen."""
    for job in jobs:  # untimed: imports, the dataset's cache and allocator warm-up would count against the first cell
        if job != "main job":
            time_model(job, 1, 1, min(train_size, 128))
    rows = []
    for state, busy in (("as found", 0), (f"+{load} busy", load)):
        with busy_processes(busy):
            for job in jobs:
                for threads in (1, default_threads):
                    walls, loads = [], []
                    for _ in range(repeats):
                        loads.append(os.getloadavg()[0])
                        walls.append(time_main_job(threads) if job == "main job" else
                                     time_model(job, threads, epochs, train_size))
                    rows.append({"job": job, "machine": state, "threads": threads, "seconds": min(walls),
                                 "all_seconds": walls, "load_average": loads})
                    print(f"{job:<9} {state:<8} {threads} thread(s): {min(walls):7.1f} s (load average "
                          f"{', '.join(f'{x:.1f}' for x in loads)})", flush=True)
    return rows


def table(rows: list[dict[str, Any]], default_threads: int) -> str:
    """Markdown: per job and machine state, seconds with 1 thread and with the default, their ratio, load averages."""
    lines = [f"| job | machine | 1 thread (s) | {default_threads} threads (s) | default / 1 thread | load average (1 min) |",
             "|---|---|---|---|---|---|"]
    cells = {(r["job"], r["machine"], r["threads"]): r for r in rows}
    for job, state in dict.fromkeys((r["job"], r["machine"]) for r in rows):
        one, many = cells[job, state, 1], cells[job, state, default_threads]
        seen = one["load_average"] + many["load_average"]
        lines.append(f"| {job} | {state} | {one['seconds']:.1f} | {many['seconds']:.1f} | "
                     f"{many['seconds'] / one['seconds']:.2f}x | {min(seen):.1f}-{max(seen):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = make_parser(__doc__)
    parser.add_argument("--models", nargs="+", choices=MODEL_NAMES, default=list(MODEL_NAMES), help="the models timed")
    parser.add_argument("--main-job", action="store_true", help="also time the README's main job (a subprocess)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each model's full-data training")
    parser.add_argument("--train-size", type=int, default=1024, help="digits training samples of each model's run")
    parser.add_argument("--default-threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch's own choice to compare with: the cores this process may use")
    parser.add_argument("--load", type=int, default=1, help="busy-looping processes of the loaded machine")
    parser.add_argument("--repeats", type=int, default=2, help="runs per cell; the fastest counts")
    add_output_arguments(parser, None, "bench_threads.json (default: results/bench_threads)")
    args = parser.parse_args(argv)
    for name in ("epochs", "train_size", "default_threads", "load", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} is invalid; valid: an integer >= 1")
    try:
        TrainerConfig(threads=args.default_threads).validate()
    except ValueError as err:
        parser.error(f"--default-threads: {err}")
    out = output_folder(parser, args, Path("results/bench_threads"), ("bench_threads.json",), "measurement")
    jobs = [*args.models, *(["main job"] if args.main_job else [])]
    rows = measure(jobs, args.default_threads, args.load, args.repeats, args.epochs, args.train_size)
    text = table(rows, args.default_threads)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    command = ["python -m experiments.bench_threads", *(sys.argv[1:] if argv is None else argv)]
    (out / "bench_threads.json").write_text(json.dumps({"command": " ".join(command), "cores": os.cpu_count(),
                                                        "rows": rows, "table": text}, indent=2))
    print(f"wrote {out / 'bench_threads.json'}")
    return rows


cli = console_script(main)

if __name__ == "__main__":
    main()
