"""The alert outbox: an alert is written here in the transaction that raises it, and sent later.

The cycle raises alerts while it holds its deployment's advisory lock; sending them there put a
webhook's latency (and its retries) inside the lock. Now the cycle only inserts a row here (and
its ``audit.system_events`` event) and the ``deliver_alerts`` flow sends it afterwards:
at-least-once, each row carrying a ``delivery_key`` a sink that supports idempotency keys can
de-duplicate on, with ``attempts``, ``last_error`` and ``next_attempt_at`` for retries with
backoff. ``delivered_to`` holds a digest of each alert URL already served (never the URL, whose
host part may be a token), so a retry resends only to the sinks that failed.

Where the runner's login ``prism_runner`` exists (issue 16), it may queue (INSERT) and mark
(UPDATE) rows and use the id sequence: the cycle and the ``deliver_alerts`` flow run as it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE audit.alert_outbox (
    id              bigserial PRIMARY KEY,
    event_id        bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL,
    severity        text NOT NULL,
    component       text NOT NULL,
    message         text NOT NULL,
    key             text NOT NULL,
    delivery_key    text NOT NULL UNIQUE DEFAULT gen_random_uuid()::text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'suppressed', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    delivered_at    timestamptz,
    delivered_to    text[] NOT NULL DEFAULT '{}',
    last_error      text
);
CREATE INDEX alert_outbox_due ON audit.alert_outbox (id)
WHERE status IN ('pending', 'sending');

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'prism_runner') THEN
        GRANT SELECT, INSERT, UPDATE ON audit.alert_outbox TO prism_runner;
        GRANT USAGE ON SEQUENCE audit.alert_outbox_id_seq TO prism_runner;
    END IF;
END $$;
"""

DOWNGRADE = """
DROP TABLE audit.alert_outbox;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
