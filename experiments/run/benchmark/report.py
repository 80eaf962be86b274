"""The suite's report: markdown tables, plots and the files a finished suite leaves (``runs.csv``, ``summary.json``,
``summary.md``, ``diagnosis.md`` for the static suite, ``accuracy_vs_cost.png`` and ``accuracy_vs_ratio.png``)."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from envs.core.tasks import task_slug
from experiments.run.benchmark.leaderboard import LEADERBOARD_FILES, write_leaderboard
from experiments.run.benchmark.stats import (DIAGNOSIS_FIELDS, control_margins, matched_cost, savings_within,
                                                  summarise)

def control_margins_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| learned method | ratio | Δ vs constant actions | Δ vs random actions | Δ vs stale |"
    lines = [head, "|---|---|---|---|---|"]
    for r in rows:
        cells = " | ".join(f"{r[f'vs_{n}']:+.2f} ± {r[f'vs_{n}_std']:.2f}" if f"vs_{n}" in r else "–"
                           for n in ("const", "randact", "stale"))
        lines.append(f"| {r['method']} | {r['ratio']:.2f} | {cells} |")
    return "\n".join(lines)


def _pm(row: dict[str, Any], field: str, fmt: str = ".2f") -> str:
    return f"{row[field]:{fmt}} ± {row[f'{field}_std']:{fmt}}" if field in row else "–"


def markdown(rows: list[dict[str, Any]]) -> str:
    noisy = any("noisy_kept_fraction" in r for r in rows)
    selection = any("selection_seconds" in r for r in rows)
    head = ("| method | ratio | top-1 (%) | top-5 (%) | back-prop (of full) | wall (of full) | agent (of wall) | wall (s) | seeds |"
            + (" noisy kept |" if noisy else "")
            + (" selection back-prop (of full) | selection wall (s) | pays off after (trainings) |" if selection else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        wall = f"{r['wall_fraction']:.2f}" if "wall_fraction" in r else "–"
        line = (f"| {r['method']} | {r['ratio']:.2f} | {_pm(r, 'top1')} | {_pm(r, 'top5')} "
                f"| {r['backprop_fraction']:.3f} | {wall} | {r.get('agent_share', 0.0):.0%} | {r['wall_seconds']:.1f} | {r['seeds']} |")
        if noisy:
            v = r.get("noisy_kept_fraction")
            line += f" {v:.3f} |" if v is not None else " – |"
        if selection:
            payoff = r.get("payoff_trainings")
            line += (f" {r.get('selection_backprop_fraction', 0.0):.3f} | {r.get('selection_seconds', 0.0):.1f} |"
                     + (f" {payoff:.2f} |" if payoff is not None else " – |"))
        lines.append(line)
    return "\n".join(lines)


def matched_cost_markdown(rows: list[dict[str, Any]], references: tuple[str, ...] = ("random", "infobatch")) -> str:
    """The matched-cost table: top-1 differences (points) against each reference at equal back-propagation."""
    head = "| method | ratio | back-prop (of full) | top-1 (%) | " + " | ".join(f"Δ vs {r} at equal cost" for r in references) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (r["ratio"], -r["top1"])):
        deltas = " | ".join(f"{r[f'vs_{ref}']:+.2f} ± {r[f'vs_{ref}_std']:.2f}" if f"vs_{ref}" in r else "–" for ref in references)
        lines.append(f"| {r['method']} | {r['ratio']:.2f} | {r['backprop_fraction']:.3f} | {r['top1']:.2f} | {deltas} |")
    return "\n".join(lines)


def savings_markdown(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], tol: float) -> str:
        v = row[f"within_{tol:g}"]
        if v is None:
            return "none"
        prefix = "≥ " if row[f"within_{tol:g}_at_least"] else ("~" if row[f"within_{tol:g}_to_full"] else "")
        return f"{prefix}{v:.0%}"

    lines = ["| method | largest saving within 0.3 points of full | within 1.0 point |", "|---|---|---|"]
    lines += [f"| {r['method']} | {cell(r, 0.3)} | {cell(r, 1.0)} |" for r in rows]
    lines += ["", "≥: already within at the cheapest measured cost. ~: on the line from the method's most expensive "
              "measured cost to full data, an estimate rather than a measurement."]
    return "\n".join(lines)


def diagnosis_markdown(rows: list[dict[str, Any]]) -> str:
    """What each method's coresets keep (means over seeds; :func:`envs.methods.diagnosis.diagnose_coreset`)."""
    fields = [f for f in DIAGNOSIS_FIELDS if any(f"diag_{f}" in r for r in rows)]
    head = "| method | ratio | " + " | ".join(fields) + " |"
    lines = [head, "|" + "---|" * (len(fields) + 2)]
    for r in rows:
        if any(f"diag_{f}" in r for f in fields):
            cells = [f"{r[f'diag_{f}']:.3f}" if f"diag_{f}" in r else "–" for f in fields]
            lines.append(f"| {r['method']} | {r['ratio']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[r["method"]].append(r)
    for x_field, x_label, name in (("backprop_fraction", "back-propagated samples (fraction of full data)", "accuracy_vs_cost.png"),
                                   ("ratio", "selection ratio", "accuracy_vs_ratio.png")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for i, (method, rs) in enumerate(sorted(by_method.items())):
            rs = sorted(rs, key=lambda r: r[x_field])
            # colours repeat after 10 methods: a marker per block of 10 keeps every line distinct
            ax.errorbar([r[x_field] for r in rs], [r["top1"] for r in rs], yerr=[r["top1_std"] for r in rs],
                        marker="osD^v"[i // 10 % 5], capsize=3, label=method)
        ax.set_xlabel(x_label)
        ax.set_ylabel("test top-1 (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        paths.append(out / name)
    return paths


def write_outputs(records: list[dict[str, Any]], out: Path, title: str) -> str:
    failed = [r for r in records if "error" in r]
    records = [r for r in records if "error" not in r]
    if not records:
        text = "\n".join(f"failed: {r['method']} ratio {r['ratio']} seed {r['seed']}: {r['error']}" for r in failed)
        (out / "summary.md").write_text(f"# {title}\n\nevery run failed\n\n{text}\n")
        return text
    rows = summarise(records)
    with (out / "runs.csv").open("w", newline="") as f:
        fields = [k for k in records[0] if k != "config"]
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    table = markdown(rows)
    sections = [f"# {title}", table]
    summary: dict[str, Any] = {"rows": rows}
    if records[0]["suite"] == "dynamic":
        matched, saved, margins = matched_cost(records), savings_within(records), control_margins(records)
        summary.update(matched_cost=matched, savings=saved, control_margins=margins)
        sections += ["## Accuracy at equal back-propagated fraction (same seed, interpolated)", matched_cost_markdown(matched)]
        if margins:
            sections += ["## What the learned policy adds: margin over its controls (same ratio and seed)",
                         control_margins_markdown(margins)]
        if saved:
            sections += ["## Largest saving that stays close to full data", savings_markdown(saved)]
    if failed:
        summary["failed"] = [{k: r[k] for k in ("method", "ratio", "seed", "error")} for r in failed]
        sections += ["## Failed runs (left out of every table above)",
                     "\n".join(f"- {r['method']} ratio {r['ratio']} seed {r['seed']}: {r['error']}" for r in failed)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    text = "\n\n".join(sections)
    (out / "summary.md").write_text(text + "\n")
    if any("diag_outlier_share" in r for r in rows):
        (out / "diagnosis.md").write_text(f"# {title}: what the coresets keep\n\n{diagnosis_markdown(rows)}\n")
    plot(rows, out, title)
    return text


def write_task_outputs(records: list[dict[str, Any]], out: Path, title: str, tasks: list[str]) -> str:
    """A task suite's outputs: each task's usual tables in ``out/<task>/`` and the leaderboard in ``out``."""
    for task in tasks:
        mine = [r for r in records if r["config"].get("task") == task]
        if mine:
            (out / task_slug(task)).mkdir(parents=True, exist_ok=True)
            write_outputs(mine, out / task_slug(task), f"{title}, task {task}")
    board = write_leaderboard(records, out, title)
    print(f"\nwritten: {out}/runs.jsonl, {out}/<task>/ (each task's tables), {', '.join(LEADERBOARD_FILES)}")
    return board
