"""Accuracy along cost: each method's (cost, top-1) curve per seed and its value at any cost in between.

Why one module: the benchmark's equal-cost tables and the task scores (:mod:`experiments.run.benchmark.scores`)
compare runs at the same cost, interpolating a reference method's curve between its measured costs. Written
once here, "at equal cost" means the same thing in both.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def interpolate(points: list[tuple[float, float]], x: float, tolerance: float = 1e-9) -> float | None:
    """Piecewise-linear ``y(x)`` through ``(x, y)`` points; None outside their range widened by ``tolerance``
    (no extrapolation: within the tolerance, the nearest end's value).

    :param points: the measured ``(cost, top-1)`` points, in any order
    :param x: the cost to read the curve at
    :param tolerance: how far outside the measured range a cost still reads the nearest end
    """
    pts = sorted(points)
    if not pts or not pts[0][0] - tolerance <= x <= pts[-1][0] + tolerance:
        return None
    x = min(max(x, pts[0][0]), pts[-1][0])
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def cost_curves(records: list[dict[str, Any]], x_field: str = "backprop_fraction") -> dict[str, dict[int, list[tuple[float, float]]]]:
    """Per method and seed, its ``(x_field, top-1)`` points. Full data, the limit of every method at a kept
    fraction of 1, closes each curve at its own seed's point.

    :param records: benchmark records (``method``, ``seed``, ``top1`` and ``x_field``)
    :param x_field: the cost axis: ``backprop_fraction``, or a wall-clock field
    """
    full = {r["seed"]: (r[x_field], r["top1"]) for r in records if r["method"] == "full"}
    curves: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["method"] != "full":
            curves[r["method"]][r["seed"]].append((r[x_field], r["top1"]))
    for per_seed in curves.values():
        for seed, pts in per_seed.items():
            if seed in full:
                pts.append(full[seed])
    return curves
