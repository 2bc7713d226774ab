"""Registered versions read from MLflow's SQLite store directly equal what MLflow's client
reports on the same store (aliases, tags, deleted versions left out), ``prism models list``
shows them without importing MLflow, and the reader declines what it cannot answer for."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from prism.registry.sqlite_registry import read_versions
from prism.registry.versions import VersionInfo, _version_info

PROBE = """
import json, sys
from prism.cli.app import main
sys.argv = ["prism", "models", "list"]
try:
    main()
except SystemExit:
    pass
print("\\nMLFLOW=" + json.dumps("mlflow" in sys.modules))
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, MlflowClient]:
    """A real SQLite store with two models: versions with aliases and tags, one deleted."""
    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for model in ("alpha", "beta"):
        client.create_registered_model(model)
        for _ in range(3):
            client.create_model_version(model, source=(root / model).as_uri(), run_id=None)
    client.set_registered_model_alias("alpha", "champion", "2")
    client.set_registered_model_alias("alpha", "challenger", "2")
    client.set_registered_model_alias("beta", "champion", "3")
    client.set_model_version_tag("alpha", "2", "approved_by", "alice")
    client.set_model_version_tag("alpha", "2", "approval_reason", "beats the benchmark")
    client.set_model_version_tag("beta", "1", "note", "first")
    client.delete_model_version("beta", "2")
    return uri, client


def test_the_direct_read_equals_mlflows_client(registry: tuple[str, MlflowClient]) -> None:
    uri, client = registry
    expected = sorted(
        (
            _version_info(client, version)
            for model in client.search_registered_models()
            for version in client.search_model_versions(f"name = '{model.name}'")
        ),
        key=lambda v: (v.name, -int(v.version)),
    )

    records = read_versions(uri)

    assert records is not None
    direct = sorted(
        (VersionInfo.from_record(*r) for r in records), key=lambda v: (v.name, -int(v.version))
    )
    assert direct == expected
    assert [(v.name, v.version) for v in expected] == [
        ("alpha", "3"),
        ("alpha", "2"),
        ("alpha", "1"),
        ("beta", "3"),
        ("beta", "1"),
    ]


def test_models_list_shows_the_versions_without_importing_mlflow(
    registry: tuple[str, MlflowClient],
) -> None:
    uri, _ = registry
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "COLUMNS": "200"}
    env.pop("MLFLOW_REGISTRY_URI", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    table, _, imported = done.stdout.rpartition("MLFLOW=")
    rows = [line.split("│")[1:4] for line in table.splitlines() if "│" in line]
    cells = [[cell.strip() for cell in row] for row in rows]
    assert cells[0] == ["alpha", "3", ""]
    assert ["alpha", "2", "challenger, champion"] in cells
    assert json.loads(imported) is False, done.stderr


def test_the_reader_declines_what_only_mlflow_can_answer_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE model_versions (name TEXT)")

    assert read_versions(missing) == []
    assert not (tmp_path / "none.db").exists()
    assert read_versions(f"sqlite:///{foreign}") is None
    assert read_versions("postgresql://u@h/mlflow") is None
    assert read_versions("http://127.0.0.1:5000") is None
