"""Static coresets chosen without RL, from a dataset name to the indices and the metadata saved beside them.

Why in the run library: ``experiments.select_coreset`` is its CLI, and any script or benchmark can call it without
importing a CLI.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from envs.core.data import load_dataset
from envs.core.trainer import Trainer, TrainerConfig, resolve_device
from envs.methods.coreset import coreset_target_size, random_coreset, select_by_cover_degree, train_and_evaluate

METHODS = ("cover", "random")


def make_coreset(method: str = "cover", dataset: str = "digits", model: str = "mlp", *, keep_ratio: float = 0.5,
                   epsilon: str | float = "mean", seed: int = 0, data_seed: int = 0, device: str = "auto",
                   train_size: int | None = None, noise: str | None = None, noise_rate: float = 0.0,
                   root: str | None = None, progress: bool = True, **trainer_opts: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Load the data, run a non-RL selection (pre-training the model first for ``cover``) and return the
    coreset's indices and the metadata to save with them. (Not :func:`envs.methods.baselines.static.select_coreset`,
    which selects from scores already computed.)"""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(METHODS)}")
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_opts)
    config.validate()
    data = load_dataset(dataset, device=dev, train_size=train_size, noise=noise, noise_rate=noise_rate,
                        seed=data_seed, root=root)
    meta: dict[str, Any] = {
        "method": method, "dataset": dataset, "num_train": data.num_train, "train_size": train_size,
        "data_seed": data_seed, "noise": noise, "noise_rate": noise_rate, "ratio": keep_ratio, "seed": seed,
    }
    start = time.perf_counter()
    if method == "random":
        indices = random_coreset(data.num_train, coreset_target_size(data.num_train, keep_ratio), seed)
    else:
        trainer = Trainer(data, model, config, seed=seed, track_samples=False)
        pretrained = train_and_evaluate(trainer, progress=progress, desc=f"pre-training {dataset}/{model}")
        indices, _ = select_by_cover_degree(trainer, keep_ratio, epsilon, seed=seed)
        meta.update(model=model, epsilon=str(epsilon), trainer=config.as_dict(), selector_test=pretrained["test"],
                    ledger=trainer.ledger.as_dict())
    meta["wall_seconds"] = time.perf_counter() - start
    return indices, meta
