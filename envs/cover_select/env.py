"""``CoverSelect-v0``: RL-Selector's static coreset selection as a Gymnasium environment (docs/methods.md Part B).

Why this shape: RL-Selector trains a throw-away target model for a whole selection run while an
agent rewrites a persistent score vector ``d`` one mini-batch at a time; the product is the
coreset ``d > 0.5`` at the keep ratio. One environment step is one mini-batch, one episode the
whole run, and the environment only glues the shared :class:`~envs.core.trainer.Trainer`, the
ε-cover degrees (:mod:`envs.methods.cover`) and a reward object (:mod:`envs.cover_select.rewards`) together.
One training forward pass per batch gives the state, fills the feature buffer the degrees are
computed from, and is back-propagated at the next step. The defaults are the paper's
reconstruction (methods.md B.3-B.6), kept for replication; the other options are the remedies
measured in BENCHMARKS.md ("CoverSelect: controls, diagnosis and remedies").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from envs.core.data import DataConfig
from envs.core.own_model import model_feature_dim, model_label
from envs.core.reference import ReferenceConfig
from envs.core.trainer import BatchForward, Trainer, TrainerConfig
from envs.core.state import STATES
from envs.cover_select.rewards import COVER_REWARDS, CoverReward, make_cover_reward
from envs.episode import BatchEpisodeEnv, HostTransfer
from envs.methods.coreset import class_quotas, select_by_score
from envs.methods.cover import (DEFAULT_CHUNK_BYTES, DEFAULT_QUANTILE_SAMPLES, chunk_rows, class_members, cover_degrees,
                                parse_epsilon, rank_within_class)
from envs.methods.ranking import keep_top_per_class

TRAIN_ON = ("all", "selected")
DIFFICULTIES = ("loss", "reducible_loss")
DEGREE_NORMS = ("none", "rank")


class CoverSelectEnv(BatchEpisodeEnv):
    """RL-Selector: score every sample of each mini-batch; the final scores are the coreset.

    **Episode.** One selection run of ``epochs`` epochs over all ``N`` training samples (every
    sample is scored once per epoch). The score vector ``d`` starts at all ones and persists over
    the run. The episode ends with ``truncated=True`` (never ``terminated``) after the last batch
    of the last epoch; then :meth:`coreset` gives the selected indices.

    **Step.** The observation describes batch ``t`` (already forwarded in train mode, graph kept).
    ``step(action)`` sets ``d_i = (a_i + 1) / 2`` for batch ``t``'s samples, computes the reward,
    takes the SGD step on batch ``t``'s forward pass, forwards batch ``t + 1`` and returns its
    state. Every batch has exactly ``batch_size`` samples: an epoch's last, partial batch is padded
    with the epoch's first samples (:func:`envs.methods.selection.fixed_size_batches`). Padded slots
    (``info["padded"]``) are trained like the others (and counted by the ledger) but their actions
    are ignored: their scores keep their values.

    **Observation space.** ``Box(-inf, inf, (batch_size, state_dim), float32)``. ``state="features"``
    (the paper's): the target model's penultimate features of the batch's samples, from the training
    forward pass (unbounded, so Gymnasium's ``check_env`` warns about infinite bounds); ``signals``:
    the sample store's compact columns (:data:`envs.core.store.SIGNAL_NAMES`, as in ``DataAgent-v0``,
    the score being ``d``), with a ``reference`` model its three learnability columns too
    (:data:`envs.core.store.REFERENCE_SIGNAL_NAMES`); ``both``: features then signals.

    **Action space.** ``Box(-1, 1, (batch_size,), float32)``: one score per sample, ``d = (a + 1) / 2``;
    a sample is selected when ``d > 0.5``. Out-of-range values are clipped; a wrong shape, NaN or
    inf raises ``ValueError``.

    **Reward.** A reward object (:mod:`envs.cover_select.rewards`) or its name. The default ``"cover"`` is the
    paper's reconstruction (:class:`envs.cover_select.rewards.CoverRatioReward`): per sample
    ``r_i = s * r_ratio + r_sel,i``, where ``r_ratio`` aligns the global selected fraction
    ``rho = mean(d > 0.5)`` (after this step's scores) with ``keep_ratio`` (0 at the target, down
    to -1), ``s`` is ``ratio_scale`` (1) and ``r_sel,i = -c_i d_i`` penalises keeping samples with a
    high ε-cover degree ``c_i``. ``"cover_difficulty"`` adds the sample's batch difficulty:
    ``r_sel,i = d_i (L~_i - c_i)``; with ``difficulty="reducible_loss"`` (needs a ``reference``) ``L~`` is
    the difficulty of the reducible loss (training loss minus the reference's): a noisy sample, hard
    for the reference too, no longer counts as worth keeping. Padded slots get the same formula with their unchanged score.
    ``info["sample_rewards"]`` holds all ``batch_size`` of them (float32); the scalar reward is their
    mean over the slots that are not padded (a Python float).

    **ε-cover degrees.** Each training forward pass writes the samples' features into an ``(N, D)``
    buffer on the device (no extra pass over the data). At the end of every epoch but the last, the
    degrees of all samples are recomputed per class from that buffer (:func:`envs.methods.cover.cover_degrees`,
    chunked within ``chunk_bytes``) with ``eps_k`` from the ``epsilon`` rule; the next epoch's
    rewards use them. During the first epoch every degree is 0 (no features yet), so the reward is
    the ratio term alone. ``degree_norm="rank"`` replaces each degree by its rank within its class
    (:func:`envs.methods.cover.rank_within_class`, in [0, 1]): then every class carries the same range of
    penalties, so a compact class (high raw degrees everywhere) is not pruned harder than a spread one.

    **Coreset** (:meth:`coreset`). ``class_budget=False`` (the paper): ``d > 0.5`` moved to within ±1%
    of the target size. ``class_budget=True``: the ``round(keep_ratio * N)`` highest scores, split
    over classes in proportion to their sizes (:func:`envs.methods.coreset.class_quotas`), so the coreset keeps
    the class balance of the training set whatever the agent did.

    **Target-model training** (``train_on``, docs/methods.md B.10 item 2). ``"all"`` (the paper's
    reading): every batch is trained on in full. ``"selected"``: every batch is still forwarded and
    scored (so a pruned sample can be selected again), but the loss of samples whose score after
    this step is ``<= 0.5`` is weighted 0: ``mean_B(loss_i * 1(d_i > 0.5))``, AdaPruner's masked
    loss with a hard mask. Compute is the same; the model only learns from the current selection.

    **Info.** The shared contract of :mod:`envs.episode` (``batch_indices``, ``padded``, ``ledger``,
    ``backprop_fraction``; after a step ``epoch``, ``sample_rewards``, ``train_loss``, ``lr``; on the
    last step ``final_test`` (the selection model's test metrics), ``scores`` and, after a
    divergence, ``error``). RL-Selector's extras, after a step: ``ratio`` (rho) and
    ``ratio_reward``; on the last step ``coreset`` and ``coreset_meta`` (:meth:`coreset` and
    :meth:`coreset_meta` of the finished run, ready for :func:`envs.methods.coreset.save_coreset`) and
    ``problem_shares`` of that coreset.

    **Divergence.** A non-finite training loss, feature or reward ends the episode with ``truncated=True``,
    ``info["error"]`` and an all-zero observation (the observation after the last step is all zeros too).

    **Seeding.** The dataset (subset, label noise) is loaded once from ``data.seed`` (None: 0), so coreset
    indices of every episode refer to the same training set. ``reset(seed=s)`` seeds the model,
    optimizer, shuffling, augmentation, the quantile rules' subsamples and the coreset's
    tie-breaking from ``s``: on CPU the same seed and actions give the same coreset.

    **Cost.** Score updates, rewards, the feature buffer, the degrees, the observation transfer and
    :meth:`coreset` run under ``trainer.ledger.timed("overhead")``.

    **Checkpoints.** ``state_dict()`` / ``load_state_dict()`` save and continue an episode at any
    step (:mod:`envs.episode`); the continued episode is identical on CPU.

    :param dataset: dataset registry name (see :mod:`envs.core.data`) or your own data (:mod:`envs.core.own_data`)
    :param model: model registry name of the target model (``mlp``, ``cnn``, ``resnet18``) or your own
        ``nn.Module`` (:mod:`envs.core.own_model`; every run starts from a copy of its weights)
    :param trainer: inner training options, :class:`~envs.core.trainer.TrainerConfig` or a dict of its
        fields (``epochs``: of the selection run, the paper's 200)
    :param data: data options, :class:`~envs.core.data.DataConfig` or a dict of its fields
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param keep_ratio: coreset fraction ``sr``, in (0, 1)
    :param epsilon: ``"mean"`` (default: the class's mean pairwise feature distance at the current
        epoch, hyper-parameter free), ``"median"``, ``"quantile:<q>"`` or a fixed float > 0
    :param train_on: ``"all"`` or ``"selected"`` (see above)
    :param reward: ``"cover"`` (the paper's), ``"cover_difficulty"`` or a reward object with the
        :class:`envs.cover_select.rewards.CoverReward` interface (its ``keep_ratio`` must equal ``keep_ratio``)
    :param reward_norm: apply the running batch-mean normaliser to the rewards (off: they are bounded;
        only when ``reward`` is a name)
    :param ratio_scale: weight of the ratio term, > 0 (only when ``reward`` is a name)
    :param degree_norm: ``"none"`` (the paper's) or ``"rank"`` (per-class rank of the degree)
    :param class_budget: the coreset keeps the class proportions (see **Coreset**)
    :param chunk_bytes: memory budget of one block of the pairwise-distance computation
    :param quantile_samples: subsample size of the ``median``/``quantile`` rules
    :param state: ``features`` (the paper's), ``signals`` or ``both``
    :param difficulty: what a difficulty reward reads: ``loss`` (the default) or ``reducible_loss``
    :param reference: a reference model (:class:`~envs.core.reference.ReferenceConfig` or a dict of its
        fields; None: none), for the learnability columns and ``difficulty="reducible_loss"``; its cost is
        booked in the ledger under ``reference``
    """

    scores_padded_slots = False
    #: the valid names of each string option (what a command line offers)
    option_choices = {"train_on": TRAIN_ON, "reward": COVER_REWARDS, "degree_norm": DEGREE_NORMS, "state": STATES,
                      "difficulty": DIFFICULTIES}

    def __init__(self, dataset: str | Any = "digits", model: str | nn.Module = "mlp", *,
                 trainer: TrainerConfig | Mapping[str, Any] | None = None, data: DataConfig | Mapping[str, Any] | None = None,
                 device: str = "auto", keep_ratio: float = 0.5, epsilon: str | float = "mean", train_on: str = "all",
                 reward: str | CoverReward = "cover", reward_norm: bool = False, ratio_scale: float = 1.0,
                 degree_norm: str = "none", class_budget: bool = False, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 quantile_samples: int = DEFAULT_QUANTILE_SAMPLES, state: str = "features", difficulty: str = "loss",
                 reference: ReferenceConfig | Mapping[str, Any] | None = None):
        super().__init__(trainer, data, device, reference)
        if isinstance(reward, str):
            self.reward_fn: CoverReward = make_cover_reward(reward, keep_ratio, reward_norm, ratio_scale)
        else:
            if not callable(reward) or not callable(getattr(reward, "reset", None)):
                raise ValueError(f"reward={reward!r} is invalid; valid: {', '.join(COVER_REWARDS)} or a CoverReward object")
            if getattr(reward, "keep_ratio", None) != keep_ratio:
                raise ValueError(f"keep_ratio={keep_ratio!r} differs from the reward object's keep_ratio="
                                 f"{getattr(reward, 'keep_ratio', None)!r}; pass the same ratio to both")
            self.reward_fn = reward
        self.reward_name = reward if isinstance(reward, str) else type(reward).__name__
        self.epsilon = parse_epsilon(epsilon)
        checks = [
            ("train_on", train_on, train_on in TRAIN_ON, f"one of {', '.join(TRAIN_ON)}"),
            ("reward_norm", reward_norm, isinstance(reward_norm, bool), "True or False"),
            ("degree_norm", degree_norm, degree_norm in DEGREE_NORMS, f"one of {', '.join(DEGREE_NORMS)}"),
            ("class_budget", class_budget, isinstance(class_budget, bool), "True or False"),
            ("quantile_samples", quantile_samples, isinstance(quantile_samples, int) and quantile_samples >= 2,
             "an integer >= 2"),
            ("difficulty", difficulty, difficulty in DIFFICULTIES, f"one of {', '.join(DIFFICULTIES)}"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
        chunk_rows(1, chunk_bytes)  # validates chunk_bytes
        self._check_learnability("difficulty='reducible_loss'", difficulty == "reducible_loss")
        self.state, self.difficulty = state, difficulty
        self.dataset_name, self.model_name, self.train_on = dataset, model, train_on
        self.degree_norm, self.class_budget = degree_norm, class_budget
        self.keep_ratio = self.reward_fn.keep_ratio
        self.chunk_bytes, self.quantile_samples = chunk_bytes, quantile_samples
        self.data = self.data_config.load(dataset, self.device)  # run_seed 0: a None data seed reads as 0
        self.num_samples = self.data.num_train
        self._check_batch_size(smallest=1)
        batch_size = self.config.batch_size
        self.feature_dim: int = model_feature_dim(model, self.data)
        self._members = class_members(self.data.train_y, self.data.num_classes)
        state_dim = self._state_dim(state, self.feature_dim)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(batch_size, state_dim), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(batch_size,), dtype=np.float32)
        self._seed: int | None = None

    # --- results --------------------------------------------------------------------------------

    @property
    def episode_steps(self) -> int:
        """Steps of one episode (one selection run): an agent's ``total_timesteps`` for one run."""
        return self.config.epochs * math.ceil(self.num_samples / self.config.batch_size)

    def coreset(self) -> np.ndarray:
        """Sorted indices of the coreset from the current scores: ``d > 0.5``, moved to within ±1% of
        ``keep_ratio * N`` by :func:`envs.methods.coreset.select_by_score`; with ``class_budget``, the highest
        scores of each class up to its quota (:func:`envs.methods.coreset.keep_top_per_class`). Ties are broken
        with the episode's seed."""
        if self.trainer is None:
            raise RuntimeError("coreset() called before reset()")
        with self.trainer.ledger.timed("overhead"):
            if not self.class_budget:
                return select_by_score(self.scores, self.keep_ratio, seed=self._tie_seed)
            labels = self.data.train_y
            generator = torch.Generator(device=labels.device).manual_seed(self._tie_seed)
            kept = keep_top_per_class(self.scores, labels, class_quotas(labels, self.keep_ratio), generator)
            return kept.cpu().numpy().astype(np.int64)

    def coreset_meta(self) -> dict[str, Any]:
        """What :func:`envs.methods.coreset.save_coreset` should store with :meth:`coreset` to rebuild and judge it."""
        if self.trainer is None:
            raise RuntimeError("coreset_meta() called before reset()")
        d = self.data_config
        return {
            "method": "rl-selector", "dataset": self.data.name, "num_train": self.num_samples,
            "train_size": d.train_size, "data_seed": d.seed_for(0), "task": d.task,
            "ratio": self.keep_ratio, "seed": self._seed, "model": model_label(self.model_name),
            "epochs_completed": self._epochs_done, "epsilon": str(self.epsilon), "reward": self.reward_name,
            "ratio_scale": getattr(self.reward_fn, "ratio_scale", None), "degree_norm": self.degree_norm,
            "class_budget": self.class_budget, "train_on": self.train_on, "trainer": self.config.as_dict(),
            "state": self.state, "difficulty": self.difficulty,
            "reference": None if self.reference is None else {k: str(v) for k, v in asdict(self.reference).items()},
            "ledger": self.trainer.ledger.as_dict(),
        }

    # --- internals ------------------------------------------------------------------------------

    def _new_run(self, run_seed: int, tie_seed: int) -> None:
        """A fresh target model, score vector and feature buffer for the run ``run_seed``."""
        self._seed, self._tie_seed = run_seed, tie_seed
        n, dev = self.num_samples, self.device
        track = self.state != "features" or self.reference is not None
        self.trainer = Trainer(self.data, self.model_name, self.config, seed=self._seed, track_samples=track)
        self._attach_reference(self.trainer, self.model_name, self.data_config.seed_for(0))
        self._generator = torch.Generator(device=dev).manual_seed(self._tie_seed)
        self._d = torch.ones(n, device=dev)  #: the score vector d (read as ``scores``)
        self._num_selected = torch.full((), n, dtype=torch.long, device=dev)
        self.features = torch.zeros(n, self.feature_dim, device=dev)  #: latest training feature of each sample
        self.degrees = torch.zeros(n, device=dev)  #: ε-cover degrees used by the current epoch's rewards
        self.epsilons = torch.zeros(self.data.num_classes, device=dev)  #: per-class eps behind ``degrees``
        self._epochs_done = 0

    #: checkpointed tensors: the name in the checkpoint -> the attribute
    _TENSORS = {"scores": "_d", "_num_selected": "_num_selected", "features": "features", "degrees": "degrees",
                "epsilons": "epsilons"}

    def _method_state(self) -> dict[str, Any]:
        return {"seed": self._seed, "tie_seed": self._tie_seed, "generator": self._generator.get_state(),
                "epochs_done": self._epochs_done,
                **{key: getattr(self, attr).clone() for key, attr in self._TENSORS.items()}}

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        self._new_run(state["seed"], state["tie_seed"])
        self._generator.set_state(state["generator"])
        self._epochs_done = state["epochs_done"]
        for key, attr in self._TENSORS.items():
            getattr(self, attr).copy_(state[key])

    def _current_scores(self) -> torch.Tensor:
        return self._d

    def _epoch_indices(self, epoch: int) -> torch.Tensor | None:
        return None  # the selection run trains on all samples every epoch

    def _score_batch(self, fwd: BatchForward, scores: torch.Tensor, num_valid: int,
                     transfer: HostTransfer) -> tuple[torch.Tensor | None, dict[str, Any]]:
        """Write the scores of the batch's samples (not of its padded slots) into ``d``; the rewards,
        the ratio term and rho go to the host."""
        new, idx = scores[:num_valid], fwd.idx[:num_valid]
        self._num_selected += (new > 0.5).sum() - (self._d[idx] > 0.5).sum()
        self._d[idx] = new
        ratio = self._num_selected / self.num_samples
        d = self._d[fwd.idx]
        losses = fwd.losses.detach()
        if self.difficulty == "reducible_loss":
            losses = losses - self.trainer.store.reference_loss[fwd.idx]
        out = self.reward_fn(d, self.degrees[fwd.idx], ratio, losses)
        transfer.add("sample_rewards", out.rewards)
        transfer.add("ratio_reward", out.ratio_reward)
        transfer.add("ratio", ratio)
        return ((d > 0.5).float() if self.train_on == "selected" else None), {}

    def _end_epoch(self, last: bool) -> None:
        self._epochs_done += 1
        if not last:
            self._update_degrees()

    def _observe(self, fwd: BatchForward, num_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the batch's features in the buffer; return the batch's state and whether loss and features are finite."""
        self.features[fwd.idx[:num_valid]] = fwd.features.detach()[:num_valid]
        return self._batch_state(fwd, self.state, selecting=False)

    def _run_end_info(self) -> dict[str, Any]:
        coreset = self.coreset()
        return {"coreset": coreset, "coreset_meta": self.coreset_meta(),
                "problem_shares": self.data.problem_shares(torch.as_tensor(coreset))}

    def _update_degrees(self) -> None:
        """ε-cover degrees of every sample from the features gathered during the epoch that just ended."""
        with self.trainer.ledger.timed("overhead"):
            self.degrees, self.epsilons = cover_degrees(self.features, self._members, self.epsilon, self.chunk_bytes,
                                                        self.quantile_samples, self._generator)
            if self.degree_norm == "rank":
                self.degrees = rank_within_class(self.degrees, self._members)
