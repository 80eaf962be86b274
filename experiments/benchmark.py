"""Benchmark selection methods on equal terms: same trainer, data, model, schedule, seeds and cost ledger.

    python -m experiments.benchmark --suite dynamic --dataset digits --model cnn --epochs 6 --seeds 0 1 2
    python -m experiments.benchmark --suite static --dataset digits --keep-ratios 0.3 0.5 0.7 --seeds 0 1 2
    python -m experiments.benchmark --suite tasks --tasks clean noisy redundant imbalanced:100 --seeds 0 1 2

``--suite tasks`` runs the dynamic methods on every data problem of ``--tasks`` (docs/tasks.md) and adds a
leaderboard: normalised scores between RS2 and the oracle, IQM with confidence intervals (``experiments.run.scores``,
``experiments.run.leaderboard``); ``--instances`` and ``--load-agent`` run a saved agent on held-out instances.

Every finished run is appended to ``<out>/runs.jsonl`` as it ends. A rerun skips the runs already there, so an
interrupted benchmark resumes where it stopped. At the end the script writes ``runs.csv``, ``summary.json`` and
``summary.md`` (mean ± std over seeds), and draws ``accuracy_vs_cost.png`` and ``accuracy_vs_ratio.png``.
With ``--ray local|auto|HOST:PORT`` each run is a Ray task instead (``experiments.ray_runs``): same records,
streamed into the same ``runs.jsonl``; runs that fail go to ``failed.jsonl`` and the next call retries them.

Dynamic suite: each method trains the inner model once per (keep ratio, seed). The keep ratio is the kept
fraction per pruned epoch. For InfoBatch it is converted to its own parameter, the pruned fraction of below-mean
samples: ``prune = 1 - keep ratio`` (``--prune-ratios`` sets InfoBatch's own list, so that its costs can bracket
the others'). Data Agent runs as
``dataagent_<policy>[_<variant>]``: the policy is an SB3 agent (``ppo``, ``a2c``) or a control that replaces it
(``const``: every action 0; ``randact``: uniform actions), the variant a preset of DataAgent-v0 options
(:data:`DATA_AGENT_VARIANTS`; none: the paper's). ``stale`` (least recently trained first) is the staleness-only
control. Methods are compared at equal cost: ``summary.md`` adds each run's top-1 minus random's and InfoBatch's
at the same back-propagated fraction (same seed, interpolated between measured costs), and the largest saving
within 0.3 and 1.0 points of full data. Wall-clock includes the agent (``agent_seconds``: the time an env spent
waiting for its next action), and ``wall (of full)`` divides it by the full-data run's of the same seed.
Static suite: each method selects a coreset of ``keep ratio`` of the training set. A fresh model then trains on it for ``--epochs``, with
the same recipe for every method, and its test accuracy is reported. The back-prop column counts the training
on the coreset. The selection's own cost sits beside it: back-propagated samples (the proxy run that feature- and
score-based methods share, one per seed, or RL-Selector's selection run), its wall-clock (the agent included) and
after how many trainings on the coreset it pays for itself (selection back-prop / back-prop saved per training).
``cover`` is the paper's "ε-cover degree without RL" on the proxy's features. RL-Selector runs as
``rlselector_<algo>`` (the paper's reconstruction), ``rlselector_a2c_<variant>`` (a remedy of
:data:`RL_SELECTOR_VARIANTS`) and ``rlselector_random`` (the same env driven by uniform random actions: the
agent's control). Every static run also records :func:`envs.methods.diagnosis.diagnose_coreset` of its coreset on the
seed's proxy features (``diagnosis.md``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import inspect
import json
import statistics
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

import envs  # noqa: F401  (registers the env ids)
from agents.presets import ALGOS
from envs.core.data import DataConfig, load_dataset
from envs.core.instances import SPLITS, InstanceGrid
from envs.core.tasks import parse_task, task_slug
from envs.core.reference import REFERENCE_KINDS, ReferenceConfig, ReferenceScores, attach_reference, load_reference
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig, resolve_device
from envs.methods.baselines.dynamic import DYNAMIC_BASELINES, make_dynamic_selector, run_dynamic
from envs.methods.baselines.static import STATIC_BASELINES, ProxyScores, run_proxy, select_coreset, with_reference
from envs.methods.coreset import train_and_evaluate
from envs.methods.diagnosis import diagnose_coreset
from envs.methods.oracle import real_methods
from envs.methods.selection import SELECTION_OPTIONS, AnnealedTopKSelector
from experiments.cli import (add_output_arguments, add_seeds_argument, add_trainer_arguments, console_script,
                             make_parser, task_spec, trainer_config)
from experiments.ray_runs import RayOptions, RayResourceError, RunFailure, add_ray_arguments, ray_options, run_on_ray
from experiments.run import RunConfig, env_kwargs, load_run_config, run_training
from experiments.run.cost_curves import cost_curves, interpolate
from experiments.run.leaderboard import LEADERBOARD_FILES, write_leaderboard
from experiments.run.scores import CEILING, REFERENCE

# Data Agent variants: DataAgent-v0 options on top of the paper's (`paper`, the replication preset); the key
# "hyperparams" overrides the agent's preset instead, per algorithm (e.g. fewer update epochs: a cheaper agent).
DATA_AGENT_VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {},
    "loss": {"reward": "loss"},
    "entropy": {"reward": "entropy"},
    "centered": {"reward_baseline": "batch_mean"},
    "budget": {"reward_baseline": "keep_quantile"},
    "refresh": {"reward_baseline": "keep_quantile", "refresh": 0.2},
    "soft": {"reward_baseline": "keep_quantile", "selection": "soft"},
    "signals": {"reward_baseline": "keep_quantile", "selection": "soft", "state": "signals"},
    "importance": {"reward_baseline": "keep_quantile", "selection": "importance", "refresh": 0.5},
    "importance_signals": {"reward_baseline": "keep_quantile", "selection": "importance", "refresh": 0.5,
                           "state": "signals"},
    # the agent's own cost: one pass over each rollout (PPO; A2C: a rollout of 4 batches instead of 1), or 32-32 networks
    "budget_fast": {"reward_baseline": "keep_quantile", "hyperparams": {"ppo": {"n_epochs": 1}, "a2c": {"n_steps": 4}}},
    "budget_small": {"reward_baseline": "keep_quantile", "hyperparams": {
        algo: {"policy_kwargs": {"net_arch": {"pi": [32, 32], "vf": [32, 32]}}} for algo in ALGOS}},
    # kept losses weighted 1 instead of 1 / keep ratio: the loss scale under the same learning rate
    "unweighted": {"loss_weight": 1.0},
    # learnability (envs.core.reference): "reference" gives the env the benchmark's reference model; candidate
    # mode forwards 1 / keep ratio candidates per trained sample and trains the chosen share in the same step
    "learnability": {"state": "signals", "reward": "learnability", "reward_baseline": "keep_quantile", "reference": True},
    "candidates": {"state": "signals", "reward": "learnability", "reward_baseline": "keep_quantile", "reference": True,
                   "selection": "candidates"},
}
# Who acts: an SB3 agent, or a control that replaces the policy (the same env, selector and reward).
CONTROL_POLICIES = ("const", "randact")
DATA_AGENT_POLICIES = (*ALGOS, *CONTROL_POLICIES)


def data_agent_method_name(policy: str, variant: str) -> str:
    """``dataagent_<policy>[_<variant>]``; the paper's preset has no suffix."""
    return f"dataagent_{policy}" + ("" if variant == "paper" else f"_{variant}")


