"""The API's background jobs (``config.api_jobs``): a backtest, notebook run or sweep asked for
over HTTP and run by a worker thread of the API process that accepted it.

A row is written before the job is queued, so a job is never lost silently: an API process that
stops with jobs queued or running leaves rows whose ``host`` and ``pid`` name it, and the next
API process on that host marks them ``failed`` with the reason (see :mod:`prism.api.jobs`).
Like the API's users and keys, the table is revoked from the read-only and the runner's logins.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

ROLES = ("prism_reader", "prism_runner")

UPGRADE = """
CREATE TABLE config.api_jobs (
    job_id       text PRIMARY KEY,
    kind         text NOT NULL
                 CHECK (kind IN ('backtest', 'notebook', 'sweep', 'notebook_sweep')),
    request      jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    result       jsonb,
    error        text,
    submitted_by text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
CREATE INDEX api_jobs_unfinished ON config.api_jobs (host, pid)
WHERE status IN ('queued', 'running');
"""

REVOKE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        REVOKE ALL ON config.api_jobs FROM {role};
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for role in ROLES:
        op.execute(REVOKE.format(role=role))


def downgrade() -> None:
    op.execute("DROP TABLE config.api_jobs")
