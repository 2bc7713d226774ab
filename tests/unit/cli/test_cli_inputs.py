"""Values typed on the command line are checked before anything runs: an error names the option
or parameter, the value and what is allowed; ``--json`` output is strict JSON."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from prism.cli.app import app
from prism.cli.common import strict_json
from prism.core.errors import ConfigError
from prism.strategies import make_strategy

runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--start", "2018-13-45"], ("--start", "2018-13-45", "YYYY-MM-DD")),
        (["--end", "yesterday"], ("--end", "yesterday", "YYYY-MM-DD")),
        (["--start", "2019-01-01", "--end", "2018-01-01"], ("--start", "2019-01-01", "--end")),
    ],
)
def test_a_bad_date_or_a_backwards_span_is_a_usage_error_naming_option_and_value(
    argv: list[str], named: tuple[str, ...]
) -> None:
    result = runner.invoke(app, ["backtest", "sma_crossover", *argv])

    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for word in named:
        assert word in text
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"fast": "ten", "slow": 50}, ("fast", "'ten'", "whole number")),
        ({"fast": 10.5, "slow": 50}, ("fast", "10.5", "whole number")),
        ({"fast": 10, "slow": 50, "allow_short": "maybe"}, ("allow_short", "'maybe'", "true")),
        ({"fast": 10, "slow": 50, "allow_short": 2}, ("allow_short", "2", "false")),
    ],
)
def test_a_strategy_parameter_of_the_wrong_kind_is_refused_naming_it(
    params: dict[str, object], named: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as err:
        make_strategy("sma_crossover", params)

    for word in named:
        assert word in str(err.value)


@pytest.mark.parametrize(("typed", "meant"), [("no", False), ("0", False), ("TRUE", True)])
def test_boolean_words_are_read_as_what_they_say(typed: str, meant: bool) -> None:
    strategy = make_strategy("sma_crossover", {"fast": 10, "slow": 50, "allow_short": typed})

    assert strategy.allow_short is meant  # type: ignore[attr-defined]


def test_strict_json_has_null_for_undefined_numbers_and_integers_for_counts() -> None:
    value = {
        "sharpe": float("nan"),
        "calmar": np.float64("inf"),
        "trades": np.int64(420),
        "cash": Decimal("1.25"),
        "first": pd.Timestamp("2024-01-02", tz="UTC"),
        "missing": pd.NaT,
    }

    text = strict_json(value)
    loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    assert loaded["sharpe"] is None and loaded["calmar"] is None and loaded["missing"] is None
    assert loaded["trades"] == 420 and isinstance(loaded["trades"], int)
    assert math.isclose(loaded["cash"], 1.25)
    assert loaded["first"] == "2024-01-02T00:00:00+00:00"


def test_metrics_from_too_few_bars_carry_a_warning_naming_the_count() -> None:
    from prism.cli.common import MIN_SAMPLE_BARS, sample_warning

    warning = sample_warning(MIN_SAMPLE_BARS - 1, "the oos metrics")

    assert warning is not None and f"only {MIN_SAMPLE_BARS - 1} bar" in warning
    assert sample_warning(MIN_SAMPLE_BARS) is None


def test_a_run_is_named_by_its_strategy_and_parameters() -> None:
    from prism.research.tracking import run_name

    assert run_name("02_backtest", {"fast": 10, "slow": 50}, "sma_crossover") == (
        "sma_crossover fast=10 slow=50 · 02_backtest"
    )
    assert run_name("02_backtest", {"strategy": "tsmom"}, "sma_crossover").startswith("tsmom")
    assert len(run_name("n", {"p": "x" * 400})) == 250
