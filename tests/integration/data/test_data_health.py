"""`prism data status`, stale feeds as system events, and the data-quality gate of backtests
and trade cycles."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from prism import ledger
from prism.brokers.paper import PaperBroker
from prism.cli.app import app
from prism.core.errors import DataUnavailable
from prism.data.bars import normalise
from prism.data.health import check_quality, data_status
from prism.data.sources import ArchBarSource, Asset
from prism.data.store import ingest, upsert_assets, upsert_bars
from prism.live import steps
from prism.strategies import SmaCrossover
from tests.integration.data.test_gaps import HOLE, punch

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")
HOLE_TEXT = "SPX 1d 2018-12-24 … 2018-12-27 (3 bars)"
HOLE_PATTERN = re.escape(HOLE_TEXT)


@pytest.fixture
def stocked(engine: Engine) -> Engine:
    ingest(engine, ArchBarSource())
    return engine


def _minute_feed(engine: Engine, symbol: str, last: pd.Timestamp) -> None:
    """Store ten 1m candles of ``symbol`` from a ccxt feed, the newest starting at ``last``."""
    times = pd.date_range(end=last, periods=10, freq="1min")
    upsert_assets(engine, [Asset(symbol, symbol, asset_class="crypto", calendar="24/7")])
    upsert_bars(
        engine,
        normalise(
            pd.DataFrame(
                {
                    "time": times,
                    "symbol": symbol,
                    "timeframe": "1m",
                    "open": 1.0,
                    "high": 1.0,
                    "low": 1.0,
                    "close": 1.0,
                    "volume": 1.0,
                    "source": "ccxt:binance",
                }
            )
        ),
    )


def _events(engine: Engine, event_type: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (row[0], row[1])
            for row in conn.execute(
                text(
                    "SELECT CAST(severity AS text), metadata->>'symbol' FROM audit.system_events "
                    "WHERE event_type = :t ORDER BY id"
                ),
                {"t": event_type},
            )
        ]


@pytest.fixture
def no_events(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit.system_events"))
    return engine


def test_status_json_describes_each_series(stocked):
    punch(stocked, "SPX", HOLE)

    result = CliRunner().invoke(app, ["data", "status", "--json"])

    assert result.exit_code == 0, result.output
    rows = {row["symbol"]: row for row in json.loads(result.output)}
    assert set(rows) == {"NDX", "SPX"}
    spx = rows["SPX"]
    assert (spx["first"], spx["last"]) == ("1999-01-04T00:00:00+00:00", "2018-12-31T00:00:00+00:00")
    assert (spx["bars"], spx["gaps"], spx["missing"], spx["quarantined"]) == (5028, 1, 3, 0)
    assert spx["staleness"] == "static" and spx["source"] == "arch"
    assert spx["open_gaps"][0]["start"] == "2018-12-24T00:00:00+00:00"
    assert (rows["NDX"]["bars"], rows["NDX"]["gaps"]) == (5031, 0)


def test_quarantined_rows_are_counted_for_their_symbol(engine):
    class Dirty(ArchBarSource):
        def fetch(self) -> pd.DataFrame:
            bars = super().fetch().head(5).copy()
            bars.loc[1, "high"] = bars.loc[1, "low"] - 1
            return normalise(bars)

    ingest(engine, Dirty())

    [spx] = data_status(engine, record=False)
    assert (spx.symbol, spx.quarantined, spx.gaps) == ("SPX", 1, 1)


def test_a_silent_live_symbol_is_a_warning_written_as_a_system_event(no_events):
    _minute_feed(no_events, "BTC/USDT", NOW - pd.Timedelta(minutes=1))
    _minute_feed(no_events, "ETH/USDT", NOW - pd.Timedelta(minutes=10))

    statuses = {s.symbol: s.staleness for s in data_status(no_events, NOW)}

    assert statuses == {"BTC/USDT": "ok", "ETH/USDT": "warning"}
    assert _events(no_events, "stale_feed") == [("warning", "ETH/USDT")]


def test_a_feed_with_no_bar_for_two_minutes_is_an_error(no_events):
    _minute_feed(no_events, "BTC/USDT", NOW - pd.Timedelta(minutes=4))

    [status] = data_status(no_events, NOW)

    assert status.staleness == "error"
    assert _events(no_events, "stale_feed") == [("error", "BTC/USDT")]


def test_asking_again_during_one_outage_writes_no_new_event_until_it_worsens(no_events):
    _minute_feed(no_events, "BTC/USDT", NOW - pd.Timedelta(minutes=1))
    _minute_feed(no_events, "ETH/USDT", NOW - pd.Timedelta(minutes=10))

    data_status(no_events, NOW)
    data_status(no_events, NOW + pd.Timedelta(seconds=30))
    assert _events(no_events, "stale_feed") == [("warning", "ETH/USDT")]

    data_status(no_events, NOW + pd.Timedelta(minutes=5))
    worse = _events(no_events, "stale_feed")
    data_status(no_events, NOW + pd.Timedelta(minutes=6))
    assert _events(no_events, "stale_feed") == worse
    assert ("error", "ETH/USDT") in worse[1:]


def test_the_quality_check_names_the_symbol_and_range_of_a_gap(stocked):
    punch(stocked, "SPX", HOLE)

    check_quality(stocked, ["SPX"], "1d", end="2018-12-21")
    with pytest.raises(DataUnavailable, match=HOLE_PATTERN):
        check_quality(stocked, ["SPX", "NDX"], "1d", start="2018-01-01")


def test_a_stale_feed_fails_the_quality_check(engine):
    _minute_feed(engine, "BTC/USDT", NOW - pd.Timedelta(minutes=30))

    check_quality(engine, ["BTC/USDT"], "1m")
    with pytest.raises(DataUnavailable, match="stale feed: BTC/USDT 1m from ccxt:binance"):
        check_quality(engine, ["BTC/USDT"], "1m", now=NOW.to_pydatetime())


BACKTEST = ["backtest", "sma_crossover", "--param", "fast=5", "--param", "slow=20", "--json"]


def test_a_backtest_on_bars_with_a_hole_is_refused_naming_it(stocked):
    punch(stocked, "SPX", HOLE)

    result = CliRunner().invoke(app, BACKTEST)

    assert result.exit_code != 0
    assert isinstance(result.exception, DataUnavailable)
    assert HOLE_TEXT in str(result.exception)
    assert "--allow-gaps" in str(result.exception)


def test_allow_gaps_runs_the_backtest_and_says_so(stocked):
    punch(stocked, "SPX", HOLE)

    result = CliRunner().invoke(app, [*BACKTEST, "--allow-gaps"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["allow_gaps"] is True


def test_a_clean_backtest_reports_no_allowance(stocked):
    result = CliRunner().invoke(app, BACKTEST)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["allow_gaps"] is False


def test_a_sweep_on_bars_with_a_hole_is_refused(stocked):
    punch(stocked, "SPX", HOLE)

    result = CliRunner().invoke(
        app, ["sweep", "sma_crossover", "--symbols", "SPX", "--grid", "fast=5", "--grid", "slow=20"]
    )

    assert isinstance(result.exception, DataUnavailable)
    assert HOLE_TEXT in str(result.exception)


def _cycle(engine: Engine, config: steps.LiveConfig, as_of: datetime) -> list[ledger.OrderRow]:
    strategy = SmaCrossover(fast=5, slow=20)
    loaded = steps.LiveStrategy(strategy.name, "m", "1", strategy.warmup, strategy.target_weights)
    ledger.ensure_account(engine, config.deployment, Decimal("1000000"))
    return steps.decide(engine, PaperBroker(engine, config), loaded, config, as_of)


def test_a_trade_cycle_on_a_hole_is_refused_and_recorded(stocked, no_events):
    punch(stocked, "SPX", HOLE)
    config = steps.LiveConfig(deployment="gated", symbols=("SPX", "NDX"))
    as_of = pd.Timestamp("2018-12-31", tz="UTC").to_pydatetime()

    with pytest.raises(DataUnavailable, match=HOLE_PATTERN) as refused:
        _cycle(stocked, config, as_of)

    assert "set allow_gaps on the deployment" in str(refused.value)
    assert [e[0] for e in _events(stocked, "data_quality_refused")] == ["error"]
    with stocked.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit.decisions")).scalar() == 0


def test_a_deployment_that_allows_gaps_trades_through_them(stocked, no_events):
    punch(stocked, "SPX", HOLE)
    config = steps.LiveConfig(deployment="lenient", symbols=("SPX", "NDX"), allow_gaps=True)

    _cycle(stocked, config, pd.Timestamp("2018-12-31", tz="UTC").to_pydatetime())

    assert _events(stocked, "data_quality_refused") == []
    with stocked.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit.decisions")).scalar() == 2


def test_status_of_a_minute_series_shows_its_daily_rollup_reaching_past_deleted_bars(engine):
    from tests.integration.db.test_platform_schema import FrameSource, minute_bars

    bars = minute_bars(pd.Timestamp("2026-03-02", tz="UTC"), days=3, seed=8)
    ingest(engine, FrameSource(bars))
    kept_from = pd.Timestamp("2026-03-03", tz="UTC")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM market_data.ohlcv WHERE time < :t"), {"t": kept_from})

    result = CliRunner().invoke(app, ["data", "status", "--json"])

    assert result.exit_code == 0, result.output
    aaa = next(row for row in json.loads(result.output) if row["symbol"] == "AAA")
    mine = bars[bars["symbol"] == "AAA"]
    assert aaa["first"] == mine.loc[mine["time"] >= kept_from, "time"].min().isoformat()
    assert aaa["rollup_from"] == mine["time"].min().floor("D").isoformat()
    assert aaa["rollup_days"] == mine["time"].dt.floor("D").nunique()
