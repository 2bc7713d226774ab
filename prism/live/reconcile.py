"""Reconciliation: the ledger's positions against the broker's own.

A symbol whose quantities differ by more than :data:`TOLERANCE` of the larger of the two (or
that one side holds and the other does not) is a mismatch: the ledger no longer describes the
account, so the deployment halts with a critical alert until a person has looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine

from prism import ledger
from prism.brokers.port import Broker
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

    def describe(self) -> str:
        """Return one line for a person."""
        if not self.mismatches:
            return f"{self.deployment}: {self.symbols} positions agree with the broker"
        shown = "; ".join(
            f"{m.symbol} ledger {m.ledger} vs broker {m.broker} ({m.difference:.2%})"
            for m in self.mismatches
        )
        return f"{self.deployment}: positions differ from the broker's: {shown}; halted"


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
        theirs = broker.positions()
    mismatches = compare(ours, theirs)
    result = Reconciliation(name, len(set(ours) | set(theirs)), mismatches, bool(mismatches))
    if mismatches:
        halt_deployment(
            engine, settings, name, result.describe(), "reconcile", "reconcile_mismatch"
        )
    return result
