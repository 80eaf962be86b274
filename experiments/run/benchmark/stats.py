"""The suite's statistics: mean ± std over seeds, accuracy at equal cost, savings near full data, and what a learned
policy adds over its controls.

Methods are compared at equal cost: :func:`matched_cost` gives each run's top-1 minus a reference method's at the
same back-propagated fraction (same seed, interpolated between the reference's measured costs), and
:func:`savings_within` the largest saving within 0.3 and 1.0 points of full data. Wall-clock includes the agent
(``agent_seconds``: the time an env spent waiting for its next action), and ``wall_fraction`` divides it by the
full-data run's of the same seed.
"""

from __future__ import annotations

import inspect
import statistics
from collections import defaultdict
from typing import Any

from envs.methods.selection import SELECTION_OPTIONS, AnnealedTopKPlanner
from experiments.run.benchmark.cost_curves import cost_curves, interpolate
from experiments.run.benchmark.methods import CONTROL_POLICIES, DATA_AGENT_VARIANTS, data_agent_method

SELECTION_FIELDS = ("selection_backprop_fraction", "selection_seconds", "payoff_trainings")
DIAGNOSIS_FIELDS = ("outlier_share", "core_share", "centre_distance", "class_tv", "min_class_share", "noisy_share")


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (sample std; 0 for one seed) per (method, ratio). ``wall_fraction`` is a run's
    wall-clock, agent included, over the full-data run's of the same seed (when the suite has one);
    ``agent_share`` the part of a run's own wall-clock that its agent took (robust to a machine whose
    load changes between runs, which ``wall_fraction`` is not)."""
    full_wall = {r["seed"]: r["wall_seconds"] for r in records if r["method"] == "full"}
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["method"], r["ratio"])].append(r)
    rows = []
    for (method, ratio), rs in groups.items():
        row: dict[str, Any] = {"method": method, "ratio": ratio, "seeds": len(rs)}
        for r in rs:
            if r["seed"] in full_wall:
                r["wall_fraction"] = r["wall_seconds"] / full_wall[r["seed"]]
            if r.get("wall_seconds"):
                r["agent_share"] = r.get("agent_seconds", 0.0) / r["wall_seconds"]
        for field in ("top1", "top5", "backprop_fraction", "wall_seconds", "wall_fraction", "agent_seconds", "agent_share",
                      "overhead_seconds", "noisy_kept_fraction", *SELECTION_FIELDS):
            vals = [r[field] for r in rs if r.get(field) is not None]
            if vals:
                row[field] = statistics.fmean(vals)
                row[f"{field}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        for field in DIAGNOSIS_FIELDS:
            vals = [r["diagnosis"][field] for r in rs if field in r.get("diagnosis", {})]
            if vals:
                row[f"diag_{field}"] = statistics.fmean(vals)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["ratio"], -r["top1"]))


def matched_cost(records: list[dict[str, Any]], references: tuple[str, ...] = ("random", "infobatch")) -> list[dict[str, Any]]:
    """Each run's top-1 minus a reference method's top-1 *at the same back-propagated fraction*, the
    reference's curve (same seed) interpolated linearly between its measured costs. Mean ± std over
    seeds per (method, ratio); a difference is left out where the run's cost lies outside the
    reference's measured range."""
    curves = cost_curves(records)
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["method"] != "full":
            groups[(r["method"], r["ratio"])].append(r)
    rows = []
    for (method, ratio), rs in sorted(groups.items()):
        row: dict[str, Any] = {"method": method, "ratio": ratio, "backprop_fraction": statistics.fmean(r["backprop_fraction"] for r in rs),
                               "top1": statistics.fmean(r["top1"] for r in rs)}
        for ref in references:
            if ref == method or ref not in curves:
                continue
            diffs = [r["top1"] - y for r in rs
                     if (y := interpolate(curves[ref].get(r["seed"], []), r["backprop_fraction"])) is not None]
            if diffs:
                row[f"vs_{ref}"] = statistics.fmean(diffs)
                row[f"vs_{ref}_std"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
                row[f"vs_{ref}_seeds"] = len(diffs)
        rows.append(row)
    return rows


def savings_within(records: list[dict[str, Any]], tolerances: tuple[float, ...] = (0.3, 1.0)) -> list[dict[str, Any]]:
    """Per method, the largest saving ``1 - back-prop fraction`` at which its mean accuracy curve (mean
    over seeds per ratio, closed by full data at 1.0) stays within each tolerance (points) of full
    data. ``None``: no cost gets that close. ``at_least``: the cheapest measured point is already
    within it, so the true saving may be larger. ``to_full``: the crossing lies between the method's
    most expensive measured point and full data, i.e. on a line drawn to full data, not between two
    of its own measurements (an estimate, not a measurement)."""
    full = [r["top1"] for r in records if r["method"] == "full"]
    if not full:
        return []
    full_top1 = statistics.fmean(full)
    means: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for row in summarise(records):
        if row["method"] != "full":
            means[row["method"]].append((row["backprop_fraction"], row["top1"]))
    out = []
    for method, pts in sorted(means.items()):
        pts = sorted(pts) + [(1.0, full_top1)]
        row: dict[str, Any] = {"method": method}
        for tol in tolerances:
            goal = full_top1 - tol
            cost, at_least, to_full = None, False, False
            if pts[0][1] >= goal:
                cost, at_least = pts[0][0], True
            else:
                for i, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:])):
                    if y0 < goal <= y1:
                        cost, to_full = x0 + (goal - y0) * (x1 - x0) / (y1 - y0), i == len(pts) - 2
                        break
            row[f"within_{tol:g}"] = None if cost is None else 1.0 - cost
            row[f"within_{tol:g}_at_least"] = at_least
            row[f"within_{tol:g}_to_full"] = to_full
        out.append(row)
    return out


