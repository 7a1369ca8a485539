"""The pipeline verdict behind the banner and /health."""
import pytest

from app.status import DOWN, OK, STALE, STOPPED, assess

NOW = 1_800_000_000.0


def verdict(**kw):
    base = dict(now=NOW, redis_ok=True, database_ok=True, processor_heartbeat={"ts": NOW - 1}, newest_trade_ts=NOW - 2,
                stale_after=10.0)
    base.update(kw)
    return assess(**base)


@pytest.mark.parametrize("kw, state, level, words", [
    ({}, OK, "success", "Live"),
    ({"redis_ok": False}, DOWN, "danger", "Redis"),
    ({"processor_heartbeat": None}, STOPPED, "danger", "not running"),
    ({"processor_heartbeat": None, "newest_trade_ts": None}, STOPPED, "danger", "no data yet"),
    ({"processor_heartbeat": {"ts": NOW - 25}}, STOPPED, "danger", "silent for 25 s"),
    ({"newest_trade_ts": NOW - 45}, STALE, "warning", "No new trades for 45 s"),
    ({"newest_trade_ts": NOW - 3 * 3600}, STALE, "warning", "3 h"),
    ({"newest_trade_ts": None}, STALE, "warning", "no trade has arrived yet"),
    ({"database_ok": False}, OK, "warning", "history database is unreachable"),
])
def test_stat001_verdicts(kw, state, level, words):
    v = verdict(**kw)
    assert (v.state, v.level) == (state, level)
    assert words in v.message


def test_stat002_database_note_added_to_other_states():
    v = verdict(processor_heartbeat=None, database_ok=False)
    assert v.state == STOPPED and "history database is unreachable" in v.message
    assert v.to_dict()["database"] is False


def test_stat003_processor_reports_database_unavailable_since():
    v = verdict(processor_heartbeat={"ts": NOW - 1, "database_unavailable_since": NOW - 75})
    assert (v.state, v.level) == (STALE, "danger")
    assert "Database unavailable since" in v.message and "75 s" in v.message
    assert v.database_unavailable_since == "2027-01-15T07:58:45Z"
    assert verdict(processor_heartbeat={"ts": NOW - 1, "database_unavailable_since": None}).state == OK
