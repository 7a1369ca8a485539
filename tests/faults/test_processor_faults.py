"""Faults around running processors: stalls, outages, rebalances, zombies; the checker judges the result.

Each test runs real processor processes on a paced, seeded feed (``TradeFeed``), injects its fault
for real, lets the feed run on until what was sent during the fault is stored, closes every window
with end-of-stream markers and hands the lot to the checker.  Stalls are injected a few seconds of
event time before a window boundary, so a processor that lets the wall clock close windows while
it is merely behind turns the trades sent during the stall late (and changes candles).
"""
from __future__ import annotations

import time

import pytest

from tests.faults.observe import group_assignment, says_database_unavailable
from tests.faults.readback import TopicEnds, checkpoints, committed_offsets, end_offsets, stored_trades
from tests.faults.scenario import hold
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.faults

ALL_PARTITIONS = [[0, 1, 2, 3, 4, 5]]
SURGE = 150_000  # trades sent at once while PostgreSQL is down


def test_flt000_an_uninterrupted_run_is_the_reference(scenario):
    """No fault: the real processor on real servers gives exactly what the checker's reference computes."""
    s = scenario
    feed, (processor,) = s.start(seed=100)
    wait_until(lambda: stored_trades(s.settings) >= 1500, 90, "1,500 trades stored")
    report = s.finish(feed, "flt000 no fault (baseline)")
    assert processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert report.kinds["candles (PostgreSQL)"].checked >= 30


def test_flt003_postgres_frozen_60s_changes_nothing(scenario):
    s = scenario
    feed, (processor,) = s.start(seed=3)
    feed.wait_before_boundary()
    shown = []
    frozen_at = time.monotonic()

    def watch():
        if not shown and says_database_unavailable(s.settings, processor):
            shown.append(round(time.monotonic() - frozen_at, 1))

    with s.faults.frozen_for("postgres"):
        hold(60.0, watch)
    s.catch_up(feed)
    s.figures["database unavailable shown after s"] = shown[0] if shown else None
    report = s.finish(feed, "flt003 PostgreSQL frozen (SIGSTOP) 60 s mid-stream")
    assert processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert shown, "the processor's health (/metrics or heartbeat) never said the database is unavailable"


def test_flt004_postgres_killed_60s_pauses_and_resumes(scenario):
    s = scenario
    feed, (processor,) = s.start(seed=4)
    feed.wait_before_boundary()
    rss_before = processor.rss_bytes()
    rss, shown, exited = [rss_before], [], []
    killed_at = time.monotonic()

    def watch():
        rss.append(processor.rss_bytes() or 0)
        if not processor.alive() and not exited:
            exited.append(round(time.monotonic() - killed_at, 1))
        if not shown and says_database_unavailable(s.settings, processor):
            shown.append(round(time.monotonic() - killed_at, 1))

    s.faults.kill("postgres")
    hold(5.0, watch)
    feed.surge(SURGE)  # a processor that kept consuming them would grow by ~120 MiB or more
    hold(max(0.0, 60.0 - (time.monotonic() - killed_at)), watch)
    s.faults.restart("postgres")
    s.catch_up(feed)
    growth = (max(rss) - rss_before) / 2**20
    s.figures.update({"rss before MiB": round(rss_before / 2**20),
                      "rss max during outage MiB": round(max(rss) / 2**20),
                      "database unavailable shown after s": shown[0] if shown else None,
                      "processor exited after s": exited[0] if exited else None})
    report = s.finish(feed, "flt004 PostgreSQL killed (SIGKILL) for 60 s, restarted")
    assert not exited and processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert shown, "the processor's health never said the database is unavailable"
    assert growth < 100, f"RSS grew {growth:.0f} MiB while the database was down: consumption not paused"


def test_flt005_kafka_frozen_30s_changes_nothing(scenario):
    s = scenario
    feed, (processor,) = s.start(seed=5)
    feed.wait_before_boundary()
    with s.faults.frozen_for("kafka"):
        hold(30.0)
    s.catch_up(feed)
    report = s.finish(feed, "flt005 Kafka broker frozen (SIGSTOP) 30 s mid-stream")
    assert processor.alive(), "the processor exited: " + processor.log_tail()
    assert report.ok, report.summary()


