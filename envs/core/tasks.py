"""Named data problems (tasks): what a training set hides, and where each sample came from.

Why: on clean, balanced, de-duplicated data no selection method here beats random at equal cost
(BENCHMARKS.md), and the literature says the same. The methods that do win, win on data with problems:
label noise, duplicates, class imbalance. A task turns any dataset (named, ImageFolder or your own) into
one such problem, seeded, and records each sample's provenance so that every method can be scored on
what it kept (:func:`problem_shares`) and an oracle can read what the data hides.

Task specs (the registry :data:`TASKS`; options after colons, in any order):

``clean``                          the data as loaded
``noisy[:sym|asym][:rate]``        exactly ``round(rate * N)`` labels corrupted (default ``sym``, 0.4):
                                   ``sym`` uniform over the other classes, ``asym`` class ``c -> c + 1 mod C``
``redundant[:fraction][:exact]``   within every class, ``fraction`` of the samples (default 0.5) replaced by
                                   copies of a small seeded pool (:data:`POOL_SHARE` of the class): shifted by
                                   up to one pixel (images; other inputs: a little Gaussian noise, token ids:
                                   exact), or exact copies with ``exact``
``imbalanced[:factor]``            long-tailed class sizes as CIFAR-10-LT: class ``c`` keeps
                                   ``int(n_max * factor ** (-c / (C - 1)))`` samples (``n_max``: the smallest
                                   class's size; default factor 100, any value >= 1); the test set stays balanced
``mixed``                          ``imbalanced:10``, then ``redundant:0.3``, then ``noisy:sym:0.2``

A task applies after the ``train_size`` subset, in the order imbalance, duplicates, noise (so a copy's
label may be corrupted like any other), and before a holdout (:func:`envs.core.data.load_dataset`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

NOISE_TYPES = ("symmetric", "asymmetric")
NOISE_KINDS = {"sym": "symmetric", "asym": "asymmetric"}
#: the pool of a redundant task: this share of each class (at least one sample) is copied
POOL_SHARE = 0.05
MAX_REDUNDANT = 0.9
TASK_SPECS = ("clean", "noisy[:sym|asym][:rate]", "redundant[:fraction][:exact]", "imbalanced[:factor]", "mixed")
#: the problems :func:`problem_shares` reports
PROBLEMS = ("noisy", "duplicate", "minority")


@dataclass(frozen=True)
class Task:
    """A parsed task spec: what is done to the training set (all off: ``clean``).

    :param name: the registry name (``clean``, ``noisy``, ``redundant``, ``imbalanced``, ``mixed``)
    :param noise: ``symmetric``, ``asymmetric`` or None
    :param noise_rate: fraction of corrupted labels
    :param redundant: fraction of each class replaced by copies of the pool
    :param exact: the copies are exact (else augmented near-duplicates)
    :param imbalance: the imbalance factor (1: balanced)
    """

    name: str
    noise: str | None = None
    noise_rate: float = 0.0
    redundant: float = 0.0
    exact: bool = False
    imbalance: float = 1.0


def _invalid(spec: str, what: str) -> ValueError:
    return ValueError(f"task={spec!r}: {what}; valid tasks: {', '.join(TASK_SPECS)}")


def _number(spec: str, text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _invalid(spec, f"{text!r} is no {what}") from None


def _noisy(spec: str, options: list[str]) -> Task:
    kind, rate = "symmetric", 0.4
    for o in options:
        if o in NOISE_KINDS:
            kind = NOISE_KINDS[o]
        else:
            rate = _number(spec, o, "noise kind (sym, asym) or rate")
            if not 0.0 < rate < 1.0:
                raise _invalid(spec, f"noise rate {rate!r} is outside (0, 1)")
    return Task("noisy", noise=kind, noise_rate=rate)


def _redundant(spec: str, options: list[str]) -> Task:
    fraction, exact = 0.5, False
    for o in options:
        if o == "exact":
            exact = True
        else:
            fraction = _number(spec, o, "fraction or 'exact'")
            if not 0.0 < fraction <= MAX_REDUNDANT:
                raise _invalid(spec, f"redundant fraction {fraction!r} is outside (0, {MAX_REDUNDANT}]")
    return Task("redundant", redundant=fraction, exact=exact)


def _imbalanced(spec: str, options: list[str]) -> Task:
    if len(options) > 1:
        raise _invalid(spec, "imbalanced takes one option, the factor")
    factor = _number(spec, options[0], "imbalance factor") if options else 100.0
    if not factor >= 1.0 or factor == float("inf"):
        raise _invalid(spec, f"imbalance factor {factor!r} is invalid (a number >= 1)")
    return Task("imbalanced", imbalance=factor)


def _no_options(name: str, task: Task) -> Callable[[str, list[str]], Task]:
    def parse(spec: str, options: list[str]) -> Task:
        if options:
            raise _invalid(spec, f"{name} takes no options")
        return task
    return parse


#: The tasks: name -> parser of its options (``(spec, options) -> Task``). To add one, give it a parser here
#: and its effect in :func:`apply_task`.
TASKS: dict[str, Callable[[str, list[str]], Task]] = {
    "clean": _no_options("clean", Task("clean")),
    "noisy": _noisy,
    "redundant": _redundant,
    "imbalanced": _imbalanced,
    "mixed": _no_options("mixed", Task("mixed", noise="symmetric", noise_rate=0.2, redundant=0.3, imbalance=10.0)),
}


def parse_task(spec: str) -> Task:
    """The :class:`Task` of a spec such as ``noisy:asym:0.2``; a one-line ``ValueError`` naming the valid
    tasks otherwise."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"task={spec!r} is invalid; valid tasks: {', '.join(TASK_SPECS)}")
    name, *options = spec.strip().split(":")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_SPECS)}")
    return TASKS[name](spec, options)


