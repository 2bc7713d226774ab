"""Live runner state: each deployment's circuit breaker and the model version it last traded,
the paper broker's own books, and the default risk limits.

``config.strategies`` gains ``halted`` (with who halted it, when and why; a person clears it with
``prism runner resume``) and ``last_model_version`` (so a moved alias is noticed at the next
cycle). The paper broker keeps what it was sent and what it filled in ``trading.paper_orders``
and ``trading.paper_fills``, apart from the ledger, so a restarted runner can ask it about an
order by client id exactly as it would ask an exchange. The default risk limits are
seeded by :mod:`prism.live.risk` on first use (one list of them, in code).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE config.strategies
    ADD COLUMN halted boolean NOT NULL DEFAULT false,
    ADD COLUMN halt_reason text,
    ADD COLUMN halted_at timestamptz,
    ADD COLUMN halted_by text,
    ADD COLUMN last_model_version text;

CREATE TABLE trading.paper_orders (
    client_order_id text PRIMARY KEY,
    deployment      text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL CHECK (side IN ('buy', 'sell')),
    quantity        numeric(28, 10) NOT NULL CHECK (quantity > 0),
    decided_at      timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'sent'
                    CHECK (status IN ('sent', 'partial', 'filled', 'cancelled', 'rejected')),
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paper_orders_deployment ON trading.paper_orders (deployment);

CREATE TABLE trading.paper_fills (
    fill_id         text PRIMARY KEY,
    client_order_id text NOT NULL REFERENCES trading.paper_orders (client_order_id),
    deployment      text NOT NULL,
    time            timestamptz NOT NULL,
    quantity        numeric(28, 10) NOT NULL CHECK (quantity > 0),
    price           numeric(20, 6) NOT NULL,
    commission      numeric(20, 6) NOT NULL
);
CREATE INDEX paper_fills_order ON trading.paper_fills (client_order_id);

"""

DOWNGRADE = """
DROP TABLE trading.paper_fills;
DROP TABLE trading.paper_orders;
ALTER TABLE config.strategies
    DROP COLUMN last_model_version,
    DROP COLUMN halted_by,
    DROP COLUMN halted_at,
    DROP COLUMN halt_reason,
    DROP COLUMN halted;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
