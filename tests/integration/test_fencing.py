"""Three processors in one group — one frozen past the session timeout and resumed, one SIGKILLed, one started
late: every trade stored once, every candle and alert exactly once on its topic (read_committed), every
checkpoint at its partition's end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import orjson
import pytest

from pipeline import kafka_io
from pipeline.events import Trade
from tests.integration.helpers import consume_all, sql, wait_until
from tests.integration.test_checkpoint import at_ends, checkpoints, end_offsets
from tests.integration.test_pipeline import assert_candles_equal, db_candles, expected_candles
from tests.integration.test_recovery import closed, count, expected_alert_ids, stream

pytestmark = pytest.mark.integration


def spawn(settings, log_path) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env(), "STOCKIT_PROCESSOR_METRICS_PORT": "0"}
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "processor"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def paced(settings, trades: list[Trade], per_second: int, stop: threading.Event) -> threading.Thread:
    """Publish ``trades`` in the background at about ``per_second``, so faults land mid-stream."""
    def body():
        publisher = kafka_io.Publisher(settings)
        chunk = per_second // 4
        for i in range(0, len(trades), chunk):
            if stop.is_set():
                break
            for t in trades[i:i + chunk]:
                publisher.produce(settings.topic_trades, t.encode(), t.symbol.encode())
            publisher.poll(0)
            time.sleep(0.25)  # the pace is the point: a quarter of a second's trades at a time
        assert publisher.flush(60) == 0
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_fence001_frozen_killed_and_new_processors_publish_everything_exactly_once(topics, tmp_path):
    settings = topics.replace(flush_interval=0.2, batch_size=500, grace_seconds=1.0, db_timeout=5.0)
    trades = stream(40000, seed=21)
    stop = threading.Event()
    producer = paced(settings, trades, 1000, stop)
    procs = {name: spawn(settings, tmp_path / f"{name}.log") for name in ("a", "b")}
    try:
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        wait_until(lambda: all("assigned partitions [" in log.read_text() for log in logs), 90,
                   "both processors assigned")
        stored = count(settings, "trades")
        wait_until(lambda: count(settings, "trades") >= stored + 2000, 90, "both processors under way")
        procs["a"].send_signal(signal.SIGSTOP)
        frozen_epochs = {p: e for p, (e, _) in checkpoints(settings).items()}
        # b takes a's partitions once a's session expires: every partition claimed again.
        wait_until(lambda: all(e > frozen_epochs.get(p, 0) for p, (e, _) in checkpoints(settings).items())
                   and len(checkpoints(settings)) == settings.trade_partitions, 90,
                   "b to take every partition over")
        procs["a"].send_signal(signal.SIGCONT)  # a zombie: its writes must be refused
        procs["c"] = spawn(settings, tmp_path / "c.log")
        stored = count(settings, "trades")
        wait_until(lambda: count(settings, "trades") >= stored + 3000, 90, "progress after c joined")
        procs["b"].send_signal(signal.SIGKILL)
        procs["b"].wait(10)
        assert producer.is_alive(), "the stream ended before the last fault: the test would prove less"
        producer.join(120)
        wait_until(lambda: count(settings, "trades") == len(trades), 180, "every trade stored")
        want = expected_candles(closed(trades))
        wait_until(lambda: count(settings, "candles") >= len(want), 60, "every closed candle stored")
        tops = end_offsets(settings)
        wait_until(lambda: at_ends(settings, tops), 60, "every checkpoint at its partition's end")
        wait_until(lambda: count(settings, "outbox") == 0, 60, "the outbox drained")
    finally:
        stop.set()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.send_signal(signal.SIGTERM)
        for name, p in procs.items():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    for name in ("a", "c"):
        assert procs[name].returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]

    assert sql(settings, "SELECT count(DISTINCT trade_id) FROM trades")[0][0] == len(trades)
    assert_candles_equal(db_candles(settings), want)
    published = [orjson.loads(m.value())
                 for m in consume_all(settings, settings.topic_aggregates, len(want), 60)]
    keys = Counter((c["symbol"], c["window_seconds"], c["window_start"]) for c in published)
    assert len(published) == len(want) and max(keys.values()) == 1, "each candle published exactly once"
    alert_ids = expected_alert_ids(settings, trades)
    alerts = Counter(orjson.loads(m.value())["alert_id"]
                     for m in consume_all(settings, settings.topic_alerts, len(alert_ids), 60))
    assert set(alerts) == alert_ids and max(alerts.values(), default=1) == 1, "each alert exactly once"
