"""Bring your own data: arrays, tensors, torch Datasets, Hugging Face datasets, both envs, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from envs import CoverSelectEnv, DataAgentEnv, load_dataset


def tabular(n: int = 200, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable-ish tabular rows: the label is the argmax of the first ``classes`` columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, x[:, :classes].argmax(axis=1)


class PairDataset(Dataset):
    """A map-style Dataset of (input, label) pairs, as a user writes one."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.x[i]), int(self.y[i])


def test_arrays_hold_out_a_fixed_stratified_test_split_and_keep_floats_as_given():
    x, y = tabular(200)
    ds = load_dataset((x, y))
    assert (ds.num_train, ds.num_test, ds.num_classes, ds.input_shape) == (160, 40, 3, (6,))
    assert ds.train_x.dtype == torch.float32 and not ds.is_image
    assert torch.equal(load_dataset((x, y), seed=5).test_x, ds.test_x)  # fixed: independent of the run seed
    expected = np.bincount(y) * 0.2
    assert np.all(np.abs(torch.bincount(ds.test_y).numpy() - expected) <= 1)  # stratified
    batch, labels = ds.train_batch(torch.arange(5))
    # floats reach the model unchanged: the rows are rows of x
    rows = {tuple(r) for r in x.tolist()}
    assert all(tuple(r) in rows for r in batch.tolist()) and labels.dtype == torch.long


@pytest.mark.parametrize("kind", ["arrays", "tensors", "tensor_dataset", "dataset"])
def test_every_source_kind_gives_the_same_data(kind):
    x, y = tabular(120)
    xt, yt = tabular(30, seed=1)
    make = {"arrays": lambda a, b: (a, b), "tensors": lambda a, b: (torch.from_numpy(a), torch.from_numpy(b)),
            "tensor_dataset": lambda a, b: TensorDataset(torch.from_numpy(a), torch.from_numpy(b)),
            "dataset": PairDataset}[kind]
    ds = load_dataset({"train": make(x, y), "test": make(xt, yt)})
    assert torch.equal(ds.train_x, torch.from_numpy(x)) and torch.equal(ds.train_y, torch.from_numpy(y))
    assert torch.equal(ds.test_x, torch.from_numpy(xt)) and ds.num_classes == 3


def test_uint8_images_are_normalised_per_channel_and_subsets_and_noise_apply():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(300, 3, 8, 8), dtype=np.uint8)
    y = np.arange(300) % 5
    ds = load_dataset((x, y), train_size=100, task="noisy:sym:0.2", seed=3)
    assert ds.is_image and ds.input_shape == (3, 8, 8) and ds.num_train == 100
    assert int(ds.noisy_mask.sum()) == 20
    xa, _ = ds.train_batch(torch.arange(ds.num_train), augment=False)
    assert abs(xa.mean().item()) < 0.1 and 0.8 < xa.std().item() < 1.2
    assert xa.is_contiguous(memory_format=torch.channels_last)


def test_token_ids_stay_integers():
    ids = np.random.default_rng(0).integers(0, 50, size=(100, 7))
    ds = load_dataset((ids, ids[:, 0] % 2))
    assert ds.train_x.dtype == torch.int64 and ds.train_batch(torch.arange(3))[0].dtype == torch.int64


@pytest.mark.parametrize("source, message", [
    ((np.zeros((10, 3), np.float32), np.zeros(9, int)), "of the same length"),
    ((np.zeros((10, 3), np.float32), np.full(10, -1)), "labels include -1"),
    ((np.zeros((10, 3), np.float32), np.full(10, 0.5)), "non-integer"),
    ({"train": (np.zeros((10, 3), np.float32), np.arange(10) % 4), "num_classes": 3}, "labels go up to 3 but num_classes=3"),
    ({"train": (np.zeros((10, 3), np.float32), np.arange(10) % 2), "test": (np.zeros((4, 5), np.float32), np.zeros(4, int))},
     "differ from train inputs"),
    ({"training": (np.zeros((10, 3)), np.zeros(10, int))}, "needs a 'train' entry"),
    (np.zeros((10, 3)), "valid: a registry name or"),
    ((np.zeros((10, 3), np.float32), np.zeros(10, int)), "single class"),
])
def test_bad_own_data_gets_a_one_line_error(source, message):
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(source)
    assert "\n" not in str(err.value)


def test_tabular_data_trains_the_mlp_in_both_envs_and_cnn_is_refused():
    x, y = tabular(256)
    env = DataAgentEnv((x, y), "mlp", trainer=dict(batch_size=32, epochs=3, lr=0.05), keep_ratio=0.5, device="cpu")
    assert env.observation_space.shape == (32, 128)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, _, _, done, info = env.step(np.zeros(32, np.float32))
    assert info["final_test"]["top1"] > 60  # chance is 33%
    cover = CoverSelectEnv((x, y), "mlp", trainer=dict(batch_size=32, epochs=1), device="cpu")
    cover.reset(seed=0)
    with pytest.raises(ValueError, match="needs image inputs .* valid: model='mlp' or your own nn.Module"):
        DataAgentEnv((x, y), "cnn", trainer=dict(batch_size=32), device="cpu")
    with pytest.raises(ValueError, match="integer inputs .* nn.Embedding"):
        DataAgentEnv((np.zeros((64, 4), np.int64), np.arange(64) % 2), "mlp", trainer=dict(batch_size=8), device="cpu")


def test_hugging_face_dataset_with_named_columns():
    datasets = pytest.importorskip("datasets", reason="Hugging Face datasets is an optional extra: pip install datasets")
    x, y = tabular(100)
    hf = datasets.Dataset.from_dict({"features": x.tolist(), "label": y.tolist()})
    ds = load_dataset(datasets.DatasetDict(train=hf, test=hf.select(range(20))))
    assert ds.input_shape == (6,) and ds.num_train == 100 and ds.num_test == 20
    assert torch.allclose(ds.train_x, torch.from_numpy(x)) and torch.equal(ds.train_y, torch.from_numpy(y))
    with pytest.raises(ValueError, match="exactly one input column; found columns"):
        load_dataset(hf.add_column("extra", [0] * 100))
