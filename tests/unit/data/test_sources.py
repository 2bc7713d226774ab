"""Bar sources: files, skfolio, and Yahoo and ccxt through recorded HTTP responses.

The network sources run their real clients (yfinance, ccxt) against a ``requests`` session whose
transport replays cassettes from ``tests/fixtures``; see :mod:`tests.recorded`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import requests

from prism.core.errors import ConfigError, DataUnavailable, TransientError
from prism.data.bars import BAR_COLUMNS, closed_bars
from prism.data.crypto import CcxtBarSource
from prism.data.files import FileBarSource, parse_mapping
from prism.data.sources import SkfolioBarSource
from prism.data.validate import validate
from prism.data.yahoo import YahooBarSource
from tests.recorded import RecordedTransport, cassette, recorded_session

HOUR_MS = 3_600_000
JAN_1_2024_MS = 1_704_067_200_000
YAHOO_CSV = """Date,Open,High,Low,Close,Adj Close,Volume
2024-01-02,187.15,188.44,183.89,185.64,184.94,82488700
2024-01-03,184.22,185.88,183.43,184.25,183.55,58414500
2024-01-04,182.15,183.09,180.88,181.91,181.22,71983600
"""


@pytest.fixture(autouse=True)
def yfinance_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep yfinance's time-zone and cookie caches out of the user's home."""
    import yfinance as yf

    yf.set_tz_cache_location(str(tmp_path_factory.getbasetemp() / "yfinance-cache"))


def _csv(tmp_path: Path, text: str = YAHOO_CSV) -> Path:
    path = tmp_path / "aapl.csv"
    path.write_text(text)
    return path


# --- files ---------------------------------------------------------------------------------


def test_a_csv_with_mapped_columns_becomes_a_daily_bar_frame(tmp_path):
    source = FileBarSource(
        _csv(tmp_path), symbol="AAPL", mapping=parse_mapping(["Adj Close=close"])
    )

    bars = source.fetch()

    assert list(bars.columns) == BAR_COLUMNS
    assert bars["close"].tolist() == [184.94, 183.55, 181.22]
    assert bars["time"].astype(str).tolist()[0] == "2024-01-02 00:00:00+00:00"
    assert set(bars["source"]) == {"csv"} and set(bars["timeframe"]) == {"1d"}
    assert validate(bars).rejected.empty


def test_naive_intraday_times_are_read_in_the_given_time_zone(tmp_path):
    path = _csv(
        tmp_path,
        "ts,o,h,l,c,v\n2024-03-08 09:30,1,2,0.5,1.5,10\n2024-03-11 09:30,1,2,0.5,1.5,10\n",
    )
    mapping = parse_mapping(["ts=time", "o=open", "h=high", "l=low", "c=close", "v=volume"])

    bars = FileBarSource(
        path, symbol="X", timeframe="1h", mapping=mapping, timezone="America/New_York"
    ).fetch()

    assert bars["time"].astype(str).tolist() == [
        "2024-03-08 14:30:00+00:00",
        "2024-03-11 13:30:00+00:00",
    ]


def test_a_daily_bar_keeps_its_local_session_date_whatever_the_time_zone(tmp_path):
    bars = FileBarSource(_csv(tmp_path), symbol="AAPL", timezone="Asia/Tokyo").fetch()

    assert bars["time"].dt.date.astype(str).tolist() == ["2024-01-02", "2024-01-03", "2024-01-04"]
    assert (bars["time"].dt.hour == 0).all()


def test_a_date_format_reads_day_first_dates(tmp_path):
    path = _csv(tmp_path, "date,open,high,low,close,volume\n02/01/2024,1,2,0.5,1.5,10\n")

    bars = FileBarSource(path, symbol="X", date_format="%d/%m/%Y").fetch()

    assert str(bars["time"].iloc[0].date()) == "2024-01-02"


def test_parquet_with_a_symbol_column_gives_one_asset_per_symbol(tmp_path):
    path = tmp_path / "bars.parquet"
    pl.DataFrame(
        {
            "timestamp": [pd.Timestamp("2024-01-02 10:00", tz="UTC")] * 2,
            "ticker": ["BTC", "ETH"],
            "open": [1.0, 2.0],
            "high": [1.5, 2.5],
            "low": [0.5, 1.5],
            "close": [1.2, 2.2],
            "volume": [100.0, 200.0],
        }
    ).write_parquet(path)
    source = FileBarSource(path, timeframe="1h", mapping={"ticker": "symbol"})

    bars = source.fetch()

    assert bars["symbol"].tolist() == ["BTC", "ETH"]
    assert bars["time"].astype(str).tolist() == ["2024-01-02 10:00:00+00:00"] * 2
    assert [a.symbol for a in source.assets()] == ["BTC", "ETH"]
    assert set(bars["source"]) == {"parquet"}


