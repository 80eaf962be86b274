"""The type test behind every numeric option check.

Why: a range check such as ``0 < keep_ratio <= 1`` raises Python's own ``TypeError`` ("'<' not
supported between instances of 'float' and 'str'") before it can name the option. Guarding it
with :func:`is_real` turns a wrong type into the option's usual one-line "invalid; valid: ..." error.
"""

from __future__ import annotations

import numbers
from typing import Any


def is_real(value: Any) -> bool:
    """A real number (Python or NumPy int or float), not a bool: ``True`` is no learning rate."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
