"""``DataAgent-v0``: Data Agent's dynamic data selection as a Gymnasium environment (docs/methods.md Part A).

Why this shape: in Data Agent the agent scores every sample of every mini-batch the target model
trains on, and the scores decide which samples the next epochs train on. One environment step is
therefore one mini-batch, one episode one whole training run, and the environment only glues the
shared :class:`~envs.core.trainer.Trainer`, a reward object (:mod:`envs.data_agent.rewards`) and the epoch
planner (:mod:`envs.methods.selection`) together: one forward pass per batch feeds the state, the
reward and the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from envs.core.data import DataConfig, DeviceDataset
from envs.core.own_model import model_feature_dim
from envs.core.reference import ReferenceConfig
from envs.core.trainer import BatchForward, Trainer, TrainerConfig
from envs.core.state import STATES
from envs.data_agent.rewards import (DATA_AGENT_REWARDS, REWARD_BASELINES, BatchReward, check_reward_baseline,
                                       make_data_agent_reward)
from envs.episode import BatchEpisodeEnv, HostTransfer
from envs.methods.candidates import check_candidate_factor, top_share
from envs.methods.selection import SELECTIONS, AnnealedTopKPlanner, EpochPlan

#: the per-epoch selections of :class:`AnnealedTopKPlanner`, and the per-batch candidate mode
DATA_AGENT_SELECTIONS = (*SELECTIONS, "candidates")


class DataAgentEnv(BatchEpisodeEnv):
    """Data Agent: score the samples of each mini-batch; the scores choose who trains next epoch.

    **Episode.** One whole training run of ``epochs`` epochs. In each of the first
    ``floor(anneal * epochs)`` epochs only the ``floor(keep_ratio * N)`` highest-scored samples are
    trained (scores start at 1.0, ties broken at random), each with loss weight ``loss_weight``
    (default ``1 / keep_ratio``, as the Data Agent code does); the remaining epochs train on all
    ``N`` samples with weight 1. ``selection="soft"`` draws the kept set with probabilities from the
    scores instead, and ``refresh`` re-admits a random share of the budget from the left-out samples
    (:class:`envs.methods.selection.AnnealedTopKPlanner`). The episode ends with ``truncated=True`` (never ``terminated``)
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
    - ``signals``: a compact model-agnostic vector, columns :data:`envs.core.store.SIGNAL_NAMES`: training loss,
      its EMA, entropy / log C, margin, confidence, correctness, times drawn / (epoch + 1), the
      sample's current score, training progress in [0, 1], and 1 in pruned epochs else 0;
    - ``both``: features then signals.

    With a ``reference`` model (:mod:`envs.core.reference`) ``signals`` and ``both`` end with three more
    columns (:data:`envs.core.store.REFERENCE_SIGNAL_NAMES`): the reference's loss, the reducible loss
    (training loss minus the reference's, from the same forward pass) and the reference's normalised
    entropy (how unsure it is).

    **Candidate mode** (``selection="candidates"``, the per-batch selection of RHO-LOSS). Every epoch
    is cut into candidate batches of ``round(candidate_factor * batch_size)`` samples; the observation
    describes one, forwarded without a graph in eval mode (:meth:`Trainer.candidate_forward`, booked
    under ``candidates``); the ``batch_size`` highest-scored candidates (padded slots never) are then
    forwarded with their graph and trained at once, and the reward comes from that same step. Every
    epoch selects, so ``keep_ratio``, ``anneal``, ``loss_weight``, ``refresh`` and ``temperature`` do not
    apply; the rewards' ``keep_quantile`` budget is ``1 / candidate_factor``. The paper's per-epoch mode
    (``topk``) stays the default.

    **Action space.** ``Box(-1, 1, (batch_size,), float32)``: one score per sample of the observed
    batch. Out-of-range values are clipped; a wrong shape, NaN or inf raises ``ValueError``.

    **Reward.** The batch mean of the reward object's per-sample rewards (a Python float). The
    default is Data Agent's composite reward with its running normaliser
    (:class:`envs.data_agent.rewards.CompositeReward`); ``reward="loss"`` / ``"entropy"`` or any object with
    the :class:`envs.data_agent.rewards.BatchReward` interface plugs in an ablation. ``reward_baseline``
    subtracts a batch baseline from the reward's signal: ``none`` is the paper's reward, whose
    optimum is a score of 1 for every sample; ``batch_mean`` and ``keep_quantile`` make the optimum
    a ranking (:mod:`envs.data_agent.rewards`).

    **Info.** The shared contract of :mod:`envs.episode` (``batch_indices``, ``padded``, ``ledger``,
    ``backprop_fraction``; after a step ``epoch``, ``sample_rewards``, ``train_loss``, ``lr``; on the
    last step ``final_test``, ``scores`` and, after a divergence, ``error``). Padded slots are
    scored like the others and their rewards enter the mean. Data Agent's extras, after a step:
    ``pruned`` (the trained batch's epoch selects), ``keep_ratio_effective`` (trained subset size /
    N) and ``lambda`` (the reward's mixing weight); on the last step ``noisy_kept_fraction`` (with
    label noise, the mean share of noisy samples among those kept in pruned epochs, else None) and
    ``problem_shares`` (:meth:`envs.core.data.DeviceDataset.problem_shares` of what the pruned epochs
    back-propagated, weighted by the loss weights; None before a pruned epoch).

    **Divergence.** A non-finite loss, feature or reward ends the episode with ``truncated=True``,
    ``info["error"]`` explaining it and an all-zero observation (a NaN observation would poison the
    agent's value bootstrap).

    **Seeding.** ``reset(seed=s)`` rebuilds the model, the optimizer, every generator and (unless
    ``data.seed`` fixes them) the dataset subset and label noise from ``s``: on CPU the same seed
    gives the same observations, rewards and final accuracy. ``reset()`` without a seed draws a new
    run seed from ``np_random``.

    **Cost.** State building, reward and selection run under ``ledger.timed("overhead")``, so the
    ledger separates the environment's own work from inner training.

    **Checkpoints.** ``state_dict()`` / ``load_state_dict()`` save and continue an episode at any
    step (:mod:`envs.episode`); the continued episode is identical on CPU.

    :param dataset: dataset registry name (see :mod:`envs.core.data`) or your own data (:mod:`envs.core.own_data`)
    :param model: model registry name (``mlp``, ``cnn``, ``resnet18``) or your own ``nn.Module``
        (:mod:`envs.core.own_model`; every run starts from a copy of its weights)
    :param trainer: inner training options, :class:`~envs.core.trainer.TrainerConfig` or a dict of its
        fields (``batch_size`` >= 2 here: the reward's batch variances need two samples)
    :param data: data options, :class:`~envs.core.data.DataConfig` or a dict of its fields
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param keep_ratio: fraction of samples kept per pruned epoch, in (0, 1]; must keep at least ``batch_size``
    :param anneal: fraction of epochs with selection, in [0, 1] (InfoBatch's delta)
    :param loss_weight: loss weight of kept samples in pruned epochs; ``None``: ``1 / keep_ratio``
    :param state: ``features``, ``signals`` or ``both``
    :param reward: ``composite``, ``loss``, ``entropy`` or a reward object
    :param reward_norm: apply the running batch-mean normaliser (only when ``reward`` is a name)
    :param reward_baseline: ``none`` (the paper's), ``batch_mean`` or ``keep_quantile`` (only when ``reward`` is a name)
    :param selection: ``topk`` (the paper's), ``soft`` (a score-weighted draw of the kept set), ``importance``
        or ``candidates`` (per-batch selection from larger candidate batches, see **Candidate mode**)
    :param refresh: share of each pruned epoch's budget re-admitted at random from the left-out samples, in [0, 1]
    :param temperature: ``soft`` selection's temperature, > 0
    :param reference: a reference model (:class:`~envs.core.reference.ReferenceConfig` or a dict of its
        fields; None: none): the learnability state columns, ``reward="learnability"``; its cost is booked
        in the ledger under ``reference``
    :param candidate_factor: ``selection="candidates"``: candidates per trained sample, >= 1
    """

    #: the valid names of each string option (what a command line offers)
    option_choices = {"state": STATES, "reward": DATA_AGENT_REWARDS, "reward_baseline": REWARD_BASELINES,
                      "selection": DATA_AGENT_SELECTIONS}

    def __init__(self, dataset: str | Any = "digits", model: str | nn.Module = "mlp", *,
                 trainer: TrainerConfig | Mapping[str, Any] | None = None, data: DataConfig | Mapping[str, Any] | None = None,
                 device: str = "auto", keep_ratio: float = 0.5, anneal: float = 0.875, loss_weight: float | None = None,
                 state: str = "features", reward: str | BatchReward = "composite", reward_norm: bool = True,
                 reward_baseline: str = "none", selection: str = "topk", refresh: float = 0.0, temperature: float = 1.0,
                 reference: ReferenceConfig | Mapping[str, Any] | None = None, candidate_factor: float = 2.0):
        super().__init__(trainer, data, device, reference)
        if selection not in DATA_AGENT_SELECTIONS:
            raise ValueError(f"selection={selection!r} is invalid; valid choices: {', '.join(DATA_AGENT_SELECTIONS)}")
        self.candidates = selection == "candidates"
        self.candidate_factor = check_candidate_factor(candidate_factor)
        if self.candidates:
            self.slots = round(self.candidate_factor * self.config.batch_size)
            keep_ratio, selection = 1.0 / self.candidate_factor, "topk"
        if not isinstance(reward_norm, bool):
            raise ValueError(f"reward_norm={reward_norm!r} is invalid; valid: True or False")
        batch_size, epochs = self.config.batch_size, self.config.epochs
        if batch_size < 2:
            raise ValueError(f"batch_size={batch_size!r} is invalid for DataAgent-v0; valid: an integer >= 2 "
                             "(the reward needs batch variances)")
        check_reward_baseline(reward_baseline, keep_ratio)
        self.reward_fn: BatchReward = (make_data_agent_reward(reward, reward_norm, reward_baseline, keep_ratio)
                                       if isinstance(reward, str) else reward)
        if not callable(self.reward_fn) or not callable(getattr(self.reward_fn, "reset", None)):
            raise ValueError(f"reward={reward!r} is invalid; valid: a reward name or an object with __call__ and reset()")
        self._reducible_reward = bool(getattr(self.reward_fn, "reads_reducible_loss", False))
        self._check_learnability(f"reward={reward!r}", self._reducible_reward)
        self.dataset_name, self.model_name, self.state = dataset, model, state
        self._data_key: Any = None
        self._data: DeviceDataset | None = None
        loaded = self._load_data(run_seed=0)
        self.num_samples = loaded.num_train
        self._check_batch_size(smallest=2)
        # checks the selection options and the kept-set size before any episode runs
        self._selection_options = dict(selection=selection, refresh=refresh, temperature=temperature)
        probe = AnnealedTopKPlanner(self.num_samples, epochs, keep_ratio, anneal, loss_weight, device="cpu",
                                     **self._selection_options)
        smallest = probe.num_kept if probe.pruned_epochs > 0 else self.num_samples
        if smallest < batch_size:
            raise ValueError(
                f"keep_ratio={keep_ratio!r} keeps {smallest} of the {self.num_samples} training samples, fewer than "
                f"batch_size={batch_size}; valid range: keep_ratio >= {batch_size / self.num_samples:.4g} (or a smaller batch_size)")
        self.keep_ratio, self.anneal, self.loss_weight = keep_ratio, anneal, loss_weight
        feature_dim = model_feature_dim(model, loaded)
        state_dim = self._state_dim(state, feature_dim)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.slots, state_dim), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.slots,), dtype=np.float32)
        self.planner: AnnealedTopKPlanner | None = None

    # --- results --------------------------------------------------------------------------------

    @property
    def episode_steps(self) -> int:
        """Steps of one episode (one training run): an agent's ``total_timesteps`` for one run."""
        if self.candidates:
            return self.config.epochs * math.ceil(self.num_samples / self.slots)
        probe = AnnealedTopKPlanner(self.num_samples, self.config.epochs, self.keep_ratio, self.anneal, self.loss_weight)
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
                "noisy_kept_fraction": self._noisy_kept_fraction(), "problem_shares": self._problem_shares()}

    def _current_scores(self) -> torch.Tensor:
        """Every training sample's latest score in [0, 1] (1.0 until first scored)."""
        return self.planner.scores

    # --- internals ------------------------------------------------------------------------------

    def _new_run(self, run_seed: int, tie_seed: int) -> None:
        """A fresh trainer and epoch planner for the run ``run_seed`` (tie-breaking from ``tie_seed``)."""
        self._run_seed = run_seed
        data = self._load_data(run_seed)
        self._has_noise = bool(data.noisy_mask.any())
        self._noisy_kept: list[torch.Tensor] = []
        self._kept_weight = torch.zeros(data.num_train, device=self.device)  # back-propagated weight, pruned epochs
        track = self.state != "features" or self.reference is not None
        self.trainer = Trainer(data, self.model_name, self.config, seed=run_seed, track_samples=track)
        self._attach_reference(self.trainer, self.model_name, self.data_config.seed_for(run_seed))
        self.planner = AnnealedTopKPlanner(
            self.num_samples, self.config.epochs, self.keep_ratio, self.anneal, self.loss_weight, device=self.device,
            generator=torch.Generator(device=self.device).manual_seed(tie_seed), **self._selection_options)

    def _method_state(self) -> dict[str, Any]:
        plan = self._plan
        return {"run_seed": self._run_seed, "selector": self.planner.state_dict(),
                "noisy_kept": [t.clone() for t in self._noisy_kept], "kept_weight": self._kept_weight.clone(),
                "plan": {"indices": plan.indices.clone(), "weights": plan.weights.clone(), "pruned": plan.pruned}}

    def _restore_method_state(self, state: dict[str, Any]) -> None:
        self._new_run(state["run_seed"], 0)
        self.planner.load_state_dict(state["selector"])
        self._noisy_kept = [t.to(self.device) for t in state["noisy_kept"]]
        if "kept_weight" in state:  # checkpoints written before problem_shares start the count where they resume
            self._kept_weight = state["kept_weight"].to(self.device)
        p = state["plan"]
        self._plan = EpochPlan(p["indices"].to(self.device), p["weights"].to(self.device), p["pruned"])

    def _load_data(self, run_seed: int) -> DeviceDataset:
        """The dataset for run ``run_seed``; reloaded only when the seed changes the subset or noise."""
        d = self.data_config
        key = d.seed_for(run_seed) if d.seeded else None
        if self._data is None or key != self._data_key:
            self._data = d.load(self.dataset_name, self.device, run_seed)
            self._data_key = key
        return self._data

    def _epoch_indices(self, epoch: int) -> torch.Tensor | None:
        """The planner's plan of the epoch; in candidate mode every sample is a candidate once per epoch."""
        if self.candidates:
            every = torch.arange(self.num_samples, device=self.device)
            self._plan = EpochPlan(every, torch.ones(self.num_samples, device=self.device), pruned=True)
            return None
        self._plan: EpochPlan = self.planner.plan(epoch)
        if self._plan.pruned and self._has_noise:
            self._noisy_kept.append(self.trainer.dataset.noisy_mask[self._plan.indices].float().mean())
        return self._plan.indices

    def _score_batch(self, fwd: BatchForward, scores: torch.Tensor, num_valid: int,
                     transfer: HostTransfer) -> tuple[torch.Tensor, dict[str, Any]]:
        """Record the batch's scores for the planner; the reward and its ``lambda`` go to the host."""
        plan = self._plan
        self.planner.update(fwd.idx, scores)
        losses = fwd.losses.detach()
        if self._reducible_reward:
            losses = losses - self.trainer.store.reference_loss[fwd.idx]
        rewards, lam = self.reward_fn(losses, fwd.logits, scores)
        transfer.add("sample_rewards", rewards)
        transfer.add("lambda", lam)
        if self.candidates:
            ranked = scores.clone()
            ranked[num_valid:] = -1.0  # padded slots (repeats) are never chosen
            self._chosen = fwd.idx[top_share(ranked, self.config.batch_size)]
            if self._has_noise:
                self._noisy_kept.append(self.trainer.dataset.noisy_mask[self._chosen].float().mean())
            self._kept_weight.index_add_(0, self._chosen, torch.ones(len(self._chosen), device=self.device))
            return None, {"pruned": True, "keep_ratio_effective": 1.0 / self.candidate_factor}
        weights = plan.weights[fwd.idx]
        if plan.pruned:
            valid = self._num_valid(self._pos)
            self._kept_weight.index_add_(0, fwd.idx[:valid], weights[:valid])
        return weights, {"pruned": plan.pruned, "keep_ratio_effective": len(plan.indices) / self.num_samples}

    def _forward(self, idx: torch.Tensor) -> BatchForward:
        return self.trainer.candidate_forward(idx) if self.candidates else self.trainer.forward(idx)

    def _replay(self, idx: torch.Tensor, inputs: torch.Tensor) -> BatchForward:
        if self.candidates:
            return self.trainer.candidate_forward(idx, replay=True)
        return self.trainer.replay_forward(idx, inputs)

    def _train(self, fwd: BatchForward, weights: torch.Tensor | None) -> torch.Tensor:
        """Per-epoch modes: the step on the observed batch; candidate mode: forward the chosen share with its
        graph (its statistics came from the candidate pass) and step on it."""
        if not self.candidates:
            return self.trainer.step(fwd, weights)
        return self.trainer.step(self.trainer.forward(self._chosen, record=False))

    def _observe(self, fwd: BatchForward, num_valid: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The state of a forwarded batch and whether its losses and features are all finite."""
        selecting = self.candidates or self.planner.is_pruned(self.trainer.epoch)
        return self._batch_state(fwd, self.state, selecting)

    def _noisy_kept_fraction(self) -> float | None:
        """With label noise: the mean share of noisy samples among those kept in pruned epochs."""
        return float(torch.stack(self._noisy_kept).mean()) if self._noisy_kept else None

    def _problem_shares(self) -> dict[str, float] | None:
        return self.trainer.dataset.problem_shares(self._kept_weight) if bool(self._kept_weight.any()) else None

    def _run_end_info(self) -> dict[str, Any]:
        return {"noisy_kept_fraction": self._noisy_kept_fraction(), "problem_shares": self._problem_shares()}
