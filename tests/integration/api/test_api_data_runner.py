"""Routes over the data, the feature store, deployments and readiness: an uploaded file goes
through ingest's validation (rejects reported, a broken file loads nothing), indicators and
features match the library's, a deployment is created with the CLI's checks, /ready names each
dependency and answers within its deadline when one hangs, and reads go through a login that
cannot write."""

from __future__ import annotations

import io
import socket
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from prism.api.app import create_app
from prism.data.store import read_bars
from prism.features import indicators
from prism.features import store as feature_store
from prism.live import cycle, deployments, drift, sources
from prism.live.replay import replay_times
from tests.integration.runner_support import SYMBOLS, FixedSource, deploy, loosen_limits

CSV = "text/csv"


def upload(client, auth, body: bytes, **params: str):
    return client.post(
        "/api/v1/data/ingest",
        params={"symbol": "UPL", **params},
        content=body,
        headers={**auth("trader"), "Content-Type": CSV},
    )


def stored(engine, symbol: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM market_data.ohlcv WHERE symbol = :s"), {"s": symbol}
            ).scalar_one()
        )


def test_an_upload_is_validated_as_ingest_does_and_a_broken_file_loads_nothing(
    client, auth, engine
):
    days = pd.bdate_range("2024-01-02", periods=6, tz="UTC")
    frame = pd.DataFrame(
        {
            "time": days.strftime("%Y-%m-%d"),
            "open": [10.0, 11, 12, 13, 14, 15],
            "high": [11.0, 12, 13, 14, 15, 16],
            "low": [9.0, 10, 11, 12, 13, 14],
            "close": [10.5, 11.5, 12.5, 13.5, 14.5, 15.5],
            "volume": [100.0, 100, 100, 100, 100, 100],
        }
    )
    frame.loc[2, "high"] = frame.loc[2, "low"] - 1
    frame.loc[4, "volume"] = -5
    broken = set(frame.index[(frame["high"] < frame["low"]) | (frame["volume"] < 0)])
    answer = upload(client, auth, frame.to_csv(index=False).encode(), filename="upl.csv")
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["received"], result["quarantined"]) == (len(frame), len(broken))
    assert result["inserted"] == len(frame) - len(broken)
    assert sorted(r["row"]["close"] for r in result["rejects"]) == sorted(
        frame.loc[sorted(broken), "close"]
    )
    assert all(r["rule"] and r["symbol"] == "UPL" for r in result["rejects"])
    bars = read_bars(engine, ["UPL"])
    kept = frame.drop(index=sorted(broken))
    assert bars["close"].tolist() == kept["close"].tolist()
    text_body = "time,open,high,low,close,volume\n2024-02-01,1,2,0.5,1.5,10\n2024-02-02,1,2,oops"
    refused = upload(client, auth, text_body.encode(), filename="bad.csv")
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "bad.csv" in refused.json()["detail"] and "/tmp" not in refused.json()["detail"]
    assert stored(engine, "UPL") == len(kept)
    as_parquet = io.BytesIO()
    kept.rename(columns={"time": "Date"}).to_parquet(as_parquet, index=False)
    parquet = client.post(
        "/api/v1/data/ingest",
        params={"symbol": "UPQ", "map": "Date=time"},
        content=as_parquet.getvalue(),
        headers={**auth("trader"), "Content-Type": "application/vnd.apache.parquet"},
    )
    assert parquet.status_code == 200, parquet.text
    assert (parquet.json()["inserted"], parquet.json()["quarantined"]) == (len(kept), 0)
    assert read_bars(engine, ["UPQ"])["close"].tolist() == kept["close"].tolist()
    wrong_type = client.post(
        "/api/v1/data/ingest",
        content=b"x",
        headers={**auth("trader"), "Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 400 and "text/csv" in wrong_type.json()["detail"]


def test_an_upload_over_the_size_cap_is_refused_413_and_loads_nothing(api_settings, engine):
    capped = create_app(api_settings.model_copy(update={"api_upload_max_mb": 0.001}), engine)
    days = pd.bdate_range("2024-01-02", periods=60, tz="UTC").strftime("%Y-%m-%d")
    body = "time,open,high,low,close,volume\n" + "".join(f"{d},1,2,0.5,1.5,10\n" for d in days)
    token, _ = capped.state.prism.keys.issue("trader-user", "trader", 5, "password")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CSV}
    with TestClient(capped) as client:
        declared = client.post(
            "/api/v1/data/ingest", params={"symbol": "BIG"}, content=body.encode(), headers=headers
        )
        streamed = client.post(
            "/api/v1/data/ingest",
            params={"symbol": "BIG"},
            content=(line.encode() for line in body.splitlines(keepends=True)),
            headers=headers,
        )
        small = client.post(
            "/api/v1/data/ingest",
            params={"symbol": "BIG"},
            content=body[:900].rsplit("\n", 1)[0].encode(),
            headers=headers,
        )

    assert len(body) > 1000
    for answer in (declared, streamed):
        assert answer.status_code == 413, answer.text
        assert "PRISM_API_UPLOAD_MAX_MB (0.001 MB)" in answer.json()["detail"]
        assert answer.headers["content-type"] == "application/problem+json"
    assert small.status_code == 200, small.text
    assert stored(engine, "BIG") == small.json()["inserted"] > 0


def test_indicators_over_a_range_are_warmed_up_by_the_history_before_it(client, auth, stocked):
    answer = client.get(
        "/api/v1/data/indicators/SPX",
        params={"start": "2017-03-01", "end": "2017-06-30"},
        headers=auth("viewer"),
    )
    assert answer.status_code == 200, answer.text
    history = indicators.compute(read_bars(stocked, ["SPX"], None, "2017-06-30"))
    times = pd.to_datetime(history["time"], utc=True)
    expected = history[times >= pd.Timestamp("2017-03-01", tz="UTC")]
    got = pd.DataFrame(answer.json()["rows"])
    assert pd.to_datetime(got["time"], utc=True).tolist() == expected["time"].tolist()
    for column in indicators.INDICATORS:
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy())
    assert not np.isnan(got["sma_200"].to_numpy(float)).any()


