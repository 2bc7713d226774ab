"""Integer prices: bars store ``open_units ... close_units bigint`` and ``price_decimals
smallint`` (price = units / 10^decimals) instead of four float8 prices, so that TimescaleDB
compresses them with its integer encodings (see :mod:`prism.db.bars`).

- Each timeframe's bars move into a new table ``market_data.bars_<tf>_store`` (a hypertable with
  the timeframe's chunk interval on TimescaleDB), converted with the fewest decimals (0..8) that
  represent every price of the symbol; compressed chunks are read transparently. The old tables
  are dropped and ``market_data.bars_<tf>`` become views computing the float8 prices, under
  ``market_data.ohlcv`` as before: readers are unchanged.
- ``market_data.price_decimals`` and ``market_data.price_scale_limit`` compute, in SQL, what
  :func:`prism.db.bars.decimals_needed` does in Python; the ``INSTEAD OF`` trigger on
  ``market_data.ohlcv`` uses them to convert each row written into the view.
- The API's stream trigger fires on the new tables and sends the same float prices.
- TimescaleDB: the 1h continuous aggregate is rebuilt on ``bars_1m_store`` (aggregating the
  float prices, so the rollups keep float8 columns) and the 1d one on it again; every bucket
  both held is carried into the new materializations, including buckets that outlived the 1m
  retention (like 0020 did). The retention job deletes from the new tables, and compression,
  retention and refresh jobs are reinstalled from the settings.
- Grants: the runner's login inserts and updates the new tables (and the view, as before), the
  read-only and runner logins read the new tables and views.

Plain PostgreSQL gets the same tables and views; its rollup tables are untouched.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from alembic import context, op
from sqlalchemy import text

from prism.core.settings import load_settings
from prism.db.bars import CHUNK_INTERVALS, PRICES, bars_storage, bars_table, price_sql
from prism.db.rollups import configured_policies, install_timescale_policies

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

RUNNER = "prism_runner"
READER = "prism_reader"
HOURLY = "market_data.ohlcv_1h"
DAILY = "market_data.ohlcv_1d"
ROLLUP_COLUMNS = "symbol, time, open, high, low, close, volume, bars"
COLUMNS = (
    "time",
    "symbol",
    "timeframe",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "source",
    "ingested_at",
    "review",
)
UNITS = tuple(f"{p}_units" for p in PRICES)

FUNCTIONS = """
CREATE FUNCTION market_data.price_decimals(price float8) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CAST(coalesce(min(d), 8) AS smallint) FROM generate_series(0, 8) AS d
    WHERE abs(round(abs(price) * power(10::float8, d)) / power(10::float8, d) - abs(price))
          <= abs(price) * power(2::float8, -51)
$$;
COMMENT ON FUNCTION market_data.price_decimals(float8) IS
    'Fewest decimals (0..8) representing the price within float round-off (8 if none does).';
CREATE FUNCTION market_data.price_scale_limit(price float8) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CAST(count(*) AS smallint) FROM generate_series(1, 8) AS d
    WHERE abs(price) * power(10::float8, d) <= power(2::float8, 53)
$$;
COMMENT ON FUNCTION market_data.price_scale_limit(float8) IS
    'Most decimals (0..8) whose units of the price stay exact integers.';
"""

ROUTE = """
CREATE OR REPLACE FUNCTION market_data.route_bar() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    decimals smallint;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format('DELETE FROM market_data.%I WHERE symbol = $1 AND time = $2',
                       'bars_' || OLD.timeframe || '_store') USING OLD.symbol, OLD.time;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    IF NEW.timeframe NOT IN ('1m', '5m', '1h', '1d') THEN
        RAISE EXCEPTION 'unknown timeframe %: expected 1m, 5m, 1h or 1d', NEW.timeframe
            USING ERRCODE = 'check_violation';
    END IF;
    IF greatest(abs(NEW.open), abs(NEW.high), abs(NEW.low), abs(NEW.close))
       >= power(2::float8, 63) THEN
        RAISE EXCEPTION 'price % cannot be stored: prices are stored as integer units',
            greatest(abs(NEW.open), abs(NEW.high), abs(NEW.low), abs(NEW.close))
            USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    NEW.ingested_at := coalesce(NEW.ingested_at, now());
    decimals := least(
        greatest(market_data.price_decimals(NEW.open), market_data.price_decimals(NEW.high),
                 market_data.price_decimals(NEW.low), market_data.price_decimals(NEW.close)),
        least(market_data.price_scale_limit(NEW.open), market_data.price_scale_limit(NEW.high),
              market_data.price_scale_limit(NEW.low), market_data.price_scale_limit(NEW.close)));
    EXECUTE format('INSERT INTO market_data.%I (time, symbol, timeframe, open_units, high_units, '
                   'low_units, close_units, price_decimals, volume, source, ingested_at, review) '
                   'VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)',
                   'bars_' || NEW.timeframe || '_store')
        USING NEW.time, NEW.symbol, NEW.timeframe,
              CAST(round(NEW.open * power(10::float8, decimals)) AS bigint),
              CAST(round(NEW.high * power(10::float8, decimals)) AS bigint),
              CAST(round(NEW.low * power(10::float8, decimals)) AS bigint),
              CAST(round(NEW.close * power(10::float8, decimals)) AS bigint),
              decimals, NEW.volume, NEW.source, NEW.ingested_at, NEW.review;
    RETURN NEW;
