"""Ensembles: strategies that combine other strategies' target weights.

Members are named by a flat string, so an ensemble is rebuilt from its parameters like any
strategy (``--param members=...`` on the command line, an MLflow parameter, the pyfunc model):
``"sma_crossover(fast=10,slow=50);rsi_mean_reversion;macd_trend"`` is three members, each a
strategy name with optional ``key=value`` parameters (values read as Python literals, else as
text; a value may not contain ``,``, ``;`` or parentheses).

Each member is called on the same bars and is causal, so the ensemble is too; its ``warmup``
covers the oldest member weight a decision uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from prism.core.errors import ConfigError
from prism.core.lazy import lazy_module
from prism.core.text import read_literal
from prism.strategies.base import Strategy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

DEFAULT_MEMBERS = "sma_crossover(fast=10,slow=50);rsi_mean_reversion;macd_trend"
_MEMBER = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$")


def parse_members(spec: str) -> list[tuple[str, dict[str, Any]]]:
    """Return ``[(name, params), ...]`` from a spec like ``"a(x=1,y=2);b"``, or a ConfigError
    naming the malformed part."""
    parts = [part for part in spec.split(";") if part.strip()]
    if not parts:
        raise ConfigError(
            "an ensemble needs at least one member, e.g. 'sma_crossover(fast=10,"
            "slow=50);macd_trend'"
        )
    return [_parse_member(part) for part in parts]


def _parse_member(text: str) -> tuple[str, dict[str, Any]]:
    match = _MEMBER.match(text)
    if match is None:
        raise ConfigError(
            f"cannot read ensemble member {text.strip()!r}; write name(key=value,...)"
        )
    name, arguments = match.group(1), match.group(2) or ""
    params: dict[str, Any] = {}
    for assignment in filter(str.strip, arguments.split(",")):
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"ensemble member {name!r}: expected key=value, got {assignment.strip()!r}"
            )
        params[key.strip()] = read_literal(value.strip())
    return name, params


def build_members(spec: str, ensemble: str) -> tuple[Strategy, ...]:
    """Return the member strategies of ``spec``, built with :func:`make_strategy`."""
    # Imported here: the package imports this module (a top-level import is a cycle).
    from prism.strategies import make_strategy

    built = []
    for name, params in parse_members(spec):
        try:
            built.append(make_strategy(name, params))
        except ConfigError as err:
            raise ConfigError(f"{ensemble} member {name!r}: {err}") from err
    return tuple(built)


def member_weights(members: tuple[Strategy, ...], ordered: pd.DataFrame) -> np.ndarray:
    """Return each member's weights on ``ordered``'s rows, shape (members, rows); a row a
    member leaves out counts as weight 0."""
    keys = pd.MultiIndex.from_frame(ordered[["time", "symbol"]])
    rows = [
        member.target_weights(ordered)
        .set_index(["time", "symbol"])["weight"]
        .reindex(keys)
        .to_numpy(np.float64)
        for member in members
    ]
    return np.nan_to_num(np.vstack(rows), nan=0.0)


def majority_vote(weights: np.ndarray) -> np.ndarray:
    """Return, per column of member weights (members, rows), the majority's side sized by the
    mean absolute weight of the members on that side.

    Long needs more than half the members long, short more than half short; otherwise (a tie,
    or too many flat members) the weight is 0. For members that split equity equally across
    symbols the size is that equal share.
    """
    count = weights.shape[0]
    side = np.where(
        2 * (weights > 0).sum(axis=0) > count,
        1.0,
        np.where(2 * (weights < 0).sum(axis=0) > count, -1.0, 0.0),
    )
    agree = (np.sign(weights) == side) & (side != 0)
    size = np.abs(weights * agree).sum(axis=0) / np.maximum(agree.sum(axis=0), 1)
    return side * size


def trailing_sums(values: np.ndarray, window: int) -> np.ndarray:
    """Return the sum of each row and the ``window - 1`` rows before it (NaN before the first
    full window), added in the same order whatever rows precede, so that a window of history
    gives bit-identical sums to the whole history."""
    out = np.full(values.shape, np.nan)
    if len(values) < window:
        return out
    stop = len(values) - window + 1
    total = np.zeros((stop, *values.shape[1:]))
    for lag in range(window):
        total += values[lag : lag + stop]
    out[window - 1 :] = total
    return out


def member_returns(weights: np.ndarray, ordered: pd.DataFrame) -> pd.DataFrame:
    """Return each member's return per time (times × members): its weights at the previous bar
    times each symbol's close-to-close return, summed over symbols."""
    close = ordered["close"].to_numpy(np.float64)
    symbol = ordered["symbol"].to_numpy()
    same = np.r_[False, symbol[1:] == symbol[:-1]]
    change = np.zeros(len(close))
    change[same] = close[1:][same[1:]] / close[:-1][same[1:]] - 1.0
    held = np.zeros_like(weights)
    held[:, 1:] = np.where(same[1:], weights[:, :-1], 0.0)
    pnl = pd.DataFrame((held * change).T, index=pd.Index(ordered["time"]))
    return pnl.groupby(level=0).sum().sort_index()


