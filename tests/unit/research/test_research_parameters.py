from pathlib import Path

import pytest

from prism.cli.research import parse_parameters
from prism.core.errors import ConfigError
from prism.research.notebooks import coerce_parameters, notebook_parameters

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "02_backtest_strategy.ipynb"


def test_the_backtest_notebook_declares_its_parameters():
    defaults = notebook_parameters(NOTEBOOK)

    assert defaults["strategy"] == "sma_crossover"
    assert defaults["symbols"] == ["SPX", "NDX"]
    assert {"start", "end", "fast", "slow", "mlflow_run_id"} <= set(defaults)


def test_command_line_strings_take_the_type_of_the_defaults():
    typed = coerce_parameters(
        notebook_parameters(NOTEBOOK),
        {"fast": "10", "symbols": "SPX", "capital": "5e5", "end": "2010-01-01"},
    )

    assert typed == {"fast": 10, "symbols": ["SPX"], "capital": 500_000.0, "end": "2010-01-01"}


def test_an_unknown_parameter_names_the_notebooks_parameters():
    with pytest.raises(ConfigError, match="no parameter\\(s\\) fsat; its parameters are strategy"):
        coerce_parameters(notebook_parameters(NOTEBOOK), {"fsat": "10"})


def test_a_non_numeric_value_for_a_number_is_refused():
    with pytest.raises(ConfigError, match="parameter slow must be a number, got 'fifty'"):
        coerce_parameters(notebook_parameters(NOTEBOOK), {"slow": "fifty"})


def test_strategy_params_take_a_dict_literal_and_refuse_anything_else():
    defaults = notebook_parameters(NOTEBOOK)

    assert coerce_parameters(defaults, {"strategy_params": "{'lookback': 126}"}) == {
        "strategy_params": {"lookback": 126}
    }
    with pytest.raises(ConfigError, match="must be a dict literal"):
        coerce_parameters(defaults, {"strategy_params": "126"})


def test_a_missing_notebook_is_named():
    with pytest.raises(ConfigError, match=r"no notebook at nope\.ipynb"):
        notebook_parameters(Path("nope.ipynb"))


def test_parameters_come_in_papermill_style_pairs():
    assert parse_parameters(["-p", "fast", "10", "-p", "slow", "50"]) == {
        "fast": "10",
        "slow": "50",
    }
    with pytest.raises(ConfigError, match="expected `-p NAME VALUE`"):
        parse_parameters(["-p", "fast"])
