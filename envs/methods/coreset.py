"""Static coresets: choosing one at a ratio, saving/loading it, and the non-RL selections.

Why: RL-Selector's product is a fixed subset that any later model trains on (docs/methods.md B.1).
A coreset is stored as ``<prefix>.npy`` (sorted int64 training-set indices) plus ``<prefix>.json``
(how it was made: dataset, train_size, data_seed, ratio, seed, method, ledger...), enough to
rebuild the exact training set and evaluate the subset with another model
(``python -m experiments.evaluate_coreset``). Both files are written atomically.

Size rule (:func:`coreset_size_bounds`): a coreset at ratio ``sr`` of ``N`` samples has between
``ceil(N (sr - 1%))`` and ``floor(N (sr + 1%))`` samples (at least 1); when ``N`` is so small that
no integer lies in that range, exactly ``round(sr N)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset
from tqdm import tqdm

from envs.core.data import DataConfig, DeviceDataset
from envs.core.files import atomic_write
from envs.core.trainer import Trainer
from envs.methods.ranking import seeded_generator, tie_broken_order

CORESET_FORMAT = 1
RATIO_TOLERANCE = 0.01


def _check_ratio(ratio: float) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio={ratio!r} is invalid; valid range: (0, 1) exclusive")
    return float(ratio)


def coreset_size_bounds(num_samples: int, ratio: float, tolerance: float = RATIO_TOLERANCE) -> tuple[int, int]:
    """Smallest and largest allowed coreset size at ``ratio`` (within ``tolerance`` of ``num_samples``)."""
    ratio = _check_ratio(ratio)
    # round away float noise such as 100 * 0.49 = 49.00000000000001 before ceil/floor
    low = max(1, math.ceil(round(num_samples * (ratio - tolerance), 9)))
    high = min(num_samples, math.floor(round(num_samples * (ratio + tolerance), 9)))
    if low > high:
        low = high = min(num_samples, max(1, round(ratio * num_samples)))
    return low, high


def select_by_score(scores: torch.Tensor | np.ndarray, ratio: float, seed: int = 0) -> np.ndarray:
    """RL-Selector's final coreset from the score vector ``d`` (docs/methods.md B.6).

    Binarise ``d > 0.5``; if the selected count is outside :func:`coreset_size_bounds`, move it to the
    nearest bound by dropping the selected samples with the scores nearest 0.5 (the lowest above it)
    or adding the unselected ones with the scores nearest 0.5 (the highest at or below it). Both
    cases are one rule: keep the ``k`` highest scores, ``k`` = the selected count clamped to the
    bounds. Equal scores are ordered by a random permutation seeded with ``seed``.

    :return: sorted int64 indices
    """
    s = torch.as_tensor(scores).float()
    low, high = coreset_size_bounds(len(s), ratio)
    k = min(max(int((s > 0.5).sum()), low), high)
    order = tie_broken_order(s, descending=True, generator=seeded_generator(seed, s.device))
    return np.sort(order[:k].cpu().numpy()).astype(np.int64)


def coreset_target_size(num_samples: int, ratio: float) -> int:
    """``round(ratio * N)`` moved into :func:`coreset_size_bounds`: the size of fixed-size selections."""
    low, high = coreset_size_bounds(num_samples, ratio)
    return min(max(round(ratio * num_samples), low), high)


def random_coreset(num_samples: int, size: int, seed: int = 0) -> np.ndarray:
    """A uniform random coreset of ``size`` samples (docs/methods.md C.1, static Random); sorted int64."""
    if not 1 <= size <= num_samples:
        raise ValueError(f"size={size!r} is invalid; valid range: [1, {num_samples}]")
    return np.sort(np.random.default_rng(seed).choice(num_samples, size=size, replace=False)).astype(np.int64)


def proportional_quotas(class_sizes: list[int], total: int) -> list[int]:
    """Split ``total`` over classes in proportion to their sizes (largest remainder; ties to the lower class)."""
    n = sum(class_sizes)
    exact = [size * total / n for size in class_sizes]
    quotas = [math.floor(e) for e in exact]
    order = sorted(range(len(exact)), key=lambda k: (-(exact[k] - quotas[k]), k))
    for k in order[: total - sum(quotas)]:
        quotas[k] += 1
    return quotas


def class_quotas(labels: torch.Tensor, ratio: float) -> list[int]:
    """Samples to keep per class: ``coreset_target_size(N, ratio)`` in all, proportional to class sizes
    (largest remainder). Validates ``ratio`` in (0, 1)."""
    total = coreset_target_size(len(labels), ratio)
    sizes = torch.bincount(labels).tolist()
    return proportional_quotas(sizes, total)


def train_and_evaluate(trainer: Trainer, indices: np.ndarray | torch.Tensor | None = None, *, progress: bool = False,
                       desc: str = "training") -> dict[str, Any]:
    """Train ``trainer``'s model for its configured epochs on ``indices`` (all data when None), then test it.

    Why one function: judging a coreset, a baseline's selection or a pre-training run is the same
    recipe everywhere (the shared :class:`~envs.core.trainer.Trainer`, ``train_epoch`` on the indices),
    so results of different CLIs compare.

    :param trainer: a fresh trainer (its config sets the epochs)
    :param indices: training-set indices to train on
    :param progress: show a progress bar with each epoch's mean loss
    :param desc: the progress bar's label
    :return: ``test`` (:meth:`Trainer.evaluate`), ``ledger`` and ``wall_seconds`` (training and test)
    """
    idx = None if indices is None else torch.as_tensor(indices, device=trainer.device)
    start = time.perf_counter()
    bar = tqdm(range(trainer.config.epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        loss = trainer.train_epoch(idx)
        if progress:
            bar.set_postfix(loss=f"{float(loss):.3f}")
    test = trainer.evaluate()
    return {"test": test, "ledger": trainer.ledger.as_dict(), "wall_seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------
# files


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<prefix>.npy, <prefix>.json)`` from a prefix or either file's path."""
    p = Path(path)
    prefix = p.with_suffix("") if p.suffix in (".npy", ".json") else p
    return prefix.with_name(prefix.name + ".npy"), prefix.with_name(prefix.name + ".json")


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"coreset meta: {type(x).__name__} is not JSON-serialisable")


