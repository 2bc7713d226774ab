from decimal import Decimal

import mlflow
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from prism import ledger
from prism.brokers.paper import PaperBroker
from prism.core.errors import ConfigError
from prism.data.sources import ArchBarSource
from prism.data.store import ingest
from prism.live import sources, steps
from prism.live.replay import replay_times
from prism.registry import promotion
from prism.registry.lineage import STEPS, aliases_at, order_lineage
from prism.research import tracking
from prism.strategies import SmaCrossover
from tests.integration.runner_support import LENIENT, research_run

NOTEBOOK = "notebooks/02_backtest_strategy.ipynb"


@pytest.fixture
def lineage_settings(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path / "mlruns"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    monkeypatch.setenv("COLUMNS", "250")
    return settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns"})


def _trade_the_champion(engine, settings) -> str:
    """Replay 30 bars through the live cycle with the promoted model; return an order id."""
    source = sources.registry_source(settings, None)
    strategy = source.load("champion", source.current("champion")[1])
    config = steps.LiveConfig(deployment="lineage", symbols=("SPX", "NDX"))
    broker = PaperBroker(engine, config)
    ledger.ensure_account(engine, config.deployment, Decimal("1000000"))
    for as_of in replay_times(engine, ["SPX", "NDX"], 30):
        steps.fill_open_orders(engine, broker, config.deployment, as_of)
        steps.decide(engine, broker, strategy, config, as_of)
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT client_order_id FROM trading.orders ORDER BY decided_at, symbol")
            )
            .scalars()
            .first()
        )


def test_an_order_traces_back_to_its_decision_model_run_and_notebook(
    engine, lineage_settings, bundled_bars
):
    ingest(engine, ArchBarSource())
    data_hash = tracking.data_hash(bundled_bars)
    run_id = research_run(
        lineage_settings,
        SmaCrossover(fast=5, slow=20),
        bundled_bars,
        tags={"prism.notebook": NOTEBOOK},
    )
    mlflow.tracking.MlflowClient().log_param(run_id, "notebook.fast", "5")
    promotion.promote(
        lineage_settings, run_id, LENIENT, "alice", reason="lineage test", engine=engine
    )
    order_id = _trade_the_champion(engine, lineage_settings)

    chain = order_lineage(engine, lineage_settings, order_id)

    found = {(step, name): value for step, name, value in chain.rows()}
    with engine.connect() as conn:
        order = conn.execute(
            text("SELECT symbol, side FROM trading.orders WHERE client_order_id = :c"),
            {"c": order_id},
        ).one()
    assert [step for step in dict.fromkeys(s for s, _, _ in chain.rows())] == list(STEPS)
    assert found[("order", "client_order_id")] == order_id
    assert found[("order", "symbol")] == order.symbol
    assert found[("decision", "action")] == order.side
    assert found[("model version", "model")] == lineage_settings.model_name
    assert found[("model version", "version")] == "1"
    assert found[("model version", "aliases now")] == "champion"
    assert found[("model version", "alias when ordered")] == "champion"
    assert found[("model version", "approved by")] == "alice"
    assert found[("model version", "reason")] == "lineage test"
    assert found[("MLflow run", "run id")] == run_id
    assert found[("MLflow run", "status")] == "FINISHED"
    logged = mlflow.tracking.MlflowClient().get_run(run_id).data.metrics["oos_sharpe"]
    assert f"oos_sharpe={logged:.4g}" in found[("MLflow run", "metrics")]
    assert found[("notebook", "path")] == NOTEBOOK
    assert found[("notebook", "git commit")] == tracking.git_state()["git_commit"]
    assert found[("notebook", "data hash")] == data_hash
    assert "notebook.fast=5" in found[("notebook", "parameters")]

    from prism.cli.app import app

    printed = CliRunner().invoke(app, ["lineage", order_id])
    assert printed.exit_code == 0, printed.output
    assert run_id in printed.output and data_hash in printed.output


def test_an_unknown_order_id_is_named(engine, lineage_settings):
    with pytest.raises(ConfigError, match="no order with client order id 'demo:NOPE:1'"):
        order_lineage(engine, lineage_settings, "demo:NOPE:1")


def test_the_alias_history_replays_promotions_and_rollbacks():
    moves = [
        ("champion", "1"),
        ("challenger", "2"),
        ("champion", "2"),
        ("challenger", "3"),
        ("champion", "1"),
    ]

    assert aliases_at(moves[:2]) == {"champion": "1", "challenger": "2"}
    assert aliases_at(moves[:3]) == {"champion": "2"}
    assert aliases_at(moves) == {"champion": "1", "challenger": "3"}
