"""The read-only dashboard records its failed logins, and nothing else.

``audit.record_login_failure(client, detail)`` inserts one ``dashboard_login_failed`` warning
into ``audit.system_events``. It is ``SECURITY DEFINER`` (it runs as the migrating owner) with a
fixed ``search_path``, and only ``prism_reader`` may execute it: the dashboard's login stays
unable to write anything else, yet every failed password attempt is on record, which is also
what the per-client rate limit counts (:mod:`prism.monitoring.login`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from alembic import op
from sqlalchemy import text

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

ROLE = "prism_reader"

FUNCTION = """
CREATE OR REPLACE FUNCTION audit.record_login_failure(client text, detail text)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO audit.system_events (event_type, severity, component, message, metadata)
    VALUES (
        'dashboard_login_failed', 'warning', 'dashboard',
        'failed dashboard login from ' || left(coalesce(client, 'unknown'), 200),
        jsonb_build_object('client', left(coalesce(client, 'unknown'), 200),
                           'detail', left(coalesce(detail, ''), 200))
    );
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION audit.record_login_failure(text, text) FROM PUBLIC")
    exists = (
        op.get_bind()
        .execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE})
        .scalar()
    )
    if exists:
        op.execute(f"GRANT EXECUTE ON FUNCTION audit.record_login_failure(text, text) TO {ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS audit.record_login_failure(text, text)")
