import hashlib
import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import text
from typer.testing import CliRunner

from prism.backtest.engine import BacktestConfig, run_backtest
from prism.core.errors import ConfigError, DataUnavailable
from prism.registry import promotion, versions
from prism.registry.gates import Overrides, load_gates_file
from prism.research import tracking
from prism.research.evaluation import validation_tags
from prism.strategies import SmaCrossover, make_strategy
from tests.integration.registry.strategies import TomorrowsClose, register
from tests.integration.runner_support import LENIENT, research_run

PEEKING = TomorrowsClose()
FORGED = {"prism.lookahead_check": "passed", "prism.parity_check": "passed"}
"""Check tags a notebook could write by hand whatever its strategy does."""


@pytest.fixture(scope="module", autouse=True)
def peeking_registered():
    """The peeking strategy is known by name while this module's tests run."""
    with pytest.MonkeyPatch.context() as patch:
        register(patch, TomorrowsClose)
        yield


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
def runs(store, bundled_bars, peeking_registered) -> dict[str, str]:
    """Research runs on the stored bars: two honest ones, a peeking one whose check tags were
    forged, one of a strategy registered by research/, and one whose Sharpe was edited."""
    edited = research_run(store, SmaCrossover(fast=10, slow=40), bundled_bars)
    MlflowClient().log_metric(edited, "oos_sharpe", 3.5)
    momentum = make_strategy("time_series_momentum", {"lookback": 63})
    return {
        "good": logged_run(store, bundled_bars)[0],
        "second": research_run(store, SmaCrossover(fast=20, slow=100), bundled_bars),
        "bad": research_run(store, PEEKING, bundled_bars, tags=FORGED),
        "momentum": research_run(store, momentum, bundled_bars),
        "edited": edited,
    }


@pytest.fixture
def registry_settings(store, request, monkeypatch):
    name = f"m-{request.node.name[5:45]}"
    monkeypatch.setenv("PRISM_MODEL_NAME", name)
    return store.model_copy(update={"model_name": name})


def logged_run(settings, bars, strategy=None) -> tuple[str, dict[str, float]]:
    """A backtest logged in full (tear sheet included) as a research run, on the stored bars
    before 2010, with its checks run and an out-of-sample segment from 2006."""
    strategy = strategy or SmaCrossover(fast=10, slow=50)
    bars = bars[bars["time"] < pd.Timestamp("2010-01-01", tz="UTC")]
    config = BacktestConfig()
    result = run_backtest(bars, strategy, config)
    checks = validation_tags(strategy, bars, config)
    with tracking.research_run(settings) as run_id:
        logged = tracking.log_backtest(
            strategy,
            bars,
            result,
            ["SPX", "NDX"],
            pd.Timestamp("2006-01-03", tz="UTC"),
            {**checks, "git_dirty": "false"},
        )
    return run_id, logged


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


def test_a_run_that_passes_the_gates_becomes_champion_once(registry_settings, stocked, runs):
    first = promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=stocked)
    again = promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=stocked)

    assert first.promoted and first.version == again.version == "1"
    champion = versions.champion(registry_settings)
    assert (champion.version, champion.run_id, champion.approved_by) == ("1", runs["good"], "alice")
    assert _versions(registry_settings) == ["1"]


def test_a_promotion_records_who_when_why_and_the_gates_file(
    registry_settings, stocked, runs, tmp_path
):
    gates_file = tmp_path / "gates.toml"
    gates_file.write_text(
        "version = 4\n[gates]\nmin_sharpe = -100.0\nmax_drawdown = 1.0\nmin_trades = 1\n"
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
        engine=stocked,
    )

    sha = hashlib.sha256(gates_file.read_bytes()).hexdigest()
    version = MlflowClient().get_model_version(registry_settings.model_name, outcome.version)
    assert version.aliases == ["challenger"]
    assert version.tags["approved_by"] == "alice"
    assert version.tags["approval_reason"] == "beats v0"
    assert (version.tags["gates_version"], version.tags["gates_sha256"]) == ("4", sha)
    assert {g["gate"] for g in json.loads(version.tags["gate_results"])} >= {
        "evidence",
        "logged metrics",
        "out-of-sample Sharpe",
        "deflated Sharpe",
        "look-ahead check",
        "parity check",
        "clean tree",
        "data gaps",
    }
    assert version.tags["code_sha256"] == outcome.code_sha256 and len(outcome.code_sha256) == 64
    with stocked.connect() as conn:
        approval = conn.execute(
            text(
                "SELECT action, version, alias, decided_by, reason, gates_version, gates_sha256, "
                "jsonb_array_length(gate_results), decided_at, code_sha256 FROM models.approvals"
            )
        ).one()
        mirror = conn.execute(
            text(
                "SELECT version, alias, mlflow_run_id, approved_by, gates_sha256 "
                "FROM models.versions"
            )
        ).one()
    assert approval[:7] == ("promote", "1", "challenger", "alice", "beats v0", 4, sha)
    assert approval[7] == 10 and approval[8] is not None
    assert approval[9] == outcome.code_sha256
    assert tuple(mirror) == ("1", "challenger", runs["good"], "alice", sha)


