"""The cost ledger: what a run spent, counted the same way for every method.

Why: selection methods are compared by accuracy *at a cost*. Counting back-propagated and
forwarded samples exactly (not estimating them) and splitting wall-clock into inner training,
selection overhead and evaluation makes "half the cost" a measured statement.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

import torch


#: the wall-clock buckets of :meth:`CostLedger.timed`
LEDGER_BUCKETS = ("train", "overhead", "eval", "agent", "reference", "candidates")


@dataclass
class CostLedger:
    """Counters of one run. ``train_seconds`` covers forward, backward and optimizer steps of the
    inner model; ``overhead_seconds`` what a method adds inside the env (state, reward, selection);
    ``agent_seconds`` the time an env spent waiting between two of its steps, i.e. the agent's own
    forward passes and updates (booked by the envs, see :meth:`add_agent_time`); ``eval_seconds``
    test-set evaluation; ``reference_seconds`` and ``reference_samples`` the training (and scoring) of
    the models a learnability method adds beside the inner one (a reference or a proxy model, samples
    back-propagated plus forwarded, :mod:`envs.core.reference`), booked even when the reference came
    from the cache, so an equal-cost comparison always pays for it; ``candidates_seconds`` the
    no-grad forwards of candidate batches a per-batch selection ranks (their samples count in
    ``samples_forwarded``). On CUDA the clock synchronises the device at each
    boundary when ``sync_cuda`` is set, otherwise asynchronous kernels blur the split."""

    samples_forwarded: int = 0
    samples_backpropagated: int = 0
    optimizer_steps: int = 0
    eval_samples_forwarded: int = 0
    train_seconds: float = 0.0
    overhead_seconds: float = 0.0
    eval_seconds: float = 0.0
    agent_seconds: float = 0.0
    reference_seconds: float = 0.0
    reference_samples: int = 0
    candidates_seconds: float = 0.0
    sync_cuda: bool = field(default=False, repr=False)

    @contextmanager
    def timed(self, bucket: str) -> Iterator[None]:
        """Add the wall-clock of the block to ``<bucket>_seconds``: one of :data:`LEDGER_BUCKETS`."""
        if bucket not in LEDGER_BUCKETS:
            raise ValueError(f"unknown ledger bucket {bucket!r}; valid choices: {', '.join(LEDGER_BUCKETS)}")
        attr = f"{bucket}_seconds"
        if self.sync_cuda and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync_cuda and torch.cuda.is_available():
                torch.cuda.synchronize()
            setattr(self, attr, getattr(self, attr) + time.perf_counter() - start)

    @property
    def total_seconds(self) -> float:
        """Every bucket's wall-clock summed: what an equal-wall-clock comparison charges a run."""
        return sum(getattr(self, f"{b}_seconds") for b in LEDGER_BUCKETS)

    def add_agent_time(self, seconds: float) -> None:
        """Book ``seconds`` spent outside the env between two steps (the caller's, i.e. the agent's, time)."""
        self.agent_seconds += seconds

    def as_dict(self) -> dict[str, float | int]:
        d = asdict(self)
        d.pop("sync_cuda")
        return d

    def load_dict(self, d: dict[str, float | int]) -> None:
        for k, v in d.items():
            setattr(self, k, type(getattr(self, k))(v))

    def summary(self, full_backprop: int | None = None) -> str:
        """One line for logs; with ``full_backprop`` (the count of a full-data run) also the fraction."""
        return format_ledger(self.as_dict(), full_backprop)


def format_ledger(ledger: dict[str, float | int], full_backprop: int | None = None) -> str:
    """One line describing a ledger (as from :meth:`CostLedger.as_dict`), for logs and CLIs."""
    frac = f" ({ledger['samples_backpropagated'] / full_backprop:.1%} of full data)" if full_backprop else ""
    return (
        f"back-propagated {ledger['samples_backpropagated']:,}{frac}, forwarded {ledger['samples_forwarded']:,}, "
        f"steps {ledger['optimizer_steps']:,}, train {ledger['train_seconds']:.1f}s, "
        f"overhead {ledger['overhead_seconds']:.1f}s, agent {ledger.get('agent_seconds', 0.0):.1f}s, "
        f"eval {ledger['eval_seconds']:.1f}s"
        + (f", reference {ledger['reference_samples']:,} samples {ledger['reference_seconds']:.1f}s"
           if ledger.get("reference_samples") else "")
        + (f", candidates {ledger['candidates_seconds']:.1f}s" if ledger.get("candidates_seconds") else "")
    )
