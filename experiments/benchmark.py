"""Benchmark selection methods on equal terms: same trainer, data, model, schedule, seeds and cost ledger.

    python -m experiments.benchmark --suite dynamic --dataset digits --model cnn --epochs 6 --seeds 0 1 2
    python -m experiments.benchmark --suite static --dataset digits --ratios 0.3 0.5 0.7 --seeds 0 1 2

Every finished run is appended to ``<out>/runs.jsonl`` as it ends. A rerun skips the runs already there, so an
interrupted benchmark resumes where it stopped. At the end the script writes ``runs.csv``, ``summary.json`` and
``summary.md`` (mean ± std over seeds), and draws ``accuracy_vs_cost.png`` and ``accuracy_vs_ratio.png``.

Dynamic suite: each method trains the inner model once per (ratio, seed). ``ratio`` is the kept fraction per
pruned epoch. For InfoBatch it is converted to its pruned fraction of below-mean samples: ``prune = 1 - ratio``.
Static suite: each method selects a coreset at ``ratio``. A fresh model then trains on it for ``--epochs``, with
the same recipe for every method, and its test accuracy is reported. The back-prop column counts the training
on the coreset. The selection's own cost sits beside it: back-propagated samples (the proxy run that feature- and
score-based methods share, one per seed, or RL-Selector's selection run), its wall-clock (the agent included) and
after how many trainings on the coreset it pays for itself (selection back-prop / back-prop saved per training).
``cover`` is the paper's "ε-cover degree without RL" on the proxy's features. RL-Selector runs as
``rlselector_<algo>`` (the paper's reconstruction), ``rlselector_a2c_<variant>`` (a remedy of
:data:`RL_SELECTOR_VARIANTS`) and ``rlselector_random`` (the same env driven by uniform random actions: the
agent's control). Every static run also records :func:`envs.diagnosis.diagnose_coreset` of its coreset on the
seed's proxy features (``diagnosis.md``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import envs  # noqa: F401  (registers the env ids)
from envs.baselines.dynamic import make_dynamic_selector, run_dynamic
from envs.baselines.static import LABEL_ONLY_METHODS, STATIC_METHODS, ProxyScores, run_proxy, select_coreset
from envs.data import load_dataset
from envs.diagnosis import diagnose_coreset
from envs.trainer import Trainer, TrainerConfig, resolve_device
from experiments.cli import add_trainer_arguments, trainer_options

DYNAMIC_BASELINES = ("full", "random", "infobatch", "ucb", "epsgreedy", "loss_topk", "composite")
STATIC_BASELINES = ("random", *(m for m in STATIC_METHODS if m != "random"))
DATA_AGENT_METHODS = ("dataagent_ppo", "dataagent_a2c", "dataagent_ppo_loss", "dataagent_ppo_entropy")
#: CoverSelect-v0 remedies (``rlselector_a2c_<name>``): extra ``experiments.train`` options of the selection run
RL_SELECTOR_VARIANTS: dict[str, list[str]] = {
    "balanced": ["--class-budget", "--degree-norm", "rank"],  # per-class budget and per-class degree ranks
    "difficulty": ["--class-budget", "--degree-norm", "rank", "--reward", "cover_difficulty"],
    "degreeheavy": ["--ratio-scale", "0.25"],  # the degree term weighs 4x more against the ratio term
    "eps10": ["--epsilon", "quantile:0.1"],  # ε = the class's 10% distance quantile instead of its mean
    "short": ["--class-budget", "--degree-norm", "rank", "--epochs", "2"],  # a 2-epoch selection run
}
RL_SELECTOR_METHODS = ("rlselector_a2c", "rlselector_ppo", *(f"rlselector_a2c_{v}" for v in RL_SELECTOR_VARIANTS),
                       "rlselector_random")


@dataclass(frozen=True)
class RunSpec:
    """One benchmark cell: a method at a ratio with a seed, under a shared configuration."""

    suite: str
    method: str
    ratio: float
    seed: int
    config: dict[str, Any]

    @property
    def key(self) -> str:
        blob = json.dumps([self.suite, self.method, self.ratio, self.seed, self.config], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _trainer(spec: RunSpec) -> Trainer:
    c = spec.config
    dev = resolve_device(c["device"])
    data = load_dataset(c["dataset"], device=dev, train_size=c["train_size"], noise=c["noise"],
                        noise_rate=c["noise_rate"], seed=spec.seed, root=c["data_root"])
    return Trainer(data, c["model"], TrainerConfig(**c["trainer"]), seed=spec.seed)


def run_dynamic_baseline(spec: RunSpec) -> dict[str, Any]:
    trainer = _trainer(spec)
    selector = make_dynamic_selector(spec.method, trainer, keep_ratio=spec.ratio, prune_ratio=1.0 - spec.ratio,
                                     anneal=spec.config["anneal"])
    out = run_dynamic(trainer, selector)
    return out


_PROXIES: dict[tuple[str, int], ProxyScores] = {}


def _proxy(spec: RunSpec, trainer: Trainer) -> ProxyScores:
    """One proxy (scoring) run per configuration and seed, shared by every static method of that seed."""
    key = (json.dumps(spec.config, sort_keys=True), spec.seed)
    if key not in _PROXIES:
        _PROXIES[key] = run_proxy(trainer.dataset, spec.config["model"], trainer.config,
                                  score_epochs=spec.config["score_epochs"], seed=spec.seed)
    return _PROXIES[key]


def run_static_baseline(spec: RunSpec) -> dict[str, Any]:
    """Select a coreset at ``spec.ratio`` from the proxy run's scores, then train a fresh model on it."""
    trainer = _trainer(spec)
    source = trainer.dataset.train_y if spec.method in LABEL_ONLY_METHODS else _proxy(spec, trainer)
    coreset = select_coreset(spec.method, source, spec.ratio, seed=spec.seed)
    ledger = coreset.ledger
    return _train_on_coreset(spec, trainer, coreset.indices, ledger, ledger["train_seconds"] + ledger["overhead_seconds"])


