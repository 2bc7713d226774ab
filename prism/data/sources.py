"""Where bars come from. Each source returns raw bar frames; validation happens in one place.

``BarSource`` is the port; ``ArchBarSource`` reads the real daily OHLCV that ships inside the
``arch`` package (S&P 500 and NASDAQ Composite, 1999-2018), so demos and tests need no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import pandas as pd

from prism.data.bars import normalise


@dataclass(frozen=True)
class Asset:
    """An instrument Prism knows about (a row of ``market_data.assets``)."""

    symbol: str
    name: str
    asset_class: str = "equity_index"
    exchange: str | None = None
    currency: str = "USD"
    calendar: str = "XNYS"


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


SOURCES: dict[str, type[ArchBarSource]] = {"bundled": ArchBarSource}
