"""A backtest's tear sheet: one interactive HTML page (plotly) a researcher reads at a glance.

Panels: equity against a buy-and-hold benchmark, drawdown, rolling Sharpe ratio, and a heatmap
of monthly returns; the trade list follows as a table. The page is self-contained (plotly's
JavaScript inlined), so it opens offline and as an MLflow artifact; the same figure is also
rendered to a PNG (kaleido, which drives a headless Chromium) for places that show images only.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from prism.backtest.metrics import drawdown, returns

log = logging.getLogger(__name__)


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Return compounded returns as a (year × month 1..12) float64 frame, NaN where no data."""
    monthly = equity.resample("ME").last().pct_change()
    monthly.iloc[0] = equity.resample("ME").last().iloc[0] / equity.iloc[0] - 1.0
    stamps = pd.DatetimeIndex(monthly.index)
    table = pd.DataFrame({"year": stamps.year, "month": stamps.month, "value": monthly.to_numpy()})
    return table.pivot(index="year", columns="month", values="value").reindex(columns=range(1, 13))


def rolling_sharpe(equity: pd.Series, window: int = 126, periods_per_year: int = 252) -> pd.Series:
    """Return the annualised Sharpe ratio over a trailing ``window`` of bars."""
    r = returns(equity)
    return r.rolling(window).mean() / r.rolling(window).std(ddof=1) * np.sqrt(periods_per_year)


def chart_times(index: pd.Index) -> np.ndarray:
    """Return ``index`` (UTC times) as the shortest strings plotly reads as the same instants
    shown in UTC: ``2018-12-31`` when every time is midnight, else ``2018-12-31 14:30:00``.
    ISO strings with their ``T00:00:00+00:00`` were two thirds of a tear sheet's bytes, and the
    figure is stored three times per research run (notebook, its HTML, the tear sheet page)."""
    times = pd.DatetimeIndex(index)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    daily = bool((times == times.normalize()).all())
    return np.asarray(times.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S"))


def tear_sheet(
    equity: pd.Series, benchmark: pd.Series, trades: pd.DataFrame, title: str
) -> go.Figure:
    """Return the tear sheet figure; ``benchmark`` is a price series on the same times."""
    scaled = benchmark / benchmark.iloc[0] * equity.iloc[0]
    months = monthly_returns(equity)
    times = chart_times(equity.index)
    figure = make_subplots(
        rows=4,
        cols=1,
        row_heights=[0.35, 0.15, 0.15, 0.35],
        vertical_spacing=0.06,
        subplot_titles=(
            "equity vs buy and hold",
            "drawdown %",
            "rolling 6-month Sharpe",
            "monthly returns %",
        ),
    )
    figure.add_trace(go.Scatter(x=times, y=equity, name="strategy"), row=1, col=1)
    figure.add_trace(
        go.Scatter(
            x=chart_times(scaled.index), y=scaled, name="buy and hold", line={"dash": "dot"}
        ),
        row=1,
        col=1,
    )
    figure.add_trace(
        go.Scatter(
            x=times,
            y=drawdown(equity) * 100,
            name="drawdown",
            fill="tozeroy",
            line={"color": "#c0392b"},
        ),
        row=2,
        col=1,
    )
    figure.add_trace(
        go.Scatter(x=times[1:], y=rolling_sharpe(equity), name="rolling Sharpe"),
        row=3,
        col=1,
    )
    figure.add_trace(
        go.Heatmap(
            z=months.to_numpy() * 100,
            x=list(range(1, 13)),
            y=months.index.astype(str),
            colorscale="RdYlGn",
            zmid=0,
            showscale=False,
            name="monthly %",
        ),
        row=4,
        col=1,
    )
    figure.update_layout(title=f"{title} — {len(trades)} fills", height=1200, showlegend=True)
    return figure


def write_tear_sheet(
    figure: go.Figure, trades: pd.DataFrame, path: Path, plotlyjs: bool | str = True
) -> Path:
    """Write the figure and the trade list as one HTML page; return its path. ``plotlyjs`` is
    plotly's ``include_plotlyjs``: True embeds plotly.js, a ``.js`` URL references it."""
    table = trades.to_html(index=False, float_format=lambda v: f"{v:,.4f}", border=0)
    page = figure.to_html(full_html=True, include_plotlyjs=plotlyjs)
    path.write_text(page.replace("</body>", f"<h2>Trades</h2>{table}</body>"))
    return path


def write_tear_sheet_png(figure: go.Figure, path: Path) -> Path | None:
    """Render the figure to a PNG; return its path, or None (with a warning saying what to
    install) when kaleido finds no Chromium to render with. After :func:`keep_png_renderer`
    the first PNG opens a Chromium that the later ones reuse."""
    if _renderer["wanted"] and not _renderer["started"]:
        _renderer["started"] = True
        _start_kept_renderer()
    try:
        figure.write_image(path, width=1000, height=1200)
    except (RuntimeError, OSError, ValueError) as err:
        log.warning("tear sheet PNG skipped (%s); install Chromium, e.g. apt install chromium", err)
        return None
    return path


_renderer = {"wanted": False, "started": False}


def keep_png_renderer() -> None:
    """Keep one headless Chromium open for this process's tear sheet PNGs from the next one on
    (kaleido's sync server), so each PNG after the first costs a render (0.2-0.4 s here) rather
    than a browser start (3 s). For long-lived processes: the resident research worker's
    kernels. Nothing starts until a PNG is written."""
    _renderer["wanted"] = True


def _start_kept_renderer(timeout: float = 60.0) -> bool:
    """Start kaleido's sync server and check it with a small render; return whether it is up.
    When the render fails or takes over ``timeout`` seconds (no Chromium) the server is given up
    and PNGs go back to one browser each."""
    import threading

    import kaleido

    warnings.filterwarnings("ignore", "The kopts argument is ignored", UserWarning)
    kaleido.start_sync_server(silence_warnings=True)
    probe = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
    done: list[bool] = []

    def render() -> None:
        try:
            probe.to_image(format="png", width=50, height=50)
            done.append(True)
        except Exception:  # any failure means: no kept renderer
            done.append(False)

    thread = threading.Thread(target=render, daemon=True)
    thread.start()
    thread.join(timeout)
    if done == [True]:
        return True
    if done:
        kaleido.stop_sync_server(silence_warnings=True)
    else:
        # A hung browser cannot be joined; mark the server closed so renders go one-shot.
        kaleido._global_server._initialized = False
    return False