def test_a_refused_promotion_leaves_the_registry_exactly_as_it_was(
    registry_settings, stocked, runs
):
    promotion.promote(registry_settings, runs["good"], LENIENT, "alice", engine=stocked)
    strict = LENIENT.model_copy(update={"min_sharpe": 5.0})
    before = registry_snapshot(registry_settings, stocked)

    outcome = promotion.promote(registry_settings, runs["bad"], strict, "bob", engine=stocked)

    assert not outcome.promoted
    failed = {g.gate: g for g in outcome.failed()}
    assert {"look-ahead check", "parity check"} <= set(failed)
    assert failed["look-ahead check"].actual == "failed"
    assert registry_snapshot(registry_settings, stocked) == before
    with stocked.connect() as conn:
        actions = conn.execute(
            text("SELECT action, version, mlflow_run_id FROM models.approvals ORDER BY id")
        ).all()
    assert [tuple(a) for a in actions] == [
        ("promote", "1", runs["good"]),
        ("refuse", None, runs["bad"]),
    ]


def test_rollback_returns_champion_to_the_previous_version_and_records_it(
    registry_settings, stocked, runs
):
    first, second = runs["good"], runs["second"]
    promotion.promote(registry_settings, first, LENIENT, "alice", engine=stocked)
    promotion.promote(
        registry_settings, second, LENIENT, "alice", alias="challenger", engine=stocked
    )
    promotion.promote(registry_settings, second, LENIENT, "alice", engine=stocked)
    assert versions.champion(registry_settings).version == "2"
    assert versions.champion(registry_settings).aliases == ["champion"]

    done = promotion.rollback(registry_settings, "carol", "live drawdown", engine=stocked)

    assert (done.from_version, done.to_version) == ("2", "1")
    live = versions.champion(registry_settings)
    assert (live.version, live.run_id) == ("1", first)
    assert live.tags["rolled_back_by"] == "carol"
    assert live.tags["rolled_back_from"] == "2"
    with stocked.connect() as conn:
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
        promotion.rollback(registry_settings, "carol", engine=stocked)

    forward = promotion.rollback(registry_settings, "carol", "v2 fixed", to="2", engine=stocked)
    back = promotion.rollback(registry_settings, "carol", engine=stocked)

    assert (forward.to_version, back.from_version, back.to_version) == ("2", "2", "1")
    assert versions.champion(registry_settings).version == "1"
    with pytest.raises(ConfigError, match="has no version 9;"):
        promotion.rollback(registry_settings, "carol", to="9", engine=stocked)


def test_a_peeking_strategy_tagged_as_checked_by_hand_is_refused_with_the_look_ahead_table(
    registry_settings, stocked, runs
):
    from prism.cli.app import app

    tags = MlflowClient().get_run(runs["bad"]).data.tags
    result = CliRunner().invoke(app, ["models", "promote", "--run", runs["bad"], "--reason", "x"])

    assert (tags["prism.lookahead_check"], tags["prism.parity_check"]) == ("passed", "passed")
    assert result.exit_code == 1, result.output
    assert "look-ahead check" in result.output and "FAIL" in result.output
    assert "weight(s) changed when history was cut" in result.output
    assert "full history" in result.output and "SPX" in result.output
    assert "registry is unchanged" in result.output
    assert _versions(registry_settings) == []


def test_a_run_whose_logged_sharpe_was_edited_is_refused_naming_the_metric(
    registry_settings, stocked, runs
):
    outcome = promotion.promote(registry_settings, runs["edited"], LENIENT, "eve", engine=stocked)

    assert not outcome.promoted
    failed = [(g.gate, g.metric, g.actual) for g in outcome.failed()]
    assert failed == [("logged metric", "oos_sharpe", "3.5")]
    assert _versions(registry_settings) == []