DATA_AGENT_METHODS = tuple(data_agent_method_name(p, v) for p in DATA_AGENT_POLICIES for v in DATA_AGENT_VARIANTS)
#: CoverSelect-v0 remedies (``rlselector_a2c_<name>``): env options of the selection run; the key "trainer"
#: overrides inner-training options of the selection run instead
RL_SELECTOR_VARIANTS: dict[str, dict[str, Any]] = {
    "balanced": {"class_budget": True, "degree_norm": "rank"},  # per-class budget and per-class degree ranks
    "difficulty": {"class_budget": True, "degree_norm": "rank", "reward": "cover_difficulty"},
    "degreeheavy": {"ratio_scale": 0.25},  # the degree term weighs 4x more against the ratio term
    "eps10": {"epsilon": "quantile:0.1"},  # ε = the class's 10% distance quantile instead of its mean
    "short": {"class_budget": True, "degree_norm": "rank", "trainer": {"epochs": 2}},  # a 2-epoch selection run
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


def _data_config(spec: RunSpec) -> DataConfig:
    """The spec's data options, seeded by its seed (a holdout only when the benchmark sets one)."""
    c = spec.config
    return DataConfig(train_size=c["train_size"], task=c["task"], root=c["data_root"],
                      holdout=c.get("holdout"), trusted=c.get("trusted", False), seed=spec.seed)


def _trainer(spec: RunSpec) -> Trainer:
    c = spec.config
    data = _data_config(spec).load(c["dataset"], resolve_device(c["device"]))
    return Trainer(data, c["model"], TrainerConfig(**c["trainer"]), seed=spec.seed)


def _reference_options(spec: RunSpec) -> dict[str, Any]:
    """The cell's reference model: ``--reference`` (default: the holdout when there is one, else swapped halves)."""
    return {"kind": "holdout" if spec.config.get("holdout") else "halves", **spec.config.get("reference", {})}


def _reference(spec: RunSpec, trainer: Trainer) -> ReferenceScores:
    """The cell's reference scores (trained once per data seed and configuration, then read from the cache)."""
    return load_reference(trainer.dataset, spec.config["model"], trainer.config, ReferenceConfig(**_reference_options(spec)),
                          asdict(_data_config(spec)), spec.seed)


def run_dynamic_baseline(spec: RunSpec) -> dict[str, Any]:
    """A dynamic baseline; InfoBatch's ``ratio`` is ``1 - prune_ratio`` (see the module docstring), a per-batch
    method's candidate factor ``1 / ratio`` (its back-propagated share). ``rholoss`` pays for its reference
    model: its ledger and wall-clock include the reference's training, cached or not."""
    trainer = _trainer(spec)
    reference = _reference(spec, trainer) if spec.method == "rholoss" else None
    if reference is not None:
        attach_reference(trainer, reference)
    selector = make_dynamic_selector(spec.method, trainer, keep_ratio=spec.ratio, prune_ratio=1.0 - spec.ratio,
                                     anneal=spec.config["anneal"], candidate_factor=1.0 / spec.ratio)
    out = run_dynamic(trainer, selector)
    return out if reference is None else {**out, "reference_top1": reference.top1}


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
    needs = STATIC_BASELINES[spec.method].needs
    source = (trainer.dataset.train_y if needs == "labels" else trainer.dataset if needs == "provenance"
              else _proxy(spec, trainer))
    if spec.method == "reducible_loss":  # it alone reads (and pays for) the cell's reference model
        source = with_reference(source, _reference(spec, trainer))
    coreset = select_coreset(spec.method, source, spec.ratio, seed=spec.seed)
    ledger = coreset.ledger
    return _train_on_coreset(spec, trainer, coreset.indices, ledger, ledger["train_seconds"] + ledger["overhead_seconds"]
                             + ledger.get("reference_seconds", 0.0))


def _train_on_coreset(spec: RunSpec, trainer: Trainer, indices: np.ndarray, selection_ledger: dict[str, Any],
                      selection_seconds: float) -> dict[str, Any]:
    """Train ``trainer``'s fresh model on the coreset for the configured epochs; test metrics, both costs and
    the coreset's diagnosis on the seed's proxy features (computed after the training, which it cannot affect)."""
    data = trainer.dataset
    idx = torch.as_tensor(indices, device=trainer.device)
    result = {**train_and_evaluate(trainer, idx),
              "selection_backprop": selection_ledger.get("samples_backpropagated", 0), "selection_seconds": selection_seconds,
              "noisy_kept_fraction": float(data.noisy_mask[idx].float().mean()) if bool(data.noisy_mask.any()) else None,
              "problem_shares": data.problem_shares(idx)}
    proxy = _proxy(spec, trainer)
    result["diagnosis"] = diagnose_coreset(indices, proxy.features, proxy.labels, data.noisy_mask)
    return result


def run_config(spec: RunSpec, env_id: str, algo: str, env_options: dict[str, Any], out: Path,
               **changes: Any) -> RunConfig:
    """The run library's configuration of one agent run on the spec's shared configuration; ``changes``
    replace any of its other fields (``trainer`` options are merged into the spec's)."""
    c = spec.config
    trainer = TrainerConfig(**{**c["trainer"], **changes.pop("trainer", {})})
    return RunConfig(env=env_id, algo=algo, seed=spec.seed, dataset=c["dataset"], model=c["model"],
                     data=replace(_data_config(spec), seed=None),
                     device=c["device"], trainer=trainer, env_options=env_options, reference=False, out=out,
                     checkpoint_every=0, progress=False, **changes)


def data_agent_method(method: str) -> tuple[str, str]:
    """``dataagent_<policy>[_<variant>]`` -> the policy and the variant's name (a key of :data:`DATA_AGENT_VARIANTS`);
    the inverse of :func:`data_agent_method_name`."""
    _, policy, *variant = method.split("_", 2)
    return policy, variant[0] if variant else "paper"


def run_data_agent(spec: RunSpec) -> dict[str, Any]:
    """Data Agent (``dataagent_<policy>[_<variant>]``). With ``ppo``/``a2c`` the agent and the inner model
    train together through the run library (:func:`experiments.run.run_training`); ``const`` (every action 0) and ``randact`` (uniform
    actions) are controls that run the same env, selector and reward with the policy replaced. A variant with a
    reference model gets the cell's, trained before the run starts; its training time is added to the run's
    wall-clock (as :func:`run_dynamic_baseline` does)."""
    policy, variant = data_agent_method(spec.method)
    options = {**DATA_AGENT_VARIANTS[variant], "keep_ratio": spec.ratio, "anneal": spec.config["anneal"]}
    hyperparams = options.pop("hyperparams", {}).get(policy, {})
    if options.pop("reference", False):
        options["reference"] = _reference_options(spec)
        _reference(spec, _trainer(spec))  # into the cache now, so the run's wall-clock adds its cost exactly once
    if options.get("selection") == "candidates":
        options["candidate_factor"] = 1.0 / spec.ratio
    with tempfile.TemporaryDirectory() as out:
        if policy in CONTROL_POLICIES:  # the algorithm is not used: no agent is built
            result = _run_data_agent_control(run_config(spec, "DataAgent-v0", "ppo", options, Path(out)), policy)
        else:
            result = run_training(run_config(spec, "DataAgent-v0", policy, options, Path(out),
                                             hyperparams=hyperparams)).metrics["run"]
    if "reference" in options and "ledger" in result:
        result["wall_seconds"] += result["ledger"].get("reference_seconds", 0.0)
    return result


def run_loaded_agent(spec: RunSpec) -> dict[str, Any]:
    """``dataagent_loaded``: a saved agent (``--load-agent <run>/agent.zip``) acting with its policy, no updates, on
    the spec's data (a held-out instance: docs/tasks.md), with its run's env options at the spec's ratio."""
    path = Path(spec.config["load_agent"])
    saved = load_run_config(path.parent)
    options = {**saved.env_options, "keep_ratio": spec.ratio, "anneal": spec.config["anneal"]}
    with tempfile.TemporaryDirectory() as out:
        return run_training(run_config(spec, saved.env, saved.algo, options, Path(out), load_agent=path,
                                       no_learn=True, hyperparams=saved.hyperparams)).metrics["run"]


def _run_data_agent_control(config: RunConfig, policy: str) -> dict[str, Any]:
    """One DataAgent-v0 run driven by a fixed rule instead of a policy: what the learned part must beat."""
    env = gym.make("DataAgent-v0", **env_kwargs(config))
    rng = np.random.default_rng(config.seed)
    start = time.perf_counter()
    obs, info = env.reset(seed=config.seed)
    shape = env.action_space.shape
    done = False
    while not done:
        action = np.zeros(shape, np.float32) if policy == "const" else rng.uniform(-1, 1, shape).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return {"test": info["final_test"], "ledger": info["ledger"], "wall_seconds": time.perf_counter() - start,
            "noisy_kept_fraction": info.get("noisy_kept_fraction"), "problem_shares": info.get("problem_shares"),
            "error": info.get("error")}


def run_rl_selector(spec: RunSpec) -> dict[str, Any]:
    """RL-Selector (``rlselector_<algo>[_<variant>]``): select a coreset with ``CoverSelect-v0`` and an agent,
    then train a fresh model on it. ``rlselector_random`` drives the same env with uniform random actions."""
    _, algo, *variant = spec.method.split("_")
    options = {**(RL_SELECTOR_VARIANTS[variant[0]] if variant else {}), "keep_ratio": spec.ratio}
    trainer = options.pop("trainer", {})
    with tempfile.TemporaryDirectory() as out:
        config = run_config(spec, "CoverSelect-v0", "a2c" if algo == "random" else algo, options, Path(out), trainer=trainer)
        if algo == "random":
            indices, ledger, wall = _random_actions_selection(env_kwargs(config), spec.seed)
        else:
            selection = run_training(config).metrics
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


# The DATA_AGENT_VARIANTS entry that BENCHMARKS.md's data supports. No variant beat its controls (BENCHMARKS.md, "Data Agent at equal cost"),
# so the paper's preset stays the recommendation.
RECOMMENDED_VARIANT = "paper"

#: a saved agent acting without learning (``--load-agent``), never a default or "all" method
LOADED_AGENT = "dataagent_loaded"

RUNNERS: dict[str, dict[str, Callable[[RunSpec], dict[str, Any]]]] = {
    "dynamic": {**{m: run_dynamic_baseline for m in DYNAMIC_BASELINES}, **{m: run_data_agent for m in DATA_AGENT_METHODS},
                LOADED_AGENT: run_loaded_agent},
    "static": {**{m: run_static_baseline for m in STATIC_BASELINES}, **{m: run_rl_selector for m in RL_SELECTOR_METHODS}},
}

# the oracles read what a task hides: never a default or "all" method, only the ceiling of the task suite
DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "dynamic": tuple(dict.fromkeys((*real_methods(DYNAMIC_BASELINES), *(data_agent_method_name(a, "paper") for a in ALGOS),
                                    *(data_agent_method_name(p, RECOMMENDED_VARIANT) for p in DATA_AGENT_POLICIES)))),
    "static": real_methods(RUNNERS["static"]),
}
#: the task suite (dynamic runs on every task): RS2 (the scores' 0) and the oracle (their 100), each also at 3/4
#: of every keep ratio (half diverged: kept losses weigh 1 / keep ratio), full data (closes the cost curves), random, InfoBatch, UCB, loss top-k and Data Agent's paper preset with its controls
TASK_SUITE = "tasks"
TASK_SUITE_METHODS = ("rs2", "oracle", "full", "random", "infobatch", "ucb", "loss_topk",
                      *(data_agent_method_name(p, "paper") for p in ("ppo", *CONTROL_POLICIES)))
