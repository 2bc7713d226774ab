import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prism.backtest.engine import BacktestConfig, run_backtest, run_bar_by_bar, simulate_panel
from prism.core.errors import ConfigError, DataUnavailable
from prism.data.bars import BarPanel, close_panel, normalise
from prism.strategies import SmaCrossover, make_strategy
from tests.unit.strategies.test_strategies import EXAMPLES

CONFIG = BacktestConfig(capital=1_000_000.0, commission_bps=5.0, slippage_bps=3.0)


def test_vectorbt_replaying_our_fills_reaches_the_same_equity_every_bar(bundled_bars):
    result = run_backtest(bundled_bars, SmaCrossover(fast=10, slow=50), CONFIG)
    close = close_panel(bundled_bars)
    size = result.trades.pivot(index="time", columns="symbol", values="quantity").reindex_like(
        close
    )
    price = result.trades.pivot(index="time", columns="symbol", values="price").reindex_like(close)

    portfolio = vbt.Portfolio.from_orders(
        close=close,
        size=size,
        price=price.fillna(close),
        size_type="amount",
        fees=CONFIG.commission_bps / 10_000,
        init_cash=CONFIG.capital,
        cash_sharing=True,
        group_by=True,
        freq="1D",
    )

    np.testing.assert_allclose(portfolio.value().to_numpy(), result.equity.to_numpy(), rtol=1e-9)
    assert len(result.trades) == portfolio.orders.count()


def test_orders_decided_at_a_close_fill_at_the_next_bars_open_with_slippage(bundled_bars):
    result = run_backtest(bundled_bars, SmaCrossover(fast=10, slow=50), CONFIG)
    opens = close_panel(bundled_bars, "open")
    first = result.trades.iloc[0]

    next_open = opens.loc[opens.index > first["decided_at"], first["symbol"]].iloc[0]

    assert first["time"] == opens.index[opens.index > first["decided_at"]][0]
    assert first["price"] == pytest.approx(next_open * (1 + np.sign(first["quantity"]) * 3e-4))
    assert first["commission"] == pytest.approx(abs(first["quantity"]) * first["price"] * 5e-4)


def test_changing_the_future_does_not_change_the_past(bundled_bars):
    strategy = SmaCrossover(fast=10, slow=50)
    cut = pd.Timestamp("2010-06-30", tz="UTC")
    future = bundled_bars["time"] > cut
    scrambled = bundled_bars.copy()
    scrambled.loc[future, ["open", "high", "low", "close"]] *= 0.5

    original = run_backtest(bundled_bars, strategy, CONFIG).equity
    changed = run_backtest(scrambled, strategy, CONFIG).equity

    pd.testing.assert_series_equal(original[:cut], changed[:cut])
    assert not original[cut:].equals(changed[cut:])


def test_a_flat_strategy_keeps_its_capital(bundled_bars):
    class Flat:
        name = "flat"
        warmup = 1

        def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
            return bars[["time", "symbol"]].assign(weight=0.0)

    result = run_backtest(bundled_bars, Flat(), CONFIG)

    assert result.trades.empty
    assert (result.equity == CONFIG.capital).all()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_calling_the_strategy_bar_by_bar_like_the_live_runner_gives_the_same_backtest(
    bundled_bars, name
):
    strategy = make_strategy(name, EXAMPLES[name])
    start = pd.Timestamp("2018-01-02", tz="UTC")

    whole = run_backtest(bundled_bars, strategy, CONFIG, start=start)
    stepped = run_bar_by_bar(bundled_bars, strategy, CONFIG, start=start)

    pd.testing.assert_frame_equal(stepped.trades, whole.trades)
    pd.testing.assert_series_equal(stepped.equity, whole.equity)


class LongShort:
    name = "long_short"
    warmup = 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        sign = np.where(bars["symbol"] == "SPX", 1.0, -1.0)
        return bars[["time", "symbol"]].assign(weight=sign)


@pytest.mark.parametrize("cap", [1.0, 2.0])
def test_gross_exposure_stays_at_the_leverage_cap(bundled_bars, cap):
    config = BacktestConfig(max_leverage=cap, band=0.02)

    result = run_backtest(bundled_bars, LongShort(), config)

    gross = result.exposure["gross"].iloc[1:]
    assert result.weights.abs().sum(axis=1).max() == pytest.approx(cap)
    assert gross.median() == pytest.approx(cap, rel=0.03)
    assert abs(result.exposure["net"].iloc[1:].median()) < 0.05 * cap


