"""Reconciliation: the ledger's positions and cash against the broker's own books.

A symbol whose quantities differ by more than :data:`TOLERANCE` of the larger of the two (or
that one side holds and the other does not) is a mismatch: the ledger no longer describes the
account, so the deployment halts with a critical alert until a person has looked. The broker's
cash is reported beside the ledger's; it does not halt (fees, interest and deposits at the broker
move it without an order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine

from prism import ledger
from prism.brokers.port import Broker
from prism.core.errors import InvariantViolated
from prism.core.settings import Settings
from prism.live import deployments
from prism.live.cycle import halt_deployment

TOLERANCE = Decimal("0.01")


@dataclass(frozen=True)
class Mismatch:
    """One symbol the ledger and the broker disagree about."""

    symbol: str
    ledger: Decimal
    broker: Decimal

    @property
    def difference(self) -> Decimal:
        """Return the gap as a fraction of the larger absolute quantity."""
        larger = max(abs(self.ledger), abs(self.broker))
        return abs(self.ledger - self.broker) / larger if larger else Decimal(0)


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of comparing one deployment's positions."""

    deployment: str
    symbols: int
    mismatches: list[Mismatch]
    halted: bool
    broker: str = ""
    ledger_positions: dict[str, Decimal] = field(default_factory=dict)
    broker_positions: dict[str, Decimal] = field(default_factory=dict)
    ledger_cash: Decimal | None = None
    broker_cash: Decimal | None = None

    def describe(self) -> str:
        """Return one line for a person."""
        if not self.mismatches:
            return f"{self.deployment}: {self.symbols} positions agree with the broker"
        shown = "; ".join(
            f"{m.symbol} ledger {m.ledger} vs broker {m.broker} ({m.difference:.2%})"
            for m in self.mismatches
        )
        return f"{self.deployment}: positions differ from the broker's: {shown}; halted"

    def sides(self) -> list[tuple[str, str, str]]:
        """Return (item, ledger, broker) rows: each symbol's quantity, then the cash."""
        rows = [
            (
                symbol,
                _plain(self.ledger_positions.get(symbol)),
                _plain(self.broker_positions.get(symbol)),
            )
            for symbol in sorted(set(self.ledger_positions) | set(self.broker_positions))
        ]
        return [*rows, ("cash", _plain(self.ledger_cash), _plain(self.broker_cash))]


def _plain(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


def compare(ours: dict[str, Decimal], theirs: dict[str, Decimal]) -> list[Mismatch]:
    """Return the symbols whose quantities differ by more than :data:`TOLERANCE`."""
    found = []
    for symbol in sorted(set(ours) | set(theirs)):
        mismatch = Mismatch(symbol, ours.get(symbol, Decimal(0)), theirs.get(symbol, Decimal(0)))
        if mismatch.difference > TOLERANCE:
            found.append(mismatch)
    return found


def reconcile(
    engine: Engine, settings: Settings, name: str, broker: Broker | None = None
) -> Reconciliation:
    """Compare deployment ``name``'s ledger positions with its broker's; on a mismatch halt it
    and raise a critical ``reconcile_mismatch`` alert."""

    deployment = deployments.get_deployment(engine, name)
    broker = broker or deployment.open_broker(engine, settings)
    with deployments.exclusive(engine, name):
        with engine.connect() as conn:
            ours = ledger.holdings(conn, name)
            try:
                our_cash: Decimal | None = ledger.cash(conn, name)
            except InvariantViolated:  # no cycle has opened the account yet
                our_cash = None
        theirs = broker.positions()
        their_cash = broker.cash()
    mismatches = compare(ours, theirs)
    result = Reconciliation(
        name,
        len(set(ours) | set(theirs)),
        mismatches,
        bool(mismatches),
        broker.name,
        ours,
        theirs,
        our_cash,
        their_cash,
    )
    if mismatches:
        halt_deployment(
            engine, settings, name, result.describe(), "reconcile", "reconcile_mismatch"
        )
    return result