def save_coreset(path_prefix: str | os.PathLike, indices: np.ndarray | torch.Tensor | list[int],
                 meta: dict[str, Any]) -> tuple[Path, Path]:
    """Save ``indices`` (unique, non-negative) to ``<prefix>.npy`` and ``meta`` plus ``size`` and
    ``format`` to ``<prefix>.json``. The JSON is written last, so a complete JSON means a complete pair.

    :return: the two paths
    """
    idx = np.asarray(torch.as_tensor(indices).cpu()).astype(np.int64).reshape(-1)
    if idx.size and idx.min() < 0:
        raise ValueError(f"coreset indices must be >= 0, got min {int(idx.min())}")
    idx = np.sort(idx)
    if np.any(idx[1:] == idx[:-1]):
        raise ValueError("coreset indices contain duplicates")
    num_train = meta.get("num_train")
    if num_train is not None and idx.size and idx[-1] >= num_train:
        raise ValueError(f"coreset index {int(idx[-1])} is out of range for num_train={num_train}")
    npy, js = _paths(path_prefix)
    full = {**meta, "size": int(idx.size), "format": CORESET_FORMAT}
    text = json.dumps(full, indent=2, sort_keys=True, default=_jsonable).encode()
    atomic_write(npy, lambda f: np.save(f, idx))
    atomic_write(js, lambda f: f.write(text))
    return npy, js


def load_coreset(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a coreset saved by :func:`save_coreset` from its prefix, ``.npy`` or ``.json`` path."""
    npy, js = _paths(path)
    for p in (npy, js):
        if not p.is_file():
            raise FileNotFoundError(f"coreset file {str(p)!r} not found (a coreset is a .npy + .json pair)")
    meta = json.loads(js.read_text())
    idx = np.load(npy).astype(np.int64)
    if idx.ndim != 1 or len(idx) != meta.get("size", len(idx)):
        raise ValueError(f"{npy}: {idx.shape} indices but the JSON says size {meta.get('size')}")
    return idx, meta


def load_coreset_data(path: str | os.PathLike, device: torch.device,
                      root: str | None = None) -> tuple[np.ndarray, dict[str, Any], DeviceDataset]:
    """A saved coreset and the training set it indexes, rebuilt from its metadata (dataset, subset, data
    seed, task); a rebuilt set of another size is a ``ValueError``.

    :param path: the coreset's prefix, ``.npy`` or ``.json`` path
    :param device: where the rebuilt dataset lives
    :param root: folder of file-backed datasets
    """
    indices, meta = load_coreset(path)
    task = meta.get("task", "clean")
    if meta.get("noise") and meta.get("noise_rate"):  # saved before tasks replaced the noise options
        task = f"noisy:{'sym' if meta['noise'] == 'symmetric' else 'asym'}:{meta['noise_rate']}"
    data = DataConfig(train_size=meta.get("train_size"), task=task, root=root, seed=meta.get("data_seed", 0), holdout=meta.get("holdout"),
                      trusted=meta.get("trusted", False),
                      **{k: meta[k] for k in ("vocab_size", "seq_len") if k in meta}).load(meta["dataset"], device)
    if data.num_train != meta["num_train"]:
        raise ValueError(f"the rebuilt {meta['dataset']!r} training set has {data.num_train} samples but the coreset "
                         f"was selected from {meta['num_train']}")
    return indices, meta, data


def coreset_subset(dataset: Dataset | DeviceDataset, coreset: str | os.PathLike | np.ndarray) -> Subset:
    """A ``torch.utils.data.Subset`` of ``dataset``'s training samples in ``coreset`` (a path or indices),
    for ordinary PyTorch pipelines. A :class:`DeviceDataset` is wrapped as ``(uint8 image, label)`` pairs."""
    idx = load_coreset(coreset)[0] if isinstance(coreset, (str, os.PathLike)) else np.asarray(coreset, dtype=np.int64)
    if isinstance(dataset, DeviceDataset):
        dataset = TensorDataset(dataset.train_x, dataset.train_y)
    n = len(dataset)  # type: ignore[arg-type]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"coreset indices span [{int(idx.min())}, {int(idx.max())}] but the dataset has {n} samples")
    return Subset(dataset, idx.tolist())