END
$$;
"""

OLD_ROUTE = """
CREATE OR REPLACE FUNCTION market_data.route_bar() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format('DELETE FROM market_data.%I WHERE symbol = $1 AND time = $2',
                       'bars_' || OLD.timeframe) USING OLD.symbol, OLD.time;
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
    END IF;
    IF NEW.timeframe NOT IN ('1m', '5m', '1h', '1d') THEN
        RAISE EXCEPTION 'unknown timeframe %: expected 1m, 5m, 1h or 1d', NEW.timeframe
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.ingested_at := coalesce(NEW.ingested_at, now());
    EXECUTE format('INSERT INTO market_data.%I SELECT ($1).*', 'bars_' || NEW.timeframe)
        USING NEW;
    RETURN NEW;
END
$$;
"""

TRIGGER = """
CREATE TRIGGER route_bar INSTEAD OF INSERT OR UPDATE OR DELETE ON market_data.ohlcv
FOR EACH ROW EXECUTE FUNCTION market_data.route_bar();
"""

NOTIFY = """
CREATE OR REPLACE FUNCTION trading.notify_api() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := TG_ARGV[0];
    payload jsonb;
BEGIN
    IF channel = 'orders' THEN
        payload := jsonb_build_object('id', NEW.id, 'client_order_id', NEW.client_order_id,
            'deployment', NEW.deployment, 'symbol', NEW.symbol, 'side', NEW.side,
            'quantity', NEW.quantity, 'status', NEW.status);
    ELSIF channel = 'fills' THEN
        payload := jsonb_build_object('id', NEW.id, 'fill_id', NEW.fill_id,
            'order_id', NEW.order_id, 'deployment', NEW.deployment, 'time', NEW.time,
            'symbol', NEW.symbol, 'side', NEW.side, 'quantity', NEW.quantity,
            'price', NEW.price, 'commission', NEW.commission);
    ELSIF channel = 'bars' THEN
        payload := jsonb_build_object('time', NEW.time, 'symbol', NEW.symbol,
            'timeframe', NEW.timeframe, {prices},
            'volume', NEW.volume, 'source', NEW.source);
    ELSE
        IF NEW.metadata ? 'alert' THEN
            channel := 'alerts';
        END IF;
        payload := jsonb_build_object('id', NEW.id, 'time', NEW.time,
            'event_type', NEW.event_type, 'severity', NEW.severity,
            'component', NEW.component, 'message', left(NEW.message, 2000),
            'symbol', NEW.metadata->>'symbol', 'deployment', NEW.metadata->>'deployment');
    END IF;
    PERFORM pg_notify('prism_' || channel, payload::text);
    RETURN NULL;
END $$;
"""
NEW_PRICES = ", ".join(
    f"'{p}', {price_sql(f'NEW.{p}_units', 'NEW.price_decimals')}" for p in PRICES
)
OLD_PRICES = ", ".join(f"'{p}', NEW.{p}" for p in PRICES)

NOTIFY_TRIGGER = """
CREATE TRIGGER notify_api AFTER INSERT ON {table}
FOR EACH ROW WHEN (NEW.time > now() - interval '2 days')
EXECUTE FUNCTION trading.notify_api('bars')
"""

RETENTION_JOB = """
CREATE OR REPLACE PROCEDURE market_data.delete_old_bars(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - CAST(config ->> 'keep' AS interval);
BEGIN
    INSERT INTO config.database_info AS info (key, value)
    VALUES ('retention_cutoff_' || (config ->> 'timeframe'), CAST(cutoff AS text))
    ON CONFLICT (key) DO UPDATE SET value = CASE
        WHEN CAST(EXCLUDED.value AS timestamptz) > CAST(info.value AS timestamptz)
        THEN EXCLUDED.value ELSE info.value END;
    EXECUTE format('DELETE FROM market_data.%I WHERE time < $1',
                   'bars_' || (config ->> 'timeframe') || '{suffix}') USING cutoff;
END
$$;
"""

HOURLY_AGGREGATE = """
CREATE MATERIALIZED VIEW market_data.ohlcv_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 hour', time) AS time,
       first({open}, time) AS open,
       max({high}) AS high,
       min({low}) AS low,
       last({close}, time) AS close,
       sum(volume) AS volume,
       count(*) AS bars
FROM {table}
WHERE timeframe = '1m'
GROUP BY symbol, time_bucket(INTERVAL '1 hour', time)
WITH NO DATA
"""

DAILY_AGGREGATE = """
CREATE MATERIALIZED VIEW market_data.ohlcv_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 day', time) AS time,
       first(open, time) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, time) AS close,
       sum(volume) AS volume,
       CAST(sum(bars) AS bigint) AS bars