def _train_on_coreset(spec: RunSpec, trainer: Trainer, indices: np.ndarray, selection_ledger: dict[str, Any],
                      selection_seconds: float) -> dict[str, Any]:
    """Train ``trainer``'s fresh model on the coreset for the configured epochs; test metrics, both costs and
    the coreset's diagnosis on the seed's proxy features (computed after the training, which it cannot affect)."""
    data = trainer.dataset
    idx = torch.as_tensor(indices, device=trainer.device)
    start = time.perf_counter()
    for _ in range(trainer.config.epochs):
        trainer.train_epoch(idx)
    result = {"test": trainer.evaluate(), "ledger": trainer.ledger.as_dict(), "wall_seconds": time.perf_counter() - start,
              "selection_backprop": selection_ledger.get("samples_backpropagated", 0), "selection_seconds": selection_seconds,
              "noisy_kept_fraction": float(data.noisy_mask[idx].float().mean()) if bool(data.noisy_mask.any()) else None}
    proxy = _proxy(spec, trainer)
    result["diagnosis"] = diagnose_coreset(indices, proxy.features, proxy.labels, data.noisy_mask)
    return result


def _train_argv(spec: RunSpec, env_id: str, algo: str, out: str) -> list[str]:
    """``experiments.train`` arguments for the spec's shared configuration."""
    c, t = spec.config, spec.config["trainer"]
    argv = ["--env", env_id, "--algo", algo, "--dataset", c["dataset"], "--model", c["model"], "--epochs", str(t["epochs"]),
            "--batch-size", str(t["batch_size"]), "--lr", str(t["lr"]), "--schedule", t["schedule"],
            "--weight-decay", str(t["weight_decay"]), "--label-smoothing", str(t["label_smoothing"]),
            "--device", c["device"], "--seed", str(spec.seed), "--reference", "none", "--out", out, "--no-progress"]
    for flag, key in (("--train-size", "train_size"), ("--data-root", "data_root"), ("--noise", "noise")):
        if c[key] is not None:
            argv += [flag, str(c[key])]
    if c["noise"] is not None:
        argv += ["--noise-rate", str(c["noise_rate"])]
    return argv + (["--amp"] if t["amp"] else [])


def run_data_agent(spec: RunSpec) -> dict[str, Any]:
    """Data Agent (``dataagent_<algo>[_<reward>]``): agent and inner model trained together by ``experiments.train``."""
    from experiments import train

    _, algo, *reward = spec.method.split("_")
    with tempfile.TemporaryDirectory() as out:
        argv = _train_argv(spec, "DataAgent-v0", algo, out) + ["--keep-ratio", str(spec.ratio), "--anneal", str(spec.config["anneal"])]
        result = train.main(argv + (["--reward", reward[0]] if reward else []))
    return result["run"]


def run_rl_selector(spec: RunSpec) -> dict[str, Any]:
    """RL-Selector (``rlselector_<algo>[_<variant>]``): select a coreset with ``CoverSelect-v0`` and an agent,
    then train a fresh model on it. ``rlselector_random`` drives the same env with uniform random actions."""
    from experiments import train

    _, algo, *variant = spec.method.split("_")
    with tempfile.TemporaryDirectory() as out:
        argv = _train_argv(spec, "CoverSelect-v0", "a2c" if algo == "random" else algo, out)
        argv += ["--target-ratio", str(spec.ratio), *(RL_SELECTOR_VARIANTS[variant[0]] if variant else [])]
        if algo == "random":
            indices, ledger, wall = _random_actions_selection(train.env_kwargs(train.build_parser().parse_args(argv)), spec.seed)
        else:
            selection = train.main(argv)
            indices = np.load(selection["coreset"]["path"])
            ledger, wall = selection["run"]["ledger"], selection["run"]["wall_seconds"]
    return _train_on_coreset(spec, _trainer(spec), indices, ledger, wall)


