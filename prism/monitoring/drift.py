"""The drift panel: a deployment's live P&L against the backtester's on the same bars, with the
gap split by cause (:mod:`prism.live.drift`), as display frames."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine

from prism.core.settings import Settings
from prism.live.drift import drift_or_reason


def drift_panel(
    engine: Engine, settings: Settings, deployment: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Return the drift of ``deployment``'s live history: the lines (index line; amount and
    share_of_gap, float64), the bars where signals differed (time UTC, symbol, live_weight,
    model_weight), the missed cycles (time UTC, reason), and a caption; or three empty frames
    and the reason it cannot be measured."""
    report, reason = drift_or_reason(engine, settings, deployment)
    if report is None:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), reason
    signals = pd.DataFrame(
        [d.__dict__ for d in report.signal_differences],
        columns=["time", "symbol", "live_weight", "model_weight"],
    )
    missed = pd.DataFrame([m.__dict__ for m in report.missed_cycles], columns=["time", "reason"])
    caption = (
        f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC, {report.bars} bars, "
        f"model {report.model}; {len(report.risk_limited)} order(s) cut by risk limits; "
        f"{len(report.late_fills())} late fill(s) of {len(report.fills)}"
    )
    return report.contributions_frame().reset_index(), signals, missed, caption
