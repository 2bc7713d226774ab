"""Typed settings read from ``PRISM_*`` environment variables and an optional ``.env`` file.

Nothing here connects to anything: settings are plain values, resolved once per process by
:func:`load_settings`. ``describe_settings`` reports each value and where it came from, which is
what ``prism config`` prints.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

import prism


def project_root() -> Path:
    """Return the checkout Prism runs from: the folder holding ``pyproject.toml``.

    Anchored on the installed package (an editable install in ``.venv``), so notebooks run by
    papermill from ``notebooks/`` resolve the same workspace as the CLI does.
    """
    package_parent = Path(prism.__file__).resolve().parent.parent
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return Path.cwd()


ENV_FILES = (project_root() / ".env", Path(".env"))
"""The checkout's ``.env``, then one in the working directory (which wins)."""


class GateSettings(BaseSettings):
    """Thresholds a run must meet before its model may become ``challenger`` or ``champion``.

    The values live in the versioned gates file (``research/gates.toml``, see
    :mod:`prism.registry.gates`); a ``PRISM_GATE_*`` variable still overrides one for a session, and
    the approval record then names the override.
    """

    model_config = SettingsConfigDict(env_prefix="PRISM_GATE_", env_file=ENV_FILES, extra="ignore")

    min_sharpe: float = Field(
        0.3, description="lowest annualised out-of-sample Sharpe ratio accepted (oos_sharpe)"
    )
    max_drawdown: float = Field(
        0.35, description="largest peak-to-trough loss accepted (0.35 = 35%; max_drawdown)"
    )
    min_trades: int = Field(
        5, description="fewest trades a backtest must make to be judged (n_trades)"
    )
    min_deflated_sharpe: float = Field(
        0.5,
        description="lowest deflated Sharpe ratio of the out-of-sample segment given the "
        "experiment's trials (probability the Sharpe beats the best of that many lucky tries)",
    )
    require_lookahead_check: bool = Field(
        True, description="the run's look-ahead check must have passed (prism.lookahead_check)"
    )
    require_parity_check: bool = Field(
        True, description="the run's backtest/live parity check must pass (prism.parity_check)"
    )


