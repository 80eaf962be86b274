"""The benchmark's methods: the catalogue (every baseline, Data Agent and RL-Selector with their variants and
controls) and the runner of each, which trains on the suite's shared trainer, data and ledger.

Dynamic suite: each method trains the inner model once per (keep ratio, seed). The keep ratio is the kept
fraction per pruned epoch. For InfoBatch it is converted to its own parameter, the pruned fraction of below-mean
samples: ``prune = 1 - keep ratio``. Data Agent runs as ``dataagent_<policy>[_<variant>]``: the policy is an SB3
agent (``ppo``, ``a2c``) or a control that replaces it (``const``: every action 0; ``randact``: uniform actions),
the variant a preset of DataAgent-v0 options (:data:`DATA_AGENT_VARIANTS`; none: the paper's). ``stale`` (least
recently trained first) is the staleness-only control.

Static suite: each method selects a coreset of ``keep ratio`` of the training set; a fresh model then trains on
it with the same recipe for every method. Feature- and score-based methods share one proxy run per seed
(:class:`RunCache`). ``cover`` is the paper's "ε-cover degree without RL" on the proxy's features. RL-Selector
runs as ``rlselector_<algo>`` (the paper's reconstruction), ``rlselector_a2c_<variant>`` (a remedy of
:data:`RL_SELECTOR_VARIANTS`) and ``rlselector_random`` (the same env driven by uniform random actions: the
agent's control). Every static run also records :func:`envs.methods.diagnosis.diagnose_coreset` of its coreset
on the seed's proxy features.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the env ids)
from agents.presets import ALGOS
from envs.core.reference import ReferenceConfig, ReferenceScores, attach_reference, load_reference
from envs.core.trainer import Trainer, resolve_device
from envs.methods.baselines.dynamic import DYNAMIC_BASELINES, DynamicSetup, make_dynamic_baseline, run_dynamic
from envs.methods.baselines.static import STATIC_BASELINES, ProxyScores, run_proxy, select_coreset, with_reference
from envs.methods.coreset import train_and_evaluate
from envs.methods.diagnosis import diagnose_coreset
from envs.methods.oracle import real_methods
from experiments.run.benchmark.spec import RunSpec
from experiments.run.config import RunConfig, env_kwargs
from experiments.run.training import load_run_config, run_training

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


@dataclass
class RunCache:
    """What runs of one process share instead of recomputing: the static suite's proxy run per configuration and
    seed. Passed to every runner (a Ray worker gets its own), never a module global."""

    proxies: dict[tuple[str, int], ProxyScores] = field(default_factory=dict)

    def proxy(self, spec: RunSpec, trainer: Trainer) -> ProxyScores:
        """The proxy (scoring) run of ``spec``'s configuration and seed, shared by every static method of that seed."""
        key = (json.dumps(spec.config.as_dict(), sort_keys=True), spec.seed)
        if key not in self.proxies:
            self.proxies[key] = run_proxy(trainer.dataset, spec.config.model, trainer.config,
                                          score_epochs=spec.config.score_epochs, seed=spec.seed)
        return self.proxies[key]


def _trainer(spec: RunSpec) -> Trainer:
    c = spec.config
    data = c.data(spec.seed).load(c.dataset, resolve_device(c.device))
    return Trainer(data, c.model, c.trainer_config(), seed=spec.seed)


def _reference(spec: RunSpec, trainer: Trainer) -> ReferenceScores:
    """The cell's reference scores (trained once per data seed and configuration, then read from the cache)."""
    return load_reference(trainer.dataset, spec.config.model, trainer.config,
                          ReferenceConfig(**spec.config.reference_options()), asdict(spec.config.data(spec.seed)), spec.seed)


def run_dynamic_baseline(spec: RunSpec, cache: RunCache) -> dict[str, Any]:
    """A dynamic baseline; InfoBatch's ``ratio`` is ``1 - prune_ratio`` (see the module docstring), a per-batch
    method's candidate factor ``1 / ratio`` (its back-propagated share). ``rholoss`` pays for its reference
    model: its ledger and wall-clock include the reference's training, cached or not."""
    trainer = _trainer(spec)
    reference = _reference(spec, trainer) if spec.method == "rholoss" else None
    if reference is not None:
        attach_reference(trainer, reference)
    baseline = make_dynamic_baseline(spec.method, DynamicSetup.of(
        trainer, keep_ratio=spec.ratio, prune_ratio=1.0 - spec.ratio, anneal=spec.config.anneal,
        candidate_factor=1.0 / spec.ratio))
    out = run_dynamic(trainer, baseline)
    return out if reference is None else {**out, "reference_top1": reference.top1}


def run_static_baseline(spec: RunSpec, cache: RunCache) -> dict[str, Any]:
    """Select a coreset at ``spec.ratio`` from the proxy run's scores, then train a fresh model on it."""
    trainer = _trainer(spec)
    needs = STATIC_BASELINES[spec.method].needs
    source = (trainer.dataset.train_y if needs == "labels" else trainer.dataset if needs == "provenance"
              else cache.proxy(spec, trainer))
    if spec.method == "reducible_loss":  # it alone reads (and pays for) the cell's reference model
        source = with_reference(source, _reference(spec, trainer))
    coreset = select_coreset(spec.method, source, spec.ratio, seed=spec.seed)
    ledger = coreset.ledger
    return _train_on_coreset(spec, cache, trainer, coreset.indices, ledger, ledger["train_seconds"] + ledger["overhead_seconds"]
                             + ledger.get("reference_seconds", 0.0))


