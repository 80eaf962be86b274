"""What "resumed exactly" means for a train CLI run folder: the same test metrics, ledger counters, per-epoch reward
and score curves, every sample's final score and the same agent weights as the uninterrupted run's folder.

Why one helper: the resume tests and the kill test must hold runs to the same standard.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

COUNTERS = ("samples_forwarded", "samples_backpropagated", "optimizer_steps", "eval_samples_forwarded")


def assert_same_run(folder: Path, whole: Path, algo: type) -> None:
    """``folder`` (interrupted and resumed) ended exactly as ``whole`` (uninterrupted); ``algo`` loads their agents."""
    def outputs(path: Path) -> tuple[dict, np.ndarray, dict]:
        metrics = json.loads((path / "metrics.json").read_text())["run"]
        return metrics, np.load(path / "scores.npy"), algo.load(path / "agent.zip", device="cpu").get_parameters()["policy"]

    got, expected = outputs(folder), outputs(whole)
    assert got[0]["test"] == expected[0]["test"]
    assert {k: got[0]["ledger"][k] for k in COUNTERS} == {k: expected[0]["ledger"][k] for k in COUNTERS}
    assert got[0]["reward_by_epoch"] == expected[0]["reward_by_epoch"]
    assert got[0]["score_by_epoch"] == expected[0]["score_by_epoch"]
    np.testing.assert_array_equal(got[1], expected[1])  # every sample's final score
    for name, tensor in expected[2].items():  # the agent learned exactly the same
        assert torch.equal(got[2][name], tensor), name