def performance_shares(scores: np.ndarray) -> np.ndarray:
    """Return each member's share (times × members): its positive score over the sum of
    positive scores; all zero where no member has a positive score."""
    positive = np.where(np.isfinite(scores) & (scores > 0), scores, 0.0)
    total = positive.sum(axis=1, keepdims=True)
    return np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)


def _ordered(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.sort_values(["symbol", "time"], kind="stable").reset_index(drop=True)


def _frame(ordered: pd.DataFrame, weight: np.ndarray) -> pd.DataFrame:
    out = ordered[["time", "symbol"]].copy()
    out["weight"] = np.asarray(weight, dtype=np.float64)
    return out


class Members:
    """What both ensembles share: the ``members`` spec and the strategies it names."""

    name: ClassVar[str]
    members: str

    @cached_property
    def strategies(self) -> tuple[Strategy, ...]:
        """Return the member strategies, built once."""
        return build_members(self.members, self.name)


@dataclass(frozen=True)
class VoteEnsemble(Members):
    """Hold each symbol on the side most members take (more than half of them), else flat.

    The size is the mean absolute weight of the members on the winning side: the equal split
    across symbols for Prism's technical strategies. See :func:`majority_vote`.
    """

    name: ClassVar[str] = "ensemble_vote"
    members: str = DEFAULT_MEMBERS

    def __post_init__(self) -> None:
        _ = self.strategies

    @property
    def warmup(self) -> int:
        """Return the longest member warm-up: each decision uses the members' current weights."""
        return max(member.warmup for member in self.strategies)

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight): the majority vote of the members' weights."""
        ordered = _ordered(bars)
        if ordered.empty:
            return _frame(ordered, np.empty(0))
        return _frame(ordered, majority_vote(member_weights(self.strategies, ordered)))


@dataclass(frozen=True)
class PerformanceEnsemble(Members):
    """Blend the members' weights in proportion to their positive trailing returns.

    A member's return at bar ``t`` is its weights at ``t - 1`` times each symbol's close
    return from ``t - 1`` to ``t`` (known at ``t``); its score is the sum over the last
    ``lookback`` bars. Members with a score <= 0 get no share; if none is positive the
    ensemble is flat. Shares sum to 1, so gross exposure never exceeds the largest member's.
    """

    name: ClassVar[str] = "ensemble_performance"
    members: str = DEFAULT_MEMBERS
    lookback: int = 63

    def __post_init__(self) -> None:
        if self.lookback < 1:
            raise ConfigError(f"ensemble_performance needs lookback >= 1, got {self.lookback}")
        _ = self.strategies

    @property
    def warmup(self) -> int:
        """Return the longest member warm-up plus ``lookback``: the oldest member weight a
        score uses is ``lookback`` bars back."""
        return max(member.warmup for member in self.strategies) + self.lookback

    def target_weights(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Return (time, symbol, weight): the members' weights blended by trailing return."""
        ordered = _ordered(bars)
        if ordered.empty:
            return _frame(ordered, np.empty(0))
        weights = member_weights(self.strategies, ordered)
        returns = member_returns(weights, ordered)
        shares = performance_shares(trailing_sums(returns.to_numpy(), self.lookback))
        at_row = pd.DataFrame(shares, index=returns.index).reindex(ordered["time"]).to_numpy()
        return _frame(ordered, (at_row.T * weights).sum(axis=0))
