"""Static (coreset) baselines: choose one fixed subset before the real training run (docs/methods.md C.1).

Why one module: RL-Selector is compared with these methods at equal cost accounting. All of them but
``random`` read one *proxy run* (:func:`run_proxy`): a model trained with :class:`envs.trainer.Trainer` on
all data for ``score_epochs`` epochs, which records every score on the way, so one run serves every
method and its ledger is the selection cost each method reports (:attr:`Coreset.ledger`).

Methods (``STATIC_METHODS``; "keep" = the samples the coreset contains):

``random``      uniform within each class (seeded).
``el2n``        ``||softmax - onehot||_2`` (Paul et al. 2021) of the proxy after ``score_epochs`` epochs
                (eval mode, no augmentation), mean over ``num_models`` proxy runs; keep the highest.
``grand``       expected norm of the per-sample gradient of the plain (unsmoothed) CE loss w.r.t. the last
                linear layer (:func:`grand_scores`), averaged over every training forward pass of the
                proxy run(s) (once per epoch per sample: the expectation over early training and
                initialisations, at no extra pass); keep the highest.
``forgetting``  correct -> incorrect flips during the proxy run (Toneva et al. 2019), counted by the
                trainer's :class:`~envs.store.SampleStore`; never-learned samples score ``inf``
                (:func:`forgetting_scores`); keep the most forgotten.
``herding``     per class, greedily add the sample that brings the mean of the picks closest to the class
                mean (:func:`herding_order`).
``kcenter``     per class, k-center greedy (farthest point) from the sample closest to the class mean
                (:func:`kcenter_order`).
``moderate``    Moderate-DS: keep the samples whose distance to their class centre is nearest the class's
                median distance (:func:`moderate_scores`).

Feature-space methods use the proxy's eval-mode penultimate features (:meth:`Trainer.embed`) of the
first proxy run (features of different networks live in different spaces and cannot be averaged).

Budget: ``envs.coreset.coreset_target_size(N, ratio)`` samples in all (``round(ratio * N)``, Python's
rounding, the size every fixed-size coreset in this project uses), split over classes in proportion to
their sizes by largest remainder (``envs.coreset.proportional_quotas``), so the total is exact and each
class gets ``floor`` or ``ceil`` of ``ratio * N_k``. Score ties are broken by a random permutation seeded
with the selection ``seed``; the greedy methods are deterministic given the features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from envs import signals
from envs.coreset import coreset_target_size, proportional_quotas
from envs.cover import class_members
from envs.data import DeviceDataset
from envs.ledger import CostLedger
from envs.store import SampleStore
from envs.trainer import DivergenceError, Trainer, TrainerConfig


# --- per-sample scores (pure tensor functions) ----------------------------------------------------


def grand_scores(logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Exact per-sample norm of the plain-CE gradient w.r.t. the last linear layer (weights and bias).

    For ``z = W f + b`` and ``l = CE(z, y)``: ``dl/dz = g = softmax(z) - onehot(y)``, ``dl/dW = g f^T`` and
    ``dl/db = g``. The Frobenius norm of an outer product is the product of the norms, so
    ``||dl/d(W, b)||^2 = ||g||^2 ||f||^2 + ||g||^2``, i.e. ``||g|| * sqrt(||f||^2 + 1)``: the EL2N score
    times a feature-norm factor. Computed from one forward pass, without a backward pass.
    """
    return signals.el2n(logits, labels) * (features.float().square().sum(dim=1) + 1.0).sqrt()


def forgetting_scores(store: SampleStore) -> torch.Tensor:
    """Forgetting events per sample as float; samples seen but never classified correctly score ``inf``.

    Convention (Toneva et al. 2019): a never-learned sample counts as forgotten more than any learned one.
    It is recognised without extra state: a sample that was ever correct and is wrong now must have
    flipped at least once, so "seen, no flip, wrong at the last pass" means "never correct"."""
    never_learned = (store.times_selected > 0) & ~store.was_correct & (store.forgetting == 0)
    return store.forgetting.float().masked_fill(never_learned, float("inf"))


