"""Sources of trades on real Kafka, Redis and PostgreSQL: years of history replayed into a running system,
beside live trades on the same partitions, give exactly what replaying it into an empty system gives."""
from __future__ import annotations

import math
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import redis

from pipeline import kafka_io
from pipeline.events import DEFAULT_SOURCE, Alert, Candle, Trade
from pipeline.kafka_io import ensure_topics
from pipeline.processor import Processor
from pipeline.replay import read_trades, open_csv, replay, source_for
from pipeline.simulator import MarketSimulator
from pipeline.speed_layer import SpeedLayerReader
from tests.faults.readback import read_topic
from tests.integration.helpers import empty_stores, sql, wait_until

pytestmark = pytest.mark.integration
# The simulator's symbols and NFLX: with Kafka's murmur2 partitioner they cover all 6 partitions, the
# index's too (the test checks it on the topic).
LIVE_SYMBOLS = ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USD", "ETH-USD", "EUR-USD", "GBP-USD",
                "JPY-USD", "NFLX"]
# The index's own rule set: the seed's price rule, a return z-score and adaptive whales (the default
# rule set stays the seed's for every other symbol).
RULES = ('{"rulesets": {"index": {"price_deviation": {}, "return_zscore": {"lambda": 0.94, "warmup": 20, '
         '"threshold_sigmas": 4}, "adaptive_whale": {"rolling_window": 250, "min_history": 50}}}, '
         '"assign": {"SPX": "index"}}')


def index_history(path, years: int = 5) -> int:
    """Daily closes of an index (SPX) and of a stock the live feed also trades (AAPL), business days from
    2015 on, written as a replay CSV without trade ids; returns the number of rows. Deterministic: a random
    walk with a few crash days and volume bursts, so the rules have something to find."""
    rng = random.Random(2015)
    day = datetime(2015, 1, 2, 21, 0, tzinfo=timezone.utc)
    end = day.replace(year=day.year + years)
    prices = {"SPX": 2058.2, "AAPL": 27.3}
    rows = []
    while day < end:
        if day.weekday() < 5:
            for symbol, vol, size in (("SPX", 0.011, 3.2e9), ("AAPL", 0.017, 2.1e8)):
                move = rng.gauss(0.0003, vol)
                if rng.random() < 0.004:
                    move = rng.choice((-1, 1)) * rng.uniform(0.06, 0.13)  # a crash or a squeeze
                prices[symbol] *= math.exp(move)
                burst = rng.uniform(4, 8) if rng.random() < 0.01 else 1.0
                quantity = size * math.exp(rng.gauss(0.0, 0.25)) * burst
                rows.append(f"{day.isoformat().replace('+00:00', 'Z')},{symbol},{prices[symbol]:.2f},"
                            f"{quantity:.0f}\n")
        day += timedelta(days=1)
    path.write_text("timestamp,symbol,price,quantity\n" + "".join(rows))
    return len(rows)


def fresh(settings, **changes):
    """Settings with topics and groups of their own (created), as a new system would have."""
    tag = uuid.uuid4().hex[:8]
    s = settings.replace(
        topic_trades=f"raw-trades-{tag}", topic_aggregates=f"trade-aggregates-{tag}",
        topic_alerts=f"trade-alerts-{tag}", topic_deadletter=f"raw-trades-dlq-{tag}",
        topic_webhook_deadletter=f"alert-webhooks-dlq-{tag}", topic_outbox_progress=f"outbox-progress-{tag}",
        processor_group=f"processor-{tag}", alert_group=f"alerts-{tag}", **changes)
    ensure_topics(s)
    return s


def count(settings, where: str, args=()) -> int:
    return sql(settings, f"SELECT count(*) FROM trades WHERE {where}", args)[0][0]


def settled(settings, trades: int) -> bool:
    """Every trade stored and every outbox message delivered."""
    return count(settings, "true") == trades and sql(settings, "SELECT count(*) FROM outbox")[0][0] == 0