_SELECTOR_DEFAULTS = {name: inspect.signature(AnnealedTopKPlanner).parameters[name].default for name in SELECTION_OPTIONS}


def _selection_signature(variant: str) -> tuple:
    """What a control of ``variant`` must share with it: how the kept set follows from the scores (the reward,
    state and agent settings do not change what constant or random actions select)."""
    return tuple(DATA_AGENT_VARIANTS[variant].get(name, default) for name, default in _SELECTOR_DEFAULTS.items())


def control_margins(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each learned Data Agent run's top-1 minus its controls' at the same ratio and seed: constant actions and
    uniform actions on the same selection (``dataagent_const_*``, ``dataagent_randact_*``), and ``stale``. The
    learned policy's contribution is this margin. Mean ± std over the seeds both have."""
    by_cell = {(r["method"], r["ratio"], r["seed"]): r["top1"] for r in records}
    controls: dict[tuple, dict[str, str]] = defaultdict(dict)
    parsed = {m: data_agent_method(m) for m in {r["method"] for r in records} if m.startswith("dataagent_")}
    for method, (policy, variant) in parsed.items():
        if policy in CONTROL_POLICIES:
            controls[_selection_signature(variant)][policy] = method
    rows = []
    for (method, ratio) in sorted({(r["method"], r["ratio"]) for r in records}):
        if method not in parsed or parsed[method][0] in CONTROL_POLICIES:
            continue
        refs = {**controls.get(_selection_signature(parsed[method][1]), {}), "stale": "stale"}
        row: dict[str, Any] = {"method": method, "ratio": ratio}
        for name, ref in refs.items():
            diffs = [top1 - by_cell[(ref, ratio, seed)] for (m, r, seed), top1 in by_cell.items()
                     if m == method and r == ratio and (ref, ratio, seed) in by_cell]
            if diffs:
                row[f"vs_{name}"] = statistics.fmean(diffs)
                row[f"vs_{name}_std"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        if len(row) > 2:
            rows.append(row)
    return rows
