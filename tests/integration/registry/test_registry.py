import hashlib
import json
import shutil
import warnings

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text
from typer.testing import CliRunner

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.errors import ConfigError, DataUnavailable
from prism.core.settings import GateSettings
from prism.registry import promotion, versions
from prism.registry.gates import load_gates_file
from prism.research import tracking
from prism.strategies import SmaCrossover, make_strategy, strategy_params
from prism.strategies.pyfunc import StrategyModel

LENIENT = GateSettings(min_sharpe=0.0, max_drawdown=0.9, min_trades=1, min_deflated_sharpe=0.0)
EVIDENCE = {
    "oos_sharpe": 1.1,
    "oos_max_drawdown": 0.12,
    "oos_n_trades": 12.0,
    "oos_skew": -0.2,
    "oos_kurtosis": 4.0,
    "oos_n_periods": 500.0,
    "trials": 1.0,
}
CHECKS = {"prism.lookahead_check": "passed", "prism.parity_check": "passed"}


@pytest.fixture(scope="module")
def store(settings, tmp_path_factory):
    """One MLflow store for the module's runs (logging a backtest takes seconds); each test
    registers under its own model name, so registries do not meet."""
    root = tmp_path_factory.mktemp("registry-mlruns")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRISM_MLRUNS_DIR", str(root))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
        yield settings.model_copy(update={"mlruns_dir": root})


@pytest.fixture(scope="module")
def runs(store, bundled_bars) -> dict[str, str]:
    """Research runs: two that pass, one whose checks failed or were not recorded, and one of
    a strategy registered by research/."""
    bad = model_run(store, SmaCrossover(fast=5, slow=20), tags={"prism.parity_check": "failed"})
    MlflowClient().delete_tag(bad, "prism.lookahead_check")
    momentum = make_strategy("time_series_momentum", {"lookback": 63})
    return {
        "good": logged_run(store, bundled_bars)[0],
        "second": model_run(store, SmaCrossover(fast=20, slow=100)),
        "bad": bad,
        "momentum": model_run(store, momentum),
    }


@pytest.fixture
def registry_settings(store, request, monkeypatch):
    name = f"m-{request.node.name[5:45]}"
    monkeypatch.setenv("PRISM_MODEL_NAME", name)
    return store.model_copy(update={"model_name": name})


def logged_run(
    settings, bars, strategy=None, metrics=None, tags=None
) -> tuple[str, dict[str, float]]:
    """A backtest logged as a research run, plus the out-of-sample metrics and check tags the
    research notebooks record (logged here directly: these tests judge the gates, not the
    notebooks)."""
    strategy = strategy or SmaCrossover(fast=10, slow=50)
    bars = bars[bars["time"] < pd.Timestamp("2010-01-01", tz="UTC")]
    result = run_backtest(bars, strategy, BacktestConfig())
    with tracking.research_run(settings) as run_id:
        logged = tracking.log_backtest(strategy, bars, result, ["SPX", "NDX"])
        mlflow.log_metrics({**EVIDENCE, **(metrics or {})})
        mlflow.set_tags({**CHECKS, **(tags or {})})
    return run_id, logged


def model_run(settings, strategy, metrics=None, tags=None) -> str:
    """A research run with only what promotion reads: the gates' metrics and tags and the
    strategy as a pyfunc model (no tear sheet: rendering one takes seconds)."""
    with tracking.research_run(settings) as run_id:
        mlflow.log_metrics({"max_drawdown": 0.2, "n_trades": 40.0, **EVIDENCE, **(metrics or {})})
        mlflow.set_tags({**CHECKS, **(tags or {})})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.pyfunc.log_model(
                name=tracking.MODEL_ARTIFACT,
                python_model=StrategyModel(strategy.name, strategy_params(strategy)),
                pip_requirements=tracking.PIP_REQUIREMENTS,
            )
        mlflow.set_tag(tracking.MODEL_URI_TAG, info.model_uri)
    return run_id


def registry_snapshot(settings, engine) -> dict:
    """Everything the registry holds: models, their tags and aliases, every version with its
    tags, aliases, run and status, and the database mirror."""
    client = MlflowClient(settings.mlflow_tracking_uri)
    models = {}
    for found in client.search_registered_models():
        model = client.get_registered_model(found.name)
        versions = {}
        for v in client.search_model_versions(f"name = '{model.name}'"):
            full = client.get_model_version(model.name, v.version)
            versions[full.version] = (
                full.run_id,
                full.source,
                full.status,
                full.description,
                sorted(full.tags.items()),
                sorted(full.aliases),
            )
        models[model.name] = (
            model.description,
            sorted(model.tags.items()),
            sorted(model.aliases.items()),
            versions,
        )
    with engine.connect() as conn:
        mirror = conn.execute(text("SELECT * FROM models.versions ORDER BY 1, 2")).all()
    return {"models": models, "mirror": [tuple(row) for row in mirror]}


