"""Static (coreset) baselines: choose one fixed subset before the real training run (docs/methods.md C.1).

Why one module: RL-Selector is compared with these methods at equal cost accounting. All of them but
``random`` and ``random_uniform`` read one *proxy run* (:func:`run_proxy`): a model trained with :class:`envs.core.trainer.Trainer` on
all data for ``score_epochs`` epochs, which records every score on the way, so one run serves every
method and its ledger is the selection cost each method reports (:attr:`Coreset.ledger`).

Methods (the registry :data:`STATIC_BASELINES`; "keep" = the samples the coreset contains):

``random``      uniform within each class (seeded): the class-balanced random control.
``random_uniform`` uniform over the whole training set (seeded), class shares left to chance.
``el2n``        ``||softmax - onehot||_2`` (Paul et al. 2021) of the proxy after ``score_epochs`` epochs
                (eval mode, no augmentation), mean over ``num_models`` proxy runs; keep the highest.
``grand``       expected norm of the per-sample gradient of the plain (unsmoothed) CE loss w.r.t. the last
                linear layer (:func:`grand_scores`), averaged over every training forward pass of the
                proxy run(s) (once per epoch per sample: the expectation over early training and
                initialisations, at no extra pass); keep the highest.
``forgetting``  correct -> incorrect flips during the proxy run (Toneva et al. 2019), counted by the
                trainer's :class:`~envs.core.store.SampleStore`; never-learned samples score ``inf``
                (:func:`forgetting_scores`); keep the most forgotten.
``herding``     per class, greedily add the sample that brings the mean of the picks closest to the class
                mean (:func:`herding_order`).
``kcenter``     per class, k-center greedy (farthest point) from the sample closest to the class mean
                (:func:`kcenter_order`).
``moderate``    Moderate-DS: keep the samples whose distance to their class centre is nearest the class's
                median distance (:func:`moderate_scores`).
``cover``       RL-Selector without RL (its paper's ablation): keep the smallest ε-cover degrees
                (:func:`envs.methods.cover.cover_degrees`, ``eps_k`` = the class's mean pairwise distance).
``cover_greedy`` per class, greedy ε-cover (:func:`envs.methods.cover.greedy_cover_order`, ``eps_k`` = the
                class's 1% quantile of pairwise distances): each pick covers the most uncovered samples.
``ccs``         coverage-centric selection (Zheng et al. 2023) on EL2N: per class, drop the hardest 10%,
                then spread the budget evenly over 50 difficulty strata (:func:`stratified_per_class`).
``oracle``      reads the task's provenance (:mod:`envs.methods.oracle`): the highest oracle priority over the
                whole set (no class quotas: minority classes first), never noisy samples or copies while
                others remain; a ceiling of the scores, never offered as a real method.
``reducible_loss`` the proxy's eval-mode loss minus a reference model's (RHO-LOSS's learnability as a
                static score, mean over proxy runs; ``run_proxy(reference=...)``, :mod:`envs.core.reference`,
                whose cost joins the proxy's); keep the highest.

Feature-space methods use the proxy's eval-mode penultimate features (:meth:`Trainer.embed`) of the
first proxy run (features of different networks live in different spaces and cannot be averaged).

Budget: ``envs.methods.coreset.coreset_target_size(N, ratio)`` samples in all (``round(ratio * N)``, Python's
rounding, the size every fixed-size coreset in this project uses), split over classes in proportion to
their sizes by largest remainder (``envs.methods.coreset.proportional_quotas``), so the total is exact and each
class gets ``floor`` or ``ceil`` of ``ratio * N_k`` (``random_uniform`` alone ignores the classes). Score ties are broken by a random permutation seeded
with the selection ``seed``. Herding and k-center are deterministic given the features; ``cover_greedy``'s ε
(a distance quantile) is estimated on a random subsample for classes above 2,048 samples, drawn from torch's
global generator, so it is reproducible only under the same global seed.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from envs.core import signals
from envs.core.data import DeviceDataset
from envs.core.ledger import CostLedger
from envs.core.reference import ReferenceScores
from envs.core.store import SampleStore
from envs.core.trainer import DivergenceError, Trainer, TrainerConfig
from envs.methods.coreset import class_quotas, random_coreset
from envs.methods.oracle import oracle_priority
from envs.methods.cover import class_members, cover_degrees, greedy_cover_order
from envs.methods.diagnosis import centre_distances
from envs.methods.ranking import keep_top_per_class, seeded_generator


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
    members = class_members(labels, int(labels.max()) + 1)
    dist = centre_distances(features, members)
    scores = torch.empty(len(labels), device=features.device)
    for m in members:
        if len(m):
            scores[m] = -(dist[m] - dist[m].quantile(0.5)).abs()
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


def stratified_per_class(scores: torch.Tensor, labels: torch.Tensor, quotas: list[int], strata: int = 50,
                         prune_hardest: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Coverage-centric selection (CCS, Zheng et al. 2023) within every class: sorted indices.

    Per class: drop the ``prune_hardest`` fraction with the highest ``scores`` (the hardest, where
    mislabelled samples gather), split the rest into ``strata`` bins of equal score width, then fill
    the quota bin by bin from the emptiest: each bin gets an equal share of what is left (all of it
    if it holds fewer), drawn at random with ``generator``. Sparse score ranges get more than their
    share, so the coreset covers the whole range of difficulty instead of its dense middle.
    """
    if not 0.0 <= prune_hardest < 1.0:
        raise ValueError(f"prune_hardest={prune_hardest!r} is invalid; valid range: [0, 1)")
    if isinstance(strata, bool) or not isinstance(strata, int) or strata < 1:
        raise ValueError(f"strata={strata!r} is invalid; valid: an integer >= 1")
    picks = []
    for members, quota in zip(class_members(labels, len(quotas)), quotas):
        s = scores[members].float()
        keep = max(quota, len(s) - int(prune_hardest * len(s)))  # never prune below the quota
        members = members[torch.sort(s, stable=True).indices[:keep]]
        s = scores[members].float().clamp(max=torch.finfo(torch.float32).max)  # inf (never learned): top bin
        width = (s.max() - s.min()) / strata
        bins = ((s - s.min()) / width.clamp(min=torch.finfo(torch.float32).tiny)).long().clamp(max=strata - 1)
        counts = torch.bincount(bins, minlength=strata)
        order = [b for b in torch.argsort(counts, stable=True).tolist() if counts[b] > 0]
        left = quota
        for i, b in enumerate(order):
            in_bin = members[bins == b]
            take = min(len(in_bin), left // (len(order) - i))
            picks.append(in_bin[torch.randperm(len(in_bin), device=in_bin.device, generator=generator)[:take]])
            left -= take
    return torch.cat(picks).sort().values


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
    :param ledger: the proxy runs' cost, summed (:meth:`CostLedger.as_dict` keys), with the reference's
    :param meta: how the scores were made (dataset, num_train, model, score_epochs, num_models, seed, trainer)
    :param losses: ``(N,)`` the proxy's eval-mode training loss after the run, mean over runs
    :param reference: a reference model's scores (:func:`with_reference`) for ``reducible_loss``; None: none
    """

    labels: torch.Tensor
    el2n: torch.Tensor
    grand: torch.Tensor
    forgetting: torch.Tensor
    features: torch.Tensor
    ledger: dict[str, float | int]
    meta: dict[str, Any] = field(default_factory=dict)
    losses: torch.Tensor | None = None
    reference: ReferenceScores | None = None


def with_reference(proxy: ProxyScores, reference: ReferenceScores) -> ProxyScores:
    """``proxy`` with a reference model's scores, its cost added to the ledger (only the methods reading it pay)."""
    ledger = {**proxy.ledger, "reference_samples": proxy.ledger.get("reference_samples", 0) + reference.samples,
              "reference_seconds": proxy.ledger.get("reference_seconds", 0.0) + reference.seconds}
    return dataclasses.replace(proxy, ledger=ledger, reference=reference)


def reducible_scores(proxy: ProxyScores) -> torch.Tensor:
    """The proxy's reducible loss (its loss minus the reference's); a one-line error without a reference."""
    if proxy.reference is None or proxy.losses is None:
        raise ValueError("method='reducible_loss' needs a reference model; valid: run_proxy(..., reference="
                         "envs.core.reference.load_reference(...))")
    return proxy.losses - proxy.reference.loss


def _add_ledgers(*ledgers: dict[str, float | int]) -> dict[str, float | int]:
    return {k: sum(ledger[k] for ledger in ledgers) for k in ledgers[0]}


def _one_proxy_run(dataset: DeviceDataset, model: str, config: TrainerConfig, score_epochs: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float | int],
                                       torch.Tensor]:
    """Train ``score_epochs`` epochs on all data, reading GraNd off each training forward pass; then embed
    (the eval-mode losses come last)."""
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
        losses = torch.nn.functional.cross_entropy(logits, dataset.train_y, reduction="none",
                                                   label_smoothing=config.label_smoothing)
    return el2n, grand / score_epochs, forgetting, features, trainer.ledger.as_dict(), losses


