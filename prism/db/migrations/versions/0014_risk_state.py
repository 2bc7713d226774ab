"""Risk state that survives: a persisted high-water mark per deployment, and risk limits per
deployment over the global defaults.

- ``trading.high_water_marks`` holds each deployment's highest snapshot equity and when it was
  reached. A trigger on ``trading.portfolio_snapshots`` raises it with every snapshot written,
  by any writer, so the circuit breaker's drawdown is measured from the true peak however long
  ago it was (the cycle read only the newest 1,000 snapshots before). Existing snapshots seed it.
- ``config.deployment_risk_limits`` overrides one limit of ``config.risk_limits`` for one
  deployment; a deployment without a row trades under the global value.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE trading.high_water_marks (
    deployment text PRIMARY KEY,
    equity     numeric(20, 4) NOT NULL,
    time       timestamptz NOT NULL
);

INSERT INTO trading.high_water_marks (deployment, equity, time)
SELECT DISTINCT ON (deployment) deployment, equity, time
FROM trading.portfolio_snapshots ORDER BY deployment, equity DESC, time;

CREATE FUNCTION trading.raise_high_water_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trading.high_water_marks AS h (deployment, equity, time)
    VALUES (NEW.deployment, NEW.equity, NEW.time)
    ON CONFLICT (deployment) DO UPDATE SET equity = EXCLUDED.equity, time = EXCLUDED.time
    WHERE EXCLUDED.equity > h.equity;
    RETURN NEW;
END $$;

CREATE TRIGGER raise_high_water_mark AFTER INSERT OR UPDATE OF equity
ON trading.portfolio_snapshots FOR EACH ROW EXECUTE FUNCTION trading.raise_high_water_mark();

CREATE TABLE config.deployment_risk_limits (
    deployment text NOT NULL REFERENCES config.strategies (deployment) ON DELETE CASCADE,
    key        text NOT NULL REFERENCES config.risk_limits (key),
    value      double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (deployment, key)
);
"""

DOWNGRADE = """
DROP TABLE config.deployment_risk_limits;
DROP TRIGGER raise_high_water_mark ON trading.portfolio_snapshots;
DROP FUNCTION trading.raise_high_water_mark();
DROP TABLE trading.high_water_marks;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
