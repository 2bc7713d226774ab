"""Numbers for people: currency with thousands separators, signed percentages, basis points."""

from __future__ import annotations

import math


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def money(value: float | None, currency: str = "$", decimals: int = 0) -> str:
    """Return ``value`` as ``$1,234,567`` (``-$1,234`` when negative, ``—`` when missing)."""
    if _missing(value):
        return "—"
    assert value is not None
    sign = "-" if value < 0 else ""
    return f"{sign}{currency}{abs(value):,.{decimals}f}"


def signed_money(value: float | None, currency: str = "$", decimals: int = 0) -> str:
    """Return ``value`` as ``+$1,234`` or ``-$1,234`` (a change)."""
    if _missing(value):
        return "—"
    assert value is not None
    return ("+" if value >= 0 else "") + money(value, currency, decimals)


def percent(value: float | None, decimals: int = 2, signed: bool = False) -> str:
    """Return a fraction as a percentage: ``0.0123`` → ``1.23%`` (``+1.23%`` if ``signed``)."""
    if _missing(value):
        return "—"
    assert value is not None
    return f"{value * 100:{'+' if signed else ''},.{decimals}f}%"


def number(value: float | None, decimals: int = 0) -> str:
    """Return ``value`` with thousands separators: ``1234.5`` → ``1,234`` (``—`` if missing)."""
    if _missing(value):
        return "—"
    assert value is not None
    return f"{value:,.{decimals}f}"


def bps(value: float | None, decimals: int = 1) -> str:
    """Return basis points: ``2.345`` → ``2.3 bp``."""
    if _missing(value):
        return "—"
    assert value is not None
    return f"{value:,.{decimals}f} bp"