def _versions(settings) -> list[str]:
    return [v.version for v in versions.list_versions(settings) if v.name == settings.model_name]


def test_a_run_that_passes_the_gates_becomes_champion_once(registry_settings, engine, runs):
    first = promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=engine)
    again = promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=engine)

    assert first.promoted and first.version == again.version == "1"
    champion = versions.champion(registry_settings)
    assert (champion.version, champion.run_id, champion.approved_by) == ("1", runs["good"], "alice")
    assert _versions(registry_settings) == ["1"]


def test_a_promotion_records_who_when_why_and_the_gates_file(
    registry_settings, engine, runs, tmp_path
):
    gates_file = tmp_path / "gates.toml"
    gates_file.write_text(
        "version = 4\n[gates]\nmin_sharpe = 0.0\nmax_drawdown = 0.9\nmin_trades = 1\n"
        "min_deflated_sharpe = 0.0\n"
    )
    gates = load_gates_file(gates_file)

    outcome = promotion.promote(
        registry_settings,
        runs["good"],
        gates,
        "alice",
        alias="challenger",
        reason="beats v0",
        engine=engine,
    )

    sha = hashlib.sha256(gates_file.read_bytes()).hexdigest()
    version = MlflowClient().get_model_version(registry_settings.model_name, outcome.version)
    assert version.aliases == ["challenger"]
    assert version.tags["approved_by"] == "alice"
    assert version.tags["approval_reason"] == "beats v0"
    assert (version.tags["gates_version"], version.tags["gates_sha256"]) == ("4", sha)
    assert {g["gate"] for g in json.loads(version.tags["gate_results"])} >= {
        "out-of-sample Sharpe",
        "deflated Sharpe",
        "parity check",
    }
    with engine.connect() as conn:
        approval = conn.execute(
            text(
                "SELECT action, version, alias, decided_by, reason, gates_version, gates_sha256, "
                "jsonb_array_length(gate_results), decided_at FROM models.approvals"
            )
        ).one()
        mirror = conn.execute(
            text(
                "SELECT version, alias, mlflow_run_id, approved_by, gates_sha256 "
                "FROM models.versions"
            )
        ).one()
    assert approval[:7] == ("promote", "1", "challenger", "alice", "beats v0", 4, sha)
    assert approval[7] == 6 and approval[8] is not None
    assert tuple(mirror) == ("1", "challenger", runs["good"], "alice", sha)


def test_a_refused_promotion_leaves_the_registry_exactly_as_it_was(registry_settings, engine, runs):
    promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=engine)
    strict = LENIENT.model_copy(update={"min_sharpe": 5.0})
    before = registry_snapshot(registry_settings, engine)

    outcome = promotion.promote(registry_settings, runs["bad"], strict, "bob", engine=engine)

    assert not outcome.promoted
    failed = {g.gate: g for g in outcome.failed()}
    assert set(failed) == {"out-of-sample Sharpe", "look-ahead check", "parity check"}
    assert failed["out-of-sample Sharpe"].actual == "1.1"
    assert failed["look-ahead check"].note == "not recorded"
    assert failed["parity check"].actual == "failed"
    assert registry_snapshot(registry_settings, engine) == before
    with engine.connect() as conn:
        actions = conn.execute(
            text("SELECT action, version, mlflow_run_id FROM models.approvals ORDER BY id")
        ).all()
    assert [tuple(a) for a in actions] == [
        ("promote", "1", runs["good"]),
        ("refuse", None, runs["bad"]),
    ]


