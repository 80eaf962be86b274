"""Data-parallel inner training under ``torchrun``: one process per device, one agent for all of them.

Why this shape: ImageNet-scale inner training needs several devices, but the agent's decisions must not
depend on how many there are. So every process (rank) keeps a full, identical copy of the environment:
the same dataset, generators, per-sample store, scores and selection. Each rank builds the inputs of the
*whole* batch from the shared generator, forwards and back-propagates only its shard (the model is wrapped
in ``DistributedDataParallel``, which averages the gradients), and all-gathers the shard's detached
logits, features and losses, so the state, the reward and the store see the whole batch on every rank.
Only rank 0 runs the agent; :class:`ReplicatedEnv` repeats its ``reset`` and ``step`` calls, with the
same arguments, on the other ranks' copies.

Nothing here is active outside ``torchrun`` (``WORLD_SIZE`` unset or 1): :func:`current` is then None
and every caller takes its single-process path unchanged.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import gymnasium as gym
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")


def world_size() -> int:
    """Processes of this job as ``torchrun`` announces them (1 outside ``torchrun``)."""
    value = os.environ.get("WORLD_SIZE", "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"WORLD_SIZE={value!r} is invalid; valid: an integer >= 1 (torchrun sets it)")
    return int(value)


def local_cuda_index() -> int:
    """This process's CUDA device: ``LOCAL_RANK`` (its index on its machine), or 0 where the launcher shows
    each process a single GPU (``CUDA_VISIBLE_DEVICES`` per process)."""
    return 0 if torch.cuda.device_count() == 1 else int(os.environ.get("LOCAL_RANK", "0"))


@dataclass(frozen=True)
class World:
    """This process's place among the job's processes.

    :param rank: this process's global index; rank 0 runs the agent and writes files
    :param size: number of processes
    :param device: this process's device (``cuda:LOCAL_RANK`` on GPUs)
    """

    rank: int
    size: int
    device: torch.device

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        """Each rank trains an equal shard of every batch, so the batch must split evenly."""
        if batch_size % self.size:
            raise ValueError(f"batch_size={batch_size} does not split over {self.size} processes; valid: a multiple "
                             f"of {self.size} (each process trains an equal shard of every batch)")

    def shard(self, n: int, rank: int | None = None) -> slice:
        """Rank ``rank``'s (default: this rank's) contiguous rows of ``n``; shard sizes differ by at most one."""
        r = self.rank if rank is None else rank
        base, extra = divmod(n, self.size)
        start = r * base + min(r, extra)
        return slice(start, start + base + (r < extra))

    def all_gather_rows(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` rows that the ranks hold as their :meth:`shard` of ``n``, in rank order, on every rank.
        Shards are padded to one size for the collective and trimmed again."""
        width = -(-n // self.size)
        padded = part.new_zeros((width, *part.shape[1:]))
        padded[: len(part)] = part
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        sizes = [self.shard(n, r).stop - self.shard(n, r).start for r in range(self.size)]
        return torch.cat([p[:size] for p, size in zip(parts, sizes)])

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over ranks (in place; returned for chaining)."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def wrap(self, model: nn.Module) -> tuple[nn.Module, DistributedDataParallel]:
        """``(module, ddp)``: on CUDA the module's batch norms become ``SyncBatchNorm`` (batch statistics over
        the whole batch, as in one process); ``ddp`` averages its gradients over ranks. On CPU (gloo)
        ``SyncBatchNorm`` does not run, so batch norm normalises each shard by its own statistics."""
        if self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return model, DistributedDataParallel(model, device_ids=[self.device])
        return model, DistributedDataParallel(model)

    def broadcast(self, obj: Any = None) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for small control messages)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def current(device: torch.device | None = None) -> World | None:
    """The job's :class:`World` under ``torchrun`` (the process group is started on first use: gloo for
    CPU tensors, NCCL for CUDA tensors), else None.

    :param device: this process's device (default: :func:`local_cuda_index`'s GPU when CUDA is present, else CPU)
    """
    if world_size() == 1:
        return None
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local_cuda_index())
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")
        atexit.register(dist.destroy_process_group)  # started here, so closed here (NCCL warns otherwise)
    if device is None:
        device = torch.device("cuda", local_cuda_index()) if cuda else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), device)


def is_leader() -> bool:
    """True on rank 0 and outside ``torchrun``: the one process that writes files and prints results."""
    world = current()
    return world is None or world.is_leader


def _checksum(obs: Any) -> float:
    return float(np.sum(obs, dtype=np.float64))


def _same_checksum(a: float | None, b: float) -> bool:
    """Equal up to rounding: on CPU the copies are bit-identical, on GPUs kernels may round differently."""
    return a is not None and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-3)


class ReplicatedEnv(gym.Wrapper):
    """Keeps every rank's copy of an env in step with rank 0's, where the agent runs.

    Inside :meth:`replicate`, rank 0's ``reset`` and ``step`` first broadcast their arguments and the
    previous observation's checksum; the other ranks apply the same calls to their copies and check
    that their observation was the same up to rounding (:class:`RuntimeError` otherwise). Outside it, and outside
    ``torchrun``, the wrapper passes every call through untouched (each rank then calls its copy
    itself, e.g. when all of them restore a checkpoint).

    :param env: this rank's copy of the env
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.world = current()
        self._leading = False
        self._last_checksum: float | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._send("reset", {"seed": seed, "options": options})
        obs, info = self.env.reset(seed=seed, options=options)
        self._remember(obs)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._send("step", np.asarray(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._remember(obs)
        return obs, reward, terminated, truncated, info

    def _remember(self, obs: Any) -> None:
        """The observation's checksum for the followers' check (one process: nobody checks it)."""
        if self.world is not None:
            self._last_checksum = _checksum(obs)

    def _send(self, command: str, argument: Any) -> None:
        if self._leading:
            self.world.broadcast((command, argument, self._last_checksum))

    def replicate(self, lead: Callable[[], T]) -> T:
        """Run ``lead`` (the agent's loop) on rank 0 while the other ranks follow its env calls; every rank
        returns ``lead``'s result. Outside ``torchrun`` this is ``lead()``. If ``lead`` raises on rank 0, the
        other ranks stop with ``SystemExit`` naming the error."""
        if self.world is None:
            return lead()
        if not self.world.is_leader:
            return self._follow()
        self._leading = True
        try:
            result = lead()
        except BaseException as err:
            self._leading = False
            self.world.broadcast(("abort", f"{type(err).__name__}: {err}", None))
            raise
        self._leading = False
        self.world.broadcast(("done", result, None))
        return result

    def _follow(self) -> Any:
        """Apply rank 0's commands until it is done. Stop signals are ignored meanwhile: rank 0 decides
        when to stop (it checkpoints first), and a follower that died would leave it hanging."""
        with _ignoring_stop_signals():
            while True:
                command, argument, checksum = self.world.broadcast()
                if command == "done":
                    return argument
                if command == "abort":
                    raise SystemExit(f"rank {self.world.rank}: rank 0 stopped ({argument})")
                if checksum is not None and not _same_checksum(self._last_checksum, checksum):
                    raise RuntimeError(f"rank {self.world.rank}'s observation differs from rank 0's (checksum "
                                       f"{self._last_checksum!r} vs {checksum!r}); the env copies diverged")
                if command == "reset":
                    self.reset(**argument)
                else:
                    self.step(argument)


@contextmanager
def _ignoring_stop_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
