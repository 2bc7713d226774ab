"""Plots a person would rather look at than read: the equity curve over its drawdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from prism.backtest.metrics import drawdown


def equity_figure(equity: pd.Series, title: str) -> plt.Figure:
    """Return a two-panel figure: equity on top, drawdown (percent) below.

    Times are handed to matplotlib as naive ``datetime64`` (UTC): a time-zone-aware index is
    converted one timestamp object at a time, which took half of this function."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    times = _plain_times(equity.index)
    top.plot(times, equity.to_numpy(), color="#1f4e79", linewidth=1.2)
    top.set_title(title)
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    dd = drawdown(equity) * 100
    bottom.fill_between(times, dd.to_numpy(), 0, color="#c0392b", alpha=0.5)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _plain_times(index: pd.Index) -> Any:
    """Return a datetime index as naive UTC ``datetime64`` values (other indexes unchanged)."""
    if isinstance(index, pd.DatetimeIndex) and index.tz is not None:
        return index.tz_convert("UTC").tz_localize(None).to_numpy()
    return index


def save_equity_png(equity: pd.Series, title: str, path: Path) -> Path:
    """Write :func:`equity_figure` to ``path`` as a PNG and return the path."""
    figure = equity_figure(equity, title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
