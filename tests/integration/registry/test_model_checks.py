"""Loading a model is a checked act: against a real MLflow registry (SQLite store in a temporary
folder) and the real database, a version the champion alias points at trades only if its
signature accepts the bars, ``prism models promote`` approved it and its lineage resolves;
otherwise one critical ``model_refused`` event is written and the version that last traded
goes on trading (or, with none, nothing trades)."""

from __future__ import annotations

import importlib

import mlflow
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema
from sqlalchemy import text
from typer.testing import CliRunner

from prism.live import cycle, deployments
from prism.live.replay import replay_times
from prism.registry import promotion
from prism.research import tracking
from prism.strategies import SmaCrossover, strategy_params
from prism.strategies.pyfunc import StrategyModel, example_bars, strategy_signature
from tests.integration.registry.strategies import register
from tests.integration.runner_support import (
    LENIENT,
    SYMBOLS,
    deploy,
    research_run,
    use_mlflow_store,
)


@pytest.fixture
def store(settings, tmp_path, monkeypatch):
    """Settings on a fresh MLflow store of this test, with the model ``checked``."""
    use_mlflow_store(monkeypatch, tmp_path)
    return settings.model_copy(update={"mlruns_dir": tmp_path, "model_name": "checked"})


def deploy_checked(engine) -> None:
    deploy(engine, "checked", model_name="checked")


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def refusals(engine) -> list:
    return rows(
        engine,
        "SELECT severity, metadata FROM audit.system_events WHERE event_type = 'model_refused'",
    )


def traded_versions(engine, time) -> list:
    return rows(
        engine,
        "SELECT DISTINCT model_version FROM audit.decisions WHERE deployment = 'checked' "
        "AND time = :t",
        t=time,
    )


def test_a_version_promoted_through_prism_trades(stocked, store, bundled_bars):
    run_id = research_run(store, SmaCrossover(fast=5, slow=20), bundled_bars)
    promotion.promote(store, run_id, LENIENT, "alice", engine=stocked)
    deploy_checked(stocked)
    times = replay_times(stocked, list(SYMBOLS), 2)

    reports = [cycle.run_cycle(stocked, store, "checked", as_of=t) for t in times]

    assert [(r.outcome, r.model_version, r.reason) for r in reports] == [("traded", "1", "")] * 2
    assert traded_versions(stocked, times[0]) == [("1",)]
    assert refusals(stocked) == []
    assert deployments.get_deployment(stocked, "checked").last_model_version == "1"


def test_an_alias_set_by_hand_is_refused_once_and_the_previous_version_keeps_trading(
    stocked, store, bundled_bars
):
    first = research_run(store, SmaCrossover(fast=5, slow=20), bundled_bars)
    second = research_run(store, SmaCrossover(fast=10, slow=40), bundled_bars)
    promotion.promote(store, first, LENIENT, "alice", engine=stocked)
    deploy_checked(stocked)
    times = replay_times(stocked, list(SYMBOLS), 4)
    before = cycle.run_cycle(stocked, store, "checked", as_of=times[0])
    client = MlflowClient(store.mlflow_tracking_uri)
    by_hand = mlflow.register_model(f"runs:/{second}/{tracking.MODEL_ARTIFACT}", "checked")
    client.set_registered_model_alias("checked", "champion", str(by_hand.version))

    refused = [cycle.run_cycle(stocked, store, "checked", as_of=t) for t in times[1:3]]

    assert (before.model_version, str(by_hand.version)) == ("1", "2")
    assert [(r.outcome, r.model_version) for r in refused] == [("traded", "1")] * 2
    assert all("no approval record" in r.reason for r in refused)
    assert traded_versions(stocked, times[1]) == traded_versions(stocked, times[2]) == [("1",)]
    events = refusals(stocked)
    assert len(events) == 1
    severity, metadata = events[0]
    assert severity == "critical"
    assert (metadata["version"], metadata["trading_version"]) == ("2", "1")
    assert deployments.get_deployment(stocked, "checked").last_model_version == "1"

    promotion.promote(store, second, LENIENT, "bob", engine=stocked)
    approved = cycle.run_cycle(stocked, store, "checked", as_of=times[3])

    assert (approved.outcome, approved.model_version, approved.reason) == ("traded", "2", "")
    assert traded_versions(stocked, times[3]) == [("2",)]
    assert deployments.get_deployment(stocked, "checked").last_model_version == "2"


