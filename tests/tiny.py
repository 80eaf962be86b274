"""The one tiny configuration the tests build envs and CLI runs from: seconds on a 2-core CPU.

Why one: a test file with its own config drifts (another dataset, another batch size) and stops testing what
the others test. Every file states only what it changes: ``tiny_env(train_size=60)`` for an epoch whose last
batch is padded, ``tiny_cli(epochs=3)`` for a run long enough to interrupt.
"""

from __future__ import annotations

from typing import Any

#: the defaults: the generated 4-class 8x8 set, an MLP, batches of 16, 2 epochs, on the CPU
DATASET, MODEL, TRAIN_SIZE, BATCH_SIZE, EPOCHS = "synthetic", "mlp", 160, 16, 2


def tiny_env(*, dataset: str = DATASET, model: str = MODEL, train_size: int | None = TRAIN_SIZE,
             batch_size: int = BATCH_SIZE, epochs: int = EPOCHS, trainer: dict[str, Any] | None = None,
             data: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """Keyword arguments of ``gym.make(env_id, ...)`` for a tiny run.

    :param train_size: the training subset (None: the whole generated set, 512 samples)
    :param trainer: extra trainer options (beside ``batch_size`` and ``epochs``)
    :param data: extra data options (beside ``train_size``)
    :param options: the env's own options (``keep_ratio``, ``state``...)
    """
    data = {**({} if train_size is None else {"train_size": train_size}), **(data or {})}
    return {"dataset": dataset, "model": model, "trainer": {"batch_size": batch_size, "epochs": epochs, **(trainer or {})},
            "data": data, "device": "cpu", **options}


def tiny_cli(*, dataset: str = DATASET, model: str = MODEL, train_size: int = TRAIN_SIZE, batch_size: int = BATCH_SIZE,
             epochs: int = EPOCHS, extra: tuple[str, ...] = ("--no-progress",)) -> list[str]:
    """The same run as CLI flags (for ``experiments.train`` and the CLIs sharing its flags).

    :param extra: flags appended after the configuration
    """
    return ["--dataset", dataset, "--model", model, "--train-size", str(train_size), "--batch-size", str(batch_size),
            "--epochs", str(epochs), *extra]