def test_rollback_returns_champion_to_the_previous_version_and_records_it(
    registry_settings, engine, runs
):
    first, second = runs["good"], runs["second"]
    promotion.promote(registry_settings, first, LENIENT, "alice", engine=engine)
    promotion.promote(
        registry_settings, second, LENIENT, "alice", alias="challenger", engine=engine
    )
    promotion.promote(registry_settings, second, LENIENT, "alice", engine=engine)
    assert versions.champion(registry_settings).version == "2"
    assert versions.champion(registry_settings).aliases == ["champion"]

    done = promotion.rollback(registry_settings, "carol", "live drawdown", engine=engine)

    assert (done.from_version, done.to_version) == ("2", "1")
    live = versions.champion(registry_settings)
    assert (live.version, live.run_id) == ("1", first)
    assert live.tags["rolled_back_by"] == "carol"
    assert live.tags["rolled_back_from"] == "2"
    with engine.connect() as conn:
        mirror = dict(conn.execute(text("SELECT version, alias FROM models.versions")).all())
        last = conn.execute(
            text(
                "SELECT action, version, previous_version, decided_by, reason "
                "FROM models.approvals ORDER BY id DESC LIMIT 1"
            )
        ).one()
    assert mirror == {"1": "champion", "2": None}
    assert tuple(last) == ("rollback", "1", "2", "carol", "live drawdown")
    with pytest.raises(ConfigError, match="no earlier champion to roll back to"):
        promotion.rollback(registry_settings, "carol", engine=engine)

    forward = promotion.rollback(registry_settings, "carol", "v2 fixed", to="2", engine=engine)
    back = promotion.rollback(registry_settings, "carol", engine=engine)

    assert (forward.to_version, back.from_version, back.to_version) == ("2", "2", "1")
    assert versions.champion(registry_settings).version == "1"
    with pytest.raises(ConfigError, match="has no version 9;"):
        promotion.rollback(registry_settings, "carol", to="9", engine=engine)


def test_the_cli_prints_the_failed_gates_and_exits_1(registry_settings, engine, runs):
    from prism.cli.app import app

    result = CliRunner().invoke(app, ["models", "promote", "--run", runs["bad"], "--reason", "x"])

    assert result.exit_code == 1
    assert "parity check" in result.output and "FAIL" in result.output
    assert "not recorded" in result.output
    assert "registry is unchanged" in result.output
    assert _versions(registry_settings) == []


def test_the_champion_loads_as_a_pyfunc_that_returns_the_strategys_weights(
    registry_settings, engine, runs, bundled_bars
):
    promotion.promote(registry_settings, runs["good"], LENIENT, "carol", engine=engine)

    info, model = versions.load_champion(registry_settings)
    weights = model.predict(bundled_bars)

    expected = SmaCrossover(fast=10, slow=50).target_weights(bundled_bars)
    pd.testing.assert_frame_equal(weights.reset_index(drop=True), expected)
    assert info.version == "1"


def test_a_strategy_registered_by_research_round_trips_through_the_registry(
    registry_settings, engine, runs, bundled_bars
):
    promotion.promote(registry_settings, runs["momentum"], LENIENT, "erin", engine=engine)

    _, model = versions.load_champion(registry_settings)

    strategy = make_strategy("time_series_momentum", {"lookback": 63})
    pd.testing.assert_frame_equal(
        model.predict(bundled_bars).reset_index(drop=True), strategy.target_weights(bundled_bars)
    )


def test_the_run_records_its_provenance(store, runs):
    run = MlflowClient().get_run(runs["good"])

    assert len(run.data.params["data_hash"]) == 64
    assert run.data.tags["git_commit"]
    assert run.data.tags["config_hash"] == store.config_hash()
    artifacts = {a.path for a in MlflowClient().list_artifacts(runs["good"])}
    assert {"equity_curve.png", "tear_sheet.html"} <= artifacts
    if shutil.which("chromium"):
        assert "tear_sheet.png" in artifacts
    assert {"sharpe", "win_rate", "profit_factor", "exposure", "turnover"} <= set(run.data.metrics)


def test_promoting_an_unknown_run_says_where_run_ids_come_from(registry_settings, engine):
    with pytest.raises(ConfigError, match="no MLflow run with id 'nope'"):
        promotion.promote(registry_settings, "nope", LENIENT, "dave", engine=engine)


def test_a_sweeps_parent_run_is_refused_with_where_its_children_are(registry_settings, engine):
    with tracking.research_run(registry_settings) as run_id:
        mlflow.set_tag("prism.sweep", "parent")

    with pytest.raises(ConfigError, match=r"is a sweep's parent .* promote one of its child runs"):
        promotion.promote(registry_settings, run_id, LENIENT, "dave", engine=engine)


def test_a_missing_alias_says_how_to_set_it(registry_settings):
    mlflow.set_tracking_uri(registry_settings.mlflow_tracking_uri)
    with pytest.raises(DataUnavailable, match="promote a run first: `prism models promote"):
        versions.champion(registry_settings)
