"""An env's own cost: how much ``DataAgent-v0`` or ``CoverSelect-v0`` adds to the inner training it wraps,
and how often a step waits for the device.

Why a library module: the overhead CLI (``experiments.bench_env_overhead``) and the GPU report
(:mod:`experiments.run.gpu_report`) measure the same episode. The run uses uniformly random actions
(no agent: the agent's cost is separate) and reports two measures against the ledger's inner training
time (forward, backward, optimizer steps):

- ``ledger overhead``: the time the ledger booked as overhead (state, reward, selection, the
  per-sample store, the step's device-to-host transfer);
- ``step time - train - eval``: wall-clock spent inside ``step`` outside inner training and the final
  test evaluation, i.e. the above plus everything untimed (action checks, Python glue, info dicts).

``reset`` (building the model and optimizer, the first selection and forward pass) is a once-per-run
cost and is reported apart. :func:`count_host_syncs` counts the host synchronisations of a block on CUDA.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from envs.episode import BatchEpisodeEnv


def episode_overhead(env: BatchEpisodeEnv, seed: int = 0) -> dict[str, Any]:
    """Run one episode of ``env`` with random actions; returns the steps' timings (reset apart) and the final info.

    :param env: a ``DataAgent-v0`` or ``CoverSelect-v0`` env
    :param seed: seeds the episode and the actions
    """
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape
    actions = rng.uniform(-1, 1, size=(env.config.epochs * (env.num_samples // env.config.batch_size + 1), *shape))
    actions = actions.astype(np.float32)  # drawn up front: the action draw is not the env's cost
    start = time.perf_counter()
    env.reset(seed=seed)
    reset_seconds = time.perf_counter() - start
    at_reset = env.trainer.ledger.as_dict()
    steps = 0
    start = time.perf_counter()
    while True:
        _, _, _, truncated, info = env.step(actions[steps])
        steps += 1
        if truncated:
            break
    step_seconds = time.perf_counter() - start
    ledger = info["ledger"]
    train = ledger["train_seconds"] - at_reset["train_seconds"]
    overhead = ledger["overhead_seconds"] - at_reset["overhead_seconds"]
    untracked = step_seconds - train - ledger["eval_seconds"]  # the last step also runs the test evaluation
    return {"steps": steps, "reset_seconds": reset_seconds, "step_seconds": step_seconds, "train_seconds": train,
            "overhead_seconds": overhead, "outside_train_seconds": untracked, "eval_seconds": ledger["eval_seconds"],
            "overhead_fraction": overhead / train, "outside_train_fraction": untracked / train,
            "ledger": ledger, "final_test": info["final_test"], "backprop_fraction": info["backprop_fraction"],
            "error": info.get("error")}


def overhead_markdown(r: dict[str, Any]) -> str:
    """A two-column table of :func:`episode_overhead`'s result."""
    rows = [
        ("steps (mini-batches)", f"{r['steps']}"),
        ("back-propagated samples", f"{r['ledger']['samples_backpropagated']:,} ({r['backprop_fraction']:.1%} of full data)"),
        ("inner training during steps (ledger train)", f"{r['train_seconds']:.2f} s"),
        ("ledger overhead during steps", f"{r['overhead_seconds']:.3f} s ({r['overhead_fraction']:.2%} of training)"),
        ("step time - train - eval", f"{r['outside_train_seconds']:.3f} s ({r['outside_train_fraction']:.2%} of training)"),
        ("final test evaluation", f"{r['eval_seconds']:.2f} s"),
        ("reset (model build, first epoch, first forward)", f"{r['reset_seconds']:.2f} s"),
        ("final test top-1", f"{r['final_test']['top1']:.2f}%"),
    ]
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


@dataclass
class HostSyncs:
    """Host synchronisations counted by :func:`count_host_syncs` (None where they cannot be counted).

    :param implicit: syncs inside torch operations (a device-to-host copy, ``.item()``, ``nonzero``...), as
        ``torch.cuda.set_sync_debug_mode`` reports them
    :param explicit: calls of ``torch.cuda.synchronize`` (the ledger's clock makes them on CUDA)
    """

    implicit: int | None = None
    explicit: int | None = None

    @property
    def measurable(self) -> bool:
        return self.implicit is not None


@contextmanager
def count_host_syncs(device: torch.device) -> Iterator[HostSyncs]:
    """Count the host synchronisations of the ``with`` block on ``device``. On CUDA, torch's sync debug mode
    warns at every implicit one and ``torch.cuda.synchronize`` is wrapped for the block to count the explicit
    ones; on a CPU nothing waits for a device and both counts stay None (not measurable)."""
    counts = HostSyncs()
    if device.type != "cuda":
        yield counts
        return
    original, previous = torch.cuda.synchronize, torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def counted(*args: Any, **kwargs: Any) -> None:
            before = len(caught)
            original(*args, **kwargs)
            del caught[before:]  # an explicit call is counted once, as explicit
            counts.explicit += 1

        counts.explicit = 0
        torch.cuda.synchronize = counted
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            torch.cuda.set_sync_debug_mode(previous)
            torch.cuda.synchronize = original
    counts.implicit = sum("synchroniz" in str(w.message) for w in caught)
