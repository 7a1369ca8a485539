"""Circuit-breaker state machine per symbol, driven by an injected clock."""
import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from pipeline.breaker import (CLOSED, HALF_OPEN, OPEN, STATE_VALUE, BreakerPolicy, BreakerState, advance,
                              on_alert)

POLICY = BreakerPolicy()  # open 300 s, probation 60 s
T0 = 1_717_000_000.0


def opened(at=T0, alert_id="cb-1"):
    return on_alert(BreakerState("TSLA"), "CIRCUIT_BREAKER", alert_id, at, POLICY)


def half_open():
    b = advance(opened(), T0 + 300, POLICY)
    assert b.state == HALF_OPEN
    return b


def test_brk001_closed_to_open_on_circuit_breaker():
    b = opened()
    assert (b.state, b.since, b.last_event, b.trips, b.last_alert_id) == (OPEN, T0, T0, 1, "cb-1")


@pytest.mark.parametrize("alert_type", ["PRICE_SPIKE", "VOLUME_SPIKE", "SOMETHING_ELSE"])
def test_brk002_other_alerts_leave_closed_alone(alert_type):
    b = BreakerState("TSLA")
    assert on_alert(b, alert_type, "x", T0, POLICY) == b


@pytest.mark.parametrize("dt, state, since", [
    (0.0, OPEN, T0),
    (299.999, OPEN, T0),
    (300.0, HALF_OPEN, T0 + 300),
    (359.999, HALF_OPEN, T0 + 300),
    (360.0, CLOSED, T0 + 360),
    (10_000.0, CLOSED, T0 + 360),  # a long silence: both steps at once, dated when they were due
])
def test_brk003_timed_transitions(dt, state, since):
    b = advance(opened(), T0 + dt, POLICY)
    assert (b.state, b.since) == (state, since)
    assert b.trips == 1


def test_brk004_half_open_to_open_on_new_breach():
    b = on_alert(half_open(), "CIRCUIT_BREAKER", "cb-2", T0 + 310, POLICY)
    assert (b.state, b.since, b.trips, b.last_alert_id) == (OPEN, T0 + 310, 2, "cb-2")
    assert advance(b, T0 + 609.9, POLICY).state == OPEN
    assert advance(b, T0 + 610, POLICY).state == HALF_OPEN


def test_brk005_price_spike_in_half_open_restarts_probation():
    b = on_alert(half_open(), "PRICE_SPIKE", "ps-1", T0 + 340, POLICY)
    assert (b.state, b.last_event, b.trips) == (HALF_OPEN, T0 + 340, 1)
    assert advance(b, T0 + 360, POLICY).state == HALF_OPEN   # the old probation end no longer counts
    assert advance(b, T0 + 399.9, POLICY).state == HALF_OPEN
    closed = advance(b, T0 + 400, POLICY)
    assert (closed.state, closed.since) == (CLOSED, T0 + 400)


def test_brk006_volume_spike_in_half_open_does_not_restart_probation():
    b = on_alert(half_open(), "VOLUME_SPIKE", "vs-1", T0 + 340, POLICY)
    assert advance(b, T0 + 360, POLICY).state == CLOSED


def test_brk007_price_spike_after_probation_ended_finds_it_closed():
    b = on_alert(half_open(), "PRICE_SPIKE", "ps-1", T0 + 361, POLICY)
    assert (b.state, b.since) == (CLOSED, T0 + 360)


def test_brk008_new_breaker_while_open_restarts_the_open_period():
    b = on_alert(opened(), "CIRCUIT_BREAKER", "cb-2", T0 + 200, POLICY)
    assert (b.state, b.since, b.trips, b.last_alert_id) == (OPEN, T0 + 200, 1, "cb-2")
    assert advance(b, T0 + 300, POLICY).state == OPEN
    assert advance(b, T0 + 500, POLICY).state == HALF_OPEN


def test_brk009_price_spike_while_open_changes_nothing():
    b = opened()
    assert on_alert(b, "PRICE_SPIKE", "ps-1", T0 + 100, POLICY) == b


@pytest.mark.parametrize("first_state, reapply_at", [(OPEN, T0 + 200), (HALF_OPEN, T0 + 310)])
def test_brk010_reapplying_the_same_alert_is_a_no_op(first_state, reapply_at):
    b = opened(alert_id="cb-1")
    expected = advance(b, reapply_at, POLICY)
    assert expected.state == first_state
    again = on_alert(b, "CIRCUIT_BREAKER", "cb-1", reapply_at, POLICY)
    assert again == expected
    assert on_alert(again, "CIRCUIT_BREAKER", "cb-1", reapply_at, POLICY) == expected