class Settings(BaseSettings):
    """Prism's configuration. Every field maps to ``PRISM_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PRISM_", env_file=ENV_FILES, extra="ignore")

    home: Path = Field(
        default_factory=lambda: project_root() / ".prism",
        description="workspace: embedded PostgreSQL data and Prefect's home",
    )
    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL; unset means the embedded server under the workspace"
    )
    timescaledb: Literal["auto", "on", "off"] = Field(
        "auto",
        description="TimescaleDB mode for a new database: auto (when the server has the "
        "extension preloaded), on (required: fail otherwise), off (plain PostgreSQL mode)",
    )
    feature_dir: Path = Field(
        default_factory=lambda values: values["home"] / "features",
        description="Parquet feature store (default: features/ under the workspace)",
    )
    mlruns_dir: Path = Field(
        default_factory=lambda: project_root() / "mlruns",
        description="local MLflow store (SQLite tracking database and artifacts)",
    )
    dask_address: str | None = Field(
        None, description="Dask scheduler for parameter sweeps; unset means threads here"
    )
    experiment: str = Field(
        "prism-research",
        description="MLflow experiment of runs started outside a notebook (notebooks: their own)",
    )
    model_name: str = Field("prism-strategy", description="registered model the runner trades")
    gates_file: Path = Field(
        default_factory=lambda: project_root() / "research" / "gates.toml",
        description="the versioned promotion gates file (thresholds, version)",
    )
    deployment: str = Field("demo", description="name of the live deployment (paper account)")
    capital: float = Field(1_000_000.0, description="starting equity of a paper account")
    commission_bps: float = Field(1.0, description="commission per trade, basis points of notional")
    commission_per_share: float = Field(0.0, description="commission per share traded")
    slippage_bps: float = Field(2.0, description="slippage per trade, basis points of price")
    runner_stale_intervals: int = Field(
        5,
        description="no trading once this many bars the trading calendar expected are missing "
        "(nights, weekends and holidays expect none)",
    )
    runner_db_attempts: int = Field(
        4, description="tries of a trade cycle when the database is unreachable, then a halt"
    )
    runner_db_backoff_seconds: float = Field(
        1.0, description="wait after the first failed try of a cycle; doubles with each try"
    )
    runner_cycle_seconds: float = Field(
        60.0, description="how often `prism runner serve` runs each deployment's trade_cycle"
    )
    runner_ingest_seconds: float = Field(
        60.0, description="how often `prism runner serve` ingests and heals bars"
    )
    runner_stop_seconds: float = Field(
        60.0,
        description="on Ctrl-C or SIGTERM, how long `prism runner serve` lets running flow runs "
        "finish before cancelling them",
    )
    compress_1m: str = Field("1 month", description="compress 1m bars older than this")
    retention_1m: str = Field("6 months", description="keep 1m bars this long ('forever': all)")
    compress_5m: str = Field("3 months", description="compress 5m bars older than this")
    retention_5m: str = Field("2 years", description="keep 5m bars this long ('forever': all)")
    compress_1h: str = Field("6 months", description="compress 1h bars older than this")
    retention_1h: str = Field("5 years", description="keep 1h bars this long ('forever': all)")
    compress_1d: str = Field("1 year", description="compress 1d bars older than this")
    retention_1d: str = Field("forever", description="keep 1d bars this long ('forever': all)")
    alert_urls: SecretStr | None = Field(
        None,
        description="apprise URLs alerts go to, comma separated (tgram://, mailto://, slack://, "
        "discord://, json://); unset: alerts are only written to audit.system_events",
    )
    alert_window_seconds: float = Field(
        300.0, description="an alert of one kind for one deployment/symbol goes out once per window"
    )
    alert_max_per_window: int = Field(
        20, description="most alerts sent per window; critical alerts always go out"
    )
    alert_attempts: int = Field(
        3, description="tries per alert URL before the alert counts as failed"
    )
    alert_backoff_seconds: float = Field(
        1.0, description="wait before the second try of an alert URL; doubles with each try"
    )
    alert_delivery_seconds: float = Field(
        15.0, description="how often the deliver_alerts flow sends the alert outbox's due rows"
    )
    alert_outbox_keep_days: float = Field(
        30.0,
        gt=0,
        description="maintenance deletes outbox rows delivered, suppressed or failed this many "
        "days ago (the alert itself stays in audit.system_events)",
    )
    ccxt_api_key: SecretStr | None = Field(
        None, description="API key of the ccxt broker's exchange"
    )
    ccxt_secret: SecretStr | None = Field(
        None, description="API secret of the ccxt broker's exchange"
    )
    ccxt_sandbox: bool = Field(
        True, description="trade on the exchange's sandbox (testnet) where it has one"
    )
    alpaca_key_id: SecretStr | None = Field(None, description="Alpaca API key id")
    alpaca_secret_key: SecretStr | None = Field(None, description="Alpaca API secret key")
    alpaca_paper: bool = Field(True, description="trade Alpaca's paper account, not the live one")
    dashboard_database_url: SecretStr | None = Field(
        None,
        description="URL the dashboard reads through (a read-only login); unset: the main "
        "database's server, logged in as dashboard_role with reader_password",
    )
    dashboard_role: str = Field(
        "prism_reader", description="read-only login role the dashboard connects as"
    )
    reader_password: SecretStr | None = Field(
        None,
        description="password of the read-only login dashboard_role; unset: one generated "
        "into the workspace (reader.password) when the schema is migrated",
    )
    runner_role: str = Field(
        "prism_runner",
        description="login the live runner's flows trade as (only the writes of a trade "
        "cycle); empty: the runner uses the main database URL",
    )
    runner_password: SecretStr | None = Field(
        None,
        description="password of runner_role; unset: one generated into the workspace "
        "(runner.password) when the schema is migrated",
    )
    dashboard_auth: str = Field(
        "none", description="dashboard login: none, password (dashboard_password) or oidc"
    )
    dashboard_password: SecretStr | None = Field(
        None, description="password the dashboard asks for when dashboard_auth=password"
    )
    dashboard_login_attempts: int = Field(
        5, ge=1, description="failed dashboard logins a client may make per window"
    )
    dashboard_login_window_seconds: float = Field(
        300.0, gt=0, description="seconds over which failed dashboard logins are counted"
    )
    dashboard_cache_ttl: float = Field(30.0, description="seconds a dashboard query is cached")
    dashboard_refresh: float = Field(60.0, description="seconds between dashboard auto-refreshes")
    dashboard_benchmark: str = Field(
        "SPX", description="symbol the equity curve is compared with on the dashboard"
    )
    api_host: str = Field("127.0.0.1", description="address `prism api` listens on")
    api_port: int = Field(8000, ge=1, le=65535, description="port `prism api` listens on")
    api_signing_keys: SecretStr | None = Field(
        None,
        description="API token signing keys, 'kid:secret' comma separated: the first signs, "
        "the others still verify tokens until they expire (rotation); unset: one generated "
        "into the workspace (api-signing.key)",
    )
    api_token_minutes: float = Field(
        60.0, gt=0, description="lifetime of an API access token (JWT), minutes"
    )
    api_rate_per_minute: int = Field(
        120, ge=1, description="API requests one key or user may make per minute (then 429)"
    )
    api_cors_origins: str = Field(
        "", description="origins the API allows cross-site, comma separated; empty: CORS off"
    )
    api_backtest_max_bars: int = Field(
        50_000, ge=1, description="most bars a synchronous API backtest may run over"
    )
    api_upload_max_mb: float = Field(
        256.0, gt=0, description="largest file POST /data/ingest accepts, MB (then 413)"
    )
    api_stream_queue: int = Field(
        256, ge=1, description="messages queued per WebSocket client before it is dropped"
    )
    api_job_workers: int = Field(
        2, ge=1, description="API background jobs (backtests, notebook runs, sweeps) run at once"
    )
    api_notebook_dir: Path = Field(
        default_factory=lambda: project_root() / "notebooks",
        description="folder whose notebooks the API may run (by name; no other path)",
    )
    api_ready_timeout: float = Field(
        2.0, gt=0, description="seconds /ready waits for each dependency before calling it failed"
    )
    api_ready_outbox_max: int = Field(
        100, ge=0, description="undelivered alerts in the outbox above which /ready fails"
    )

    @property
    def mlflow_tracking_uri(self) -> str:
        """Return ``MLFLOW_TRACKING_URI`` when set, else the SQLite store under ``mlruns/``."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlruns_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_uri(self) -> str:
        """Return where new experiments keep their artifacts (a ``file://`` URI)."""
        return (self.mlruns_dir / "artifacts").resolve().as_uri()

    @property
    def pgdata(self) -> Path:
        """Return the embedded PostgreSQL data folder."""
        return self.home / "postgres"

    @property
    def prefect_home(self) -> Path:
        """Return Prefect's home (its local SQLite database and settings)."""
        return self.home / "prefect"

    def config_hash(self) -> str:
        """Return a short hash of the non-secret settings, to tag runs with what produced them."""
        payload = json.dumps(public_values(self), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def load_settings() -> Settings:
    """Return the settings of this process (environment, then ``.env``, then defaults)."""
    return Settings()


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (by ``urllib``, so that ``prism
    config`` does not import SQLAlchemy)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def mask_secret(name: str, secret: SecretStr) -> str:
    """Return what ``prism config`` may show of a secret setting: a URL without its password,
    the schemes of alert URLs (their tokens sit in the host part), nothing of a key."""
    value = secret.get_secret_value()
    if name == "database_url":
        return mask_url(value)
    if name == "alert_urls":
        schemes = [url.split("://", 1)[0] for url in value.split(",") if url.strip()]
        return ", ".join(f"{scheme.strip()}://***" for scheme in schemes)
    return "***"


def public_values(settings: Settings) -> dict[str, Any]:
    """Return the settings as plain values, secrets masked."""
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = mask_secret(name, value)
        values[name] = str(value) if isinstance(value, Path) else value
    return values


@dataclass(frozen=True)
class SettingReport:
    """One line of ``prism config``: a setting, its value, and where the value came from."""

    name: str
    value: Any
    source: str
    description: str


def _source_of(env_name: str) -> str:
    if env_name in os.environ:
        return f"environment ({env_name})"
    for env_file in reversed(ENV_FILES):
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                if line.split("=", 1)[0].strip() == env_name:
                    return f".env ({env_name})"
    return "default"


def describe_settings(
    settings: Settings,
    gates: GateSettings,
    gate_source: Callable[[str], str] = lambda name: "default",
) -> list[SettingReport]:
    """Return every effective setting with its source, secrets masked. ``gate_source`` names
    where a gate's value comes from when no ``PRISM_GATE_*`` variable sets it (the gates file,
    which :mod:`prism.registry.gates` reads)."""
    reports = []
    for name, value in public_values(settings).items():
        field = Settings.model_fields[name]
        if name == "database_url" and value is None:
            value = "(embedded PostgreSQL under the workspace)"
        reports.append(
            SettingReport(name, value, _source_of(f"PRISM_{name.upper()}"), field.description or "")
        )
    tracking_source = (
        "environment (MLFLOW_TRACKING_URI)"
        if "MLFLOW_TRACKING_URI" in os.environ
        else "default (mlruns_dir)"
    )
    reports.append(
        SettingReport(
            "mlflow_tracking_uri",
            settings.mlflow_tracking_uri,
            tracking_source,
            "where MLflow runs and the registry live",
        )
    )
    for name, field in GateSettings.model_fields.items():
        source = _source_of(f"PRISM_GATE_{name.upper()}")
        if source == "default":
            source = gate_source(name)
        reports.append(
            SettingReport(f"gate.{name}", getattr(gates, name), source, field.description or "")
        )
    return reports


def service_environment(settings: Settings) -> dict[str, str]:
    """Return the environment variables MLflow and Prefect need to stay local and offline."""
    return {
        "PREFECT_HOME": str(settings.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
    }


def export_service_environment(settings: Settings | None = None) -> None:
    """Set :func:`service_environment` in this process, keeping values the user already set,
    and create the Prefect home it names (Prefect's SQLite database cannot be opened in a
    folder that does not exist)."""
    for key, value in service_environment(settings or load_settings()).items():
        os.environ.setdefault(key, value)
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
