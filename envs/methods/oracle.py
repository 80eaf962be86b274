"""The oracle: a selection that reads what a task hides (:mod:`envs.core.tasks`), the ceiling of the task scores.

Why: RL benchmarks normalise a score between a random policy and an expert. For a data problem the expert
knows each sample's provenance and spends the same budget on what helps: it skips mislabelled samples and
copies of a pool sample, and keeps minority classes first; among equals it picks at random. On a clean task
it is therefore a random selection (the scores take full data as that task's ceiling, docs/tasks.md). It is
never offered as a real method: it reads labels no method may see.
"""

from __future__ import annotations

import torch

from envs.core.data import DeviceDataset

#: the registered methods that read the provenance: ceilings of the scores, never real methods
ORACLE_METHODS = ("oracle",)


def real_methods(names: "list[str] | tuple[str, ...] | dict") -> tuple[str, ...]:
    """``names`` without the oracles: what ``--methods all`` and the default suites offer."""
    return tuple(m for m in names if m not in ORACLE_METHODS)


def oracle_priority(dataset: DeviceDataset, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each training sample's oracle priority (the highest are kept first): minority-class samples +2,
    mislabelled samples and copies -4, plus a uniform draw in [0, 1) that orders equals at random.

    :param dataset: the training set with its provenance
    :param generator: the random source of the draw
    """
    spoiled = dataset.noisy_mask | (dataset.duplicate_of >= 0)
    rand = torch.rand(dataset.num_train, device=dataset.device, generator=generator)
    return rand + 2.0 * dataset.minority.float() - 4.0 * spoiled.float()
