"""Monitoring: the read-only role ``prism_reader`` the dashboard and Grafana read through.

``prism_reader`` gets USAGE on Prism's schemas and SELECT on every table, view and
materialized view in them, now and (through default privileges of the migrating user) for any
created later. It is a NOLOGIN role: the dashboard connects as the owner and runs
``SET ROLE prism_reader`` (the migrating user is made a member so it may); when the
environment variable ``PRISM_READER_PASSWORD`` is set while migrating (docker compose does),
the role also gets LOGIN with that password, for Grafana and a reader-only dashboard URL.

Roles belong to the whole server. A migrating user without CREATEROLE (and not superuser)
cannot create one: then nothing is created, a NOTICE says so, and the dashboard reads as the
owner (``prism.monitoring.access`` checks whether the role exists).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import os

from alembic import op
from sqlalchemy import text

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ROLE = "prism_reader"
SCHEMAS = ("market_data", "features", "trading", "models", "config", "audit")

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE {ROLE} NOLOGIN;
        ELSE
            RAISE NOTICE 'user % may not create roles: no read-only role {ROLE}; the '
                         'dashboard reads as the owner', current_user;
        END IF;
    END IF;
END
$$;
"""


def _role_exists() -> bool:
    return bool(
        op.get_bind()
        .execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE})
        .scalar()
    )


def _existing_schemas() -> list[str]:
    rows = op.get_bind().execute(
        text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:s)"), {"s": list(SCHEMAS)}
    )
    return sorted(r[0] for r in rows)


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    if not _role_exists():
        return
    schemas = ", ".join(_existing_schemas())
    op.execute(f"GRANT USAGE ON SCHEMA {schemas} TO {ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schemas} TO {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} GRANT SELECT ON TABLES TO {ROLE}")
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT pg_has_role(current_user, '{ROLE}', 'MEMBER') THEN
                EXECUTE format('GRANT {ROLE} TO %I', current_user);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot make % a member of {ROLE}; SET ROLE will be refused',
                         current_user;
        END
        $$;
        """
    )
    password = os.environ.get("PRISM_READER_PASSWORD")
    if password:
        quoted = op.get_bind().execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar()
        op.execute(f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD {quoted}")


def downgrade() -> None:
    if not _role_exists():
        return
    schemas = ", ".join(_existing_schemas())
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} REVOKE SELECT ON TABLES FROM {ROLE}")
    op.execute(f"REVOKE SELECT ON ALL TABLES IN SCHEMA {schemas} FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA {schemas} FROM {ROLE}")
