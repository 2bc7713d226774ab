"""Trading calendars by name: an ``exchange_calendars`` calendar from 1970 on, or ``24/7`` for
markets that never close. Kept apart from :mod:`prism.data.gaps` so validation can read
calendars without importing the gap search (which imports the store, which imports
validation)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prism.core.errors import ConfigError

ALWAYS_OPEN = "24/7"
CALENDAR_START = "1970-01-01"


@lru_cache(maxsize=16)
def exchange_calendar(name: str) -> Any:
    """Return the ``exchange_calendars`` calendar ``name``, from 1970 on (its default starts
    only 20 years back, which would cut the bundled 1990s data off)."""
    # Imported here: exchange_calendars takes ~3 s to import; only calendar-aware checks need it.
    import exchange_calendars as xc

    try:
        return xc.get_calendar(name, start=CALENDAR_START)
    except xc.errors.InvalidCalendarName as err:
        raise ConfigError(
            f"unknown trading calendar {name!r}; use an exchange_calendars "
            f"name such as XNYS, XLON, XTKS, or {ALWAYS_OPEN!r} for markets that never close"
        ) from err
