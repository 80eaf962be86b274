"""Checkpoints of a whole run and what SIGTERM/SIGINT do to it.

Why a module of its own: the save points (rollout boundaries), the payload and the signal policy must
agree, or a resumed run would not end exactly as the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback

from agents import agent_state, load_agent_state
from envs.core.checkpoint import CheckpointDir, rng_state, set_rng_state
from experiments.run.tracking import RunTracker


class RunInterrupted(Exception):
    """A stop signal arrived and the run was checkpointed."""

    def __init__(self, signum: int, path: Path):
        super().__init__(f"{signal.Signals(signum).name}: checkpoint saved to {path}")
        self.signum = signum


class RunCheckpointer(BaseCallback):
    """Saves the whole run (env episode, agent, tracker, RNG states) at rollout boundaries: every
    ``every`` epochs of inner training (0: never) and when :attr:`stop_signal` is set, after which
    it raises :class:`RunInterrupted`. A rollout boundary is the one point where no transition of
    the agent is in flight, so continuing from there replays the run exactly.

    :param folder: where the numbered checkpoints go
    :param config: the run configuration a checkpoint must match to be loaded
    :param env: the run's env (as wrapped by ``gym.make``)
    :param tracker: the run's tracker (progress, reward curve)
    :param every: epochs between periodic checkpoints
    """

    def __init__(self, folder: CheckpointDir, config: dict[str, Any], env: gym.Env, tracker: RunTracker, every: int):
        super().__init__()
        self.folder, self.config, self.wrapped, self.tracker, self.every = folder, config, env, tracker, every
        self.env = env.unwrapped
        self.started = time.perf_counter()  # moved back by the saved run time on restore()
        self.saved_epoch = self.env.trainer.epoch if self.env.trainer is not None else 0
        self.stop_signal: int | None = None

    def _on_rollout_start(self) -> None:
        epoch = self.env.trainer.epoch
        if self.stop_signal is None and not (self.every and epoch >= self.saved_epoch + self.every):
            return
        path = self.save()
        self.saved_epoch = epoch
        if self.stop_signal is not None:
            raise RunInterrupted(self.stop_signal, path)

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        payload = {"agent": agent_state(self.model), "env": self.env.state_dict(), "tracker": self.tracker.state_dict(),
                   "elapsed": time.perf_counter() - self.started, "rng": rng_state()}
        return self.folder.save(self.model.num_timesteps, payload, self.config)

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue from ``payload``: env first (its trainer re-seeds the global RNGs), then the
        agent, then the RNG states of the moment of the save."""
        self.wrapped.reset()  # through every wrapper, so their reset-before-step checks pass
        self.env.load_state_dict(payload["env"])  # then the saved episode replaces the fresh one
        load_agent_state(self.model, payload["agent"])
        self.tracker.load_state_dict(payload["tracker"])
        self.started = time.perf_counter() - payload["elapsed"]
        self.saved_epoch = self.env.trainer.epoch
        set_rng_state(payload["rng"])


@contextmanager
def _on_stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` answers SIGTERM and SIGINT inside the block (only in the main thread, where Python
    delivers signals); the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def checkpoint_on_signals(checkpointer: RunCheckpointer) -> contextlib.AbstractContextManager[None]:
    """While learning, SIGTERM and SIGINT ask ``checkpointer`` to save and stop at the end of the
    rollout; a second signal stops at once (``KeyboardInterrupt``)."""

    def handler(signum: int, frame: Any) -> None:
        if checkpointer.stop_signal is not None:
            raise KeyboardInterrupt
        checkpointer.stop_signal = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint at the end of this rollout, then stopping "
              "(send it again to stop at once, without saving)", file=sys.stderr, flush=True)

    return _on_stop_signals(handler)


def exit_on_signals(explain: str) -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGINT stop at once with exit status 128 + signal, after printing ``explain``:
    a stop never goes unexplained, whatever phase the run is in."""

    def handler(signum: int, frame: Any) -> None:
        print(f"\n{signal.Signals(signum).name}: {explain}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    return _on_stop_signals(handler)


