"""The runner's login ``prism_runner``: it writes what a trade cycle writes, and nothing else.

The live runner's flows (``runner/flows.py``) trade as this role, not as the owner, so a bug or a
compromised strategy in the runner cannot approve a model, loosen its own risk limits, resume a
halted deployment, lower its high-water mark, rewrite fills or the audit trail, or change the
schema. It gets:

- USAGE on Prism's schemas and SELECT on every table (now and, through default privileges of the
  migrating user, later), USAGE on their sequences;
- the writes listed in ``WRITES``: new bars, quarantine and assets from the live feeds, orders and
  their status, fills (insert only), positions, cash, snapshots, signals, decisions, system events
  (and the alert outcome in an event's metadata), and the model version a deployment last traded;
- halting a deployment only through ``config.halt_deployment(deployment, reason, by)``, a
  ``SECURITY DEFINER`` function that can set ``halted`` but never clear it (resuming stays with
  the operator's CLI, which runs as the owner).

The high-water-mark trigger of 0014 becomes ``SECURITY DEFINER`` so snapshots written by the
runner still raise the mark while the runner itself cannot write ``trading.high_water_marks``.
In plain-PostgreSQL mode the 1h/1d rollups are tables an ingest updates, so the runner may write
them; on TimescaleDB they are continuous aggregates only their owner may refresh, and the refresh
policy and real-time aggregation keep them current (:func:`prism.db.rollups.refresh_rollups`).

Like ``prism_reader`` (0008) the role is created NOLOGIN; :func:`prism.db.roles.ensure_logins`
gives it LOGIN with its password after every migration. A migrating user without CREATEROLE
creates nothing (a NOTICE says so) and the runner then trades as the owner.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from alembic import op
from sqlalchemy import text

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ROLE = "prism_runner"
SCHEMAS = ("market_data", "features", "trading", "models", "config", "audit")
WRITES = {
    "market_data.ohlcv": "INSERT, UPDATE",
    "market_data.quarantine": "INSERT, UPDATE",
    "market_data.assets": "INSERT, UPDATE",
    "market_data.indicators": "INSERT, UPDATE",
    "trading.orders": "INSERT, UPDATE",
    "trading.fills": "INSERT",
    "trading.positions": "INSERT, UPDATE",
    "trading.accounts": "INSERT, UPDATE",
    "trading.paper_orders": "INSERT, UPDATE",
    "trading.paper_fills": "INSERT",
    "trading.signals": "INSERT, UPDATE",
    "trading.portfolio_snapshots": "INSERT, UPDATE",
    "trading.risk_snapshots": "INSERT, UPDATE",
    "audit.decisions": "INSERT",
    "audit.system_events": "INSERT, UPDATE (metadata)",
    "config.strategies": "UPDATE (last_model_version)",
}
ROLLUP_TABLES = ("market_data.ohlcv_1h", "market_data.ohlcv_1d")

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            CREATE ROLE {ROLE} NOLOGIN;
        ELSE
            RAISE NOTICE 'user % may not create roles: no runner role {ROLE}; the runner '
                         'trades as the owner', current_user;
        END IF;
    END IF;
END
$$;
"""

HALT = """
CREATE FUNCTION config.halt_deployment(target text, reason text, actor text)
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH halted AS (
        UPDATE config.strategies
        SET halted = true, halt_reason = reason, halted_at = now(), halted_by = actor,
            updated_at = now()
        WHERE deployment = target AND NOT halted
        RETURNING 1
    )
    SELECT count(*)::integer FROM halted;
$$;
REVOKE ALL ON FUNCTION config.halt_deployment(text, text, text) FROM PUBLIC;
ALTER FUNCTION trading.raise_high_water_mark() SECURITY DEFINER;
ALTER FUNCTION trading.raise_high_water_mark() SET search_path = pg_catalog, pg_temp;
"""


def _role_exists() -> bool:
    return bool(
        op.get_bind()
        .execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ROLE})
        .scalar()
    )


def _plain_tables(names: tuple[str, ...]) -> list[str]:
    """Return those of ``names`` that are ordinary tables (not views or aggregates)."""
    rows = op.get_bind().execute(
        text(
            "SELECT n FROM unnest(CAST(:names AS text[])) AS n "
            "WHERE (SELECT relkind FROM pg_class WHERE oid = to_regclass(n)) = 'r'"
        ),
        {"names": list(names)},
    )
    return [r[0] for r in rows]


def upgrade() -> None:
    op.execute(HALT)
    op.execute(CREATE_ROLE)
    if not _role_exists():
        return
    schemas = ", ".join(SCHEMAS)
    op.execute(f"GRANT USAGE ON SCHEMA {schemas} TO {ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schemas} TO {ROLE}")
    op.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schemas} TO {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} GRANT SELECT ON TABLES TO {ROLE}")
    for table, privileges in WRITES.items():
        op.execute(f"GRANT {privileges} ON {table} TO {ROLE}")
    for table in _plain_tables(ROLLUP_TABLES):
        op.execute(f"GRANT INSERT, UPDATE ON {table} TO {ROLE}")
    op.execute(f"GRANT EXECUTE ON FUNCTION config.halt_deployment(text, text, text) TO {ROLE}")


def downgrade() -> None:
    if _role_exists():
        schemas = ", ".join(SCHEMAS)
        op.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schemas} REVOKE SELECT ON TABLES FROM {ROLE}"
        )
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schemas} FROM {ROLE}")
        op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schemas} FROM {ROLE}")
        op.execute(f"REVOKE USAGE ON SCHEMA {schemas} FROM {ROLE}")
    op.execute("ALTER FUNCTION trading.raise_high_water_mark() SECURITY INVOKER")
    op.execute("ALTER FUNCTION trading.raise_high_water_mark() RESET search_path")
    op.execute("DROP FUNCTION config.halt_deployment(text, text, text)")
