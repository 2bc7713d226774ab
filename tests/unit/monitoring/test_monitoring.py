"""The monitoring read side's pure parts: numbers for people, the login check, the Euler
risk decomposition and the headline figures of an equity curve, on cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import SecretStr

from prism.core.errors import ConfigError
from prism.core.settings import Settings
from prism.monitoring import access, fmt, overview, risk


def test_money_and_percentages_are_written_for_people():
    assert fmt.money(1234567.891) == "$1,234,568"
    assert fmt.money(-1234.5, decimals=2) == "-$1,234.50"
    assert fmt.signed_money(250.0) == "+$250"
    assert fmt.signed_money(-250.0) == "-$250"
    assert fmt.percent(0.012345) == "1.23%"
    assert fmt.percent(-0.5, 1, signed=True) == "-50.0%"
    assert fmt.percent(0.05, signed=True) == "+5.00%"
    assert fmt.number(1234567) == "1,234,567"
    assert fmt.bps(2.345) == "2.3 bp"
    assert fmt.money(float("nan")) == fmt.percent(None) == "—"


def test_the_login_mode_must_be_known_and_a_password_mode_needs_a_password():
    assert access.auth_mode(Settings(dashboard_auth="none")) == "none"
    assert access.auth_mode(Settings(dashboard_auth="OIDC")) == "oidc"
    with pytest.raises(ConfigError, match="PRISM_DASHBOARD_PASSWORD is empty"):
        access.auth_mode(Settings(dashboard_auth="password"))
    with pytest.raises(ConfigError, match="use one of none, password, oidc"):
        access.auth_mode(Settings(dashboard_auth="ldap"))


def test_only_the_exact_password_lets_a_visitor_in():
    settings = Settings(dashboard_auth="password", dashboard_password=SecretStr("s3cret"))

    assert access.password_matches(settings, "s3cret")
    assert not access.password_matches(settings, "s3cret ")
    assert not access.password_matches(settings, "")
    assert not access.password_matches(Settings(), "anything")


def test_two_uncorrelated_assets_contribute_their_weighted_variance_to_volatility():
    # Asset A moves +-2%, B +-1%, in a pattern whose sample covariance is exactly zero.
    returns = pd.DataFrame({"A": [0.02, -0.02, 0.02, -0.02], "B": [0.01, 0.01, -0.01, -0.01]})
    weights = pd.Series({"A": 0.5, "B": 0.5})
    var_a, var_b = returns["A"].var(), returns["B"].var()  # 0.02**2*4/3, 0.01**2*4/3
    sigma = math.sqrt(0.25 * var_a + 0.25 * var_b)

    frame = risk.risk_contributions(weights, returns).set_index("symbol")

    assert frame.loc["A", "contribution"] == pytest.approx(0.25 * var_a / sigma)
    assert frame.loc["B", "contribution"] == pytest.approx(0.25 * var_b / sigma)
    assert frame.loc["A", "share"] == pytest.approx(0.8)  # 4 / (4 + 1)
    assert frame.index.tolist() == ["A", "B"]
    assert frame["contribution"].sum() == pytest.approx(sigma)


def test_a_hedge_contributes_negative_risk():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 0.01, 500)
    returns = pd.DataFrame({"long": a, "hedge": a * 0.9 + rng.normal(0, 0.002, 500)})

    frame = risk.risk_contributions(pd.Series({"long": 1.0, "hedge": -0.5}), returns)

    assert frame.set_index("symbol").loc["hedge", "contribution"] < 0
    assert frame["contribution"].sum() == pytest.approx(
        (returns["long"] - 0.5 * returns["hedge"]).std(ddof=1)
    )


def test_value_at_risk_is_reported_as_a_positive_loss_in_money_too():
    values = pd.Series(100.0 * np.cumprod(1 + np.tile([0.01, -0.02, 0.015, -0.005], 25)))

    table = risk.value_at_risk_table(values, equity=1_000_000).set_index(["method", "confidence"])

    r = values.pct_change().dropna()
    assert table.loc[("historical", 0.95), "var"] == pytest.approx(-np.percentile(r, 5))
    assert table.loc[("historical", 0.99), "var_money"] == pytest.approx(
        -np.percentile(r, 1) * 1_000_000
    )
    assert (table["var"] > 0).all() and (table["cvar"] >= table["var"] - 1e-12).all()


def _curve(times: list[str], equity: list[float], capital: float = 100.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime(times, utc=True),
            "equity": equity,
            "cash": [10.0] * len(equity),
            "gross_exposure": [e * 0.9 for e in equity],
            "net_exposure": [e * 0.5 for e in equity],
            "benchmark": [100.0, 110.0, 99.0][: len(equity)],
        }
    )
    frame["pnl"] = frame["equity"] - capital
    frame["drawdown"] = frame["equity"] / frame["equity"].cummax() - 1
    return frame


def test_pnl_today_is_measured_from_the_last_snapshot_of_an_earlier_day():
    curve = _curve(
        ["2024-01-02 21:00", "2024-01-03 15:00", "2024-01-03 21:00"], [110.0, 99.0, 104.5]
    )

    summary = overview.summarize(curve)

    assert summary is not None
    assert summary.pnl_today == pytest.approx(104.5 - 110.0)
    assert summary.pnl_today_pct == pytest.approx(104.5 / 110.0 - 1)
    assert summary.pnl_total == pytest.approx(4.5)
    assert summary.drawdown == pytest.approx(104.5 / 110 - 1)
    assert summary.max_drawdown == pytest.approx(99 / 110 - 1)
    assert summary.gross_exposure == pytest.approx(0.9)
    assert summary.benchmark_return == pytest.approx(-0.01)


def test_on_the_first_day_pnl_today_is_measured_from_the_initial_capital():
    summary = overview.summarize(_curve(["2024-01-02 15:00", "2024-01-02 21:00"], [101.0, 103.0]))

    assert summary is not None
    assert summary.pnl_today == pytest.approx(3.0)
    assert overview.summarize(_curve([], [])) is None