def test_a_missing_column_is_named_with_the_columns_found(tmp_path):
    path = _csv(tmp_path, "Date,Price,Volume\n2024-01-02,1,10\n")

    with pytest.raises(ConfigError, match=r"no column for open, high, low, close; columns found"):
        FileBarSource(path, symbol="X").fetch()


def test_a_mapping_from_an_absent_column_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"names column\(s\) Adj that aapl.csv does not have"):
        FileBarSource(_csv(tmp_path), symbol="X", mapping={"Adj": "close"}).fetch()


def test_a_file_without_symbol_needs_a_symbol_option(tmp_path):
    with pytest.raises(ConfigError, match="pass --symbol SYM"):
        FileBarSource(_csv(tmp_path)).fetch()


def test_bad_options_are_refused_before_reading(tmp_path):
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        FileBarSource(_csv(tmp_path), symbol="X", timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"cannot tell the format of bars\.xlsx"):
        FileBarSource(tmp_path / "bars.xlsx", symbol="X")
    with pytest.raises(ConfigError, match="expected --map FILE_COLUMN=BAR_COLUMN"):
        parse_mapping(["Date"])


# --- skfolio -------------------------------------------------------------------------------


def test_skfolio_gives_flat_daily_bars_of_20_stocks_that_all_validate():
    bars = SkfolioBarSource().fetch()

    assert bars["symbol"].nunique() == 20
    assert len(bars) == 8313 * 20
    assert (bars["open"] == bars["close"]).all() and (bars["high"] == bars["low"]).all()
    assert (bars["volume"] == 0.0).all()
    assert validate(bars).rejected.empty


def test_skfolio_names_an_unknown_symbol_with_its_symbols():
    with pytest.raises(ConfigError, match=r"no prices for ZZZZ; its symbols are AAPL, AMD"):
        SkfolioBarSource(["AAPL", "ZZZZ"]).fetch()


# --- Yahoo through yfinance ----------------------------------------------------------------


def _yahoo(name: str, **fail: Exception) -> RecordedTransport:
    return RecordedTransport(cassette(name), ignore=("crumb",), fail=fail)


def test_yahoo_daily_bars_are_parsed_by_yfinance_and_stamped_on_their_session_date(
    bundled_sp500: pd.DataFrame,
):
    transport = _yahoo("yahoo/gspc_2018h1.json")
    source = YahooBarSource(
        ["^GSPC"],
        start="2018-01-01",
        end="2018-07-01",
        adjust=False,
        session=recorded_session(transport),
    )

    bars = source.fetch()

    expected = bundled_sp500.loc["2018-01-02":"2018-06-29"]
    assert len(bars) == len(expected)
    assert bars["time"].dt.date.tolist() == [d.date() for d in expected.index]
    assert (bars["time"].dt.hour == 0).all()
    assert bars["close"].to_numpy() == pytest.approx(expected["Close"].to_numpy(), rel=1e-9)
    assert bars["volume"].tolist() == expected["Volume"].astype(float).tolist()
    assert validate(bars).rejected.empty
    chart = [c for c in transport.calls if c.url.endswith("/v8/finance/chart/%5EGSPC")]
    assert chart[-1].params["interval"] == "1d" and chart[-1].params["period1"] == "1514782800"
    asset = source.assets()[0]
    assert (asset.name, asset.asset_class, asset.currency) == ("S&P 500", "equity_index", "USD")


@pytest.fixture(scope="module")
def bundled_sp500() -> pd.DataFrame:
    """The real S&P 500 series the Yahoo cassette was built from."""
    import arch.data.sp500

    return arch.data.sp500.load()


def test_an_unknown_yahoo_symbol_is_data_unavailable():
    source = YahooBarSource(
        ["NOPEXYZ"],
        start="2018-01-01",
        end="2018-07-01",
        session=recorded_session(_yahoo("yahoo/unknown_symbol.json")),
    )

    with pytest.raises(DataUnavailable, match="NOPEXYZ"):
        source.fetch()


def test_a_yahoo_timeout_is_transient():
    transport = _yahoo(
        "yahoo/gspc_2018h1.json",
        **{"/v8/finance/chart/%5EGSPC": requests.exceptions.ReadTimeout("read timed out")},
    )
    source = YahooBarSource(
        ["^GSPC"], start="2018-02-01", end="2018-03-01", session=recorded_session(transport)
    )

    with pytest.raises(TransientError, match=r"Yahoo did not answer for \^GSPC \(ReadTimeout"):
        source.fetch()


def test_an_unknown_yahoo_interval_is_refused():
    with pytest.raises(ConfigError, match="unknown timeframe '1w' for Yahoo"):
        YahooBarSource(["AAPL"], timeframe="1w")


# --- crypto exchanges through ccxt ---------------------------------------------------------


def _binance(
    *names: str, extra: list[dict] | None = None, **fail: Exception
) -> tuple[RecordedTransport, dict]:
    interactions = [i for name in ("binance/markets.json", *names) for i in cassette(name)]
    transport = RecordedTransport([*(extra or []), *interactions], fail=fail)
    return transport, {"session": recorded_session(transport)}


