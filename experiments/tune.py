"""Tune the selection agent's hyper-parameters with Optuna; the objective is the inner model's final
test accuracy at a fixed back-propagated budget.

    python -m experiments.tune --env DataAgent-v0 --algo ppo --trials 20 --seeds 0 1 --dataset digits --model mlp --epochs 10

Why not Zoo's ``-optimize``: its objective is the agent's evaluation reward, while what the papers
optimise is the inner model's accuracy for what it trained on. A trial here is one run of the run
library (``experiments.run``, what ``experiments.train`` runs) per seed of the batch-of-samples agent
(``--layout batch``) with sampled ``--hyperparams`` overrides of the preset (:func:`sample_batch_policy`), so the best trial is an
``experiments.train`` command, printed at the end. Trial 0 is the preset itself, the yardstick.

The budget: the env options (``--keep-ratio``, ``--anneal``, ``--epochs``, ``--batch-size``...) fix
the samples back-propagated and are never sampled; every trial records its ledger count, and a
trial whose count differs from the study's is an error (e.g. ``--train-on selected``, whose budget
depends on the coreset). Options that are not the tuner's go to ``experiments.train``. Results:
``--out``/trials.jsonl (one line per trial) and ``--out``/best.json; ``--storage`` (an Optuna URL,
e.g. ``sqlite:///runs/tune/study.db``) keeps the study, so a stopped study continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from agents import ALGOS, load_hyperparams
from agents.presets import algo_parameters, eval_policy_kwargs, with_layout
from envs.core.files import write_json
from experiments.cli import HelpFormatter, console_script
from experiments.run.docstrings import plain
from experiments.run import ENV_IDS, RunConfig, run_training
from experiments.train_args import build_parser, run_config

#: the sampler's choices (Optuna's categorical values must be scalars, so architectures are named)
NET_ARCHS = {"64-64": [64, 64], "128-128": [128, 128], "256-256": [256, 256], "512-256": [512, 256]}
#: rollout lengths per algorithm; A2C's include the papers' 1-step updates, any other algorithm samples the default
N_STEPS: dict[str, list[int]] = {"a2c": [1, 2, 5, 10]}
DEFAULT_N_STEPS = [2, 5, 10, 20]
#: PPO's own options, sampled for every algorithm whose class has them
PPO_OPTIONS = ("n_epochs", "clip_range", "target_kl")
CHOICES: dict[str, list[Any]] = {
    "gamma": [0.9, 0.95, 0.99], "gae_lambda": [0.8, 0.9, 0.95, 1.0], "ent_coef": [0.0, 1e-3, 1e-2],
    "distribution": ["gaussian", "beta"], "log_prob_reduction": ["mean", "sum"], "log_std_init": [-1.0, -0.5, 0.0],
    "n_epochs": [1, 2, 4, 8], "clip_range": [0.1, 0.2, 0.3], "target_kl": [None, 0.01, 0.05],
}
LEARNING_RATE = (1e-5, 3e-3)
#: the papers decay the agent's learning rate linearly to 1 % of its start
FINAL_LR_FRACTION = 0.01


def _has_ppo_options(algo: str) -> bool:
    return set(PPO_OPTIONS) <= algo_parameters(algo)


def sample_batch_policy(trial: optuna.Trial, algo: str) -> dict[str, Any]:
    """Preset overrides for :class:`agents.BatchOfSamplesPolicy` and its algorithm: learning rate (decayed to
    1 % as in the papers), rollout length, discount, GAE, entropy bonus, network sizes, the action
    distribution, its log-probability reduction and initial log-std; for PPO also epochs, clip range
    and target KL (full-batch updates, as the presets)."""
    learning_rate = trial.suggest_float("learning_rate", *LEARNING_RATE, log=True)
    arch = NET_ARCHS[trial.suggest_categorical("net_arch", list(NET_ARCHS))]

    def pick(name: str) -> Any:
        return trial.suggest_categorical(name, CHOICES[name])

    overrides: dict[str, Any] = {
        "learning_rate": learning_rate, "final_learning_rate": float(f"{learning_rate * FINAL_LR_FRACTION:.4g}"),
        "n_steps": trial.suggest_categorical("n_steps", N_STEPS.get(algo, DEFAULT_N_STEPS)),
        "gamma": pick("gamma"), "gae_lambda": pick("gae_lambda"), "ent_coef": pick("ent_coef"),
        "policy_kwargs": {"net_arch": {"pi": list(arch), "vf": list(arch)}, "distribution": pick("distribution"),
                          "log_prob_reduction": pick("log_prob_reduction"), "log_std_init": pick("log_std_init")},
    }
    if _has_ppo_options(algo):
        overrides.update({name: pick(name) for name in PPO_OPTIONS}, n_minibatches=1)
    return overrides


def preset_params(algo: str, env_id: str) -> dict[str, Any]:
    """The preset of ``env_id`` in batch layout, as the parameters :func:`sample_batch_policy` samples."""
    entry = with_layout(load_hyperparams(algo, env_id), "batch")
    policy = eval_policy_kwargs(entry["policy_kwargs"])
    names = ["n_steps", "gamma", "gae_lambda", "ent_coef", *(PPO_OPTIONS if _has_ppo_options(algo) else ())]
    return {"learning_rate": entry["learning_rate"], "net_arch": "-".join(map(str, policy["net_arch"]["pi"])),
            **{name: entry.get(name) for name in names},
            "distribution": policy.get("distribution", "gaussian"),
            "log_prob_reduction": policy.get("log_prob_reduction", "mean"),
            "log_std_init": policy.get("log_std_init", 0.0)}


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML, the way ``experiments.train --hyperparams key=value`` reads it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("\n...\n").strip()


def train_command(train_argv: list[str], seed: int, overrides: dict[str, Any]) -> list[str]:
    """The ``experiments.train`` arguments of one run of a trial: the command printed to reproduce it."""
    return [*train_argv, "--layout", "batch", "--seed", str(seed), "--reference", "none", "--checkpoint-every", "0",
            "--no-progress", "--hyperparams", *(f"{k}={yaml_value(v)}" for k, v in overrides.items())]


def objective(trial: optuna.Trial, base: RunConfig, seeds: list[int], train_argv: list[str]) -> float:
    """Mean final test top-1 (%) of the inner model over ``seeds``, one agent run of ``base`` each."""
    overrides = sample_batch_policy(trial, base.algo)
    top1, budgets = [], set()
    for seed in seeds:
        with tempfile.TemporaryDirectory() as out:
            config = dataclasses.replace(base, seed=seed, hyperparams=overrides, out=Path(out))
            run = run_training(config).metrics["run"]
        top1.append(run["test"]["top1"])
        budgets.add(run["ledger"]["samples_backpropagated"])
    budget = trial.study.user_attrs.get("budget", min(budgets))
    if budgets != {budget}:
        raise RuntimeError(f"trial {trial.number} back-propagated {sorted(budgets)} samples, the study {budget}: the "
                           "budget is not fixed by these options (e.g. --train-on selected); fix it to compare trials")
    trial.study.set_user_attr("budget", budget)
    trial.set_user_attr("top1_by_seed", top1)
    trial.set_user_attr("command", shlex.join(["python", "-m", "experiments.train", *train_command(train_argv, seeds[0],
                                                                                                     overrides)]))
    return float(np.mean(top1))


def trial_record(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {"number": trial.number, "value": trial.value, "params": trial.params, **trial.user_attrs}


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=HelpFormatter,
                                     epilog="Other options go to experiments.train (see python -m experiments.train -h).",
                                     allow_abbrev=False)  # --seed is experiments.train's, not short for --seeds
    parser.add_argument("--env", choices=ENV_IDS, default="DataAgent-v0", help="the environment")
    parser.add_argument("--algo", choices=tuple(ALGOS), default="ppo", help="the SB3 algorithm")
    parser.add_argument("--trials", type=int, default=20, help="trials to run in this call (preset included)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed per trial; the mean is the value")
    parser.add_argument("--startup-trials", type=int, default=5, help="random trials before TPE models the results")
    parser.add_argument("--sampler-seed", type=int, default=0, help="seeds Optuna's TPE sampler")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: in memory)")
    parser.add_argument("--study-name", default=None, help="the study's name in --storage")
    parser.add_argument("--out", type=Path, default=None, metavar="FOLDER",
                        help="output folder: trials.jsonl, best.json (default: runs/tune_<env>_<algo>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (the trials' runs show none)")
    args, rest = parser.parse_known_args(argv)
    for flag, value in (("--trials", args.trials), ("--startup-trials", args.startup_trials)):
        if value < 1:
            parser.error(f"{flag}={value} is invalid; valid: an integer >= 1")
    owned = {"--env", "--algo", "--layout", "--seed", "--hyperparams", "--out", "--overwrite", "--reference", "--resume",
             "--load-agent",
             "--no-learn", "--checkpoint-every"}
    taken = sorted(owned & {a.partition("=")[0] for a in rest})
    if taken:
        parser.error(f"{', '.join(taken)}: set by the tuner; valid: experiments.train's data, model and env options")
    train_argv = ["--env", args.env, "--algo", args.algo, *rest]
    train_args = build_parser().parse_args(train_argv)  # bad experiments.train options fail now, not in trial 0
    try:
        base = run_config(train_args)
        base.validate()
    except ValueError as err:
        parser.error(str(err))
    base = dataclasses.replace(base, layout="batch", reference=False, checkpoint_every=0, progress=False)
    out: Path = args.out or Path("runs") / f"tune_{args.env}_{args.algo}"

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(n_startup_trials=args.startup_trials, seed=args.sampler_seed)
    study = optuna.create_study(study_name=args.study_name, storage=args.storage, sampler=sampler,
                                direction="maximize", load_if_exists=True)
    if not study.trials:
        study.enqueue_trial(preset_params(args.algo, args.env), user_attrs={"preset": True})
    command = shlex.join(["python", "-m", "experiments.tune", *(sys.argv[1:] if argv is None else argv)])
    study.set_user_attr("command", command)

    out.mkdir(parents=True, exist_ok=True)
    with (out / "trials.jsonl").open("a") as log:
        def record(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            log.write(json.dumps(trial_record(trial)) + "\n")
            log.flush()
            print(f"trial {trial.number:3d}: top-1 {trial.value:6.2f}%  {json.dumps(trial.params)}", flush=True)

        study.optimize(lambda t: objective(t, base, args.seeds, train_argv), n_trials=args.trials,
                       callbacks=[record])
    best = study.best_trial
    write_json(out / "best.json", {"command": command, "budget": study.user_attrs["budget"], **trial_record(best)})
    preset = next((t for t in study.trials if t.user_attrs.get("preset")), None)
    print(f"{args.env} / {args.algo}: {len(study.trials)} trials, {study.user_attrs['budget']:,} samples back-propagated "
          f"per run; best trial {best.number}: top-1 {best.value:.2f}%"
          + (f" (preset, trial {preset.number}: {preset.value:.2f}%)" if preset is not None and preset.value is not None else ""))
    print(f"  reproduce: {best.user_attrs['command']}")
    print(f"  results:   {out}/trials.jsonl, {out}/best.json")
    return study


cli = console_script(main)

if __name__ == "__main__":
    main()
