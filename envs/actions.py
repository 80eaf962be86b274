"""The per-sample score action that both environments share.

Why one place: ``DataAgent-v0`` and ``CoverSelect-v0`` take the same action, one value in [-1, 1] per sample of
the observed batch, mapped to a score ``(a + 1) / 2`` in [0, 1]. So they must reject bad input the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_EXPECTED = "one score in [-1, 1] per sample of the observed batch"


def check_score_action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an action against ``shape``; return it as float32 clipped to [-1, 1].

    Any array-like of real numbers works (NumPy of any real dtype, lists, torch tensors on any device).
    Out-of-range values are clipped before the float32 cast, so a huge finite value is a score of 1.

    :raises TypeError: not an array of real numbers (strings, objects, complex, ragged lists)
    :raises ValueError: a wrong shape, or NaN / infinite values (clipping cannot repair those)
    """
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    try:
        raw = np.asarray(action)
    except (TypeError, ValueError) as err:  # e.g. ragged nested lists
        raise TypeError(f"action is not an array of numbers ({err}); expected shape {shape}: {_EXPECTED}") from None
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"action has dtype {raw.dtype}; expected real numbers of shape {shape}: {_EXPECTED}")
    if raw.shape != shape:
        raise ValueError(f"action has shape {raw.shape}; expected {shape}: {_EXPECTED}")
    if not np.isfinite(raw).all():
        raise ValueError(f"action contains {int((~np.isfinite(raw)).sum())} NaN or infinite value(s); scores must be finite")
    return np.clip(raw, -1.0, 1.0).astype(np.float32)
