"""Where bars come from. Each source returns raw bar frames; validation happens in one place.

``BarSource`` is the port: ``assets()`` and ``fetch()``, nothing else. A source is configured
when it is built (symbols, timeframe, date range), so ``fetch()`` takes no arguments and every
source, local or remote, is ingested the same way by :func:`prism.data.store.ingest`.

Bundled real data lives here, so demos and tests need no network: ``ArchBarSource`` (daily
OHLCV of the S&P 500 and NASDAQ Composite, 1999-2018, shipped with ``arch``) and
``SkfolioBarSource`` (daily adjusted closes of 20 S&P 500 stocks, 1990-2022, shipped with
``skfolio``). Files are read by :mod:`prism.data.files`; Yahoo and crypto exchanges, which
need the network, by :mod:`prism.data.yahoo` and :mod:`prism.data.crypto`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol

import pandas as pd

from prism.core.errors import ConfigError
from prism.data.bars import normalise


@dataclass(frozen=True)
class Asset:
    """An instrument Prism knows about (a row of ``market_data.assets``)."""

    symbol: str
    name: str
    asset_class: str = "equity_index"
    exchange: str | None = None
    currency: str = "USD"
    calendar: str | None = "XNYS"
    """Trading calendar (an exchange_calendars name, or ``24/7``); ``None`` when the source
    cannot know it: a new asset then gets the table's default and a stored one keeps its own."""


class BarSource(Protocol):
    """A source of bars: names its assets and returns their bars, unvalidated."""

    name: str

    def assets(self) -> list[Asset]:
        """Return the assets this source provides."""
        ...

    def fetch(self) -> pd.DataFrame:
        """Return the source's bars as a bar frame (see :mod:`prism.data.bars`)."""
        ...


class ArchBarSource:
    """Daily OHLCV of the S&P 500 (``SPX``) and NASDAQ Composite (``NDX``) bundled with ``arch``."""

    name = "arch"
    _DATASETS: ClassVar[dict[str, tuple[str, Asset]]] = {
        "SPX": ("sp500", Asset("SPX", "S&P 500 index", exchange="NYSE")),
        "NDX": ("nasdaq", Asset("NDX", "NASDAQ Composite index", exchange="NASDAQ")),
    }

    def assets(self) -> list[Asset]:
        """Return SPX and NDX."""
        return [asset for _, asset in self._DATASETS.values()]

    def fetch(self) -> pd.DataFrame:
        """Return both indices' daily bars, 1999-01-04 to 2018-12-31."""
        import importlib

        frames = []
        for symbol, (module, _) in self._DATASETS.items():
            raw = importlib.import_module(f"arch.data.{module}").load()
            frame = raw.rename(columns=str.lower).rename_axis("time").reset_index()
            frame["symbol"] = symbol
            frame["timeframe"] = "1d"
            frame["source"] = self.name
            frames.append(normalise(frame))
        return pd.concat(frames, ignore_index=True)


class SkfolioBarSource:
    """Daily adjusted closes of 20 S&P 500 stocks (AAPL … XOM, 1990-01-02 to 2022-12-28)
    bundled with ``skfolio``.

    The dataset holds closes only, so each bar is flat: open = high = low = close. Volume is
    unknown and stored as ``0.0``, not NaN, because the ``missing_value`` rule of
    :data:`prism.data.validate.RULES` would quarantine every row with a NaN volume, while
    ``negative_volume`` accepts zero. Strategies that need intraday range or volume should
    not be run on these bars.
    """

    name = "skfolio"

    def __init__(self, symbols: list[str] | None = None) -> None:
        """Keep only ``symbols`` (default: all 20); an unknown one is a :class:`ConfigError`."""
        self.symbols = symbols

    def _prices(self) -> pd.DataFrame:
        # Imported here: skfolio takes seconds to import; only this source needs it.
        from skfolio.datasets import load_sp500_dataset

        prices = load_sp500_dataset()
        if self.symbols is None:
            return prices
        unknown = sorted(set(self.symbols) - set(prices.columns))
        if unknown:
            raise ConfigError(
                f"skfolio has no prices for {', '.join(unknown)}; "
                f"its symbols are {', '.join(prices.columns)}"
            )
        return prices[self.symbols]

    def assets(self) -> list[Asset]:
        """Return the chosen stocks (named by ticker; skfolio ships no company names)."""
        return [
            Asset(symbol, symbol, asset_class="equity", exchange=None)
            for symbol in self._prices().columns
        ]

    def fetch(self) -> pd.DataFrame:
        """Return one flat daily bar per stock and trading day (missing prices skipped)."""
        prices = self._prices().rename_axis("time").reset_index()
        long = prices.melt(id_vars="time", var_name="symbol", value_name="close").dropna()
        for column in ("open", "high", "low"):
            long[column] = long["close"]
        long["volume"] = 0.0
        long["timeframe"] = "1d"
        long["source"] = self.name
        return normalise(long.sort_values(["symbol", "time"]))


SOURCES: dict[str, Callable[[], BarSource]] = {
    "bundled": ArchBarSource,
    "skfolio": SkfolioBarSource,
}
"""The sources that need no options, by the name `prism data ingest` gives them."""