DEFAULT_TASKS = ("clean", "noisy", "redundant", "imbalanced:100")


SELECTION_FIELDS = ("selection_backprop_fraction", "selection_seconds", "payoff_trainings")
DIAGNOSIS_FIELDS = ("outlier_share", "core_share", "centre_distance", "class_tv", "min_class_share", "noisy_share")


def full_backprop(config: dict[str, Any], num_train: int) -> int:
    return config["trainer"]["epochs"] * num_train


def run_spec(spec: RunSpec) -> dict[str, Any]:
    """Run one benchmark cell with its suite's runner for its method. A run whose model diverges
    returns ``{"error": ...}``: the same seed would diverge again, so it is a result, not a crash."""
    runner = RUNNERS[spec.suite].get(spec.method)
    if runner is None:
        raise ValueError(f"unknown {spec.suite} method {spec.method!r}; valid choices: {', '.join(RUNNERS[spec.suite])}")
    try:
        return runner(spec)
    except DivergenceError as err:
        return {"error": str(err)}


def run_record(spec: RunSpec, result: dict[str, Any]) -> dict[str, Any]:
    """The ``runs.jsonl`` line of a finished run; a diverged run's line carries its ``error`` instead of
    metrics (it is listed in the summary and left out of every table)."""
    if result.get("error"):
        return {"key": spec.key, "suite": spec.suite, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
                "error": result["error"], "config": spec.config}
    full = full_backprop(spec.config, result.get("num_train") or _num_train(spec))
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
            **_selection_cost(result, full), "config": spec.config}


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
    if len(todo) < len(specs):
        print(f"resuming: {len(specs) - len(todo)} of {len(specs)} runs already in {log}")
    outcomes = ((s, _run_or_failure(s)) for s in todo) if ray is None else run_on_ray(todo, run_spec, ray)
    for spec, result in tqdm(outcomes, total=len(todo), desc="runs", disable=not progress):
        if isinstance(result, RunFailure):
            tqdm.write(f"run failed: {spec.method} ratio {spec.ratio} seed {spec.seed}: {result.error}")
            with failed_log.open("a") as f:
                f.write(json.dumps({"key": spec.key, "method": spec.method, "ratio": spec.ratio, "seed": spec.seed,
                                    "error": result.error, "details": result.details}) + "\n")
            continue
        rec = run_record(spec, result)
        if "error" in rec:
            tqdm.write(f"run failed: {spec.method} ratio {spec.ratio} seed {spec.seed}: {rec['error']}")
        with log.open("a") as f:  # one line per finished run: an interrupted benchmark loses at most the runs in flight
            f.write(json.dumps(rec) + "\n")
        done[spec.key] = rec
    return [done[s.key] for s in specs if s.key in done]