def run_proxy(dataset: DeviceDataset, model: str = "mlp", config: TrainerConfig | None = None, *,
              score_epochs: int = 5, num_models: int = 1, seed: int = 0,
              reference: ReferenceScores | None = None) -> ProxyScores:
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
    :param reference: a reference model's scores (:func:`envs.core.reference.load_reference`) for
        ``reducible_loss``; its cost is added to the ledger
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
    losses = torch.stack([r[5] for r in runs]).mean(dim=0)
    proxy = ProxyScores(dataset.train_y, el2n, grand, forgetting, runs[0][3], _add_ledgers(*(r[4] for r in runs)), meta,
                        losses)
    return proxy if reference is None else with_reference(proxy, reference)


# --- the registry and its entry point -------------------------------------------------------------


def random_selection(labels: torch.Tensor, quotas: list[int], seed: int, stratified: bool = True) -> torch.Tensor:
    """The random control, sorted indices: ``stratified`` draws each class's quota uniformly within the
    class (the ``random`` method: every score tied, so the seeded tie-break of :func:`keep_top_per_class`
    alone decides); otherwise ``sum(quotas)`` samples uniformly over the whole set (``random_uniform``:
    class shares left to chance, :func:`envs.methods.coreset.random_coreset`).

    :param labels: ``(N,)`` training labels
    :param quotas: samples per class (their sum is the coreset size)
    :param seed: seeds the draw
    :param stratified: keep every class's quota exactly
    """
    if not stratified:
        return torch.as_tensor(random_coreset(len(labels), sum(quotas), seed))
    ties = torch.zeros(len(labels), device=labels.device)
    return keep_top_per_class(ties, labels, quotas, seeded_generator(seed, labels.device))


