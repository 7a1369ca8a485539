-- Stock-IT core schema: trades, candles, alerts, processor checkpoints and the outbox.
-- Idempotent: safe to run again. Works on plain PostgreSQL >= 14; where the TimescaleDB
-- extension is available, trades and candles become hypertables (see 002).

DO $$
DECLARE
    trade_cols text := $cols$
        trade_id    text             NOT NULL,
        symbol      text             NOT NULL,
        price       double precision NOT NULL CHECK (price > 0),
        quantity    double precision NOT NULL CHECK (quantity > 0),
        side        text             NOT NULL CHECK (side IN ('BUY', 'SELL')),
        exchange    text             NOT NULL DEFAULT '',
        trader_id   text,
        sequence    bigint,
        ts          timestamptz      NOT NULL,
        late        boolean          NOT NULL DEFAULT false,
        ingested_at timestamptz      NOT NULL DEFAULT now(),
        PRIMARY KEY (trade_id, ts)
    $cols$;
    candle_cols text := $cols$
        symbol         text             NOT NULL,
        window_seconds integer          NOT NULL,
        window_start   timestamptz      NOT NULL,
        window_end     timestamptz      NOT NULL,
        open           double precision NOT NULL,
        high           double precision NOT NULL,
        low            double precision NOT NULL,
        close          double precision NOT NULL,
        volume         double precision NOT NULL,
        vwap           double precision NOT NULL,
        trade_count    integer          NOT NULL,
        buy_volume     double precision NOT NULL,
        sell_volume    double precision NOT NULL,
        PRIMARY KEY (symbol, window_seconds, window_start)
    $cols$;
    timescale boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
BEGIN
    IF timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
    IF to_regclass('trades') IS NULL THEN
        IF timescale THEN
            EXECUTE format('CREATE TABLE trades (%s)', trade_cols);
            PERFORM create_hypertable('trades', 'ts', chunk_time_interval => interval '1 day');
        ELSE
            -- Monthly range partitions, created on demand by stockit_ensure_trade_partitions().
            EXECUTE format('CREATE TABLE trades (%s) PARTITION BY RANGE (ts)', trade_cols);
        END IF;
    END IF;
    IF to_regclass('candles') IS NULL THEN
        EXECUTE format('CREATE TABLE candles (%s)', candle_cols);
        IF timescale THEN
            PERFORM create_hypertable('candles', 'window_start', chunk_time_interval => interval '7 days');
        END IF;
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS trades_symbol_ts_idx ON trades (symbol, ts DESC);
CREATE INDEX IF NOT EXISTS candles_window_start_idx ON candles (window_seconds, window_start DESC);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id          text             PRIMARY KEY,
    alert_type        text             NOT NULL,
    severity          text             NOT NULL,
    symbol            text             NOT NULL,
    price             double precision NOT NULL,
    reference         double precision NOT NULL,
    deviation         double precision NOT NULL,
    trade_id          text             NOT NULL,
    ts                timestamptz      NOT NULL,
    message           text             NOT NULL,
    side              text             NOT NULL DEFAULT '',
    quantity          double precision NOT NULL DEFAULT 0,
    status            text             NOT NULL DEFAULT 'new',   -- new | routed | suppressed
    delivery_status   text,                                      -- delivered | failed | skipped
    delivery_attempts integer          NOT NULL DEFAULT 0,
    delivered_at      timestamptz,
    last_error        text,
    acknowledged      boolean          NOT NULL DEFAULT false,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    created_at        timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alerts_ts_idx ON alerts (ts DESC);
CREATE INDEX IF NOT EXISTS alerts_symbol_ts_idx ON alerts (symbol, ts DESC);

-- The processor's exactly-once checkpoint: per partition, the next offset to read and the
-- window/rolling state as of that offset, written in the same transaction as the rows.
CREATE TABLE IF NOT EXISTS processor_checkpoints (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    state       bytea       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Kafka messages (finalized candles, alerts) committed with the rows that caused them and
-- published afterwards; a row is deleted once the broker has acknowledged it.
CREATE TABLE IF NOT EXISTS outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,
    key        bytea,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION stockit_ensure_trade_partitions(months timestamptz[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m     timestamptz;
    start timestamptz;
    part  text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'trades'::regclass) THEN
        RETURN;  -- a hypertable partitions itself
    END IF;
    FOREACH m IN ARRAY months LOOP
        start := date_trunc('month', m AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
        part := 'trades_' || to_char(start AT TIME ZONE 'UTC', 'YYYYMM');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF trades FOR VALUES FROM (%L) TO (%L)',
                           part, start, start + interval '1 month');
        END IF;
    END LOOP;
END $$;