def _random_actions_selection(env_kwargs: dict[str, Any], seed: int) -> tuple[np.ndarray, dict[str, Any], float]:
    """One ``CoverSelect-v0`` episode with seeded uniform random actions: its coreset, ledger and wall-clock."""
    env = gym.make("CoverSelect-v0", **env_kwargs).unwrapped
    start = time.perf_counter()
    env.reset(seed=seed)
    env.action_space.seed(seed)
    truncated = False
    while not truncated:
        truncated = env.step(env.action_space.sample())[3]
    indices = env.coreset()
    return indices, env.trainer.ledger.as_dict(), time.perf_counter() - start


RUNNERS: dict[str, dict[str, Callable[[RunSpec], dict[str, Any]]]] = {
    "dynamic": {**{m: run_dynamic_baseline for m in DYNAMIC_BASELINES}, **{m: run_data_agent for m in DATA_AGENT_METHODS}},
    "static": {**{m: run_static_baseline for m in STATIC_BASELINES}, **{m: run_rl_selector for m in RL_SELECTOR_METHODS}},
}


SELECTION_FIELDS = ("selection_backprop_fraction", "selection_seconds", "payoff_trainings")
DIAGNOSIS_FIELDS = ("outlier_share", "core_share", "centre_distance", "class_tv", "min_class_share", "noisy_share")


def full_backprop(config: dict[str, Any], num_train: int) -> int:
    return config["trainer"]["epochs"] * num_train


def execute(specs: list[RunSpec], out: Path, progress: bool = True) -> list[dict[str, Any]]:
    """Run every spec not already recorded in ``out/runs.jsonl``; return all records."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "runs.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec
    todo = [s for s in specs if s.key not in done]
    if len(todo) < len(specs):
        print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already in {log}")
    for spec in tqdm(todo, desc="runs", disable=not progress):
        runner = RUNNERS[spec.suite].get(spec.method)
        if runner is None:
            raise ValueError(f"unknown {spec.suite} method {spec.method!r}; valid choices: {', '.join(RUNNERS[spec.suite])}")
        result = runner(spec)
        n = result.get("num_train") or _num_train(spec)
        rec = {"key": spec.key, "suite": spec.suite, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
               "top1": result["test"]["top1"], "top5": result["test"]["top5"],
               "backprop": result["ledger"]["samples_backpropagated"], "forwarded": result["ledger"]["samples_forwarded"],
               "backprop_fraction": result["ledger"]["samples_backpropagated"] / full_backprop(spec.config, n),
               "train_seconds": result["ledger"]["train_seconds"], "overhead_seconds": result["ledger"]["overhead_seconds"],
               "wall_seconds": result["wall_seconds"], "noisy_kept_fraction": result.get("noisy_kept_fraction"),
               "selection_backprop": result.get("selection_backprop", 0),
               **_selection_cost(result, full_backprop(spec.config, n)), "config": spec.config}
        with log.open("a") as f:  # one line per finished run: an interrupted benchmark loses at most the run in flight
            f.write(json.dumps(rec) + "\n")
        done[spec.key] = rec
    return [done[s.key] for s in specs]


def _selection_cost(result: dict[str, Any], full: int) -> dict[str, Any]:
    """Static runs: the selection's back-prop as a fraction of one full training, its wall-clock, the trainings on
    the coreset after which it pays for itself (its back-prop over the back-prop each saves) and the diagnosis."""
    if "selection_seconds" not in result:
        return {}
    selection, saved = result["selection_backprop"], full - result["ledger"]["samples_backpropagated"]
    return {"selection_backprop_fraction": selection / full, "selection_seconds": result["selection_seconds"],
            "payoff_trainings": selection / saved if saved > 0 else None, "diagnosis": result["diagnosis"]}


_SIZE_CACHE: dict[tuple, int] = {}


def _num_train(spec: RunSpec) -> int:
    c = spec.config
    key = (c["dataset"], c["train_size"])
    if key not in _SIZE_CACHE:
        _SIZE_CACHE[key] = c["train_size"] or load_dataset(c["dataset"], root=c["data_root"]).num_train
    return _SIZE_CACHE[key]


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (sample std; 0 for one seed) per (method, ratio)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["method"], r["ratio"])].append(r)
    rows = []
    for (method, ratio), rs in groups.items():
        row: dict[str, Any] = {"method": method, "ratio": ratio, "seeds": len(rs)}
        for field in ("top1", "top5", "backprop_fraction", "wall_seconds", "overhead_seconds", "noisy_kept_fraction",
                      *SELECTION_FIELDS):
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


def markdown(rows: list[dict[str, Any]]) -> str:
    noisy = any("noisy_kept_fraction" in r for r in rows)
    selection = any("selection_seconds" in r for r in rows)
    head = ("| method | ratio | top-1 (%) | top-5 (%) | back-prop (of full) | wall (s) | seeds |" + (" noisy kept |" if noisy else "")
            + (" selection back-prop (of full) | selection wall (s) | pays off after (trainings) |" if selection else ""))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['method']} | {r['ratio']:.2f} | {r['top1']:.2f} ± {r['top1_std']:.2f} | {r['top5']:.2f} ± {r['top5_std']:.2f} "
                f"| {r['backprop_fraction']:.3f} | {r['wall_seconds']:.1f} | {r['seeds']} |")
        if noisy:
            v = r.get("noisy_kept_fraction")
            line += f" {v:.3f} |" if v is not None else " – |"
        if selection:
            payoff = r.get("payoff_trainings")
            line += (f" {r.get('selection_backprop_fraction', 0.0):.3f} | {r.get('selection_seconds', 0.0):.1f} |"
                     + (f" {payoff:.2f} |" if payoff is not None else " – |"))
        lines.append(line)
    return "\n".join(lines)


def diagnosis_markdown(rows: list[dict[str, Any]]) -> str:
    """What each method's coresets keep (means over seeds; :func:`envs.diagnosis.diagnose_coreset`)."""
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
    rows = summarise(records)
    with (out / "runs.csv").open("w", newline="") as f:
        fields = [k for k in records[0] if k != "config"]
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (out / "summary.md").write_text(f"# {title}\n\n{table}\n")
    if any("diag_outlier_share" in r for r in rows):
        (out / "diagnosis.md").write_text(f"# {title}: what the coresets keep\n\n{diagnosis_markdown(rows)}\n")
    plot(rows, out, title)
    return table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=tuple(RUNNERS), default="dynamic")
    p.add_argument("--methods", default=None, help="comma-separated; default: every method of the suite")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.5], help="kept fraction (dynamic) or coreset ratio (static)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--anneal", type=float, default=0.875, help="fraction of epochs with selection (dynamic)")
    p.add_argument("--score-epochs", type=int, default=2,
                   help="static: epochs of the proxy run before its scores are read (EL2N, GraNd... are early-training scores)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/<suite>-<dataset>-<model>)")
    add_trainer_arguments(p)
    return p


