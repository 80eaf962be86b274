"""Datasets held as uint8 tensors on the trainer's device.

Why: the inner training loop is the hot path of every env step. Keeping images on the device
as uint8 and normalising/augmenting whole batches there removes DataLoader workers, host-device
copies and per-sample Python from that path (see ``BENCHMARKS.md`` for the measured effect).

Every dataset is reached through :func:`load_dataset` by a registry name:

``digits``        scikit-learn's bundled 8x8 digits (embedded, offline; the default)
``synthetic``     a small generated 4-class image set for fast tests
``fashion-mnist`` the original gz files (Debian ``dataset-fashion-mnist`` or torchvision's layout)
``cifar10``       torchvision's CIFAR-10 python format (downloads only with ``download=True``)
``cifar100``      torchvision's CIFAR-100 python format (idem)
``sst2``, ``agnews`` sentence classification from the offline TSV copies, tokenised into padded ids
                  (:mod:`envs.core.text`; ``vocab_size``, ``seq_len``)
``imagefolder:<path>`` any tree with ``train/<class>/*`` and ``test/<class>/*``, or a folder
                  holding ``train.zip`` and ``test.zip`` (or ``train.tar.xz`` and ``test.tar.xz``) of such
                  trees; decoded once and cached.

Instead of a name, :func:`load_dataset` also takes your own data (``(X, y)``, a torch ``Dataset``,
a Hugging Face dataset, or ``{"train": ..., "test": ...}``; see :mod:`envs.core.own_data`).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import numpy as np
import torch

from envs.core.checks import Options, is_count, is_real
from envs.core.files import atomic_write
from envs.core.own_data import describe, is_own_source, is_text, own_splits
from envs.core.tasks import TaskData, apply_task, parse_task, problem_shares
from envs.core.text import DEFAULT_SEQ_LEN, DEFAULT_VOCAB_SIZE, TEXT_DATASETS, TEXT_SETS, check_text_options, load_text, tokenize_splits

DATASET_NAMES = ("digits", "synthetic", "fashion-mnist", "cifar10", "cifar100", *TEXT_DATASETS, "imagefolder:<path>")
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
CACHE_DIR = Path(os.environ.get("DATA_SELECT_GYM_CACHE", Path.home() / ".cache" / "data-select-gym"))


@dataclass(frozen=True)
class Augmentation:
    """Batched on-device augmentation: random crop after reflect padding, then horizontal flip.

    :param crop_padding: pixels of reflect padding before a random crop back to the input size (0: off)
    :param horizontal_flip: flip each sample with probability 0.5
    """

    crop_padding: int = 0
    horizontal_flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.horizontal_flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
            off = torch.randint(0, 2 * p + 1, (2, n), device=x.device, generator=generator)
            rows = off[0, :, None] + torch.arange(h, device=x.device)  # (n, h)
            cols = off[1, :, None] + torch.arange(w, device=x.device)  # (n, w)
            batch = torch.arange(n, device=x.device)[:, None, None]
            # advanced indexing gives (n, h, w, c); move channels back
            x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.horizontal_flip:
            flip = torch.rand(n, device=x.device, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


@dataclass
class RawSplits:
    """Decoded data in host memory, before subsetting, noise and the move to the device."""

    train_x: np.ndarray  # uint8 (N, C, H, W) images, int64 (N, seq_len) token ids (text); own data may also be float32 or int64 of any shape
    train_y: np.ndarray  # int64 (N,)
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale (uint8 images only)
    std: tuple[float, ...]
    augmentation: Augmentation
    class_names: tuple[str, ...] = ()
    vocab_size: int | None = None  # text: the tokenizer's vocabulary (``train_x`` holds its ids); None otherwise


class DeviceDataset:
    """A train/test split stored as uint8 tensors on one device (own data that is not uint8 images:
    float32 or int64 tensors, passed to the model as they are).

    ``train_y`` holds the labels used for training (possibly noisy); ``train_y_true`` the clean
    ones, kept for analysis (e.g. the fraction of noisy samples a method kept). Each training sample's
    provenance under a task (:mod:`envs.core.tasks`): :attr:`noisy_mask` (its label was corrupted),
    ``duplicate_of`` (int64: the training sample it is a copy of, -1 for none) and ``minority`` (bool: its
    class is among the smaller half of the class sizes). ``holdout_x``,
    ``holdout_y`` and ``holdout_y_true``: the samples :attr:`DataConfig.holdout` set aside, never in
    the training split (None without a holdout); only a reference model trains on them
    (:meth:`holdout_split`). ``modality`` is ``image`` (uint8 images), ``text`` (padded token ids,
    ``vocab_size`` of them) or ``tensor`` (other own inputs); the models check it.
    """

    def __init__(self, name: str, raw: RawSplits, device: torch.device, train_y_true: np.ndarray | None = None,
                 holdout: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 provenance: tuple[np.ndarray, np.ndarray] | None = None):
        self.name = name
        self.device = device
        self.num_classes = raw.num_classes
        self.class_names = raw.class_names
        self.augmentation = raw.augmentation
        self.train_x = torch.as_tensor(raw.train_x).to(device)
        self.train_y = torch.as_tensor(raw.train_y, dtype=torch.long).to(device)
        true = raw.train_y if train_y_true is None else train_y_true
        self.train_y_true = torch.as_tensor(true, dtype=torch.long).to(device)
        n = len(true)
        dup, minority = provenance or (np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool))
        self.duplicate_of = torch.as_tensor(dup, dtype=torch.long).to(device)
        self.minority = torch.as_tensor(minority, dtype=torch.bool).to(device)
        self.test_x = torch.as_tensor(raw.test_x).to(device)
        self.test_y = torch.as_tensor(raw.test_y, dtype=torch.long).to(device)
        self.holdout_x = self.holdout_y = self.holdout_y_true = None
        if holdout is not None:
            self.holdout_x = torch.as_tensor(holdout[0]).to(device)
            self.holdout_y, self.holdout_y_true = (torch.as_tensor(h, dtype=torch.long).to(device) for h in holdout[1:])
        self.is_image = self.train_x.dtype == torch.uint8
        self.vocab_size = raw.vocab_size
        self.modality = "image" if self.is_image else "text" if raw.vocab_size is not None else "tensor"
        if self.is_image:
            c = self.train_x.shape[1]
            self._mean = torch.tensor(raw.mean, dtype=torch.float32, device=device).view(1, c, 1, 1) * 255.0
            self._std = torch.tensor(raw.std, dtype=torch.float32, device=device).view(1, c, 1, 1) * 255.0

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: ``(C, H, W)`` for images, any shape for own data (``(D,)`` for tabular rows)."""
        return tuple(self.train_x.shape[1:])

    @property
    def noisy_mask(self) -> torch.Tensor:
        """Boolean mask of training samples whose label was corrupted."""
        return self.train_y != self.train_y_true

    def problem_shares(self, kept: torch.Tensor) -> dict[str, float]:
        """What ``kept`` holds of each data problem beside its base rate (:func:`envs.core.tasks.problem_shares`).

        :param kept: integer training-set indices (a selection), or a float ``(N,)`` weight per sample (e.g.
            back-propagated count x loss weight)
        """
        if not torch.is_floating_point(kept):
            kept = torch.zeros(self.num_train, device=self.device).index_fill_(0, kept.to(self.device).long(), 1.0)
        return problem_shares(self.noisy_mask, self.duplicate_of, self.minority, kept)

    def with_training(self, x: torch.Tensor, y: torch.Tensor, y_true: torch.Tensor) -> DeviceDataset:
        """This dataset (same test split, normalisation and augmentation) training on ``x, y`` instead,
        without a holdout: what a reference model trains on (:mod:`envs.core.reference`)."""
        other = copy.copy(self)
        other.train_x, other.train_y, other.train_y_true = x, y, y_true
        other.duplicate_of = torch.full_like(y, -1)
        other.minority = torch.zeros_like(y, dtype=torch.bool)
        other.holdout_x = other.holdout_y = other.holdout_y_true = None
        return other

    def holdout_split(self) -> DeviceDataset:
        """The holdout as a training set (:meth:`with_training`); a clear error without one."""
        if self.holdout_x is None:
            raise ValueError(f"{self.name!r} has no holdout; valid: load it with DataConfig(holdout=<fraction in (0, 0.5]>)")
        return self.with_training(self.holdout_x, self.holdout_y, self.holdout_y_true)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images: per-channel standardisation. Other inputs: unchanged."""
        if not self.is_image:
            return x
        return (x.float() - self._mean) / self._std

    def _model_layout(self, x: torch.Tensor) -> torch.Tensor:
        """Images in channels-last layout (convolutions run faster in it on CPU and GPU, BENCHMARKS.md),
        applied once per batch, after any augmentation; other inputs as they are."""
        return x.contiguous(memory_format=torch.channels_last) if self.is_image else x

    def train_batch(
        self, idx: torch.Tensor, generator: torch.Generator | None = None, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (and, if enabled, augmented) training images and labels for ``idx``."""
        x = self.normalize(self.train_x[idx])
        if augment and self.augmentation.active:
            x = self.augmentation(x, generator)
        return self._model_layout(x), self.train_y[idx]

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.num_test, batch_size):
            sl = slice(start, start + batch_size)
            yield self._model_layout(self.normalize(self.test_x[sl])), self.test_y[sl]


