"""What one run is: :class:`RunConfig`, the env's keywords it gives and the identity a checkpoint must match.

Why one module: every caller (the train CLI, the benchmark, compare_layouts, tune, own_loop) describes a
run with the same object, and :func:`env_kwargs` is the one place where it becomes env constructor
keywords, so a change of the envs' signatures is adapted here alone.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs import ENV_IDS
from envs.core.checks import coerce_options
from envs.core.data import DataConfig
from envs.core.trainer import TrainerConfig
from experiments.run.env_options import env_options

#: the method options of each env, read from its constructor (:mod:`experiments.run.env_options`)
ENV_OPTIONS: dict[str, tuple[str, ...]] = {env_id: tuple(env_options(env_id)) for env_id in ENV_IDS}


#: every env method option name, each once (both envs' together)
ALL_ENV_OPTIONS: tuple[str, ...] = tuple(dict.fromkeys(n for names in ENV_OPTIONS.values() for n in names))


def yaml_ready(value: Any) -> Any:
    """``value`` as ``config.yml`` records it: option dataclasses as dicts, paths as strings, recursively."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: yaml_ready(v) for k, v in value.items()}
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: run options renamed since a ``config.yml`` could have recorded them: old name -> new name
RENAMED = {"mode": "layout"}


@dataclass
class RunConfig:
    """One run of an SB3 agent and the inner model together (one run = one episode of the env).

    :param env: ``DataAgent-v0`` or ``CoverSelect-v0``
    :param algo: ``ppo`` or ``a2c``
    :param layout: agent layout, ``batch`` or ``per_sample`` (None: the preset's)
    :param seed: seeds the agent, the inner model and (CoverSelect-v0) the training subset
    :param dataset: a dataset name of ``envs.core.data.load_dataset``
    :param data: the data options (subset, label noise, folder: a :class:`DataConfig` or a dict of its
        fields); its ``seed`` None means the run's ``seed``
    :param model: the inner model's name
    :param device: the inner model's device (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
    :param trainer: every inner-training option (a :class:`TrainerConfig` or a dict of its fields)
    :param env_options: the env's method options by their run names (:data:`ENV_OPTIONS`); options of
        the other env are an error
    :param hyperparams: overrides of the agent's preset (SB3 arguments)
    :param agent_device: device of the agent's networks
    :param load_agent: start from this saved agent (``agent.zip``)
    :param no_learn: act with the loaded policy, no updates (needs ``load_agent``)
    :param reference: also train on full data with the same options, the yardstick of cost and accuracy
    :param out: the run's folder (None: ``runs/<env>_<algo>_s<seed>``, or the first free ``..._1``, ``..._2``
        when that holds an earlier run's results)
    :param overwrite: a new run may replace the results of an earlier run in ``out`` (never the ``load_agent`` file)
    :param checkpoint_every: epochs of inner training between checkpoints (0: only on SIGTERM/SIGINT)
    :param keep_checkpoints: how many of the newest checkpoints are kept
    :param progress: show progress bars
    """

    env: str = "DataAgent-v0"
    algo: str = "ppo"
    layout: str | None = None
    seed: int = 0
    dataset: str = "digits"
    data: DataConfig = field(default_factory=DataConfig)
    model: str = "cnn"
    device: str = "auto"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    env_options: dict[str, Any] = field(default_factory=dict)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    agent_device: str = "cpu"
    load_agent: Path | None = None
    no_learn: bool = False
    reference: bool = True
    out: Path | None = None
    overwrite: bool = False
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        # dicts become configs here (unknown keys fail); their values are checked by validate()
        self.trainer = coerce_options(TrainerConfig, self.trainer, "trainer")
        self.data = coerce_options(DataConfig, self.data, "data")

    @property
    def default_folder(self) -> Path:
        """The folder of a run without ``out``: ``runs/<env>_<algo>_s<seed>``."""
        return Path("runs") / f"{self.env}_{self.algo}_s{self.seed}"

    @property
    def folder(self) -> Path:
        """Where the run writes: ``out``, or :attr:`default_folder`."""
        return self.out if self.out is not None else self.default_folder

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad option and its valid values."""
        if self.env not in ENV_IDS:
            raise ValueError(f"env={self.env!r} is invalid; valid choices: {', '.join(ENV_IDS)}")
        self.trainer.validate()
        self.data.validate()
        for name, low in (("checkpoint_every", 0), ("keep_checkpoints", 1)):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= low):
                raise ValueError(f"{name}={value!r} is invalid; valid: an integer >= {low}")
        if self.no_learn and self.load_agent is None:
            raise ValueError("no_learn needs load_agent (the saved agent that acts)")
        env_kwargs(self)  # options of the other env

    def as_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), as ``config.yml`` records them; :meth:`from_dict` reads them back."""
        return yaml_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """The config :meth:`as_dict` wrote."""
        values = {RENAMED.get(k, k): v for k, v in values.items()}  # a config.yml written before a rename still loads
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown run options {unknown}; valid: {', '.join(sorted(known))}")
        kw = dict(values)
        for name in ("load_agent", "out"):
            if kw.get(name) is not None:
                kw[name] = Path(kw[name])
        return cls(**kw)


def env_kwargs(config: RunConfig) -> dict[str, Any]:
    """The env's constructor keywords of ``config``; an option of the other env is a ``ValueError``."""
    data = config.data
    if data.seed is None and config.env == "CoverSelect-v0":
        data = dataclasses.replace(data, seed=config.seed)  # the training subset of the full-data reference of this seed
    kw: dict[str, Any] = dict(dataset=config.dataset, model=config.model, device=config.device,
                              trainer=config.trainer, data=data)
    for name, value in config.env_options.items():
        owners = [env_id for env_id, names in ENV_OPTIONS.items() if name in names]
        if not owners:
            valid = ", ".join(ALL_ENV_OPTIONS)
            raise ValueError(f"env option {name!r} is unknown; valid: {valid}")
        if config.env not in owners:
            raise ValueError(f"{name} is an option of {' and '.join(owners)}, not of {config.env}")
        if value is not None:
            kw[name] = value
    return kw


def checkpoint_identity(record: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match: the ``config.yml`` record without devices, output and checkpoint
    options, flattened (``env_kwargs.trainer.lr``) so that a refusal names the option that differs."""
    flat: dict[str, Any] = {}

    def add(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                add(f"{prefix}{key}.", value)
            elif f"{prefix}{key}" != "env_kwargs.device":
                flat[f"{prefix}{key}"] = value

    add("", {k: v for k, v in record.items() if k not in ("run", "agent_device")})
    return flat
