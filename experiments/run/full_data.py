"""Full-data training: the reference every selection method is measured against (``experiments.full_data`` is its CLI).

Why in the run library: the train CLI's ``--reference full``, the benchmark and the CLI all run it, and the library never
imports a CLI.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

from tqdm import tqdm

from envs.core.checkpoint import CheckpointDir, rng_state, set_rng_state
from envs.core.data import DataConfig
from envs.core.trainer import Trainer, TrainerConfig, resolve_device


def run_full_data(dataset: str | Any = "digits", model: str = "cnn", data: DataConfig | None = None,
                  trainer: TrainerConfig | None = None, *, seed: int = 0, device: str = "auto", progress: bool = True,
                  checkpoints: CheckpointDir | None = None, checkpoint_every: int = 1) -> dict[str, Any]:
    """Train ``model`` on all of ``dataset`` and return test metrics, the ledger and the config.

    With ``checkpoints``, the run is saved there every ``checkpoint_every`` epochs and continues
    from the newest checkpoint it finds (exactly, on CPU); a checkpoint of another configuration is
    refused with :class:`envs.core.checkpoint.CheckpointError`.

    :param dataset: a registry name or your own data (:func:`envs.core.data.load_dataset`)
    :param model: a registry name
    :param data: the data options (None: the defaults); a None ``data.seed`` is the run's ``seed``
    :param trainer: the inner training's options (None: the defaults)
    :param seed: the run seed (model, shuffling, augmentation)
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    :param progress: a progress bar over the epochs
    :param checkpoints: where to save and find the run's checkpoints (None: none)
    :param checkpoint_every: epochs between checkpoints
    """
    dev = resolve_device(device)
    data, config = data or DataConfig(), trainer or TrainerConfig()
    config.validate()
    loaded = data.load(dataset, dev, run_seed=seed)
    model_trainer = Trainer(loaded, model, config, seed=seed)
    identity = {"dataset": loaded.name, "model": model, "seed": seed, "trainer": config.as_dict(),
                "data": {k: v for k, v in asdict(data).items() if k != "root"} | {"seed": data.seed_for(seed)}}
    elapsed = 0.0
    if checkpoints is not None and checkpoints.steps():
        _, saved, skipped = checkpoints.load_newest(identity)
        for reason in skipped:
            print(f"note: skipped a checkpoint that does not load: {reason}", file=sys.stderr)
        model_trainer.load_state_dict(saved["trainer"])
        set_rng_state(saved["rng"])
        elapsed = saved["elapsed"]
    start = time.perf_counter() - elapsed
    bar = tqdm(range(model_trainer.epoch, config.epochs), desc=f"full data {loaded.name}/{model}", disable=not progress,
               leave=False, initial=model_trainer.epoch, total=config.epochs)
    for _ in bar:
        loss = model_trainer.train_epoch()
        bar.set_postfix(loss=f"{float(loss):.3f}")
        if checkpoints is not None and checkpoint_every and model_trainer.epoch % checkpoint_every == 0:
            payload = {"trainer": model_trainer.state_dict(), "rng": rng_state(), "elapsed": time.perf_counter() - start}
            checkpoints.save(model_trainer.epoch, payload, identity)
    test = model_trainer.evaluate()
    return {
        "method": "full",
        "dataset": loaded.name,
        "model": model,
        "seed": seed,
        "device": str(dev),
        "train_size": loaded.num_train,
        "trainer": config.as_dict(),
        "test": test,
        "ledger": model_trainer.ledger.as_dict(),
        "wall_seconds": time.perf_counter() - start,
    }
