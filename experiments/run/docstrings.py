"""Option help read from docstrings: the one description a command line quotes for each option.

Why one module: the trainer flags (from :class:`~envs.core.trainer.TrainerConfig`) and the env flags (from each
env's constructor) quote the same ``:param`` lines that the API documentation shows, so they cannot drift apart.
"""

from __future__ import annotations

import inspect
import re


def plain(text: str) -> str:
    """``text`` without reStructuredText markup (roles, double backquotes), as help output shows it."""
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", text)


def param_help(cls: type) -> dict[str, str]:
    """Each ``:param name: text`` of ``cls``'s docstring as one line of plain text (continuation lines joined; pointers
    into the docstring such as "(see above)" left out: they mean nothing on a command line)."""
    doc = inspect.getdoc(cls) or ""
    found = re.finditer(r":param (\w+): (.*?)(?=\n\s*:param |\Z)", doc, re.S)
    return {m.group(1): " ".join(plain(re.sub(r"\s*\(see [^)]*\)|,? see \*\*[^*]+\*\*", "", m.group(2))).split())
            for m in found}
