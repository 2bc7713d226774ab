"""Initial schema: market data, trading state, audit, and the database's mode.

Runs on plain PostgreSQL; when TimescaleDB is available and preloaded (and not switched off by
``PRISM_TIMESCALEDB=off``; see :func:`prism.db.migrate.choose_mode`) it is enabled and
``market_data.ohlcv`` and ``trading.portfolio_snapshots`` become hypertables. The mode is
recorded once, here, in ``config.database_info``.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import context, op
from sqlalchemy import text

from prism.db.migrate import choose_mode

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS market_data;
CREATE SCHEMA IF NOT EXISTS trading;
CREATE SCHEMA IF NOT EXISTS audit;
CREATE SCHEMA IF NOT EXISTS config;

CREATE TABLE config.database_info (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE market_data.assets (
    symbol      text PRIMARY KEY,
    name        text NOT NULL,
    asset_class text NOT NULL DEFAULT 'equity_index',
    exchange    text,
    currency    text NOT NULL DEFAULT 'USD',
    calendar    text NOT NULL DEFAULT 'XNYS',
    active      boolean NOT NULL DEFAULT true
);

CREATE TABLE market_data.ohlcv (
    time        timestamptz NOT NULL,
    symbol      text NOT NULL,
    timeframe   text NOT NULL CHECK (timeframe IN ('1m', '5m', '1h', '1d')),
    open        double precision NOT NULL,
    high        double precision NOT NULL,
    low         double precision NOT NULL,
    close       double precision NOT NULL,
    volume      double precision NOT NULL,
    source      text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, timeframe, time)
);

CREATE TABLE market_data.quarantine (
    id          bigserial PRIMARY KEY,
    source      text NOT NULL,
    symbol      text,
    raw         jsonb NOT NULL,
    rule        text NOT NULL,
    reason      text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.accounts (
    deployment      text PRIMARY KEY,
    initial_capital numeric(20, 4) NOT NULL,
    cash            numeric(20, 4) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.orders (
    id                 bigserial PRIMARY KEY,
    client_order_id    text NOT NULL UNIQUE,
    deployment         text NOT NULL REFERENCES trading.accounts (deployment),
    symbol             text NOT NULL,
    side               text NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type         text NOT NULL DEFAULT 'market'
                       CHECK (order_type IN ('market', 'limit', 'stop_limit')),
    quantity           numeric(24, 8) NOT NULL CHECK (quantity > 0),
    limit_price        numeric(20, 6),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'sent', 'partial', 'filled',
                                         'cancelled', 'rejected')),
    broker             text NOT NULL,
    broker_order_id    text,
    strategy           text NOT NULL,
    model_name         text,
    model_version      text,
    decided_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    filled_quantity    numeric(24, 8) NOT NULL DEFAULT 0,
    average_fill_price numeric(20, 6),
    commission         numeric(20, 6) NOT NULL DEFAULT 0
);
CREATE INDEX orders_deployment_status ON trading.orders (deployment, status);

CREATE TABLE trading.fills (
    id         bigserial PRIMARY KEY,
    fill_id    text NOT NULL UNIQUE,
    order_id   bigint NOT NULL REFERENCES trading.orders (id),
    deployment text NOT NULL,
    time       timestamptz NOT NULL,
    symbol     text NOT NULL,
    side       text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity   numeric(24, 8) NOT NULL CHECK (quantity > 0),
    price      numeric(20, 6) NOT NULL CHECK (price > 0),
    commission numeric(20, 6) NOT NULL DEFAULT 0
);
CREATE INDEX fills_deployment_time ON trading.fills (deployment, time);

CREATE TABLE trading.positions (
    deployment    text NOT NULL REFERENCES trading.accounts (deployment),
    symbol        text NOT NULL,
    quantity      numeric(24, 8) NOT NULL,
    average_price numeric(20, 6) NOT NULL DEFAULT 0,
    realized_pnl  numeric(20, 4) NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment, symbol)
);

CREATE TABLE trading.portfolio_snapshots (
    time           timestamptz NOT NULL,
    deployment     text NOT NULL,
    cash           numeric(20, 4) NOT NULL,
    market_value   numeric(20, 4) NOT NULL,
    equity         numeric(20, 4) NOT NULL,
    gross_exposure numeric(20, 4) NOT NULL,
    net_exposure   numeric(20, 4) NOT NULL,
    PRIMARY KEY (deployment, time)
);

CREATE TABLE audit.decisions (
    id              bigserial,
    time            timestamptz NOT NULL,
    deployment      text NOT NULL,
    decision_type   text NOT NULL,
    symbol          text NOT NULL,
    model_name      text,
    model_version   text,
    signals         jsonb NOT NULL DEFAULT '{}'::jsonb,
    risk_check      jsonb NOT NULL DEFAULT '{}'::jsonb,
    action          text NOT NULL,
    reasoning       text NOT NULL,
    client_order_id text,
    PRIMARY KEY (deployment, time, symbol, decision_type)
);
"""

HYPERTABLES = {
    "market_data.ohlcv": "time",
    "trading.portfolio_snapshots": "time",
}


def upgrade() -> None:
    settings = context.config.attributes.get("settings")
    setting = settings.timescaledb if settings is not None else "auto"
    mode = choose_mode(op.get_bind(), setting)
    op.execute(SCHEMA)
    if mode == "timescaledb":
        op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for table, column in HYPERTABLES.items():
            op.execute(
                f"SELECT create_hypertable('{table}', by_range('{column}'), migrate_data => true)"
            )
    op.execute(
        text("INSERT INTO config.database_info (key, value) VALUES ('mode', :mode)").bindparams(
            mode=mode
        )
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS audit, trading, market_data, config CASCADE")