def test_brk011_reapplied_price_spike_does_not_restart_probation():
    b = on_alert(half_open(), "PRICE_SPIKE", "ps-1", T0 + 340, POLICY)
    again = on_alert(b, "PRICE_SPIKE", "ps-1", T0 + 390, POLICY)
    assert again.last_event == T0 + 340
    assert advance(again, T0 + 400, POLICY).state == CLOSED


def test_brk012_closed_then_tripped_again_counts_a_second_trip():
    b = advance(opened(), T0 + 1000, POLICY)
    b = on_alert(b, "CIRCUIT_BREAKER", "cb-9", T0 + 1001, POLICY)
    assert (b.state, b.since, b.trips) == (OPEN, T0 + 1001, 2)


def test_brk013_policy_is_configurable():
    policy = BreakerPolicy(open_seconds=10, probation_seconds=5)
    b = on_alert(BreakerState("X"), "CIRCUIT_BREAKER", "a", 0.0, policy)
    states = [advance(b, t, policy).state for t in (9.9, 10.0, 14.9, 15.0)]
    assert states == [OPEN, HALF_OPEN, HALF_OPEN, CLOSED]


def test_brk014_state_survives_a_serialization_round_trip():
    b = on_alert(half_open(), "PRICE_SPIKE", "ps-1", T0 + 340, POLICY)
    assert msgspec.json.decode(msgspec.json.encode(b), type=BreakerState) == b
    assert STATE_VALUE == {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


ALERT_TYPES = ["CIRCUIT_BREAKER", "PRICE_SPIKE", "VOLUME_SPIKE"]
events = st.lists(st.tuples(st.floats(0, 200), st.sampled_from(ALERT_TYPES), st.integers(0, 5)), max_size=25)


@settings(max_examples=200)
@given(events=events, t1=st.floats(0, 1000), t2=st.floats(0, 1000))
def test_brk015_advance_composes_and_is_idempotent(events, t1, t2):
    b, now = BreakerState("X"), 0.0
    for dt, kind, n in events:
        now += dt
        b = on_alert(b, kind, f"{kind}-{n}", now, POLICY)
        assert b.state in STATE_VALUE
        assert b.since <= now and b.last_event <= now
    t1, t2 = now + min(t1, t2), now + max(t1, t2)
    direct = advance(b, t2, POLICY)
    assert advance(advance(b, t1, POLICY), t2, POLICY) == direct
    assert advance(direct, t2, POLICY) == direct


# (alerts as (seconds after T0, type, id), expected (state, since, trips) after the last one)
OUT_OF_ORDER = [
    ("earlier_breach_while_open", [(100, "CIRCUIT_BREAKER", "a"), (40, "CIRCUIT_BREAKER", "b")],
     (OPEN, T0 + 100, 1)),
    ("breach_stamped_before_close", [(0, "CIRCUIT_BREAKER", "a"), (400, "VOLUME_SPIKE", "v"),
                                     (200, "CIRCUIT_BREAKER", "b")], (OPEN, T0 + 360, 2)),
    ("late_spike_in_half_open", [(0, "CIRCUIT_BREAKER", "a"), (330, "PRICE_SPIKE", "p"),
                                 (310, "PRICE_SPIKE", "q")], (HALF_OPEN, T0 + 300, 1)),
]


@pytest.mark.parametrize("alerts, expected", [c[1:] for c in OUT_OF_ORDER], ids=[c[0] for c in OUT_OF_ORDER])
def test_brk016_event_time_never_runs_backwards_per_symbol(alerts, expected):
    b = BreakerState("TSLA")
    for dt, kind, alert_id in alerts:
        before = b
        b = on_alert(b, kind, alert_id, T0 + dt, POLICY)
        assert b.since >= before.since and b.last_event >= before.last_event
    assert (b.state, b.since, b.trips) == expected


@pytest.mark.parametrize("alert_type, state", [
    ("TRADING_PAUSE", OPEN), ("CIRCUIT_BREAKER", OPEN), ("LIMIT_STATE", CLOSED), ("RETURN_OUTLIER", CLOSED),
])
def test_brk017_trading_pause_trips_like_a_circuit_breaker(alert_type, state):
    assert on_alert(BreakerState("TSLA"), alert_type, "x", T0, POLICY).state == state


@pytest.mark.parametrize("alert_type, restarts", [
    ("LIMIT_STATE", True), ("RETURN_OUTLIER", True), ("PRICE_SPIKE", True), ("VOLUME_SPIKE", False),
])
def test_brk018_price_alerts_restart_the_probation(alert_type, restarts):
    b = on_alert(half_open(), alert_type, "p-1", T0 + 340, POLICY)
    assert advance(b, T0 + 360, POLICY).state == (HALF_OPEN if restarts else CLOSED)
