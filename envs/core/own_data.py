"""Bring your own data: arrays, tensors, torch Datasets and Hugging Face datasets as train/test splits.

Why a module of its own: the registry datasets (:mod:`envs.core.data`) are decoded from files; a user's
data arrives as objects. This module turns those objects into plain host arrays once, so everything
after that (subsets, label noise, the move to the device, batching, both envs, the trainer) is the
same code path as for the registry datasets.

A data source is one of:

- ``(X, y)``: arrays or tensors of inputs and integer labels of equal length;
- a ``torch.utils.data.Dataset`` whose items are ``(input, label)`` pairs (read once, in batches);
- a Hugging Face ``datasets.Dataset`` with a ``label`` (or ``labels``) column and one input column
  (optional: ``pip install datasets``; no import happens unless such an object is passed);
- a mapping ``{"train": source, "test": source}`` (a ``datasets.DatasetDict`` is one), optionally
  with ``"num_classes"``. Without ``"test"``, a fixed stratified 20% of the samples is held out
  for testing (the same rule as ``digits``).

Inputs: a list or 1-D array of strings is text, tokenised like the registry text sets (a subword
tokenizer trained on the training split, padded ids: :mod:`envs.core.text`); ``uint8`` arrays of shape ``(N, C, H, W)`` or ``(N, H, W)`` are images and are normalised
per channel like the registry images; any other floating input (tabular vectors, images already
normalised by a transform) is used as given in float32; other integer inputs (token ids) are used
as given in int64. Labels must be integers in ``[0, num_classes)``; ``num_classes`` defaults to the
largest label + 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

OWN_SOURCES = "(X, y) arrays or tensors (X may be a list of strings), a torch Dataset of (input, label), a Hugging Face Dataset, or {'train': ..., 'test': ...}"
TEST_FRACTION = 0.2
LABEL_COLUMNS = ("label", "labels")


class OwnSplits(NamedTuple):
    """A user's data as host arrays: inputs of any shape, int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int


def is_own_source(source: Any) -> bool:
    """Whether ``source`` is user data (anything but a registry name)."""
    return not isinstance(source, str)


def describe(source: Any) -> str:
    """A short name for user data, for logs and metadata (never the data itself)."""
    if isinstance(source, Mapping):
        return describe(source["train"]) if "train" in source else "own:mapping"
    if isinstance(source, (tuple, list)):
        return f"own:arrays{tuple(np.shape(source[0]))}" if len(source) == 2 else "own:sequence"
    return f"own:{type(source).__name__}"


def _as_array(values: Any, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    try:
        return np.asarray(values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} cannot be read as an array ({err})") from None


def is_text(x: np.ndarray) -> bool:
    """Whether inputs are texts: a 1-D array of strings (what :func:`own_splits` gives for a list of strings)."""
    return x.ndim == 1 and (x.dtype.kind == "U" or (x.dtype == object and all(isinstance(v, str) for v in x)))


def _hf_columns(ds: Any) -> tuple[Any, Any]:
    """Input and label columns of a Hugging Face dataset, as numpy arrays."""
    columns = list(ds.column_names)
    labels = [c for c in LABEL_COLUMNS if c in columns]
    inputs = [c for c in columns if c not in LABEL_COLUMNS]
    if len(labels) != 1 or len(inputs) != 1:
        raise ValueError(f"a Hugging Face dataset needs one label column ({' or '.join(LABEL_COLUMNS)}) and exactly one "
                         f"input column; found columns {columns}: keep two with ds.select_columns([input, label])")
    table = ds.with_format("numpy")
    return table[inputs[0]], table[labels[0]]


def _torch_dataset_arrays(ds: torch.utils.data.Dataset) -> tuple[Any, Any]:
    """Read a map-style Dataset of ``(input, label)`` once, in batches (a TensorDataset directly)."""
    if isinstance(ds, torch.utils.data.TensorDataset):
        if len(ds.tensors) != 2:
            raise ValueError(f"a TensorDataset must hold (inputs, labels), 2 tensors; it holds {len(ds.tensors)}")
        return ds.tensors
    if not hasattr(ds, "__len__") or len(ds) == 0:
        raise ValueError("a torch Dataset must be map-style (with __len__) and non-empty")
    first = ds[0]
    if not isinstance(first, (tuple, list)) or len(first) != 2:
        raise ValueError(f"a torch Dataset must yield (input, label) pairs; item 0 is {type(first).__name__}")
    xs, ys = [], []
    try:
        for x, y in torch.utils.data.DataLoader(ds, batch_size=1024, shuffle=False):
            xs.append(x)
            ys.append(y)
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"the items of {type(ds).__name__} cannot be stacked into tensors ({err}); give it a transform "
                         "that returns tensors of one shape") from None
    return torch.cat(xs), torch.cat(ys)


