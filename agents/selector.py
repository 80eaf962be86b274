"""A drop-in data selector for any PyTorch training loop: a trained Data Agent policy or a baseline.

Why: a policy trained in ``DataAgent-v0`` is only useful if it can select in the loop a practitioner
already has, on their data and model. :class:`Selector` is a ``torch.utils.data.Sampler``: each
pass over it is one epoch's sample order (the kept samples, shuffled, the last batch padded as in
the envs), and after every forward pass ``update`` records the batch and returns the loss to
back-propagate, weighted as the method says. Three lines in an existing loop::

    selector = Selector.from_agent("runs/DataAgent-v0_ppo_s0/agent.zip", num_samples=len(ds), epochs=E, batch_size=B)
    loader = DataLoader(indexed_ds, batch_size=B, sampler=selector)      # items: (index, input, label)
    loss = selector.update(idx, F.cross_entropy(logits, y, reduction="none"), logits, features, labels=y)

With the same policy, seed and training, the selection equals the env's: the same kept samples,
the same batches in the same order (``tests/test_selector.py``). Everything stays on ``device``;
the policy runs there too (no device-to-host transfer per batch).

Distributed training (DDP) is not covered: every rank would need every rank's scores. Run the
selector on one process, or give each rank the same selector and all-gathered ``update`` inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import gymnasium as gym
import numpy as np
import torch
import yaml
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import load_from_zip_file
from torch.utils.data import Sampler

from agents.policies import BatchOfSamplesPolicy
from envs.core.batches import fixed_size_batches, shuffled_split
from envs.core.store import SIGNAL_NAMES, SampleStore
from envs.core.state import batch_state, check_state
from envs.methods.baselines.dynamic import PER_BATCH_BASELINES, PER_EPOCH_BASELINES, DynamicBaseline, DynamicSetup, make_dynamic_baseline
from envs.methods.selection import AnnealedTopKPlanner, EpochPlan


def load_policy(path: str | Path, batch_size: int, device: torch.device | str = "cpu") -> ActorCriticPolicy:
    """The actor-critic policy of a saved SB3 agent (PPO or A2C ``.zip``), in eval mode on ``device``.

    A per-sample policy reads ``(state_dim,)`` rows; a :class:`~agents.policies.BatchOfSamplesPolicy`
    is rebuilt for batches of ``batch_size`` (its weights do not depend on the batch size)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"agent {str(path)!r} does not exist; valid: an agent.zip saved by experiments.train")
    data, params, _ = load_from_zip_file(path, device=device)
    cls, obs_space, act_space = data["policy_class"], data["observation_space"], data["action_space"]
    if not (isinstance(cls, type) and issubclass(cls, ActorCriticPolicy)):
        raise ValueError(f"agent {str(path)!r} has a {getattr(cls, '__name__', cls)} policy; valid: an actor-critic agent (PPO, A2C)")
    if len(obs_space.shape) == 2:
        if not issubclass(cls, BatchOfSamplesPolicy):
            raise ValueError(f"agent {str(path)!r} reads whole batches with {cls.__name__}, tied to one batch size; "
                             "valid: a per-sample agent (--layout per_sample) or BatchOfSamplesPolicy")
        dim = obs_space.shape[1]
        obs_space = gym.spaces.Box(-np.inf, np.inf, (batch_size, dim), np.float32)
        act_space = gym.spaces.Box(-1.0, 1.0, (batch_size,), np.float32)
    policy = cls(obs_space, act_space, lambda _: 0.0, **data.get("policy_kwargs", {}))
    policy.load_state_dict(params["policy"])
    policy.to(device)
    policy.set_training_mode(False)
    return policy


def policy_state_dim(policy: ActorCriticPolicy) -> int:
    """Values per sample that ``policy`` reads."""
    return int(policy.observation_space.shape[-1])