def test_a_version_whose_signature_rejects_the_bars_is_refused_and_nothing_trades(
    stocked, store, bundled_bars
):
    strategy = SmaCrossover(fast=5, slow=20)
    model = StrategyModel(strategy.name, strategy_params(strategy))
    good = strategy_signature(model, example_bars(bundled_bars))
    needs_vwap = ModelSignature(
        inputs=Schema([*good.inputs.inputs, ColSpec("double", "vwap")]), outputs=good.outputs
    )
    run_id = research_run(store, strategy, bundled_bars, signature=needs_vwap)
    promoted = promotion.promote(store, run_id, LENIENT, "alice", engine=stocked)
    deploy_checked(stocked)
    times = replay_times(stocked, list(SYMBOLS), 2)

    reports = [cycle.run_cycle(stocked, store, "checked", as_of=t) for t in times]

    assert promoted.promoted
    assert [(r.outcome, r.orders, r.model_version) for r in reports] == [("refused", 0, None)] * 2
    assert all("signature" in r.reason and "vwap" in r.reason for r in reports)
    assert rows(stocked, "SELECT count(*) FROM trading.orders") == [(0,)]
    decisions = rows(
        stocked,
        "SELECT action, model_version, reasoning FROM audit.decisions WHERE time = :t",
        t=pd.Timestamp(times[0]),
    )
    assert sorted(d.action for d in decisions) == ["skip", "skip"]
    assert {d.model_version for d in decisions} == {"1"}
    events = refusals(stocked)
    assert len(events) == 1 and events[0].metadata["trading_version"] is None
    assert deployments.get_deployment(stocked, "checked").last_model_version is None


PINNED_SOURCE = '''
from dataclasses import dataclass
from typing import ClassVar

from prism.strategies import SmaCrossover


@dataclass(frozen=True)
class PinnedCrossover(SmaCrossover):
    """An SMA crossover defined in a researcher's module of its own."""

    name: ClassVar[str] = "pinned_crossover"
'''


def test_a_strategy_edited_after_promotion_is_refused_with_a_critical_alert(
    stocked, store, bundled_bars, tmp_path, monkeypatch
):
    module = tmp_path / "research_pinned" / "pinned_strategy.py"
    module.parent.mkdir()
    module.write_text(PINNED_SOURCE)
    monkeypatch.syspath_prepend(str(module.parent))
    pinned = importlib.import_module("pinned_strategy")
    register(monkeypatch, pinned.PinnedCrossover)
    run_id = research_run(store, pinned.PinnedCrossover(fast=5, slow=20), bundled_bars)
    promoted = promotion.promote(store, run_id, LENIENT, "alice", engine=stocked)
    deploy_checked(stocked)
    times = replay_times(stocked, list(SYMBOLS), 2)
    edited = PINNED_SOURCE.replace("An SMA crossover", "A faster SMA crossover") + (
        "\n    def target_weights(self, bars):\n        return super().target_weights(bars) * 0\n"
    )
    module.write_text(edited)
    compile(edited, str(module), "exec")

    reports = [cycle.run_cycle(stocked, store, "checked", as_of=t) for t in times]

    assert promoted.promoted and len(promoted.code_sha256) == 64
    assert [(r.outcome, r.orders, r.model_version) for r in reports] == [("refused", 0, None)] * 2
    assert all("installed strategy code differs" in r.reason for r in reports)
    assert all("pinned_strategy" in r.reason for r in reports)
    events = refusals(stocked)
    assert len(events) == 1 and events[0].severity == "critical"
    assert rows(stocked, "SELECT count(*) FROM trading.orders") == [(0,)]


def test_prism_models_show_prints_the_code_hash_the_approval_recorded(
    stocked, store, bundled_bars, monkeypatch
):
    from prism.cli.app import app

    monkeypatch.setenv("PRISM_MODEL_NAME", "checked")
    monkeypatch.setenv("COLUMNS", "250")
    run_id = research_run(store, SmaCrossover(fast=5, slow=20), bundled_bars)
    promoted = promotion.promote(store, run_id, LENIENT, "alice", engine=stocked)

    shown = CliRunner().invoke(app, ["models", "show", "1"])

    assert shown.exit_code == 0, shown.output
    assert "code sha256" in shown.output and promoted.code_sha256 in shown.output