def test_turnover_adds_up_to_the_traded_notional(bundled_bars):
    result = run_backtest(bundled_bars, SmaCrossover(fast=10, slow=50), CONFIG)

    traded = (result.turnover * result.equity).sum()

    assert traded == pytest.approx((result.trades["quantity"].abs() * result.trades["price"]).sum())


def test_an_empty_bar_frame_is_refused_with_a_reason():
    with pytest.raises(DataUnavailable, match="empty bar frame"):
        run_backtest(pd.DataFrame(), SmaCrossover(fast=2, slow=3), CONFIG)


def _four_bars() -> pd.DataFrame:
    times = pd.date_range("2020-01-06", periods=4, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "time": times,
            "symbol": "X",
            "timeframe": "1d",
            "open": [100.0, 101.0, 103.0, 105.0],
            "high": [101.0, 103.0, 105.0, 107.0],
            "low": [99.0, 100.0, 102.0, 104.0],
            "close": [100.0, 102.0, 104.0, 106.0],
            "volume": 1_000.0,
            "source": "hand",
        }
    )
    return normalise(frame)


class InThenOut:
    name = "in_then_out"
    warmup = 1

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        return bars[["time", "symbol"]].assign(weight=[1.0, 1.0, 0.0, 0.0][: len(bars)])


def test_a_round_trip_worked_by_hand():
    """Buy sized at bar 0's close (10,000 / (100 * 1.001 + 0.01) -> 99 shares), cut at bar 1's
    open to what cash covers (10,000 / (101 * 1.001 + 0.01) -> 98), sold at bar 3's open."""
    config = BacktestConfig(
        capital=10_000.0,
        commission_bps=10.0,
        commission_per_share=0.01,
        slippage_bps=0.0,
        band=0.0,
        lot=1.0,
    )

    result = run_backtest(_four_bars(), InThenOut(), config)

    assert result.trades[["quantity", "price"]].to_numpy().tolist() == [
        [98.0, 101.0],
        [-98.0, 105.0],
    ]
    np.testing.assert_allclose(result.trades["commission"], [10.878, 11.27], rtol=1e-12)
    np.testing.assert_allclose(
        result.equity, [10_000.0, 10_087.122, 10_283.122, 10_369.852], rtol=1e-12
    )


def test_filling_at_the_close_trades_on_the_deciding_bar():
    config = BacktestConfig(
        capital=10_000.0, commission_bps=0.0, slippage_bps=0.0, band=0.0, lot=1.0, fill_at="close"
    )

    result = run_backtest(_four_bars(), InThenOut(), config)

    assert (result.trades["time"] == result.trades["decided_at"]).all()
    assert result.trades[["quantity", "price"]].to_numpy().tolist() == [
        [100.0, 100.0],
        [-100.0, 104.0],
    ]
    assert result.equity.iloc[-1] == pytest.approx(10_400.0)


def test_an_unknown_fill_time_is_refused():
    with pytest.raises(ConfigError, match="fill_at must be 'open' or 'close'"):
        BacktestConfig(fill_at="noon")  # type: ignore[arg-type]