def _check_sizes(num_samples: int, epochs: int, batch_size: int) -> None:
    for name, value in (("num_samples", num_samples), ("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= 1")


class AgentRule:
    """Data Agent's selection driven by a policy: every forwarded sample gets the score
    ``(action + 1) / 2``; each pruned epoch keeps the top ``keep_ratio`` by score
    (:class:`~envs.methods.selection.AnnealedTopKPlanner`, as in ``DataAgent-v0``)."""

    def __init__(self, policy: ActorCriticPolicy, state: str, planner: AnnealedTopKPlanner):
        check_state(state)
        dim = policy_state_dim(policy)
        if state == "signals" and dim != len(SIGNAL_NAMES):
            raise ValueError(f"the agent reads {dim} values per sample, but state='signals' has {len(SIGNAL_NAMES)}; "
                             "valid: an agent trained with --state signals")
        self.policy, self.state, self.planner = policy, state, planner
        self.store = None if state == "features" else SampleStore(planner.num_samples, planner.device)
        self.needs = {"features": ("features",), "signals": ("logits", "labels"),
                      "both": ("features", "logits", "labels")}[state]
        self.per_sample = len(policy.observation_space.shape) == 1

    def plan(self, epoch: int) -> EpochPlan:
        return self.planner.plan(epoch)

    @torch.no_grad()
    def observe(self, idx: torch.Tensor, losses: torch.Tensor, logits: torch.Tensor | None,
                features: torch.Tensor | None, labels: torch.Tensor | None, epoch: int, progress: float) -> None:
        if self.store is not None:
            self.store.update(idx, losses, logits, labels, epoch)
        num_classes = 0 if logits is None else logits.shape[1]
        state = batch_state(self.state, features, self.store, idx, self.planner.scores, epoch, progress,
                            self.planner.is_pruned(epoch), num_classes)
        if state.shape[1] != policy_state_dim(self.policy):
            raise ValueError(f"the agent reads {policy_state_dim(self.policy)} values per sample, but state={self.state!r} "
                             f"of this model gives {state.shape[1]}; valid: an agent trained on a model with "
                             f"{state.shape[1] - (len(SIGNAL_NAMES) if self.store is not None else 0)}-d features, "
                             "or a --state signals agent (model-agnostic)")
        obs = state.to(self.policy.device)
        if not self.per_sample:
            obs = obs[None]
        actions = self.policy.get_distribution(obs).get_actions(deterministic=True).reshape(-1).clamp(-1.0, 1.0)
        self.planner.update(idx, (actions.to(self.planner.device) + 1.0) * 0.5)


class BaselineRule:
    """A dynamic baseline (:mod:`envs.methods.baselines.dynamic`) ranking from per-sample statistics."""

    def __init__(self, method: DynamicBaseline, store: SampleStore, needs: tuple[str, ...]):
        self.method, self.store, self.needs = method, store, needs

    def plan(self, epoch: int) -> EpochPlan:
        return self.method.plan(epoch, self.store)

    def observe(self, idx: torch.Tensor, losses: torch.Tensor, logits: torch.Tensor | None,
                features: torch.Tensor | None, labels: torch.Tensor | None, epoch: int, progress: float) -> None:
        self.store.update(idx, losses, logits, labels, epoch)


class Selector(Sampler[int]):
    """Each epoch's sample order for a ``DataLoader``, and the loss weights of a selection method.

    Build it with :meth:`from_agent` or :meth:`from_baseline`. Every ``iter()`` starts the next epoch:
    the method's kept samples, shuffled, cut into batches of ``batch_size``, the last one padded with
    the epoch's first samples (as the envs do), so pass the same ``batch_size`` to the ``DataLoader``.
    After each forward pass call :meth:`update`; it returns the loss to back-propagate.

    :param rule: who is kept (an :class:`AgentRule` or a :class:`BaselineRule`)
    :param num_samples: training-set size ``N`` (indices are ``0 .. N-1``)
    :param epochs: planned epochs (the progress the state reports)
    :param batch_size: samples per batch
    :param generator: the shuffling's random source, on the device where indices, scores and weights live
    """

    def __init__(self, rule: AgentRule | BaselineRule, num_samples: int, epochs: int, batch_size: int,
                 generator: torch.Generator):
        super().__init__()
        self.rule, self.num_samples, self.epochs, self.batch_size = rule, num_samples, epochs, batch_size
        self.generator = generator
        self.device = generator.device
        self.epoch = -1  #: the epoch in progress (-1: none started)
        self.samples_backpropagated = 0  #: samples of every update, padding included
        self._plan: EpochPlan | None = None
        self._order: torch.Tensor | None = None
        self._next: tuple[EpochPlan, torch.Tensor] | None = None
        self._batch_in_epoch = 0

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def from_agent(cls, path: str | Path, num_samples: int, epochs: int, batch_size: int, *, keep_ratio: float = 0.5,
                   anneal: float = 0.875, loss_weight: float | None = None, state: str | None = None,
                   selection: str | None = None, refresh: float | None = None, temperature: float | None = None,
                   device: torch.device | str = "cpu", seed: int = 0) -> Selector:
        """A selector driven by an agent saved by ``experiments.train`` (``DataAgent-v0``).

        :param path: the agent's ``agent.zip``
        :param num_samples: training-set size
        :param epochs: planned epochs
        :param batch_size: samples per batch
        :param keep_ratio: fraction kept per pruned epoch, in (0, 1]; must keep at least ``batch_size``
        :param anneal: fraction of epochs with selection, in [0, 1]
        :param loss_weight: loss weight of kept samples in pruned epochs (``None``: ``1 / keep_ratio``)
        :param state: the agent's state, ``features``, ``signals`` or ``both``; ``None``: read from the
            ``config.yml`` beside the zip (``features`` without one)
        :param selection: ``topk``, ``soft`` or ``importance`` (:class:`~envs.methods.selection.AnnealedTopKPlanner`);
            ``None``: the run's, from ``config.yml`` (else ``topk``)
        :param refresh: share of the budget re-admitted at random; ``None``: the run's (else 0)
        :param temperature: ``soft`` selection's temperature; ``None``: the run's (else 1)
        :param device: where selection and the policy run
        :param seed: seeds shuffling and tie-breaking exactly as ``DataAgent-v0``'s ``reset(seed=seed)``
        """
        _check_sizes(num_samples, epochs, batch_size)
        path = Path(path)
        config_file = path.parent / "config.yml"
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
        if config.get("env", "DataAgent-v0") != "DataAgent-v0":
            raise ValueError(f"agent {str(path)!r} was trained on {config['env']}; valid: an agent of DataAgent-v0 "
                             "(the selector runs Data Agent's per-epoch selection)")
        trained_with = config.get("env_kwargs") or {}
        if state is None:
            state = trained_with.get("state") or "features"
        given = {"selection": selection, "refresh": refresh, "temperature": temperature}
        chosen = {k: v if v is not None else trained_with.get(k) for k, v in given.items()}
        planner = AnnealedTopKPlanner(num_samples, epochs, keep_ratio, anneal, loss_weight, device=device,
                                        **{k: v for k, v in chosen.items() if v is not None})
        if planner.pruned_epochs > 0 and planner.num_kept < batch_size:
            raise ValueError(f"keep_ratio={keep_ratio!r} keeps {planner.num_kept} of {num_samples} samples, fewer than "
                             f"batch_size={batch_size}; valid range: keep_ratio >= {batch_size / num_samples:.4g}")
        # DataAgent-v0's reset(seed=s) draws its tie-breaking seed first from np_random(s)
        rng, _ = np_random(seed)
        planner.generator = torch.Generator(device=planner.device).manual_seed(int(rng.integers(2**63 - 1)))
        rule = AgentRule(load_policy(path, batch_size, device), state, planner)
        return cls(rule, num_samples, epochs, batch_size, torch.Generator(device=planner.device).manual_seed(seed))

    @classmethod
    def from_baseline(cls, name: str, num_samples: int, num_classes: int, epochs: int, batch_size: int, *,
                      device: torch.device | str = "cpu", seed: int = 0, **options: Any) -> Selector:
        """A selector running a dynamic baseline (:data:`envs.methods.baselines.dynamic.DYNAMIC_BASELINES`).

        :param name: a name in :data:`envs.methods.baselines.dynamic.DYNAMIC_BASELINES`
        :param num_samples: training-set size
        :param num_classes: classes of the task
        :param epochs: planned epochs
        :param batch_size: samples per batch
        :param device: where selection runs
        :param seed: seeds shuffling and the baseline's random draws
        :param options: the baseline's options (``keep_ratio``, ``anneal``, ``prune_ratio``, ``ucb_c``, ``epsilon``)
        """
        _check_sizes(num_samples, epochs, batch_size)
        if name not in PER_EPOCH_BASELINES:  # a per-batch method chooses inside each step, which a Sampler cannot
            raise ValueError(f"baseline {name!r} is invalid; valid choices: {', '.join(PER_EPOCH_BASELINES)} "
                             f"(a drop-in selector plans epochs; {', '.join(PER_BATCH_BASELINES)} choose per batch)")
        generator = torch.Generator(device=torch.device(device)).manual_seed(seed)
        method = make_dynamic_baseline(name, DynamicSetup(num_samples, num_classes, epochs, device=device, generator=generator,
                                                           **options))
        # what update() must be given besides the losses: the baseline says (DynamicBaseline.needs)
        return cls(BaselineRule(method, SampleStore(num_samples, device), getattr(method, "needs", ())), num_samples,
                   epochs, batch_size, generator)

    # --- the Sampler -----------------------------------------------------------------------------

    def _pending(self) -> tuple[EpochPlan, torch.Tensor]:
        """The next epoch's plan and padded order (computed once, when first asked for)."""
        if self._next is None:
            plan = self.rule.plan(self.epoch + 1)
            batches, _ = fixed_size_batches(shuffled_split(plan.indices, self.batch_size, self.generator), self.batch_size)
            self._next = (plan, torch.cat(batches))
        return self._next

    def next_epoch(self) -> torch.Tensor:
        """Start the next epoch; its sample order (on ``device``, a multiple of ``batch_size`` long)."""
        self._plan, self._order = self._pending()
        self._next = None
        self.epoch += 1
        self._batch_in_epoch = 0
        return self._order

    def __iter__(self) -> Iterator[int]:
        return iter(self.next_epoch().tolist())

    def __len__(self) -> int:
        if self._order is not None and self._batch_in_epoch * self.batch_size < len(self._order):
            return len(self._order)  # an epoch in progress
        return len(self._pending()[1])

    # --- after each forward pass -----------------------------------------------------------------

    def loss_weights(self, indices: torch.Tensor) -> torch.Tensor:
        """The current epoch's loss weights of ``indices``."""
        if self._plan is None:
            raise RuntimeError("no epoch started: iterate over the selector (or call next_epoch()) first")
        return self._plan.weights[torch.as_tensor(indices, device=self.device)]

    def update(self, indices: torch.Tensor, losses: torch.Tensor, logits: torch.Tensor | None = None,
               features: torch.Tensor | None = None, *, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Record one forward pass of the samples ``indices``; return ``mean(losses * weights)`` to back-propagate.

        :param indices: the batch's sample indices, as the sampler gave them
        :param losses: per-sample losses ``(B,)`` (``reduction="none"``), with their graph
        :param logits: the batch's logits ``(B, C)`` (needed by ``signals`` states and ``composite``)
        :param features: penultimate features ``(B, D)`` (needed by ``features`` and ``both`` states)
        :param labels: training labels ``(B,)`` (needed by ``signals`` and ``both`` states)
        """
        if self._plan is None:
            raise RuntimeError("update() called before an epoch started: iterate over the selector first")
        idx = torch.as_tensor(indices, device=self.device)
        if idx.shape != (self.batch_size,) or losses.shape != idx.shape:
            raise ValueError(f"update() got {tuple(idx.shape)} indices and losses of shape {tuple(losses.shape)}; valid: "
                             f"batch_size={self.batch_size} of each (give the DataLoader batch_size={self.batch_size})")
        given = {"logits": logits, "features": features, "labels": labels}
        missing = [name for name in self.rule.needs if given[name] is None]
        if missing:
            raise ValueError(f"this selector needs {', '.join(f'{m}=' for m in missing)} in update(); valid: pass them "
                             "from the forward pass")
        labels = None if labels is None else torch.as_tensor(labels, device=self.device)
        num_batches = len(self._order) // self.batch_size
        progress = min((self.epoch + min(self._batch_in_epoch / num_batches, 1.0)) / self.epochs, 1.0)
        self.rule.observe(idx, losses.detach(), None if logits is None else logits.detach(),
                          None if features is None else features.detach(), labels, self.epoch, progress)
        self._batch_in_epoch += 1
        self.samples_backpropagated += self.batch_size
        return (losses * self._plan.weights[idx].to(losses.dtype)).mean()

    # --- results ---------------------------------------------------------------------------------

    @property
    def pruned(self) -> bool:
        """Whether the epoch in progress trains on a selected subset."""
        return self._plan is not None and self._plan.pruned

    @property
    def kept_indices(self) -> torch.Tensor:
        """The samples the epoch in progress trains (unshuffled, without padding)."""
        if self._plan is None:
            raise RuntimeError("no epoch started yet")
        return self._plan.indices

    @property
    def scores(self) -> torch.Tensor:
        """An agent selector's latest per-sample scores in [0, 1] (1.0 until first scored)."""
        if not isinstance(self.rule, AgentRule):
            raise AttributeError("a baseline selector has no per-sample scores; only agent selectors do")
        return self.rule.planner.scores

    def backprop_fraction(self) -> float:
        """Samples back-propagated so far / those of ``epochs`` full-data epochs (``epochs * N``)."""
        return self.samples_backpropagated / (self.epochs * self.num_samples)
