-- Alert lifecycle (issue 9.6): snoozes, notes and the audit trail of who did what and when; what-if
-- backtest runs and their alerts (9.3); dead letters kept for the data-quality page (9.5).
-- Idempotent (IF NOT EXISTS / OR REPLACE everywhere); plain PostgreSQL.

-- A snooze, in the spirit of an Alertmanager silence: alerts matching every matcher given (type, symbol,
-- source; NULL = any) and handled by the alert engine between starts_at and ends_at are kept but marked
-- 'snoozed' and sent to no webhook.  Deleting ends it early (deleted_at); rows are never removed.
CREATE TABLE IF NOT EXISTS alert_snoozes (
    snooze_id   bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_type  text,
    symbol      text,
    source      text,
    starts_at   timestamptz  NOT NULL,
    ends_at     timestamptz  NOT NULL,
    created_by  text         NOT NULL,
    comment     text         NOT NULL DEFAULT '' CHECK (length(comment) <= 1000),
    created_at  timestamptz  NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    deleted_by  text,
    CHECK (ends_at > starts_at),
    CHECK (alert_type IS NOT NULL OR symbol IS NOT NULL OR source IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS alert_snoozes_active_idx ON alert_snoozes (ends_at) WHERE deleted_at IS NULL;

-- Which snooze an alert was snoozed by (alerts.status = 'snoozed').
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS snooze_id bigint;

-- A note an operator wrote on an alert.
CREATE TABLE IF NOT EXISTS alert_notes (
    note_id     bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    text         NOT NULL,
    author      text         NOT NULL,
    body        text         NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at  timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_notes_alert_idx ON alert_notes (alert_id, created_at);

-- What people did: acknowledgements, snoozes created and deleted, notes.  Snooze expiries are not
-- events anyone performs: the view alert_audit_trail adds them at each snooze's end.
CREATE TABLE IF NOT EXISTS alert_audit (
    event_id    bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz  NOT NULL DEFAULT now(),
    actor       text         NOT NULL,
    action      text         NOT NULL CHECK (action IN ('ack', 'snooze_create', 'snooze_delete', 'note')),
    alert_id    text,
    snooze_id   bigint,
    detail      text         NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_audit_at_idx ON alert_audit (at DESC);
CREATE INDEX IF NOT EXISTS alert_audit_alert_idx ON alert_audit (alert_id) WHERE alert_id IS NOT NULL;

CREATE OR REPLACE VIEW alert_audit_trail AS
SELECT event_id, at, actor, action, alert_id, snooze_id, detail FROM alert_audit
UNION ALL
SELECT NULL::bigint, s.ends_at, 'system', 'snooze_expire', NULL, s.snooze_id, 'the snooze period ended'
  FROM alert_snoozes s
 WHERE s.ends_at <= now() AND (s.deleted_at IS NULL OR s.deleted_at > s.ends_at);

-- What-if backtests: one row per run (its spec, progress and summary), and the alerts it compared.
CREATE TABLE IF NOT EXISTS backtest_runs (
    run_id        bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_by  text         NOT NULL,
    spec          jsonb        NOT NULL,
    status        text         NOT NULL DEFAULT 'queued'
                               CHECK (status IN ('queued', 'running', 'done', 'failed')),
    total_trades  bigint,
    done_trades   bigint       NOT NULL DEFAULT 0,
    summary       jsonb,
    error         text,
    created_at    timestamptz  NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz  NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS backtest_runs_open_idx ON backtest_runs (run_id)
    WHERE status IN ('queued', 'running');

CREATE TABLE IF NOT EXISTS backtest_alerts (
    run_id        bigint           NOT NULL REFERENCES backtest_runs ON DELETE CASCADE,
    alert_id      text             NOT NULL,
    in_actual     boolean          NOT NULL,
    in_candidate  boolean          NOT NULL,
    alert_type    text             NOT NULL,
    severity      text             NOT NULL,
    symbol        text             NOT NULL,
    price         double precision NOT NULL,
    reference     double precision NOT NULL,
    deviation     double precision NOT NULL,
    trade_id      text             NOT NULL,
    ts            timestamptz      NOT NULL,
    message       text             NOT NULL,
    side          text             NOT NULL DEFAULT '',
    quantity      double precision NOT NULL DEFAULT 0,
    source        text             NOT NULL DEFAULT 'live',
    PRIMARY KEY (run_id, alert_id)
);
CREATE INDEX IF NOT EXISTS backtest_alerts_symbol_idx ON backtest_alerts (run_id, symbol, ts);

-- Records the processor dead-lettered, written in the same checkpoint transaction as the outbox
-- message that carries them to the dead-letter topic: the data-quality page reads them here.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at   timestamptz  NOT NULL DEFAULT now(),
    kind        text         NOT NULL,
    reason      text         NOT NULL,
    topic       text         NOT NULL DEFAULT '',
    partition   integer,
    "offset"    bigint,
    symbol      text,
    source      text,
    value       text         NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS dead_letters_failed_at_idx ON dead_letters (failed_at DESC);

-- Retention (`stockit db retention`, after stockit_apply_retention): dead letters and finished backtest
-- runs older than the cutoff go.  The audit trail, notes and snoozes are kept: they are the record of
-- who did what.
CREATE OR REPLACE FUNCTION stockit_apply_analysis_retention(days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cutoff  timestamptz := now() - make_interval(days => days);
    removed integer;
BEGIN
    IF days <= 0 THEN
        RETURN 0;
    END IF;
    DELETE FROM dead_letters WHERE failed_at < cutoff;
    GET DIAGNOSTICS removed = ROW_COUNT;
    DELETE FROM backtest_runs WHERE status IN ('done', 'failed') AND created_at < cutoff;
    RETURN removed;
END $$;
