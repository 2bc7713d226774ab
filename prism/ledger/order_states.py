"""The order state machine every broker adapter maps its statuses onto.

::

    pending ──► sent ──► partial ──► filled
       │          │         │  ▲
       │          │         └──┘ (another partial fill)
       ▼          ├──► filled
    rejected      ├──► cancelled ◄── partial
                  └──► rejected

``filled``, ``cancelled`` and ``rejected`` are final. Moving to the state an order is already in
is a no-op (a broker reporting the same status twice is not an error); any other move raises
:class:`IllegalTransition`, because it means the ledger and the broker disagree about the order.
"""

from __future__ import annotations

from prism.core.errors import InvariantViolated

PENDING = "pending"
SENT = "sent"
PARTIAL = "partial"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"

STATES = (PENDING, SENT, PARTIAL, FILLED, CANCELLED, REJECTED)
"""Every state, in the order an order lives through them; the database's CHECK list."""

FINAL = frozenset({FILLED, CANCELLED, REJECTED})
"""States an order never leaves."""

OPEN = frozenset({SENT, PARTIAL})
"""States in which the broker may still fill (part of) the order."""

_NEXT: dict[str, frozenset[str]] = {
    PENDING: frozenset({SENT, REJECTED}),
    SENT: frozenset({PARTIAL, FILLED, CANCELLED, REJECTED}),
    PARTIAL: frozenset({PARTIAL, FILLED, CANCELLED}),
    FILLED: frozenset(),
    CANCELLED: frozenset(),
    REJECTED: frozenset(),
}


class IllegalTransition(InvariantViolated):
    """An order was asked to move between two states the state machine does not connect."""


def allowed(current: str) -> frozenset[str]:
    """Return the states an order in ``current`` may move to (itself included)."""
    return _NEXT[_known(current)] | {current}


def transition(current: str, new: str) -> str:
    """Return ``new`` if an order in ``current`` may move to it, else raise IllegalTransition."""
    _known(new)
    if new == current or new in _NEXT[_known(current)]:
        return new
    legal = ", ".join(sorted(_NEXT[current])) or "nothing: it is final"
    raise IllegalTransition(
        f"an order cannot go from {current!r} to {new!r}; from {current!r} it may go to {legal}"
    )


def is_final(state: str) -> bool:
    """Return whether an order in ``state`` is done (filled, cancelled or rejected)."""
    return _known(state) in FINAL


def _known(state: str) -> str:
    if state not in _NEXT:
        raise IllegalTransition(f"unknown order state {state!r}; states are {', '.join(STATES)}")
    return state