def outcome(settings, source: str, horizon: float) -> dict:
    """What the system made of ``source``: stored candles and alerts, and the messages on the candle and alert
    topics. Candles ending after ``horizon`` (the last trade's) close by the wall clock at a time that depends
    on the run: left out."""
    candles = sql(settings, """SELECT symbol, window_seconds, extract(epoch FROM window_start)::float8, open,
                                      high, low, close, volume, vwap, trade_count, buy_volume, sell_volume
                                 FROM candles WHERE source = %s AND window_end <= to_timestamp(%s)""",
                  (source, horizon))
    alerts = sql(settings, """SELECT alert_id, alert_type, severity, symbol, price, reference, deviation,
                                     trade_id, extract(epoch FROM ts)::float8, message, side, quantity
                                FROM alerts WHERE source = %s""", (source,))
    published = [Candle.from_wire(orjson.loads(v))
                 for _, _, _, v in read_topic(settings, settings.topic_aggregates)]
    raised = [Alert.decode(v) for _, _, _, v in read_topic(settings, settings.topic_alerts)]
    return {"candles": sorted(candles), "alerts": sorted(alerts),
            "published": sorted(c.encode() for c in published
                                if c.source == source and c.window_end <= horizon),
            "raised": sorted(a.encode() for a in raised if a.source == source)}


def live_feed(settings, stop: threading.Event, sent: list) -> threading.Thread:
    """Live trades stamped now, about 150 a second, until ``stop``; ``sent`` collects them."""
    def body():
        sim = MarketSimulator(LIVE_SYMBOLS, seed=7, event_rate=0.01, source=settings.live_source)
        publisher = kafka_io.Publisher(settings)
        try:
            while not stop.is_set():
                for _ in range(15):
                    trade, _ = sim.next_trade(time.time())
                    publisher.produce(settings.topic_trades, trade.encode(), trade.symbol.encode())
                    sent.append(trade)
                publisher.poll(0)
                stop.wait(0.1)
        finally:
            assert publisher.flush(30) == 0

    thread = threading.Thread(target=body, name="live-feed", daemon=True)
    thread.start()
    return thread


def partitions_of(settings) -> dict[str, set[tuple[int, str]]]:
    """Symbol -> {(partition, source)} of the records on the input topic."""
    out: dict[str, set] = {}
    for partition, _, _, value in read_topic(settings, settings.topic_trades):
        t = Trade.decode(value, time.time())
        out.setdefault(t.symbol, set()).add((partition, t.source))
    return out