FROM market_data.ohlcv_1h
GROUP BY symbol, time_bucket(INTERVAL '1 day', time)
WITH NO DATA
"""

MATERIALIZATION = """
SELECT quote_ident(materialization_hypertable_schema) || '.'
       || quote_ident(materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates
WHERE view_schema = 'market_data' AND view_name = :name
"""


def _timescale() -> bool:
    mode = (
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )
    return mode == "timescaledb"


def _role_exists(role: str) -> bool:
    return bool(
        op.get_bind()
        .execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        .scalar()
    )


def _ohlcv_view() -> str:
    branches = []
    for timeframe in CHUNK_INTERVALS:
        columns = [c if c != "timeframe" else f"text '{timeframe}' AS timeframe" for c in COLUMNS]
        branches.append(f"SELECT {', '.join(columns)} FROM {bars_table(timeframe)}")
    return "CREATE VIEW market_data.ohlcv AS\n" + "\nUNION ALL\n".join(branches)


def _price_view(timeframe: str) -> str:
    columns = [price_sql(f"{c}_units") + f" AS {c}" if c in PRICES else c for c in COLUMNS]
    return (
        f"CREATE VIEW {bars_table(timeframe)} AS SELECT {', '.join(columns)} "
        f"FROM {bars_storage(timeframe)}"
    )


def _create_table(table: str, timeframe: str, prices: str, timescale: bool) -> None:
    """Create a bar table with ``prices`` as its price columns' SQL, as 0001/0004/0019 did."""
    name = table.split(".")[1]
    op.execute(
        f"""
        CREATE TABLE {table} (
            time        timestamptz NOT NULL,
            symbol      text NOT NULL,
            timeframe   text NOT NULL CONSTRAINT {name}_timeframe CHECK (timeframe = '{timeframe}'),
            {prices},
            volume      double precision NOT NULL,
            source      text NOT NULL,
            ingested_at timestamptz NOT NULL DEFAULT now(),
            review      text,
            PRIMARY KEY (symbol, timeframe, time)
        );
        CREATE INDEX {name}_flagged_idx ON {table} (symbol, timeframe, time)
            WHERE review IS NOT NULL;
        """
    )
    if timescale:
        op.execute(
            f"SELECT create_hypertable('{table}', by_range('time', "
            f"INTERVAL '{CHUNK_INTERVALS[timeframe]}'))"
        )


def _carry_rollups() -> None:
    """Keep every materialized bucket of both continuous aggregates in temporary tables and drop
    them. The materializations are read, not the views: a bucket carried in by 0020 in the same
    upgrade is not yet below the aggregate's watermark and the view would not show it."""
    bind = op.get_bind()
    for view in (HOURLY, DAILY):
        name = view.split(".")[1]
        table = bind.execute(text(MATERIALIZATION), {"name": name}).scalar_one()
        op.execute(
            f"CREATE TEMPORARY TABLE carried_{name} ON COMMIT DROP AS "
            f"SELECT {ROLLUP_COLUMNS} FROM {table}"
        )
    op.execute(f"DROP MATERIALIZED VIEW {DAILY}")
    op.execute(f"DROP MATERIALIZED VIEW {HOURLY}")


def _restore_rollups(hourly_source: str, hourly_prices: dict[str, str]) -> None:
    """Recreate both continuous aggregates (the hourly one on ``hourly_source``) and put the
    carried buckets into their materializations."""
    bind = op.get_bind()
    op.execute(HOURLY_AGGREGATE.format(table=hourly_source, **hourly_prices))
    op.execute(DAILY_AGGREGATE)
    for view in (HOURLY, DAILY):
        name = view.split(".")[1]
        table = bind.execute(text(MATERIALIZATION), {"name": name}).scalar_one()
        op.execute(
            f"INSERT INTO {table} ({ROLLUP_COLUMNS}) SELECT {ROLLUP_COLUMNS} FROM carried_{name}"
        )


def _grant(tables: list[str], views: list[str]) -> None:
    if _role_exists(RUNNER):
        for table in [*tables, "market_data.ohlcv"]:
            op.execute(f"GRANT INSERT, UPDATE ON {table} TO {RUNNER}")
    for role in (READER, RUNNER):
        if _role_exists(role):
            op.execute(f"GRANT SELECT ON {', '.join([*tables, *views])} TO {role}")


def upgrade() -> None:
    timescale = _timescale()
    if timescale:
        _carry_rollups()
    op.execute(FUNCTIONS)
    op.execute("DROP VIEW market_data.ohlcv")
    for timeframe in CHUNK_INTERVALS:
        old, new = bars_table(timeframe), bars_storage(timeframe)
        prices = ", ".join(f"{c} bigint NOT NULL" for c in UNITS)
        _create_table(new, timeframe, f"{prices}, price_decimals smallint NOT NULL", timescale)
        need = ", ".join(f"market_data.price_decimals({p})" for p in PRICES)
        limit = ", ".join(f"market_data.price_scale_limit({p})" for p in PRICES)
        units = ", ".join(
            f"CAST(round(o.{p} * power(10::float8, d.decimals)) AS bigint)" for p in PRICES
        )
        op.execute(
            f"""
            INSERT INTO {new}
            SELECT o.time, o.symbol, o.timeframe, {units}, d.decimals, o.volume, o.source,
                   o.ingested_at, o.review
            FROM {old} o
            JOIN (SELECT symbol, CAST(least(max(greatest({need})), min(least({limit})))
                                      AS smallint) AS decimals
                  FROM {old} GROUP BY symbol) d USING (symbol)
            """
        )
        op.execute(f"DROP TABLE {old}")
        op.execute(_price_view(timeframe))
        op.execute(NOTIFY_TRIGGER.format(table=new))
    op.execute(_ohlcv_view())
    op.execute(ROUTE)
    op.execute(TRIGGER)
    op.execute(NOTIFY.format(prices=NEW_PRICES))
    _grant(
        [bars_storage(tf) for tf in CHUNK_INTERVALS],
        [bars_table(tf) for tf in CHUNK_INTERVALS],
    )
    if timescale:
        _restore_rollups(bars_storage("1m"), {p: price_sql(f"{p}_units") for p in PRICES})
        op.execute(RETENTION_JOB.format(suffix="_store"))
        settings = context.config.attributes.get("settings") or load_settings()
        install_timescale_policies(op.get_bind(), settings)


def downgrade() -> None:
    timescale = _timescale()
    if timescale:
        _carry_rollups()
    op.execute("DROP VIEW market_data.ohlcv")
    for timeframe in CHUNK_INTERVALS:
        old, new = bars_storage(timeframe), bars_table(timeframe)
        op.execute(f"DROP VIEW {new}")
        prices = ", ".join(f"{p} double precision NOT NULL" for p in PRICES)
        _create_table(new, timeframe, prices, timescale)
        floats = ", ".join(price_sql(f"{p}_units") for p in PRICES)
        op.execute(
            f"INSERT INTO {new} SELECT time, symbol, timeframe, {floats}, volume, source, "
            f"ingested_at, review FROM {old}"
        )
        op.execute(f"DROP TABLE {old}")
        op.execute(NOTIFY_TRIGGER.format(table=new))
    op.execute(_ohlcv_view())
    op.execute(OLD_ROUTE)
    op.execute(TRIGGER)
    op.execute(NOTIFY.format(prices=OLD_PRICES))
    op.execute("DROP FUNCTION market_data.price_decimals(float8)")
    op.execute("DROP FUNCTION market_data.price_scale_limit(float8)")
    _grant([bars_table(tf) for tf in CHUNK_INTERVALS], [])
    if timescale:
        _restore_rollups(bars_table("1m"), {p: p for p in PRICES})
        op.execute(RETENTION_JOB.format(suffix=""))
        _compress_float_tables()
        settings = context.config.attributes.get("settings") or load_settings()
        install_timescale_policies(op.get_bind(), settings, only=HOURLY)
        install_timescale_policies(op.get_bind(), settings, only=DAILY)


def _compress_float_tables() -> None:
    """Install the float8 bar tables' compression as 0019 left it (the policy installer now
    addresses the integer tables)."""
    settings = context.config.attributes.get("settings") or load_settings()
    for policy in configured_policies(settings):
        if policy.compress_after is None:
            continue
        table = bars_table(policy.timeframe)
        op.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'symbol, timeframe', "
            "timescaledb.compress_orderby = 'time DESC')"
        )
        op.get_bind().execute(
            text(f"SELECT add_compression_policy('{table}', CAST(:after AS interval))"),
            {"after": policy.compress_after},
        )
