"""Pairs trading: trade the spread of two symbols while a rolling test says it mean-reverts.

Every bar ``t`` looks at the ``lookback`` bars ending at ``t`` only: an OLS regression of the
first symbol's log close on the second's gives the hedge ratio, the spread is the first's log
close minus hedge times the second's, its z-score is the last spread's distance from the
window's mean in window standard deviations, and an Augmented Dickey-Fuller test
(statsmodels' ``adfuller`` regression with a constant and ``adf_lags`` lagged differences,
MacKinnon p-values) on the window's spread decides whether the pair may be traded at all.

The entry/exit rule is a hysteresis, and a hysteresis remembers. To keep a decision a function
of a bounded window (the live runner sees ``warmup + 1`` bars), a position lapses ``max_hold``
bars after the last bar that signalled it (a time stop). Each bar's signal is one of long,
short, flat or "hold", so the position at ``t`` is the newest signal in the ``max_hold + 1``
bars ending at ``t`` (flat if all say hold), and ``warmup = lookback + max_hold`` bars decide
it exactly; the tests replay the strategy bar by bar on such windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

MIN_LOOKBACK = 10
DEGENERATE = 1e-12


@dataclass(frozen=True)
class PairsTrading:
    """Trade the z-score of a rolling-OLS spread between two symbols, gated by an ADF test.

    Long the spread (long ``first``, short ``hedge`` times as much ``second``) when its z-score
    falls below ``-entry_z``, short it above ``entry_z``, and go flat when ``|z| < exit_z``,
    when the ADF test on the window's spread no longer rejects a unit root at ``adf_pvalue``,
    or ``max_hold`` bars after the last entry signal. Weights are dollar weights on log-price
    hedge ratios, scaled to a gross exposure of 1; other symbols get weight 0. A bar where
    either symbol has no close gets weight 0 for both.

    ADF p-values on an estimated spread are optimistic (Engle-Granger critical values are
    stricter), so ``adf_pvalue`` is a filter, not a test of cointegration.
    """

    name: ClassVar[str] = "pairs"
    first: str = "SPX"
    second: str = "NDX"
    lookback: int = 60
    entry_z: float = 2.0
    exit_z: float = 0.5
    adf_pvalue: float = 0.05
    adf_lags: int = 1
    max_hold: int = 20

    def __post_init__(self) -> None:
        problems = _parameter_problems(self)
        if problems:
            raise ConfigError(f"pairs: {'; '.join(problems)}")

    @property
    def warmup(self) -> int:
        """Return ``lookback + max_hold``: the bars behind the oldest signal a position uses."""
        return self.lookback + self.max_hold

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight): the spread position on the pair, 0 elsewhere."""
        ordered = bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)
        out = ordered[["time", "symbol"]].copy()
        out["weight"] = 0.0
        if ordered.empty:
            return out
        state = self.diagnostics(ordered)
        leg_first = state["position"] / (1.0 + state["hedge"].abs())
        legs = {self.first: leg_first, self.second: -leg_first * state["hedge"]}
        for symbol, leg in legs.items():
            rows = out["symbol"] == symbol
            weight = out.loc[rows, "time"].map(leg.where(state["position"] != 0, 0.0))
            out.loc[rows, "weight"] = weight.fillna(0.0).to_numpy(np.float64)
        return out

    def diagnostics(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return, per time both symbols have a close: hedge ratio, z-score, ADF p-value and
        position (+1 long the spread, -1 short, 0 flat), indexed by time."""
        closes = _pair_closes(bars, self.first, self.second)
        y, x = np.log(closes[self.first].to_numpy()), np.log(closes[self.second].to_numpy())
        hedge, zscore, pvalue = _window_statistics(y, x, self.lookback, self.adf_lags)
        tradable = np.isfinite(zscore) & (pvalue <= self.adf_pvalue)
        signal = spread_signals(zscore, tradable, self.entry_z, self.exit_z)
        position = hold_positions(signal, self.max_hold)
        return pd.DataFrame(
            {"hedge": hedge, "zscore": zscore, "pvalue": pvalue, "position": position},
            index=closes.index,
        )


def _parameter_problems(p: PairsTrading) -> list[str]:
    checks = [
        (bool(p.first) and bool(p.second), "first and second must name symbols"),
        (p.first != p.second, f"first and second must differ, both are {p.first!r}"),
        (p.lookback >= MIN_LOOKBACK, f"lookback must be >= {MIN_LOOKBACK}, got {p.lookback}"),
        (
            0 <= p.exit_z < p.entry_z,
            f"needs 0 <= exit_z < entry_z, got exit_z={p.exit_z}, entry_z={p.entry_z}",
        ),
        (0 < p.adf_pvalue <= 1, f"adf_pvalue must be in (0, 1], got {p.adf_pvalue}"),
        (
            0 <= p.adf_lags <= p.lookback // 2 - 2,
            f"adf_lags must be in [0, lookback // 2 - 2 = {p.lookback // 2 - 2}] "
            f"(adfuller's limit), got {p.adf_lags}",
        ),
        (p.max_hold >= 1, f"max_hold must be >= 1, got {p.max_hold}"),
    ]
    return [message for ok, message in checks if not ok]


def _pair_closes(bars: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Return the two symbols' closes by time, on the times both have one."""
    present = set(bars["symbol"].unique())
    missing = [s for s in (first, second) if s not in present]
    if missing:
        raise ConfigError(
            f"pairs: symbol(s) {', '.join(missing)} not in the bars "
            f"(they hold {', '.join(sorted(map(str, present)))}); set first/second to two of them"
        )
    pair = bars[bars["symbol"].isin([first, second])]
    return pair.pivot(index="time", columns="symbol", values="close").dropna()[[first, second]]


def _window_statistics(
    y: np.ndarray, x: np.ndarray, lookback: int, adf_lags: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per bar the hedge ratio, spread z-score and ADF p-value of the ``lookback`` bars
    ending there (NaN before the first full window or where the window is degenerate)."""
    hedge, zscore, pvalue = (np.full(len(y), np.nan) for _ in range(3))
    if len(y) < lookback:
        return hedge, zscore, pvalue
    ys, xs = (
        np.lib.stride_tricks.sliding_window_view(y, lookback),
        np.lib.stride_tricks.sliding_window_view(x, lookback),
    )
    ratio = ols_slopes(ys, xs)
    spreads = ys - ratio[:, None] * xs
    hedge[lookback - 1 :] = ratio
    zscore[lookback - 1 :] = last_zscores(spreads)
    pvalue[lookback - 1 :] = adf_pvalues(adf_statistics(spreads, adf_lags))
    return hedge, zscore, pvalue


def ols_slopes(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Return each row's OLS slope of ``ys`` on ``xs`` with an intercept (NaN if ``xs`` is
    constant)."""
    xd = xs - xs.mean(axis=1, keepdims=True)
    yd = ys - ys.mean(axis=1, keepdims=True)
    sxx = (xd * xd).sum(axis=1)
    ok = sxx > DEGENERATE * np.maximum((xs * xs).sum(axis=1), 1.0)
    return np.where(ok, (xd * yd).sum(axis=1) / np.where(ok, sxx, 1.0), np.nan)


def last_zscores(spreads: np.ndarray) -> np.ndarray:
    """Return each row's last value less the row mean, over the row's sample standard
    deviation (NaN for a constant row)."""
    std = spreads.std(axis=1, ddof=1)
    ok = std > DEGENERATE * np.maximum(np.abs(spreads).max(axis=1), 1.0)
    centred = spreads[:, -1] - spreads.mean(axis=1)
    return np.where(ok, centred / np.where(ok, std, 1.0), np.nan)


def adf_statistics(series: np.ndarray, lags: int) -> np.ndarray:
    """Return the ADF t-statistic of each row, as ``adfuller(row, maxlag=lags, autolag=None,
    regression="c")`` computes it, for all rows at once (NaN where the regression is
    singular).

    The regression of ``diff(row)`` on the lagged level, ``lags`` lagged differences and a
    constant is solved by a batched QR decomposition.
    """
    finite = np.isfinite(series).all(axis=1)
    series = np.where(finite[:, None], series, 0.0)
    diffs = np.diff(series, axis=1)
    rows = diffs.shape[1] - lags
    columns = [series[:, lags:-1]]
    columns += [diffs[:, lags - i : lags - i + rows] for i in range(1, lags + 1)]
    columns.append(np.ones_like(series[:, lags:-1]))
    design = np.stack(columns, axis=2)
    target = diffs[:, lags:]
    q, r = np.linalg.qr(design)
    diagonal = np.abs(np.diagonal(r, axis1=1, axis2=2))
    singular = ~finite | (diagonal <= DEGENERATE * diagonal.max(axis=1, keepdims=True)).any(axis=1)
    r[singular] = np.eye(design.shape[2])
    inverse = np.linalg.inv(r)
    beta = np.einsum("nij,nkj,nk->ni", inverse, q, target)
    residual = target - np.einsum("nkj,nj->nk", design, beta)
    variance = (residual**2).sum(axis=1) / (rows - design.shape[2])
    stat = beta[:, 0] / np.sqrt(variance * (inverse[:, 0, :] ** 2).sum(axis=1))
    return np.where(singular, np.nan, stat)


def adf_pvalues(statistics: np.ndarray) -> np.ndarray:
    """Return MacKinnon's (1994) approximate p-value of each ADF statistic (constant, one
    series), via statsmodels' ``mackinnonp``; NaN stays NaN."""
    # Imported here: statsmodels takes ~4 s to import; only the cointegration test needs it.
    from statsmodels.tsa.adfvalues import mackinnonp

    return np.array(
        [mackinnonp(s, regression="c", N=1) if np.isfinite(s) else np.nan for s in statistics],
        dtype=np.float64,
    )


def spread_signals(
    zscore: np.ndarray, tradable: np.ndarray, entry_z: float, exit_z: float
) -> np.ndarray:
    """Return each bar's signal: +1 enter long the spread (z < -entry_z), -1 enter short
    (z > entry_z), 0 go flat (|z| < exit_z, or not tradable), NaN hold the position."""
    signal = np.full(len(zscore), np.nan)
    with np.errstate(invalid="ignore"):
        signal[np.abs(zscore) < exit_z] = 0.0
        signal[zscore > entry_z] = -1.0
        signal[zscore < -entry_z] = 1.0
    signal[~tradable] = 0.0
    return signal


def hold_positions(signal: np.ndarray, max_hold: int) -> np.ndarray:
    """Return the position each bar: the newest non-NaN signal among it and the ``max_hold``
    bars before it, else flat. Equal to the entry/exit state machine with a time stop."""
    return pd.Series(signal).ffill(limit=max_hold).fillna(0.0).to_numpy(np.float64)
