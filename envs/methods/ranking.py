"""Ranking primitives shared by every selection method: interpolated quantile, seeded tie-break order,
per-class top-k.

Why one module: the static baselines, CoverSelect's final coreset, Data Agent's selector and the
rewards all rank samples. Written once here, "equal scores in a seeded random order" and "the
``q`` quantile" mean the same thing everywhere, and a fix reaches every user.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def interpolated_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q`` quantile of a 1-D tensor with linear interpolation (``numpy.quantile``'s default).

    One sort and two reads: several times cheaper than ``torch.quantile``'s general path on the
    small batches of every env step, and the positions are host integers, so no device sync.

    :param values: a non-empty 1-D tensor
    :param q: the quantile, in [0, 1]
    """
    s = values.sort().values
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed`` (the tie-break source of a seeded selection)."""
    return torch.Generator(device=device).manual_seed(seed)


def tie_broken_order(values: torch.Tensor, descending: bool = True, generator: torch.Generator | None = None,
                     key: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Every position of ``values``, sorted, equal values in a random order drawn with ``generator``.

    A random permutation then a stable sort: equal keys keep the permutation's order, so ties are
    broken at random and nothing else is.

    :param values: 1-D tensor to rank
    :param descending: highest first
    :param generator: draws the tie-break permutation (seed it for a reproducible order)
    :param key: maps the permuted values to the sort keys (called after the permutation is drawn,
        so a key that draws random numbers from ``generator`` draws them after it)
    """
    perm = torch.randperm(len(values), device=values.device, generator=generator)
    keys = values[perm] if key is None else key(values[perm])
    return perm[torch.sort(keys, descending=descending, stable=True).indices]


def keep_top_per_class(scores: torch.Tensor, labels: torch.Tensor, quotas: list[int],
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Sorted indices of the ``quotas[k]`` highest-scored samples of every class ``k``; equal scores in
    a random order drawn with ``generator``. One global sort by score, then a stable sort by class.

    :param scores: ``(N,)`` comparable scores (no NaN)
    :param labels: ``(N,)`` int64 class of each sample
    :param quotas: samples to keep per class
    :param generator: draws the tie-break permutation
    """
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; every sample needs a comparable score")
    n = len(labels)
    by_score = tie_broken_order(scores, descending=True, generator=generator)
    by_class = by_score[torch.sort(labels[by_score], stable=True).indices]
    sizes = torch.bincount(labels, minlength=len(quotas))
    starts = torch.cumsum(sizes, 0) - sizes
    y = labels[by_class]
    rank_in_class = torch.arange(n, device=labels.device) - starts[y]
    keep = by_class[rank_in_class < torch.tensor(quotas, device=labels.device)[y]]
    return keep.sort().values
