"""Per-sample signals as pure tensor functions (no state).

Why: the state, the rewards and the baselines all read the same few per-sample quantities;
computing them in one place from one forward pass keeps every method on equal terms.
"""

from __future__ import annotations

import math

import torch


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Predictive entropy in nats, per sample."""
    logp = torch.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy / log C, in [0, 1]: Data Agent's uncertainty signal H~."""
    return entropy(logits) / math.log(logits.shape[1])


def confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax probability of the (training) label."""
    return torch.softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Label probability minus the largest other class probability, in [-1, 1]."""
    p = torch.softmax(logits.float(), dim=1)
    p_label = p.gather(1, labels[:, None]).squeeze(1)
    p_other = p.scatter(1, labels[:, None], -1.0).max(dim=1).values
    return p_label - p_other


def el2n(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Error L2 norm ||softmax - onehot||_2 (Paul et al. 2021)."""
    p = torch.softmax(logits.float(), dim=1)
    return (p - torch.nn.functional.one_hot(labels, logits.shape[1]).float()).norm(dim=1)
