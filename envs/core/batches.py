"""An epoch cut into batches: the shuffle and the padding of the last batch.

Why a module of its own, in the core: the trainer and the drop-in ``Selector`` must draw the same batches from the same
generator state, and selection methods plan *which* samples an epoch holds, not how they are batched.
"""

from __future__ import annotations

import torch


def shuffled_split(indices: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``indices`` in a random order drawn from ``generator``, cut into batches of ``batch_size`` (the
    last one may be short). Why one function: the env's trainer and the drop-in ``Selector`` must draw
    the same batches from the same generator state.

    :param indices: the epoch's samples, on the generator's device
    :param batch_size: samples per batch
    :param generator: the shuffle's random source
    """
    return list(indices[torch.randperm(len(indices), device=indices.device, generator=generator)].split(batch_size))


def fixed_size_batches(batches: list[torch.Tensor], batch_size: int) -> tuple[list[torch.Tensor], int]:
    """Pad the last of an epoch's shuffled ``batches`` to ``batch_size`` with the epoch's first
    samples, so every batch has the same shape. Returns the batches and how many samples the last
    one received as padding (they are really trained twice this epoch, and counted as such).

    The padding samples are distinct from the last batch's own samples as long as the epoch has at
    least ``batch_size`` samples."""
    last = batches[-1]
    missing = batch_size - len(last)
    if missing == 0:
        return batches, 0
    if len(batches) < 2:
        raise ValueError(f"an epoch of {len(last)} samples cannot fill a batch of {batch_size} without repeats")
    return [*batches[:-1], torch.cat([last, batches[0][:missing]])], missing
