"""Real-time rollups: on TimescaleDB the 1h and 1d continuous aggregates answer for buckets not
yet materialized from the 1m bars themselves (``timescaledb.materialized_only = false``).

The dashboard's price charts and ``prism data status`` read the newest 1h/1d bucket; with
materialized-only aggregates a bar stored after the last refresh (a bar written outside
:func:`prism.data.store.ingest`, or while its refresh job waits for its schedule) is missing
from them until the next refresh. The buckets below the aggregate's watermark are still read
from the materialization, so buckets that outlived 1m retention are unaffected.

Plain PostgreSQL's rollup tables are kept current by every ingest and need nothing.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from alembic import op
from sqlalchemy import text

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ROLLUPS = ("market_data.ohlcv_1h", "market_data.ohlcv_1d")


def _timescale() -> bool:
    mode = (
        op.get_bind()
        .execute(text("SELECT value FROM config.database_info WHERE key = 'mode'"))
        .scalar()
    )
    return mode == "timescaledb"


def _materialized_only(value: bool) -> None:
    if _timescale():
        for view in ROLLUPS:
            op.execute(
                f"ALTER MATERIALIZED VIEW {view} SET (timescaledb.materialized_only = {value})"
            )


def upgrade() -> None:
    _materialized_only(False)


def downgrade() -> None:
    _materialized_only(True)
