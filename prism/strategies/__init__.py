"""Strategies: the contract (:mod:`.base`), Prism's library (:mod:`.technical`, :mod:`.ml`,
:mod:`.pairs`, :mod:`.ensemble`, the sequence models of :mod:`.deep`), and the registry that
finds them and the ones ``research/`` (and :mod:`prism.agents`) register, by name.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib.metadata import entry_points
from typing import Any

from prism.core.errors import ConfigError
from prism.strategies.base import Strategy, equal_split, per_symbol
from prism.strategies.deep import ENABLE_HINT, LstmDirection, TransformerDirection, deep_available
from prism.strategies.ensemble import PerformanceEnsemble, VoteEnsemble
from prism.strategies.ml import DirectionClassifier
from prism.strategies.pairs import PairsTrading
from prism.strategies.technical import (
    TECHNICAL,
    BollingerBreakout,
    MacdTrend,
    RsiMeanReversion,
    SmaCrossover,
)

__all__ = [
    "ENABLE_HINT",
    "BollingerBreakout",
    "DirectionClassifier",
    "LstmDirection",
    "MacdTrend",
    "PairsTrading",
    "PerformanceEnsemble",
    "RsiMeanReversion",
    "SmaCrossover",
    "Strategy",
    "TransformerDirection",
    "VoteEnsemble",
    "available_strategies",
    "deep_available",
    "equal_split",
    "make_strategy",
    "per_symbol",
    "strategy_params",
]

ENTRY_POINT_GROUP = "prism.strategies"
BUILT_IN = (
    *TECHNICAL,
    DirectionClassifier,
    PairsTrading,
    VoteEnsemble,
    PerformanceEnsemble,
    LstmDirection,
    TransformerDirection,
)


def available_strategies() -> dict[str, type]:
    """Return every strategy by name: Prism's own and those installed under the entry-point
    group ``prism.strategies`` (how ``research/`` registers its strategies, see pyproject.toml).

    A strategy is a frozen dataclass whose fields are its parameters, with a ``name`` class
    attribute, a ``warmup`` property and a ``target_weights`` method.
    """
    return {cls.name: cls for cls in BUILT_IN} | dict(_installed())


@functools.cache
def _installed() -> tuple[tuple[str, type], ...]:
    """Return the strategies registered under the entry-point group, loaded once per process
    (scanning the installed distributions costs milliseconds, and sweeps build thousands)."""
    found: dict[str, type] = {}
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
    return tuple(found.items())


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