def _run_or_failure(spec: RunSpec) -> dict[str, Any] | RunFailure:
    """:func:`run_spec` in this process; an error other than a divergence becomes a :class:`RunFailure` (as on
    Ray), so one failing run never stops a suite."""
    try:
        return run_spec(spec)
    except Exception as err:  # noqa: BLE001 (recorded with its traceback, retried by the next call)
        return RunFailure(f"{type(err).__name__}: {err}".splitlines()[0], traceback.format_exc())


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
    """The training-set size of the spec's data: ``train_size``, less the holdout; a task that changes the size
    (an imbalance) is loaded to count it."""
    c = spec.config
    if parse_task(c.get("task", "clean")).imbalance > 1:
        key = (json.dumps(c, sort_keys=True), spec.seed)
        if key not in _SIZE_CACHE:
            _SIZE_CACHE[key] = _data_config(spec).load(c["dataset"], "cpu").num_train
        return _SIZE_CACHE[key]
    key = (c["dataset"], c["train_size"])
    if key not in _SIZE_CACHE:
        _SIZE_CACHE[key] = c["train_size"] or load_dataset(c["dataset"], root=c["data_root"]).num_train
    n = _SIZE_CACHE[key]
    return n - int(round(c["holdout"] * n)) if c.get("holdout") else n  # the holdout is never trained on


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


