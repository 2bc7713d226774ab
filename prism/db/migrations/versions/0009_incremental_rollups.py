"""Quarantine without duplicates, and rollups kept incrementally on plain PostgreSQL.

- ``market_data.quarantine`` gains a ``fingerprint`` (MD5 of source, rule and the raw row as
  canonical JSON), unique, so quarantining the same rejected row twice (an interrupted load run
  again) stores it once; ``times_seen`` and ``last_seen_at`` say it came back. Duplicates
  already stored are merged into their oldest row first.
- On plain PostgreSQL the 1h and 1d rollups become tables that
  :func:`prism.db.rollups.refresh_rollups` updates for just the buckets an ingest touched
  (a materialized view can only be recomputed whole, which grows with the history). Like
  TimescaleDB's continuous aggregates, the buckets then outlive the 1m bars they came from.
  TimescaleDB databases keep their continuous aggregates unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ROLLUPS = {"ohlcv_1h": "1 hour", "ohlcv_1d": "1 day"}

QUARANTINE = """
ALTER TABLE market_data.quarantine
    ADD COLUMN fingerprint text GENERATED ALWAYS AS
        (md5(source || '|' || rule || '|' || CAST(raw AS text))) STORED,
    ADD COLUMN times_seen integer NOT NULL DEFAULT 1,
    ADD COLUMN last_seen_at timestamptz;

WITH merged AS (
    SELECT min(id) AS keep, count(*) AS seen, max(received_at) AS last
    FROM market_data.quarantine GROUP BY fingerprint HAVING count(*) > 1
)
UPDATE market_data.quarantine q SET times_seen = merged.seen, last_seen_at = merged.last
FROM merged WHERE q.id = merged.keep;

DELETE FROM market_data.quarantine q
WHERE EXISTS (
    SELECT 1 FROM market_data.quarantine older
    WHERE older.fingerprint = q.fingerprint AND older.id < q.id
);

CREATE UNIQUE INDEX quarantine_fingerprint ON market_data.quarantine (fingerprint);
"""

ROLLUP_TABLE = """
CREATE TABLE market_data.{name}_new (
    symbol text NOT NULL,
    time   timestamptz NOT NULL,
    open   double precision NOT NULL,
    high   double precision NOT NULL,
    low    double precision NOT NULL,
    close  double precision NOT NULL,
    volume double precision NOT NULL,
    bars   bigint NOT NULL,
    PRIMARY KEY (symbol, time)
);
INSERT INTO market_data.{name}_new SELECT symbol, time, open, high, low, close, volume, bars
FROM market_data.{name};
DROP MATERIALIZED VIEW market_data.{name};
ALTER TABLE market_data.{name}_new RENAME TO {name};
ALTER INDEX market_data.{name}_new_pkey RENAME TO {name}_pkey;
"""

PLAIN_ROLLUP_VIEW = """
DROP TABLE market_data.{name};
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


def _mode() -> str:
    return str(
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )


def upgrade() -> None:
    op.execute(QUARANTINE)
    if _mode() != "timescaledb":
        for name in ROLLUPS:
            op.execute(ROLLUP_TABLE.format(name=name))


def downgrade() -> None:
    if _mode() != "timescaledb":
        for name, width in ROLLUPS.items():
            op.execute(PLAIN_ROLLUP_VIEW.format(name=name, width=width))
    op.execute(
        "DROP INDEX market_data.quarantine_fingerprint; "
        "ALTER TABLE market_data.quarantine DROP COLUMN fingerprint, "
        "DROP COLUMN times_seen, DROP COLUMN last_seen_at;"
    )
