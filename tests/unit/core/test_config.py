import os
from pathlib import Path

import pytest

from prism.core.settings import (
    GateSettings,
    Settings,
    describe_settings,
    export_service_environment,
    mask_url,
)


def test_prism_variables_override_the_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("PRISM_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("PRISM_CAPITAL", "250000")

    settings = Settings()

    assert settings.home == tmp_path / "ws"
    assert settings.pgdata == tmp_path / "ws" / "postgres"
    assert settings.capital == 250_000.0


def test_a_database_password_is_masked_wherever_settings_are_shown(monkeypatch):
    monkeypatch.setenv("PRISM_DATABASE_URL", "postgresql://trader:s3cret@db:5432/prism")

    reports = {r.name: r for r in describe_settings(Settings(), GateSettings())}

    assert reports["database_url"].value == "postgresql://trader:***@db:5432/prism"
    assert reports["database_url"].source == "environment (PRISM_DATABASE_URL)"
    assert "s3cret" not in repr(Settings())


def test_values_from_a_dot_env_file_say_so(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRISM_GATE_MIN_SHARPE", raising=False)
    Path(".env").write_text("PRISM_GATE_MIN_SHARPE=1.5\n")

    reports = {r.name: r for r in describe_settings(Settings(), GateSettings())}

    assert reports["gate.min_sharpe"].value == 1.5
    assert reports["gate.min_sharpe"].source == ".env (PRISM_GATE_MIN_SHARPE)"


def test_mlflow_uses_the_sqlite_store_under_mlruns_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PRISM_MLRUNS_DIR", str(tmp_path))
    assert Settings().mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert Settings().mlflow_tracking_uri == "http://mlflow:5000"


def test_the_config_hash_ignores_secrets_but_follows_settings(monkeypatch):
    monkeypatch.setenv("PRISM_DATABASE_URL", "postgresql://u:one@h/db")
    first = Settings().config_hash()
    monkeypatch.setenv("PRISM_DATABASE_URL", "postgresql://u:two@h/db")
    assert Settings().config_hash() == first
    monkeypatch.setenv("PRISM_COMMISSION_BPS", "9")
    assert Settings().config_hash() != first


@pytest.mark.parametrize("url", ["postgresql://a:b@h/d", "postgresql+psycopg://a:b@h:1/d"])
def test_mask_url_hides_only_the_password(url):
    assert mask_url(url).count("***") == 1
    assert ":b@" not in mask_url(url)


def test_exporting_the_service_environment_creates_prefects_home(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    settings = Settings(home=tmp_path / "fresh")

    export_service_environment(settings)

    assert os.environ["PREFECT_HOME"] == str(tmp_path / "fresh" / "prefect")
    assert (tmp_path / "fresh" / "prefect").is_dir()