#: a static method's selection: ``(what it reads, labels, per-class quotas, seed) -> sorted kept indices``; what it
#: reads is the proxy scores, None (labels alone) or, for the oracle, the dataset with its provenance
SelectFn = Callable[[ProxyScores | DeviceDataset | None, torch.Tensor, list[int], int], torch.Tensor]
NEEDS = ("labels", "scores", "features", "provenance")


@dataclass(frozen=True)
class StaticBaseline:
    """One registered static method: what it reads and how it picks.

    :param needs: ``labels`` (no proxy run: the labels alone suffice), ``scores`` (the proxy's per-sample
        scores), ``features`` (the proxy's penultimate features) or ``provenance`` (the dataset's, :mod:`envs.core.tasks`)
    :param select: the selection itself (:data:`SelectFn`)
    """

    needs: str
    select: SelectFn

    def __post_init__(self) -> None:
        if self.needs not in NEEDS:
            raise ValueError(f"needs={self.needs!r} is invalid; valid choices: {', '.join(NEEDS)}")


def top_scored(score: Callable[[ProxyScores, torch.Tensor], torch.Tensor], needs: str = "scores") -> StaticBaseline:
    """A method keeping each class's highest ``score(proxy, labels)`` (ties broken by the seed)."""
    def select(proxy: ProxyScores | None, labels: torch.Tensor, quotas: list[int], seed: int) -> torch.Tensor:
        return keep_top_per_class(score(proxy, labels), labels, quotas, seeded_generator(seed, labels.device))
    return StaticBaseline(needs, select)


def greedy(order: Callable[[torch.Tensor, int], torch.Tensor]) -> StaticBaseline:
    """A method taking each class's first picks of the greedy ``order(class features, count)``."""
    def select(proxy: ProxyScores | None, labels: torch.Tensor, quotas: list[int], seed: int) -> torch.Tensor:
        return greedy_per_class(order, proxy.features, labels, quotas)
    return StaticBaseline("features", select)


def stratified(score: Callable[[ProxyScores, torch.Tensor], torch.Tensor]) -> StaticBaseline:
    """Coverage-centric selection (:func:`stratified_per_class`) on ``score(proxy, labels)``."""
    def select(proxy: ProxyScores | None, labels: torch.Tensor, quotas: list[int], seed: int) -> torch.Tensor:
        generator = seeded_generator(seed, labels.device)
        return stratified_per_class(score(proxy, labels), labels, quotas, generator=generator)
    return StaticBaseline("scores", select)


