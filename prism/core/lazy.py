"""Modules imported at their first use, so that importing a module that names numpy or pandas
does not pay for them until one of its functions runs.

Listing the strategies (``prism strategies``) reads only their classes: names, dataclass fields
and docstrings. Their modules bind the heavy libraries through :func:`lazy_module`, and give
type checkers the real import::

    if TYPE_CHECKING:
        import numpy as np
    else:
        np = lazy_module("numpy")
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in for the module of the same name: the first read of an attribute imports the
    module (Python's import lock makes concurrent first reads safe) and keeps the value, so
    later reads are plain attribute lookups. Nothing is registered in ``sys.modules``."""

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), attribute)
        setattr(self, attribute, value)
        return value


def lazy_module(name: str) -> ModuleType:
    """Return module ``name`` if it is imported already, else a :class:`LazyModule` for it."""
    return sys.modules.get(name) or LazyModule(name)