def task_slug(spec: str) -> str:
    """A spec as a file-name part (``imbalanced:100`` -> ``imbalanced-100``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", spec)


def corrupt_labels(labels: np.ndarray, num_classes: int, kind: str, rate: float, seed: int) -> np.ndarray:
    """Return noisy labels: exactly ``round(rate * N)`` samples get a wrong label.

    ``symmetric``: the new label is uniform over the other classes.
    ``asymmetric``: class ``c`` becomes ``(c + 1) mod C`` (a fixed class-to-class confusion; the
    usual CIFAR-10 pairs such as truck->automobile are one instance of such a map).
    """
    if kind not in NOISE_TYPES:
        raise ValueError(f"unknown label noise {kind!r}; valid choices: {', '.join(NOISE_TYPES)}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"noise_rate={rate} is outside [0, 1)")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    flip = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
    if kind == "symmetric":
        noisy[flip] = (labels[flip] + rng.integers(1, num_classes, size=len(flip))) % num_classes
    else:
        noisy[flip] = (labels[flip] + 1) % num_classes
    return noisy


@dataclass
class TaskData:
    """A training set after its task, with each sample's provenance.

    :param x: inputs ``(N, ...)``
    :param y: training labels (noisy where the task corrupted them)
    :param y_true: the true labels
    :param duplicate_of: ``(N,)`` int64: the pool sample a copy was made from (an index into ``x``), -1 for
        samples that are no copy
    :param minority: ``(N,)`` bool: the sample's class is among the smaller half of the class sizes (all
        False on balanced tasks)
    """

    x: np.ndarray
    y: np.ndarray
    y_true: np.ndarray
    duplicate_of: np.ndarray
    minority: np.ndarray

    def take(self, keep: np.ndarray) -> TaskData:
        """The samples ``keep`` (sorted indices), with ``duplicate_of`` renumbered (-1 where the source is gone)."""
        position = np.full(len(self.y), -1, dtype=np.int64)
        position[keep] = np.arange(len(keep))
        dup = self.duplicate_of[keep]
        dup = np.where(dup >= 0, position[np.maximum(dup, 0)], -1)
        return TaskData(self.x[keep], self.y[keep], self.y_true[keep], dup, self.minority[keep])


def long_tail_sizes(n_max: int, num_classes: int, factor: float) -> np.ndarray:
    """CIFAR-10-LT's class sizes: ``int(n_max * factor ** (-c / (C - 1)))`` for class ``c``."""
    c = np.arange(num_classes)
    return (n_max * factor ** (-c / max(num_classes - 1, 1))).astype(np.int64)