def _train_on_coreset(spec: RunSpec, cache: RunCache, trainer: Trainer, indices: np.ndarray, selection_ledger: dict[str, Any],
                      selection_seconds: float) -> dict[str, Any]:
    """Train ``trainer``'s fresh model on the coreset for the configured epochs; test metrics, both costs and
    the coreset's diagnosis on the seed's proxy features (computed after the training, which it cannot affect)."""
    data = trainer.dataset
    idx = torch.as_tensor(indices, device=trainer.device)
    result = {**train_and_evaluate(trainer, idx),
              "selection_backprop": selection_ledger.get("samples_backpropagated", 0), "selection_seconds": selection_seconds,
              "noisy_kept_fraction": float(data.noisy_mask[idx].float().mean()) if bool(data.noisy_mask.any()) else None,
              "problem_shares": data.problem_shares(idx)}
    proxy = cache.proxy(spec, trainer)
    result["diagnosis"] = diagnose_coreset(indices, proxy.features, proxy.labels, data.noisy_mask)
    return result


def run_config(spec: RunSpec, env_id: str, algo: str, env_options: dict[str, Any], out: Path,
               **changes: Any) -> RunConfig:
    """The run library's configuration of one agent run on the spec's shared configuration; ``changes``
    replace any of its other fields (``trainer`` options are merged into the spec's)."""
    c = spec.config
    return RunConfig(env=env_id, algo=algo, seed=spec.seed, dataset=c.dataset, model=c.model,
                     data=replace(c.data(spec.seed), seed=None), device=c.device,
                     trainer=c.trainer_config(**changes.pop("trainer", {})), env_options=env_options, reference=False, out=out,
                     checkpoint_every=0, progress=False, **changes)


def data_agent_method(method: str) -> tuple[str, str]:
    """``dataagent_<policy>[_<variant>]`` -> the policy and the variant's name (a key of :data:`DATA_AGENT_VARIANTS`);
    the inverse of :func:`data_agent_method_name`."""
    _, policy, *variant = method.split("_", 2)
    return policy, variant[0] if variant else "paper"


def run_data_agent(spec: RunSpec, cache: RunCache) -> dict[str, Any]:
    """Data Agent (``dataagent_<policy>[_<variant>]``). With ``ppo``/``a2c`` the agent and the inner model
    train together through the run library (:func:`experiments.run.run_training`); ``const`` (every action 0) and ``randact`` (uniform
    actions) are controls that run the same env, selector and reward with the policy replaced. A variant with a
    reference model gets the cell's, trained before the run starts; its training time is added to the run's
    wall-clock (as :func:`run_dynamic_baseline` does)."""
    policy, variant = data_agent_method(spec.method)
    options = {**DATA_AGENT_VARIANTS[variant], "keep_ratio": spec.ratio, "anneal": spec.config.anneal}
    hyperparams = options.pop("hyperparams", {}).get(policy, {})
    if options.pop("reference", False):
        options["reference"] = spec.config.reference_options()
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


def run_loaded_agent(spec: RunSpec, cache: RunCache) -> dict[str, Any]:
    """``dataagent_loaded``: a saved agent (``--load-agent <run>/agent.zip``) acting with its policy, no updates, on
    the spec's data (a held-out instance: docs/tasks.md), with its run's env options at the spec's ratio."""
    path = Path(spec.config.load_agent)
    saved = load_run_config(path.parent)
    options = {**saved.env_options, "keep_ratio": spec.ratio, "anneal": spec.config.anneal}
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


def run_rl_selector(spec: RunSpec, cache: RunCache) -> dict[str, Any]:
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
    return _train_on_coreset(spec, cache, _trainer(spec), indices, ledger, wall)


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

Runner = Callable[[RunSpec, RunCache], dict[str, Any]]
#: a saved agent acting without learning (``--load-agent``), never a default or "all" method
LOADED_AGENT = "dataagent_loaded"

RUNNERS: dict[str, dict[str, Runner]] = {
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
#: of every keep ratio, full data (closes the cost curves), random, InfoBatch, UCB, loss top-k and Data Agent's paper
#: preset with its controls
TASK_SUITE = "tasks"
TASK_SUITE_METHODS = ("rs2", "oracle", "full", "random", "infobatch", "ucb", "loss_topk",
                      *(data_agent_method_name(p, "paper") for p in ("ppo", *CONTROL_POLICIES)))
DEFAULT_TASKS = ("clean", "noisy", "redundant", "imbalanced:100")


def suite_methods(text: str | None, suite: str, default: tuple[str, ...]) -> list[str]:
    """The ``--methods`` of a suite: comma-separated names, ``all`` (every real method, no oracle) or ``default``."""
    if not text:
        return list(default)
    names = [m.strip() for m in text.split(",") if m.strip()]
    return [m for m in real_methods(RUNNERS[suite]) if m != LOADED_AGENT] if names == ["all"] else names
