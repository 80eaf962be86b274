"""The task suite's leaderboard: one row per method, IQM of its normalised scores with 95% CIs, on both cost
axes, a plot of the same, and what each method kept of every data problem.

Why: the benchmark's tables compare methods on one configuration; a task suite asks which method wins across
data problems, as RL leaderboards do (scores from :mod:`experiments.run.benchmark.scores`).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from envs.core.tasks import PROBLEMS
from experiments.run.benchmark.scores import AXES, CEILING, MIN_GAP, REFERENCE, aggregate, normalised_scores, task_of

LEADERBOARD_FILES = ("leaderboard.md", "leaderboard.png", "scores.json")
AXIS_TITLES = {"backprop": "at equal back-propagated fraction", "wall": "at equal wall-clock (every overhead counted)"}


def problem_share_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task and method: the mean over runs of the kept share of each problem and its base rate
    (:func:`envs.core.tasks.problem_shares`), for the runs that report them."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    for r in records:
        if r.get("problem_shares"):
            groups[(task_of(r), r["method"])].append(r["problem_shares"])
    return [{"task": task, "method": method, "runs": len(shares),
             **{k: statistics.fmean(s[k] for s in shares) for k in shares[0]}}
            for (task, method), shares in sorted(groups.items())]


def _table(aggregates: list[dict[str, Any]], per_task: dict[str, dict[str, float]], tasks: list[str]) -> str:
    head = ("| method | IQM score (95% CI) | P(better than RS2) (95% CI) | tasks x seeds | "
            + " | ".join(f"{t} (mean)" for t in tasks) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for a in aggregates:
        cells = " | ".join(f"{per_task[a['method']][t]:+.0f}" if t in per_task[a["method"]] else "–" for t in tasks)
        lines.append(f"| {a['method']} | {a['iqm']:+.1f} [{a['iqm_low']:+.1f}, {a['iqm_high']:+.1f}] | "
                     f"{a['p_improve']:.2f} [{a['p_low']:.2f}, {a['p_high']:.2f}] | {a['tasks']} x {a['seeds']} | {cells} |")
    return "\n".join(lines)


def _per_task_means(rows: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, float]]:
    """Each leaderboard row's mean score per task (the row name may carry ``@ratio``)."""
    out: dict[str, dict[str, float]] = {}
    for name in names:
        method, _, ratio = name.partition("@")
        mine = [r for r in rows if r["method"] == method and (not ratio or f"{r['ratio']:g}" == ratio)]
        by_task: dict[str, list[float]] = defaultdict(list)
        for r in mine:
            by_task[r["task"]].append(r["score"])
        out[name] = {t: statistics.fmean(v) for t, v in by_task.items()}
    return out


def headroom_markdown(rows: list[dict[str, Any]]) -> str:
    """Per task: the mean headroom (ceiling minus RS2, points, at the scored runs' back-propagated fractions) and
    how many runs it scored; a task missing here had less than ``MIN_GAP`` points of headroom."""
    by_task: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r["headroom"])
    lines = ["| task | headroom: ceiling − RS2 (points) | scored runs |", "|---|---|---|"]
    lines += [f"| {t} | {statistics.fmean(h):.2f} | {len(h)} |" for t, h in sorted(by_task.items())]
    return "\n".join(lines)


def shares_markdown(rows: list[dict[str, Any]]) -> str:
    """The kept-problem table: kept share (base rate) of noisy samples, duplicates and minority-class samples."""
    lines = ["| task | method | " + " | ".join(f"{p} kept (base)" for p in PROBLEMS) + " | runs |",
             "|" + "---|" * (len(PROBLEMS) + 3)]
    for r in rows:
        cells = " | ".join(f"{r[f'kept_{p}']:.3f} ({r[f'base_{p}']:.3f})" if r[f"base_{p}"] > 0 else "–" for p in PROBLEMS)
        lines.append(f"| {r['task']} | {r['method']} | {cells} | {r['runs']} |")
    return "\n".join(lines)


def plot_leaderboard(boards: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    """IQM with its 95% CI, one row per method, a panel per cost axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_used = [a for a in AXES if boards.get(a)]
    fig, axes = plt.subplots(1, max(len(axes_used), 1), figsize=(5.2 * max(len(axes_used), 1), 0.45 * max(
        (len(b) for b in boards.values()), default=1) + 1.6), squeeze=False)
    for ax, axis in zip(axes[0], axes_used):
        board = boards[axis][::-1]
        y = range(len(board))
        ax.errorbar([b["iqm"] for b in board], y, xerr=[[b["iqm"] - b["iqm_low"] for b in board],
                                                         [b["iqm_high"] - b["iqm"] for b in board]],
                    fmt="o", capsize=3)
        ax.set_yticks(list(y), [b["method"] for b in board])
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.axvline(100, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(f"IQM normalised score ({REFERENCE} = 0, {CEILING} = 100)")
        ax.set_title(AXIS_TITLES[axis], fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_leaderboard(records: list[dict[str, Any]], out: Path, title: str, reps: int = 2000) -> str:
    """Write ``leaderboard.md``, ``leaderboard.png`` and ``scores.json`` (every run's score and the aggregates)
    to ``out``; returns the markdown.

    :param records: the task suite's benchmark records
    :param out: the suite's folder
    :param title: heads the page and the plot
    :param reps: bootstrap resamples
    """
    records = [r for r in records if "error" not in r]
    tasks = sorted({task_of(r) for r in records})
    sections = [f"# {title}: leaderboard",
                f"Normalised score: 100 · (top-1 − {REFERENCE}'s top-1 at equal cost) / ({CEILING}'s − {REFERENCE}'s) "
                "(clean: full data's top-1 is the ceiling). IQM over tasks × seeds, stratified-bootstrap 95% CIs and "
                f"the probability of improvement over {REFERENCE} from rliable (docs/tasks.md)."]
    boards, all_scores = {}, {}
    for axis in AXES:
        rows = normalised_scores(records, axis)
        board = aggregate(rows, reps=reps)
        all_scores[axis] = {"runs": rows, "aggregate": board}
        if board:
            boards[axis] = board
            per_task = _per_task_means(rows, [b["method"] for b in board])
            sections += [f"## {AXIS_TITLES[axis]}", _table(board, per_task, [t for t in tasks])]
            if axis == "backprop":
                sections += [f"Headroom per task (a task with less than {MIN_GAP} points gives no score):",
                             headroom_markdown(rows)]
    shares = problem_share_rows(records)
    if shares:
        sections += ["## What each method kept of every problem (kept share, base rate in brackets)", shares_markdown(shares)]
    all_scores["problem_shares"] = shares
    text = "\n\n".join(sections)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text(text + "\n")
    (out / "scores.json").write_text(json.dumps(all_scores, indent=2))
    if boards:
        plot_leaderboard(boards, out / "leaderboard.png", title)
    return text
