"""Research lineage and registry approvals.

``models.approvals`` is the registry's history: every promotion (passed or refused) and every
rollback, with who, when, why, the gate results and the gates file's version and hash. The
champion before the current one, which ``prism models rollback`` returns to, is read from it.
``models.versions`` (the mirror from 0005) gains the approval's reason and gates file, and
``audit.decisions`` an index on ``client_order_id`` for ``prism lineage``.

The history is small (one row per decision of a person), so it stays a plain table in
TimescaleDB mode too; the mode is not read here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE models.approvals (
            id              bigserial PRIMARY KEY,
            model_name      text NOT NULL,
            version         text,
            alias           text NOT NULL,
            action          text NOT NULL CHECK (action IN ('promote', 'refuse', 'rollback')),
            mlflow_run_id   text,
            previous_version text,
            decided_by      text NOT NULL,
            decided_at      timestamptz NOT NULL DEFAULT now(),
            reason          text NOT NULL DEFAULT '',
            gate_results    jsonb NOT NULL DEFAULT '[]'::jsonb,
            gates_file      text,
            gates_version   integer,
            gates_sha256    text,
            gates_overrides text[] NOT NULL DEFAULT '{}',
            CHECK (action = 'refuse' OR version IS NOT NULL)
        );
        CREATE INDEX approvals_model_alias_time
            ON models.approvals (model_name, alias, decided_at, id);

        ALTER TABLE models.versions
            ADD COLUMN reason text,
            ADD COLUMN gates_version integer,
            ADD COLUMN gates_sha256 text;

        CREATE INDEX decisions_client_order_id
            ON audit.decisions (client_order_id) WHERE client_order_id IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX audit.decisions_client_order_id;
        ALTER TABLE models.versions
            DROP COLUMN gates_sha256,
            DROP COLUMN gates_version,
            DROP COLUMN reason;
        DROP TABLE models.approvals;
        """
    )
