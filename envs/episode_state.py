"""Mid-episode checkpoints of the batch environments.

Why: one episode of ``DataAgent-v0`` or ``CoverSelect-v0`` is a whole training run (hours on real
data), so an episode must be resumable where it stopped, not restarted. Both envs share the same
episode skeleton: a :class:`~envs.trainer.Trainer`, the epoch's fixed-size batches, the position
in them, the forwarded batch whose graph the next ``step`` back-propagates, and a reward object.
:class:`EpisodeStateMixin` saves and restores that skeleton; each env adds its own selection state
through ``_method_state`` / ``_restore_method_state``.

The forwarded batch is saved as its indices and (augmented) inputs; on load its graph is rebuilt
by :meth:`~envs.trainer.Trainer.replay_forward`, so the first ``step`` after a load does exactly
what it would have done without the interruption (bit for bit on CPU). Reward objects keep their
running statistics through ``state_dict``/``load_state_dict`` when they have them; a custom reward
without them is treated as stateless.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class EpisodeStateMixin:
    """``state_dict()`` / ``load_state_dict()`` for an env built on the shared episode skeleton."""

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
        fwd = state["forward"]
        self._fwd = None if fwd is None else self.trainer.replay_forward(
            fwd["idx"].to(self.device), fwd["inputs"].to(self.device))

    def _method_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
