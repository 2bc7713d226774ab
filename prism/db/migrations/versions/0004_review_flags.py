"""Review flags on bars: ``market_data.ohlcv.review`` says why a stored bar needs a human look.

Validation stores a bar whose close moved more than 10% from the previous close but flags it,
writing the reason (e.g. ``close moved 12.3% from the previous close``) into ``review``; NULL
means nothing to review. A partial index keeps "what is flagged?" cheap without indexing the
(vast) majority of unflagged rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE market_data.ohlcv ADD COLUMN review text;

        CREATE INDEX ohlcv_flagged_idx ON market_data.ohlcv (symbol, timeframe, time)
            WHERE review IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX IF EXISTS market_data.ohlcv_flagged_idx;
        ALTER TABLE market_data.ohlcv DROP COLUMN review;
        """
    )