def test_a_run_from_a_dirty_tree_needs_a_waiver_with_a_reason_which_the_approval_keeps(
    registry_settings, stocked, store, bundled_bars
):
    run_id = research_run(store, SmaCrossover(fast=5, slow=30), bundled_bars)
    MlflowClient().set_tag(run_id, "git_dirty", "true")
    waiver = Overrides(dirty_tree=True, reason="reviewed diff, bob")

    refused = promotion.promote(registry_settings, run_id, LENIENT, "eve", engine=stocked)
    with pytest.raises(ConfigError, match="needs a reason"):
        promotion.promote(
            registry_settings,
            run_id,
            LENIENT,
            "eve",
            engine=stocked,
            overrides=Overrides(dirty_tree=True),
        )
    waived = promotion.promote(
        registry_settings, run_id, LENIENT, "eve", engine=stocked, overrides=waiver
    )

    assert [g.gate for g in refused.failed()] == ["clean tree"]
    assert waived.promoted
    with stocked.connect() as conn:
        last = conn.execute(
            text("SELECT action, waived, waiver_reason FROM models.approvals ORDER BY id")
        ).all()
    assert [tuple(row) for row in last] == [
        ("refuse", [], ""),
        ("promote", ["clean tree"], "reviewed diff, bob"),
    ]


def test_the_cli_prints_the_failed_gates_and_exits_1(registry_settings, stocked, runs):
    from prism.cli.app import app

    result = CliRunner().invoke(app, ["models", "promote", "--run", runs["bad"], "--reason", "x"])

    assert result.exit_code == 1
    assert "parity check" in result.output and "FAIL" in result.output
    assert "registry is unchanged" in result.output
    assert _versions(registry_settings) == []


def test_the_champion_loads_as_a_pyfunc_that_returns_the_strategys_weights(
    registry_settings, stocked, runs, bundled_bars
):
    promotion.promote(registry_settings, runs["good"], LENIENT, "carol", engine=stocked)

    info, model = versions.load_champion(registry_settings)
    weights = model.predict(bundled_bars)

    expected = SmaCrossover(fast=10, slow=50).target_weights(bundled_bars)
    pd.testing.assert_frame_equal(weights.reset_index(drop=True), expected)
    assert info.version == "1"


def test_a_strategy_registered_by_research_round_trips_through_the_registry(
    registry_settings, stocked, runs, bundled_bars
):
    promotion.promote(registry_settings, runs["momentum"], LENIENT, "erin", engine=stocked)

    _, model = versions.load_champion(registry_settings)

    strategy = make_strategy("time_series_momentum", {"lookback": 63})
    pd.testing.assert_frame_equal(
        model.predict(bundled_bars).reset_index(drop=True), strategy.target_weights(bundled_bars)
    )


def test_the_logged_model_carries_its_code_and_pinned_requirements(store, runs, tmp_path):
    model = mlflow.artifacts.download_artifacts(
        f"runs:/{runs['good']}/{tracking.MODEL_ARTIFACT}", dst_path=str(tmp_path)
    )
    requirements = (Path(model) / "requirements.txt").read_text().split()
    code = sorted(p.name for p in (Path(model) / "artifacts" / "code").iterdir())
    tags = MlflowClient().get_run(runs["good"]).data.tags

    assert {r.split("==")[0] for r in requirements} >= {"mlflow", "pandas", "numpy", "prism-quant"}
    assert all("==" in r for r in requirements if not r.startswith("cloudpickle"))
    assert {"prism.strategies.technical.py", "prism.features.indicators.py"} <= set(code)
    assert len(tags[tracking.CODE_HASH_TAG]) == 64


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


def test_promoting_an_unknown_run_says_where_run_ids_come_from(registry_settings, stocked):
    with pytest.raises(ConfigError, match="no MLflow run with id 'nope'"):
        promotion.promote(registry_settings, "nope", LENIENT, "dave", engine=stocked)


def test_a_sweeps_parent_run_is_refused_with_where_its_children_are(registry_settings, stocked):
    with tracking.research_run(registry_settings) as run_id:
        mlflow.set_tag("prism.sweep", "parent")

    with pytest.raises(ConfigError, match=r"is a sweep's parent .* promote one of its child runs"):
        promotion.promote(registry_settings, run_id, LENIENT, "dave", engine=stocked)


def test_a_missing_alias_says_how_to_set_it(registry_settings):
    mlflow.set_tracking_uri(registry_settings.mlflow_tracking_uri)
    with pytest.raises(DataUnavailable, match="promote a run first: `prism models promote"):
        versions.champion(registry_settings)


def test_the_trial_count_counts_finished_runs_and_reports_failed_ones_apart(store):
    client = MlflowClient()
    experiment = client.create_experiment("trial-count")
    for status in ("FINISHED", "FINISHED", "FAILED", "KILLED", "RUNNING"):
        run = client.create_run(experiment)
        if status != "RUNNING":
            client.set_terminated(run.info.run_id, status=status)
    swept = client.create_run(experiment)
    client.log_metric(swept.info.run_id, "trials", 12.0)
    client.set_terminated(swept.info.run_id, status="FINISHED")

    assert promotion.experiment_trials(client, experiment) == (14, 2)