# ---------------------------------------------------------------------------------------------
# loaders: each returns RawSplits from local files (or scikit-learn's bundled data)


def _load_digits(root: str | None, download: bool) -> RawSplits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    y = d.target.astype(np.int64)
    # a fixed split (independent of the run seed) so every run is scored on the same test set
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)
    m, s = float(x[tr].mean() / 255), float(x[tr].std() / 255)
    return RawSplits(x[tr], y[tr], x[te], y[te], 10, (m,), (s,), Augmentation())


def _load_synthetic(root: str | None, download: bool) -> RawSplits:
    """4 classes of 1x8x8 images: a per-class template plus pixel noise, some samples near the
    boundary between two templates. Fixed generator seed so the data never depends on the run seed."""
    rng = np.random.default_rng(12345)
    classes, n_train, n_test = 4, 512, 256
    templates = rng.uniform(0, 255, size=(classes, 1, 8, 8))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % classes
        other = (y + rng.integers(1, classes, size=n)) % classes
        mix = rng.uniform(0.0, 0.45, size=(n, 1, 1, 1))  # how far towards another class
        x = (1 - mix) * templates[y] + mix * templates[other] + rng.normal(0, 40, size=(n, 1, 8, 8))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    tx, ty = make(n_train)
    vx, vy = make(n_test)
    return RawSplits(tx, ty, vx, vy, classes, (0.5,), (0.25,), Augmentation())


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _find_fashion_mnist(root: str | None) -> Path:
    names = "train-images-idx3-ubyte.gz"
    candidates = []
    if root:
        candidates += [Path(root), Path(root) / "FashionMNIST" / "raw", Path(root) / "fashion-mnist"]
    candidates += [Path(p) for p in FASHION_MNIST_DIRS]
    for c in candidates:
        if (c / names).exists():
            return c
    raise FileNotFoundError(
        "fashion-mnist: no 'train-images-idx3-ubyte.gz' found in "
        + ", ".join(str(c) for c in candidates)
        + ". Install it with 'apt-get install dataset-fashion-mnist' (files land in "
        "/usr/share/datasets/fashion-mnist/), or point --data-root (root= in the envs' data options and in load_dataset) "
        "at a folder with the four original gz files "
        "(torchvision's 'FashionMNIST/raw' layout also works)."
    )


