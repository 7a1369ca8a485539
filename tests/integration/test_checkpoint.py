"""The processor's checkpoint protocol on real servers: fencing, outbox markers, offset commits, bad rows,
a database that stops answering, and Redis coming back."""
from __future__ import annotations

import time

import msgspec
import orjson
import psycopg2
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from pipeline import kafka_io
from pipeline.checkpoint import PartitionSlot
from pipeline.events import DEFAULT_SOURCE, Trade
from pipeline.history.writer import HistoryWriter
from pipeline.idleness import CatchUp
from pipeline.live_view import LiveView
from pipeline.metrics import ProcessorMetrics
from pipeline.outbox import Marker, OutboxDrain, marker_key, transactional_id
from pipeline.partition_state import PartitionState
from pipeline.processor import Processor, rulebook
from pipeline.speed_layer import SpeedLayerReader, SpeedLayerWriter, heartbeat_key
from tests.integration.helpers import consume_all, produce_trades, sql, wait_until
from tests.integration.test_pipeline import BASE, assert_candles_equal, db_candles, expected_candles
from tests.integration.test_recovery import closed, count, stream

pytestmark = pytest.mark.integration


def checkpoints(settings) -> dict[int, tuple[int, int]]:
    rows = sql(settings, "SELECT partition, epoch, next_offset FROM processor_checkpoints "
                         "WHERE group_id = %s", (settings.processor_group,))
    return {p: (e, o) for p, e, o in rows}


def at_ends(settings, ends: dict[int, int]) -> bool:
    """Every non-empty partition's checkpoint is at its end offset."""
    return {p: o for p, (_, o) in checkpoints(settings).items() if o is not None} == \
        {p: o for p, o in ends.items() if o}


def end_offsets(settings) -> dict[int, int]:
    c = Consumer(kafka_io.consumer_config(settings, "end-offsets"))
    try:
        return {p: c.get_watermark_offsets(TopicPartition(settings.topic_trades, p), timeout=10)[1]
                for p in range(settings.trade_partitions)}
    finally:
        c.close()


def test_ckpt001_a_stale_owners_checkpoint_is_refused_and_it_drops_the_partitions(fast, run_worker):
    settings = fast.replace(flush_interval=0.2)
    first = stream(2000, seed=3)
    produce_trades(settings, first)
    proc = Processor(settings)
    worker = run_worker(proc.run, "processor")
    wait_until(lambda: count(settings, "trades") == len(first), 60, "the first trades stored")
    before = checkpoints(settings)
    # Another processor claims every partition (what a new owner's assignment does).
    execute(settings, "UPDATE processor_checkpoints SET epoch = epoch + 1 WHERE group_id = %s",
            (settings.processor_group,))
    later = [Trade(f"later-{i}", sym, 100.0, 1.0, "BUY", "X", BASE + 7200 + i)
             for i, sym in enumerate(sorted({t.symbol for t in first}) * 5)]
    produce_trades(settings, later)
    with_news = {p for p, end in end_offsets(settings).items() if end > (before.get(p, (0, 0))[1] or 0)}
    assert with_news
    # A partition is found lost at its next checkpoint: those with new records are dropped.
    wait_until(lambda: not with_news & set(proc.partitions.slots), 30, "the fenced processor to drop them")
    worker.stop()
    assert count(settings, "trades") == len(first), "a stale owner's rows were written"
    after = checkpoints(settings)
    assert {p: o for p, (_, o) in after.items()} == {p: o for p, (_, o) in before.items()}
    assert all(after[p][0] == before[p][0] + 1 for p in before)


