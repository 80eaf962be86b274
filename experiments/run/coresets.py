"""Static coresets chosen without RL, from a dataset name to the indices and the metadata saved beside them.

Why in the run library: ``experiments.select_coreset`` is its CLI, and any script or benchmark can call it without
importing a CLI. Every registered static method (:data:`envs.methods.baselines.static.STATIC_BASELINES`) goes
through the one path the benchmark uses: a proxy run when the method needs scores or features, then
:func:`~envs.methods.baselines.static.select_coreset`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from envs.core.data import DataConfig
from envs.core.reference import ReferenceConfig, load_reference
from envs.core.trainer import TrainerConfig, resolve_device
from envs.methods.baselines.static import STATIC_BASELINES, run_proxy, select_coreset
from envs.methods.oracle import real_methods

#: the methods a coreset can be made with: every registered static method but the oracle (it reads what a task
#: hides: a ceiling of the task scores, never a real method)
METHODS = real_methods(STATIC_BASELINES)


def make_coreset(method: str = "cover", dataset: str | Any = "digits", model: str = "mlp", data: DataConfig | None = None,
                 trainer: TrainerConfig | None = None, *, keep_ratio: float = 0.5, seed: int = 0,
                 device: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Load the data, select a coreset with the static method ``method`` and return its indices and the metadata to
    save with them (what :func:`envs.methods.coreset.load_coreset_data` needs to rebuild the training set).

    Methods that need scores or features read one proxy run of ``model`` trained for the trainer options' whole
    ``epochs`` (:func:`~envs.methods.baselines.static.run_proxy`); its cost is the coreset's ``ledger``. ``random`` and
    ``random_uniform`` train nothing. ``reducible_loss`` also trains a reference model (on the ``holdout``
    when there is one, else on swapped halves; :mod:`envs.core.reference`), whose cost joins the ledger.

    :param method: a name in :data:`METHODS`
    :param dataset: a registry name or your own data (:func:`envs.core.data.load_dataset`)
    :param model: the proxy run's model
    :param data: the data options (None: the defaults); its ``seed`` (None: 0) seeds the subset, the task and the
        holdout, which never joins the coreset
    :param trainer: the proxy run's options (:class:`~envs.core.trainer.TrainerConfig`; None: the defaults)
    :param keep_ratio: the coreset's fraction of the training set, in (0, 1)
    :param seed: seeds the proxy run and the selection's tie-breaks (or the random draw)
    :param device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; valid choices: {', '.join(METHODS)}")
    config = trainer or TrainerConfig()
    config.validate()
    data_options = replace(data or DataConfig(), seed=(data or DataConfig()).seed_for(0))
    loaded = data_options.load(dataset, resolve_device(device))
    start = time.perf_counter()
    if STATIC_BASELINES[method].needs == "labels":
        coreset = select_coreset(method, loaded.train_y, keep_ratio, seed)
    else:
        reference = None
        if method == "reducible_loss":
            kind = ReferenceConfig(kind="holdout" if data_options.holdout else "halves")
            reference = load_reference(loaded, model, config, kind, asdict(data_options), data_options.seed)
        proxy = run_proxy(loaded, model, config, score_epochs=config.epochs, seed=seed, reference=reference)
        coreset = select_coreset(method, proxy, keep_ratio, seed)
    d = data_options
    meta = coreset.meta(dataset=dataset if isinstance(dataset, str) else loaded.name, train_size=d.train_size,
                        data_seed=d.seed, task=d.task, holdout=d.holdout, trusted=d.trusted, vocab_size=d.vocab_size,
                        seq_len=d.seq_len, wall_seconds=time.perf_counter() - start)
    return coreset.indices, meta
