"""Strategies: the contract (:mod:`.base`), Prism's library (:mod:`.technical`, :mod:`.ml`,
:mod:`.pairs`, :mod:`.ensemble`, the sequence models of :mod:`.deep`), and the registry that
finds them and the ones ``research/`` (and :mod:`prism.agents`) register, by name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
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
    "listed_strategies",
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
    attribute, a ``warmup`` property and a ``target_weights`` method. Raises a ConfigError
    naming the entry point if a registered strategy cannot load.
    """
    found, broken = listed_strategies()
    if broken:
        raise ConfigError(next(iter(broken.values())))
    return found


def listed_strategies() -> tuple[dict[str, type], dict[str, str]]:
    """Return the strategies that load, by name, and the registered entry points that do not,
    by entry-point name with the reason: a listing shows both instead of failing on one."""
    found, broken = _installed()
    return {cls.name: cls for cls in BUILT_IN} | dict(found), dict(broken)


@functools.cache
def _installed() -> tuple[tuple[tuple[str, type], ...], tuple[tuple[str, str], ...]]:
    """Return the strategies registered under the entry-point group and the entry points that
    fail to load, loaded once per process (scanning the installed distributions costs
    milliseconds, and sweeps build thousands). Loading runs a researcher's module, so any
    error it raises is caught and reported as that entry point's failure."""
    found: dict[str, type] = {}
    broken: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"strategy entry point {entry.name} = {entry.value!r}"
        try:
            loaded: Any = entry.load()
        except Exception as err:
            broken[entry.name] = f"{where} cannot load: {type(err).__name__}: {err}"
            continue
        if not (
            isinstance(loaded, type)
            and dataclasses.is_dataclass(loaded)
            and hasattr(loaded, "target_weights")
        ):
            broken[entry.name] = f"{where} is not a strategy dataclass with target_weights"
            continue
        found[str(getattr(loaded, "name"))] = loaded  # noqa: B009
    return tuple(found.items()), tuple(broken.items())


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
        raise ConfigError(f"strategy {name!r}: {err}") from err


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _coerce(cls: type, name: str, value: Any) -> Any:
    """Return ``value`` as the type ``cls`` declares for field ``name``, or raise a ValueError
    naming the parameter, the value and what is allowed."""
    annotation = cls.__annotations__.get(name)
    if annotation in ("bool", bool):
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError(
            f"parameter {name} must be true or false ({'/'.join(TRUE_WORDS)} or "
            f"{'/'.join(FALSE_WORDS)}), got {value!r}"
        )
    if annotation in ("int", int):
        number = _number(name, value, "a whole number")
        if not number.is_integer():
            raise ValueError(f"parameter {name} must be a whole number, got {value!r}")
        return int(number)
    if annotation in ("float", float):
        return _number(name, value, "a number")
    return value


def _number(name: str, value: Any, kind: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"parameter {name} must be {kind}, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name} must be {kind}, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"parameter {name} must be a finite number, got {value!r}")
    return number


def strategy_params(strategy: Strategy) -> dict[str, Any]:
    """Return the parameters that rebuild ``strategy`` with :func:`make_strategy`."""
    return dataclasses.asdict(strategy)  # type: ignore[call-overload]
