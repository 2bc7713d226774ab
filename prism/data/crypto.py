"""Bars from crypto exchanges through ccxt: any exchange id ccxt knows, unified symbols.

Exchanges cap how many candles one request returns (Binance 1000, others 100-1500), so
:class:`CcxtBarSource` pages ``fetch_ohlcv`` forward by ``since``: each request starts one bar
after the last candle received, until the window's end or an empty page. ccxt's own throttle
(``enableRateLimit``, spacing calls by the exchange's ``rateLimit`` milliseconds) keeps the
paging within the exchange's limits. ccxt's errors are translated at this edge: a timeout, a
dropped connection or a rate-limit answer (HTTP 429 is ccxt's ``DDoSProtection``, the parent of
``RateLimitExceeded``) is :class:`TransientError`; an unknown symbol is :class:`DataUnavailable`.
The candle still forming by the exchange's clock (ccxt returns it, stamped with its open time)
is dropped: it is stored once it has closed, so nothing downstream decides on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from prism.core.errors import ConfigError, DataUnavailable, TransientError
from prism.data.bars import TIMEFRAMES, empty_bars, normalise
from prism.data.sources import Asset

_OHLCV = ["time", "open", "high", "low", "close", "volume"]


def to_millis(moment: str | int | pd.Timestamp) -> int:
    """Return ``moment`` (ISO text, a timestamp, or epoch milliseconds) as epoch ms, UTC."""
    if isinstance(moment, int):
        return moment
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


class CcxtBarSource:
    """OHLCV of ``symbols`` (``BTC/USDT``) on a ccxt exchange, from ``since`` to ``until``.

    ``until`` defaults to the moment of the fetch; ``limit`` is the page size asked for
    (``None`` lets the exchange choose). ``config`` is passed to the ccxt exchange's
    constructor (``{"session": ...}`` to route HTTP through a given ``requests`` session,
    ``{"options": ...}`` for exchange options); rate limiting is on unless it says otherwise.
    """

    def __init__(
        self,
        exchange: str,
        symbols: list[str],
        timeframe: str = "1h",
        since: str | int | pd.Timestamp = "2024-01-01",
        until: str | int | pd.Timestamp | None = None,
        limit: int | None = 1000,
        config: dict[str, Any] | None = None,
    ) -> None:
        """Build the ccxt client (no request is made until :meth:`fetch`)."""
        if timeframe not in TIMEFRAMES:
            raise ConfigError(
                f"unknown timeframe {timeframe!r}; use one of {', '.join(TIMEFRAMES)}"
            )
        if not symbols:
            raise ConfigError("no symbols given; example: prism data ingest ccxt binance BTC/USDT")
        self.exchange_id = exchange
        self.name = f"ccxt:{exchange}"
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.since = to_millis(since)
        self.until = None if until is None else to_millis(until)
        self.limit = limit
        self.client = open_exchange(exchange, {"enableRateLimit": True, **(config or {})})
        self.step = int(self.client.parse_timeframe(timeframe) * 1000)
        """One candle's length in milliseconds, by ccxt's reading of the timeframe."""
        self.requests: list[tuple[str, int]] = []
        """Each ``fetch_ohlcv`` page asked for, as (symbol, since): a record of the paging."""

    def assets(self) -> list[Asset]:
        """Return the symbols as crypto assets quoted in their market's quote currency."""
        return [
            Asset(
                symbol,
                f"{symbol} on {self.exchange_id}",
                asset_class="crypto",
                exchange=self.exchange_id,
                currency=symbol.split("/")[-1].split(":")[0],
                calendar="24/7",
            )
            for symbol in self.symbols
        ]

    def fetch(self) -> pd.DataFrame:
        """Return every symbol's candles in the window, paged forward by ``since``."""
        clock = int(self.client.milliseconds())
        until = self.until if self.until is not None else clock
        with _ccxt_errors(self.exchange_id):
            self._check_support()
            frames = [self._candles(symbol, until, clock) for symbol in self.symbols]
        return pd.concat(frames, ignore_index=True) if frames else empty_bars()

    def _check_support(self) -> None:
        if not self.client.has.get("fetchOHLCV"):
            raise ConfigError(f"{self.exchange_id} offers no OHLCV candles through ccxt")
        offered = self.client.timeframes or {}
        if offered and self.timeframe not in offered:
            raise ConfigError(
                f"{self.exchange_id} has no {self.timeframe} candles; it offers "
                f"{', '.join(offered)}"
            )

    def _candles(self, symbol: str, until: int, clock: int) -> pd.DataFrame:
        """Return ``symbol``'s candles up to ``until``, without the one still forming by the
        exchange's ``clock`` (ccxt returns the current candle, stamped with its open time)."""
        rows = [
            row
            for page in self._pages(symbol, until)
            for row in page
            if row[0] <= until and row[0] + self.step <= clock
        ]
        if not rows:
            raise DataUnavailable(
                f"{self.exchange_id} returned no {self.timeframe} candles for {symbol} from "
                f"{pd.Timestamp(self.since, unit='ms', tz='UTC')}"
            )
        frame = pd.DataFrame(rows, columns=_OHLCV)
        frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
        frame["symbol"] = symbol
        frame["timeframe"] = self.timeframe
        frame["source"] = self.name
        return normalise(frame)

    def _pages(self, symbol: str, until: int) -> Iterator[list[list[float]]]:
        """Yield pages of raw candles until ``until``, an empty page, or no progress."""
        cursor = self.since
        while cursor <= until:
            self.requests.append((symbol, cursor))
            page = [
                row
                for row in self.client.fetch_ohlcv(symbol, self.timeframe, cursor, self.limit)
                if row[0] >= cursor
            ]
            if not page:
                return
            yield page
            cursor = int(page[-1][0]) + self.step


def open_exchange(exchange_id: str, config: dict[str, Any]) -> Any:
    """Return the ccxt client of ``exchange_id`` built with ``config``, or a
    :class:`ConfigError` naming near matches (shared by the crypto bar source and the ccxt
    broker)."""
    # Imported here: ccxt takes ~5 s to import; only exchange users need it.
    import ccxt

    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=5)
        raise ConfigError(
            f"ccxt has no exchange {exchange_id!r}"
            + (f"; did you mean {', '.join(close)}?" if close else "")
            + f" ({len(ccxt.exchanges)} ids in ccxt.exchanges)"
        )
    return getattr(ccxt, exchange_id)(config)


@contextmanager
def _ccxt_errors(exchange_id: str) -> Iterator[None]:
    """Translate ccxt's exceptions raised inside the block into Prism's errors."""
    # Imported here: ccxt takes ~5 s to import; only exchange users need it.
    import ccxt

    try:
        yield
    except ccxt.BadSymbol as err:
        raise DataUnavailable(
            f"{exchange_id} does not list that market ({err}); symbols are unified, like BTC/USDT"
        ) from err
    except (ccxt.RequestTimeout, ccxt.DDoSProtection, ccxt.NetworkError) as err:
        raise TransientError(
            f"{exchange_id} did not answer ({type(err).__name__}: {err}); try again later"
        ) from err
