"""Static coresets chosen without RL, from a dataset name to the indices and the metadata saved beside them.

Why in the run library: ``experiments.select_coreset`` is its CLI, and any script or benchmark can call it without
importing a CLI. Every registered static method (:data:`envs.methods.baselines.static.STATIC_BASELINES`) goes
through the one path the benchmark uses: a proxy run when the method needs scores or features, then
:func:`~envs.methods.baselines.static.select_coreset`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np

from envs.core.data import DataConfig
from envs.core.reference import ReferenceConfig, load_reference
from envs.core.text import DEFAULT_SEQ_LEN, DEFAULT_VOCAB_SIZE
from envs.core.trainer import TrainerConfig, resolve_device
from envs.methods.baselines.static import STATIC_BASELINES, run_proxy, select_coreset
from envs.methods.oracle import real_methods

#: the methods a coreset can be made with: every registered static method but the oracle (it reads what a task
#: hides: a ceiling of the task scores, never a real method)
METHODS = real_methods(STATIC_BASELINES)


def make_coreset(method: str = "cover", dataset: str = "digits", model: str = "mlp", *, keep_ratio: float = 0.5,
                 seed: int = 0, data_seed: int = 0, device: str = "auto", train_size: int | None = None,
                 task: str = "clean", root: str | None = None,
                 holdout: float | None = None, trusted: bool = False, vocab_size: int = DEFAULT_VOCAB_SIZE,
                 seq_len: int = DEFAULT_SEQ_LEN, **trainer_opts: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Load the data, select a coreset with the static method ``method`` and return its indices and the metadata to
    save with them (what :func:`envs.methods.coreset.load_coreset_data` needs to rebuild the training set).

    Methods that need scores or features read one proxy run of ``model`` trained for the trainer options' whole
    ``epochs`` (:func:`~envs.methods.baselines.static.run_proxy`); its cost is the coreset's ``ledger``. ``random`` and
    ``random_uniform`` train nothing. ``reducible_loss`` also trains a reference model (on the ``holdout``
    when there is one, else on swapped halves; :mod:`envs.core.reference`), whose cost joins the ledger.

    :param method: a name in :data:`METHODS`
    :param keep_ratio: the coreset's fraction of the training set, in (0, 1)
    :param seed: seeds the proxy run and the selection's tie-breaks (or the random draw)
    :param data_seed: seeds the ``train_size`` subset and the ``task``
    :param task: the data problem (:mod:`envs.core.tasks`)
    :param holdout: hold out this stratified fraction of the training set (never in the coreset)
    :param trusted: the holdout keeps clean labels
    :param vocab_size: text data: the tokenizer's vocabulary size
    :param seq_len: text data: token ids per sample
    :param trainer_opts: :class:`~envs.core.trainer.TrainerConfig` fields of the proxy run
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(METHODS)}")
    config = TrainerConfig(**trainer_opts)
    config.validate()
    data_options = DataConfig(train_size=train_size, task=task, root=root, seed=data_seed,
                              holdout=holdout, trusted=trusted, vocab_size=vocab_size, seq_len=seq_len)
    data = data_options.load(dataset, resolve_device(device))
    start = time.perf_counter()
    if STATIC_BASELINES[method].needs == "labels":
        coreset = select_coreset(method, data.train_y, keep_ratio, seed)
    else:
        reference = None
        if method == "reducible_loss":
            kind = ReferenceConfig(kind="holdout" if holdout else "halves")
            reference = load_reference(data, model, config, kind, asdict(data_options), data_seed)
        proxy = run_proxy(data, model, config, score_epochs=config.epochs, seed=seed, reference=reference)
        coreset = select_coreset(method, proxy, keep_ratio, seed)
    meta = coreset.meta(dataset=dataset, train_size=train_size, data_seed=data_seed, task=task, holdout=holdout, trusted=trusted, vocab_size=vocab_size, seq_len=seq_len,
                        wall_seconds=time.perf_counter() - start)
    return coreset.indices, meta
