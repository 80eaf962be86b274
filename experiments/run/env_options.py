"""Each env's method options, read from its constructor: names, types, defaults, choices and help.

Why read them: the train CLI's env flags, :data:`~experiments.run.config.ENV_OPTIONS` and the check that an option
belongs to the run's env would otherwise be three hand-written copies of each env's signature, and drift from it
the day an option is added. An env states only what its signature cannot: the valid names of a string option
(its ``option_choices`` attribute).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any

from envs import ENTRY_POINTS
from envs.cover_select.env import CoverSelectEnv
from envs.data_agent.env import DataAgentEnv
from experiments.run.docstrings import param_help

#: the env classes by id (the ids and entry points are :data:`envs.ENTRY_POINTS`)
ENV_CLASSES: dict[str, type] = {"DataAgent-v0": DataAgentEnv, "CoverSelect-v0": CoverSelectEnv}
#: constructor arguments every env takes from the run's own fields (:class:`~experiments.run.config.RunConfig`)
SHARED = ("dataset", "model", "trainer", "data", "device")


@dataclass(frozen=True)
class EnvOption:
    """One method option of one env.

    :param name: the constructor's keyword
    :param kind: ``bool``, ``int``, ``float`` or ``str`` (what a command line parses it as)
    :param default: the constructor's default
    :param choices: the valid values of a string option (None: free text, or not a string)
    :param help: the ``:param`` text of the env's docstring, without markup
    """

    name: str
    kind: type
    default: Any
    choices: tuple[str, ...] | None
    help: str


def _kind(hint: Any, default: Any) -> type:
    """The command-line type of an annotation: the default's type when the annotation admits it (``str | float`` with
    ``"mean"`` is str), else the first of bool, int, float, str it admits (``float | None`` is float)."""
    args = typing.get_args(hint) or (hint,)
    if default is not None and type(default) in args:
        return type(default)
    return next((kind for kind in (bool, int, float, str) if kind in args), type(default))


def env_options(env_id: str) -> dict[str, EnvOption]:
    """The method options of ``env_id`` (every keyword but :data:`SHARED`), in signature order."""
    if env_id not in ENV_CLASSES:
        raise ValueError(f"env={env_id!r} is unknown; valid choices: {', '.join(ENTRY_POINTS)}")
    cls = ENV_CLASSES[env_id]
    hints = typing.get_type_hints(cls.__init__)
    helps, choices = param_help(cls), getattr(cls, "option_choices", {})
    return {p.name: EnvOption(p.name, _kind(hints.get(p.name), p.default), p.default,
                              tuple(choices[p.name]) if p.name in choices else None, helps.get(p.name, ""))
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in SHARED}
