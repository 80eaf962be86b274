"""Per-sample statistics of the training set, kept on the device.

Why: the agent's compact ``signals`` state and most dynamic baselines (InfoBatch, UCB, ε-greedy,
Forgetting) read each sample's recent history. One store, filled from the training forward pass,
serves them all. Memory is linear in the dataset: :data:`SampleStore.BYTES_PER_SAMPLE` bytes.
"""

from __future__ import annotations

import math

import torch

from envs.core import signals

SIGNAL_NAMES = ("loss", "loss_ema", "entropy", "margin", "confidence", "correct", "times_selected", "score",
                "progress", "pruning")
#: the columns a reference model adds to :data:`SIGNAL_NAMES` (:meth:`SampleStore.set_reference`)
REFERENCE_SIGNAL_NAMES = ("reference_loss", "reducible_loss", "reference_entropy")


def signal_names(reference: bool) -> tuple[str, ...]:
    """The columns of :meth:`SampleStore.signal_state`, with or without a reference model."""
    return SIGNAL_NAMES + (REFERENCE_SIGNAL_NAMES if reference else ())


class SampleStore:
    """Latest statistics of every training sample.

    ``last_loss``, ``entropy``, ``margin``, ``confidence``: from the sample's last training forward pass
    (NaN before it is first seen); ``loss_ema``/``loss_sq_ema``: exponential moving averages of the
    loss and its square (UCB's mean and spread); ``times_selected``: forward passes in training;
    ``last_epoch``: epoch of the last pass (-1 never); ``forgetting``: correct->incorrect flips;
    ``was_correct``: correctness at the last pass. With a reference model (:meth:`set_reference`):
    ``reference_loss`` and ``reference_entropy`` (its loss on the training label and its normalised
    entropy, fixed for the run) and ``reducible_loss`` (``last_loss - reference_loss``, RHO-LOSS's
    learnability, updated by the same pass as ``last_loss``); NaN without one.
    """

    FLOAT_FIELDS = ("last_loss", "entropy", "margin", "confidence", "loss_ema", "loss_sq_ema", "reference_loss",
                    "reference_entropy", "reducible_loss")
    INT_FIELDS = ("times_selected", "last_epoch", "forgetting")
    BYTES_PER_SAMPLE = 4 * len(FLOAT_FIELDS) + 4 * len(INT_FIELDS) + 1

    def __init__(self, num_samples: int, device: torch.device | str = "cpu", ema: float = 0.9):
        if num_samples <= 0:
            raise ValueError(f"num_samples={num_samples} must be positive")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema={ema} is outside [0, 1)")
        self.num_samples = num_samples
        self.ema = ema
        for name in self.FLOAT_FIELDS:
            setattr(self, name, torch.full((num_samples,), float("nan"), device=device))
        for name in self.INT_FIELDS:
            setattr(self, name, torch.zeros(num_samples, dtype=torch.int32, device=device))
        self.last_epoch.fill_(-1)
        self.was_correct = torch.zeros(num_samples, dtype=torch.bool, device=device)
        self._has_reference = False

    @property
    def has_reference(self) -> bool:
        """Whether a reference model's scores were set (:meth:`set_reference`)."""
        return self._has_reference

    @torch.no_grad()
    def set_reference(self, losses: torch.Tensor, entropies: torch.Tensor) -> None:
        """Record a reference model's per-sample ``losses`` (the training loss on the training labels)
        and normalised ``entropies``, ``(N,)`` each; ``reducible_loss`` of samples already seen is
        brought up to date."""
        if losses.shape != (self.num_samples,) or entropies.shape != (self.num_samples,):
            raise ValueError(f"reference scores have shapes {tuple(losses.shape)} and {tuple(entropies.shape)}; "
                             f"valid: ({self.num_samples},) each")
        self.reference_loss.copy_(losses)
        self.reference_entropy.copy_(entropies)
        self.reducible_loss.copy_(self.last_loss - self.reference_loss)
        self._has_reference = True

    @torch.no_grad()
    def update(self, idx: torch.Tensor, losses: torch.Tensor, logits: torch.Tensor | None, labels: torch.Tensor | None,
               epoch: int) -> None:
        """Record one training forward pass of the samples ``idx``. Without ``logits`` (a drop-in
        selector told only the losses) the entropy is not updated; without ``labels`` neither are
        margin, confidence, correctness and forgetting."""
        losses = losses.detach().float()
        first = self.times_selected[idx] == 0
        prev = torch.where(first, losses, self.loss_ema[idx])
        prev_sq = torch.where(first, losses**2, self.loss_sq_ema[idx])
        self.loss_ema[idx] = self.ema * prev + (1 - self.ema) * losses
        self.loss_sq_ema[idx] = self.ema * prev_sq + (1 - self.ema) * losses**2
        self.last_loss[idx] = losses
        self.reducible_loss[idx] = losses - self.reference_loss[idx]
        if logits is not None:
            logits = logits.detach()
            self.entropy[idx] = signals.entropy(logits)
        if logits is not None and labels is not None:
            self.margin[idx] = signals.margin(logits, labels)
            self.confidence[idx] = signals.confidence(logits, labels)
            correct = logits.argmax(dim=1) == labels
            self.forgetting[idx] += (self.was_correct[idx] & ~correct).int()
            self.was_correct[idx] = correct
        self.times_selected[idx] += 1
        self.last_epoch[idx] = epoch

    def signal_state(self, idx: torch.Tensor, scores: torch.Tensor, epoch: int, progress: float, pruned: bool,
                     num_classes: int) -> torch.Tensor:
        """Data Agent's compact, model-agnostic state of the samples ``idx`` (columns :data:`SIGNAL_NAMES`,
        then :data:`REFERENCE_SIGNAL_NAMES` when a reference is set: :func:`signal_names`), read after
        their forward pass was recorded: one builder for the env and the drop-in selector.

        :param scores: every sample's current selection score, ``(N,)``
        :param epoch: the current epoch (normalises ``times_selected``)
        :param progress: fraction of the planned training done, in [0, 1]
        :param pruned: whether the current epoch trains on a selected subset
        :param num_classes: classes of the task (normalises the entropy)
        """
        n = len(idx)
        reference = [self.reference_loss[idx], self.reducible_loss[idx], self.reference_entropy[idx]]
        return torch.stack([
            self.last_loss[idx],
            self.loss_ema[idx],
            self.entropy[idx] / math.log(num_classes),
            self.margin[idx],
            self.confidence[idx],
            self.was_correct[idx].float(),
            self.times_selected[idx].float() / (epoch + 1),
            scores[idx],
            self.last_loss.new_full((n,), progress),
            self.last_loss.new_full((n,), float(pruned)),
            *(reference if self.has_reference else ()),
        ], dim=1)

    def state_dict(self) -> dict[str, torch.Tensor | bool]:
        return {**{n: getattr(self, n).clone() for n in (*self.FLOAT_FIELDS, *self.INT_FIELDS, "was_correct")},
                "has_reference": self._has_reference}

    def load_state_dict(self, state: dict[str, torch.Tensor | bool]) -> None:
        state = dict(state)
        self._has_reference = bool(state.pop("has_reference", False))
        for n, v in state.items():
            cur = getattr(self, n)
            if v.shape != cur.shape:
                raise ValueError(f"sample store field {n!r} has shape {tuple(v.shape)}, expected {tuple(cur.shape)}")
            cur.copy_(v)
