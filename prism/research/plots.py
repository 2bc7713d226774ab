"""Plotly figures the research notebooks show: coverage and gaps, return distributions, a
sweep's Sharpe heatmap, feature importance and equity curves of several runs overlaid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from scipy.stats import norm


def coverage_figure(coverage: pd.DataFrame, gaps: pd.DataFrame) -> go.Figure:
    """Return a timeline: one line per series from its first to its last bar, open gaps in red.

    ``coverage`` and ``gaps`` are :func:`prism.research.exploration.coverage` and ``gaps`` frames.
    """
    figure = go.Figure()
    for row in coverage.itertuples():
        name = f"{row.symbol} {row.timeframe}"
        figure.add_trace(
            go.Scatter(
                x=[row.first, row.last],
                y=[name, name],
                mode="lines",
                line={"width": 12},
                name=f"{name}: {row.bars:,} bars",
            )
        )
    if not gaps.empty:
        figure.add_trace(
            go.Scatter(
                x=gaps["start"],
                y=gaps["symbol"] + " " + gaps["timeframe"],
                mode="markers",
                marker={"color": "#c0392b", "size": 9, "symbol": "x"},
                text=gaps["missing"].astype(str) + " missing",
                name="open gaps",
            )
        )
    figure.update_layout(title="Coverage and open gaps", height=200 + 40 * len(coverage))
    return figure


def returns_histogram(returns: pd.DataFrame, bins: int = 100) -> go.Figure:
    """Return overlaid histograms (densities) of each symbol's bar returns with the normal
    density of the same mean and standard deviation dotted over each."""
    figure = go.Figure()
    for symbol in returns.columns:
        r = returns[symbol].dropna()
        figure.add_trace(
            go.Histogram(
                x=r, nbinsx=bins, histnorm="probability density", opacity=0.55, name=symbol
            )
        )
        grid = np.linspace(r.min(), r.max(), 200)
        figure.add_trace(
            go.Scatter(
                x=grid,
                y=norm.pdf(grid, r.mean(), r.std(ddof=1)),
                mode="lines",
                line={"dash": "dot"},
                name=f"{symbol} normal",
            )
        )
    figure.update_layout(
        title="Distribution of bar log returns (dotted: normal with the same mean and std)",
        barmode="overlay",
        xaxis_title="log return",
        yaxis_title="density",
    )
    return figure


def sweep_heatmap(table: pd.DataFrame, x: str, y: str, metric: str = "sharpe") -> go.Figure:
    """Return a heatmap of ``metric`` over the two swept parameters ``x`` and ``y`` (the mean
    where other parameters also vary; blank where a combination was not run)."""
    grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    figure = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(),
            x=[str(v) for v in grid.columns],
            y=[str(v) for v in grid.index],
            colorscale="RdYlGn",
            zmid=0,
            colorbar={"title": metric},
        )
    )
    figure.update_layout(title=f"{metric} by {x} and {y}", xaxis_title=x, yaxis_title=y)
    return figure


def importance_figure(importance: pd.Series, title: str) -> go.Figure:
    """Return a horizontal bar chart of feature importances, the largest on top."""
    ordered = importance.sort_values()
    figure = go.Figure(go.Bar(x=ordered.to_numpy(), y=list(ordered.index), orientation="h"))
    figure.update_layout(title=title, height=150 + 30 * len(ordered))
    return figure


def equity_overlay(curves: pd.DataFrame, title: str = "Equity, each run from 1.0") -> go.Figure:
    """Return one line per column of ``curves`` (a time × run frame of normalised equity)."""
    figure = go.Figure()
    for name in curves.columns:
        series = curves[name].dropna()
        figure.add_trace(go.Scatter(x=series.index, y=series.to_numpy(), mode="lines", name=name))
    figure.update_layout(title=title, yaxis_type="log", yaxis_title="equity (start = 1)")
    return figure


def use_notebook_renderer() -> None:
    """Show figures in JupyterLab from their JSON alone (no plotly.js in the notebook): the
    executed notebook stays small, and :func:`prism.research.tracking.render_html` draws the same
    figures in the notebook's HTML page with :func:`plotly_js_reference`."""
    pio.renderers.default = "plotly_mimetype"


def plotly_js_reference() -> str:
    """Return the ``file://`` URI of the plotly.js the installed plotly package ships.

    Pages Prism writes (tear sheets, notebook HTML) load plotly.js from there instead of
    embedding its 4.8 MB in every page of every run: no network needed, nothing stored twice.
    """
    from importlib.resources import files

    return Path(str(files("plotly") / "package_data" / "plotly.min.js")).resolve().as_uri()
