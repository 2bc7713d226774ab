"""Research helpers for the deep strategies (``06_train_deep_strategy``): their learning
curves, and out-of-sample equity against buy and hold and other strategies."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.data.bars import close_panel
from prism.strategies import Strategy

BUY_AND_HOLD = "buy and hold"


def out_of_sample_equity(
    bars: pd.DataFrame,
    strategies: dict[str, Strategy],
    config: BacktestConfig,
    split: pd.Timestamp,
) -> pd.DataFrame:
    """Return each strategy's equity trading from ``split`` (the bars before it are history
    only), as a multiple of the starting capital, beside an equal-capital buy and hold of the
    symbols bought at the first close from ``split``: one column per curve, indexed by time."""
    curves = {
        name: run_backtest(bars, strategy, config, start=split).equity / config.capital
        for name, strategy in strategies.items()
    }
    closes = close_panel(bars).ffill()
    closes = closes[closes.index >= split]
    curves[BUY_AND_HOLD] = (closes / closes.iloc[0]).mean(axis=1)
    return pd.DataFrame(curves)


def learning_curve_figure(curves: pd.DataFrame, title: str, value: str) -> go.Figure:
    """Return one line per fit (symbol and refit) of a ``learning_curves()`` frame."""
    figure = go.Figure()
    for (symbol, refit), curve in curves.groupby(["symbol", "refit"], sort=True):
        figure.add_scatter(
            x=curve["step"], y=curve["value"], mode="lines", name=f"{symbol} {str(refit)[:10]}"
        )
    figure.update_layout(title=title, xaxis_title="step", yaxis_title=value, height=360)
    return figure


def equity_comparison_figure(equity: pd.DataFrame, title: str) -> go.Figure:
    """Return the curves of :func:`out_of_sample_equity` on one chart."""
    figure = go.Figure()
    for name in equity.columns:
        dash = "dot" if name == BUY_AND_HOLD else None
        figure.add_scatter(
            x=equity.index, y=equity[name], mode="lines", name=name, line={"dash": dash}
        )
    figure.update_layout(title=title, yaxis_title="equity / capital", height=420)
    return figure
