"""Task scores as RL benchmarks report them: a normalised score per run, aggregated with confidence intervals.

Why: RL researchers compare methods by a score normalised between a random policy and an expert, aggregated
over tasks and seeds with the interquartile mean (IQM) and stratified-bootstrap confidence intervals
(Agarwal et al., NeurIPS 2021, the ``rliable`` library). Here the "random policy" is RS2 (random sampling
without replacement, the strongest simple baseline known) and the expert is the oracle that knows what the
task hides (:mod:`envs.methods.oracle`), both at the run's cost:

    score = 100 * (top-1 - RS2's top-1 at equal cost) / (oracle's top-1 at equal cost - RS2's)

So 0 is RS2 and 100 the oracle. On ``clean`` the oracle is random, so full data's top-1 is the ceiling there. Equal
cost is read on two axes (:data:`AXES`): the back-propagated fraction of full-data training, and wall-clock over the
same seed's full-data run, every overhead counted (the agent, the ranking, a reference model). RS2's and the
oracle's curves are interpolated between measured costs (:mod:`experiments.run.benchmark.cost_curves`), closed by full data at
1.0, and averaged over the task's seeds; a run dearer than full data reads them at full data (more budget buys RS2
nothing beyond it). The headroom (denominator) is always read at the run's back-propagated fraction; on the
wall-clock axis only the 0 moves, to RS2 at the run's wall-clock (above full data's wall-clock, to full data): the
oracle has no wall-clock to match, and a method dearer than full data would otherwise face a headroom of zero.
A task whose headroom is less than :data:`MIN_GAP` points gives no score there (0/0 is no measurement).
"""

from __future__ import annotations

import inspect
import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from experiments.run.benchmark.cost_curves import cost_curves, interpolate

#: the cost axes: name -> the record field
AXES = {"backprop": "backprop_fraction", "wall": "wall_fraction"}
REFERENCE, CEILING = "rs2", "oracle"
#: points; a smaller headroom (ceiling - RS2) gives no score: below it, seed noise would set the scale
MIN_GAP = 0.5
#: a run's cost may lie this far below the reference's cheapest measured cost (fixed-size batches pad a little)
TOLERANCE = 0.02


def task_of(record: dict[str, Any]) -> str:
    """The task of a benchmark record (``clean`` for records made before tasks existed)."""
    return record.get("config", {}).get("task", "clean")