def test_features_come_from_the_feature_store(client, auth, stocked, api_settings):
    missing = client.get("/api/v1/data/features/SPX", headers=auth("viewer"))
    assert missing.status_code == 404 and "prism features build" in missing.json()["detail"]
    feature_store.build(stocked, ["SPX", "NDX"], "1d", "SPX", root=api_settings.feature_dir)
    answer = client.get(
        "/api/v1/data/features/NDX",
        params={"start": "2018-01-01", "end": "2018-03-31"},
        headers=auth("viewer"),
    )
    assert answer.status_code == 200, answer.text
    expected = feature_store.read(
        ["NDX"], "2018-01-01", "2018-03-31", root=api_settings.feature_dir
    )
    got = pd.DataFrame(answer.json()["rows"])
    assert len(got) == len(expected) > 0
    numeric = [c for c in expected.columns if c not in ("time", "symbol")]
    np.testing.assert_allclose(
        got[numeric].to_numpy(float), expected[numeric].to_numpy(float), equal_nan=True
    )


def test_a_deployment_is_created_with_the_clis_checks_and_its_drift_needs_activity(
    client, auth, engine
):
    body = {"name": "api-desk", "symbols": ["SPX", "NDX"], "capital": 250000}
    made = client.post("/api/v1/runner/deployments", json=body, headers=auth("trader"))
    assert made.status_code == 201, made.text
    saved = deployments.get_deployment(engine, "api-desk")
    assert (saved.symbols, saved.capital, saved.broker) == (("SPX", "NDX"), 250000.0, "paper")
    assert made.json()["symbols"] == ["SPX", "NDX"]
    again = client.post("/api/v1/runner/deployments", json=body, headers=auth("trader"))
    assert again.status_code == 409
    for change, word in (
        ({"broker": "fax"}, "fax"),
        ({"timeframe": "7m"}, "7m"),
        ({"capital": -1}, "capital"),
        ({"params": {"leverage_please": 3}}, "leverage_please"),
    ):
        bad = client.post(
            "/api/v1/runner/deployments",
            json={**body, "name": "other", **change},
            headers=auth("trader"),
        )
        assert bad.status_code == 400 and word in bad.json()["detail"], bad.text
    with engine.connect() as conn:
        audit = conn.execute(
            text(
                "SELECT metadata->>'subject', (metadata->>'status')::int "
                "FROM audit.system_events WHERE event_type = 'api_call' "
                "AND metadata->>'path' = '/api/v1/runner/deployments' ORDER BY id LIMIT 1"
            )
        ).one()
    assert tuple(audit) == ("trader-user", 201)
    idle = client.get("/api/v1/runner/deployments/api-desk/drift", headers=auth("viewer"))
    assert idle.status_code == 404 and "api-desk" in idle.json()["detail"]
    unknown = client.get("/api/v1/runner/deployments/ghost/drift", headers=auth("viewer"))
    assert unknown.status_code == 400 and "ghost" in unknown.json()["detail"]


