"""The feature catalog: features.catalog describes every column of the Parquet feature store.

Plain PostgreSQL is enough (no hypertable): the table holds one row per feature.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE SCHEMA IF NOT EXISTS features;

        CREATE TABLE features.catalog (
            name         text PRIMARY KEY,
            description  text NOT NULL,
            dtype        text NOT NULL,
            category     text NOT NULL,
            computation  text NOT NULL,
            dependencies text[] NOT NULL DEFAULT '{}',
            lookback     integer NOT NULL CHECK (lookback >= 0),
            updated_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA features CASCADE")
