"""The per-sample score action that both environments share.

Why one place: ``DataAgent-v0`` and ``CoverSelect-v0`` take the same action, one value in [-1, 1] per sample of
the observed batch, mapped to a score ``(a + 1) / 2`` in [0, 1]. So they must reject bad input the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_score_action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an action against ``shape``; return it as float32 clipped to [-1, 1].

    :raises ValueError: a wrong shape, or NaN / infinite values (clipping cannot repair those)
    """
    a = np.asarray(action, dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"action has shape {a.shape}; expected {shape}: one score in [-1, 1] per sample of the observed batch")
    if not np.isfinite(a).all():
        raise ValueError(f"action contains {int((~np.isfinite(a)).sum())} NaN or infinite value(s); scores must be finite")
    return np.clip(a, -1.0, 1.0)