def test_ckpt002_outbox_recovers_from_the_committed_marker_without_republishing(topics):
    """A previous owner published rows 1..k with their marker and crashed before deleting them: the next
    owner deletes them and publishes only the rest, each exactly once."""
    s = topics
    w = HistoryWriter(s.database_url)
    try:
        with w.transaction() as cur:
            w.insert_outbox(cur, s.processor_group, s.topic_trades,
                            [(0, s.topic_alerts, b"AAPL", f"message-{i}".encode()) for i in range(10)])
        epoch = w.claim(s.processor_group, s.topic_trades, [0])[0].epoch
        rows = w.pending_outbox(s.processor_group, s.topic_trades, 0, 0)
        crashed = kafka_io.TransactionalPublisher(s, transactional_id(s.processor_group, s.topic_trades, 0))
        crashed.start()
        marker = Marker(group=s.processor_group, topic=s.topic_trades, partition=0, outbox_id=rows[5][0],
                        epoch=epoch)
        crashed.send([(t, k, v) for _, t, k, v in rows[:6]],
                     (s.topic_outbox_progress, 0, marker_key(s.processor_group, s.topic_trades, 0),
                      msgspec.json.encode(marker)))
        # An open transaction of the crashed owner: the new owner's init_transactions must abort it.
        crashed.producer.begin_transaction()
        crashed.producer.produce(s.topic_alerts, b"never-committed", b"AAPL")
        crashed.producer.flush(10)

        drain = OutboxDrain(s, ProcessorMetrics(registry=CollectorRegistry()))
        drain.start()
        drain.own(0, epoch)
        wait_until(lambda: count(s, "outbox") == 0, 60, "the outbox drained")
        drain.close()
        assert drain.failure is None
    finally:
        w.close()
    got = [m.value().decode() for m in consume_all(s, s.topic_alerts, 10)]
    assert sorted(got) == sorted(f"message-{i}".encode().decode() for i in range(10))


def test_ckpt003_offsets_reach_kafka_soon_after_input_stops(fast, run_worker):
    settings = fast.replace(flush_interval=120.0)  # only the idle checkpoint can make them durable in time
    trades = stream(3000, seed=5)
    produce_trades(settings, trades)
    worker = run_worker(Processor(settings).run, "processor")
    ends = end_offsets(settings)
    c = Consumer(kafka_io.consumer_config(settings, settings.processor_group))

    def committed():
        got = {tp.partition: tp.offset for tp in c.committed(
            [TopicPartition(settings.topic_trades, p) for p in ends], timeout=10)}
        return {p: o for p, o in got.items() if ends[p]} == {p: o for p, o in ends.items() if o}
    try:
        assert wait_until(committed, 30, "Kafka's committed offsets at the end of every partition") is True
    finally:
        c.close()
    assert at_ends(settings, ends)
    worker.stop()


def execute(settings, statement: str, args=()) -> None:
    conn = psycopg2.connect(settings.database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, args)
    finally:
        conn.close()


@pytest.fixture
def reject_trader(clean_stores):
    """A CHECK constraint that makes PostgreSQL refuse one trader's rows (a data error, class 23)."""
    execute(clean_stores, "ALTER TABLE trades ADD CONSTRAINT test_reject "
                          "CHECK (trader_id IS DISTINCT FROM 'reject-me')")
    yield
    execute(clean_stores, "ALTER TABLE trades DROP CONSTRAINT IF EXISTS test_reject")


def test_ckpt004_rows_the_database_rejects_are_isolated_and_dead_lettered(reject_trader, fast, run_worker):
    trades = stream(1500, seed=9)
    bad = {trades[100].trade_id, trades[777].trade_id}
    trades = [Trade(t.trade_id, t.symbol, t.price, t.quantity, t.side, t.exchange, t.ts,
                    "reject-me" if t.trade_id in bad else None) for t in trades]
    produce_trades(fast, trades)
    worker = run_worker(Processor(fast).run, "processor")
    wait_until(lambda: count(fast, "trades") == len(trades) - 2, 60, "every other trade stored")
    want = expected_candles(closed(trades))  # the rejected trades still count in candles: they were valid
    wait_until(lambda: count(fast, "candles") >= len(want), 60, "candles")
    wait_until(lambda: count(fast, "outbox") == 0, 30, "the outbox drained")
    worker.stop()
    assert not {r[0] for r in sql(fast, "SELECT trade_id FROM trades")} & bad
    assert_candles_equal(db_candles(fast), want)
    dead = [orjson.loads(m.value()) for m in consume_all(fast, fast.topic_deadletter, 2)]
    assert len(dead) == 2
    assert {orjson.loads(d["value"])["trade_id"] for d in dead} == bad
    assert all(d["reason"].startswith("database rejected:") and "test_reject" in d["reason"] for d in dead)
    ends = end_offsets(fast)
    assert at_ends(fast, ends)


