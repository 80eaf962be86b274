"""Running a suite: each run once, recorded the moment it ends, so an interrupted suite resumes where it stopped.

Every finished run is appended to ``<out>/runs.jsonl``; a rerun skips the runs already there. With a
:class:`~experiments.run.ray_tasks.RayOptions` each run is a Ray task instead: same records, streamed into the
same file; runs that fail go to ``failed.jsonl`` and the next call retries them.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from tqdm import tqdm

from envs.core.data import load_dataset
from envs.core.tasks import parse_task
from envs.core.trainer import DivergenceError
from experiments.run.benchmark.methods import RUNNERS, RunCache
from experiments.run.benchmark.spec import BenchConfig, RunSpec
from experiments.run.ray_tasks import RayOptions, RunFailure, run_on_ray

def full_backprop(config: BenchConfig, num_train: int) -> int:
    """Samples a full-data run back-propagates: every epoch, every training sample."""
    return config.trainer["epochs"] * num_train


def run_spec(spec: RunSpec, cache: RunCache | None = None) -> dict[str, Any]:
    """Run one benchmark cell with its suite's runner for its method. A run whose model diverges
    returns ``{"error": ...}``: the same seed would diverge again, so it is a result, not a crash.

    :param spec: the run
    :param cache: what runs of this process share (None: a fresh one, nothing shared)
    """
    runner = RUNNERS[spec.suite].get(spec.method)
    if runner is None:
        raise ValueError(f"unknown {spec.suite} method {spec.method!r}; valid choices: {', '.join(RUNNERS[spec.suite])}")
    try:
        return runner(spec, RunCache() if cache is None else cache)
    except DivergenceError as err:
        return {"error": str(err)}


def run_record(spec: RunSpec, result: dict[str, Any], sizes: TrainingSizes) -> dict[str, Any]:
    """The ``runs.jsonl`` line of a finished run; a diverged run's line carries its ``error`` instead of
    metrics (it is listed in the summary and left out of every table)."""
    if result.get("error"):
        return {"key": spec.key, "suite": spec.suite, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
                "error": result["error"], "config": spec.config.as_dict()}
    full = full_backprop(spec.config, result.get("num_train") or sizes.num_train(spec.config, spec.seed))
    return {"key": spec.key, "suite": spec.suite, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
            "top1": result["test"]["top1"], "top5": result["test"]["top5"],
            "backprop": result["ledger"]["samples_backpropagated"], "forwarded": result["ledger"]["samples_forwarded"],
            "backprop_fraction": result["ledger"]["samples_backpropagated"] / full,
            "train_seconds": result["ledger"]["train_seconds"], "overhead_seconds": result["ledger"]["overhead_seconds"],
            "agent_seconds": result["ledger"].get("agent_seconds", 0.0), "eval_seconds": result["ledger"]["eval_seconds"],
            "wall_seconds": result["wall_seconds"], "noisy_kept_fraction": result.get("noisy_kept_fraction"),
            "problem_shares": result.get("problem_shares"),
            "reference_seconds": result["ledger"].get("reference_seconds", 0.0),
            "candidates_seconds": result["ledger"].get("candidates_seconds", 0.0),
            **{k: result[k] for k in ("reference_top1", "class_balance") if k in result},
            "selection_backprop": result.get("selection_backprop", 0),
            **_selection_cost(result, full), "config": spec.config.as_dict()}


def execute(specs: list[RunSpec], out: Path, progress: bool = True, ray: RayOptions | None = None) -> list[dict[str, Any]]:
    """Run every spec not already recorded in ``out/runs.jsonl``; return the records of the finished ones.

    A run whose model diverges is recorded in ``runs.jsonl`` with its ``error`` (see :func:`run_spec`).
    Any other error of a run does not stop the suite: the run is written to ``out/failed.jsonl`` instead
    (rewritten by each call, with its traceback), so that a rerun of the suite retries it. Without ``ray``
    the runs go one after another in this process; with ``ray`` they run as Ray tasks."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    failed_log = out / "failed.jsonl"
    failed_log.unlink(missing_ok=True)
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec
    todo = [s for s in specs if s.key not in done]
    cache, sizes = RunCache(), TrainingSizes()
    if len(todo) < len(specs):
        print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already in {log}")
    outcomes = ((s, _run_or_failure(s, cache)) for s in todo) if ray is None else run_on_ray(todo, run_spec, ray)
    for spec, result in tqdm(outcomes, total=len(todo), desc="runs", disable=not progress):
        if isinstance(result, RunFailure):
            tqdm.write(f"run failed: {spec.method} ratio {spec.ratio} seed {spec.seed}: {result.error}")
            with failed_log.open("a") as f:
                f.write(json.dumps({"key": spec.key, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
                                    "error": result.error, "details": result.details}) + "\n")
            continue
        rec = run_record(spec, result, sizes)
        if "error" in rec:
            tqdm.write(f"run failed: {spec.method} ratio {spec.ratio} seed {spec.seed}: {rec['error']}")
        with log.open("a") as f:  # one line per finished run: an interrupted benchmark loses at most the runs in flight
            f.write(json.dumps(rec) + "\n")
        done[spec.key] = rec
    return [done[s.key] for s in specs if s.key in done]


