-- Sources of trades (issue 9): each source (the live feed, each replay) keeps its own event-time
-- clock in the processor, and trades, candles and alerts carry the name of theirs.  Rows stored
-- before this migration came from the live feed: they get the default source 'live'.
-- Idempotent; plain PostgreSQL >= 14 (ADD COLUMN with a constant default rewrites nothing) and
-- TimescaleDB (hypertables take the same statements; the key keeps the time column).
ALTER TABLE trades ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'live';
ALTER TABLE candles ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'live';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS source text NOT NULL DEFAULT 'live';

-- A replay and live data of the same symbol and window are two candles: the key includes the source
-- (first, so one source's candles of a symbol are one range of the index).
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'candles'::regclass AND i.indisprimary AND a.attname = 'source'
    ) THEN
        ALTER TABLE candles DROP CONSTRAINT IF EXISTS candles_pkey;
        ALTER TABLE candles ADD CONSTRAINT candles_pkey PRIMARY KEY (source, symbol, window_seconds, window_start);
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS alerts_source_ts_idx ON alerts (source, ts DESC);

-- The state of each source of a partition, apart from the partition's checkpoint row so that an idle
-- source (a replay that ended) is not rewritten at every flush.  Written only in the transaction
-- that saves the partition's checkpoint under its epoch (the fencing of 003 covers these rows) and
-- read in the transaction that claims the partition.
CREATE TABLE IF NOT EXISTS processor_source_checkpoints (
    group_id   text        NOT NULL,
    topic      text        NOT NULL,
    partition  integer     NOT NULL,
    source     text        NOT NULL,
    state      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition, source)
);