def main(argv: list[str] | None = None) -> str:
    parser = build_parser()
    args = parser.parse_args(argv)
    methods = args.methods.split(",") if args.methods else list(RUNNERS[args.suite])
    unknown = [m for m in methods if m not in RUNNERS[args.suite]]
    if unknown:
        parser.error(f"--methods: unknown {args.suite} method(s) {unknown}; valid choices: {', '.join(RUNNERS[args.suite])}")
    checks = [("--ratios", args.ratios, all(0 < r < 1 for r in args.ratios), "values in (0, 1)"),
              ("--anneal", args.anneal, 0 <= args.anneal <= 1, "[0, 1]"),
              ("--score-epochs", args.score_epochs, args.score_epochs >= 1, "an integer >= 1")]
    for name, value, ok, valid in checks:
        if not ok:
            parser.error(f"{name}={value} is invalid; valid: {valid}")
    config = {"dataset": args.dataset, "data_root": args.data_root, "model": args.model, "train_size": args.train_size,
              "noise": args.noise, "noise_rate": args.noise_rate, "device": args.device, "anneal": args.anneal,
              "score_epochs": min(args.score_epochs, args.epochs),
              "trainer": trainer_options(args)}
    try:
        TrainerConfig(**config["trainer"]).validate()
    except ValueError as err:
        parser.error(str(err))
    specs = [RunSpec(args.suite, m, r, s, config) for r in args.ratios for m in methods for s in args.seeds
             if not (m == "full" and r != args.ratios[0])]  # full data does not depend on the ratio
    out = args.out or Path("results") / f"{args.suite}-{args.dataset.replace(':', '_').replace('/', '_')}-{args.model}"
    records = execute(specs, out)
    noise = f", {args.noise} noise {args.noise_rate:.0%}" if args.noise else ""
    title = f"{args.suite}: {args.dataset} / {args.model}, {args.epochs} epochs{noise}"
    table = write_outputs(records, out, title)
    print(table)
    print(f"\nwritten: {out}/runs.jsonl, runs.csv, summary.json, summary.md, accuracy_vs_cost.png, accuracy_vs_ratio.png")
    return table


if __name__ == "__main__":
    main()