_SELECTOR_DEFAULTS = {name: inspect.signature(AnnealedTopKSelector).parameters[name].default for name in SELECTION_OPTIONS}


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


def suite_methods(text: str | None, suite: str, default: tuple[str, ...]) -> list[str]:
    """The ``--methods`` of a suite: comma-separated names, ``all`` (every real method, no oracle) or ``default``."""
    if not text:
        return list(default)
    names = [m.strip() for m in text.split(",") if m.strip()]
    return [m for m in real_methods(RUNNERS[suite]) if m != LOADED_AGENT] if names == ["all"] else names


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


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", choices=(*RUNNERS, TASK_SUITE), default="dynamic",
                   help="dynamic (per-epoch pruning), static (coresets) or tasks (the dynamic methods on every --tasks "
                        "problem, scored against RS2 and the oracle: a leaderboard, docs/tasks.md)")
    p.add_argument("--methods", default=None,
                   help="comma-separated, or all (every real method: no oracle); default: the suite's baselines, Data "
                        "Agent's paper preset and recommended variant with its controls (dynamic), every method (static), "
                        f"{','.join(TASK_SUITE_METHODS)} (tasks)")
    p.add_argument("--tasks", type=task_spec, nargs="+", default=list(DEFAULT_TASKS),
                   help="--suite tasks: the data problems (docs/tasks.md)")
    p.add_argument("--instances", choices=SPLITS, default="all",
                   help="--suite tasks: run the training or the held-out test instances of the grid --tasks x --dataset "
                        "x --seeds (the last quarter of the seeds is held out; envs.core.instances)")
    p.add_argument("--load-agent", type=Path, default=None, metavar="AGENT_ZIP",
                   help=f"add {LOADED_AGENT}: this saved agent (a train run's agent.zip) acting with its policy, no updates")
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
    tasks = args.suite == TASK_SUITE
    suite = "dynamic" if tasks else args.suite  # a task suite runs dynamic methods on every task
    if tasks and args.task != "clean":
        parser.error("--task is one problem; with --suite tasks, name them all with --tasks")
    methods = suite_methods(args.methods, suite, TASK_SUITE_METHODS if tasks else DEFAULT_METHODS[suite])
    if args.load_agent is not None:
        if suite != "dynamic" or not (args.load_agent.parent / "config.yml").is_file():
            parser.error(f"--load-agent {args.load_agent}: valid: the agent.zip of an experiments.train run (its folder "
                         "holds config.yml), with --suite dynamic or tasks")
        methods.append(LOADED_AGENT)
    if args.instances != "all":
        if not tasks:
            parser.error("--instances needs --suite tasks (the instance grid is --tasks x --dataset x --seeds)")
        try:
            args.seeds = list(InstanceGrid(tuple(args.tasks), (args.dataset,), tuple(args.seeds)).split_seeds(args.instances))
        except ValueError as err:
            parser.error(f"--instances {args.instances}: {err}")
    unknown = [m for m in methods if m not in RUNNERS[suite]]
    if unknown:
        parser.error(f"--methods: unknown {suite} method(s) {unknown}; valid choices: all, {', '.join(RUNNERS[suite])}")
    checks = [("--keep-ratios", args.keep_ratios, all(0 < r < 1 for r in args.keep_ratios), "values in (0, 1)"),
              ("--prune-ratios", args.prune_ratios, all(0 <= r < 1 for r in args.prune_ratios or []), "values in [0, 1)"),
              ("--anneal", args.anneal, 0 <= args.anneal <= 1, "[0, 1]"),
              ("--score-epochs", args.score_epochs, args.score_epochs >= 1, "an integer >= 1")]
    for name, value, ok, valid in checks:
        if not ok:
            parser.error(f"{name}={value} is invalid; valid: {valid}")
    config = {"dataset": args.dataset, "data_root": args.data_root, "model": args.model, "train_size": args.train_size,
              "task": args.task, "device": args.device, "anneal": args.anneal,
              "score_epochs": min(args.score_epochs, args.epochs),
              "trainer": trainer_config(args).as_dict()}
    # learnability options join the configuration (and the run keys) only when set: earlier runs keep their keys
    config.update({k: v for k, v in (("holdout", args.holdout), ("trusted", args.trusted)) if v})
    if args.load_agent is not None:
        config["load_agent"] = str(args.load_agent.resolve())
    reference = {k: v for k, v in (("kind", args.reference), ("epochs", args.reference_epochs)) if v is not None}
    if reference:
        config["reference"] = reference
    try:
        TrainerConfig(**config["trainer"]).validate()
        DataConfig(holdout=args.holdout, trusted=args.trusted).validate()
        ReferenceConfig(**_reference_options(RunSpec(args.suite, "", 0.5, 0, config))).validate()
        if config.get("reference", {}).get("kind") == "holdout" and not args.holdout:
            raise ValueError("--reference holdout needs --holdout; valid: --holdout <fraction in (0, 0.5]>, or --reference halves")
        ray = ray_options(args)
    except ValueError as err:
        parser.error(str(err))
    def ratios(method: str) -> list[float]:
        if method == "full":  # full data does not depend on the ratio
            return args.keep_ratios[:1]
        if method == "infobatch" and args.prune_ratios is not None:
            return [round(1.0 - p, 6) for p in args.prune_ratios]
        if tasks and method in (REFERENCE, CEILING):  # their curves must reach below every method's wall-clock
            return sorted({*args.keep_ratios, *(round(0.75 * r, 6) for r in args.keep_ratios)})
        return args.keep_ratios

    configs = [{**config, "task": t} for t in args.tasks] if tasks else [config]
    specs = [RunSpec(suite, m, r, s, c) for c in configs for m in methods for r in ratios(m) for s in args.seeds]
    out = args.out or Path("results") / f"{args.suite}-{args.dataset.replace(':', '_').replace('/', '_')}-{args.model}"
    try:
        records = execute(specs, out, progress=not args.no_progress, ray=ray)
    except RayResourceError as err:
        parser.error(str(err))
    if not records:
        parser.exit(1, f"error: every run failed; their errors are in {out}/failed.jsonl\n")
    task = f", task {args.task}" if args.task != "clean" else ""
    title = f"{args.suite}: {args.dataset} / {args.model}, {args.epochs} epochs{task}"
    if tasks:
        table = write_task_outputs(records, out, title, args.tasks)
    else:
        table = write_outputs(records, out, title)
        print(f"\nwritten: {out}/runs.jsonl, runs.csv, summary.json, summary.md, accuracy_vs_cost.png, accuracy_vs_ratio.png")
    print(table)
    if len(records) < len(specs):
        parser.exit(1, f"error: {len(specs) - len(records)} of {len(specs)} runs failed; their errors are in "
                       f"{out}/failed.jsonl. The same command retries them and keeps the finished runs.\n")
    return table


cli = console_script(main)

if __name__ == "__main__":
    main()
