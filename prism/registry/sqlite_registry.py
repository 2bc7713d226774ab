"""Registered model versions read straight from MLflow's SQLite store, for ``prism models list``
and the API's version listing.

Why not MLflow's client: every path to it (``MlflowClient``, or the registry's
``SqlAlchemyStore`` alone) runs ``mlflow/__init__``, which imports MLflow's data, GenAI and
gateway modules and with them pandas, polars, pyarrow, scipy and FastAPI; the store then opens
SQLAlchemy and checks its schema with Alembic. Measured here that is 6-9 s of CPU before the
first row, 3 s even with those libraries hidden from MLflow. The rows a listing needs sit in
four of MLflow's tables, read here with the standard library's ``sqlite3``, read-only.

This reader declines (returns None, and the caller uses MLflow's client) whenever it is not sure
to see what MLflow would: a store that is not a plain ``sqlite:///`` file, a separate
``MLFLOW_REGISTRY_URI``, MLflow workspaces enabled, or tables and columns that are not the ones
read here. A store file not yet created holds no versions (MLflow would create it empty). It
applies MLflow's own filters: the default workspace, and no versions deleted (``current_stage =
'Deleted_Internal'``). A test holds its result equal to the client's on a real store.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import NamedTuple


class VersionRecord(NamedTuple):
    """One registered version's fields as MLflow stores them (creation time in epoch ms)."""

    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    created_ms: int
    tags: dict[str, str]


DEFAULT_WORKSPACE = "default"
DELETED_STAGE = "Deleted_Internal"
VERSIONS = """
SELECT v.name, v.version, v.creation_time, v.run_id
FROM model_versions v JOIN registered_models m ON m.name = v.name AND m.workspace = v.workspace
WHERE v.workspace = ? AND v.current_stage != ?
"""
TAGS = "SELECT name, version, key, value FROM model_version_tags WHERE workspace = ?"
ALIASES = "SELECT name, version, alias FROM registered_model_aliases WHERE workspace = ?"


def store_file(tracking_uri: str) -> Path | None:
    """Return the SQLite file of the registry at ``tracking_uri`` (it may not exist yet), or None
    when the registry is elsewhere or not a plain SQLite file (MLflow's client handles those)."""
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI")
    enabled = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower()
    if (registry_uri and registry_uri != tracking_uri) or enabled in ("true", "1"):
        return None
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or "?" in tracking_uri:
        return None
    return Path(tracking_uri.removeprefix(prefix))


def read_versions(tracking_uri: str) -> list[VersionRecord] | None:
    """Return every registered version (with its aliases and tags) in the SQLite store at
    ``tracking_uri``, or None when this reader cannot answer for MLflow (see the module
    docstring)."""
    path = store_file(tracking_uri)
    if path is None:
        return None
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            rows = db.execute(VERSIONS, (DEFAULT_WORKSPACE, DELETED_STAGE)).fetchall()
            tags: dict[tuple[str, str], dict[str, str]] = {}
            for name, version, key, value in db.execute(TAGS, (DEFAULT_WORKSPACE,)):
                tags.setdefault((name, str(version)), {})[key] = value
            aliases: dict[tuple[str, str], list[str]] = {}
            for name, version, alias in db.execute(ALIASES, (DEFAULT_WORKSPACE,)):
                aliases.setdefault((name, str(version)), []).append(alias)
    except sqlite3.Error:
        return None
    return [
        VersionRecord(
            name,
            str(version),
            sorted(aliases.get((name, str(version)), [])),
            run_id,
            created_ms,
            tags.get((name, str(version)), {}),
        )
        for name, version, created_ms, run_id in rows
    ]
