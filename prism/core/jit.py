"""Numba compilation deferred to first use, so importing a module of compiled loops (indicators,
strategies) does not import numba: ``prism strategies`` and ``prism --help`` never pay for it.

:func:`lazy_njit` marks a function; the first call of any marked function of a module replaces
every marked function of that module with its ``numba.njit`` dispatcher in the module's globals,
so compiled functions that call each other see dispatchers, as with ``@njit`` itself.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_PENDING: dict[str, list[tuple[Callable[..., Any], dict[str, Any]]]] = {}
_LOCK = threading.Lock()
"""Held while a module's functions are replaced: a thread calling a marked function meanwhile
(a sweep's first chunks run in threads) waits for the dispatchers instead of finding the
stand-in still in place and calling it again, forever."""


def lazy_njit(**options: Any) -> Callable[[F], F]:
    """Return a decorator like ``numba.njit(**options)`` that imports numba and compiles on the
    first call instead of at import."""

    def mark(func: F) -> F:
        _PENDING.setdefault(func.__module__, []).append((func, options))

        @functools.wraps(func)
        def first_call(*args: Any) -> Any:
            jit_module(func.__module__)
            return func.__globals__[func.__name__](*args)

        return first_call  # type: ignore[return-value]

    return mark


def jit_module(module: str) -> None:
    """Replace every function of ``module`` marked with :func:`lazy_njit` by its dispatcher."""
    with _LOCK:
        pending = _PENDING.pop(module, [])
        if not pending:
            return
        from numba import njit

        for func, options in pending:
            func.__globals__[func.__name__] = njit(**options)(func)