def test_ckpt005_a_database_that_stops_answering_pauses_the_processor_and_it_resumes(fast, run_worker):
    """The checkpoint table locked by another session looks like a frozen server to the processor: claims and
    flushes time out.  It must pause, say so in its heartbeat, and finish exactly once after the lock goes."""
    settings = fast.replace(db_timeout=1.0)
    trades = stream(3000, seed=13)
    produce_trades(settings, trades)
    blocker = psycopg2.connect(settings.database_url)
    client = redis.Redis.from_url(settings.redis_url)
    metrics = ProcessorMetrics(registry=CollectorRegistry())
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE processor_checkpoints IN ACCESS EXCLUSIVE MODE")
        worker = run_worker(Processor(settings, metrics).run, "processor")

        def beat():
            raw = client.get(heartbeat_key("processor"))
            return raw and orjson.loads(raw)
        down = wait_until(lambda: (b := beat()) and b.get("database_unavailable_since") and b, 60,
                          "the heartbeat to report the database unavailable")
        assert down["partitions"] == [] and count(settings, "trades") == 0
        assert metrics.db_available._value.get() == 0
    finally:
        blocker.rollback()
        blocker.close()
    wait_until(lambda: count(settings, "trades") == len(trades), 120, "every trade stored, the lock gone")
    wait_until(lambda: not (beat() or {}).get("database_unavailable_since"), 30, "the heartbeat to clear")
    want = expected_candles(closed(trades))
    wait_until(lambda: count(settings, "candles") >= len(want), 60, "candles")
    wait_until(lambda: count(settings, "outbox") == 0, 30, "the outbox drained")
    worker.stop()
    assert sql(settings, "SELECT count(DISTINCT trade_id) FROM trades")[0][0] == len(trades)
    assert_candles_equal(db_candles(settings), want)
    published = consume_all(settings, settings.topic_aggregates, len(want))
    assert len(published) == len(want)


def test_ckpt006_redis_back_gets_the_whole_current_picture(fast):
    """While Redis fails the view skips writes; the first write that succeeds re-writes every symbol."""
    rules = rulebook(fast)
    slots = {}
    for p, sym in enumerate(("AAPL", "MSFT", "TSLA")):
        st = PartitionState(fast.window_list, fast.grace_seconds, rules)
        st.apply(Trade(f"{sym}-1", sym, 10.0 + p, 1.0, "BUY", "X", BASE + p))
        slots[p] = PartitionSlot(p, 1, st, 1, CatchUp(3.0))
    metrics = ProcessorMetrics(registry=CollectorRegistry())
    dead = redis.Redis(port=1, socket_connect_timeout=0.5)
    view = LiveView(dead, metrics, DEFAULT_SOURCE)
    nothing_new = dict(last_by_symbol={}, tape={}, candles=[], alerts=[], touched=[])
    view.update(slots=slots, heartbeat={"ts": 1.0}, **nothing_new)
    assert view.failing_since is not None
    live = redis.Redis.from_url(fast.redis_url)
    view.client, view.writer, view._retry_at = live, SpeedLayerWriter(live), 0.0
    view.update(slots=slots, heartbeat={"ts": 2.0}, **nothing_new)
    assert view.failing_since is None
    reader = SpeedLayerReader(live)
    assert set(reader.prices()) == {"AAPL", "MSFT", "TSLA"}
    assert reader.summary()["trades"] == 3
    assert reader.open_candle("MSFT", 60)["trade_count"] == 1


def test_ckpt007_the_wall_clock_closes_windows_only_after_the_broker_confirms_the_end(fast, run_worker):
    """Live-like trades, then silence: the last windows close by the idle clock (confirmed caught up)."""
    now = time.time()
    start = now - now % 60 - 120  # two minutes ago, on a minute boundary
    # A trade a second until 3 s before the second window's end: the idle clock must close it.
    trades = [Trade(f"W-{i}", "AAPL", 100.0 + i % 3, 1.0, "BUY", "X", start + i) for i in range(117)]
    produce_trades(fast, trades)
    worker = run_worker(Processor(fast).run, "processor")
    wait_until(lambda: sql(fast, "SELECT count(*) FROM candles WHERE window_seconds = 60")[0][0] == 2, 60,
               "both 1-minute windows closed by the idle clock")
    worker.stop()
    assert sql(fast, "SELECT count(*) FROM trades WHERE late")[0][0] == 0
