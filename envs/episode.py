"""The episode skeleton both batch environments share, and its mid-episode checkpoints.

Why: ``DataAgent-v0`` and ``CoverSelect-v0`` run one episode the same way. A
:class:`~envs.trainer.Trainer` trains an epoch of fixed-size batches; the observation is the state of
the forwarded batch whose graph the next ``step`` back-propagates; a reward object scores it. They
differ only in which samples an epoch trains and in how a batch's state and reward are built.
:class:`BatchEpisodeMixin` holds the shared part once: laying out an epoch's batches, the run's
first observation, and saving and restoring an episode (each env adds its own selection state
through ``_method_state`` / ``_restore_method_state``).

An episode is one whole training run (hours on real data), so it must be resumable where it
stopped, not restarted. The forwarded batch is saved as its indices and (augmented) inputs; on load
its graph is rebuilt by :meth:`~envs.trainer.Trainer.replay_forward`, so the first ``step`` after a
load does exactly what it would have done without the interruption (bit for bit on CPU). Reward
objects keep their running statistics through ``state_dict``/``load_state_dict`` when they have
them; a custom reward without them is treated as stateless.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from envs.selection import fixed_size_batches
from envs.trainer import DivergenceError


class BatchEpisodeMixin:
    """Epoch layout, first observation and ``state_dict()`` / ``load_state_dict()`` of a batch env.

    The env provides ``trainer``, ``config``, ``device``, ``reward_fn``, ``observation_space``,
    ``_begin_epoch(epoch)`` (which calls :meth:`_lay_out_epoch`), ``_observe(fwd)`` and the two
    ``_method_state`` hooks."""

    def _lay_out_epoch(self, epoch: int, indices: torch.Tensor | None = None) -> None:
        """Shuffle ``indices`` (all samples when None) into the epoch's fixed-size batches and start
        the epoch in the trainer (the shuffle and layout are booked as overhead)."""
        with self.trainer.ledger.timed("overhead"):
            batches, self._num_padded = fixed_size_batches(self.trainer.shuffled_batches(indices), self.config.batch_size)
            self._batches = torch.stack(batches)
            self._host_batches = self._batches.cpu().numpy()  # once per epoch, for info["batch_indices"]
        self.trainer.begin_epoch(epoch, len(batches))
        self._pos = 0

    def _stop_agent_clock(self) -> None:
        """At the start of ``step``: book the time since the previous step returned as agent time."""
        since = getattr(self, "_returned_at", None)
        if since is not None:
            self.trainer.ledger.add_agent_time(time.perf_counter() - since)
        self._returned_at = None

    def _start_agent_clock(self) -> None:
        """When ``reset``/``step`` returns: from now until the next ``step`` the agent is working."""
        self._returned_at = None if self._done else time.perf_counter()

    def _forward_and_transfer(self, parts: list[torch.Tensor], forward_next: bool) -> np.ndarray:
        """The end of every step: forward the batch at ``_pos`` (when ``forward_next``) and bring
        ``parts`` (the step's device values, concatenated), then that batch's all-finite flag and
        flattened state, to the host in one transfer. Returns the host array in that order."""
        if forward_next:
            self._fwd = self.trainer.forward(self._batches[self._pos])
        with self.trainer.ledger.timed("overhead"):
            if forward_next:
                state, finite = self._observe(self._fwd)
                parts = [*parts, finite.float().reshape(1), state.flatten()]
            return torch.cat(parts).cpu().numpy()  # the step's one device-to-host transfer

    def _first_observation(self) -> np.ndarray:
        """Begin epoch 0, forward its first batch and return that batch's state."""
        self._begin_epoch(0)
        host = self._forward_and_transfer([], forward_next=True)
        if host[0] != 1.0:
            raise DivergenceError("the first forward pass of the run gave a non-finite loss or feature")
        self._start_agent_clock()
        return host[1:].reshape(self.observation_space.shape)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the current episode exactly (tensors may live on the device)."""
        if self.trainer is None:
            raise RuntimeError("state_dict() called before reset(): there is no episode to save")
        fwd = self._fwd
        reward_state = getattr(self.reward_fn, "state_dict", None)
        return {
            "np_random": self.np_random.bit_generator.state,
            "trainer": self.trainer.state_dict(),
            "reward": reward_state() if callable(reward_state) else None,
            "batches": self._batches.clone(),
            "num_padded": self._num_padded,
            "pos": self._pos,
            "done": self._done,
            "forward": None if fwd is None else {"idx": fwd.idx.clone(), "inputs": fwd.inputs.detach().clone()},
            "method": self._method_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the episode saved by :meth:`state_dict` (replaces any episode in progress)."""
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = state["np_random"]
        self.np_random = rng
        self._restore_method_state(state["method"])  # rebuilds self.trainer for the saved run
        self.trainer.load_state_dict(state["trainer"])
        if state["reward"] is not None:
            self.reward_fn.load_state_dict(state["reward"])
        self._batches = state["batches"].to(self.device)
        self._host_batches = self._batches.cpu().numpy()
        self._num_padded, self._pos, self._done = state["num_padded"], state["pos"], state["done"]
        self._returned_at = None  # the agent's clock restarts with the resumed run
        fwd = state["forward"]
        self._fwd = None if fwd is None else self.trainer.replay_forward(
            fwd["idx"].to(self.device), fwd["inputs"].to(self.device))

    def _method_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
