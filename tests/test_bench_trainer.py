"""The trainer benchmark: both sides see the same data and augmentation, and time what they claim to."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from envs.core.data import Augmentation, DeviceDataset, load_raw
from envs.core.trainer import TrainerConfig
from experiments.bench_trainer import format_table, main
from experiments.run.throughput import bench_pair, plain_dataset, time_ours, time_plain

CPU = torch.device("cpu")


@pytest.fixture
def raw():
    """The synthetic set with CIFAR-style augmentation switched on, so both augmentation paths run."""
    r = load_raw("synthetic")
    r.augmentation = Augmentation(crop_padding=2, horizontal_flip=True)
    return r


def test_plain_dataset_matches_our_normalisation(raw):
    ours = DeviceDataset("synthetic", raw, CPU)
    plain = plain_dataset(raw, augment=False)
    idx = torch.arange(10)
    expected, labels = ours.train_batch(idx, augment=False)
    got = torch.stack([plain[i][0] for i in idx.tolist()])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert [plain[i][1] for i in idx.tolist()] == labels.tolist()


def test_plain_augmentation_is_a_reflect_crop_or_flip_of_the_image(raw):
    """Every plain sample is one of the (2p+1)^2 x 2 views ours can draw: same augmentation semantics."""
    ours, plain, p = DeviceDataset("synthetic", raw, CPU), plain_dataset(raw), raw.augmentation.crop_padding
    torch.manual_seed(0)
    for i in range(8):
        clean, _ = ours.train_batch(torch.tensor([i]), augment=False)
        padded = F.pad(clean, (p, p, p, p), mode="reflect")[0]
        views = [v for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 for v in (padded[:, dy:dy + 8, dx:dx + 8], padded[:, dy:dy + 8, dx:dx + 8].flip(2))]
        sample = plain[i][0]
        assert min((sample - v).abs().max().item() for v in views) < 1e-5


def test_both_sides_time_the_same_number_of_samples_across_epochs(raw):
    """20 batches of 32 exceed the 512 training samples: both sides run into a second epoch."""
    config = TrainerConfig(batch_size=32, schedule="constant")
    ours = time_ours(DeviceDataset("synthetic", raw, CPU), "mlp", config, batches=20, warmup=1)
    plain = time_plain(raw, "mlp", config, batches=20, warmup=1, workers=1, device=CPU)
    assert ours.samples == plain.samples == 640
    assert ours.extra["backpropagated"] == 640  # the ledger agrees: warm-up excluded, nothing dropped
    assert ours.samples_per_s > 0 and plain.samples_per_s > 0 and plain.extra["workers"] == 1


def test_bench_pair_reports_best_runs_and_ratio(raw):
    config = TrainerConfig(batch_size=32, schedule="constant")
    r = bench_pair(raw, DeviceDataset("synthetic", raw, CPU), "mlp", config, samples=100, warmup=1,
                   workers=(0,), repeats=2)
    assert r["samples"] == 96  # rounded down to full batches
    assert [len(v) for v in r["runs"].values()] == [2, 2]
    assert r["ours_samples_per_s"] == max(m["samples_per_s"] for m in r["runs"]["ours"]) > 0
    assert r["plain_samples_per_s"] == max(m["samples_per_s"] for m in r["runs"]["plain w0"]) > 0
    assert r["speedup"] == pytest.approx(r["ours_samples_per_s"] / r["plain_samples_per_s"])
    row = format_table([{"config": "synthetic-mlp", "device": "cpu", **r}]).splitlines()[-1]
    assert row.startswith("| synthetic-mlp | cpu |") and row.endswith(f"| {r['speedup']:.2f}x |")


def test_cli_rejects_unknown_configs(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--configs", "mnist-vit"])
    assert stop.value.code == 2
    assert "unknown config(s) ['mnist-vit']; valid choices: fmnist-cnn, cifar10-resnet18, cifar10-fastnet" in capsys.readouterr().err