def test_src001_history_replayed_into_a_running_system_equals_history_replayed_into_an_empty_one(
        fast, tmp_path, run_worker):
    path = tmp_path / "index_history.csv"
    rows = index_history(path)
    source = source_for(path)
    assert source == "index_history"
    with open_csv(path) as f:
        horizon = max(t.ts for t in read_trades(f, source=source))
    base = fast.replace(rules_config=RULES)

    # 1. An empty system: only the replay.
    alone = fresh(base)
    worker = run_worker(Processor(alone).run, "processor-alone")
    assert replay(path, alone, None, out=lambda *_: None, source=source).sent == rows
    wait_until(lambda: settled(alone, rows), 120, "the replay stored and published (empty system)")
    worker.stop()
    expected = outcome(alone, source, horizon)
    assert count(alone, "late") == 0
    assert len(expected["candles"]) > 3 * rows - 10 and len(expected["published"]) == len(expected["candles"])
    kinds = {orjson.loads(a)["alert_type"] for a in expected["raised"]}
    assert {"PRICE_SPIKE", "CIRCUIT_BREAKER", "RETURN_OUTLIER", "VOLUME_SPIKE"} <= kinds, kinds
    assert sorted(a[0] for a in expected["alerts"]) == \
        sorted(orjson.loads(a)["alert_id"] for a in expected["raised"])

    # 2. A running system: live trades on every partition, the same replay in the middle of them.
    empty_stores(base)
    running = fresh(base)
    worker = run_worker(Processor(running).run, "processor-running")
    stop, sent = threading.Event(), []
    feed = live_feed(running, stop, sent)
    try:
        wait_until(lambda: sql(running, "SELECT count(*) FROM candles WHERE window_seconds = 60")[0][0] >= 5,
                   120, "live candles before the replay")
        assert replay(path, running, None, out=lambda *_: None, source=source).sent == rows
        wait_until(lambda: count(running, "source = %s", (source,)) == rows, 120, "the replay stored")
        time.sleep(1.0)  # live trades keep flowing after it, on the same partitions
    finally:
        stop.set()
        feed.join(60)
    wait_until(lambda: settled(running, rows + len(sent)), 120, "every trade stored and published")
    worker.stop()

    # The replay shared partitions with live trades (the index's too), and nothing was late.
    where = partitions_of(running)
    live_partitions = {p for sym in LIVE_SYMBOLS for p, src in where[sym] if src == DEFAULT_SOURCE}
    assert {p for p, _ in where["SPX"]} <= live_partitions
    assert {src for _, src in where["AAPL"]} == {DEFAULT_SOURCE, source}
    assert len({p for p, _ in where["AAPL"]}) == 1
    assert count(running, "late") == 0
    assert count(running, "source = %s", (DEFAULT_SOURCE,)) == len(sent)
    got = outcome(running, source, horizon)
    assert got == expected

    # Live data undisturbed: the speed layer shows the live feed only, and live candles were made.
    reader = SpeedLayerReader(redis.Redis.from_url(running.redis_url))
    prices = reader.prices()
    assert "SPX" not in prices and prices["AAPL"]["ts"] > time.time() - 600
    assert {a["source"] for a in reader.recent_alerts()} <= {DEFAULT_SOURCE}
    assert sql(running, "SELECT count(*) FROM candles WHERE source = %s", (DEFAULT_SOURCE,))[0][0] >= 5


def test_src002_a_replay_that_ended_closes_its_last_window_by_the_wall_clock_while_live_trades_flow(
        fast, tmp_path, run_worker):
    """The lull clock of a source: the partition never falls idle (live trades on it all along), yet once
    the replay has ended and the processor has read everything, its last window closes by the wall clock
    (window [21:00, 21:01) + 1 s of grace: about 61 s after the replay's last close)."""
    settings = fast.replace(window_sizes="60")
    path = tmp_path / "spx.csv"
    closes = [f"2016-03-{d:02d}T21:00:00Z,SPX,{2000 + d}.5,1000000\n" for d in range(1, 11)]
    path.write_text("timestamp,symbol,price,quantity\n" + "".join(closes))
    worker = run_worker(Processor(settings).run, "processor")
    stop, sent = threading.Event(), []
    feed = live_feed(settings, stop, sent)
    try:
        wait_until(lambda: sent, 30, "live trades flowing")
        assert replay(path, settings, None, out=lambda *_: None, source="spx").sent == 10
        last = sql(settings, "SELECT extract(epoch FROM timestamptz '2016-03-10T21:00:00Z')::float8")[0][0]
        wait_until(lambda: sql(settings, "SELECT count(*) FROM candles WHERE source = 'spx'")[0][0] == 9,
                   60, "the windows closed by the replay's own event time")
        wait_until(lambda: sql(settings, "SELECT count(*) FROM candles WHERE source = 'spx' "
                                         "AND window_start = to_timestamp(%s)", (last,))[0][0] == 1, 240,
                   "the last window closed by the lull clock")
        live_since = len(sent)
        wait_until(lambda: len(sent) > live_since + 100, 30, "live trades still flowing")
    finally:
        stop.set()
        feed.join(60)
    worker.stop()
    where = partitions_of(settings)
    spx_partition = {p for p, _ in where["SPX"]}
    assert spx_partition <= {p for sym in LIVE_SYMBOLS for p, _ in where[sym]}  # live trades on it all along
    assert count(settings, "late") == 0