def _run_or_failure(spec: RunSpec, cache: RunCache) -> dict[str, Any] | RunFailure:
    """:func:`run_spec` in this process; an error other than a divergence becomes a :class:`RunFailure` (as on
    Ray), so one failing run never stops a suite."""
    try:
        return run_spec(spec, cache)
    except Exception as err:  # noqa: BLE001 (recorded with its traceback, retried by the next call)
        return RunFailure(f"{type(err).__name__}: {err}".splitlines()[0], traceback.format_exc())


#: what a benchmark writes into its folder: an earlier benchmark's results
BENCHMARK_OUTPUTS = ("runs.jsonl", "failed.jsonl", "runs.csv", "summary.json", "summary.md", "diagnosis.md")


def continues(folder: Path, suite: str, config: BenchConfig) -> bool:
    """Whether ``folder/runs.jsonl`` holds runs of this suite and these options: a rerun there continues it."""
    log = folder / "runs.jsonl"
    if not log.is_file():
        return False
    same = json.dumps(config.as_dict(), sort_keys=True)
    records = (json.loads(line) for line in log.read_text().splitlines() if line.strip())
    return any(r.get("suite") == suite and json.dumps(r.get("config"), sort_keys=True) == same for r in records)


def _selection_cost(result: dict[str, Any], full: int) -> dict[str, Any]:
    """Static runs: the selection's back-prop as a fraction of one full training, its wall-clock, the trainings on
    the coreset after which it pays for itself (its back-prop over the back-prop each saves) and the diagnosis."""
    if "selection_seconds" not in result:
        return {}
    selection, saved = result["selection_backprop"], full - result["ledger"]["samples_backpropagated"]
    return {"selection_backprop_fraction": selection / full, "selection_seconds": result["selection_seconds"],
            "payoff_trainings": selection / saved if saved > 0 else None, "diagnosis": result["diagnosis"]}


class TrainingSizes:
    """The training-set size of each configuration, loaded once (a record's full-data cost needs it)."""

    def __init__(self) -> None:
        self._sizes: dict[tuple, int] = {}

    def num_train(self, config: BenchConfig, seed: int) -> int:
        """Samples a run of ``config`` with ``seed`` trains on (its holdout, never trained on, left out); a task that
        changes the size (an imbalance) is loaded to count it."""
        if parse_task(config.task).imbalance > 1:
            key = (json.dumps(config.as_dict(), sort_keys=True), seed)
            if key not in self._sizes:
                self._sizes[key] = config.data(seed).load(config.dataset, "cpu").num_train
            return self._sizes[key]
        key = (config.dataset, config.train_size)
        if key not in self._sizes:
            self._sizes[key] = config.train_size or load_dataset(config.dataset, root=config.data_root).num_train
        n = self._sizes[key]
        return n - int(round(config.holdout * n)) if config.holdout else n


