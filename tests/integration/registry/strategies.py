"""Strategies that exist only for the registry's tests: one that peeks at the next bar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest

import prism.strategies


@dataclass(frozen=True)
class TomorrowsClose:
    """Hold half of equity in a symbol when its *next* close is higher: the weight at bar t
    reads bar t+1, the look-ahead a strategy must not have."""

    name: ClassVar[str] = "tomorrows_close"
    share: float = 0.5

    @property
    def warmup(self) -> int:
        return 2

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        ordered = bars.sort_values(["symbol", "time"], kind="stable")
        following = ordered.groupby("symbol", sort=False)["close"].shift(-1)
        weight = (following > ordered["close"]).astype("float64") * self.share
        return pd.DataFrame(
            {"time": ordered["time"], "symbol": ordered["symbol"], "weight": weight}
        ).reset_index(drop=True)


def register(monkeypatch: pytest.MonkeyPatch, *classes: type) -> None:
    """Make ``classes`` known to :func:`prism.strategies.make_strategy` for one test scope."""
    monkeypatch.setattr(prism.strategies, "BUILT_IN", (*prism.strategies.BUILT_IN, *classes))