def _imbalance(data: TaskData, num_classes: int, factor: float, rng: np.random.Generator, name: str) -> TaskData:
    counts = np.bincount(data.y_true, minlength=num_classes)
    sizes = long_tail_sizes(int(counts.min()), num_classes, factor)
    if sizes.min() < 1:
        raise ValueError(f"task imbalanced:{factor:g} leaves a class of {name!r} with no samples (the smallest class has "
                         f"{counts.min()}); valid: a factor of at most {counts.min():g}, or a larger train_size")
    order = rng.permutation(len(data.y_true))
    rank = np.empty_like(order)  # each sample's rank within its class, in a seeded random order
    by_class = order[np.argsort(data.y_true[order], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[by_class] = np.arange(len(by_class)) - np.repeat(starts, counts)
    out = data.take(np.flatnonzero(rank < sizes[data.y_true]))
    smaller_half = np.argsort(sizes, kind="stable")[: num_classes // 2]
    out.minority = np.isin(out.y_true, smaller_half)
    return out


def _near_copies(x: np.ndarray, exact: bool, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``x``: exact, or images shifted by up to one pixel (reflect padding), other float inputs with
    Gaussian noise of 1% of their spread, token ids exact."""
    if exact or not np.issubdtype(x.dtype, np.floating) and x.dtype != np.uint8:
        return x.copy()
    if x.dtype == np.uint8 and x.ndim == 4:
        from envs.core.data import Augmentation  # data.py imports this module: read its augmentation lazily

        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        shifted = Augmentation(crop_padding=1)(torch.from_numpy(x).float(), generator)
        return shifted.round().to(torch.uint8).numpy()
    return (x + rng.normal(0.0, 0.01 * float(x.std()) + 1e-12, size=x.shape)).astype(x.dtype)


def _duplicate(data: TaskData, num_classes: int, fraction: float, exact: bool, rng: np.random.Generator) -> TaskData:
    """Within each class, ``fraction`` of the samples become copies of a pool (the rest of the class stays)."""
    sources, targets = [], []
    for c in range(num_classes):
        members = rng.permutation(np.flatnonzero(data.y_true == c))
        pool = max(1, int(round(POOL_SHARE * len(members))))
        copies = min(int(round(fraction * len(members))), len(members) - pool)
        sources.append(members[:pool][np.arange(copies) % pool])  # every pool sample copied about equally often
        targets.append(members[pool:pool + copies])
    src, dst = np.concatenate(sources).astype(np.int64), np.concatenate(targets).astype(np.int64)
    x = data.x.copy()
    x[dst] = _near_copies(data.x[src], exact, rng)
    y, y_true, dup = data.y.copy(), data.y_true.copy(), data.duplicate_of.copy()
    y[dst], y_true[dst], dup[dst] = data.y[src], data.y_true[src], src
    return TaskData(x, y, y_true, dup, data.minority)


def apply_task(task: Task, x: np.ndarray, y: np.ndarray, num_classes: int, seed: int, name: str = "the dataset") -> TaskData:
    """Apply ``task`` to a training set ``(x, y)``, seeded by ``seed``: imbalance, then duplicates, then noise.

    :param task: a parsed spec (:func:`parse_task`)
    :param x: inputs
    :param y: true labels
    :param num_classes: classes of the dataset
    :param seed: seeds every random choice of the task
    :param name: the dataset, named in errors
    """
    n = len(y)
    data = TaskData(x, y.copy(), y.copy(), np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool))
    if task.imbalance > 1.0:
        data = _imbalance(data, num_classes, task.imbalance, np.random.default_rng([seed, 1]), name)
    if task.redundant > 0.0:
        data = _duplicate(data, num_classes, task.redundant, task.exact, np.random.default_rng([seed, 2]))
    if task.noise is not None:
        data.y = corrupt_labels(data.y_true, num_classes, task.noise, task.noise_rate, seed)
    return data


def problem_shares(noisy: torch.Tensor, duplicate_of: torch.Tensor, minority: torch.Tensor,
                   weight: torch.Tensor) -> dict[str, float]:
    """What a method kept of each problem, beside its base rate: ``kept_<problem>`` is the ``weight``-weighted
    share of noisy samples, duplicates (copies of a pool sample) and minority-class samples among the kept
    ones, ``base_<problem>`` their share of the training set.

    :param noisy: ``(N,)`` bool, corrupted labels
    :param duplicate_of: ``(N,)`` int64, -1 for samples that are no copy
    :param minority: ``(N,)`` bool, minority-class samples
    :param weight: ``(N,)`` how much of each sample was kept (back-propagated count x loss weight, or a 0/1
        selection mask)
    """
    w = weight.float()
    total = w.sum().clamp_min(torch.finfo(torch.float32).tiny)
    masks = torch.stack([noisy, duplicate_of >= 0, minority]).float()
    values = torch.cat([(masks * w).sum(dim=1) / total, masks.mean(dim=1)]).tolist()
    return dict(zip([f"{k}_{p}" for k in ("kept", "base") for p in PROBLEMS], values))
