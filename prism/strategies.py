"""Strategies: map market history to target portfolio weights, using only data up to each bar.

The contract every strategy meets (the backtest and the live runner both rely on it)::

    strategy.warmup                    # bars of history one decision needs
    strategy.target_weights(bars)      # -> frame of (time, symbol, weight), weight in [-1, 1]

``target_weights`` takes a bar frame (see :mod:`prism.data.bars`) and returns one row per input
bar: ``time`` (datetime64[us, UTC]), ``symbol`` (str), ``weight`` (float64, fraction of equity).
The weight at bar ``t`` may use bars up to and including ``t`` only; it is traded at the next
bar's open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd

from prism.errors import ConfigError
from prism.indicators import sma


def per_symbol(ordered: pd.DataFrame, series: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``series`` to each symbol's closes of a frame sorted by (symbol, time); concatenate."""
    close = ordered["close"].to_numpy(np.float64)
    symbols = ordered["symbol"].to_numpy()
    starts = np.flatnonzero(np.r_[True, symbols[1:] != symbols[:-1]])
    stops = np.r_[starts[1:], len(symbols)]
    if len(close) == 0:
        return close
    return np.concatenate([series(close[a:b]) for a, b in zip(starts, stops, strict=True)])


class Strategy(Protocol):
    """Anything with a name, a warm-up length and a ``target_weights`` method."""

    name: ClassVar[str]

    @property
    def warmup(self) -> int:
        """Return how many bars of history one decision needs."""
        ...

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight) for every bar of ``bars``."""
        ...


@dataclass(frozen=True)
class SmaCrossover:
    """Long (or short) a symbol while its fast simple moving average is above (below) the slow.

    Equity is split equally across the symbols. A tie between the averages, and the warm-up
    bars where the slow average is undefined, mean no position.
    """

    name: ClassVar[str] = "sma_crossover"
    fast: int
    slow: int
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ConfigError(
                f"sma_crossover needs 1 <= fast < slow, got fast={self.fast}, slow={self.slow}"
            )

    @property
    def warmup(self) -> int:
        """Return ``slow``: the bars one slow average needs."""
        return self.slow

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return the crossover weights of every bar (columns time, symbol, weight)."""
        ordered = bars.sort_values(["symbol", "time"], kind="stable")
        fast = per_symbol(ordered, lambda close: sma(close, self.fast))
        slow = per_symbol(ordered, lambda close: sma(close, self.slow))
        share = 1.0 / ordered["symbol"].nunique()
        signal = np.sign(fast - slow)
        signal = np.nan_to_num(signal, nan=0.0)
        if not self.allow_short:
            signal = np.clip(signal, 0.0, None)
        out = ordered[["time", "symbol"]].copy()
        out["weight"] = signal * share
        return out.reset_index(drop=True)


ENTRY_POINT_GROUP = "prism.strategies"


def available_strategies() -> dict[str, type]:
    """Return every strategy by name: Prism's own and those installed under the entry-point
    group ``prism.strategies`` (how ``research/`` registers its strategies, see pyproject.toml).

    A strategy is a frozen dataclass whose fields are its parameters, with a ``name`` class
    attribute, a ``warmup`` property and a ``target_weights`` method.
    """
    found: dict[str, type] = {SmaCrossover.name: SmaCrossover}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded: Any = entry.load()
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"strategy entry point {entry.value!r} cannot load: {err}") from err
        if not (
            isinstance(loaded, type)
            and dataclasses.is_dataclass(loaded)
            and hasattr(loaded, "target_weights")
        ):
            raise ConfigError(f"{entry.value} is not a strategy dataclass with target_weights")
        found[str(getattr(loaded, "name"))] = loaded  # noqa: B009
    return found


def make_strategy(name: str, params: dict[str, Any]) -> Strategy:
    """Return the strategy ``name`` built from ``params``, or a ConfigError saying what is wrong."""
    strategies = available_strategies()
    if name not in strategies:
        raise ConfigError(
            f"unknown strategy {name!r}; available strategies: {', '.join(sorted(strategies))}"
        )
    cls = strategies[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = sorted(
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    missing = [n for n in required if params.get(n) is None]
    if missing:
        raise ConfigError(
            f"strategy {name!r} is missing parameter(s) {', '.join(missing)}; "
            f"its parameters are {', '.join(sorted(fields))}"
        )
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(
            f"strategy {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are {', '.join(sorted(fields))}"
        )
    try:
        strategy: Strategy = cls(**{n: _coerce(cls, n, v) for n, v in params.items()})
        return strategy
    except (TypeError, ValueError) as err:
        raise ConfigError(f"strategy {name!r}: bad parameter value: {err}") from err


def _coerce(cls: type, name: str, value: Any) -> Any:
    annotation = cls.__annotations__.get(name)
    if annotation in ("int", int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    if annotation in ("bool", bool) and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return value


def strategy_params(strategy: Strategy) -> dict[str, Any]:
    """Return the parameters that rebuild ``strategy`` with :func:`make_strategy`."""
    return dataclasses.asdict(strategy)  # type: ignore[call-overload]
