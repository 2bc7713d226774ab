"""The rest of the platform schema: signals, risk snapshots, the model registry's mirror,
deployments and risk limits, system events, and the 1h/1d rollups of 1-minute bars.

What 0001-0003 already create is left as it is. ``trading.orders`` keeps its text columns
with CHECK constraints for status, side and type (they already refuse any value outside the
enumerations, and the ledger's ``CASE ... THEN 'filled'`` updates would fail against a
PostgreSQL enum); it gains ``stop_price`` for stop-limit orders. ``audit.system_events`` is new,
so its severity is a real enum, ``audit.event_severity``.

On TimescaleDB (the mode recorded by 0001) signals and risk snapshots become hypertables and
the rollups are continuous aggregates with refresh policies; on plain PostgreSQL they are
materialized views over ``date_bin`` with unique indexes, so ``REFRESH ... CONCURRENTLY``
works. Compression and retention depend on settings, so :mod:`prism.db.rollups` applies them
at run time rather than here.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from alembic import op
from sqlalchemy import text

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = """
CREATE SCHEMA IF NOT EXISTS models;

ALTER TABLE trading.orders ADD COLUMN stop_price numeric(20, 6);

CREATE TABLE trading.signals (
    time          timestamptz NOT NULL,
    deployment    text NOT NULL,
    symbol        text NOT NULL,
    strategy      text NOT NULL,
    model_name    text,
    model_version text,
    value         double precision NOT NULL,
    target_weight double precision,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, symbol, time)
);

CREATE TABLE trading.risk_snapshots (
    time                      timestamptz NOT NULL,
    deployment                text NOT NULL,
    gross_exposure            numeric(20, 4) NOT NULL,
    net_exposure              numeric(20, 4) NOT NULL,
    value_at_risk             double precision,
    conditional_value_at_risk double precision,
    confidence                double precision NOT NULL DEFAULT 0.95
                              CHECK (confidence > 0 AND confidence < 1),
    drawdown                  double precision NOT NULL DEFAULT 0 CHECK (drawdown >= 0),
    limit_utilization         jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (deployment, time)
);

CREATE TABLE models.versions (
    model_name    text NOT NULL,
    version       text NOT NULL,
    alias         text,
    mlflow_run_id text NOT NULL,
    approved_by   text,
    approved_at   timestamptz,
    gate_results  jsonb NOT NULL DEFAULT '[]'::jsonb,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version)
);
CREATE UNIQUE INDEX versions_one_version_per_alias
    ON models.versions (model_name, alias) WHERE alias IS NOT NULL;

CREATE TABLE config.strategies (
    deployment  text PRIMARY KEY,
    strategy    text NOT NULL,
    model_name  text,
    model_alias text NOT NULL DEFAULT 'champion',
    symbols     text[] NOT NULL CHECK (cardinality(symbols) > 0),
    timeframe   text NOT NULL CHECK (timeframe IN ('1m', '5m', '1h', '1d')),
    capital     numeric(20, 4) NOT NULL CHECK (capital > 0),
    enabled     boolean NOT NULL DEFAULT true,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config.risk_limits (
    key         text PRIMARY KEY,
    value       double precision NOT NULL,
    description text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL
);

CREATE TYPE audit.event_severity AS ENUM ('info', 'warning', 'error', 'critical');

CREATE TABLE audit.system_events (
    id         bigserial PRIMARY KEY,
    time       timestamptz NOT NULL DEFAULT now(),
    event_type text NOT NULL,
    severity   audit.event_severity NOT NULL,
    component  text NOT NULL,
    message    text NOT NULL,
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX system_events_time ON audit.system_events (time DESC);
CREATE INDEX system_events_severity_time ON audit.system_events (severity, time DESC);
"""

HYPERTABLES = ("trading.signals", "trading.risk_snapshots")

ROLLUPS = {"ohlcv_1h": "1 hour", "ohlcv_1d": "1 day"}

REFRESH_POLICIES = {
    "ohlcv_1h": ("3 days", "1 hour", "30 minutes"),
    "ohlcv_1d": ("7 days", "1 day", "1 hour"),
}
"""start_offset, end_offset and schedule_interval of each continuous aggregate's policy."""

PLAIN_ROLLUP = """
CREATE MATERIALIZED VIEW market_data.{name} AS
SELECT symbol,
       date_bin('{width}', time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time,
       (array_agg(open ORDER BY time))[1] AS open,
       max(high) AS high,
       min(low) AS low,
       (array_agg(close ORDER BY time DESC))[1] AS close,
       sum(volume) AS volume,
       count(*) AS bars
FROM market_data.ohlcv
WHERE timeframe = '1m'
GROUP BY 1, 2;
CREATE UNIQUE INDEX {name}_symbol_time ON market_data.{name} (symbol, time);
"""

TIMESCALE_ROLLUP = """
CREATE MATERIALIZED VIEW market_data.{name} WITH (timescaledb.continuous) AS
SELECT symbol,
       time_bucket(INTERVAL '{width}', time) AS time,
       first(open, time) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, time) AS close,
       sum(volume) AS volume,
       count(*) AS bars
FROM market_data.ohlcv
WHERE timeframe = '1m'
GROUP BY symbol, time_bucket(INTERVAL '{width}', time)
WITH NO DATA;
"""

TIMESCALE_RETENTION_JOB = """
CREATE PROCEDURE market_data.delete_old_bars(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM market_data.ohlcv
    WHERE timeframe = config ->> 'timeframe'
      AND time < now() - CAST(config ->> 'keep' AS interval);
END
$$;
"""
"""A user-defined action: TimescaleDB's own retention drops whole chunks of every timeframe,
but each timeframe of market_data.ohlcv keeps its bars for a different time."""


def _mode() -> str:
    return str(
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )


def _create_timescale_objects() -> None:
    for table in HYPERTABLES:
        op.execute(f"SELECT create_hypertable('{table}', by_range('time'), migrate_data => true)")
    for name, width in ROLLUPS.items():
        op.execute(TIMESCALE_ROLLUP.format(name=name, width=width))
        start, end, every = REFRESH_POLICIES[name]
        op.execute(
            f"SELECT add_continuous_aggregate_policy('market_data.{name}', "
            f"start_offset => INTERVAL '{start}', end_offset => INTERVAL '{end}', "
            f"schedule_interval => INTERVAL '{every}')"
        )
    op.execute(TIMESCALE_RETENTION_JOB)


def upgrade() -> None:
    op.execute(TABLES)
    if _mode() == "timescaledb":
        _create_timescale_objects()
    else:
        for name, width in ROLLUPS.items():
            op.execute(PLAIN_ROLLUP.format(name=name, width=width))


def downgrade() -> None:
    if _mode() == "timescaledb":
        op.execute(
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs "
            "WHERE proc_schema = 'market_data' AND proc_name = 'delete_old_bars'"
        )
        op.execute("DROP PROCEDURE IF EXISTS market_data.delete_old_bars(integer, jsonb)")
    for name in reversed(ROLLUPS):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS market_data.{name} CASCADE")
    op.execute(
        """
        DROP TABLE audit.system_events;
        DROP TYPE audit.event_severity;
        DROP TABLE config.risk_limits;
        DROP TABLE config.strategies;
        DROP SCHEMA models CASCADE;
        DROP TABLE trading.risk_snapshots;
        DROP TABLE trading.signals;
        ALTER TABLE trading.orders DROP COLUMN stop_price;
        """
    )