def test_drift_of_a_replayed_deployment_is_the_librarys_report(client, auth, stocked, api_settings):
    loosen_limits(stocked, "api drift test")
    source = FixedSource(model="api-drift-model")
    deploy(stocked, "drifted", model_name="api-drift-model")
    for as_of in replay_times(stocked, list(SYMBOLS), 30):
        cycle.run_cycle(stocked, api_settings, "drifted", as_of=as_of, source=source)
    expected = drift.drift(stocked, api_settings, "drifted", source=source).as_dict()
    sources._REGISTRIES.clear()
    registry = sources.registry_source(api_settings, "api-drift-model")
    registry._loaded[("api-drift-model", "1")] = source.load("champion", "1")
    try:
        answer = client.get("/api/v1/runner/deployments/drifted/drift", headers=auth("viewer"))
    finally:
        sources._REGISTRIES.clear()
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["bars"] == expected["bars"] == 30
    for figure in ("live_pnl", "simulated_pnl", "gap", "fees", "fill_prices", "timing"):
        assert report[figure] == pytest.approx(expected[figure], abs=1e-6), figure


@pytest.fixture
def hanging_prefect(monkeypatch):
    """PREFECT_API_URL at a socket that accepts connections and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/api")
        yield


def test_ready_names_each_dependency_and_answers_in_time_when_one_hangs(
    api_settings, migrated_engine, engine, hanging_prefect
):
    deployments.upsert_deployment(engine, deployments.Deployment("ready-desk", ("SPX",), "1d", 1e5))
    quick = api_settings.model_copy(update={"api_ready_timeout": 0.5})
    with TestClient(create_app(quick, migrated_engine)) as client:
        started = time.monotonic()
        answer = client.get("/ready")
        took = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    checks = {c["name"]: c for c in answer.json()["checks"]}
    assert set(checks) == {
        "database",
        "mlflow",
        "prefect",
        "feeds",
        "alert_outbox",
        "broker:ready-desk",
    }
    assert checks["prefect"]["ok"] is False
    assert "0.5 s" in checks["prefect"]["reason"] or "Timeout" in checks["prefect"]["reason"]
    assert checks["database"]["ok"] and "prism_reader" in checks["database"]["reason"]
    assert checks["broker:ready-desk"]["ok"], checks["broker:ready-desk"]
    assert checks["alert_outbox"]["reason"] == "0 undelivered alerts"
    assert answer.json()["status"] == "failed"
    assert took < 3


def test_reads_go_through_a_login_that_cannot_write(app, client, auth, engine):
    reader = app.state.prism.engine
    with reader.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "prism_reader"
    with pytest.raises(ProgrammingError) as refused, reader.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config.strategies (deployment, symbols, timeframe, capital) "
                "VALUES ('sneaky', ARRAY['SPX'], '1d', 1)"
            )
        )
    assert refused.value.orig is not None and refused.value.orig.sqlstate == "42501"
    with pytest.raises(ProgrammingError) as hidden, reader.connect() as conn:
        conn.execute(text("SELECT count(*) FROM config.api_jobs"))
    assert hidden.value.orig is not None and hidden.value.orig.sqlstate == "42501"
    assert client.get("/api/v1/runner/deployments", headers=auth("viewer")).json() == []
    csv = io.StringIO("time,open,high,low,close,volume\n2024-03-01,1,2,0.5,1.5,10\n")
    written = upload(client, auth, csv.getvalue().encode())
    assert written.status_code == 200 and written.json()["inserted"] == 1
