import shutil

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from prism import registry, tracking
from prism.backtest import BacktestConfig, run_backtest
from prism.config import GateSettings
from prism.errors import ConfigError, DataUnavailable
from prism.strategies import SmaCrossover, make_strategy

LENIENT = GateSettings(min_sharpe=0.0, max_drawdown=0.9, min_trades=1)


@pytest.fixture
def registry_settings(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    return settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns"})


def _logged_run(settings, bundled_bars, strategy=None) -> tuple[str, dict[str, float]]:
    strategy = strategy or SmaCrossover(fast=10, slow=50)
    bars = bundled_bars[bundled_bars["time"] < pd.Timestamp("2010-01-01", tz="UTC")]
    result = run_backtest(bars, strategy, BacktestConfig())
    with tracking.research_run(settings) as run_id:
        metrics = tracking.log_backtest(strategy, bars, result, ["SPX", "NDX"])
    return run_id, metrics


def test_a_run_that_passes_the_gates_becomes_champion_once(registry_settings, bundled_bars):
    run_id, _ = _logged_run(registry_settings, bundled_bars)

    first = registry.promote(registry_settings, run_id, LENIENT, approved_by="alice")
    again = registry.promote(registry_settings, run_id, LENIENT, approved_by="alice")

    assert first.promoted and first.version == again.version == "1"
    champion = registry.champion(registry_settings)
    assert (champion.version, champion.run_id, champion.approved_by) == ("1", run_id, "alice")
    assert [v.version for v in registry.list_versions(registry_settings)] == ["1"]


def test_a_refused_promotion_names_the_failed_gate_and_changes_nothing(
    registry_settings, bundled_bars
):
    run_id, metrics = _logged_run(registry_settings, bundled_bars)
    strict = GateSettings(min_sharpe=5.0, max_drawdown=0.9, min_trades=1)

    outcome = registry.promote(registry_settings, run_id, strict, approved_by="bob")

    assert not outcome.promoted
    assert [g.gate for g in outcome.failed()] == ["sharpe >= 5"]
    assert outcome.failed()[0].value == pytest.approx(metrics["sharpe"])
    assert registry.list_versions(registry_settings) == []


def test_the_champion_loads_as_a_pyfunc_that_returns_the_strategys_weights(
    registry_settings, bundled_bars
):
    run_id, _ = _logged_run(registry_settings, bundled_bars)
    registry.promote(registry_settings, run_id, LENIENT, approved_by="carol")

    info, model = registry.load_champion(registry_settings)
    weights = model.predict(bundled_bars)

    expected = SmaCrossover(fast=10, slow=50).target_weights(bundled_bars)
    pd.testing.assert_frame_equal(weights.reset_index(drop=True), expected)
    assert info.version == "1"


def test_a_strategy_registered_by_research_round_trips_through_the_registry(
    registry_settings, bundled_bars
):
    strategy = make_strategy("time_series_momentum", {"lookback": 63})
    run_id, _ = _logged_run(registry_settings, bundled_bars, strategy)
    registry.promote(registry_settings, run_id, LENIENT, approved_by="erin")

    _, model = registry.load_champion(registry_settings)

    pd.testing.assert_frame_equal(
        model.predict(bundled_bars).reset_index(drop=True), strategy.target_weights(bundled_bars)
    )


def test_the_run_records_its_provenance(registry_settings, bundled_bars):
    run_id, _ = _logged_run(registry_settings, bundled_bars)

    run = MlflowClient().get_run(run_id)

    assert len(run.data.params["data_hash"]) == 64
    assert run.data.tags["git_commit"]
    assert run.data.tags["config_hash"] == registry_settings.config_hash()
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id)}
    assert {"equity_curve.png", "trades.csv", "tear_sheet.html"} <= artifacts
    if shutil.which("chromium"):
        assert "tear_sheet.png" in artifacts
    assert {"sharpe", "win_rate", "profit_factor", "exposure", "turnover"} <= set(run.data.metrics)


def test_promoting_an_unknown_run_says_where_run_ids_come_from(registry_settings):
    with pytest.raises(ConfigError, match="no MLflow run with id 'nope'"):
        registry.promote(registry_settings, "nope", LENIENT, approved_by="dave")


def test_a_missing_alias_says_how_to_set_it(registry_settings):
    mlflow.set_tracking_uri(registry_settings.mlflow_tracking_uri)
    with pytest.raises(DataUnavailable, match="promote a run first: `prism models promote"):
        registry.champion(registry_settings)
