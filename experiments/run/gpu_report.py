"""The GPU story in one process: device, inner-trainer throughput, the envs' cost, an equal-cost study.

Why: GPU time is scarce (a quarter of an hour, start-up included), so one prepared command must measure
everything, sized to a budget, and leave readable results even when it is cut short. The parts run in
their order of value (:data:`PARTS`) and ``report.md`` / ``report.json`` are rewritten after each one:

1. ``device``: device name, torch / CUDA versions, memory, a bf16 matmul ceiling measured on the spot;
2. ``throughput``: images/s of ResNet-18 and fastnet (bf16 autocast, channels-last) in a textbook and a
   tuned ``DataLoader`` loop and in our trainer with ``torch.compile`` off and on; median of
   :attr:`ReportSizes.repeats` interleaved runs, timed with CUDA events (:mod:`experiments.run.throughput`);
3. ``env``: each env's per-step overhead and host syncs per step (:mod:`experiments.run.env_overhead`),
   and the paper's PPO agent's share of a Data Agent run, on both models;
4. ``study``: the largest equal-cost study that fits the rest of the budget (fastnet, all training images):
   dynamic baselines and Data Agent, CoverSelect against random coresets, run by the benchmark CLI in child
   processes (so the benchmark's runners and summaries serve unchanged, and this library imports no CLI).

``smoke`` swaps in tiny sizes and the synthetic set: every part runs the same code in seconds on a CPU.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import torch

from agents.presets import ALGOS
from envs import ENV_IDS
from envs.core.data import DataConfig, load_dataset, load_raw
from envs.core.files import atomic_write
from envs.core.trainer import TrainerConfig, resolve_device
from envs.methods.baselines.dynamic import DYNAMIC_BASELINES
from experiments.run.config import RunConfig, env_kwargs
from experiments.run.env_overhead import count_host_syncs, episode_overhead
from experiments.run.throughput import (CIFAR10_JPEG, DeviceClock, Measurement, TEXTBOOK_LOADER, interleaved,
                                        time_ours, time_plain, tuned_loader)
from experiments.run.training import run_training

#: the report's parts, in their order of value (a run cut short keeps the first ones)
PARTS = ("device", "throughput", "env", "study")
#: the issue's targets for a GPU run (H100/H200), shown beside the measurements
TARGETS = {"resnet18_images_per_s": 25_000, "resnet18_over_tuned": 1.5, "env_overhead_fraction": 0.03}


@dataclass(frozen=True)
class ReportSizes:
    """How big each part is. :meth:`full` is the GPU run's, :meth:`smoke` seconds on a CPU.

    :param dataset: the throughput / env / study dataset (CIFAR-10's JPEG copy, or ``synthetic``)
    :param models: the models of the throughput and env parts
    :param study_model: the study's model
    :param batch_size: every part's batch size
    :param matmul_n: side of the square bf16 matrices of the ceiling measurement
    :param matmul_iters: timed matmuls
    :param warmup: untimed batches before each throughput run (compilation happens there)
    :param batches: timed batches per throughput run
    :param repeats: interleaved runs per variant (the median counts)
    :param env_train_size: training images of the env part's episodes
    :param env_epochs: epochs of those episodes
    :param sync_steps: steps whose host syncs are counted
    :param study_train_size: training images of the study (None: all)
    :param study_max_epochs: the study's epochs when the budget allows (fastnet's target recipe length)
    :param study_ratios: the keep ratios of the study
    :param study_max_seeds: seeds of the study when the budget allows
    """

    dataset: str
    models: tuple[str, ...] = ("resnet18", "fastnet")
    study_model: str = "fastnet"
    batch_size: int = 512
    # the device part: the bf16 matmul ceiling
    matmul_n: int = 8192
    matmul_iters: int = 50
    # the throughput part
    warmup: int = 10
    batches: int = 40
    repeats: int = 3
    # the env part
    env_train_size: int | None = 10_240
    env_epochs: int = 2
    sync_steps: int = 20
    # the study
    study_train_size: int | None = None
    study_max_epochs: int = 10
    study_ratios: tuple[float, ...] = (0.3, 0.5)
    study_max_seeds: int = 2

    @classmethod
    def full(cls, cifar10_dir: str = CIFAR10_JPEG) -> "ReportSizes":
        return cls(dataset=f"imagefolder:{cifar10_dir}")

    @classmethod
    def smoke(cls) -> "ReportSizes":
        """Seconds on a CPU: one model (the loops take the model's name, so each path still runs), one ratio and
        seed, the smallest epochs."""
        return cls(dataset="synthetic", models=("fastnet",), batch_size=32, matmul_n=64, matmul_iters=2, warmup=1,
                   batches=2, repeats=1, env_train_size=96, env_epochs=2, sync_steps=2, study_max_epochs=1,
                   study_ratios=(0.5,), study_max_seeds=1)


class Budget:
    """The report's wall-clock allowance, counted from its creation.

    :param minutes: the whole report's allowance
    """

    def __init__(self, minutes: float):
        self.seconds = minutes * 60.0
        self._start = time.perf_counter()

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self._start)


class Report:
    """``report.json`` and ``report.md`` in ``out``, rewritten (atomically) after every part.

    :param out: the report's folder
    :param header: what the run was (command, budget, sizes)
    """

    def __init__(self, out: Path, header: dict[str, Any]):
        self.out = out
        self.data: dict[str, Any] = {"header": header, "parts": {}}
        self.markdown: dict[str, str] = {}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, part: str, data: dict[str, Any], markdown: str) -> None:
        self.data["parts"][part] = data
        self.markdown[part] = markdown
        self.write()

    def write(self) -> None:
        text = json.dumps(self.data, indent=2, default=str)
        atomic_write(self.out / "report.json", lambda f: f.write(text.encode()))
        h = self.data["header"]
        lines = [f"# GPU report: {h['device']}", "", f"`{h['command']}`", "",
                 f"budget {h['budget_minutes']} min, {'smoke sizes' if h['smoke'] else 'full sizes'}, "
                 f"parts {', '.join(h['parts'])}; peak GPU memory so far: "
                 f"{_gib(h['peak_memory_bytes']) if 'peak_memory_bytes' in h else 'none (no GPU)'}", ""]
        for part in PARTS:
            if part in self.markdown:
                lines += [f"## {PART_TITLES[part]}", "", self.markdown[part], ""]
        md = "\n".join(lines)
        atomic_write(self.out / "report.md", lambda f: f.write(md.encode()))

    @property
    def failed(self) -> list[str]:
        """The parts with an error anywhere in their results (the part itself, a loop, an env, a study call)."""
        return [p for p, d in self.data["parts"].items() if _errors(d)]


def _errors(data: Any) -> list[str]:
    if isinstance(data, dict):
        own = [str(data[k]) for k in ("error", "errors") if data.get(k)]
        return own + [e for v in data.values() for e in _errors(v)]
    if isinstance(data, list):
        return [e for v in data for e in _errors(v)]
    return []


PART_TITLES = {"device": "1. Device and versions", "throughput": "2. Inner-trainer throughput",
               "env": "3. The envs' cost", "study": "4. Equal-cost study"}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)])


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- 1. device ----------------------------------------------------------------------------------


def device_part(device: torch.device, sizes: ReportSizes) -> tuple[dict[str, Any], str]:
    """Versions, the device, and a bf16 matmul ceiling (TFLOP/s of ``matmul_n``-square products)."""
    import torchvision

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
                            "cpus": os.cpu_count(), "platform": platform.platform()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device=torch.cuda.get_device_name(device), memory_bytes=props.total_memory,
                    capability=f"{props.major}.{props.minor}")
    else:
        info.update(device=f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    n = sizes.matmul_n
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(2):
        a @ b
    with DeviceClock(device) as clock:
        for _ in range(sizes.matmul_iters):
            a @ b
    info["bf16_matmul_tflops"] = 2 * n**3 * sizes.matmul_iters / clock.seconds / 1e12
    info["bf16_matmul_n"] = n
    rows = [["device", info["device"]], ["torch", info["torch"]], ["torchvision", info["torchvision"]],
            ["CUDA (torch build)", info["cuda"] or "none"], ["cuDNN", info["cudnn"] or "-"],
            ["memory", _gib(info["memory_bytes"]) if "memory_bytes" in info else "-"],
            ["bf16 matmul ceiling", f"{info['bf16_matmul_tflops']:.1f} TFLOP/s ({n}x{n}, {sizes.matmul_iters} products)"],
            ["python / CPUs", f"{info['python']} / {info['cpus']}"]]
    return info, _table(["what", "value"], rows)


# --- 2. throughput -------------------------------------------------------------------------------


def _median(runs: list[Measurement]) -> Measurement:
    return sorted(runs, key=lambda m: m.samples_per_s)[len(runs) // 2]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def _guarded(run: Callable[[], Measurement]) -> Callable[[], Measurement]:
    """``run``, whose failure (say ``torch.compile`` without a working Triton) becomes a measurement of 0 images/s
    carrying the error, so the other loops are still measured; a failed loop is not tried again."""
    failure: list[Measurement] = []

    def call() -> Measurement:
        if not failure:
            try:
                return run()
            except Exception as err:  # noqa: BLE001  (reported in the table and report.json)
                failure.append(Measurement(0, 1.0, {"error": f"{type(err).__name__}: {err}"[:300], "peak_bytes": 0}))
        return failure[0]

    return call


def throughput_part(device: torch.device, sizes: ReportSizes, budget: Budget, out: Path,
                    progress: bool = False) -> tuple[dict[str, Any], str]:
    """Each model in four loops: textbook and tuned ``DataLoader``, ours, ours under ``torch.compile``."""
    raw = load_raw(sizes.dataset)
    data = load_dataset(sizes.dataset, device=device)
    config = TrainerConfig(batch_size=sizes.batch_size, schedule="constant", amp=True)
    tuned = tuned_loader()
    common = dict(batches=sizes.batches, warmup=sizes.warmup)
    results: dict[str, Any] = {"loops": {"textbook": asdict(TEXTBOOK_LOADER), "tuned": asdict(tuned)}, "num_train": data.num_train,
                               "statistic": f"median of {sizes.repeats} interleaved runs", "models": {}}
    rows = []
    for model in sizes.models:
        if results["models"] and budget.left() < 60:
            results["models"][model] = {"skipped": f"{budget.left():.0f} s of budget left"}
            continue
        variants: list[tuple[str, Callable[[], Measurement]]] = [
            ("textbook DataLoader", partial(time_plain, raw, model, config, workers=0, device=device, setup=TEXTBOOK_LOADER, **common)),
            ("tuned DataLoader", partial(time_plain, raw, model, config, workers=0, device=device, setup=tuned, **common)),
            ("ours", partial(time_ours, data, model, config, **common)),
            ("ours + torch.compile", partial(time_ours, data, model, config, compile_model=True, **common)),
        ]
        runs = interleaved([(name, _guarded(run)) for name, run in variants], sizes.repeats, progress, model)
        med = {name: _median(ms) for name, ms in runs.items()}
        entry: dict[str, Any] = {name: {"images_per_s": m.samples_per_s, "runs": [r.samples_per_s for r in runs[name]], **m.extra}
                                 for name, m in med.items()}
        best_ours = max(med["ours"].samples_per_s, med["ours + torch.compile"].samples_per_s)
        entry["ours_over_tuned"] = _ratio(best_ours, med["tuned DataLoader"].samples_per_s)
        entry["ours_over_textbook"] = _ratio(best_ours, med["textbook DataLoader"].samples_per_s)
        results["models"][model] = entry
        for name, m in med.items():
            speed = f"failed: {m.extra['error']}" if "error" in m.extra else f"{m.samples_per_s:,.0f}"
            rows.append([model, name, speed, f"{_ratio(m.samples_per_s, med['tuned DataLoader'].samples_per_s):.2f}x",
                         _gib(m.extra["peak_bytes"]) if device.type == "cuda" else "-"])
    _bar_plot(results["models"], out / "throughput.png", f"images/s, batch {sizes.batch_size}, bf16 autocast, {device.type}")
    r18 = results["models"].get("resnet18", {})
    targets = ""
    if device.type == "cuda" and "ours" in r18:
        best = max(r18["ours"]["images_per_s"], r18["ours + torch.compile"]["images_per_s"])
        results["targets"] = {"resnet18_images_per_s": best >= TARGETS["resnet18_images_per_s"],
                              "resnet18_over_tuned": r18["ours_over_tuned"] >= TARGETS["resnet18_over_tuned"]}
        targets = (f"\n\nTargets (H100/H200): ResNet-18 >= {TARGETS['resnet18_images_per_s']:,} images/s: "
                   f"{'met' if results['targets']['resnet18_images_per_s'] else 'not met'} ({best:,.0f}); >= "
                   f"{TARGETS['resnet18_over_tuned']}x the tuned loop: "
                   f"{'met' if results['targets']['resnet18_over_tuned'] else 'not met'} ({r18['ours_over_tuned']:.2f}x).")
    skipped = [m for m, e in results["models"].items() if "skipped" in e]
    note = (f"{sizes.batches} timed batches of {sizes.batch_size} after {sizes.warmup} warm-up batches, "
            f"{results['statistic']}; timed with {'CUDA events' if device.type == 'cuda' else 'the wall clock (CPU)'}; "
            f"torch.compile backend: {'inductor' if device.type == 'cuda' else 'eager (Dynamo capture only, CPU)'}. "
            f"Tuned loop: {tuned.workers} workers, pinned memory and non-blocking copies (CUDA), channels-last.")
    md = _table(["model", "loop", "images/s", "vs tuned", "peak memory"], rows) + "\n\n" + note + targets
    if skipped:
        md += f"\n\nSkipped for the budget: {', '.join(skipped)}."
    return results, md + "\n\n![throughput](throughput.png)"


def _bar_plot(models: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {m: e for m, e in models.items() if "skipped" not in e}
    loops = [k for k, v in next(iter(measured.values()), {}).items() if isinstance(v, dict)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    width = 0.8 / max(1, len(loops))
    for i, loop in enumerate(loops):
        ax.bar([j + i * width for j in range(len(measured))], [e[loop]["images_per_s"] for e in measured.values()],
               width, label=loop)
    ax.set_xticks([j + width * (len(loops) - 1) / 2 for j in range(len(measured))], list(measured))
    ax.set_ylabel("images/s")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- 3. the envs' cost -------------------------------------------------------------------------------


def _env_config(env_id: str, model: str, device: torch.device, sizes: ReportSizes, seed: int) -> RunConfig:
    return RunConfig(env=env_id, dataset=sizes.dataset, data=DataConfig(train_size=sizes.env_train_size, seed=0),
                     model=model, device=str(device), seed=seed,
                     trainer=TrainerConfig(batch_size=sizes.batch_size, epochs=sizes.env_epochs, amp=True),
                     reference=False, checkpoint_every=0, progress=False)


def _syncs_per_step(config: RunConfig, device: torch.device, steps: int, seed: int) -> dict[str, Any]:
    """Host syncs of ``steps`` steps in the middle of an episode (reset and the final evaluation excluded)."""
    env = gym.make(config.env, **env_kwargs(config)).unwrapped
    env.reset(seed=seed)
    action = env.action_space.sample()
    with count_host_syncs(device) as syncs:
        for _ in range(steps):
            env.step(action)
    if not syncs.measurable:
        return {"measurable": False, "why": "no device to wait for on a CPU"}
    return {"measurable": True, "steps": steps, "implicit_per_step": syncs.implicit / steps,
            "explicit_per_step": syncs.explicit / steps}


def _env_cost(env_id: str, model: str, device: torch.device, sizes: ReportSizes, seed: int) -> dict[str, Any]:
    config = _env_config(env_id, model, device, sizes, seed)
    r = episode_overhead(gym.make(env_id, **env_kwargs(config)).unwrapped, seed=seed)
    r["syncs"] = _syncs_per_step(config, device, sizes.sync_steps, seed)
    return r


def _agent_share(model: str, device: torch.device, sizes: ReportSizes, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        run = run_training(replace(_env_config("DataAgent-v0", model, device, sizes, seed), algo="ppo", out=Path(tmp)))
    ledger = run.metrics["run"]["ledger"]
    spent = ledger["train_seconds"] + ledger["overhead_seconds"] + ledger["agent_seconds"]
    return {"ledger": ledger, "agent_share": ledger["agent_seconds"] / spent, "wall_seconds": run.metrics["run"]["wall_seconds"]}


def _attempt(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``measure()``, or its error: one failed env or model leaves the others measured."""
    try:
        return measure()
    except Exception as err:  # noqa: BLE001  (reported in the table and report.json)
        return {"error": f"{type(err).__name__}: {err}"[:300], "traceback": traceback.format_exc()}


def env_part(device: torch.device, sizes: ReportSizes, budget: Budget, seed: int = 0) -> tuple[dict[str, Any], str]:
    """Both envs' overhead and host syncs per step, and the PPO agent's share of a Data Agent run, per model."""
    results: dict[str, Any] = {}
    rows, sync_rows, agent_rows = [], [], []
    for model in sizes.models:
        for env_id in ENV_IDS:
            if budget.left() < 30 and results:
                results[f"{env_id}/{model}"] = {"skipped": f"{budget.left():.0f} s of budget left"}
                continue
            r = results[f"{env_id}/{model}"] = _attempt(partial(_env_cost, env_id, model, device, sizes, seed))
            if r.get("error"):  # a failed measurement, or a diverged episode
                rows.append([env_id, model, f"failed: {r['error']}", "-", "-", "-"])
                continue
            rows.append([env_id, model, r["steps"], f"{r['train_seconds']:.2f} s", f"{r['overhead_fraction']:.2%}",
                         f"{r['outside_train_fraction']:.2%}"])
            s = r["syncs"]
            sync_rows.append([env_id, model, f"{s['implicit_per_step']:.2f}" if s["measurable"] else "not measurable (CPU)",
                              f"{s['explicit_per_step']:.2f}" if s["measurable"] else "-"])
        if budget.left() < 30:
            continue
        a = results[f"agent/{model}"] = _attempt(partial(_agent_share, model, device, sizes, seed))
        agent_rows.append([model, f"failed: {a['error']}", "-", "-"] if a.get("error") else
                          [model, f"{a['ledger']['agent_seconds']:.2f} s", f"{a['agent_share']:.1%}", f"{a['wall_seconds']:.1f} s"])
    n = sizes.env_train_size or "all"
    md = (f"Random actions, {n} training images, {sizes.env_epochs} epochs, batch {sizes.batch_size}, bf16 autocast. "
          f"Overhead = the ledger's overhead (state, reward, selection, store, the one host copy) over its inner "
          f"training; 'outside training' adds everything untimed in `step`. Target: <= {TARGETS['env_overhead_fraction']:.0%}.\n\n"
          + _table(["env", "model", "steps", "inner training", "overhead", "outside training"], rows)
          + "\n\nHost syncs per step (`torch.cuda.set_sync_debug_mode`: implicit ones inside torch ops, the step's one "
            "device-to-host copy among them; explicit: `torch.cuda.synchronize` calls, the ledger's clock):\n\n"
          + _table(["env", "model", "implicit / step", "explicit / step"], sync_rows)
          + "\n\nThe paper's PPO agent on DataAgent-v0 (its share of train + overhead + agent time):\n\n"
          + _table(["model", "agent time", "agent share", "run wall-clock"], agent_rows))
    return results, md


# --- 4. the study -------------------------------------------------------------------------------------


def study_methods() -> dict[str, tuple[str, ...]]:
    """The study's methods, as the benchmark names them: full data, random, InfoBatch, Data Agent's paper preset with
    PPO (also the recommended variant: no remedy beat it, BENCHMARKS.md) and RHO-LOSS where the dynamic baselines
    have it; CoverSelect's paper agent (``rlselector_a2c``) against random coresets."""
    rho = tuple(m for m in DYNAMIC_BASELINES if m.startswith("rho"))
    return {"dynamic": ("full", "random", "infobatch", "dataagent_ppo", *rho), "static": ("random", "rlselector_a2c")}


#: each method's cost in epochs of full-data training per planned epoch (the agent, and RHO-LOSS's reference
#: models and candidate passes, double a run's time: guesses the first GPU run will correct); static runs add the
#: training on the coreset (``ratio``)
_EPOCH_COST = {"full": 1.0, "random": 0.6, "infobatch": 0.7, "rholoss": 2.0, "rlselector_a2c": 2.0}


def _run_cost(suite: str, method: str, ratio: float) -> float:
    base = _EPOCH_COST.get(method, 2.0 if method.startswith("dataagent") else 1.0)
    if suite == "static":
        return (base if method != "random" else 0.0) + ratio
    return base


def plan_study(seconds: float, epoch_seconds: float, sizes: ReportSizes, run_start_seconds: float) -> dict[str, Any]:
    """The largest study that fits ``seconds``: as many epochs as possible up to ``study_max_epochs``, more seeds
    (up to ``study_max_seeds``) while that still leaves at least half of them; ``epochs`` 0 when not even one
    epoch of one seed fits.

    :param seconds: the time the study may take
    :param epoch_seconds: one epoch of full-data training of the study model, measured
    :param run_start_seconds: the fixed cost of one run (data, model, evaluation)
    """
    methods = study_methods()
    specs = [(suite, m, r) for suite, ms in methods.items() for m in ms
             for r in (sizes.study_ratios[-1:] if m == "full" else sizes.study_ratios)]
    per_epoch = sum(_run_cost(*s) for s in specs) * epoch_seconds

    def epochs_for(seeds: int) -> int:
        return int((seconds - seeds * len(specs) * run_start_seconds) // (seeds * per_epoch)) if per_epoch > 0 else 0

    seeds = max([1, *(k for k in range(2, sizes.study_max_seeds + 1) if epochs_for(k) >= max(1, sizes.study_max_epochs // 2))])
    epochs = max(0, min(sizes.study_max_epochs, epochs_for(seeds)))
    return {"epochs": epochs, "seeds": seeds, "runs": len(specs) * seeds,
            "estimated_seconds": seeds * (len(specs) * run_start_seconds + epochs * per_epoch)}


def _benchmark(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``python -m experiments.benchmark ARGS`` in a child process: the report reuses the benchmark's runners without
    importing a CLI (tests/test_layers.py), and a child cut off by the budget leaves its finished runs in runs.jsonl."""
    return subprocess.run([sys.executable, "-m", "experiments.benchmark", *args], capture_output=True, text=True,
                          timeout=max(1.0, timeout))


def study_part(device: torch.device, sizes: ReportSizes, budget: Budget, out: Path, epoch_seconds: float | None,
               progress: bool = False, on_run: Callable[[dict[str, Any], str], None] | None = None) -> tuple[dict[str, Any], str]:
    """Run the planned study with the benchmark, seed by seed (both suites of a seed before the next seed); each call
    names every seed so far, so the benchmark skips the finished runs and summarises them all. ``on_run(results,
    markdown)`` after each call lets the report show what has finished."""
    trainer = TrainerConfig(batch_size=sizes.batch_size, amp=True)
    if epoch_seconds is None:  # the throughput part did not run: measure the study model here
        data = load_dataset(sizes.dataset, device=device, train_size=sizes.study_train_size)
        m = time_ours(data, sizes.study_model, replace(trainer, schedule="constant"), batches=max(2, sizes.batches // 4),
                      warmup=sizes.warmup)
        epoch_seconds = (sizes.study_train_size or data.num_train) / m.samples_per_s
    start_cost = 10.0  # a child process: Python, torch, the data, the model
    plan = plan_study(0.9 * budget.left(), epoch_seconds, sizes, start_cost)
    results: dict[str, Any] = {"plan": plan, "epoch_seconds_estimate": epoch_seconds, "methods": study_methods()}
    if plan["epochs"] < 1:
        results["skipped"] = f"not even one epoch fits the {budget.left():.0f} s left"
        return results, results["skipped"]
    common = ["--dataset", sizes.dataset, "--model", sizes.study_model, "--epochs", str(plan["epochs"]),
              "--batch-size", str(sizes.batch_size), "--amp", "--device", str(device), "--no-progress",
              "--keep-ratios", *map(str, sizes.study_ratios),
              *(["--train-size", str(sizes.study_train_size)] if sizes.study_train_size else [])]
    head = (f"{sizes.study_model} on {sizes.study_train_size or 'all'} training images of {sizes.dataset}: "
            f"{plan['epochs']} epochs, {plan['seeds']} seed(s), batch {sizes.batch_size}, bf16 autocast (planned "
            f"from {epoch_seconds:.2f} s per full-data epoch; estimate {plan['estimated_seconds']:.0f} s), run by "
            f"`python -m experiments.benchmark {' '.join(common)} --suite SUITE --methods ... --seeds ...`.")

    def markdown() -> str:
        sections = [head]
        for suite in study_methods():
            folder = out / "study" / suite
            runs = folder / "runs.jsonl"
            if runs.exists():
                results[suite] = [{k: v for k, v in json.loads(line).items() if k != "config"}
                                  for line in runs.read_text().splitlines() if line.strip()]
            if (folder / "summary.md").exists():
                sections += [f"### {suite} (study/{suite}/summary.md, plots beside it)", (folder / "summary.md").read_text()]
        if "stopped" in results:
            sections.append(f"Stopped early: {results['stopped']}.")
        return "\n\n".join(sections)

    for seed in range(plan["seeds"]):
        for suite, methods in study_methods().items():
            ratios = [(m, r) for m in methods for r in (sizes.study_ratios[-1:] if m == "full" else sizes.study_ratios)]
            estimate = sum(_run_cost(suite, m, r) for m, r in ratios) * plan["epochs"] * epoch_seconds + start_cost
            if budget.left() < estimate:
                results["stopped"] = f"{budget.left():.0f} s left before {suite} seed {seed} (estimated {estimate:.0f} s)"
                return results, markdown()
            try:
                done = _benchmark([*common, "--suite", suite, "--methods", ",".join(methods), "--seeds",
                                   *map(str, range(seed + 1)), "--out", str(out / "study" / suite)], budget.left() - 5)
                if done.returncode != 0:
                    results.setdefault("errors", []).append(f"{suite} seed {seed}: {done.stderr.strip()[-500:]}")
            except subprocess.TimeoutExpired:
                results["stopped"] = f"the budget ran out during {suite} seed {seed}; its finished runs are in runs.jsonl"
                return results, markdown()
            if on_run is not None:
                on_run(results, markdown() + "\n\n(running)")
    return results, markdown()


# --- the whole report -------------------------------------------------------------------------------


@dataclass
class ReportConfig:
    """One report run.

    :param out: the report's folder
    :param budget_minutes: the whole run's allowance (the study takes what the first parts leave)
    :param parts: which parts to run (a subset of :data:`PARTS`, run in its order)
    :param smoke: tiny sizes on the synthetic set, seconds on a CPU
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param cifar10_dir: the folder of the CIFAR-10 JPEG copy (zip or tar.xz pairs)
    :param seed: seeds every part
    :param progress: progress bars
    :param command: the command line, for the report's header
    """

    out: Path
    budget_minutes: float = 9.0
    parts: tuple[str, ...] = PARTS
    smoke: bool = False
    device: str = "auto"
    cifar10_dir: str = CIFAR10_JPEG
    seed: int = 0
    progress: bool = False
    command: str = ""

    def validate(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown or not self.parts:
            raise ValueError(f"parts={list(self.parts)!r} is invalid; valid: a non-empty subset of {', '.join(PARTS)}")
        if not (isinstance(self.budget_minutes, (int, float)) and math.isfinite(self.budget_minutes) and self.budget_minutes > 0):
            raise ValueError(f"budget_minutes={self.budget_minutes!r} is invalid; valid: a number > 0")
        if not self.smoke and not Path(self.cifar10_dir).is_dir():
            raise ValueError(f"cifar10_dir={self.cifar10_dir!r} does not exist; valid: a folder holding train and test "
                             ".tar.xz or .zip (experiments.prepare_gpu copies them, docs/gpu.md), or the smoke sizes (--smoke)")


def _peaks(data: Any) -> list[int]:
    """Every ``peak_bytes`` value in a part's results."""
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == "peak_bytes"] + [p for v in data.values() for p in _peaks(v)]
    return []


def run_report(config: ReportConfig) -> Report:
    """Run ``config.parts`` in :data:`PARTS` order; a part that fails is recorded with its error and the next
    one still runs (a one-shot GPU run must not lose the later parts to an early bug)."""
    config.validate()
    budget = Budget(config.budget_minutes)
    device = resolve_device(config.device)
    sizes = ReportSizes.smoke() if config.smoke else ReportSizes.full(config.cifar10_dir)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    report = Report(config.out, {"command": config.command, "device": str(device), "budget_minutes": config.budget_minutes,
                                 "smoke": config.smoke, "parts": [p for p in PARTS if p in config.parts],
                                 "sizes": asdict(sizes), "agents": list(ALGOS)})
    report.write()
    epoch_seconds = None
    steps: dict[str, Callable[[], tuple[dict[str, Any], str]]] = {
        "device": lambda: device_part(device, sizes),
        "throughput": lambda: throughput_part(device, sizes, budget, config.out, config.progress),
        "env": lambda: env_part(device, sizes, budget, config.seed),
        "study": lambda: study_part(device, sizes, budget, config.out, epoch_seconds, config.progress,
                                    on_run=partial(report.add, "study")),
    }
    for part in PARTS:
        if part not in config.parts:
            continue
        started = time.perf_counter()
        try:
            data, md = steps[part]()
        except Exception as err:  # noqa: BLE001  (recorded in the report; the later parts still run)
            data, md = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}, \
                f"failed: `{type(err).__name__}: {err}` (traceback in report.json)"
        data["seconds"] = time.perf_counter() - started
        if part == "throughput" and "models" in data:  # the study is planned from its model's measured speed
            fast = data["models"].get(sizes.study_model, {})
            best = max((v["images_per_s"] for k, v in fast.items() if k.startswith("ours") and isinstance(v, dict)), default=0)
            if best > 0:
                epoch_seconds = (sizes.study_train_size or data["num_train"]) / best
        if device.type == "cuda":  # the timed loops reset the peak, so their own peaks count too
            report.data["header"]["peak_memory_bytes"] = max(report.data["header"].get("peak_memory_bytes", 0),
                                                             torch.cuda.max_memory_allocated(device), *_peaks(data))
        report.add(part, data, md + f"\n\n({data['seconds']:.0f} s)")
    return report