def with_wall_fraction(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``records`` with ``wall_fraction``: wall-clock over the full-data run's of the same task and seed
    (records without such a run are left without it)."""
    full = {(task_of(r), r["seed"]): r["wall_seconds"] for r in records if r["method"] == "full"}
    out = []
    for r in records:
        base = full.get((task_of(r), r["seed"]))
        out.append({**r, "wall_fraction": r["wall_seconds"] / base} if base else dict(r))
    return out


def _read(curve: list[tuple[float, float]], x: float) -> float | None:
    """The curve at ``x``, a cost above its dearest point read at that point (full data)."""
    return interpolate(curve, min(x, max(p[0] for p in curve)), TOLERANCE) if curve else None


def _mean_at(per_seed: dict[int, list[tuple[float, float]]], x: float) -> float | None:
    """The mean over seeds of each seed's curve at ``x`` (None where no seed's curve reaches it)."""
    values = [v for pts in per_seed.values() if (v := _read(pts, x)) is not None]
    return statistics.fmean(values) if values else None


def normalised_scores(records: list[dict[str, Any]], axis: str = "backprop") -> list[dict[str, Any]]:
    """Every run's normalised score on ``axis`` (see the module docstring); one row per run that has one.

    The task's headroom (the ceiling minus RS2) is read at the run's back-propagated fraction on both axes; on the
    wall-clock axis RS2's top-1 (the 0) is read at the run's wall-clock. Reference and ceiling are the means over
    the task's seeds of each seed's curve, so a seed whose oracle happens to fall below RS2 does not void a run.

    :param records: benchmark records of a task suite (each with its ``config["task"]``), including RS2,
        the oracle (not needed on ``clean``) and full data
    :param axis: a key of :data:`AXES`
    """
    if axis not in AXES:
        raise ValueError(f"axis={axis!r} is invalid; valid choices: {', '.join(AXES)}")
    field = AXES[axis]
    records = [r for r in with_wall_fraction(records) if "error" not in r and field in r]
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_task[task_of(r)].append(r)
    rows = []
    for task, recs in sorted(by_task.items()):
        backprop, cost = cost_curves(recs), cost_curves(recs, field)
        full = [r["top1"] for r in recs if r["method"] == "full"]
        ratios = {r["ratio"] for r in recs if r["method"] not in ("full", REFERENCE, CEILING)}
        for r in recs:
            if r["method"] in ("full", CEILING) or (r["method"] == REFERENCE and ratios and r["ratio"] not in ratios):
                continue  # RS2's extra points (benchmark --suite tasks) only shape its curve
            low = _mean_at(backprop.get(REFERENCE, {}), r["backprop_fraction"])
            high = (statistics.fmean(full) if full else None) if task == "clean" else _mean_at(
                backprop.get(CEILING, {}), r["backprop_fraction"])
            zero = low if axis == "backprop" else _mean_at(cost.get(REFERENCE, {}), r[field])
            if low is None or high is None or zero is None or high - low < MIN_GAP:
                continue
            rows.append({"task": task, "method": r["method"], "ratio": r["ratio"], "seed": r["seed"], "axis": axis,
                         "cost": r[field], "top1": r["top1"], "reference_top1": zero, "headroom": high - low,
                         "score": 100.0 * (r["top1"] - zero) / (high - low)})
    return rows


def _rliable():
    """rliable's library and metrics. rliable 1.2 passes ``random_state=`` to arch's bootstraps, which arch 8
    renamed ``seed``; arch < 8 (rliable's pin) does not import under pandas 3. With arch 8, the keyword is
    mapped here (the one change; its draws come from NumPy's global generator either way, seeded by the caller)."""
    from arch.bootstrap import base
    from rliable import library, metrics

    for cls in (base.IIDBootstrap, base.IndependentSamplesBootstrap):
        init = cls.__init__
        if "random_state" not in inspect.signature(init).parameters and not getattr(init, "maps_random_state", False):
            def mapped(self, *args, random_state=None, seed=None, _init=init, **kwargs):
                _init(self, *args, seed=random_state if seed is None else seed, **kwargs)
            mapped.maps_random_state = True
            cls.__init__ = mapped
    return library, metrics


def score_matrices(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per method (``method`` or, when a method ran at several ratios, ``method@ratio``), its scores as a
    ``(seeds, tasks)`` matrix over the seeds it has on every one of its tasks (rliable's layout)."""
    ratios = defaultdict(set)
    for r in rows:
        ratios[r["method"]].add(r["ratio"])
    cells: dict[str, dict[tuple[int, str], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        name = r["method"] if len(ratios[r["method"]]) == 1 else f"{r['method']}@{r['ratio']:g}"
        cells[name][(r["seed"], r["task"])].append(r["score"])
    out = {}
    for name, c in cells.items():
        tasks = sorted({t for _, t in c})
        seeds = sorted(s for s in {s for s, _ in c} if all((s, t) in c for t in tasks))
        if seeds:
            out[name] = np.array([[np.mean(c[(s, t)]) for t in tasks] for s in seeds])
    return out


def aggregate(rows: list[dict[str, Any]], reps: int = 2000, seed: int = 0) -> list[dict[str, Any]]:
    """Per method: the IQM of its normalised scores over tasks x seeds with a stratified-bootstrap 95% CI, and
    the probability of improvement over RS2 (whose score is 0 by definition) with its CI, all from ``rliable``.

    :param rows: :func:`normalised_scores` of one axis
    :param reps: bootstrap resamples
    :param seed: seeds NumPy's global generator, which rliable's resampling draws from
    """
    library, metrics = _rliable()
    matrices = score_matrices(rows)
    if not matrices:
        return []
    np.random.seed(seed)
    iqm = lambda x: np.array([metrics.aggregate_iqm(x)])  # noqa: E731 (rliable's func signature)
    point, interval = library.get_interval_estimates(matrices, iqm, reps=reps)
    pairs = {name: (m, np.zeros_like(m)) for name, m in matrices.items()}
    p_point, p_interval = library.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
    out = []
    for name, m in matrices.items():
        out.append({"method": name, "iqm": float(point[name][0]), "iqm_low": float(interval[name][0][0]),
                    "iqm_high": float(interval[name][1][0]), "p_improve": float(np.squeeze(p_point[name])),
                    "p_low": float(np.squeeze(p_interval[name][0])), "p_high": float(np.squeeze(p_interval[name][1])),
                    "seeds": m.shape[0], "tasks": m.shape[1], "mean": float(m.mean())})
    return sorted(out, key=lambda r: -r["iqm"])
