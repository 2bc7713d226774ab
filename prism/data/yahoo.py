"""Bars from Yahoo Finance, through yfinance's own client (``Ticker.history``).

yfinance fetches a cookie and a crumb, asks the chart API (``/v8/finance/chart/SYMBOL``) for the
exchange's time zone and then for the bars, and parses the JSON into a frame indexed in the
exchange's time zone. This adapter maps Prism timeframes to Yahoo intervals, stamps bars by the
bar-frame convention (a daily bar at midnight UTC of its session date) and translates failures:
an unknown symbol or an empty answer is :class:`DataUnavailable`, a timeout, a dropped
connection or HTTP 429 is :class:`TransientError`.
Today's bar, still forming while the market is open, is dropped until its interval has ended
(:func:`prism.data.bars.closed_bars`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from prism.core.errors import ConfigError, DataUnavailable, TransientError
from prism.data.bars import bar_times, closed_bars, empty_bars, normalise
from prism.data.sources import Asset

INTERVALS = {"1m": "1m", "5m": "5m", "1h": "1h", "1d": "1d"}
"""Prism timeframe → Yahoo interval. Yahoo keeps 1m bars for 7 days, 5m for 60, 1h for 730."""

_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}


class YahooBarSource:
    """Bars of Yahoo symbols (``AAPL``, ``^GSPC``, ``EURUSD=X``) over ``[start, end)``.

    ``adjust`` (the default) returns split- and dividend-adjusted OHLC, consistent with each
    other; ``session`` is any ``requests`` or ``curl_cffi`` session yfinance accepts (for a
    proxy, or recorded responses in tests); ``None`` lets yfinance build its own.
    """

    name = "yahoo"

    def __init__(
        self,
        symbols: list[str],
        timeframe: str = "1d",
        start: str | None = None,
        end: str | None = None,
        adjust: bool = True,
        session: Any = None,
        timeout: float = 30.0,
    ) -> None:
        """Describe the request; nothing is fetched until :meth:`fetch`."""
        if timeframe not in INTERVALS:
            raise ConfigError(
                f"unknown timeframe {timeframe!r} for Yahoo; use one of {', '.join(INTERVALS)}"
            )
        if not symbols:
            raise ConfigError("no Yahoo symbols given; example: prism data ingest yahoo AAPL,MSFT")
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.start = start
        self.end = end
        self.adjust = adjust
        self.session = session
        self.timeout = timeout
        self._metadata: dict[str, dict[str, Any]] = {}

    def assets(self) -> list[Asset]:
        """Return the symbols, described by Yahoo's chart metadata once :meth:`fetch` ran."""
        return [_asset(symbol, self._metadata.get(symbol, {})) for symbol in self.symbols]

    def fetch(self) -> pd.DataFrame:
        """Return every symbol's bars; any symbol without bars fails the whole fetch."""
        frames = [self._history(symbol) for symbol in self.symbols]
        return pd.concat(frames, ignore_index=True) if frames else empty_bars()

    def _history(self, symbol: str) -> pd.DataFrame:
        # Imported here: yfinance takes ~4 s to import; only Yahoo ingests need it.
        import yfinance as yf

        ticker = yf.Ticker(symbol, session=self.session)
        with _yahoo_errors(symbol):
            frame = ticker.history(
                start=self.start,
                end=self.end,
                interval=INTERVALS[self.timeframe],
                auto_adjust=self.adjust,
                actions=False,
                timeout=self.timeout,
            )
        if frame.empty:
            raise DataUnavailable(
                f"Yahoo returned no {self.timeframe} bars for {symbol} between "
                f"{self.start or 'the start'} and {self.end or 'now'}"
            )
        self._metadata[symbol] = ticker.get_history_metadata()
        return self._bars(symbol, frame)

    def _bars(self, symbol: str, frame: pd.DataFrame) -> pd.DataFrame:
        bars = frame.rename(columns=_COLUMNS).rename_axis("time").reset_index()
        bars["time"] = bar_times(
            bars["time"], self.timeframe, str(pd.DatetimeIndex(frame.index).tz or "UTC")
        )
        bars["symbol"] = symbol
        bars["timeframe"] = self.timeframe
        bars["source"] = self.name
        return closed_bars(normalise(bars), pd.Timestamp.now(tz="UTC"))


def _asset(symbol: str, meta: dict[str, Any]) -> Asset:
    kind = str(meta.get("instrumentType", "")).lower()
    return Asset(
        symbol,
        str(meta.get("longName") or meta.get("shortName") or symbol),
        asset_class={"index": "equity_index", "cryptocurrency": "crypto"}.get(
            kind, kind or "equity"
        ),
        exchange=meta.get("fullExchangeName") or meta.get("exchangeName"),
        currency=str(meta.get("currency") or "USD"),
    )


def _transient_errors() -> tuple[type[BaseException], ...]:
    """The transport failures worth retrying, from both HTTP backends yfinance may use."""
    # Imported here: loaded with yfinance, only when Yahoo is used.
    import requests
    from yfinance.exceptions import YFRateLimitError

    found: list[type[BaseException]] = [
        YFRateLimitError,
        requests.exceptions.Timeout,
        requests.exceptions.ConnectionError,
    ]
    try:
        # Imported here: loaded with yfinance, only when Yahoo is used.
        from curl_cffi.requests import exceptions as curl

        found += [curl.Timeout, curl.ConnectionError]
    except ImportError:
        pass
    return tuple(found)


@contextmanager
def _yahoo_errors(symbol: str) -> Iterator[None]:
    """Translate yfinance's failures for ``symbol`` into Prism's errors.

    yfinance's ``hide_exceptions`` (on by default) logs failures and returns an empty frame,
    which would make a timeout look like an unknown symbol; it is switched off for the call.
    """
    # Imported here: yfinance takes ~4 s to import; only Yahoo ingests need it.
    import yfinance as yf
    from yfinance.exceptions import YFTickerMissingError

    hidden = yf.config.debug.hide_exceptions
    yf.config.debug.hide_exceptions = False
    try:
        yield
    except _transient_errors() as err:
        raise TransientError(
            f"Yahoo did not answer for {symbol} ({type(err).__name__}: {err}); try again later"
        ) from err
    except YFTickerMissingError as err:
        raise DataUnavailable(f"Yahoo has no bars for {symbol}: {err}") from err
    except Exception as err:
        if _status(err) == 404:
            raise DataUnavailable(
                f"Yahoo does not know the symbol {symbol} (HTTP 404); check it on Yahoo Finance"
            ) from err
        raise
    finally:
        yf.config.debug.hide_exceptions = hidden


def _status(err: BaseException) -> int | None:
    """The HTTP status of an ``HTTPError`` from either backend, else None."""
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None
