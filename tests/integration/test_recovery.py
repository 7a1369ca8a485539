"""Crash safety: a processor killed with SIGKILL mid-stream loses nothing and duplicates nothing;
replaying a file twice adds no duplicate rows."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from pipeline.events import Trade
from pipeline.partition_state import PartitionState
from pipeline.processor import Processor, rulebook
from pipeline.replay import write_csv
from pipeline.simulator import MarketSimulator
from tests.integration.helpers import consume_all, produce_trades, sql, wait_until
from tests.integration.test_pipeline import BASE, assert_candles_equal, db_candles, expected_candles

pytestmark = pytest.mark.integration


def stream(n: int, seed: int = 7) -> list[Trade]:
    """``n`` simulated trades over ten symbols, 20 a second of event time, then one closing trade per
    symbol an hour later so every earlier window closes by event time."""
    sim = MarketSimulator(["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "BTC-USD", "ETH-USD", "EUR-USD", "GBP-USD",
                           "JPY-USD"], seed=seed, event_rate=0.003)
    trades = [sim.next_trade(BASE + i * 0.05)[0] for i in range(n)]
    end = BASE + n * 0.05 + 3600
    trades += [Trade(f"end-{p.symbol}", p.symbol, sim.prices[p.symbol], 1.0, "BUY", "END", end)
               for p in sim.profiles]
    return trades


def closed(trades: list[Trade]) -> list[Trade]:
    return [t for t in trades if not t.trade_id.startswith("end-")]


def spawn_processor(settings) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env(), "STOCKIT_PROCESSOR_METRICS_PORT": "0"}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "processor"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def count(settings, table: str) -> int:
    return sql(settings, f"SELECT count(*) FROM {table}")[0][0]


def expected_alert_ids(settings, trades: list[Trade]) -> set[str]:
    """The alerts an uninterrupted run raises on ``trades``, by the pure logic, per symbol."""
    ids = set()
    for sym in {t.symbol for t in trades}:
        st = PartitionState(settings.window_list, settings.grace_seconds, rulebook(settings))
        for t in trades:
            if t.symbol == sym:
                st.apply(t)
        ids |= {a.alert_id for a in st.drain()[1]}
    return ids


def test_crash001_sigkill_mid_stream_loses_and_duplicates_nothing(topics):
    settings = topics.replace(flush_interval=0.0, batch_size=500, grace_seconds=1.0)
    trades = stream(60000)
    produce_trades(settings, trades)
    first = spawn_processor(settings)
    try:
        wait_until(lambda: count(settings, "trades") >= 5000, 60, "the first checkpoints", interval=0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = count(settings, "trades")
    assert at_kill < len(trades), "the processor was killed after the stream ended; the test proves nothing"

    second = spawn_processor(settings)
    try:
        wait_until(lambda: count(settings, "trades") == len(trades), 120, "every trade stored")
        want = expected_candles(closed(trades))
        wait_until(lambda: count(settings, "candles") >= len(want), 60, "every closed candle stored")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, second.stderr.read().decode()[-3000:]

    assert sql(settings, "SELECT count(DISTINCT trade_id) FROM trades")[0][0] == len(trades)
    assert count(settings, "trades") == len(trades)
    assert_candles_equal(db_candles(settings), want)
    # Alerts: the same set an uninterrupted run raises (computed by the pure logic from the same trades).
    assert {r[0] for r in sql(settings, "SELECT alert_id FROM alerts")} == expected_alert_ids(settings, trades)
    assert count(settings, "outbox") == 0
    published = consume_all(settings, settings.topic_aggregates, len(want))
    keys = {(c["symbol"], c["window_seconds"], c["window_start"]) for c in map(orjson.loads, (m.value() for m in published))}
    assert len(keys) == len(want), "every finalized candle reached trade-aggregates"


def test_crash002_same_csv_replayed_twice_adds_no_duplicates(topics, tmp_path, run_worker):
    settings = topics.replace(flush_interval=0.2, grace_seconds=1.0)
    trades = stream(3000, seed=11)
    path = tmp_path / "trades.csv"
    write_csv(trades, path, with_ids=False)  # ids derived from content on replay
    with open(path, "a") as f:
        f.write("2024-03-01T10:00:00Z,AAPL,-5,10,BUY,X\nnot-a-time,AAPL,1,1,BUY,X\n")
    env = {**os.environ, **settings.to_env()}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", str(path), "--speed", "max"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"replayed {len(trades)} trades" in done.stdout and "2 bad rows" in done.stdout
    worker = run_worker(Processor(settings).run, "processor")
    want = expected_candles(closed(trades))
    wait_until(lambda: count(settings, "candles") >= len(want), 60, "every closed candle stored")
    wait_until(lambda: count(settings, "outbox") == 0 and count(settings, "trades") >= len(trades), 30, "flushed")
    worker.stop()
    assert count(settings, "trades") == len(trades)
    assert count(settings, "candles") == len(want)
    alerts = sql(settings, "SELECT count(*), count(DISTINCT (trade_id, alert_type)) FROM alerts")[0]
    assert alerts[0] == alerts[1] and alerts[0] > 0
    assert_candles_equal(db_candles(settings), want)
    dead = consume_all(settings, settings.topic_deadletter, 4)
    assert len(dead) == 4 and all("line" in orjson.loads(m.value()) for m in dead)


def test_crash003_replay_at_finite_speed_keeps_the_files_pacing(topics, tmp_path):
    trades = [Trade(f"S-{i}", "AAPL", 100.0 + i, 1.0, "BUY", "X", BASE + i * 6.0) for i in range(11)]  # 60 s
    path = tmp_path / "paced.csv"
    write_csv(trades, path)
    env = {**os.environ, **topics.to_env()}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", str(path), "--speed", "60"], env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "replayed 11 trades" in done.stdout
    assert elapsed >= 1.0  # 60 s of trades at 60x
    msgs = consume_all(topics, topics.topic_trades, 11)
    assert [orjson.loads(m.value())["trade_id"] for m in msgs] == [t.trade_id for t in trades]


def test_crash004_replay_rejects_a_bad_speed_and_a_file_without_columns(topics, tmp_path):
    env = {**os.environ, **topics.to_env()}
    path = tmp_path / "x.csv"
    path.write_text("when,what\n1,2\n")
    bad_speed = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", str(path), "--speed", "-3"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert bad_speed.returncode == 2 and "--speed" in bad_speed.stderr
    no_cols = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", str(path)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert no_cols.returncode == 2 and "timestamp" in no_cols.stderr