def _load_fashion_mnist(root: str | None, download: bool) -> RawSplits:
    d = _find_fashion_mnist(root)
    tx = _read_idx_gz(d / "train-images-idx3-ubyte.gz")[:, None]
    ty = _read_idx_gz(d / "train-labels-idx1-ubyte.gz").astype(np.int64)
    vx = _read_idx_gz(d / "t10k-images-idx3-ubyte.gz")[:, None]
    vy = _read_idx_gz(d / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    names = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    return RawSplits(tx, ty, vx, vy, 10, (0.2860,), (0.3530,), Augmentation(crop_padding=2), names)


_CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5074, 0.4867, 0.4411), (0.2011, 0.1987, 0.2025)),
}


def _cifar_loader(name: str) -> Callable[[str | None, bool], RawSplits]:
    def load(root: str | None, download: bool) -> RawSplits:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        root = root or str(CACHE_DIR / "torchvision")
        try:
            train = cls(root, train=True, download=download)
            test = cls(root, train=False, download=download)
        except RuntimeError as e:  # torchvision: "Dataset not found or corrupted..."
            raise FileNotFoundError(
                f"{name}: torchvision's files are not in {root!r} ({e}). Point --data-root (root= in the envs' "
                f"data options and in load_dataset) at the folder holding "
                f"'{cls.base_folder}', or download=True on a machine with internet. Offline, the JPEG copy "
                "of CIFAR-10 loads with dataset='imagefolder:<folder with train.zip and test.zip, or their .tar.xz>'."
            ) from None
        mean, std = _CIFAR_STATS[name]
        return RawSplits(
            train.data.transpose(0, 3, 1, 2).copy(),
            np.asarray(train.targets, dtype=np.int64),
            test.data.transpose(0, 3, 1, 2).copy(),
            np.asarray(test.targets, dtype=np.int64),
            len(train.classes),
            mean,
            std,
            Augmentation(crop_padding=4, horizontal_flip=True),
            tuple(train.classes),
        )

    return load