def moderate_scores(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Moderate-DS score ``-| ||f_i - c_k|| - median_k |``: highest for distances to the class centre
    ``c_k`` (the class mean) nearest the class's median distance (``torch.quantile``, interpolated)."""
    scores = torch.empty(len(labels), device=features.device)
    for members in class_members(labels, int(labels.max()) + 1):
        if len(members) == 0:
            continue
        f = features[members].float()
        dist = (f - f.mean(dim=0)).norm(dim=1)
        scores[members] = -(dist - dist.quantile(0.5)).abs()
    return scores


# --- greedy per-class orders ----------------------------------------------------------------------


def herding_order(features: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` herding picks (positions into ``features``, one class's ``(n, D)`` features).

    Pick ``t`` minimises ``||mu - (S + f_j) / (t + 1)||`` over unpicked ``j`` (``mu``: class mean, ``S``: sum
    of the picks), the coreset variant of Welling's herding. On features centred at ``mu`` that is the
    ``j`` minimising ``||S + f_j||``, so the first pick is the sample closest to the class mean.
    One vectorised distance update per pick."""
    x = features.float() - features.float().mean(dim=0)
    picked_sum = torch.zeros_like(x[0])
    taken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    order = torch.empty(count, dtype=torch.long, device=x.device)
    for t in range(count):
        j = (x + picked_sum).square().sum(dim=1).masked_fill(taken, float("inf")).argmin().view(1)
        order[t:t + 1] = j
        taken.index_fill_(0, j, True)
        picked_sum += x.index_select(0, j)[0]
    return order


def kcenter_order(features: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` k-center greedy picks (positions into one class's ``(n, D)`` features).

    Starts from the sample closest to the class mean (deterministic, and a central start spends no pick
    on an outlier), then repeatedly picks the sample farthest from its nearest pick. One vectorised
    distance update per pick; squared distances (same argmax)."""
    x = features.float()
    order = torch.empty(count, dtype=torch.long, device=x.device)
    if count == 0:
        return order
    j = (x - x.mean(dim=0)).square().sum(dim=1).argmin().view(1)
    nearest = torch.full((len(x),), float("inf"), device=x.device)
    for t in range(count):
        if t > 0:
            j = nearest.argmax().view(1)
        order[t:t + 1] = j
        nearest = torch.minimum(nearest, (x - x.index_select(0, j)).square().sum(dim=1))
        nearest.index_fill_(0, j, -float("inf"))  # picked: never the farthest again, even among duplicates
    return order


# --- per-class budgets and selection --------------------------------------------------------------


def class_quotas(labels: torch.Tensor, ratio: float) -> list[int]:
    """Samples to keep per class: ``coreset_target_size(N, ratio)`` in all, proportional to class sizes
    (largest remainder). Validates ``ratio`` in (0, 1)."""
    total = coreset_target_size(len(labels), ratio)
    sizes = torch.bincount(labels).tolist()
    return proportional_quotas(sizes, total)


def keep_top_per_class(scores: torch.Tensor, labels: torch.Tensor, quotas: list[int],
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted indices of the ``quotas[k]`` highest-scored samples of every class ``k``; equal scores in
    a random order drawn with ``generator``. One global sort by score, then a stable sort by class."""
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; every sample needs a comparable score")
    n = len(labels)
    perm = torch.randperm(n, device=labels.device, generator=generator)
    by_score = perm[torch.sort(scores[perm], descending=True, stable=True).indices]
    by_class = by_score[torch.sort(labels[by_score], stable=True).indices]
    sizes = torch.bincount(labels, minlength=len(quotas))
    starts = torch.cumsum(sizes, 0) - sizes
    y = labels[by_class]
    rank_in_class = torch.arange(n, device=labels.device) - starts[y]
    keep = by_class[rank_in_class < torch.tensor(quotas, device=labels.device)[y]]
    return keep.sort().values


def greedy_per_class(order_fn: Callable[[torch.Tensor, int], torch.Tensor], features: torch.Tensor,
                     labels: torch.Tensor, quotas: list[int]) -> torch.Tensor:
    """Sorted indices of the first ``quotas[k]`` picks of ``order_fn`` within every class ``k``."""
    members = class_members(labels, len(quotas))
    picks = [m[order_fn(features[m], q)] for m, q in zip(members, quotas)]
    return torch.cat(picks).sort().values


# --- the proxy run --------------------------------------------------------------------------------


@dataclass
class ProxyScores:
    """What the proxy run(s) recorded, on the dataset's device.

    :param labels: ``(N,)`` training labels the proxy learned (noisy ones if the data has label noise)
    :param el2n: ``(N,)`` EL2N after the proxy run, mean over runs
    :param grand: ``(N,)`` head-gradient norm, mean over every training pass of every run
    :param forgetting: ``(N,)`` forgetting events, mean over runs (``inf`` where any run never learned the sample)
    :param features: ``(N, D)`` eval-mode penultimate features of the first run
    :param ledger: the proxy runs' cost, summed (:meth:`CostLedger.as_dict` keys)
    :param meta: how the scores were made (dataset, num_train, model, score_epochs, num_models, seed, trainer)
    """

    labels: torch.Tensor
    el2n: torch.Tensor
    grand: torch.Tensor
    forgetting: torch.Tensor
    features: torch.Tensor
    ledger: dict[str, float | int]
    meta: dict[str, Any] = field(default_factory=dict)


def _add_ledgers(*ledgers: dict[str, float | int]) -> dict[str, float | int]:
    return {k: sum(ledger[k] for ledger in ledgers) for k in ledgers[0]}


def _one_proxy_run(dataset: DeviceDataset, model: str, config: TrainerConfig, score_epochs: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float | int]]:
    """Train ``score_epochs`` epochs on all data, reading GraNd off each training forward pass; then embed."""
    trainer = Trainer(dataset, model, config, seed=seed, track_samples=True)
    grand = torch.zeros(dataset.num_train, device=dataset.device)
    for epoch in range(score_epochs):
        batches = trainer.shuffled_batches()
        trainer.begin_epoch(epoch, len(batches))
        total = torch.zeros((), device=dataset.device)
        for idx in batches:
            fwd = trainer.forward(idx)
            with trainer.ledger.timed("overhead"):
                grand[idx] += grand_scores(fwd.logits.detach(), fwd.features.detach(), fwd.labels)
            total += trainer.step(fwd)
        if not torch.isfinite(total):
            raise DivergenceError(f"proxy run (seed {seed}): non-finite training loss in epoch {epoch}; try a lower lr")
    logits, features = trainer.embed()
    with trainer.ledger.timed("overhead"):
        el2n = signals.el2n(logits, dataset.train_y)
        forgetting = forgetting_scores(trainer.store)
    return el2n, grand / score_epochs, forgetting, features, trainer.ledger.as_dict()


def run_proxy(dataset: DeviceDataset, model: str = "mlp", config: TrainerConfig | None = None, *,
              score_epochs: int = 5, num_models: int = 1, seed: int = 0) -> ProxyScores:
    """Train ``num_models`` proxy models (seeds ``seed``, ``seed + 1``, ...) on all of ``dataset`` for
    ``score_epochs`` epochs each and record every static method's inputs.

    The LR schedule spans ``config.epochs`` (>= ``score_epochs``): with ``config.epochs`` set to the real
    run's length the scores are taken *early* in that schedule, as in Paul et al. (epoch 20 of 200).
    ``num_models`` defaults to 1 for cost (Paul et al. average EL2N/GraNd over 10 networks); Forgetting
    and the features also come from these short runs, so one proxy serves every method.

    :param dataset: the training data (its labels define the classes)
    :param model: proxy architecture (a registry name)
    :param config: trainer hyper-parameters of the proxy; default :class:`TrainerConfig()`
    :param score_epochs: epochs each proxy trains before its scores are read
    :param num_models: independent proxy runs to average EL2N, GraNd and Forgetting over
    :param seed: seed of the first proxy run
    """
    config = config or TrainerConfig()
    config.validate()
    checks = [
        ("score_epochs", score_epochs, isinstance(score_epochs, int) and 1 <= score_epochs <= config.epochs,
         f"an integer in [1, config.epochs={config.epochs}]"),
        ("num_models", num_models, isinstance(num_models, int) and num_models >= 1, "an integer >= 1"),
    ]
    for name, value, ok, valid in checks:
        if isinstance(value, bool) or not ok:
            raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
    runs = [_one_proxy_run(dataset, model, config, score_epochs, seed + m) for m in range(num_models)]
    el2n, grand, forgetting = (torch.stack([r[i] for r in runs]).mean(dim=0) for i in range(3))
    meta = {"dataset": dataset.name, "num_train": dataset.num_train, "model": model, "score_epochs": score_epochs,
            "num_models": num_models, "proxy_seed": seed, "trainer": config.as_dict()}
    return ProxyScores(dataset.train_y, el2n, grand, forgetting, runs[0][3], _add_ledgers(*(r[4] for r in runs)), meta)


# --- the registry and its entry point -------------------------------------------------------------

SCORE_METHODS: dict[str, Callable[[ProxyScores, torch.Tensor], torch.Tensor]] = {
    # random: every score tied, so the seeded tie-break alone decides (uniform within each class)
    "random": lambda proxy, labels: torch.zeros(len(labels), device=labels.device),
    "el2n": lambda proxy, labels: proxy.el2n,
    "grand": lambda proxy, labels: proxy.grand,
    "forgetting": lambda proxy, labels: proxy.forgetting,
    "moderate": lambda proxy, labels: moderate_scores(proxy.features, labels),
}
GREEDY_METHODS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "herding": herding_order,
    "kcenter": kcenter_order,
}
STATIC_METHODS: tuple[str, ...] = (*SCORE_METHODS, *GREEDY_METHODS)


@dataclass(frozen=True)
class Coreset:
    """A static selection and what it cost.

    :param indices: sorted unique int64 training-set indices
    :param method: the method's registry name
    :param ratio: the requested fraction of the training set
    :param seed: the selection (tie-break / random) seed
    :param ledger: selection cost: the proxy run(s) plus the selection itself as overhead (``random``:
        only its own selection time)
    :param num_train: size of the training set the indices refer to
    :param proxy: the proxy's :attr:`ProxyScores.meta` (empty for ``random``, which trains no proxy)
    """

    indices: np.ndarray
    method: str
    ratio: float
    seed: int
    ledger: dict[str, float | int]
    num_train: int
    proxy: dict[str, Any] = field(default_factory=dict)

    def meta(self, **extra: Any) -> dict[str, Any]:
        """Metadata for :func:`envs.coreset.save_coreset`; pass the data options that rebuild the training
        set (``dataset``, ``train_size``, ``data_seed``, ``noise``, ...) as ``extra``."""
        return {**self.proxy, "method": self.method, "num_train": self.num_train, "ratio": self.ratio,
                "seed": self.seed, "ledger": self.ledger, **extra}


def select_coreset(method: str, source: ProxyScores | torch.Tensor, ratio: float, seed: int = 0) -> Coreset:
    """Select a static coreset of ``coreset_target_size(N, ratio)`` samples, per class in proportion.

    :param method: one of :data:`STATIC_METHODS`
    :param source: the scores of :func:`run_proxy`; ``random`` also accepts just the ``(N,)`` labels
    :param ratio: fraction of the training set to keep, in (0, 1)
    :param seed: seeds the tie-break (and the whole draw of ``random``)
    """
    if method not in STATIC_METHODS:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(STATIC_METHODS)}")
    proxy = source if isinstance(source, ProxyScores) else None
    if proxy is None and method != "random":
        raise ValueError(f"method={method!r} needs the ProxyScores of run_proxy(); labels alone serve only 'random'")
    labels = proxy.labels if proxy is not None else torch.as_tensor(source)
    selection = CostLedger(sync_cuda=labels.device.type == "cuda")
    with selection.timed("overhead"):
        quotas = class_quotas(labels, ratio)
        if method in GREEDY_METHODS:
            kept = greedy_per_class(GREEDY_METHODS[method], proxy.features, labels, quotas)
        else:
            generator = torch.Generator(device=labels.device).manual_seed(seed)
            kept = keep_top_per_class(SCORE_METHODS[method](proxy, labels), labels, quotas, generator)
        indices = kept.cpu().numpy().astype(np.int64)
    cost = selection.as_dict() if method == "random" else _add_ledgers(proxy.ledger, selection.as_dict())
    meta = dict(proxy.meta) if proxy is not None and method != "random" else {}
    return Coreset(indices, method, float(ratio), seed, cost, len(labels), meta)