def test_flt006_kafka_frozen_60s_during_outbox_publication(scenario):
    s = scenario
    feed = s.feed(seed=6)
    feed.burst(60_000, step=0.5)  # 8 h of event time: ~6,000 candles to publish
    candles_topic = TopicEnds(s.settings, s.settings.topic_aggregates)
    processor = s.workers.processor()
    try:
        # Freeze as the first candles go out: the rest of the outbox is committed, or being committed,
        # while the broker does not answer.
        wait_until(lambda: candles_topic.total() > 0, 120, "the first outbox messages on the broker",
                   interval=0.01)
        published_before = candles_topic.total()
    finally:
        candles_topic.close()
    with s.faults.frozen_for("kafka"):
        hold(60.0)
    feed.close_windows()
    s.figures["candle topic offsets before the freeze"] = published_before
    report = s.verify("flt006 Kafka broker frozen (SIGSTOP) 60 s during outbox publication",
                      s.expected(feed.horizon), settle_timeout=180)
    total = report.kinds["candles (trade-aggregates topic)"].checked
    assert processor.alive(), "the processor exited: " + processor.log_tail()
    assert report.ok, report.summary()
    assert published_before < total / 2, "the freeze came after most candles were out: the test proves little"


def test_flt007_a_rebalance_mid_stream_changes_nothing(scenario):
    s = scenario
    feed, (first,) = s.start(seed=7)
    group = s.settings.processor_group
    feed.wait_before_boundary()
    second = s.workers.processor()
    wait_until(lambda: len(group_assignment(s.settings, group)) == 2, 90,
               "two processors sharing the partitions")
    stored = stored_trades(s.settings)
    wait_until(lambda: stored_trades(s.settings) >= stored + 1000, 90, "both processors storing trades")
    feed.wait_before_boundary()
    assert second.stop() == 0, second.log_tail()
    wait_until(lambda: group_assignment(s.settings, group) == ALL_PARTITIONS, 90,
               "the first processor alone again")
    s.catch_up(feed)
    report = s.finish(feed, "flt007 rebalance: a second processor joins, then leaves")
    assert first.alive(), first.log_tail()
    assert report.ok, report.summary()


def test_flt008_killed_frozen_and_new_processors_are_fenced(scenario):
    """One processor SIGKILLed, one frozen past the session timeout then resumed, a new one started."""
    s = scenario
    feed, (killed, zombie) = s.start(seed=8, processors=2)
    group = s.settings.processor_group
    wait_until(lambda: len(group_assignment(s.settings, group)) == 2, 90,
               "two processors sharing the partitions")
    feed.wait_before_boundary()
    killed.kill()
    zombie.freeze()
    newcomer = s.workers.processor()
    wait_until(lambda: group_assignment(s.settings, group) == ALL_PARTITIONS, 120,
               "the new processor owning every partition (the others' sessions expired)")
    stored = stored_trades(s.settings)
    wait_until(lambda: stored_trades(s.settings) >= stored + 1000, 90, "the new processor storing trades")
    zombie.thaw()  # resumes with its stale partitions, buffers and maybe a flush in flight
    wait_until(lambda: len(group_assignment(s.settings, group)) == 2 or not zombie.alive(), 120,
               "the resumed processor rejoining the group")
    s.catch_up(feed)
    s.figures["resumed processor still running"] = zombie.alive()
    report = s.finish(feed, "flt008 fencing: one processor SIGKILLed, one frozen past its session, one new")
    assert newcomer.alive(), newcomer.log_tail()
    assert report.ok, report.summary()


def test_flt012_committed_offsets_follow_the_checkpoint_when_input_stops(scenario):
    s = scenario
    settings = s.settings.replace(flush_interval=5.0)  # the default: commits must not wait for the next flush
    processor = s.workers.processor(settings)
    feed = s.feed(seed=12)
    feed.burst(20_000, step=0.05)
    ends = {p: e for p, e in end_offsets(s.settings, s.settings.topic_trades).items() if e}
    checkpointed = committed = None
    deadline = time.monotonic() + 120
    while committed is None and time.monotonic() < deadline:
        now = time.monotonic()
        if checkpointed is None and all(checkpoints(s.settings).get(p, 0) >= e for p, e in ends.items()):
            checkpointed = now
            deadline = min(deadline, now + 15)
        if checkpointed is not None:
            done = committed_offsets(s.settings, s.settings.processor_group, s.settings.topic_trades)
            if all(done.get(p, -1) >= e for p, e in ends.items()):
                committed = now
        time.sleep(0.05)
    lag_after = None if committed is None or checkpointed is None else round(committed - checkpointed, 2)
    s.figures["commit after checkpoint s"] = lag_after
    feed.close_windows()
    report = s.verify("flt012 Kafka lag when input stops", s.expected(feed.horizon))
    assert processor.alive(), processor.log_tail()
    assert report.ok, report.summary()
    assert checkpointed is not None, "the checkpoint never reached the end of the input"
    assert lag_after is not None, "the committed offsets did not reach the end within 15 s of the checkpoint"
    assert lag_after <= 1.5, f"offsets committed {lag_after}s after the checkpoint"
