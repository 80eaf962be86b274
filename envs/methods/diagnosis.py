"""What a coreset keeps: where its samples sit in their class, how balanced it is, how noisy.

Why: a coreset method can lose to random for reasons its accuracy alone does not show. Keeping the
smallest ε-cover degrees, for instance, keeps the samples farthest from their class-mates. These
numbers make that visible, on one shared reference embedding (the static suite uses the proxy
run's eval-mode features, so every method of a seed is measured in the same space).

Per class ``k``: centre ``mu_k`` = mean feature, distance ``r_i = ||f_i - mu_k||``. For a uniform
random coreset the expected values are: ``outlier_share`` 0.10, ``core_share`` 0.10,
``centre_distance`` the class average (1.0 after the normalisation below), ``class_tv`` about 0.
"""

from __future__ import annotations

import numpy as np
import torch

from envs.methods.cover import class_members


def centre_distances(features: torch.Tensor, members: list[torch.Tensor]) -> torch.Tensor:
    """``||f_i - mu_k||`` of every sample to its class's mean feature (float32 ``(N,)``)."""
    out = torch.zeros(features.shape[0], dtype=torch.float32, device=features.device)
    for idx in members:
        if len(idx):
            f = features[idx].float()
            out[idx] = (f - f.mean(dim=0)).norm(dim=1)
    return out


@torch.no_grad()
def diagnose_coreset(indices: np.ndarray | torch.Tensor, features: torch.Tensor, labels: torch.Tensor,
                     noisy_mask: torch.Tensor | None = None, tail: float = 0.1) -> dict[str, float]:
    """Describe the coreset ``indices`` of a training set with ``features`` and ``labels``.

    :param indices: training-set indices of the coreset
    :param features: ``(N, D)`` reference features of all training samples
    :param labels: ``(N,)`` training labels (the noisy ones, if any: those the selection saw)
    :param noisy_mask: ``(N,)`` bool, True where the label was corrupted (``None`` or all False: no noise)
    :param tail: the share of each class counted as its outskirts and as its core
    :return: ``outlier_share`` (kept samples among the ``tail`` farthest from their class centre),
        ``core_share`` (among the ``tail`` nearest), ``centre_distance`` (mean distance to the class
        centre over the coreset, each divided by its class's mean distance), ``class_tv`` (total variation
        distance between the coreset's class shares and the training set's, in [0, 1]),
        ``min_class_share`` (smallest ratio of a class's coreset share to its training share) and,
        with noise, ``noisy_share`` (fraction of the coreset with a corrupted label)
    """
    if not 0.0 < tail < 0.5:
        raise ValueError(f"tail={tail!r} is invalid; valid range: (0, 0.5)")
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=labels.device)
    num_classes = int(labels.max()) + 1
    members = class_members(labels, num_classes)
    dist = centre_distances(features, members)
    outer = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    inner = torch.zeros_like(outer)
    relative = torch.zeros_like(dist)
    for m in members:
        if len(m) == 0:
            continue
        d = dist[m]
        outer[m] = d > d.quantile(1.0 - tail)
        inner[m] = d < d.quantile(tail)
        relative[m] = d / d.mean().clamp(min=torch.finfo(torch.float32).tiny)
    train_share = torch.bincount(labels, minlength=num_classes).float() / len(labels)
    core_share = torch.bincount(labels[idx], minlength=num_classes).float() / max(len(idx), 1)
    present = train_share > 0
    out = {"outlier_share": outer[idx].float().mean(), "core_share": inner[idx].float().mean(),
           "centre_distance": relative[idx].mean(), "class_tv": 0.5 * (core_share - train_share).abs().sum(),
           "min_class_share": (core_share[present] / train_share[present]).min()}
    if noisy_mask is not None and bool(noisy_mask.any()):
        out["noisy_share"] = noisy_mask[idx].float().mean()
    return {k: float(v) for k, v in out.items()}
