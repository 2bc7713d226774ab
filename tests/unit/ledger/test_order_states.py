"""The order state machine: every legal move, every illegal one, and unknown states."""

from __future__ import annotations

import itertools

import pytest

from prism.core.errors import PrismError
from prism.ledger.order_states import (
    FINAL,
    STATES,
    IllegalTransition,
    allowed,
    is_final,
    transition,
)

LEGAL = {
    ("pending", "sent"),
    ("pending", "rejected"),
    ("sent", "partial"),
    ("sent", "filled"),
    ("sent", "cancelled"),
    ("sent", "rejected"),
    ("partial", "partial"),
    ("partial", "filled"),
    ("partial", "cancelled"),
}
"""The moves the agreed interface lists (written out by hand, not derived from the module)."""

SAME_STATE = {(s, s) for s in STATES}
PAIRS = list(itertools.product(STATES, STATES))


@pytest.mark.parametrize(("current", "new"), sorted(LEGAL | SAME_STATE))
def test_a_legal_move_returns_the_new_state(current: str, new: str):
    assert transition(current, new) == new


@pytest.mark.parametrize(("current", "new"), sorted(set(PAIRS) - LEGAL - SAME_STATE))
def test_an_illegal_move_raises_naming_both_states(current: str, new: str):
    with pytest.raises(IllegalTransition, match=f"cannot go from '{current}' to '{new}'"):
        transition(current, new)


def test_there_are_exactly_nine_moves_besides_staying_put():
    legal = [(a, b) for a, b in PAIRS if a != b and _legal(a, b)]
    assert set(legal) == LEGAL - {("partial", "partial")}


def _legal(current: str, new: str) -> bool:
    try:
        transition(current, new)
    except IllegalTransition:
        return False
    return True


def test_a_final_state_says_it_may_go_nowhere_else():
    with pytest.raises(IllegalTransition, match="it may go to nothing: it is final"):
        transition("filled", "partial")


def test_an_unknown_state_is_refused_with_the_list_of_states():
    with pytest.raises(IllegalTransition, match="unknown order state 'done'; states are pending"):
        transition("sent", "done")
    with pytest.raises(IllegalTransition, match="unknown order state 'new'"):
        transition("new", "sent")


def test_an_illegal_transition_is_a_prism_error():
    assert issubclass(IllegalTransition, PrismError)


def test_filled_cancelled_and_rejected_are_final_and_allow_only_themselves():
    assert {"filled", "cancelled", "rejected"} == FINAL
    for state in STATES:
        assert is_final(state) == (state in {"filled", "cancelled", "rejected"})
    assert allowed("filled") == {"filled"}
    assert allowed("pending") == {"pending", "sent", "rejected"}


def test_the_states_match_the_database_check_constraint():
    import re
    from pathlib import Path

    import prism

    migration = Path(prism.__file__).parent / "db" / "migrations" / "versions" / "0001_initial.py"
    check = re.search(r"CHECK \(status IN \(([^)]*)\)", migration.read_text())
    assert check is not None
    assert tuple(re.findall(r"'(\w+)'", check.group(1))) == STATES
