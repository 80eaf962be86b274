"""Full-data training: the reference every selection method is measured against (``experiments.full_data`` is its CLI).

Why in the run library: the train CLI's ``--reference full``, the benchmark and the CLI all run it, and the library never
imports a CLI.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from envs.core.checkpoint import CheckpointDir, rng_state, set_rng_state
from envs.core.data import DataConfig
from envs.core.text import DEFAULT_SEQ_LEN, DEFAULT_VOCAB_SIZE
from envs.core.trainer import Trainer, TrainerConfig, resolve_device


def run_full_data(dataset: str = "digits", model: str = "cnn", *, seed: int = 0, device: str = "auto",
                  train_size: int | None = None, task: str = "clean",
                  root: str | None = None, data_seed: int | None = None, progress: bool = True,
                  vocab_size: int = DEFAULT_VOCAB_SIZE, seq_len: int = DEFAULT_SEQ_LEN,
                  checkpoints: CheckpointDir | None = None, checkpoint_every: int = 1, **trainer_kw: Any) -> dict[str, Any]:
    """Train ``model`` on all of ``dataset`` and return test metrics, the ledger and the config.

    With ``checkpoints``, the run is saved there every ``checkpoint_every`` epochs and continues
    from the newest checkpoint it finds (exactly, on CPU); a checkpoint of another configuration is
    refused with :class:`envs.core.checkpoint.CheckpointError`. ``data_seed`` seeds the training subset and
    label noise when given (else ``seed`` does). ``vocab_size`` and ``seq_len``: text data's tokenisation."""
    dev = resolve_device(device)
    config = TrainerConfig(**trainer_kw)
    text = dict(vocab_size=vocab_size, seq_len=seq_len)
    data = DataConfig(train_size=train_size, task=task, root=root,
                      seed=data_seed, **text).load(dataset, dev, run_seed=seed)
    trainer = Trainer(data, model, config, seed=seed)
    identity = {"dataset": dataset, "model": model, "seed": seed, "train_size": train_size, "task": task, "data_seed": data_seed, "trainer": config.as_dict()}
    if data.modality == "text":  # only text has them: checkpoints of other data keep their identity
        identity.update(text)
    elapsed = 0.0
    if checkpoints is not None and checkpoints.steps():
        _, saved, skipped = checkpoints.load_newest(identity)
        for reason in skipped:
            print(f"note: skipped a checkpoint that does not load: {reason}", file=sys.stderr)
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
