"""ε-cover degrees (RL-Selector, docs/methods.md B.3 Eq. 6) as pure, chunked tensor functions.

Why chunked: the degree of a sample needs its distance to every class-mate, i.e. an ``N_k x N_k``
matrix per class (10 GB for a 50,000-sample class in float32). Here distances are produced one
block of rows at a time against the whole class, with the block height derived from a byte
budget, so the extra memory is ``chunk_bytes`` plus two ``N_k x D`` copies of the class's features
(gathered, then shifted) and ``O(N_k)`` outputs, whatever the class size (measured with
``python -m experiments.bench_cover``).

Definitions (L2 distances between features of the same class ``k`` with ``N_k`` samples):

* degree ``c_i = (1 / (N_k - 1)) * #{j != i : ||f_i - f_j|| <= eps_k}``, in [0, 1]; a class of one
  sample has degree 0 (no class-mate can cover it). A pair at distance exactly ``eps`` counts as
  covered; distances are compared as ``sqrt(d^2) <= eps`` with the same float32 ``sqrt`` that the
  ``eps`` rules use, so a quantile ``eps`` equal to some pair's distance counts that pair, and
  integer-valued features give exact ties.
* ``eps_k`` follows an :class:`EpsilonRule`:

  ``"mean"`` (default, hyper-parameter free) the mean off-diagonal distance of class ``k``,
      computed exactly from chunked row sums (float64 accumulation);
  ``"median"`` / ``"quantile:<q>"`` the ``q``-quantile of the off-diagonal distances. An exact
      quantile needs all ``N_k^2`` distances at once, so it is computed on a seeded random subsample
      of at most ``quantile_samples`` class members (all pairs among them, linear interpolation as
      ``numpy.quantile``). It is exact when ``N_k <= quantile_samples``; otherwise its rank among all
      pairs is off by a statistical error of order ``1 / sqrt(quantile_samples)``: with the default
      2,048 the measured error stayed below 1.3 percentage points (20 draws on 3,000 and 10 on 8,000
      Gaussian samples); the tests allow 2;
  a positive float: the same fixed ``eps`` for every class.

Cost: ``O(N_k^2 D)`` per pass; the ``"mean"`` rule needs ``eps_k`` before any count, so it makes two
passes over the blocks (one for the mean, one for the counts), the other rules one.

Numerics: squared distances use ``||a||^2 + ||b||^2 - 2 a.b`` (one matmul per block) after shifting
the class by one of its members, which keeps norms at the scale of the class's spread (limits
cancellation) and keeps integer features integer. Diagonal entries are set to exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Iterator

import torch

from envs.methods.ranking import interpolated_quantile

EPSILON_RULES = ("mean", "median", "quantile:<q>")
DEFAULT_CHUNK_BYTES = 256 * 2**20
DEFAULT_QUANTILE_SAMPLES = 2048
# A row block is one float32 matrix (4 B/entry) that every later operation updates in place;
# budgeting 8 B/entry leaves headroom for the allocator and the per-row outputs.
BYTES_PER_ENTRY = 8


@dataclass(frozen=True)
class EpsilonRule:
    """How ``eps_k`` is chosen: ``kind`` is ``"fixed"`` (``value`` = eps), ``"mean"`` (``value``
    unused) or ``"quantile"`` (``value`` = q; the median is q = 0.5). ``name`` is the spec it came from."""

    kind: str
    value: float
    name: str

    def __str__(self) -> str:
        return self.name


def parse_epsilon(spec: str | float | EpsilonRule) -> EpsilonRule:
    """Validate an ``epsilon`` option: ``"mean"``, ``"median"``, ``"quantile:<q>"`` (0 < q < 1) or a finite float > 0."""
    valid = "a rule name ('mean', 'median', 'quantile:<q>' with 0 < q < 1) or a finite number > 0"
    if isinstance(spec, EpsilonRule):
        return spec
    if isinstance(spec, Real) and not isinstance(spec, bool):
        value = float(spec)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"epsilon={spec!r} is invalid; valid: {valid}")
        return EpsilonRule("fixed", value, repr(value))
    if isinstance(spec, str):
        if spec == "mean":
            return EpsilonRule("mean", math.nan, spec)
        if spec == "median":
            return EpsilonRule("quantile", 0.5, spec)
        if spec.startswith("quantile:"):
            try:
                q = float(spec.split(":", 1)[1])
            except ValueError:
                q = math.nan
            if 0.0 < q < 1.0:
                return EpsilonRule("quantile", q, spec)
    raise ValueError(f"epsilon={spec!r} is invalid; valid: {valid}")


def chunk_rows(num_rows: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per block so that a ``rows x num_rows`` block stays within ``chunk_bytes`` (at least 1 row)."""
    if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes={chunk_bytes!r} is invalid; valid: an integer > 0")
    return max(1, min(num_rows, chunk_bytes // (BYTES_PER_ENTRY * max(num_rows, 1))))


def _sq_distance_blocks(feats: torch.Tensor, chunk_bytes: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)``: squared distances of rows ``start:start+r`` to all rows, diagonal 0."""
    f = (feats - feats[:1]).float()  # shift by a member: distances unchanged, norms small
    sq = (f * f).sum(dim=1)
    n = f.shape[0]
    rows = chunk_rows(n, chunk_bytes)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = torch.addmm(sq[None, :], f[start:stop], f.T, alpha=-2.0)
        block.add_(sq[start:stop, None]).clamp_(min=0.0)
        r = torch.arange(stop - start, device=f.device)
        block[r, r + start] = 0.0
        yield start, block


def mean_pairwise_distance(feats: torch.Tensor, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Exact mean L2 distance over ordered pairs ``i != j`` (0-d float32 tensor; 0 for fewer than 2 rows)."""
    n = feats.shape[0]
    if n < 2:
        return feats.new_zeros((), dtype=torch.float32)
    total = torch.zeros((), dtype=torch.float64, device=feats.device)
    for _, block in _sq_distance_blocks(feats, chunk_bytes):
        total += block.sqrt_().sum(dim=1).double().sum()
    return (total / (n * (n - 1))).float()


def pairwise_distance_quantile(feats: torch.Tensor, q: float, max_samples: int = DEFAULT_QUANTILE_SAMPLES,
                               generator: torch.Generator | None = None) -> torch.Tensor:
    """``q``-quantile of the distances ``i < j`` among at most ``max_samples`` rows (a seeded subsample
    drawn with ``generator`` when there are more). 0-d float32 tensor; 0 for fewer than 2 rows."""
    if max_samples < 2:
        raise ValueError(f"quantile_samples={max_samples!r} is invalid; valid: an integer >= 2")
    n = feats.shape[0]
    if n < 2:
        return feats.new_zeros((), dtype=torch.float32)
    if n > max_samples:
        feats = feats[torch.randperm(n, device=feats.device, generator=generator)[:max_samples]]
    block = next(_sq_distance_blocks(feats, 2**62))[1]  # one block: at most max_samples^2 entries
    i, j = torch.triu_indices(len(feats), len(feats), offset=1, device=feats.device)
    return interpolated_quantile(block[i, j].sqrt_(), q)


def class_epsilon(feats: torch.Tensor, rule: EpsilonRule, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                  quantile_samples: int = DEFAULT_QUANTILE_SAMPLES,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``eps`` of one class's features under ``rule`` (0-d float32 tensor on the features' device)."""
    if rule.kind == "fixed":
        return feats.new_full((), rule.value, dtype=torch.float32)
    if rule.kind == "mean":
        return mean_pairwise_distance(feats, chunk_bytes)
    return pairwise_distance_quantile(feats, rule.value, quantile_samples, generator)


def class_cover_degrees(feats: torch.Tensor, eps: torch.Tensor | float,
                        chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """Degrees ``c_i`` of the rows of one class's ``(N_k, D)`` features at radius ``eps`` (float32 ``(N_k,)``)."""
    n = feats.shape[0]
    out = torch.zeros(n, dtype=torch.float32, device=feats.device)
    if n < 2:
        return out
    eps = torch.as_tensor(eps, dtype=torch.float32, device=feats.device)
    for start, block in _sq_distance_blocks(feats, chunk_bytes):
        # in place: the block becomes 1.0/0.0 and float32 row sums count exactly (n < 2**24)
        counts = block.sqrt_().le_(eps).sum(dim=1) - 1  # the diagonal (exactly 0) is always counted
        out[start:start + len(block)] = counts / (n - 1)
    return out


def class_members(labels: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """Indices of each class's samples (ascending), computed once per dataset (one host sync)."""
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=num_classes).tolist()
    return list(order.split(counts))


def cover_degrees(features: torch.Tensor, members: list[torch.Tensor], epsilon: str | float | EpsilonRule = "mean",
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES, quantile_samples: int = DEFAULT_QUANTILE_SAMPLES,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ε-cover degree of every sample within its class.

    :param features: ``(N, D)`` features (any float dtype; computed in float32)
    :param members: per class, the indices of its samples (see :func:`class_members`)
    :param epsilon: an :class:`EpsilonRule` or its spec (see :func:`parse_epsilon`)
    :param chunk_bytes: memory budget of one distance block
    :param quantile_samples: subsample size of the median/quantile rules
    :param generator: draws the quantile rules' subsamples (seed it for reproducible degrees)
    :return: degrees ``(N,)`` float32 in [0, 1] and the per-class ``eps`` ``(K,)`` float32
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    rule = parse_epsilon(epsilon)
    degrees = torch.zeros(features.shape[0], dtype=torch.float32, device=features.device)
    eps = torch.zeros(len(members), dtype=torch.float32, device=features.device)
    for k, idx in enumerate(members):
        f = features[idx]
        eps[k] = class_epsilon(f, rule, chunk_bytes, quantile_samples, generator)
        degrees[idx] = class_cover_degrees(f, eps[k], chunk_bytes)
    return degrees, eps


def rank_within_class(values: torch.Tensor, members: list[torch.Tensor]) -> torch.Tensor:
    """Each value's rank among its class-mates, as the fraction of them with a strictly smaller value
    (in [0, 1]; equal values share the lowest rank; 0 for a class of one). One sort per class."""
    out = torch.zeros_like(values, dtype=torch.float32)
    for idx in members:
        if len(idx) < 2:
            continue
        v = values[idx]
        out[idx] = torch.searchsorted(v.sort().values, v, side="left").float() / (len(idx) - 1)
    return out


def cover_adjacency(feats: torch.Tensor, eps: torch.Tensor | float, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """``(N_k, N_k)`` bool matrix: ``[i, j]`` is True when ``||f_i - f_j|| <= eps`` (the diagonal too).
    Built from the same chunked distance blocks as the degrees; it holds ``N_k^2`` bytes."""
    n = feats.shape[0]
    adj = torch.empty(n, n, dtype=torch.bool, device=feats.device)
    eps = torch.as_tensor(eps, dtype=torch.float32, device=feats.device)
    for start, block in _sq_distance_blocks(feats, chunk_bytes):
        adj[start:start + len(block)] = block.sqrt_().le_(eps)
    return adj


def greedy_cover_order(feats: torch.Tensor, count: int, epsilon: str | float | EpsilonRule = "quantile:0.1",
                       chunk_bytes: int = DEFAULT_CHUNK_BYTES, quantile_samples: int = DEFAULT_QUANTILE_SAMPLES,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The first ``count`` picks (positions into one class's ``(N_k, D)`` features) of greedy ε-cover.

    Why: docs/methods.md B.2 (Lemma 2) wants every pruned sample ε-covered by a kept one. Keeping the
    smallest degrees does not do that (it keeps the class's outskirts); the greedy set cover does.
    Each pick is the unpicked sample that ε-covers the most not yet covered samples (itself
    included; ties to the lowest position). When everything is covered and the budget is not spent,
    a new round starts with every unpicked sample uncovered again, so a large budget spreads over
    the class in proportion to its density. ``eps_k`` follows ``epsilon`` (:func:`parse_epsilon`).

    Cost: the class's adjacency matrix (``N_k^2`` bytes), then per pick one argmax and an update of
    the gains by the rows of the newly covered samples (one host sync per pick: that set's size is
    data-dependent); ``O(N_k^2)`` per round in all.
    """
    n = feats.shape[0]
    order = torch.empty(count, dtype=torch.long, device=feats.device)
    if count == 0:
        return order
    eps = class_epsilon(feats, parse_epsilon(epsilon), chunk_bytes, quantile_samples, generator)
    adj = cover_adjacency(feats, eps, chunk_bytes)
    taken = torch.zeros(n, dtype=torch.bool, device=feats.device)
    uncovered = torch.ones(n, dtype=torch.bool, device=feats.device)
    gains = adj.sum(dim=1)
    for t in range(count):
        masked = gains.masked_fill(taken, -1)
        j = int(masked.argmax())
        if masked[j] <= 0:  # all covered: a new round over the unpicked samples
            uncovered = ~taken
            gains = (adj & uncovered[None, :]).sum(dim=1)
            j = int(gains.masked_fill(taken, -1).argmax())
        order[t] = j
        taken[j] = True
        newly = adj[j] & uncovered
        uncovered &= ~newly
        gains -= adj[newly].sum(dim=0)  # adj is symmetric: rows of the newly covered
    return order
