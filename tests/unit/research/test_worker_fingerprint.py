"""The research worker's fingerprint (``prism.research.worker.fingerprint``) changes with what a
running worker would otherwise hold stale (a source file, a setting, the directory) and not
with what does not change its behaviour (whether to use the worker, the service variables a run
sets itself, the tracking URI MLflow exports)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prism.core.settings import Settings, service_environment
from prism.research import worker


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with one strategy module under research/, as the fingerprint's root."""
    (tmp_path / "prism").mkdir()
    (tmp_path / "research").mkdir()
    (tmp_path / "research" / "mine.py").write_text("VALUE = 1\n")
    monkeypatch.setattr(worker, "project_root", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(worker.ENVIRONMENT_PREFIXES)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PRISM_HOME", str(tmp_path / "home"))
    return tmp_path


def test_an_edited_or_added_source_file_changes_the_fingerprint(checkout: Path) -> None:
    settings = Settings()
    first = worker.fingerprint(settings)
    module = checkout / "research" / "mine.py"
    module.write_text("VALUE = 22\n")
    edited = worker.fingerprint(settings)
    (checkout / "prism" / "new.py").write_text("")

    assert len({first, edited, worker.fingerprint(settings)}) == 3


def test_settings_environment_and_directory_change_it(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    first = worker.fingerprint(settings)
    monkeypatch.setenv("PRISM_COMMISSION_BPS", "3")
    setting = worker.fingerprint(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    tracking = worker.fingerprint(settings)
    (checkout / ".env").write_text("PRISM_SLIPPAGE_BPS=4\n")
    env_file = worker.fingerprint(settings)
    other = checkout / "other"
    other.mkdir()

    assert len({first, setting, tracking, env_file, worker.fingerprint(settings, other)}) == 5


def test_the_worker_switch_and_a_runs_own_service_variables_do_not(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings()
    first = worker.fingerprint(settings)
    monkeypatch.setenv("PRISM_RESEARCH_WORKER", "false")
    switched = worker.fingerprint(settings)
    for name, value in service_environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "7")

    assert first == switched == worker.fingerprint(settings)
