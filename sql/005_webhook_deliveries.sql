-- Webhook deliveries of the alert engine: one row per (alert, endpoint). A try is claimed here
-- (state 'sending') before the request goes out, so an alert is never sent twice to an endpoint,
-- also across restarts and redelivered Kafka records. The URL itself is never stored: `endpoint`
-- is a hash of it and `origin` its scheme://host[:port].
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    alert_id    text        NOT NULL,
    endpoint    text        NOT NULL,
    origin      text        NOT NULL,
    state       text        NOT NULL DEFAULT 'pending'
                            CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    body        bytea       NOT NULL,
    attempts    integer     NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz,
    finished_at timestamptz,
    last_status integer,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, endpoint)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (endpoint, next_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_sending_idx ON webhook_deliveries (endpoint, claimed_at)
    WHERE state = 'sending';

-- Retention deletes old alerts (stockit_apply_retention); their deliveries go with them.
CREATE OR REPLACE FUNCTION stockit_drop_alert_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhook_deliveries d USING gone g WHERE d.alert_id = g.alert_id;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS alerts_drop_deliveries ON alerts;
CREATE TRIGGER alerts_drop_deliveries AFTER DELETE ON alerts REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION stockit_drop_alert_deliveries();
