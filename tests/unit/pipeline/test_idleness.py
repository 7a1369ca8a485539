"""Idle time counts only across an unbroken run of broker confirmations that the partition is caught up."""
import pytest

from pipeline.idleness import CatchUp


def run(answers, max_gap=3.0):
    c = CatchUp(max_gap)
    for a in answers:
        if a == "record":
            c.consumed()
        else:
            c.answer(*a)
    return c.idle_seconds


@pytest.mark.parametrize("answers, idle", [
    ([], 0.0),
    ([(10.0, 5, 5)], 0.0),                                   # one confirmation: no span yet
    ([(10.0, 5, 5), (11.0, 5, 5), (12.5, 5, 5)], 2.5),       # caught up from 10 to 12.5
    ([(10.0, 5, 5), (11.0, 5, 6), (12.0, 5, 5)], 0.0),       # more to read at 11: the run restarts at 12
    ([(10.0, 5, 5), (11.0, 5, None), (12.0, 5, 5)], 0.0),    # the broker did not answer: not confirmed
    ([(10.0, 5, 5), (11.0, 5, 5), "record", (12.0, 6, 6)], 0.0),  # a record arrived
    ([(10.0, 5, 5), (20.0, 5, 5)], 0.0),                     # a 10 s gap (we were frozen): not idle time
    ([(10.0, 5, 5), (20.0, 5, 5), (21.0, 5, 5)], 1.0),
    ([(10.0, None, 5), (11.0, None, 5)], 0.0),               # our position unknown
])
def test_idle001_idle_time_needs_unbroken_confirmations(answers, idle):
    assert run(answers) == pytest.approx(idle)
