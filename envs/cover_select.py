"""``CoverSelect-v0``: RL-Selector's static coreset selection as a Gymnasium environment (docs/methods.md Part B).

Why this shape: RL-Selector trains a throw-away target model for a whole selection run while an
agent rewrites a persistent score vector ``d`` one mini-batch at a time; the product is the
coreset ``d > 0.5`` at the target ratio. One environment step is one mini-batch, one episode the
whole run, and the environment only glues the shared :class:`~envs.trainer.Trainer`, the
ε-cover degrees (:mod:`envs.cover`) and a reward object (:mod:`envs.cover_rewards`) together.
One training forward pass per batch gives the state, fills the feature buffer the degrees are
computed from, and is back-propagated at the next step. The defaults are the paper's
reconstruction (methods.md B.3-B.6), kept for replication; the other options are the remedies
measured in BENCHMARKS.md section 10.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from envs.checks import is_count
from envs.cover import (DEFAULT_CHUNK_BYTES, DEFAULT_QUANTILE_SAMPLES, chunk_rows, class_members, cover_degrees,
                        parse_epsilon, rank_within_class)
from envs.cover_rewards import COVER_REWARDS, CoverReward, make_cover_reward
from envs.coreset import class_quotas, keep_top_per_class, select_by_score
from envs.actions import check_score_action
from envs.data import load_dataset
from envs.episode import BatchEpisodeMixin
from envs.own_model import model_feature_dim, model_label
from envs.trainer import BatchForward, Trainer, TrainerConfig, resolve_device

TRAIN_ON = ("all", "selected")
DEGREE_NORMS = ("none", "rank")


class CoverSelectEnv(BatchEpisodeMixin, gym.Env):
    """RL-Selector: score every sample of each mini-batch; the final scores are the coreset.

    **Episode.** One selection run of ``epochs`` epochs over all ``N`` training samples (every
    sample is scored once per epoch). The score vector ``d`` starts at all ones and persists over
    the run. The episode ends with ``truncated=True`` (never ``terminated``) after the last batch
    of the last epoch; then :meth:`coreset` gives the selected indices.

    **Step.** The observation describes batch ``t`` (already forwarded in train mode, graph kept).
    ``step(action)`` sets ``d_i = (a_i + 1) / 2`` for batch ``t``'s samples, computes the reward,
    takes the SGD step on batch ``t``'s forward pass, forwards batch ``t + 1`` and returns its
    state. Every batch has exactly ``batch_size`` samples: an epoch's last, partial batch is padded
    with the epoch's first samples (:func:`envs.selection.fixed_size_batches`). Padded slots are
    trained like the others (and counted by the ledger) but their actions are ignored: their scores
    keep their values. ``info["valid_mask"]`` is False for them.

    **Observation space.** ``Box(-inf, inf, (batch_size, feature_dim), float32)``: the target
    model's penultimate features of the batch's samples, from the training forward pass (unbounded,
    so Gymnasium's ``check_env`` warns about infinite bounds).

    **Action space.** ``Box(-1, 1, (batch_size,), float32)``: one score per sample, ``d = (a + 1) / 2``;
    a sample is selected when ``d > 0.5``. Out-of-range values are clipped; a wrong shape, NaN or
    inf raises ``ValueError``.

    **Reward.** A reward object (:mod:`envs.cover_rewards`) or its name. The default ``"cover"`` is the
    paper's reconstruction (:class:`envs.cover_rewards.CoverRatioReward`): per sample
    ``r_i = s * r_ratio + r_sel,i``, where ``r_ratio`` aligns the global selected fraction
    ``rho = mean(d > 0.5)`` (after this step's scores) with ``target_ratio`` (0 at the target, down
    to -1), ``s`` is ``ratio_scale`` (1) and ``r_sel,i = -c_i d_i`` penalises keeping samples with a
    high ε-cover degree ``c_i``. ``"cover_difficulty"`` adds the sample's batch difficulty:
    ``r_sel,i = d_i (L~_i - c_i)``. Padded slots get the same formula with their unchanged score.
    ``info["sample_rewards"]`` holds all ``batch_size`` of them (float32); the scalar reward is their
    mean over the valid slots (a Python float).

    **ε-cover degrees.** Each training forward pass writes the samples' features into an ``(N, D)``
    buffer on the device (no extra pass over the data). At the end of every epoch but the last, the
    degrees of all samples are recomputed per class from that buffer (:func:`envs.cover.cover_degrees`,
    chunked within ``chunk_bytes``) with ``eps_k`` from the ``epsilon`` rule; the next epoch's
    rewards use them. During the first epoch every degree is 0 (no features yet), so the reward is
    the ratio term alone. ``degree_norm="rank"`` replaces each degree by its rank within its class
    (:func:`envs.cover.rank_within_class`, in [0, 1]): then every class carries the same range of
    penalties, so a compact class (high raw degrees everywhere) is not pruned harder than a spread one.

    **Coreset** (:meth:`coreset`). ``class_budget=False`` (the paper): ``d > 0.5`` moved to within ±1%
    of the target size. ``class_budget=True``: the ``round(target_ratio * N)`` highest scores, split
    over classes in proportion to their sizes (:func:`envs.coreset.class_quotas`), so the coreset keeps
    the class balance of the training set whatever the agent did.

    **Target-model training** (``train_on``, docs/methods.md B.10 item 2). ``"all"`` (the paper's
    reading): every batch is trained on in full. ``"selected"``: every batch is still forwarded and
    scored (so a pruned sample can be selected again), but the loss of samples whose score after
    this step is ``<= 0.5`` is weighted 0: ``mean_B(loss_i * 1(d_i > 0.5))``, AdaPruner's masked
    loss with a hard mask. Compute is the same; the model only learns from the current selection.

    **Info.** ``batch_indices`` and ``valid_mask`` of the returned observation's batch and, after a
    step, of the trained batch: ``epoch``, ``sample_rewards``, ``ratio`` (rho), ``ratio_reward``,
    ``train_loss``, ``lr``. The last step adds ``ledger`` (the cost ledger with timings) and, if the
    model diverged, ``error``.

    **Divergence.** A non-finite training loss or feature ends the episode with ``truncated=True``,
    ``info["error"]`` and an all-zero observation (the observation after the last step is all zeros too).

    **Seeding.** The dataset (subset, label noise) is loaded once from ``data_seed``, so coreset
    indices of every episode refer to the same training set. ``reset(seed=s)`` seeds the model,
    optimizer, shuffling, augmentation, the quantile rules' subsamples and the coreset's
    tie-breaking from ``s``: on CPU the same seed and actions give the same coreset.

    **Cost.** Score updates, rewards, the feature buffer, the degrees, the observation transfer and
    :meth:`coreset` run under ``trainer.ledger.timed("overhead")``.

    **Checkpoints.** ``state_dict()`` / ``load_state_dict()`` save and continue an episode at any
    step (:mod:`envs.episode`); the continued episode is identical on CPU.

    :param dataset: dataset registry name (see :mod:`envs.data`) or your own data (:mod:`envs.own_data`)
    :param model: model registry name of the target model (``mlp``, ``cnn``, ``resnet18``) or your own
        ``nn.Module`` (:mod:`envs.own_model`; every run starts from a copy of its weights)
    :param batch_size: samples per batch (at most the training-set size)
    :param epochs: epochs of the selection run (the paper: 200)
    :param target_ratio: coreset fraction ``sr``, in (0, 1)
    :param epsilon: ``"mean"`` (default: the class's mean pairwise feature distance at the current
        epoch, hyper-parameter free), ``"median"``, ``"quantile:<q>"`` or a fixed float > 0
    :param train_on: ``"all"`` or ``"selected"`` (see above)
    :param reward: ``"cover"`` (the paper's), ``"cover_difficulty"`` or a reward object with the
        :class:`envs.cover_rewards.CoverReward` interface (its ``target_ratio`` must equal ``target_ratio``)
    :param reward_norm: apply the running batch-mean normaliser to the rewards (off: they are bounded;
        only when ``reward`` is a name)
    :param ratio_scale: weight of the ratio term, > 0 (only when ``reward`` is a name)
    :param degree_norm: ``"none"`` (the paper's) or ``"rank"`` (per-class rank of the degree)
    :param class_budget: the coreset keeps the class proportions (see **Coreset**)
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param train_size: class-stratified training subset size (``None``: the whole training set)
    :param data_seed: seeds the training subset and the label noise (fixed across episodes)
    :param noise: label noise type, ``None``, ``symmetric`` or ``asymmetric``
    :param noise_rate: fraction of corrupted training labels, in [0, 1)
    :param data_root: folder of file-backed datasets
    :param chunk_bytes: memory budget of one block of the pairwise-distance computation
    :param quantile_samples: subsample size of the ``median``/``quantile`` rules
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
                 target_ratio: float = 0.5, epsilon: str | float = "mean", train_on: str = "all",
                 reward: str | CoverReward = "cover", reward_norm: bool = False, ratio_scale: float = 1.0,
                 degree_norm: str = "none", class_budget: bool = False, device: str = "auto",
                 train_size: int | None = None, data_seed: int = 0,
                 noise: str | None = None, noise_rate: float = 0.0, data_root: str | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, quantile_samples: int = DEFAULT_QUANTILE_SAMPLES,
                 lr: float = 0.1, schedule: str = "onecycle", momentum: float = 0.9, nesterov: bool = True,
                 weight_decay: float = 5e-4, label_smoothing: float = 0.1, amp: bool = False, augment: bool = True,
                 eval_batch_size: int = 1024):
        super().__init__()
        if isinstance(reward, str):
            self.reward_fn: CoverReward = make_cover_reward(reward, target_ratio, reward_norm, ratio_scale)
        else:
            if not callable(reward) or not callable(getattr(reward, "reset", None)):
                raise ValueError(f"reward={reward!r} is invalid; valid: {', '.join(COVER_REWARDS)} or a CoverReward object")
            if getattr(reward, "target_ratio", None) != target_ratio:
                raise ValueError(f"target_ratio={target_ratio!r} differs from the reward object's target_ratio="
                                 f"{getattr(reward, 'target_ratio', None)!r}; pass the same ratio to both")
            self.reward_fn = reward
        self.reward_name = reward if isinstance(reward, str) else type(reward).__name__
        self.epsilon = parse_epsilon(epsilon)
        checks = [
            ("train_on", train_on, train_on in TRAIN_ON, f"one of {', '.join(TRAIN_ON)}"),
            ("reward_norm", reward_norm, isinstance(reward_norm, bool), "True or False"),
            ("degree_norm", degree_norm, degree_norm in DEGREE_NORMS, f"one of {', '.join(DEGREE_NORMS)}"),
            ("class_budget", class_budget, isinstance(class_budget, bool), "True or False"),
            ("data_seed", data_seed, is_count(data_seed) and 0 <= data_seed <= 2**32 - 1, "an integer in [0, 2**32 - 1]"),
            ("quantile_samples", quantile_samples, isinstance(quantile_samples, int) and quantile_samples >= 2,
             "an integer >= 2"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
        chunk_rows(1, chunk_bytes)  # validates chunk_bytes
        self.config = TrainerConfig(batch_size=batch_size, epochs=epochs, lr=lr, momentum=momentum, nesterov=nesterov,
                                    weight_decay=weight_decay, schedule=schedule, label_smoothing=label_smoothing,
                                    amp=amp, augment=augment, eval_batch_size=eval_batch_size)
        self.config.validate()
        self.device = resolve_device(device)
        self.dataset_name, self.model_name, self.train_on = dataset, model, train_on
        self.degree_norm, self.class_budget = degree_norm, class_budget
        self.target_ratio = self.reward_fn.target_ratio
        self.chunk_bytes, self.quantile_samples = chunk_bytes, quantile_samples
        self.data_options = dict(train_size=train_size, seed=data_seed, noise=noise, noise_rate=noise_rate, root=data_root)
        self.data = load_dataset(dataset, device=self.device, **self.data_options)
        self.num_samples = self.data.num_train
        if batch_size > self.num_samples:
            raise ValueError(f"batch_size={batch_size!r} is invalid for {self.num_samples} training samples; "
                             f"valid range: [1, {self.num_samples}]")
        self.feature_dim: int = model_feature_dim(model, self.data)
        self._members = class_members(self.data.train_y, self.data.num_classes)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(batch_size, self.feature_dim), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(batch_size,), dtype=np.float32)
        self.trainer: Trainer | None = None
        self._seed: int | None = None

    # --- episode --------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new selection run with fresh scores and a fresh target model (``options`` is unused)."""
        super().reset(seed=seed)
        self._seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        self._tie_seed = int(self.np_random.integers(2**63 - 1))
        self._new_run()
        self.reward_fn.reset()
        self._done = False
        return self._first_observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trainer is None or self._done:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        self._stop_agent_clock()
        a = check_score_action(action, self.action_space.shape)
        trainer, fwd, epoch = self.trainer, self._fwd, self.trainer.epoch
        valid = self._num_valid()
        with trainer.ledger.timed("overhead"):
            new = (torch.from_numpy(a[:valid]).to(self.device) + 1.0) * 0.5
            idx = fwd.idx[:valid]
            self._num_selected += (new > 0.5).sum() - (self.scores[idx] > 0.5).sum()
            self.scores[idx] = new
            ratio = self._num_selected / self.num_samples
            d = self.scores[fwd.idx]
            out = self.reward_fn(d, self.degrees[fwd.idx], ratio, fwd.losses.detach())
            weights = (d > 0.5).float() if self.train_on == "selected" else None
        lr = trainer.lr
        loss = trainer.step(fwd, weights)
        self._fwd = None
        self._pos += 1
        epoch_done = self._pos == len(self._batches)
        self._epochs_done += int(epoch_done)
        last = epoch_done and epoch + 1 == self.config.epochs
        if epoch_done and not last:
            self._update_degrees()
            self._begin_epoch(epoch + 1)
        parts = [out.rewards.float(), out.ratio_reward.float().reshape(1), ratio.float().reshape(1),
                 loss.float().reshape(1)]
        host = self._forward_and_transfer(parts, forward_next=not last)
        b = self.config.batch_size
        sample_rewards = host[:b].copy()
        ratio_reward, ratio_value, loss_value = (float(v) for v in host[b:b + 3])
        reward = float(sample_rewards[:valid].mean(dtype=np.float64))
        error = None
        if not math.isfinite(loss_value):
            error = f"non-finite training loss in epoch {epoch} (lr {lr:.3g}); try a lower lr"
        elif not last and host[b + 3] != 1.0:
            error = (f"the model diverged after a step in epoch {epoch} (lr {lr:.3g}): non-finite loss or features; "
                     "try a lower lr")
        if error is None and not last:
            obs = host[b + 4:].reshape(self.observation_space.shape)
            info = self._info()
        else:
            obs = np.zeros(self.observation_space.shape, dtype=np.float32)
            self._done, self._fwd = True, None
            info = {"ledger": trainer.ledger.as_dict()}
            if error is not None:
                info["error"] = error
        info.update(epoch=epoch, sample_rewards=sample_rewards, ratio=ratio_value, ratio_reward=ratio_reward,
                    train_loss=loss_value, lr=lr)
        self._start_agent_clock()
        return obs, reward, False, self._done, info

    # --- results --------------------------------------------------------------------------------

    @property
    def episode_steps(self) -> int:
        """Steps of one episode (one selection run): an agent's ``total_timesteps`` for one run."""
        return self.config.epochs * math.ceil(self.num_samples / self.config.batch_size)

    def coreset(self) -> np.ndarray:
        """Sorted indices of the coreset from the current scores: ``d > 0.5``, moved to within ±1% of
        ``target_ratio * N`` by :func:`envs.coreset.select_by_score`; with ``class_budget``, the highest
        scores of each class up to its quota (:func:`envs.coreset.keep_top_per_class`). Ties are broken
        with the episode's seed."""
        if self.trainer is None:
            raise RuntimeError("coreset() called before reset()")
        with self.trainer.ledger.timed("overhead"):
            if not self.class_budget:
                return select_by_score(self.scores, self.target_ratio, seed=self._tie_seed)
            labels = self.data.train_y
            generator = torch.Generator(device=labels.device).manual_seed(self._tie_seed)
            kept = keep_top_per_class(self.scores, labels, class_quotas(labels, self.target_ratio), generator)
            return kept.cpu().numpy().astype(np.int64)

    def coreset_meta(self) -> dict[str, Any]:
        """What :func:`envs.coreset.save_coreset` should store with :meth:`coreset` to rebuild and judge it."""
        if self.trainer is None:
            raise RuntimeError("coreset_meta() called before reset()")
        o = self.data_options
        return {
            "method": "rl-selector", "dataset": self.data.name, "num_train": self.num_samples,
            "train_size": o["train_size"], "data_seed": o["seed"], "noise": o["noise"], "noise_rate": o["noise_rate"],
            "ratio": self.target_ratio, "seed": self._seed, "model": model_label(self.model_name),
            "epochs_completed": self._epochs_done, "epsilon": str(self.epsilon), "reward": self.reward_name,
            "ratio_scale": getattr(self.reward_fn, "ratio_scale", None), "degree_norm": self.degree_norm,
            "class_budget": self.class_budget, "train_on": self.train_on, "trainer": self.config.as_dict(),
            "ledger": self.trainer.ledger.as_dict(),
        }

    # --- internals ------------------------------------------------------------------------------

    def _new_run(self) -> None:
        """A fresh target model, score vector and feature buffer for the run ``self._seed``."""
        n, dev = self.num_samples, self.device
        self.trainer = Trainer(self.data, self.model_name, self.config, seed=self._seed, track_samples=False)
        self._generator = torch.Generator(device=dev).manual_seed(self._tie_seed)
        self.scores = torch.ones(n, device=dev)  #: the score vector d
        self._num_selected = torch.full((), n, dtype=torch.long, device=dev)
        self.features = torch.zeros(n, self.feature_dim, device=dev)  #: latest training feature of each sample
        self.degrees = torch.zeros(n, device=dev)  #: ε-cover degrees used by the current epoch's rewards
        self.epsilons = torch.zeros(self.data.num_classes, device=dev)  #: per-class eps behind ``degrees``
        self._epochs_done = 0

    _TENSORS = ("scores", "_num_selected", "features", "degrees", "epsilons")

    def _method_state(self) -> dict[str, Any]:
        return {"seed": self._seed, "tie_seed": self._tie_seed, "generator": self._generator.get_state(),
                "epochs_done": self._epochs_done, **{name: getattr(self, name).clone() for name in self._TENSORS}}

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        self._seed, self._tie_seed = state["seed"], state["tie_seed"]
        self._new_run()
        self._generator.set_state(state["generator"])
        self._epochs_done = state["epochs_done"]
        for name in self._TENSORS:
            getattr(self, name).copy_(state[name])

    def _begin_epoch(self, epoch: int) -> None:
        self._lay_out_epoch(epoch)  # the selection run trains on all samples every epoch

    def _num_valid(self) -> int:
        """Slots of the current batch whose actions count (all but the padding of an epoch's last batch)."""
        last = self._pos == len(self._batches) - 1
        return self.config.batch_size - (self._num_padded if last else 0)

    def _observe(self, fwd: BatchForward) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the batch's features in the buffer; return them and whether loss and features are finite."""
        feats = fwd.features.detach()
        valid = self._num_valid()
        self.features[fwd.idx[:valid]] = feats[:valid]
        return feats, torch.isfinite(fwd.losses.detach()).all() & torch.isfinite(feats).all()

    def _update_degrees(self) -> None:
        """ε-cover degrees of every sample from the features gathered during the epoch that just ended."""
        with self.trainer.ledger.timed("overhead"):
            self.degrees, self.epsilons = cover_degrees(self.features, self._members, self.epsilon, self.chunk_bytes,
                                                        self.quantile_samples, self._generator)
            if self.degree_norm == "rank":
                self.degrees = rank_within_class(self.degrees, self._members)

    def _info(self) -> dict[str, Any]:
        """Info about the returned observation's batch (fresh objects)."""
        valid = np.zeros(self.config.batch_size, dtype=bool)
        valid[: self._num_valid()] = True
        return {"batch_indices": self._host_batches[self._pos].copy(), "valid_mask": valid}
