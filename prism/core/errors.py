"""Prism's exception hierarchy: each class tells the caller what to do.

- ``ConfigError``: the user must change something (a setting, a name, a parameter). Stop.
- ``DataUnavailable``: the data asked for is not there. Skip this step and alert.
- ``TransientError``: a dependency hiccupped (a lock, a timeout). Retry.
- ``InvariantViolated``: Prism's own bookkeeping is inconsistent. Crash loudly.

Every message names the problem and, where there is one, the fix. Vendor errors are translated
at the adapter edge with ``raise ... from err`` so the original stays in the traceback.
"""

from __future__ import annotations


class PrismError(Exception):
    """Base class of every error Prism raises on purpose."""


class ConfigError(PrismError):
    """A setting, name or parameter is wrong; the user has to fix it."""


class DataUnavailable(PrismError):
    """The data a step needs is missing (no bars, no model version, no run)."""


class TransientError(PrismError):
    """A temporary failure of a dependency; the same call may succeed later."""


class InvariantViolated(PrismError):
    """Prism's own state contradicts itself; continuing would corrupt it."""
