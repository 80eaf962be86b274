"""Learning-rate schedules as functions of training *progress*, not of a step counter.

Why: data pruning changes the number of optimizer steps per epoch. A step-counted scheduler
(e.g. ``torch.optim.lr_scheduler.OneCycleLR``) then either raises "Tried to step N times" or
ends early. Here an epoch always covers ``1/epochs`` of the schedule, whatever its step count,
so pruned and full runs follow the same LR curve over epochs and nothing can overrun.
"""

from __future__ import annotations

import math

SCHEDULES = ("onecycle", "cosine", "constant")


def _cos_interp(start: float, end: float, t: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def lr_at(schedule: str, progress: float, base_lr: float, pct_start: float = 0.3,
          div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """Learning rate at ``progress`` in [0, 1] (values outside are clamped).

    ``onecycle``: cosine warm-up from ``base_lr/div_factor`` to ``base_lr`` over ``pct_start``,
    then cosine decay to ``base_lr/div_factor/final_div_factor`` (PyTorch's OneCycleLR shape,
    the InfoBatch/Data Agent CIFAR recipe; momentum is not cycled).
    ``cosine``: ``base_lr`` annealed to 0. ``constant``: ``base_lr``.
    """
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return _cos_interp(base_lr, 0.0, t)
    if schedule == "onecycle":
        initial = base_lr / div_factor
        if t < pct_start:
            return _cos_interp(initial, base_lr, t / pct_start)
        return _cos_interp(base_lr, initial / final_div_factor, (t - pct_start) / (1.0 - pct_start))
    raise ValueError(f"unknown schedule {schedule!r}; valid choices: {', '.join(SCHEDULES)}")
