"""The data-quality gate of a research notebook, as ``prism backtest`` has it on the command line.

A notebook that backtests or trains refuses bars with open gaps or a stale feed unless its
``allow_gaps`` parameter is true; either way the decision is returned as run tags, so a run
made on gappy data says so in MLflow.
"""

from __future__ import annotations

from sqlalchemy import Engine

from prism.data.health import check_window

ALLOW_GAPS_TAG = "prism.allow_gaps"
DATA_GATE_TAG = "prism.data_gate"
NOTEBOOK_ALLOWANCE = "set the notebook parameter allow_gaps = True (-p allow_gaps True)"


def research_gate(
    engine: Engine,
    symbols: list[str],
    timeframe: str,
    start: str | None,
    end: str | None,
    allow_gaps: bool,
) -> dict[str, str]:
    """Return the gate's run tags, or raise :class:`DataUnavailable` naming the gaps and stale
    feeds of ``symbols`` in ``[start, end]`` (unless ``allow_gaps``)."""
    if allow_gaps:
        return {ALLOW_GAPS_TAG: "true", DATA_GATE_TAG: "skipped"}
    check_window(engine, symbols, timeframe, start, end, NOTEBOOK_ALLOWANCE)
    return {ALLOW_GAPS_TAG: "false", DATA_GATE_TAG: "passed"}
