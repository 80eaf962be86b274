"""Datasets: every registry name, subsets, label noise, augmentation, and clear errors."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest
import torch

from envs.core.data import Augmentation, load_dataset, load_raw, stratified_subset
from envs.core.tasks import corrupt_labels
from tests.conftest import CIFAR10_JPEG, FASHION_MNIST


@pytest.mark.parametrize("name, shape, classes", [("digits", (1, 8, 8), 10), ("synthetic", (1, 8, 8), 4)])
def test_embedded_datasets_load_offline(name, shape, classes):
    ds = load_dataset(name)
    assert ds.input_shape == shape and ds.num_classes == classes
    assert ds.train_x.dtype == torch.uint8 and ds.test_x.dtype == torch.uint8
    assert set(ds.train_y.unique().tolist()) == set(range(classes))
    x, y = ds.train_batch(torch.arange(16))
    assert x.dtype == torch.float32 and x.shape == (16, *shape)
    # normalisation uses the training statistics: roughly zero mean, unit std over the training set
    xa, _ = ds.train_batch(torch.arange(ds.num_train), augment=False)
    assert abs(xa.mean().item()) < 0.3 and 0.6 < xa.std().item() < 1.5


def test_digits_split_is_fixed_and_disjoint():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7)
    assert a.num_train == 1437 and a.num_test == 360
    assert torch.equal(a.test_x, b.test_x)  # the test set never depends on the run seed


@pytest.mark.skipif(not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"Fashion-MNIST absent from {FASHION_MNIST}: apt-get install dataset-fashion-mnist, "
                           "or set DATA_SELECT_GYM_FASHION_MNIST to its folder")
def test_fashion_mnist_from_debian_files():
    ds = load_dataset("fashion-mnist", train_size=1000, seed=0, root=str(FASHION_MNIST))
    assert ds.input_shape == (1, 28, 28) and ds.num_test == 10_000 and ds.num_train == 1000
    assert torch.bincount(ds.train_y, minlength=10).tolist() == [100] * 10


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_without_files_says_how_to_get_them(name, tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_raw(name, root=str(tmp_path))


def _write_tree(base, form: str):
    """Two classes of random PNGs, as a folder ``tree``, a ``zip`` or a ``tar.xz`` per split."""
    import tarfile

    from PIL import Image

    rng = np.random.default_rng(0)
    entries = []
    for split, n in (("train", 6), ("test", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                arr = rng.integers(0, 255, size=(12, 12, 3), dtype=np.uint8)
                entries.append((f"{split}/{cls}/{i}.png", arr))
        split_entries = [e for e in entries if e[0].startswith(split)]
        for name, arr in split_entries:
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(base / name)
        if form == "zip":
            with zipfile.ZipFile(base / f"{split}.zip", "w") as z:
                for name, _ in split_entries:
                    z.write(base / name, name)
        elif form == "tar.xz":
            with tarfile.open(base / f"{split}.tar.xz", "w:xz") as tar:
                tar.add(base / split, arcname=split)
        if form != "tree":
            shutil.rmtree(base / split)
    return entries


@pytest.mark.parametrize("form", ["tree", "zip", "tar.xz"])
def test_imagefolder_tree_zip_and_tar_xz(tmp_path, form):
    entries = _write_tree(tmp_path, form)
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.num_train == 12 and ds.num_test == 4 and ds.input_shape == (3, 12, 12)
    assert ds.class_names == ("cat", "dog")
    # PNG is lossless: the decoded pixels are the written ones, in class-then-file order
    first = dict(entries)["train/cat/0.png"]
    assert np.array_equal(ds.train_x[0].permute(1, 2, 0).numpy(), first)
    again = load_dataset(f"imagefolder:{tmp_path}")  # second load comes from the cache
    assert torch.equal(again.train_x, ds.train_x)


@pytest.mark.skipif(not (CIFAR10_JPEG / "test.tar.xz").is_file() or not (CIFAR10_JPEG / "test.zip").is_file(),
                    reason=f"the CIFAR-10 JPEG copy (zip and tar.xz) is not in {CIFAR10_JPEG}")
def test_the_shared_cifar10_tar_xz_holds_the_same_images_as_its_zip():
    from envs.core.data import _list_split, _read_tar_xz

    as_zip = {(c, n): read for c, n, read in _list_split(CIFAR10_JPEG, "test")}  # the zip wins when both are there
    with_tar = {(c, n): read for c, n, read in _read_tar_xz(CIFAR10_JPEG / "test.tar.xz")}
    assert len(as_zip) == len(with_tar) == 10000 and as_zip.keys() == with_tar.keys()
    for key in sorted(as_zip)[::997]:
        assert as_zip[key]() == with_tar[key]()


def test_the_first_imagefolder_decode_says_what_it_does_and_later_loads_are_silent(tmp_path, capsys):
    _write_tree(tmp_path, "zip")
    load_dataset(f"imagefolder:{tmp_path}")
    assert f"imagefolder: decoding 16 images of {tmp_path} once" in capsys.readouterr().err
    load_dataset(f"imagefolder:{tmp_path}")
    assert "decoding" not in capsys.readouterr().err


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"imagefolder:{tmp_path / 'nope'}")
    with pytest.raises(FileNotFoundError, match="train.zip"):
        load_dataset(f"imagefolder:{tmp_path}")


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError, match="digits.*fashion-mnist"):
        load_dataset("mnist-typo")


@pytest.mark.parametrize("size", [0, 1438, -5])
def test_train_size_out_of_range(size):
    with pytest.raises(ValueError, match=r"train_size.*\[1, 1437\]"):
        load_dataset("digits", train_size=size)


def test_stratified_subset_keeps_class_proportions_and_is_seeded():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    idx = stratified_subset(labels, 100, seed=3)
    assert np.bincount(labels[idx]).tolist() == [10, 20, 30, 40]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=4))


@pytest.mark.parametrize("kind", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("rate", [0.2, 0.4])
def test_label_noise_rate_and_true_labels(kind, rate):
    ds = load_dataset("digits", task=f"noisy:{dict(symmetric='sym', asymmetric='asym')[kind]}:{rate}", seed=1)
    measured = ds.noisy_mask.float().mean().item()
    assert abs(measured - rate) <= 0.01
    clean = load_dataset("digits", seed=1)
    assert torch.equal(ds.train_y_true, clean.train_y)  # true labels kept for analysis
    if kind == "asymmetric":
        m = ds.noisy_mask
        assert torch.equal(ds.train_y[m], (ds.train_y_true[m] + 1) % 10)


def test_symmetric_noise_spreads_over_other_classes():
    labels = np.zeros(10_000, dtype=np.int64)
    noisy = corrupt_labels(labels, 5, "symmetric", 0.5, seed=0)
    counts = np.bincount(noisy[noisy != 0], minlength=5)[1:]
    assert counts.min() > 0.9 * counts.mean()


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_noise_rate_outside_range(rate):
    with pytest.raises(ValueError, match=r"noise rate .* is outside \(0, 1\); valid tasks: clean, noisy"):
        load_dataset("digits", task=f"noisy:sym:{rate}")


def test_unknown_noise_type():
    with pytest.raises(ValueError, match="is no noise kind \\(sym, asym\\) or rate"):
        load_dataset("digits", task="noisy:pairflip")


def test_augmentation_crop_is_a_window_of_the_padded_image_and_flip_mirrors():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    assert torch.equal(Augmentation()(x, None), x)
    g = torch.Generator().manual_seed(0)
    out = Augmentation(crop_padding=2)(x, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        windows = [padded[i, :, r:r + 6, c:c + 6] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    flipped = Augmentation(horizontal_flip=True)(x.repeat(32, 1, 1, 1), torch.Generator().manual_seed(0))
    is_flip = [torch.equal(f, s.flip(2)) for f, s in zip(flipped, x.repeat(32, 1, 1, 1))]
    is_same = [torch.equal(f, s) for f, s in zip(flipped, x.repeat(32, 1, 1, 1))]
    assert all(a or b for a, b in zip(is_flip, is_same)) and 16 < sum(is_flip) < 48  # 64 samples, p=0.5