#: The static baselines: name -> :class:`StaticBaseline`. To add one, write its selection (or a score for
#: :func:`top_scored`) and add ``"name": top_scored(lambda proxy, labels: ...)`` here; :func:`select_coreset`,
#: the benchmark and the tests read this dict.
STATIC_BASELINES: dict[str, StaticBaseline] = {
    "random": StaticBaseline("labels", lambda proxy, labels, quotas, seed: random_selection(labels, quotas, seed)),
    "el2n": top_scored(lambda proxy, labels: proxy.el2n),
    "grand": top_scored(lambda proxy, labels: proxy.grand),
    "forgetting": top_scored(lambda proxy, labels: proxy.forgetting),
    "moderate": top_scored(lambda proxy, labels: moderate_scores(proxy.features, labels), "features"),
    "cover": top_scored(lambda proxy, labels: -cover_degrees(proxy.features, class_members(labels, int(labels.max()) + 1))[0],
                        "features"),
    "random_uniform": StaticBaseline(
        "labels", lambda proxy, labels, quotas, seed: random_selection(labels, quotas, seed, stratified=False)),
    "herding": greedy(herding_order),
    "kcenter": greedy(kcenter_order),
    "cover_greedy": greedy(functools.partial(greedy_cover_order, epsilon="quantile:0.01")),
    "ccs": stratified(lambda proxy, labels: proxy.el2n),
    "reducible_loss": top_scored(lambda proxy, labels: reducible_scores(proxy)),
    "oracle": StaticBaseline("provenance", lambda data, labels, quotas, seed: oracle_priority(
        data, seeded_generator(seed, labels.device)).topk(sum(quotas)).indices.sort().values),
}


def label_only_methods() -> tuple[str, ...]:
    """The registered methods that need no proxy run (the labels suffice)."""
    return tuple(m for m, b in STATIC_BASELINES.items() if b.needs == "labels")


@dataclass(frozen=True)
class Coreset:
    """A static selection and what it cost.

    :param indices: sorted unique int64 training-set indices
    :param method: the method's registry name
    :param ratio: the requested fraction of the training set
    :param seed: the selection (tie-break / random) seed
    :param ledger: selection cost: the proxy run(s) plus the selection itself as overhead (``random`` and
        ``random_uniform``: only their own selection time)
    :param num_train: size of the training set the indices refer to
    :param proxy: the proxy's :attr:`ProxyScores.meta` (empty for the random methods, which train no proxy)
    """

    indices: np.ndarray
    method: str
    ratio: float
    seed: int
    ledger: dict[str, float | int]
    num_train: int
    proxy: dict[str, Any] = field(default_factory=dict)

    def meta(self, **extra: Any) -> dict[str, Any]:
        """Metadata for :func:`envs.methods.coreset.save_coreset`; pass the data options that rebuild the training
        set (``dataset``, ``train_size``, ``data_seed``, ``noise``, ...) as ``extra``."""
        return {**self.proxy, "method": self.method, "num_train": self.num_train, "ratio": self.ratio,
                "seed": self.seed, "ledger": self.ledger, **extra}


def select_coreset(method: str, source: ProxyScores | DeviceDataset | torch.Tensor, ratio: float, seed: int = 0) -> Coreset:
    """Select a static coreset of ``coreset_target_size(N, ratio)`` samples, per class in proportion.

    :param method: a name in :data:`STATIC_BASELINES`
    :param source: the scores of :func:`run_proxy`; ``random`` and ``random_uniform`` also accept just the
        ``(N,)`` labels; ``oracle`` takes the dataset (its provenance)
    :param ratio: fraction of the training set to keep, in (0, 1)
    :param seed: seeds the tie-break (and the whole draw of ``random`` and ``random_uniform``)
    """
    if method not in STATIC_BASELINES:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(STATIC_BASELINES)}")
    baseline = STATIC_BASELINES[method]
    if baseline.needs == "provenance":
        if not isinstance(source, DeviceDataset):
            raise ValueError(f"method={method!r} reads the training set's provenance; valid: "
                             "select_coreset(method, <the DeviceDataset>, ratio)")
        proxy, reads, labels = None, source, source.train_y
    else:
        proxy = source if isinstance(source, ProxyScores) else None
        if proxy is None and baseline.needs != "labels":
            raise ValueError(f"method={method!r} needs the ProxyScores of run_proxy(); labels alone serve only "
                             f"{', '.join(label_only_methods())}")
        reads, labels = proxy, proxy.labels if proxy is not None else torch.as_tensor(source)
    label_only = baseline.needs in ("labels", "provenance")  # no proxy run to pay for
    selection = CostLedger(sync_cuda=labels.device.type == "cuda")
    with selection.timed("overhead"):
        kept = baseline.select(reads, labels, class_quotas(labels, ratio), seed)
        indices = kept.cpu().numpy().astype(np.int64)
    cost = selection.as_dict() if label_only else _add_ledgers(proxy.ledger, selection.as_dict())
    meta = dict(proxy.meta) if proxy is not None and not label_only else {}
    return Coreset(indices, method, float(ratio), seed, cost, len(labels), meta)