def _decode_tree(files: list[tuple[str, str, Callable[[], bytes]]], desc: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Decode (split-relative class name, file name, reader) triples into uint8 CHW arrays
    (with a progress bar called ``desc`` on a terminal: 60k JPEGs take a while)."""
    from PIL import Image
    from tqdm import tqdm

    classes = tuple(sorted({c for c, _, _ in files}))
    images, labels = [], []
    ordered = sorted(files, key=lambda t: (t[0], t[1]))
    for cls, _, read in tqdm(ordered, desc=desc, unit="img", leave=False, disable=None):
        with Image.open(io.BytesIO(read())) as im:
            images.append(np.asarray(im.convert("RGB")).transpose(2, 0, 1))
        labels.append(classes.index(cls))
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"imagefolder: images must all have one size to be stacked, found {sorted(shapes)[:4]}")
    return np.ascontiguousarray(np.stack(images)), np.asarray(labels, dtype=np.int64), classes


_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _is_image_entry(name: str) -> bool:
    """An archive entry ``[...]/<split>/<class>/<image>``."""
    return len(name.split("/")) >= 3 and Path(name).suffix.lower() in _IMAGE_EXTS


def _read_tar_xz(archive: Path) -> list[tuple[str, str, Callable[[], bytes]]]:
    """Every image of a ``.tar.xz``, read in one sequential pass: an xz stream has no random access,
    so reading members on demand would decompress the archive again for each one."""
    import tarfile

    out = []
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            if member.isfile() and _is_image_entry(member.name):
                data = tar.extractfile(member).read()
                parts = member.name.split("/")
                out.append((parts[-2], parts[-1], (lambda data=data: data)))
    return out


def _list_split(base: Path, split: str) -> list[tuple[str, str, Callable[[], bytes]]]:
    """The images of ``split`` as (class, file name, reader): from a folder tree, a ``.zip`` or a ``.tar.xz``
    (the smallest form of the CIFAR-10 JPEG copy: it is what travels to a GPU machine, docs/gpu.md)."""
    folder, archive, tar_xz = base / split, base / f"{split}.zip", base / f"{split}.tar.xz"
    if folder.is_dir():
        return [
            (p.parent.name, p.name, p.read_bytes)
            for p in folder.glob("*/*")
            if p.suffix.lower() in _IMAGE_EXTS
        ]
    if archive.is_file():
        z = zipfile.ZipFile(archive)
        out = []
        for n in z.namelist():
            if _is_image_entry(n):
                parts = n.split("/")
                out.append((parts[-2], parts[-1], (lambda n=n: z.read(n))))
        return out
    if tar_xz.is_file():
        return _read_tar_xz(tar_xz)
    raise FileNotFoundError(
        f"imagefolder: {base} has neither '{split}/' (an ImageFolder tree: {split}/<class>/<image>) "
        f"nor '{split}.zip' nor '{split}.tar.xz'. Point imagefolder:<path> at a folder holding both train and test."
    )


def _load_imagefolder(path: str) -> RawSplits:
    base = Path(path).expanduser()
    if not base.exists():
        raise FileNotFoundError(f"imagefolder: the folder {str(base)!r} does not exist")
    train_files, test_files = _list_split(base, "train"), _list_split(base, "test")
    if not train_files or not test_files:
        raise FileNotFoundError(f"imagefolder: no images found under {base} (train: {len(train_files)}, test: {len(test_files)})")
    key = hashlib.sha1(f"{base.resolve()}|{len(train_files)}|{len(test_files)}".encode()).hexdigest()[:16]
    cache = CACHE_DIR / f"imagefolder-{key}.npz"
    if cache.exists():
        z = np.load(cache)
        tx, ty, vx, vy, classes = z["tx"], z["ty"], z["vx"], z["vy"], tuple(z["classes"].tolist())
    else:
        print(f"imagefolder: decoding {len(train_files) + len(test_files):,} images of {base} once; later loads "
              f"read the cache {cache}", file=sys.stderr, flush=True)
        tx, ty, classes = _decode_tree(train_files, "decoding train")
        vx, vy, test_classes = _decode_tree(test_files, "decoding test")
        if test_classes != classes:
            raise ValueError(f"imagefolder: train classes {classes} differ from test classes {test_classes}")
        # atomic: a killed decode never leaves a half-written cache
        atomic_write(cache, lambda f: np.savez(f, tx=tx, ty=ty, vx=vx, vy=vy, classes=np.asarray(classes)))
    # float64 accumulation: a float32 sum over tens of millions of pixels stalls at 2**24
    mean = tuple(float(v) / 255.0 for v in tx.mean(axis=(0, 2, 3), dtype=np.float64))
    std = tuple(float(v) / 255.0 for v in tx.std(axis=(0, 2, 3), dtype=np.float64))
    aug = Augmentation(crop_padding=4 if tx.shape[-1] >= 24 else 0, horizontal_flip=True)
    return RawSplits(tx, ty, vx, vy, len(classes), mean, std, aug, classes)


_LOADERS: dict[str, Callable[[str | None, bool], RawSplits]] = {
    "digits": _load_digits,
    "synthetic": _load_synthetic,
    "fashion-mnist": _load_fashion_mnist,
    "cifar10": _cifar_loader("cifar10"),
    "cifar100": _cifar_loader("cifar100"),
}


def _text_raw(name: str, root: str | None, vocab_size: int, seq_len: int) -> RawSplits:
    """A registry text set, tokenised (no augmentation: text has none here)."""
    t = load_text(name, root, vocab_size, seq_len, CACHE_DIR)
    names = TEXT_SETS[name].class_names
    return RawSplits(t.train_x, t.train_y, t.test_x, t.test_y, len(names), (), (), Augmentation(), names, t.vocab_size)


def _own_raw(source: Any, vocab_size: int, seq_len: int) -> RawSplits:
    """A user's data (:mod:`envs.core.own_data`) as :class:`RawSplits`: uint8 images get per-channel
    statistics of the training split, strings go through the text sets' tokenizer route
    (:func:`envs.core.text.tokenize_splits`); no augmentation (a user's data has no known invariances)."""
    s = own_splits(source)
    if is_text(s.train_x):
        t = tokenize_splits(s.train_x.tolist(), s.train_y, s.test_x.tolist(), s.test_y, vocab_size, seq_len, CACHE_DIR,
                            "own")
        return RawSplits(t.train_x, t.train_y, t.test_x, t.test_y, s.num_classes, (), (), Augmentation(),
                         vocab_size=t.vocab_size)
    if s.train_x.dtype == np.uint8:
        mean = tuple(float(v) / 255.0 for v in s.train_x.mean(axis=(0, 2, 3), dtype=np.float64))
        std = tuple(max(float(v), 1e-3) / 255.0 for v in s.train_x.std(axis=(0, 2, 3), dtype=np.float64))
    else:
        mean, std = (), ()
    return RawSplits(s.train_x, s.train_y, s.test_x, s.test_y, s.num_classes, mean, std, Augmentation())


def load_raw(name: str | Any, root: str | None = None, download: bool = False, vocab_size: int = DEFAULT_VOCAB_SIZE,
             seq_len: int = DEFAULT_SEQ_LEN) -> RawSplits:
    """Decode a registered dataset, or read a user's data, into host arrays (no subsetting, no noise); text
    (``vocab_size``, ``seq_len``: :mod:`envs.core.text`) as padded token ids. A ``root`` given for data that reads no
    files from it (bundled, generated, a folder named in the name, your own data) is refused: silently ignored, it
    would let a user believe their files were read."""
    check_text_options(vocab_size, seq_len)
    if root is not None and (is_own_source(name) or (isinstance(name, str) and (
            name in ("digits", "synthetic") or name.startswith("imagefolder:")))):
        where = "its folder is in its name" if str(name).startswith("imagefolder:") else "it reads no files"
        raise ValueError(f"root={root!r} (--data-root) is ignored by {describe(name) if is_own_source(name) else name!r}: "
                         f"{where}; valid: leave it out (it is for file-backed datasets such as fashion-mnist or cifar10)")
    if is_own_source(name):
        return _own_raw(name, vocab_size, seq_len)
    if name in TEXT_DATASETS:
        return _text_raw(name, root, vocab_size, seq_len)
    if isinstance(name, str) and name.startswith("imagefolder:"):
        return _load_imagefolder(name.split(":", 1)[1])
    if not (isinstance(name, str) and name in _LOADERS):
        raise ValueError(f"unknown dataset {name!r}; valid choices: {', '.join(DATASET_NAMES)}")
    return _LOADERS[name](root, download)


# ---------------------------------------------------------------------------------------------
# subsets, tasks and the holdout


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a class-stratified random subset of ``size`` samples (sorted)."""
    from sklearn.model_selection import train_test_split

    n = len(labels)
    if size == n:
        return np.arange(n)
    classes = len(np.unique(labels))
    if size < classes:
        raise ValueError(f"train_size={size} is smaller than the number of classes ({classes}); valid range: [{classes}, {n}]")
    idx, _ = train_test_split(np.arange(n), train_size=size, stratify=labels, random_state=seed)
    return np.sort(idx)


def load_dataset(
    name: str | Any = "digits",
    *,
    device: torch.device | str = "cpu",
    train_size: int | None = None,
    task: str = "clean",
    seed: int = 0,
    root: str | None = None,
    download: bool = False,
    holdout: float | None = None,
    trusted: bool = False,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seq_len: int = DEFAULT_SEQ_LEN,
) -> DeviceDataset:
    """Load a registered dataset, or your own data, onto ``device``.

    :param name: a registry name (see module docstring) or your own data (:mod:`envs.core.own_data`)
    :param device: where the tensors live
    :param train_size: keep a class-stratified, seeded subset of this many training samples
    :param task: the data problem applied to the training set after the subset (:mod:`envs.core.tasks`):
        ``clean``, ``noisy[:sym|asym][:rate]``, ``redundant[:fraction][:exact]``, ``imbalanced[:factor]``, ``mixed``
    :param seed: seeds the subset, the task and the holdout
    :param root: folder holding the dataset's files, for file-backed datasets
    :param download: allow torchvision to download CIFAR (needs internet)
    :param holdout: set aside this class-stratified fraction of the training set, in (0, 0.5], after the task:
        never trained on, labelled (and noisy) like the rest; drawn from the samples that are no copy and no
        copy's source, so no training sample has a duplicate there; for a reference model (:mod:`envs.core.reference`)
    :param trusted: the holdout keeps its clean labels (a small trusted set)
    :param vocab_size: text: the tokenizer's vocabulary size
    :param seq_len: text: token ids per sample (padded or truncated)
    """
    DataConfig(train_size=train_size, task=task, root=root, seed=seed, holdout=holdout, trusted=trusted,
               vocab_size=vocab_size, seq_len=seq_len).validate()
    raw = load_raw(name, root=root, download=download, vocab_size=vocab_size, seq_len=seq_len)
    name = describe(name) if is_own_source(name) else name
    n = len(raw.train_y)
    if train_size is not None:
        if train_size <= 0 or train_size > n:  # its type was checked by DataConfig above
            raise ValueError(f"train_size={train_size!r} is invalid for {name!r}: valid range is [1, {n}] (the training set has {n} samples)")
        keep = stratified_subset(raw.train_y, int(train_size), seed)
        raw.train_x, raw.train_y = raw.train_x[keep], raw.train_y[keep]
    data = apply_task(parse_task(task), raw.train_x, raw.train_y, raw.num_classes, seed, name)
    held = None
    if holdout is not None:
        data, held = _split_holdout(data, holdout, trusted, seed, name)
    raw.train_x, raw.train_y = data.x, data.y
    return DeviceDataset(name, raw, torch.device(device), train_y_true=data.y_true, holdout=held,
                         provenance=(data.duplicate_of, data.minority))


def _split_holdout(data: TaskData, fraction: float, trusted: bool, seed: int,
                   name: str) -> tuple[TaskData, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Hold out ``fraction`` of the training set, class-stratified on the true labels, among the samples that
    are no copy and no copy's source (so the reference never sees a duplicate of a training sample)."""
    copied = np.zeros(len(data.y), dtype=bool)
    copied[data.duplicate_of[data.duplicate_of >= 0]] = True
    unique = np.flatnonzero((data.duplicate_of < 0) & ~copied)
    size = int(round(fraction * len(data.y)))
    inner = min(size / max(len(unique), 1), 0.5)  # the same count, as a share of the candidates
    _, out = stratified_holdout(data.y_true[unique], inner, seed, name)
    out = unique[out]
    keep = np.setdiff1d(np.arange(len(data.y)), out)
    held = (data.x[out], (data.y_true if trusted else data.y)[out], data.y_true[out])
    return data.take(keep), held


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int, name: str = "the dataset") -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(kept, held out)`` indices: a class-stratified, seeded ``fraction`` held out.

    Every class must keep a sample on both sides, else a one-line error (a class the model never
    trains on, or one the reference never sees, makes the comparison meaningless)."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(labels, return_counts=True)
    size = int(round(fraction * len(labels)))
    if size < len(classes) or counts.min() < 2 or len(labels) - size < len(classes):
        raise ValueError(f"holdout={fraction!r} leaves a class of {name!r} empty ({len(labels)} samples, "
                         f"{len(classes)} classes, smallest class {counts.min()}); valid: a holdout of at least one "
                         "sample per class that leaves one per class (a larger train_size or another fraction)")
    keep, out = train_test_split(np.arange(len(labels)), test_size=size, stratify=labels, random_state=seed)
    if len(np.unique(labels[keep])) < len(classes) or len(np.unique(labels[out])) < len(classes):
        raise ValueError(f"holdout={fraction!r} leaves a class of {name!r} empty on one side; valid: a holdout that "
                         "keeps a sample of every class on both sides (a larger train_size or another fraction)")
    return np.sort(keep), np.sort(out)


@dataclass
class DataConfig(Options):
    """The data options of an env: which training subset, which data problem, where the files are.

    :param train_size: class-stratified training subset size (``None``: the whole training set)
    :param task: the data problem of the training set (:mod:`envs.core.tasks`): ``clean``,
        ``noisy[:sym|asym][:rate]``, ``redundant[:fraction][:exact]``, ``imbalanced[:factor]`` or ``mixed``
    :param root: folder of file-backed datasets (``None``: the usual places, see :func:`load_dataset`)
    :param seed: seeds the subset, the task and the holdout. ``None``: ``DataAgent-v0`` draws them from each
        episode's run seed; ``CoverSelect-v0``, whose coreset indices must refer to one training
        set in every episode, loads its data once and reads ``None`` as 0
    :param holdout: a class-stratified fraction of the training set in (0, 0.5] held out after the task, never
        trained on (noisy like the rest); a reference model trains on it (:mod:`envs.core.reference`)
    :param trusted: the holdout keeps clean labels (a small trusted set, as JEST's curated reference data)
    :param vocab_size: text data: the subword tokenizer's vocabulary size (:mod:`envs.core.text`)
    :param seq_len: text data: token ids per sample, padded or truncated
    """

    keyword = "data"
    #: removed options -> what replaces them (named in the error of a mapping that still has them)
    replaced: ClassVar[dict[str, str]] = {"noise": "task='noisy:sym:0.4' (or noisy:asym:<rate>)",
                                          "noise_rate": "task='noisy:sym:0.4' (or noisy:asym:<rate>)"}
    train_size: int | None = None
    task: str = "clean"
    root: str | os.PathLike[str] | None = None
    seed: int | None = None
    holdout: float | None = None
    trusted: bool = False
    vocab_size: int = DEFAULT_VOCAB_SIZE
    seq_len: int = DEFAULT_SEQ_LEN

    def validate(self) -> None:
        """Check every option's type and range (``train_size``'s range needs the dataset: checked on loading)."""
        checks = [
            ("train_size", self.train_size, self.train_size is None or is_count(self.train_size),
             "None or an integer (in [1, N], checked on loading)"),
            ("root", self.root, self.root is None or isinstance(self.root, (str, os.PathLike)), "None or a folder path"),
            ("seed", self.seed, self.seed is None or (is_count(self.seed) and self.seed >= 0), "None or an integer >= 0"),
            ("holdout", self.holdout, self.holdout is None or (is_real(self.holdout) and 0.0 < self.holdout <= 0.5),
             "None or a fraction in (0, 0.5]"),
            ("trusted", self.trusted, isinstance(self.trusted, bool), "True or False"),
        ]
        for name, value, ok, valid in checks:
            if not ok:
                raise ValueError(f"{name}={value!r} is invalid; valid: {valid}")
        check_text_options(self.vocab_size, self.seq_len)
        parse_task(self.task)
        if self.trusted and self.holdout is None:
            raise ValueError("trusted=True needs a holdout; valid: holdout=<fraction in (0, 0.5]> with it, or trusted=False")

    @property
    def seeded(self) -> bool:
        """Whether the loaded training set depends on the seed (a subset, a task or a holdout)."""
        return self.train_size is not None or self.task != "clean" or self.holdout is not None

    def seed_for(self, run_seed: int) -> int:
        """The seed of the subset and the task: :attr:`seed`, or ``run_seed`` when it is None."""
        return run_seed if self.seed is None else self.seed

    def load(self, name: str | Any, device: torch.device | str, run_seed: int = 0) -> DeviceDataset:
        """Load ``name`` with these options, seeded by :attr:`seed` or, when it is None, by ``run_seed``.

        :param name: a registry name or your own data (as :func:`load_dataset`)
        :param device: where the tensors live
        :param run_seed: the seed used when :attr:`seed` is None
        """
        seed = self.seed_for(run_seed)
        return load_dataset(name, device=device, train_size=self.train_size, task=self.task, seed=seed, root=self.root,
                            holdout=self.holdout, trusted=self.trusted, vocab_size=self.vocab_size, seq_len=self.seq_len)

