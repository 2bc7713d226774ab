"""The API's users and keys, and the notifications its stream is fed by.

- ``config.api_users``: a login of the API (``prism api users add``), its role and its
  password as an argon2 hash. ``config.api_keys``: long-lived API keys (``prism api keys
  create``), kept as the SHA-256 of their secret (the secret is 32 random bytes, so a fast hash
  is enough), each with the role it grants, an optional expiry and a revocation time. Neither
  table is readable by the read-only or the runner's login: neither sees a hash.
- Triggers ``pg_notify`` one small JSON object per new order (and order status change), fill,
  system event (``prism_alerts`` when it carries an alert, else ``prism_events``) and recent
  bar (``prism_bars``: bars within two days of now, so a bulk load of history notifies
  nothing), which ``prism.api.stream`` relays to WebSocket subscribers without polling. The
  function dispatches on its trigger argument, not ``TG_TABLE_NAME``: on a hypertable the
  trigger fires on the chunk, whose name is TimescaleDB's.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ROLES = ("prism_reader", "prism_runner")

UPGRADE = """
CREATE TABLE config.api_users (
    username      text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    password_hash text NOT NULL,
    role          text NOT NULL
                  CHECK (role IN ('viewer', 'researcher', 'trader', 'approver', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE config.api_keys (
    key_id      text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL,
    role        text NOT NULL
                CHECK (role IN ('viewer', 'researcher', 'trader', 'approver', 'admin')),
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used_at timestamptz
);

CREATE FUNCTION trading.notify_api() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    channel text := TG_ARGV[0];
    payload jsonb;
BEGIN
    IF channel = 'orders' THEN
        payload := jsonb_build_object('id', NEW.id, 'client_order_id', NEW.client_order_id,
            'deployment', NEW.deployment, 'symbol', NEW.symbol, 'side', NEW.side,
            'quantity', NEW.quantity, 'status', NEW.status);
    ELSIF channel = 'fills' THEN
        payload := jsonb_build_object('id', NEW.id, 'fill_id', NEW.fill_id,
            'order_id', NEW.order_id, 'deployment', NEW.deployment, 'time', NEW.time,
            'symbol', NEW.symbol, 'side', NEW.side, 'quantity', NEW.quantity,
            'price', NEW.price, 'commission', NEW.commission);
    ELSIF channel = 'bars' THEN
        payload := jsonb_build_object('time', NEW.time, 'symbol', NEW.symbol,
            'timeframe', NEW.timeframe, 'open', NEW.open, 'high', NEW.high, 'low', NEW.low,
            'close', NEW.close, 'volume', NEW.volume, 'source', NEW.source);
    ELSE
        IF NEW.metadata ? 'alert' THEN
            channel := 'alerts';
        END IF;
        payload := jsonb_build_object('id', NEW.id, 'time', NEW.time,
            'event_type', NEW.event_type, 'severity', NEW.severity,
            'component', NEW.component, 'message', left(NEW.message, 2000),
            'symbol', NEW.metadata->>'symbol', 'deployment', NEW.metadata->>'deployment');
    END IF;
    PERFORM pg_notify('prism_' || channel, payload::text);
    RETURN NULL;
END $$;

CREATE TRIGGER notify_api AFTER INSERT OR UPDATE OF status ON trading.orders
FOR EACH ROW EXECUTE FUNCTION trading.notify_api('orders');
CREATE TRIGGER notify_api AFTER INSERT ON trading.fills
FOR EACH ROW EXECUTE FUNCTION trading.notify_api('fills');
CREATE TRIGGER notify_api AFTER INSERT ON audit.system_events
FOR EACH ROW EXECUTE FUNCTION trading.notify_api('events');
CREATE TRIGGER notify_api AFTER INSERT ON market_data.ohlcv
FOR EACH ROW WHEN (NEW.time > now() - interval '2 days')
EXECUTE FUNCTION trading.notify_api('bars');
"""

REVOKE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        REVOKE ALL ON config.api_users, config.api_keys FROM {role};
    END IF;
END $$;
"""

DOWNGRADE = """
DROP TRIGGER notify_api ON market_data.ohlcv;
DROP TRIGGER notify_api ON audit.system_events;
DROP TRIGGER notify_api ON trading.fills;
DROP TRIGGER notify_api ON trading.orders;
DROP FUNCTION trading.notify_api();
DROP TABLE config.api_keys;
DROP TABLE config.api_users;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for role in ROLES:
        op.execute(REVOKE.format(role=role))


def downgrade() -> None:
    op.execute(DOWNGRADE)
