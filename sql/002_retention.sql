-- Retention, compression and continuous aggregates.
-- TimescaleDB: compression after 7 days, a 30-day retention policy and an hourly continuous
-- aggregate of trades. Plain PostgreSQL: stockit_apply_retention(days), run by
-- `stockit db retention`, drops whole monthly trade partitions and deletes old candles/alerts.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE 'ALTER TABLE trades SET (timescaledb.compress, timescaledb.compress_segmentby = ''symbol'')';
        PERFORM add_compression_policy('trades', interval '7 days', if_not_exists => true);
        PERFORM add_retention_policy('trades', interval '30 days', if_not_exists => true);
        PERFORM add_retention_policy('candles', interval '30 days', if_not_exists => true);
        IF to_regclass('trades_hourly') IS NULL THEN
            EXECUTE $q$
                CREATE MATERIALIZED VIEW trades_hourly WITH (timescaledb.continuous) AS
                SELECT symbol, time_bucket('1 hour', ts) AS bucket,
                       first(price, ts) AS open, max(price) AS high, min(price) AS low,
                       last(price, ts) AS close, sum(quantity) AS volume,
                       sum(price * quantity) / sum(quantity) AS vwap, count(*) AS trade_count
                FROM trades GROUP BY symbol, bucket WITH NO DATA
            $q$;
            PERFORM add_continuous_aggregate_policy('trades_hourly', start_offset => interval '3 days',
                end_offset => interval '1 hour', schedule_interval => interval '15 minutes');
        END IF;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION stockit_apply_retention(days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    cutoff  timestamptz := now() - make_interval(days => days);
    part    record;
    dropped integer := 0;
BEGIN
    IF days <= 0 THEN
        RETURN 0;
    END IF;
    FOR part IN
        SELECT c.relname AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'trades'::regclass
    LOOP
        IF part.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.name);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM candles WHERE window_end < cutoff;
    DELETE FROM alerts WHERE ts < cutoff;
    RETURN dropped;
END $$;
