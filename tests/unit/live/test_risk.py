"""Pre-trade risk rules, each against numbers worked by hand in the comments."""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from prism.core.errors import ConfigError
from prism.ledger.money import exact
from prism.live.risk import Book, RiskLimits, check_breaker, check_order, risk_snapshot

LOOSE = RiskLimits(
    max_position_pct=10.0,
    max_gross_exposure=10.0,
    max_net_exposure=10.0,
    max_order_notional=1e12,
)


def limits(**changes: float) -> RiskLimits:
    return RiskLimits(**{**LOOSE.__dict__, **changes})


def exact_book(equity: float, positions: dict[str, float], prices: dict[str, float]) -> Book:
    """Return a book of the exact figures written."""
    return Book(
        exact(equity),
        {s: exact(q) for s, q in positions.items()},
        {s: exact(p) for s, p in prices.items()},
    )


def test_an_order_over_the_notional_limit_is_trimmed_to_it():
    # 50,000 / price 100 = 500 units at most
    book = exact_book(1_000_000.0, {}, {"A": 100.0})
    check = check_order(
        "A", Decimal("1000.0"), book, limits(max_order_notional=50_000), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("trim", 500.0)
    assert check.breaches == {"max_order_notional": 500.0}
    assert book.positions == {"A": 500.0}


def test_a_position_over_its_share_of_equity_is_trimmed():
    # cap 0.2 * 100,000 / 50 = 400 units; 100 held, so 300 more
    book = exact_book(100_000.0, {"A": 100.0}, {"A": 50.0})
    check = check_order(
        "A", Decimal("500.0"), book, limits(max_position_pct=0.2), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("trim", 300.0)
    assert book.positions["A"] == 400.0


def test_an_order_that_reduces_a_position_is_never_cut_by_exposure_limits():
    # 1000 * 50 = 50,000 is over 0.2 of equity already; selling 200 only reduces it
    book = exact_book(100_000.0, {"A": 1000.0}, {"A": 50.0})
    check = check_order(
        "A", Decimal("-200.0"), book, limits(max_position_pct=0.2), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("pass", -200.0)


def test_a_position_at_its_limit_rejects_more():
    # 400 * 50 = 20,000 = 0.2 of equity: no room left
    book = exact_book(100_000.0, {"A": 400.0}, {"A": 50.0})
    check = check_order(
        "A", Decimal("10.0"), book, limits(max_position_pct=0.2), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("reject", 0.0)
    assert book.positions["A"] == 400.0
    assert check.as_json()["passed"] is False


def test_crossing_through_zero_may_close_and_open_up_to_the_cap():
    # short 100; cap 0.2 * 100,000 / 50 = 400 long: 100 to close + 400 = 500
    book = exact_book(100_000.0, {"A": -100.0}, {"A": 50.0})
    check = check_order(
        "A", Decimal("600.0"), book, limits(max_position_pct=0.2), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("trim", 500.0)


def test_gross_exposure_counts_the_other_positions():
    # gross limit 1.0 * 100,000; A holds 600 * 100 = 60,000; room 40,000 / 50 = 800 of B
    book = exact_book(100_000.0, {"A": 600.0}, {"A": 100.0, "B": 50.0})
    check = check_order(
        "B", Decimal("1000.0"), book, limits(max_gross_exposure=1.0), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("trim", 800.0)
    # the book now holds B as well, so a second order sees no room
    again = check_order(
        "B", Decimal("1.0"), book, limits(max_gross_exposure=1.0), lot=Decimal("1.0")
    )
    assert again.outcome == "reject"


def test_net_exposure_nets_shorts_against_longs():
    # net limit 0.5 * 100,000 = 50,000; A is short 400 * 100 = -40,000;
    # B may go long up to (50,000 + 40,000) / 10 = 9,000
    book = exact_book(100_000.0, {"A": -400.0}, {"A": 100.0, "B": 10.0})
    check = check_order(
        "B", Decimal("10_000.0"), book, limits(max_net_exposure=0.5), lot=Decimal("1.0")
    )
    assert (check.outcome, check.allowed) == ("trim", 9000.0)


def test_trims_round_down_to_the_lot():
    # 50,000 / 30 = 1666.67 units, in lots of 10: 1660
    book = exact_book(1_000_000.0, {}, {"A": 30.0})
    check = check_order(
        "A", Decimal("5000.0"), book, limits(max_order_notional=50_000), lot=Decimal("10.0")
    )
    assert check.allowed == 1660.0


def test_the_daily_loss_limit_trips_the_breaker():
    # 1 - 94,000 / 100,000 = 6% > 5%; 1 - 94,000 / 120,000 = 21.7% < 25%
    breaker = check_breaker(
        Decimal("94_000.0"), Decimal("100_000.0"), Decimal("120_000.0"), RiskLimits()
    )
    assert breaker.tripped == ["daily_loss_limit"]
    assert breaker.daily_loss == Decimal("0.06")
    assert breaker.drawdown == Decimal(26_000) / Decimal(120_000)
    assert "daily loss 6.00%" in breaker.reason(RiskLimits())


def test_the_drawdown_limit_trips_the_breaker():
    # 1 - 89,000 / 90,000 = 1.1%; 1 - 89,000 / 120,000 = 25.8% > 25%
    breaker = check_breaker(
        Decimal("89_000.0"), Decimal("90_000.0"), Decimal("120_000.0"), RiskLimits()
    )
    assert breaker.tripped == ["max_drawdown"]


def test_a_gain_trips_nothing():
    breaker = check_breaker(
        Decimal("130_000.0"), Decimal("100_000.0"), Decimal("120_000.0"), RiskLimits()
    )
    assert (breaker.daily_loss, breaker.drawdown, breaker.tripped) == (0.0, 0.0, [])


def test_the_risk_snapshot_reports_exposure_var_and_each_limits_use():
    # A: 300 * 100 = 30,000; B: -100 * 50 = -5,000 -> gross 35,000, net 25,000
    equity = pd.Series(np.linspace(90_000, 100_000, 30) * (1 + 0.01 * np.sin(np.arange(30))))
    book = exact_book(100_000.0, {"A": 300.0, "B": -100.0}, {"A": 100.0, "B": 50.0})
    rules = RiskLimits(max_position_pct=0.5, max_gross_exposure=1.5, max_net_exposure=0.5)
    breaker = check_breaker(Decimal("100_000.0"), Decimal("104_000.0"), Decimal("110_000.0"), rules)
    row = risk_snapshot(equity, book, rules, breaker)
    assert (row["gross_exposure"], row["net_exposure"]) == (35_000.0, 25_000.0)
    use = row["limit_utilization"]
    assert use["max_position_pct"] == pytest.approx(0.30 / 0.5)
    assert use["max_gross_exposure"] == pytest.approx(0.35 / 1.5)
    assert use["max_net_exposure"] == pytest.approx(0.25 / 0.5)
    assert use["daily_loss_limit"] == pytest.approx((4 / 104) / 0.05)
    assert use["max_drawdown"] == pytest.approx((10 / 110) / 0.25)
    bar_returns = equity.to_numpy()[1:] / equity.to_numpy()[:-1] - 1
    assert row["value_at_risk"] == pytest.approx(np.percentile(bar_returns, 5))
    assert row["conditional_value_at_risk"] <= row["value_at_risk"]


def test_too_short_a_history_has_no_var():
    book = exact_book(100_000.0, {}, {})
    row = risk_snapshot(
        pd.Series([1.0, 1.1]),
        book,
        RiskLimits(),
        check_breaker(Decimal("1"), Decimal("1"), Decimal("1"), RiskLimits()),
    )
    assert row["value_at_risk"] is None


def test_unknown_or_non_positive_limits_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="unknown risk limit max_leverage"):
        RiskLimits.from_values({"max_leverage": 2.0})
    with pytest.raises(ConfigError, match="daily_loss_limit must be a positive"):
        RiskLimits.from_values({"daily_loss_limit": -0.1})


@pytest.mark.parametrize(
    ("equity", "previous_close", "peak", "limit"),
    [
        ("95000", "100000", "100000", "daily_loss_limit"),  # a loss of exactly 5% on the day
        ("0.95", "1", "1", "daily_loss_limit"),
        ("70000", "70000", "100000", "max_drawdown"),  # exactly 30% below the peak
    ],
)
def test_a_loss_exactly_at_a_limit_does_not_trip_the_breaker(equity, previous_close, peak, limit):
    limits = RiskLimits(daily_loss_limit=0.05, max_drawdown=0.3)
    at = check_breaker(Decimal(equity), Decimal(previous_close), Decimal(peak), limits)
    below = check_breaker(
        Decimal(equity) - Decimal("0.01"), Decimal(previous_close), Decimal(peak), limits
    )

    assert at.tripped == []
    assert below.tripped == [limit]
    # the same figures in binary floating point land just over the limit and would trip it
    floats = {
        "daily_loss_limit": 1.0 - float(equity) / float(previous_close),
        "max_drawdown": 1.0 - float(equity) / float(peak),
    }
    assert floats[limit] > float(getattr(limits, limit))


def test_an_order_exactly_at_a_limit_passes_and_a_lot_more_is_trimmed():
    # 0.06 of equity 400,586.16 at price 0.00009 is exactly 267,057,440 units; in floats the
    # cap is 267057439.99999994, past the old 1e-9 tolerance, and trimmed the order by a lot
    limit = limits(max_position_pct=0.06)
    quantity = Decimal("267057440")
    at = check_order("A", quantity, exact_book(400_586.16, {}, {"A": 0.00009}), limit, Decimal(1))
    over = check_order(
        "A", quantity + 1, exact_book(400_586.16, {}, {"A": 0.00009}), limit, Decimal(1)
    )

    assert (at.outcome, at.allowed) == ("pass", quantity)
    assert (over.outcome, over.allowed) == ("trim", quantity)
    assert float(quantity) > 0.06 * 400_586.16 / 0.00009 + 1e-9
