"""What one observation row says about a sample: the model's features, the store's signals, or both.

Why one module: ``DataAgent-v0``, ``CoverSelect-v0`` and the drop-in Selector (:mod:`agents.selector`) must
build the same row from the same forward pass, or a policy trained in an env reads something else when it is
deployed in a user's loop.
"""

from __future__ import annotations

import torch

from envs.core.store import SampleStore, signal_names

#: what an observation row holds: the model's penultimate features, the store's signals, or both
STATES = ("features", "signals", "both")


def check_state(state: str) -> None:
    """A one-line error unless ``state`` is one of :data:`STATES`."""
    if state not in STATES:
        raise ValueError(f"state={state!r} is invalid; valid choices: {', '.join(STATES)}")


def state_dim(state: str, feature_dim: int, reference: bool) -> int:
    """Columns of a row for ``state``: the signals gain the reference's columns with a ``reference`` model.

    :param state: one of :data:`STATES`
    :param feature_dim: the model's penultimate feature size
    :param reference: whether the store holds a reference model's scores (:func:`envs.core.store.signal_names`)
    """
    check_state(state)
    num_signals = len(signal_names(reference))
    return {"features": feature_dim, "signals": num_signals, "both": feature_dim + num_signals}[state]


def batch_state(state: str, features: torch.Tensor | None, store: SampleStore | None, idx: torch.Tensor,
                scores: torch.Tensor, epoch: int, progress: float, selecting: bool, num_classes: int) -> torch.Tensor:
    """The rows of a forwarded batch, ``(len(idx), state_dim)``, on the device.

    :param state: one of :data:`STATES`
    :param features: the batch's penultimate features (unused, may be None, for ``signals``)
    :param store: the sample store the pass just updated (unused, may be None, for ``features``)
    :param idx: the batch's training-set indices
    :param scores: every training sample's current score in [0, 1]
    :param epoch: the current epoch
    :param progress: the share of training done, in [0, 1]
    :param selecting: whether the current epoch selects (pruned, or scored candidates)
    :param num_classes: the dataset's classes (normalises the entropy signal)
    """
    parts = []
    if state != "signals":
        parts.append(features.detach().float().flatten(1))
    if state != "features":
        parts.append(store.signal_state(idx, scores, epoch, progress, selecting, num_classes))
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
