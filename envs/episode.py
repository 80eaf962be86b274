"""The episode both batch environments run, its info contract, its one host transfer and its checkpoints.

Why: ``DataAgent-v0`` and ``CoverSelect-v0`` run one episode the same way. A
:class:`~envs.core.trainer.Trainer` trains an epoch of fixed-size batches; the observation is the state of
the forwarded batch whose graph the next ``step`` back-propagates; a reward object scores it. They
differ only in which samples an epoch trains, in what an action does to the selection state and in
how a batch's state and reward are built. :class:`BatchEpisodeEnv` owns ``reset`` and ``step`` once;
each env supplies hooks. So the two envs cannot drift apart in how they validate actions, time the
agent, move data to the host, report divergence or end a run.

**One transfer per step.** Everything a step needs on the host (per-sample rewards, the training
loss, the env's scalar extras, the next batch's all-finite flag and its state) is gathered on the
device by name in a :class:`HostTransfer` and copied in one ``.cpu()`` call: a device sync per
value would cost more than the env's own work on a GPU. The last step also evaluates the model and
reads the final scores (their own transfers, once per run).

**Info contract** (both envs; each env's docstring lists only its extras):

- every ``reset`` and ``step``: ``batch_indices`` (int64, ``(batch_size,)``): the training-set
  indices of the returned observation's batch, and ``padded`` (bool, ``(batch_size,)``): True for
  the slots of an epoch's last batch filled with repeats of samples the epoch has already drawn
  (:func:`envs.methods.selection.fixed_size_batches`); on the last step, whose observation is no batch,
  ``batch_indices`` is all -1 and ``padded`` all False. ``ledger``: the cost ledger's counters
  (samples forwarded and back-propagated, optimizer steps, evaluated samples; its wall-clock
  timings, which are not deterministic, only on the last step) and ``backprop_fraction``
  (back-propagated samples / ``epochs * N``, the count of a full-data run);
- every ``step``, about the batch just trained: ``epoch``, ``sample_rewards`` (float32,
  ``(batch_size,)``; the scalar reward is their mean over the slots whose actions count),
  ``train_loss`` and ``lr``;
- the last step (``truncated=True``; also after a divergence): ``final_test`` (test top1, top5 in %,
  loss), ``scores`` (float32, every training sample's final score in [0, 1]), ``problem_shares`` (what the
  env kept of each data problem beside its base rate, :meth:`envs.core.data.DeviceDataset.problem_shares`; each
  env's docstring says what "kept" is) and, if the model diverged, ``error`` (the observation is then all zeros and the reward 0 when it is not finite).

An episode is one whole training run (hours on real data), so it must be resumable where it
stopped, not restarted. The forwarded batch is saved as its indices and (augmented) inputs; on load
its graph is rebuilt by :meth:`~envs.core.trainer.Trainer.replay_forward`, so the first ``step`` after a
load does exactly what it would have done without the interruption (bit for bit on CPU). Reward
objects keep their running statistics through ``state_dict``/``load_state_dict`` when they have
them; a custom reward without them is treated as stateless.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import asdict
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.actions import check_score_action
from envs.core.batches import fixed_size_batches
from envs.core.data import DataConfig
from envs.core.reference import ReferenceConfig, attach_reference, load_reference
from envs.core.state import batch_state, state_dim
from envs.core.trainer import BatchForward, DivergenceError, Trainer, TrainerConfig, resolve_device

LEDGER_COUNTERS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps", "eval_samples_forwarded")


class HostTransfer:
    """Named device tensors brought to the host in one copy, and read back there by name.

    Why: a step needs a handful of device values on the host; one ``.cpu()`` per value would
    synchronise the device each time. Values are packed in the order they are added, flattened and
    cast to float32 (a bool flag becomes 0.0 or 1.0); :meth:`to_host` returns each as a float32
    array of its original shape (0-d for scalars), a view of the one host array.

    The step's names: ``sample_rewards`` ``(batch_size,)`` and the env's scalar extras (added by
    :meth:`BatchEpisodeEnv._score_batch`), ``train_loss`` ``()``, then, when the next batch was
    forwarded, ``finite`` ``()`` (1.0 when its losses and features are all finite) and
    ``observation`` (the observation space's shape).
    """

    def __init__(self) -> None:
        self._values: dict[str, torch.Tensor] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        """Pack ``value`` (any shape, on the device) under ``name``.

        :param name: the key :meth:`to_host` returns it under; each name once
        :param value: a tensor on the device the other values live on
        """
        if name in self._values:
            raise ValueError(f"name={name!r} is already packed; valid: a name not in {sorted(self._values)}")
        self._values[name] = value

    def to_host(self) -> dict[str, np.ndarray]:
        """The packed values by name, copied to the host in one transfer."""
        if not self._values:
            return {}
        flat = torch.cat([v.detach().float().reshape(-1) for v in self._values.values()]).cpu().numpy()
        out, start = {}, 0
        for name, value in self._values.items():
            out[name] = flat[start:start + value.numel()].reshape(tuple(value.shape))
            start += value.numel()
        return out


class _CheckedKeywords(ABCMeta):
    """Constructing an env checks its keywords first: anyone used to flat keyword arguments writes
    ``gym.make("DataAgent-v0", epochs=3)``, and a bare "unexpected keyword" ``TypeError`` does not say that
    ``epochs`` belongs in ``trainer={...}``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        accepted = inspect.signature(cls.__init__).parameters
        unknown = [name for name in kwargs if name not in accepted]
        for name in unknown:
            for options in (TrainerConfig, DataConfig, ReferenceConfig):
                if name in options.__dataclass_fields__:
                    raise TypeError(f"{cls.__name__}: {name} is a {options.keyword} option: pass "
                                    f"{options.keyword}={{{name!r}: {kwargs[name]!r}}}")
        if unknown:
            valid = ", ".join(p for p in accepted if p != "self")
            raise TypeError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
        return super().__call__(*args, **kwargs)


class BatchEpisodeEnv(gym.Env, metaclass=_CheckedKeywords):
    """One batch per step, one training run per episode: ``reset``, ``step``, the info contract
    (module docstring) and ``state_dict()`` / ``load_state_dict()``.

    A subclass sets ``observation_space``, ``action_space``, ``reward_fn`` and ``num_samples`` in
    its ``__init__`` (after this one) and implements the hooks :meth:`_new_run`, :meth:`_current_scores`,
    :meth:`_epoch_indices`, :meth:`_score_batch`, :meth:`_observe`, :meth:`_run_end_info`,
    :meth:`_method_state` and :meth:`_restore_method_state`; :meth:`_end_epoch` is optional. The base
    lays out every epoch and tells the hooks how many of a batch's leading slots are real samples
    (``num_valid``; the rest pad the epoch's last batch), so no hook reads the layout itself.

    :param trainer: the inner training options (:class:`~envs.core.trainer.TrainerConfig` or a dict of its fields)
    :param data: the data options (:class:`~envs.core.data.DataConfig` or a dict of its fields)
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param reference: a reference model's options (:class:`~envs.core.reference.ReferenceConfig` or a dict of its
        fields) giving the sample store each sample's reference and reducible loss; None: no reference

    ``slots`` is the number of samples an observation describes (``batch_size``; a subclass that
    observes larger candidate batches sets it in its ``__init__``).
    """

    metadata = {"render_modes": []}
    #: whether the actions of padded slots count (they change scores and enter the scalar reward)
    scores_padded_slots: bool = True

    def __init__(self, trainer: TrainerConfig | Mapping[str, Any] | None, data: DataConfig | Mapping[str, Any] | None,
                 device: str, reference: ReferenceConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = TrainerConfig.coerce(trainer)
        self.data_config = DataConfig.coerce(data)
        self.reference = None if reference is None else ReferenceConfig.coerce(reference)
        if self.reference is not None and self.reference.kind == "holdout" and self.data_config.holdout is None:
            raise ValueError("reference kind='holdout' needs data with a holdout; valid: data holdout=<fraction in "
                             "(0, 0.5]>, or reference kind='halves'")
        self.slots = self.config.batch_size
        self.device = resolve_device(device)
        self.trainer: Trainer | None = None
        self.reward_fn: Any = None
        self.num_samples = 0
        self._fwd: BatchForward | None = None
        self._final_test: dict[str, float] | None = None
        self._returned_at: float | None = None
        self._done = True

    def _check_learnability(self, option: str, wanted: bool) -> None:
        """``option`` (a learnability option, ``wanted``) needs a reference: a one-line error without one."""
        if wanted and self.reference is None:
            raise ValueError(f"{option} needs a reference model; valid: reference={{'kind': 'holdout'}} with data "
                             "holdout=<fraction>, or reference={'kind': 'halves'}")

    def _attach_reference(self, trainer: Trainer, model: Any, data_seed: int) -> None:
        """Give ``trainer``'s store the reference's scores (trained once per configuration, cached) and book
        its cost in the run's ledger; nothing without a reference."""
        if self.reference is None:
            return
        data = {**asdict(self.data_config), "seed": data_seed}
        scores = load_reference(trainer.dataset, model, self.config, self.reference, data, data_seed)
        attach_reference(trainer, scores)

    def _state_dim(self, state: str, feature_dim: int) -> int:
        """Columns of an observation row for ``state`` (:func:`envs.core.state.state_dim`, with this env's reference)."""
        return state_dim(state, feature_dim, self.reference is not None)

    def _batch_state(self, fwd: BatchForward, state: str, selecting: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``state`` rows of a forwarded batch (:func:`envs.core.state.batch_state`: signals read from the
        store the pass just updated, with every sample's current scores and whether the epoch is ``selecting``)
        and whether its losses and features are all finite."""
        feats = fwd.features.detach()
        # all-zero features: a collapsed model (dead ReLUs), whose constant rewards the running normaliser would
        # divide by a zero spread, blowing up the agent's update
        finite = torch.isfinite(fwd.losses.detach()).all() & torch.isfinite(feats).all() & feats.any()
        t = self.trainer
        rows = batch_state(state, feats, t.store, fwd.idx, self._current_scores(), t.epoch, t.progress, selecting,
                           t.dataset.num_classes)
        return rows, finite

    @property
    def scores(self) -> torch.Tensor:
        """Every training sample's current score in [0, 1], on the device (read-only: a view of the env's state)."""
        if self.trainer is None:
            raise RuntimeError("scores read before reset(): there is no episode yet; call reset()")
        return self._current_scores()

    def _check_batch_size(self, smallest: int) -> None:
        """The batch must fit the training set (``smallest``: the env's least valid ``batch_size``)."""
        if self.slots > self.num_samples:
            per = "" if self.slots == self.config.batch_size else f" ({self.slots} candidates per observation)"
            raise ValueError(f"batch_size={self.config.batch_size!r} is invalid for {self.num_samples} training samples{per}; "
                             f"valid range: [{smallest}, {self.num_samples}]")

    # --- episode --------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new run: fresh model, optimizer and selection state (``options`` is unused).

        :param seed: the run seed (model, shuffling, augmentation); None draws one from ``np_random``
        :param options: unused
        """
        super().reset(seed=seed)
        run_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        tie_seed = int(self.np_random.integers(2**63 - 1))
        self._new_run(run_seed, tie_seed)
        self.reward_fn.reset()
        self._final_test = None
        self._done = False
        self._lay_out_epoch(0)
        host = self._forward_and_fetch(HostTransfer(), forward_next=True)
        if host["finite"] != 1.0:
            raise DivergenceError("the first forward pass of the run gave a non-finite loss or feature")
        self._start_agent_clock()
        return host["observation"], self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Score the observed batch with ``action``, train on it and observe the next batch.

        :param action: one value in [-1, 1] per slot of the observed batch (score ``(a + 1) / 2``)
        """
        if self.trainer is None or self._done:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        self._stop_agent_clock()
        a = check_score_action(action, self.action_space.shape)
        trainer, fwd, epoch = self.trainer, self._fwd, self.trainer.epoch
        num_valid = self._num_valid(self._pos)
        transfer = HostTransfer()
        with trainer.ledger.timed("overhead"):
            scores = (torch.from_numpy(a).to(self.device) + 1.0) * 0.5
            weights, extras = self._score_batch(fwd, scores, num_valid, transfer)
        lr = trainer.lr
        transfer.add("train_loss", self._train(fwd, weights))
        self._fwd = None
        self._pos += 1
        epoch_done = self._pos == len(self._batches)
        last = epoch_done and epoch + 1 == self.config.epochs
        if epoch_done:
            self._end_epoch(last)
            if not last:
                self._lay_out_epoch(epoch + 1)
        host = self._forward_and_fetch(transfer, forward_next=not last)
        sample_rewards = host.pop("sample_rewards")
        acted = sample_rewards if self.scores_padded_slots else sample_rewards[:num_valid]
        reward = float(acted.mean(dtype=np.float64))
        loss = float(host.pop("train_loss"))
        finite = host.pop("finite", None)
        observation = host.pop("observation", None)
        error = None
        if not math.isfinite(reward) or not math.isfinite(loss):
            error = f"non-finite training loss or reward in epoch {epoch} (lr {lr:.3g}); try a lower lr"
        elif not last and finite != 1.0:
            error = (f"the model diverged after a step in epoch {epoch} (lr {lr:.3g}): non-finite loss or features, "
                     "or every feature 0 (a collapsed model); "
                     "try a lower lr")
        if error is None and not last:
            info = self._info()
        else:
            observation = np.zeros(self.observation_space.shape, dtype=np.float32)
            reward = reward if math.isfinite(reward) else 0.0
            self._done, self._fwd = True, None
            info = self._final_info(error)
        info.update(epoch=epoch, sample_rewards=sample_rewards, train_loss=loss, lr=lr, **extras,
                    **{name: float(value) if value.ndim == 0 else value for name, value in host.items()})
        self._start_agent_clock()
        return observation, reward, False, self._done, info

    # --- hooks ----------------------------------------------------------------------------------

    @abstractmethod
    def _new_run(self, run_seed: int, tie_seed: int) -> None:
        """Build ``self.trainer`` and the selection state of the run ``run_seed`` (ties broken with ``tie_seed``)."""

    @abstractmethod
    def _current_scores(self) -> torch.Tensor:
        """Every training sample's current score in [0, 1] (:attr:`scores`; called only after ``reset``)."""

    @abstractmethod
    def _epoch_indices(self, epoch: int) -> torch.Tensor | None:
        """The samples epoch ``epoch`` draws its batches from (None: all); the base shuffles and lays them out."""

    @abstractmethod
    def _score_batch(self, fwd: BatchForward, scores: torch.Tensor, num_valid: int,
                     transfer: HostTransfer) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """Apply the batch's ``scores`` (``(a + 1) / 2`` on the device; its first ``num_valid`` slots are
        real samples, the rest pad the epoch's last batch) and compute its rewards.

        Adds ``sample_rewards`` and the env's scalar extras to ``transfer`` (each lands in the info
        by its name) and returns the loss weights of the SGD step (None: unweighted) and host-side
        info extras. Runs under the ledger's overhead timer."""

    def _end_epoch(self, last: bool) -> None:
        """Called when the last batch of an epoch has been trained (``last``: of the run)."""

    def _forward(self, idx: torch.Tensor) -> BatchForward:
        """The forward pass of the batch an observation describes (a training forward, graph kept)."""
        return self.trainer.forward(idx)

    def _replay(self, idx: torch.Tensor, inputs: torch.Tensor) -> BatchForward:
        """Rebuild a checkpointed :meth:`_forward` without counting or recording it again."""
        return self.trainer.replay_forward(idx, inputs)

    def _train(self, fwd: BatchForward, weights: torch.Tensor | None) -> torch.Tensor:
        """The SGD step of a scored batch (returns the detached training loss)."""
        return self.trainer.step(fwd, weights)

    @abstractmethod
    def _observe(self, fwd: BatchForward, num_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The state of a forwarded batch (its first ``num_valid`` slots are real samples) and whether its
        losses and features are all finite."""

    @abstractmethod
    def _run_end_info(self) -> dict[str, Any]:
        """The env's extras of the last step's info (after ``final_test``, before the full ledger)."""

    @abstractmethod
    def _method_state(self) -> dict[str, Any]:
        """The env's own part of :meth:`state_dict`: its run seeds and selection state."""

    @abstractmethod
    def _restore_method_state(self, state: dict[str, Any]) -> None:
        """Rebuild ``self.trainer`` and the selection state saved by :meth:`_method_state`."""

    # --- internals ------------------------------------------------------------------------------

    def _lay_out_epoch(self, epoch: int) -> None:
        """Shuffle the epoch's samples (:meth:`_epoch_indices`) into fixed-size batches and start the epoch in
        the trainer (the shuffle and layout are booked as overhead)."""
        with self.trainer.ledger.timed("overhead"):
            indices = self._epoch_indices(epoch)
            batches, self._num_padded = fixed_size_batches(self.trainer.shuffled_batches(indices, self.slots), self.slots)
            self._batches = torch.stack(batches)
            self._host_batches = self._batches.cpu().numpy()  # once per epoch, for info["batch_indices"]
        self.trainer.begin_epoch(epoch, len(batches))
        self._pos = 0

    def _num_valid(self, pos: int) -> int:
        """How many leading slots of batch ``pos`` of the current epoch are not padding."""
        last = pos == len(self._batches) - 1
        return self.slots - (self._num_padded if last else 0)

    def _padded(self, pos: int) -> np.ndarray:
        """``info["padded"]`` of batch ``pos`` of the current epoch."""
        padded = np.zeros(self.slots, dtype=bool)
        padded[self._num_valid(pos):] = True
        return padded

    def _stop_agent_clock(self) -> None:
        """At the start of ``step``: book the time since the previous step returned as agent time."""
        if self._returned_at is not None:
            self.trainer.ledger.add_agent_time(time.perf_counter() - self._returned_at)
        self._returned_at = None

    def _start_agent_clock(self) -> None:
        """When ``reset``/``step`` returns: from now until the next ``step`` the agent is working."""
        self._returned_at = None if self._done else time.perf_counter()

    def _forward_and_fetch(self, transfer: HostTransfer, forward_next: bool) -> dict[str, np.ndarray]:
        """The end of ``reset`` and every step: forward the batch at ``_pos`` (when ``forward_next``),
        add its ``finite`` flag and ``observation`` to ``transfer`` and fetch it all to the host."""
        if forward_next:
            self._fwd = self._forward(self._batches[self._pos])
        with self.trainer.ledger.timed("overhead"):
            if forward_next:
                state, finite = self._observe(self._fwd, self._num_valid(self._pos))
                transfer.add("finite", finite)
                transfer.add("observation", state)
            return transfer.to_host()  # the step's one device-to-host transfer

    def _backprop_fraction(self) -> float:
        return self.trainer.ledger.samples_backpropagated / (self.config.epochs * self.num_samples)

    def _info(self) -> dict[str, Any]:
        """The info keys of every reset and step about the returned batch and the counters (fresh objects)."""
        ledger = self.trainer.ledger.as_dict()
        return {"batch_indices": self._host_batches[self._pos].copy(), "padded": self._padded(self._pos),
                "ledger": {k: ledger[k] for k in LEDGER_COUNTERS}, "backprop_fraction": self._backprop_fraction()}

    def _final_info(self, error: str | None) -> dict[str, Any]:
        """The last step's info: the run's results (evaluating the model) and the full ledger."""
        b = self.slots
        self._final_test = self.trainer.evaluate()
        info = {"batch_indices": np.full(b, -1, dtype=np.int64), "padded": np.zeros(b, dtype=bool),
                "final_test": dict(self._final_test), "scores": self.scores.cpu().numpy().copy(), **self._run_end_info()}
        info.update(ledger=self.trainer.ledger.as_dict(), backprop_fraction=self._backprop_fraction())
        if error is not None:
            info["error"] = error
        return info

    # --- checkpoints ----------------------------------------------------------------------------

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
            "final_test": self._final_test,
            "forward": None if fwd is None else {"idx": fwd.idx.clone(), "inputs": fwd.inputs.detach().clone()},
            "method": self._method_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the episode saved by :meth:`state_dict` (replaces any episode in progress).

        :param state: what :meth:`state_dict` returned (possibly after ``torch.save``/``torch.load``)
        """
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
        self._final_test = state["final_test"]
        self._returned_at = None  # the agent's clock restarts with the resumed run
        fwd = state["forward"]
        self._fwd = None if fwd is None else self._replay(fwd["idx"].to(self.device), fwd["inputs"].to(self.device))
