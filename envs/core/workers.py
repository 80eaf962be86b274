"""Torch inside forked worker processes (``AsyncVectorEnv``, ``SubprocVecEnv(start_method="fork")``).

Why: torch's CPU ops run on GNU OpenMP's thread pool (``torch.__config__.parallel_info()``), and that
pool does not survive ``fork``. Once the parent has run one multi-threaded op (a matmul, an env step),
the first multi-threaded op in a forked child waits forever for pool threads that exist only in the
parent. Every real script does torch work before it starts its workers, so forked envs hung.

The fix: a forked child runs torch on one thread, as PyTorch's own DataLoader workers do; then no
op enters the broken pool. One thread per worker is also what N workers on N cores want. Workers
started with ``forkserver`` or ``spawn`` are fresh interpreters and keep torch's default threads.
"""

from __future__ import annotations

import os

import torch


def _one_torch_thread() -> None:
    torch.set_num_threads(1)


def make_forked_children_safe() -> None:
    """Register, once per process, that every child forked from now on runs torch on one thread."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=_one_torch_thread)
        _registered = True


_registered = False
