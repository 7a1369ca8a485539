"""Idle time of a source counts only across an unbroken run of broker answers the processor has read up to,
asked after the source's last record was read — whatever other sources do meanwhile."""
import pytest

from pipeline.idleness import CatchUp

LIVE, REPLAY = "live", "replay"


def run(steps, source=LIVE, max_gap=3.0):
    """Steps: ("read", at, source, records so far, next offset), ("answer", asked_at, end), ("at", offset)."""
    c = CatchUp(max_gap)
    for kind, *args in steps:
        if kind == "read":
            at, name, records, position = args
            c.consumed(name, records, position, at)
        elif kind == "answer":
            c.answer(*args)
        else:
            c.read_to(*args)
    return c.idle_seconds(source)


READ = ("read", 9.0, LIVE, 5, 5)  # five records of the source read by 9.0, the last at offset 4


@pytest.mark.parametrize("steps, idle", [
    ([], 0.0),
    ([READ, ("answer", 10.0, 5), ("at", 5)], 0.0),                          # one answer: no span yet
    ([READ, ("answer", 10.0, 5), ("answer", 11.0, 5), ("answer", 12.5, 5), ("at", 5)], 2.5),
    # more to read at 11: confirmed only once read up to it; a record of the source was among it
    ([READ, ("answer", 10.0, 5), ("answer", 11.0, 6), ("answer", 12.0, 6), ("at", 5),
      ("read", 12.1, LIVE, 6, 6), ("at", 6)], 0.0),
    ([READ, ("answer", 10.0, 5), ("answer", 11.0, None), ("answer", 12.0, 5), ("at", 5)], 0.0),  # no answer
    ([READ, ("answer", 10.0, 5), ("answer", 20.0, 5), ("at", 5)], 0.0),     # a 10 s gap: we were frozen
    ([READ, ("answer", 10.0, 5), ("answer", 20.0, 5), ("answer", 21.0, 5), ("at", 5)], 1.0),
    ([("answer", 10.0, 5), ("answer", 11.0, 5), ("at", 5)], 0.0),           # nothing of the source was read
    ([("read", 9.0, LIVE, 5, None), ("answer", 10.0, 5), ("answer", 11.0, 5), ("at", 5)], 0.0),  # unknown
    # not yet read up to the answers: not confirmed (the records may be the source's)
    ([READ, ("answer", 10.0, 9), ("answer", 11.0, 9), ("at", 8)], 0.0),
    ([READ, ("answer", 10.0, 9), ("answer", 11.0, 9), ("at", 9)], 1.0),
    # the same count again is not a new record
    ([READ, ("answer", 10.0, 5), ("read", 10.5, LIVE, 5, 5), ("answer", 11.0, 5), ("at", 5)], 1.0),
    # an answer asked before the last record was read does not start the span, even if it ends past it
    ([("read", 10.2, LIVE, 5, 5), ("answer", 10.0, 5), ("answer", 10.5, 5), ("answer", 11.5, 5), ("at", 5)],
     1.0),
])
def test_idle001_idle_time_needs_unbroken_confirmed_answers(steps, idle):
    assert run(steps) == pytest.approx(idle)


def test_idle002_a_source_is_idle_while_another_keeps_the_partition_busy():
    c = CatchUp(3.0)
    c.consumed(REPLAY, 100, 100, 9.0)  # the replay ended at offset 99
    c.consumed(LIVE, 1, 100, 9.0)
    offset = 100
    for i in range(21):  # live trades keep arriving: the partition is never caught up when asked
        offset += 10
        c.answer(10.0 + i * 0.5, offset + 5)
        c.consumed(LIVE, 1 + offset, offset, 10.1 + i * 0.5)
        c.read_to(offset)
    assert c.idle_seconds(LIVE) == 0.0
    assert c.idle_seconds(REPLAY) == pytest.approx(9.5)  # answers from 10.0 on, confirmed through 19.5
    c.consumed(REPLAY, 101, offset + 1, 21.0)  # the replay is back
    assert c.idle_seconds(REPLAY) == 0.0


def test_idle003_a_stall_restarts_every_source():
    c = CatchUp(3.0)
    c.consumed(REPLAY, 10, 10, 9.0)
    for t in (10.0, 10.5, 11.0):
        c.answer(t, 10)
    c.read_to(10)
    assert c.idle_seconds(REPLAY) == pytest.approx(1.0)
    c.answer(20.0, 10)  # we were frozen for 9 s: not idle time
    c.read_to(10)
    assert c.idle_seconds(REPLAY) == 0.0
    c.answer(21.0, 10)
    c.read_to(10)
    assert c.idle_seconds(REPLAY) == pytest.approx(1.0)
