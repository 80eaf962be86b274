"""Instances: a task x dataset x seed grid, split into training and held-out test instances.

Why: as in DACBench and CARL, a policy that learns to select data should be judged on instances it never
trained on. An instance is one data problem (:mod:`envs.core.tasks`) on one dataset with one data seed (the
seed draws the subset, the noise, the copies and the inner model). The split is by seed, so every task and
dataset appears on both sides and a test instance differs from every training instance in its data draw:

- training instances: the grid's seeds before the last :data:`TEST_SHARE` of them;
- test instances: the last :data:`TEST_SHARE` of the seeds (at least one).

:data:`GRID` is the documented default: five tasks x two datasets x eight seeds, seeds 0-5 for training and
6-7 held out. Train an agent on a training instance (``experiments.train --task noisy --seed 0 ...``), then
run it frozen on the test instances (``experiments.benchmark --suite tasks --instances test --load-agent
<run>/agent.zip``; docs/tasks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from envs.core.tasks import parse_task

#: the share of a grid's seeds held out as test instances (at least one seed)
TEST_SHARE = 0.25
SPLITS = ("all", "train", "test")


@dataclass(frozen=True)
class Instance:
    """One data problem: a task on a dataset with a data seed.

    :param task: a task spec (:func:`envs.core.tasks.parse_task`)
    :param dataset: a dataset name (:func:`envs.core.data.load_dataset`)
    :param seed: the data and run seed
    """

    task: str
    dataset: str
    seed: int


@dataclass(frozen=True)
class InstanceGrid:
    """Every combination of ``tasks``, ``datasets`` and ``seeds``, split by seed (module docstring).

    :param tasks: task specs
    :param datasets: dataset names
    :param seeds: data seeds, in order; the last :data:`TEST_SHARE` of them are the test seeds
    """

    tasks: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        for task in self.tasks:
            parse_task(task)
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r} is invalid; valid: at least two distinct seeds (training and test)")

    @property
    def test_seeds(self) -> tuple[int, ...]:
        """The held-out seeds: the last :data:`TEST_SHARE` of :attr:`seeds`, at least one."""
        return self.seeds[len(self.seeds) - max(1, math.floor(TEST_SHARE * len(self.seeds))):]

    def split_seeds(self, split: str) -> tuple[int, ...]:
        """The seeds of ``split``: ``all``, ``train`` or ``test``."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is invalid; valid choices: {', '.join(SPLITS)}")
        test = self.test_seeds
        return {"all": self.seeds, "test": test, "train": tuple(s for s in self.seeds if s not in test)}[split]

    def instances(self, split: str = "all") -> list[Instance]:
        """The instances of ``split``, task by task."""
        return [Instance(t, d, s) for t in self.tasks for d in self.datasets for s in self.split_seeds(split)]


#: the documented default grid
GRID = InstanceGrid(tasks=("clean", "noisy", "redundant", "imbalanced:100", "mixed"),
                    datasets=("digits", "fashion-mnist"), seeds=tuple(range(8)))