def _klines_calls(transport: RecordedTransport) -> list[tuple[str, str]]:
    return [
        (c.params["startTime"], c.params["limit"])
        for c in transport.calls
        if c.url.endswith("/api/v3/klines")
    ]


def test_ccxt_pages_forward_by_since_until_an_empty_page():
    transport, config = _binance("binance/btcusdt_1h.json")
    source = CcxtBarSource(
        "binance", ["BTC/USDT"], "1h", since="2024-01-01", limit=100, config=config
    )

    bars = source.fetch()

    assert len(bars) == 250
    assert bars["time"].is_monotonic_increasing and not bars["time"].duplicated().any()
    assert str(bars["time"].iloc[0]) == "2024-01-01 00:00:00+00:00"
    assert str(bars["time"].iloc[-1]) == "2024-01-11 09:00:00+00:00"
    assert _klines_calls(transport) == [
        (str(JAN_1_2024_MS + first * HOUR_MS), "100") for first in (0, 100, 200, 250)
    ]
    assert validate(bars).rejected.empty
    assert source.client.enableRateLimit is True
    assert source.assets()[0].currency == "USDT"


def test_ccxt_stops_paging_at_until_without_asking_for_more():
    transport, config = _binance("binance/btcusdt_1h.json")
    source = CcxtBarSource(
        "binance",
        ["BTC/USDT"],
        "1h",
        since="2024-01-01",
        until="2024-01-07 02:00",
        limit=100,
        config=config,
    )

    bars = source.fetch()

    assert str(bars["time"].iloc[-1]) == "2024-01-07 02:00:00+00:00"
    assert len(bars) == 6 * 24 + 3
    assert _klines_calls(transport) == [
        (str(JAN_1_2024_MS), "100"),
        (str(JAN_1_2024_MS + 100 * HOUR_MS), "100"),
    ]


def test_a_ccxt_timeout_is_transient():
    import ccxt

    _, config = _binance(**{"/api/v3/klines": requests.exceptions.ReadTimeout("read timed out")})
    source = CcxtBarSource("binance", ["BTC/USDT"], since="2024-01-01", config=config)

    with pytest.raises(TransientError, match=r"binance did not answer \(RequestTimeout") as info:
        source.fetch()
    assert isinstance(info.value.__cause__, ccxt.RequestTimeout)


def test_a_ccxt_rate_limit_answer_is_transient():
    import ccxt

    too_many = {
        "request": {
            "method": "GET",
            "url": "https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1h"
            f"&startTime={JAN_1_2024_MS}&limit=1000",
        },
        "response": {
            "status": 429,
            "headers": {"Content-Type": "application/json"},
            "body": {
                "code": -1003,
                "msg": "Too many requests; current limit of IP is 6000 requests per minute.",
            },
        },
    }
    _, config = _binance(extra=[too_many])
    source = CcxtBarSource("binance", ["BTC/USDT"], since="2024-01-01", config=config)

    with pytest.raises(TransientError, match=r"binance did not answer \(DDoSProtection") as info:
        source.fetch()
    assert isinstance(info.value.__cause__, ccxt.DDoSProtection)


def test_an_unknown_ccxt_market_is_data_unavailable():
    _, config = _binance()
    source = CcxtBarSource("binance", ["DOGE/EUR"], since="2024-01-01", config=config)

    with pytest.raises(DataUnavailable, match="binance does not have market symbol DOGE/EUR"):
        source.fetch()


def test_an_unknown_exchange_is_named_with_near_matches():
    with pytest.raises(ConfigError, match="ccxt has no exchange 'binanse'; did you mean binance"):
        CcxtBarSource("binanse", ["BTC/USDT"])


def test_ccxt_drops_the_candle_still_forming_by_the_exchanges_clock():
    _, config = _binance("binance/btcusdt_1h.json")
    # ccxt's throttle waits on the same clock, so a frozen clock needs it off
    source = CcxtBarSource(
        "binance",
        ["BTC/USDT"],
        "1h",
        since="2024-01-01",
        limit=100,
        config={**config, "enableRateLimit": False},
    )
    every = source.fetch()
    last = every["time"].iloc[-1]
    source.client.milliseconds = lambda: int((last + pd.Timedelta(minutes=30)).value // 10**6)

    closed = source.fetch()

    assert len(closed) == len(every) - 1
    assert closed["time"].iloc[-1] == last - pd.Timedelta(hours=1)


def test_closed_bars_keeps_a_bar_once_its_interval_has_ended():
    bars = pd.DataFrame(
        {
            "time": pd.to_datetime(
                ["2024-01-02 00:00", "2024-01-03 00:00", "2024-01-03 10:00"], utc=True
            ),
            "timeframe": ["1d", "1d", "1h"],
        }
    )

    kept = closed_bars(bars, pd.Timestamp("2024-01-03 11:00", tz="UTC"))

    assert kept["time"].tolist() == list(bars["time"].iloc[[0, 2]])