def _spx(bundled_bars: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    one = bundled_bars[bundled_bars["symbol"] == "SPX"].reset_index(drop=True)
    index = pd.DatetimeIndex(one["time"].dt.tz_localize(None))
    return one, pd.Series(one["close"].to_numpy(), index), pd.Series(one["open"].to_numpy(), index)


@pytest.mark.parametrize(("fast", "slow"), [(10, 50), (5, 20), (20, 200)])
def test_sized_at_the_fill_it_makes_vectorbts_from_signals_trades(bundled_bars, fast, slow):
    one, close, open_ = _spx(bundled_bars)
    config = BacktestConfig(
        capital=100_000.0, commission_bps=2.0, slippage_bps=0.0, lot=1.0, size_at="fill"
    )
    result = run_backtest(one, SmaCrossover(fast=fast, slow=slow), config)
    above = close.rolling(fast).mean() > close.rolling(slow).mean()
    portfolio = vbt.Portfolio.from_signals(
        close,
        entries=above.shift(1, fill_value=False),
        exits=(~above).shift(1, fill_value=False),
        price=open_,
        size=np.inf,
        size_granularity=1.0,
        fees=2e-4,
        init_cash=100_000.0,
        freq="1D",
    )
    orders = portfolio.orders.records_readable

    assert len(result.trades) == len(orders) > 10
    np.testing.assert_array_equal(result.trades["quantity"].abs(), orders["Size"])
    np.testing.assert_allclose(result.trades["price"], orders["Price"], rtol=1e-12)
    np.testing.assert_allclose(result.trades["commission"], orders["Fees"], rtol=1e-9)
    np.testing.assert_allclose(result.equity, portfolio.value(), rtol=1e-9)


def test_a_gap_down_worked_by_hand_for_both_sizings():
    """Bar 1 opens at 95 below bar 0's close of 100. Sized at the decision: 10,000 /
    (100 * 1.001 + 0.01) -> 99 shares. Sized at the fill: 10,000 / (95 * 1.001 + 0.01) -> 105."""
    bars = _four_bars()
    bars.loc[1, ["open", "low"]] = [95.0, 94.0]
    costs = {"capital": 10_000.0, "commission_bps": 10.0, "commission_per_share": 0.01}
    costs |= {"slippage_bps": 0.0, "band": 0.1, "lot": 1.0}

    decision = run_backtest(bars, InThenOut(), BacktestConfig(**costs))
    fill = run_backtest(bars, InThenOut(), BacktestConfig(**costs, size_at="fill"))

    assert decision.trades["quantity"].tolist() == [99.0, -99.0]
    assert fill.trades["quantity"].tolist() == [105.0, -105.0]
    assert fill.equity.iloc[1] == pytest.approx(10_000 - 105 * 95 * 0.001 - 1.05 + 105 * 7.0)


def test_an_unknown_sizing_is_refused():
    with pytest.raises(ConfigError, match="size_at"):
        BacktestConfig(size_at="later")  # type: ignore[arg-type]


WINDOW = 250


@pytest.fixture(scope="module")
def recent_panel():
    from prism.data.sources import ArchBarSource

    bars = ArchBarSource().fetch()
    return BarPanel.from_bars(bars[bars["time"].isin(np.sort(bars["time"].unique())[-WINDOW:])])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    choices=hnp.arrays(np.int8, (WINDOW, 2), elements=st.integers(0, 4)),
    fill_at=st.sampled_from(["open", "close"]),
    size_at=st.sampled_from(["decision", "fill"]),
)
def test_cash_plus_holdings_is_equity_at_every_bar(recent_panel, choices, fill_at, size_at):
    """Cash rebuilt from the fills alone, plus the positions at the last closes, is the equity
    the engine reports, whatever the weights (long, short, levered up to the cap)."""
    panel = recent_panel
    weights = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])[choices]
    config = BacktestConfig(
        capital=1_000_000.0,
        commission_bps=5.0,
        commission_per_share=0.01,
        slippage_bps=3.0,
        fill_at=fill_at,
        size_at=size_at,
    )
    result = simulate_panel(panel, weights, config)

    spent = result.trades["quantity"] * result.trades["price"] + result.trades["commission"]
    cash = (
        config.capital
        - spent.groupby(result.trades["time"])
        .sum()
        .reindex(result.equity.index, fill_value=0.0)
        .cumsum()
    )
    holdings = (result.positions * result.marks.ffill().fillna(0.0)).sum(axis=1)
    np.testing.assert_allclose(cash + holdings, result.equity, rtol=1e-9)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commission_bps=st.floats(0, 50),
    slippage_bps=st.floats(0, 50),
    size_at=st.sampled_from(["decision", "fill"]),
)
def test_zero_weights_mean_zero_trades_and_zero_costs(
    recent_panel, commission_bps, slippage_bps, size_at
):
    config = BacktestConfig(
        commission_bps=commission_bps, slippage_bps=slippage_bps, size_at=size_at
    )

    result = simulate_panel(recent_panel, np.zeros(recent_panel.close.shape), config)

    assert result.trades.empty
    assert (result.equity == config.capital).all()
    assert result.turnover.sum() == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lot", 0.0),
        ("capital", -1.0),
        ("max_leverage", float("nan")),
        ("band", -0.01),
        ("commission_bps", float("inf")),
        ("rebalance", "drift"),
    ],
)
def test_an_impossible_backtest_setting_is_refused_by_name(field, value):
    with pytest.raises(ConfigError, match=field):
        BacktestConfig(**{field: value})


def test_trading_on_target_changes_holds_a_position_the_band_would_top_up(bundled_bars):
    strategy = SmaCrossover(fast=20, slow=100)
    band = run_backtest(bundled_bars, strategy, BacktestConfig(band=0.01))
    change = run_backtest(bundled_bars, strategy, BacktestConfig(rebalance="change"))
    weights = change.weights.to_numpy()
    changed = np.r_[weights[:1] != 0, np.diff(weights, axis=0) != 0].any(axis=1)

    times = change.weights.index[changed]
    decided = set(change.trades["decided_at"])
    assert decided == set(times[times < change.weights.index[-1]])
    assert len(band.trades) > len(change.trades)