def _pair(source: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, labels)`` of one split, validated: equal lengths, integer labels >= 0."""
    if isinstance(source, (tuple, list)) and len(source) == 2:
        x, y = source
    elif hasattr(source, "column_names") and type(source).__module__.startswith("datasets"):
        x, y = _hf_columns(source)
    elif isinstance(source, torch.utils.data.Dataset):
        x, y = _torch_dataset_arrays(source)
    else:
        raise ValueError(f"dataset of type {type(source).__name__} is invalid; valid: a registry name or {OWN_SOURCES}")
    x, y = _as_array(x, f"{split} inputs"), _as_array(y, f"{split} labels")
    if (x.ndim < 2 and not is_text(x)) or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise ValueError(f"{split} data has inputs of shape {x.shape} and labels of shape {y.shape}; valid: N >= 1 inputs "
                         "(N, ...) or N strings, and N labels (N,) of the same length")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))):
        raise ValueError(f"{split} labels have dtype {y.dtype} with non-integer values; valid: integer class ids in [0, num_classes)")
    if y.min() < 0:
        raise ValueError(f"{split} labels include {y.min()}; valid: integer class ids in [0, num_classes)")
    return _as_inputs(x), y.astype(np.int64)


def _as_inputs(x: np.ndarray) -> np.ndarray:
    """uint8 images as (N, C, H, W); other floats as float32, other integers as int64, texts as an object array of str."""
    if is_text(x):
        return x.astype(object)
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        return np.ascontiguousarray(x if x.ndim == 4 else x[:, None])
    if np.issubdtype(x.dtype, np.floating):
        return np.ascontiguousarray(x, dtype=np.float32)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return np.ascontiguousarray(x, dtype=np.int64)
    raise ValueError(f"inputs of dtype {x.dtype} are invalid; valid: numbers (uint8 images, floats, integer token ids) "
                     "or a list of strings")


def own_splits(source: Any) -> OwnSplits:
    """Train and test arrays of a user data source (see the module docstring)."""
    spec = source if isinstance(source, Mapping) else {"train": source}
    unknown = set(spec) - {"train", "test", "num_classes"}
    if "train" not in spec or unknown:
        raise ValueError(f"a dataset mapping needs a 'train' entry and may have 'test' and 'num_classes'; got keys {sorted(spec)}")
    train_x, train_y = _pair(spec["train"], "train")
    test = spec.get("test")
    test_x, test_y = _pair(test, "test") if test is not None else (train_x[:0], train_y[:0])
    if test is not None and (test_x.shape[1:] != train_x.shape[1:] or test_x.dtype != train_x.dtype):
        raise ValueError(f"test inputs {test_x.shape[1:]} {test_x.dtype} differ from train inputs "
                         f"{train_x.shape[1:]} {train_x.dtype}; valid: one input shape and dtype")
    largest = int(max(train_y.max(), test_y.max(initial=0)))
    num_classes = spec.get("num_classes")
    if num_classes is None:
        num_classes = largest + 1
    elif not isinstance(num_classes, (int, np.integer)) or num_classes < 2 or largest >= num_classes:
        raise ValueError(f"labels go up to {largest} but num_classes={num_classes!r}; valid: labels in [0, num_classes), "
                         "num_classes >= 2")
    if num_classes < 2:
        raise ValueError("the labels hold a single class; valid: at least 2 classes")
    if test is None:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(train_y)
        classes = int((counts > 0).sum())
        stratify = train_y if counts[counts > 0].min() >= 2 and TEST_FRACTION * len(train_y) >= classes else None
        tr, te = train_test_split(np.arange(len(train_y)), test_size=TEST_FRACTION, stratify=stratify, random_state=0)
        train_x, train_y, test_x, test_y = train_x[tr], train_y[tr], train_x[te], train_y[te]
    return OwnSplits(train_x, train_y, test_x, test_y, int(num_classes))
