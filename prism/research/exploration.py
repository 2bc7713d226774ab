"""What the stored bars look like before any strategy touches them (``01_explore_data``).

Coverage per series, its open gaps against the trading calendar, what validation quarantined,
and the distribution of bar returns per symbol (moments and a Jarque-Bera normality test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import jarque_bera, kurtosis, skew
from sqlalchemy import Engine, text

from prism.data.gaps import find_gaps
from prism.data.health import series_status


def coverage(engine: Engine, symbols: list[str] | None, timeframe: str) -> pd.DataFrame:
    """Return one row per stored series: symbol, timeframe, source, calendar, first and last bar
    (UTC), bars, quarantined rows."""
    rows = [
        {
            "symbol": s.symbol,
            "timeframe": s.timeframe,
            "source": s.source,
            "calendar": s.calendar,
            "first": s.first,
            "last": s.last,
            "bars": s.bars,
            "quarantined": s.quarantined,
        }
        for s in series_status(engine, symbols, timeframe)
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "symbol",
            "timeframe",
            "source",
            "calendar",
            "first",
            "last",
            "bars",
            "quarantined",
        ],
    )


def gaps(
    engine: Engine,
    symbols: list[str] | None,
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
) -> pd.DataFrame:
    """Return the open gaps as rows: symbol, timeframe, start, end (UTC, inclusive), missing."""
    lower, upper = (
        None if t is None else pd.Timestamp(t, tz="UTC").to_pydatetime() for t in (start, end)
    )
    found = find_gaps(engine, symbols, timeframe, lower, upper)
    return pd.DataFrame(
        [(g.symbol, g.timeframe, g.start, g.end, g.missing) for g in found],
        columns=["symbol", "timeframe", "start", "end", "missing"],
    )


def quarantine_summary(engine: Engine, symbols: list[str] | None = None) -> pd.DataFrame:
    """Return quarantined rows counted by source, symbol, rule and reason, most frequent first."""
    query = text(
        "SELECT source, coalesce(symbol, '') AS symbol, rule, reason, count(*) AS n_rows, "
        "max(received_at) AS last_received "
        "FROM market_data.quarantine "
        "WHERE CAST(:symbols AS text[]) IS NULL OR symbol = ANY(CAST(:symbols AS text[])) "
        "GROUP BY 1, 2, 3, 4 ORDER BY n_rows DESC, source, symbol"
    )
    with engine.connect() as conn:
        return pd.read_sql_query(query, conn, params={"symbols": symbols})


def bar_returns(bars: pd.DataFrame) -> pd.DataFrame:
    """Return log returns close to close as a (time × symbol) float64 frame (UTC index)."""
    closes = bars.pivot(index="time", columns="symbol", values="close").sort_index()
    logs = pd.DataFrame(np.log(closes.to_numpy()), index=closes.index, columns=closes.columns)
    return logs.diff().iloc[1:]


def return_statistics(returns: pd.DataFrame, periods_per_year: float = 252) -> pd.DataFrame:
    """Return per symbol: bars, annualised mean and volatility, skewness, Pearson kurtosis
    (3 for normal), worst and best bar, and the Jarque-Bera p-value of normality."""
    rows = []
    for symbol in returns.columns:
        r = returns[symbol].dropna().to_numpy()
        rows.append(
            {
                "symbol": symbol,
                "n": len(r),
                "annual_mean": float(r.mean() * periods_per_year),
                "annual_volatility": float(r.std(ddof=1) * np.sqrt(periods_per_year)),
                "skew": float(skew(r, bias=True)),
                "kurtosis": float(kurtosis(r, fisher=False, bias=True)),
                "worst": float(r.min()),
                "best": float(r.max()),
                "jarque_bera_p": float(jarque_bera(r).pvalue),
            }
        )
    return pd.DataFrame(rows).set_index("symbol")
