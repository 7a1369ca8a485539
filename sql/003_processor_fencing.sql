-- Processor fencing and the per-partition outbox (issue 7).  Idempotent; plain PostgreSQL.
--
-- processor_checkpoints.epoch: bumped by each new owner of a (group, topic, partition) when it is
-- assigned the partition; every later checkpoint write of that owner requires the epoch it got, so
-- a stale owner's write is refused.  A row claimed before any checkpoint has no offset or state yet.
ALTER TABLE processor_checkpoints ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE processor_checkpoints ALTER COLUMN next_offset DROP NOT NULL;
ALTER TABLE processor_checkpoints ALTER COLUMN state DROP NOT NULL;

-- Outbox rows carry the input partition whose checkpoint wrote them: that partition's owner
-- publishes them, in Kafka transactions that also record the highest id published (the marker).
-- Rows written before this migration (no source) are published once at start-up.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS group_id text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS source_topic text;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS source_partition integer;
CREATE INDEX IF NOT EXISTS outbox_source_idx ON outbox (group_id, source_topic, source_partition, id);
