"""The type test behind every numeric option check.

Why: a range check such as ``0 < keep_ratio <= 1`` raises Python's own ``TypeError`` ("'<' not
supported between instances of 'float' and 'str'") before it can name the option. Guarding it
with :func:`is_real` turns a wrong type into the option's usual one-line "invalid; valid: ..." error.
:func:`coerce_options` does the same for whole option objects given as dicts.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")
O = TypeVar("O", bound="Options")


def is_real(value: Any) -> bool:
    """A real number (Python or NumPy int or float), not a bool: ``True`` is no learning rate."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def coerce_options(cls: type[T], value: T | Mapping[str, Any] | None, name: str) -> T:
    """``value`` as an instance of the options dataclass ``cls``: None gives the defaults, a mapping its
    fields (an unknown key is a ``ValueError`` listing the valid ones), an instance is returned as is.

    Why: envs take their trainer and data options as one object or a plain dict (``gym.make`` and
    YAML configs pass dicts), and a misspelt key must fail loudly instead of being ignored."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}={value!r} is invalid; valid: None, a {cls.__name__} or a mapping of its fields")
    valid = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in value if k not in valid)
    moved = [f"{k} (use {cls.replaced[k]})" for k in unknown if k in getattr(cls, "replaced", {})]
    if moved:
        raise ValueError(f"{name} option(s) {', '.join(moved)} no longer exist; valid: {', '.join(valid)}")
    if unknown:
        raise ValueError(f"{name} has unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return cls(**value)


class Options:
    """Base of the option dataclasses an env takes as one object or as a dict of its fields
    (:class:`~envs.core.trainer.TrainerConfig`, :class:`~envs.core.data.DataConfig`)."""

    #: the keyword the options arrive under, named in errors
    keyword: ClassVar[str] = "options"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field and its valid values."""
        raise NotImplementedError

    @classmethod
    def coerce(cls: type[O], value: O | Mapping[str, Any] | None) -> O:
        """A validated instance from ``value``: None (the defaults), a mapping of fields or an instance.

        :param value: what an env's keyword (:attr:`keyword`) received
        """
        config = coerce_options(cls, value, cls.keyword)
        config.validate()
        return config
