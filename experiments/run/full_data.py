"""Full-data training: the reference every selection method is measured against (``experiments.full_data`` is its CLI).

Why in the run library: the train CLI's ``--reference full``, the benchmark and the CLI all run it, and the library never
imports a CLI.
"""

from __future__ import annotations

import time
from typing import Any

from tqdm import tqdm

from envs.core.checkpoint import CheckpointDir, load_checkpoint, rng_state, set_rng_state
from envs.core.data import DataConfig
from envs.core.trainer import Trainer, TrainerConfig, resolve_device


def run_full_data(dataset: str = "digits", model: str = "cnn", *, seed: int = 0, device: str = "auto",
                  train_size: int | None = None, task: str = "clean",
                  root: str | None = None, data_seed: int | None = None, progress: bool = True,
                  checkpoints: CheckpointDir | None = None, checkpoint_every: int = 1, **trainer_kw: Any) -> dict[str, Any]:
    """Train ``model`` on all of ``dataset`` and return test metrics, the ledger and the config.

    With ``checkpoints``, the run is saved there every ``checkpoint_every`` epochs and continues
    from the newest checkpoint it finds (exactly, on CPU); a checkpoint of another configuration is
    refused with :class:`envs.core.checkpoint.CheckpointError`. ``data_seed`` seeds the training subset and
    the task when given (else ``seed`` does)."""
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_kw)
    data = DataConfig(train_size=train_size, task=task, root=root,
                      seed=data_seed).load(dataset, dev, run_seed=seed)
    trainer = Trainer(data, model, config, seed=seed)
    identity = {"dataset": dataset, "model": model, "seed": seed, "train_size": train_size, "task": task,
                "data_seed": data_seed, "trainer": config.as_dict()}
    elapsed = 0.0
    latest = checkpoints.latest() if checkpoints is not None else None
    if latest is not None:
        saved = load_checkpoint(latest, identity)
        trainer.load_state_dict(saved["trainer"])
        set_rng_state(saved["rng"])
        elapsed = saved["elapsed"]
    start = time.perf_counter() - elapsed
    bar = tqdm(range(trainer.epoch, config.epochs), desc=f"full data {dataset}/{model}", disable=not progress,
               leave=False, initial=trainer.epoch, total=config.epochs)
    for _ in bar:
        loss = trainer.train_epoch()
        bar.set_postfix(loss=f"{float(loss):.3f}")
        if checkpoints is not None and checkpoint_every and trainer.epoch % checkpoint_every == 0:
            payload = {"trainer": trainer.state_dict(), "rng": rng_state(), "elapsed": time.perf_counter() - start}
            checkpoints.save(trainer.epoch, payload, identity)
    test = trainer.evaluate()
    return {
        "method": "full",
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "device": str(dev),
        "train_size": data.num_train,
        "trainer": config.as_dict(),
        "test": test,
        "ledger": trainer.ledger.as_dict(),
        "wall_seconds": time.perf_counter() - start,
    }
