"""``DataAgent-v0``: Data Agent's dynamic data selection as a Gymnasium environment (docs/methods.md Part A).

Why this shape: in Data Agent the agent scores every sample of every mini-batch the target model
trains on, and the scores decide which samples the next epochs train on. One environment step is
therefore one mini-batch, one episode one whole training run, and the environment only glues the
shared :class:`~envs.trainer.Trainer`, a reward object (:mod:`envs.rewards`) and the epoch
selector (:mod:`envs.selection`) together: one forward pass per batch feeds the state, the
reward and the gradient.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from envs.actions import check_score_action
from envs.data import DeviceDataset, load_dataset
from envs.episode import BatchEpisodeMixin
from envs.own_model import model_feature_dim
from envs.rewards import BatchReward, check_reward_baseline, make_data_agent_reward
from envs.selection import AnnealedTopKSelector, EpochPlan
from envs.store import SIGNAL_NAMES
from envs.trainer import BatchForward, Trainer, TrainerConfig, resolve_device

STATES = ("features", "signals", "both")
_COUNTERS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps", "eval_samples_forwarded")


class DataAgentEnv(BatchEpisodeMixin, gym.Env):
    """Data Agent: score the samples of each mini-batch; the scores choose who trains next epoch.

    **Episode.** One whole training run of ``epochs`` epochs. In each of the first
    ``floor(anneal * epochs)`` epochs only the ``floor(keep_ratio * N)`` highest-scored samples are
    trained (scores start at 1.0, ties broken at random), each with loss weight ``loss_weight``
    (default ``1 / keep_ratio``, as the Data Agent code does); the remaining epochs train on all
    ``N`` samples with weight 1. ``selection="soft"`` draws the kept set with probabilities from the
    scores instead, and ``refresh`` re-admits a random share of the budget from the left-out samples
    (:class:`envs.selection.AnnealedTopKSelector`). The episode ends with ``truncated=True`` (never ``terminated``)
    after the last batch of the last epoch.

    **Step.** The observation describes batch ``t`` (already forwarded in train mode, graph kept).
    ``step(action)`` scores batch ``t``'s samples with ``(action + 1) / 2``, computes the reward
    from batch ``t``'s forward pass, takes the SGD step on it, forwards batch ``t + 1`` and returns
    its state. Every batch has exactly ``batch_size`` samples: an epoch's last, partial batch is
    padded with the epoch's first samples (re-drawn from the epoch's subset, distinct from the
    batch's own samples). Padded samples are really trained a second time in that epoch and the
    ledger counts them; ``info["padded"]`` marks them.

    **Observation space.** ``Box(-inf, inf, (batch_size, state_dim), float32)``, one row per
    sample. Rows are left unbounded (raw penultimate features are what the paper's agent sees;
    squashing them would change the state), so Gymnasium's ``check_env`` warns about infinite
    bounds. ``state``:

    - ``features``: the target model's penultimate features (``state_dim`` = the model's feature dim);
    - ``signals``: a compact model-agnostic vector, columns :data:`SIGNAL_NAMES`: training loss,
      its EMA, entropy / log C, margin, confidence, correctness, times drawn / (epoch + 1), the
      sample's current score, training progress in [0, 1], and 1 in pruned epochs else 0;
    - ``both``: features then signals.

    **Action space.** ``Box(-1, 1, (batch_size,), float32)``: one score per sample of the observed
    batch. Out-of-range values are clipped; a wrong shape, NaN or inf raises ``ValueError``.

    **Reward.** The batch mean of the reward object's per-sample rewards (a Python float). The
    default is Data Agent's composite reward with its running normaliser
    (:class:`envs.rewards.CompositeReward`); ``reward="loss"`` / ``"entropy"`` or any object with
    the :class:`envs.rewards.BatchReward` interface plugs in an ablation. ``reward_baseline``
    subtracts a batch baseline from the reward's signal: ``none`` is the paper's reward, whose
    optimum is a score of 1 for every sample; ``batch_mean`` and ``keep_quantile`` make the optimum
    a ranking (:mod:`envs.rewards`).

    **Info.** ``batch_indices`` and ``padded`` (of the returned observation's batch; not on the last
    step, whose observation is no batch), and, after a step, of the trained batch: ``epoch``,
    ``pruned``, ``keep_ratio_effective`` (trained subset size / N), ``sample_rewards`` (float32),
    ``lambda``, ``train_loss``, ``lr``. Always ``ledger``:
    the cost ledger's counters (its wall-clock timings, which are not deterministic, only in the
    last step's info) and ``backprop_fraction`` (back-propagated samples / ``epochs * N``, the
    count of a full-data run). The last step adds ``final_test`` (test top1/top5/loss),
    ``noisy_kept_fraction`` (with label noise, the mean share of noisy samples among those kept in
    pruned epochs, else None) and, if the model diverged, ``error``.

    **Divergence.** A non-finite loss, feature or reward ends the episode with ``truncated=True``,
    ``info["error"]`` explaining it and an all-zero observation (a NaN observation would poison the
    agent's value bootstrap).

    **Seeding.** ``reset(seed=s)`` rebuilds the dataset subset and label noise, the model, the
    optimizer and every generator from ``s``: on CPU the same seed gives the same observations,
    rewards and final accuracy. ``reset()`` without a seed draws a new run seed from ``np_random``.

    **Cost.** State building, reward and selection run under ``ledger.timed("overhead")``, so the
    ledger separates the environment's own work from inner training.

    **Checkpoints.** ``state_dict()`` / ``load_state_dict()`` save and continue an episode at any
    step (:mod:`envs.episode`); the continued episode is identical on CPU.

    :param dataset: dataset registry name (see :mod:`envs.data`) or your own data (:mod:`envs.own_data`)
    :param model: model registry name (``mlp``, ``cnn``, ``resnet18``) or your own ``nn.Module``
        (:mod:`envs.own_model`; every run starts from a copy of its weights)
    :param batch_size: samples per batch (>= 2: the reward's batch variances need two samples)
    :param epochs: epochs of the training run
    :param keep_ratio: fraction of samples kept per pruned epoch, in (0, 1]; must keep at least ``batch_size``
    :param anneal: fraction of epochs with selection, in [0, 1] (InfoBatch's delta)
    :param loss_weight: loss weight of kept samples in pruned epochs; ``None``: ``1 / keep_ratio``
    :param state: ``features``, ``signals`` or ``both``
    :param reward: ``composite``, ``loss``, ``entropy`` or a reward object
    :param reward_norm: apply the running batch-mean normaliser (only when ``reward`` is a name)
    :param reward_baseline: ``none`` (the paper's), ``batch_mean`` or ``keep_quantile`` (only when ``reward`` is a name)
    :param selection: ``topk`` (the paper's) or ``soft`` (a score-weighted draw of the kept set)
    :param refresh: share of each pruned epoch's budget re-admitted at random from the left-out samples, in [0, 1]
    :param temperature: ``soft`` selection's temperature, > 0
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param train_size: class-stratified training subset size (``None``: the whole training set)
    :param noise: label noise type, ``None``, ``symmetric`` or ``asymmetric``
    :param noise_rate: fraction of corrupted training labels, in [0, 1)
    :param data_root: folder of file-backed datasets
    :param lr: peak learning rate
    :param schedule: ``onecycle``, ``cosine`` or ``constant`` (progress-based)
    :param momentum: SGD momentum
    :param nesterov: Nesterov momentum
    :param weight_decay: L2 weight decay
    :param label_smoothing: label smoothing of the training loss
    :param amp: bf16 autocast of forward passes
    :param augment: on-device augmentation of training batches
    :param eval_batch_size: batch size of test-set evaluation
    """

    metadata = {"render_modes": []}

    def __init__(self, dataset: str | Any = "digits", model: str | nn.Module = "mlp", *, batch_size: int = 128, epochs: int = 10,
                 keep_ratio: float = 0.5, anneal: float = 0.875, loss_weight: float | None = None,
                 state: str = "features", reward: str | BatchReward = "composite", reward_norm: bool = True,
                 reward_baseline: str = "none", selection: str = "topk", refresh: float = 0.0,
                 temperature: float = 1.0, device: str = "auto", train_size: int | None = None, noise: str | None = None,
                 noise_rate: float = 0.0, data_root: str | None = None, lr: float = 0.1, schedule: str = "onecycle",
                 momentum: float = 0.9, nesterov: bool = True, weight_decay: float = 5e-4,
                 label_smoothing: float = 0.1, amp: bool = False, augment: bool = True, eval_batch_size: int = 1024):
        super().__init__()
        if state not in STATES:
            raise ValueError(f"state={state!r} is invalid; valid choices: {', '.join(STATES)}")
        if not isinstance(reward_norm, bool):
            raise ValueError(f"reward_norm={reward_norm!r} is invalid; valid: True or False")
        if not (isinstance(batch_size, int) and batch_size >= 2):
            raise ValueError(f"batch_size={batch_size!r} is invalid; valid: an integer >= 2 (the reward needs batch variances)")
        self.config = TrainerConfig(batch_size=batch_size, epochs=epochs, lr=lr, momentum=momentum, nesterov=nesterov,
                                    weight_decay=weight_decay, schedule=schedule, label_smoothing=label_smoothing,
                                    amp=amp, augment=augment, eval_batch_size=eval_batch_size)
        self.config.validate()
        check_reward_baseline(reward_baseline, keep_ratio)
        self.reward_fn: BatchReward = (make_data_agent_reward(reward, reward_norm, reward_baseline, keep_ratio)
                                       if isinstance(reward, str) else reward)
        if not callable(self.reward_fn) or not callable(getattr(self.reward_fn, "reset", None)):
            raise ValueError(f"reward={reward!r} is invalid; valid: a reward name or an object with __call__ and reset()")
        self.device = resolve_device(device)
        self.dataset_name, self.model_name, self.state = dataset, model, state
        self._data_options = dict(train_size=train_size, noise=noise, noise_rate=noise_rate, root=data_root)
        self._data_key: Any = None
        self._data: DeviceDataset | None = None
        data = self._load_data(seed=0)
        self.num_samples = data.num_train
        if batch_size > self.num_samples:
            raise ValueError(f"batch_size={batch_size!r} is invalid for {self.num_samples} training samples; "
                             f"valid range: [2, {self.num_samples}]")
        # checks the selection options and the kept-set size before any episode runs
        self._selection_options = dict(selection=selection, refresh=refresh, temperature=temperature)
        probe = AnnealedTopKSelector(self.num_samples, epochs, keep_ratio, anneal, loss_weight, device="cpu",
                                     **self._selection_options)
        smallest = probe.num_kept if probe.pruned_epochs > 0 else self.num_samples
        if smallest < batch_size:
            raise ValueError(
                f"keep_ratio={keep_ratio!r} keeps {smallest} of the {self.num_samples} training samples, fewer than "
                f"batch_size={batch_size}; valid range: keep_ratio >= {batch_size / self.num_samples:.4g} (or a smaller batch_size)")
        self.keep_ratio, self.anneal, self.loss_weight = keep_ratio, anneal, loss_weight
        feature_dim = model_feature_dim(model, data)
        state_dim = {"features": feature_dim, "signals": len(SIGNAL_NAMES),
                     "both": feature_dim + len(SIGNAL_NAMES)}[state]
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(batch_size, state_dim), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(batch_size,), dtype=np.float32)
        self.trainer: Trainer | None = None
        self.selector: AnnealedTopKSelector | None = None
        self._final_test: dict[str, float] | None = None

    # --- episode --------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new training run (``options`` is unused)."""
        super().reset(seed=seed)
        run_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        tie_seed = int(self.np_random.integers(2**63 - 1))
        self._new_run(run_seed, tie_seed)
        self.reward_fn.reset()
        self._final_test = None
        self._noisy_kept: list[torch.Tensor] = []
        self._done = False
        return self._first_observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trainer is None or self._done:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        self._stop_agent_clock()
        a = check_score_action(action, self.action_space.shape)
        trainer, fwd, plan, epoch = self.trainer, self._fwd, self._plan, self.trainer.epoch
        with trainer.ledger.timed("overhead"):
            scores = (torch.from_numpy(a).to(self.device) + 1.0) * 0.5
            self.selector.update(fwd.idx, scores)
            rewards, lam = self.reward_fn(fwd.losses, fwd.logits, scores)
            weights = plan.weights[fwd.idx]
        lr = trainer.lr
        loss = trainer.step(fwd, weights)
        self._fwd = None
        self._pos += 1
        last = self._pos == len(self._batches) and epoch + 1 == self.config.epochs
        if self._pos == len(self._batches) and not last:
            self._begin_epoch(epoch + 1)
        host = self._forward_and_transfer([rewards.float(), lam.float().reshape(1), loss.float().reshape(1)],
                                          forward_next=not last)
        b = self.config.batch_size
        sample_rewards, lam_value, loss_value = host[:b].copy(), float(host[b]), float(host[b + 1])
        reward = float(sample_rewards.mean(dtype=np.float64))
        error = None
        if not math.isfinite(reward) or not math.isfinite(loss_value):
            error = f"non-finite reward or training loss in epoch {epoch} (lr {lr:.3g}); try a lower lr"
        elif not last and host[b + 2] != 1.0:
            error = f"the model diverged after a step in epoch {epoch} (lr {lr:.3g}): non-finite loss or features; try a lower lr"
        if error is None and not last:
            obs = host[b + 3:].reshape(self.observation_space.shape)
        else:
            obs = np.zeros(self.observation_space.shape, dtype=np.float32)
            reward = reward if math.isfinite(reward) else 0.0
            self._done = True
            self._fwd = None
        info = self._info() if not self._done else {}
        info.update(epoch=epoch, pruned=plan.pruned, keep_ratio_effective=len(plan.indices) / self.num_samples,
                    sample_rewards=sample_rewards, train_loss=loss_value, lr=lr)
        info["lambda"] = lam_value
        if self._done:
            self._final_test = trainer.evaluate()
            info.update(ledger=trainer.ledger.as_dict(), backprop_fraction=self._backprop_fraction(),
                        final_test=dict(self._final_test), noisy_kept_fraction=self._noisy_kept_fraction())
            if error is not None:
                info["error"] = error
        self._start_agent_clock()
        return obs, reward, False, self._done, info

    # --- results --------------------------------------------------------------------------------

    @property
    def episode_steps(self) -> int:
        """Steps of one episode (one training run): an agent's ``total_timesteps`` for one run."""
        probe = AnnealedTopKSelector(self.num_samples, self.config.epochs, self.keep_ratio, self.anneal, self.loss_weight)
        return probe.backprop_count(self.config.batch_size) // self.config.batch_size

    def evaluate(self) -> dict[str, float]:
        """Test-set top1/top5 (%) and loss of the current model."""
        if self.trainer is None:
            raise RuntimeError("evaluate() called before reset()")
        return self.trainer.evaluate()

    def summary(self) -> dict[str, Any]:
        """The run so far: ledger, back-propagated fraction of a full-data run, final test metrics."""
        if self.trainer is None:
            raise RuntimeError("summary() called before reset()")
        return {"ledger": self.trainer.ledger.as_dict(), "backprop_fraction": self._backprop_fraction(),
                "full_backprop": self.config.epochs * self.num_samples, "final_test": self._final_test,
                "noisy_kept_fraction": self._noisy_kept_fraction()}

    @property
    def scores(self) -> torch.Tensor:
        """Every training sample's latest score in [0, 1] (1.0 until first scored), on the device."""
        if self.selector is None:
            raise RuntimeError("scores read before reset()")
        return self.selector.scores

    # --- internals ------------------------------------------------------------------------------

    def _new_run(self, run_seed: int, tie_seed: int) -> None:
        """A fresh trainer and selector for the run ``run_seed`` (tie-breaking from ``tie_seed``)."""
        self._run_seed = run_seed
        data = self._load_data(run_seed)
        self._has_noise = bool(data.noisy_mask.any())
        self.trainer = Trainer(data, self.model_name, self.config, seed=run_seed, track_samples=self.state != "features")
        self.selector = AnnealedTopKSelector(
            self.num_samples, self.config.epochs, self.keep_ratio, self.anneal, self.loss_weight, device=self.device,
            generator=torch.Generator(device=self.device).manual_seed(tie_seed), **self._selection_options)

    def _method_state(self) -> dict[str, Any]:
        plan = self._plan
        return {"run_seed": self._run_seed, "selector": self.selector.state_dict(), "final_test": self._final_test,
                "noisy_kept": [t.clone() for t in self._noisy_kept],
                "plan": {"indices": plan.indices.clone(), "weights": plan.weights.clone(), "pruned": plan.pruned}}

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        self._new_run(state["run_seed"], 0)
        self.selector.load_state_dict(state["selector"])
        self._final_test = state["final_test"]
        self._noisy_kept = [t.to(self.device) for t in state["noisy_kept"]]
        p = state["plan"]
        self._plan = EpochPlan(p["indices"].to(self.device), p["weights"].to(self.device), p["pruned"])

    def _load_data(self, seed: int) -> DeviceDataset:
        """The dataset for run ``seed``; reloaded only when the seed changes the subset or noise."""
        o = self._data_options
        key = seed if (o["train_size"] is not None or (o["noise"] is not None and o["noise_rate"] > 0)) else None
        if self._data is None or key != self._data_key:
            self._data = load_dataset(self.dataset_name, device=self.device, seed=seed, **o)
            self._data_key = key
        return self._data

    def _begin_epoch(self, epoch: int) -> None:
        with self.trainer.ledger.timed("overhead"):
            self._plan: EpochPlan = self.selector.plan(epoch)
            if self._plan.pruned and self._has_noise:
                self._noisy_kept.append(self.trainer.dataset.noisy_mask[self._plan.indices].float().mean())
        self._lay_out_epoch(epoch, self._plan.indices)

    def _observe(self, fwd: BatchForward) -> tuple[torch.Tensor, torch.Tensor]:
        """The state of a forwarded batch and whether its losses and features are all finite."""
        feats = fwd.features.detach()
        finite = torch.isfinite(fwd.losses.detach()).all() & torch.isfinite(feats).all()
        if self.state == "features":
            return feats, finite
        sig = self._signals(fwd)
        return (sig if self.state == "signals" else torch.cat([feats, sig], dim=1)), finite

    def _signals(self, fwd: BatchForward) -> torch.Tensor:
        """Columns :data:`SIGNAL_NAMES`, read from the sample store the forward pass just updated."""
        t = self.trainer
        return t.store.signal_state(fwd.idx, self.selector.scores, t.epoch, t.progress,
                                    self.selector.is_pruned(t.epoch), t.dataset.num_classes)

    def _noisy_kept_fraction(self) -> float | None:
        """With label noise: the mean share of noisy samples among those kept in pruned epochs."""
        return float(torch.stack(self._noisy_kept).mean()) if self._noisy_kept else None

    def _backprop_fraction(self) -> float:
        return self.trainer.ledger.samples_backpropagated / (self.config.epochs * self.num_samples)

    def _info(self) -> dict[str, Any]:
        """Info about the returned observation's batch and the run's counters (fresh objects)."""
        padded = np.zeros(self.config.batch_size, dtype=bool)
        if self._pos == len(self._batches) - 1 and self._num_padded:
            padded[-self._num_padded:] = True
        ledger = self.trainer.ledger.as_dict()
        return {"batch_indices": self._host_batches[self._pos].copy(), "padded": padded,
                "ledger": {k: ledger[k] for k in _COUNTERS}, "backprop_fraction": self._backprop_fraction()}
