"""Coreset diagnosis: outskirts and core shares, distance to the class centre, class balance, noisy share."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from envs.core.data import load_dataset
from envs.methods.diagnosis import diagnose_coreset


def ring_class(offset: float) -> torch.Tensor:
    """20 samples on the x axis at distances 1..20 from their centre (10 on each side)."""
    r = torch.arange(1.0, 11.0)
    return torch.stack([torch.cat([r, -r]) + offset, torch.zeros(20)], dim=1)


FEATURES = torch.cat([ring_class(0.0), ring_class(100.0)])  # two classes, centres at 0 and 100
LABELS = torch.tensor([0] * 20 + [1] * 20)


def test_the_outskirts_of_every_class_count_as_outliers():
    outskirts = [9, 19, 29, 39]  # distance 10: the farthest tenth of each class
    d = diagnose_coreset(np.array(outskirts), FEATURES, LABELS)
    assert d["outlier_share"] == 1.0 and d["core_share"] == 0.0
    assert d["centre_distance"] == pytest.approx(10 / 5.5)  # mean distance in a class: 5.5
    assert d["class_tv"] == 0.0 and d["min_class_share"] == 1.0 and "noisy_share" not in d


def test_the_core_and_a_one_class_coreset():
    core = [0, 10, 20, 30]  # distance 1
    d = diagnose_coreset(torch.tensor(core), FEATURES, LABELS)
    assert d["core_share"] == 1.0 and d["outlier_share"] == 0.0 and d["centre_distance"] == pytest.approx(1 / 5.5)
    one_class = diagnose_coreset(np.arange(10), FEATURES, LABELS)
    assert one_class["class_tv"] == pytest.approx(0.5) and one_class["min_class_share"] == 0.0


def test_random_coresets_match_the_expected_values_and_noise_is_counted():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(4000, 8, generator=g)
    labels = torch.randint(0, 4, (4000,), generator=g)
    noisy = torch.zeros(4000, dtype=torch.bool)
    noisy[:400] = True
    d = diagnose_coreset(torch.randperm(4000, generator=g)[:2000], feats, labels, noisy)
    assert d["outlier_share"] == pytest.approx(0.1, abs=0.02) and d["core_share"] == pytest.approx(0.1, abs=0.02)
    assert d["centre_distance"] == pytest.approx(1.0, abs=0.02) and d["class_tv"] < 0.03
    assert d["noisy_share"] == pytest.approx(0.1, abs=0.02)
    with pytest.raises(ValueError, match=r"tail=0.5 is invalid; valid range: \(0, 0.5\)"):
        diagnose_coreset([0], feats, labels, tail=0.5)


def test_cli_diagnoses_a_saved_coreset_beside_random(tmp_path, capsys):
    from envs.methods.coreset import save_coreset
    from experiments.diagnose_coreset import main

    data = load_dataset("digits", train_size=200, task="noisy:sym:0.5", seed=3)
    noisy = np.flatnonzero(data.noisy_mask.numpy())[:40]  # a coreset made only of mislabelled samples
    save_coreset(tmp_path / "c", noisy, {"dataset": "digits", "num_train": 200, "train_size": 200, "data_seed": 3,
                                         "task": "noisy:sym:0.5", "method": "test"})
    result = main(["--coreset", str(tmp_path / "c"), "--epochs", "1", "--batch-size", "32", "--random",
                   "--out", str(tmp_path / "d")])
    assert result["diagnosis"]["noisy_share"] == 1.0 and 0.2 < result["random"]["noisy_share"] < 0.8
    assert json.loads((tmp_path / "d" / "diagnosis.json").read_text())["size"] == 40
    assert "test coreset (40 of 200 samples)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["--coreset", str(tmp_path / "missing")])
    assert stop.value.code == 2 and "missing.npy' not found" in capsys.readouterr().err
