"""Prism against the two libraries researchers compare it with, on their own canonical example:
backtesting.py's ``SmaCross`` on its bundled GOOG bars, and vectorbt's ``from_signals`` on the
same crossover signals. Both references are computed here by the peer libraries; Prism, trading
on target changes with whole shares sized at the fill, no slippage and commission per fill,
must make the same trades and reach the same equity to the cent."""

import warnings

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from prism.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from prism.backtest.metrics import round_trips
from prism.strategies import SmaCrossover

CASH = 10_000.0
COMMISSION = 0.002
PEER_CONFIG = BacktestConfig(
    capital=CASH,
    commission_bps=COMMISSION * 10_000,
    slippage_bps=0.0,
    lot=1.0,
    size_at="fill",
    rebalance="change",
)


class SmaCross(BtStrategy):
    """backtesting.py's README example, as published."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        close = self.data.Close
        self.sma1 = self.I(SMA, close, self.n1)
        self.sma2 = self.I(SMA, close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


def goog_bars() -> pd.DataFrame:
    """Return backtesting.py's GOOG frame as a Prism bar frame."""
    bars = GOOG.rename(columns=str.lower).rename_axis("time").reset_index()
    bars["time"] = bars["time"].dt.tz_localize("UTC")
    bars["symbol"] = "GOOG"
    bars["timeframe"] = "1d"
    return bars


def prism_run(allow_short: bool) -> BacktestResult:
    strategy = SmaCrossover(10, 20, allow_short=allow_short, on_cross=True)
    return run_backtest(goog_bars(), strategy, PEER_CONFIG)


@pytest.fixture(scope="module")
def backtesting_py() -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(GOOG, SmaCross, cash=CASH, commission=COMMISSION).run()


def crossover_signals() -> tuple[pd.Series, pd.Series]:
    """Return SmaCross's up and down crosses, each acted on at the next bar's open."""
    fast, slow = SMA(GOOG.Close, 10), SMA(GOOG.Close, 20)
    up = (fast.shift() < slow.shift()) & (fast > slow)
    down = (fast.shift() > slow.shift()) & (fast < slow)
    return up.shift(1, fill_value=False), down.shift(1, fill_value=False)


def utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.tz_localize("UTC").reset_index(drop=True)


def test_backtesting_py_smacross_on_goog_is_reproduced_trade_for_trade(backtesting_py):
    ours = prism_run(allow_short=True)
    theirs = backtesting_py["_trades"]
    trips = round_trips(ours.trades)

    assert len(theirs) > 50
    assert len(trips) == len(theirs)
    assert trips["size"].tolist() == theirs["Size"].tolist()
    assert trips["entry_time"].tolist() == utc(theirs["EntryTime"]).tolist()
    assert trips["exit_time"].tolist() == utc(theirs["ExitTime"]).tolist()
    assert trips["entry_price"].to_numpy() == pytest.approx(theirs["EntryPrice"].to_numpy())
    assert trips["exit_price"].to_numpy() == pytest.approx(theirs["ExitPrice"].to_numpy())
    assert trips["pnl"].to_numpy() == pytest.approx(theirs["PnL"].to_numpy(), abs=0.005)
    equity = backtesting_py["_equity_curve"]["Equity"].to_numpy()
    assert ours.equity.to_numpy() == pytest.approx(equity, abs=0.005)
    assert float(ours.equity.iloc[-1]) == pytest.approx(
        backtesting_py["Equity Final [$]"], abs=0.005
    )


@pytest.mark.parametrize("allow_short", [True, False])
def test_vectorbt_from_signals_on_the_same_signals_is_reproduced(allow_short):
    up, down = crossover_signals()
    sides = {"short_entries": down} if allow_short else {"exits": down}
    portfolio = vbt.Portfolio.from_signals(
        GOOG.Close,
        entries=up,
        price=GOOG.Open,
        size=np.inf,
        size_granularity=1.0,
        fees=COMMISSION,
        init_cash=CASH,
        lock_cash=True,
        freq="1D",
        **sides,
    )
    ours = prism_run(allow_short)
    theirs = portfolio.trades.records_readable
    closed = theirs[theirs["Status"] == "Closed"]
    trips = round_trips(ours.trades)
    sign = np.where(closed["Direction"] == "Long", 1.0, -1.0)

    assert len(closed) > 25
    assert trips["size"].tolist() == (sign * closed["Size"].to_numpy()).tolist()
    assert trips["entry_time"].tolist() == utc(closed["Entry Timestamp"]).tolist()
    assert trips["exit_time"].tolist() == utc(closed["Exit Timestamp"]).tolist()
    assert trips["entry_price"].to_numpy() == pytest.approx(closed["Avg Entry Price"].to_numpy())
    assert trips["exit_price"].to_numpy() == pytest.approx(closed["Avg Exit Price"].to_numpy())
    assert trips["pnl"].to_numpy() == pytest.approx(closed["PnL"].to_numpy(), abs=0.005)
    orders = portfolio.orders.records_readable
    assert ours.trades["quantity"].abs().sum() == orders["Size"].sum()
    assert ours.trades["commission"].sum() == pytest.approx(orders["Fees"].sum(), abs=0.005)
    assert ours.equity.to_numpy() == pytest.approx(portfolio.value().to_numpy(), abs=0.005)
