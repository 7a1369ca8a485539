"""Snoozes: matching, the engine's cache, and requests checked field by field."""
import pytest

from pipeline.snooze import Snooze, SnoozeBook, SnoozeRequestError, check_request, snoozed_by

NOW = 1_800_000_000.0


def snooze(i, alert_type=None, symbol=None, source=None, start=NOW - 60, end=NOW + 60):
    return Snooze(i, alert_type, symbol, source, start, end)


@pytest.mark.parametrize("s, alert, matches", [
    (snooze(1, "VOLUME_SPIKE"), ("VOLUME_SPIKE", "AAPL", None), True),
    (snooze(1, "VOLUME_SPIKE"), ("PRICE_SPIKE", "AAPL", None), False),
    (snooze(1, symbol="AAPL"), ("PRICE_SPIKE", "AAPL", None), True),
    (snooze(1, "PRICE_SPIKE", "AAPL"), ("PRICE_SPIKE", "MSFT", None), False),
    (snooze(1, source="replay-2008"), ("PRICE_SPIKE", "AAPL", "replay-2008"), True),
    (snooze(1, source="replay-2008"), ("PRICE_SPIKE", "AAPL", None), False),  # no source: matches no source
    (snooze(1, source="replay-2008"), ("PRICE_SPIKE", "AAPL", "live"), False),
])
def test_snz001_every_matcher_given_must_equal(s, alert, matches):
    assert s.matches(*alert) is matches


def test_snz002_only_active_snoozes_count_and_the_oldest_wins():
    snoozes = [snooze(3, symbol="AAPL"), snooze(2, "PRICE_SPIKE"), snooze(1, symbol="AAPL", end=NOW),
               snooze(4, symbol="AAPL", start=NOW + 1)]
    assert snoozed_by(snoozes, "PRICE_SPIKE", "AAPL", None, NOW).snooze_id == 2
    # 1 ended at NOW, 4 has not begun
    assert snoozed_by(snoozes, "VOLUME_SPIKE", "AAPL", None, NOW).snooze_id == 3
    assert snoozed_by(snoozes, "VOLUME_SPIKE", "MSFT", None, NOW) is None
    assert snoozed_by(snoozes, "VOLUME_SPIKE", "AAPL", None, NOW + 1).snooze_id == 3


def test_snz003_the_book_is_due_every_refresh_period():
    book = SnoozeBook(refresh=2.0)
    assert book.due(100.0)
    book.replace([snooze(1, "PRICE_SPIKE")], 100.0)
    assert not book.due(101.9) and book.due(102.0)
    assert book.matching("PRICE_SPIKE", "X", None, NOW).snooze_id == 1
    book.replace([], 102.0)
    assert book.matching("PRICE_SPIKE", "X", None, NOW) is None


def good(**changes):
    return {"alert_type": "volume_spike", "symbol": " btc-usd ", "duration_minutes": 30, "comment": " why ",
            **changes}


def test_snz004_a_good_request_is_normalised():
    req = check_request(good(), NOW)
    assert (req.alert_type, req.symbol, req.source, req.comment) == ("VOLUME_SPIKE", "BTC-USD", None, "why")
    assert (req.starts_at, req.ends_at) == (NOW, NOW + 1800)
    later = check_request(good(duration_minutes=None, starts_at=NOW + 60, ends_at="2027-01-15T09:00:00Z"),
                          NOW)
    assert later.starts_at == NOW + 60 and later.ends_at > later.starts_at


@pytest.mark.parametrize("changes, field", [
    ({"alert_type": None, "symbol": None}, "alert_type"),
    ({"alert_type": "LOW"}, "alert_type"),
    ({"symbol": "a b"}, "symbol"),
    ({"source": "x" * 65}, "source"),
    ({"duration_minutes": None}, "ends_at"),
    ({"ends_at": NOW + 600}, "ends_at"),
    ({"duration_minutes": "soon"}, "duration_minutes"),
    ({"duration_minutes": 0.5}, "duration_minutes"),
    ({"duration_minutes": 60 * 24 * 31}, "duration_minutes"),
    ({"duration_minutes": True}, "duration_minutes"),
    ({"duration_minutes": None, "ends_at": NOW - 1}, "ends_at"),
    ({"duration_minutes": None, "starts_at": NOW, "ends_at": NOW + 31 * 86400}, "ends_at"),
    ({"starts_at": "yesterday-ish"}, "starts_at"),
    ({"comment": ""}, "comment"),
    ({"comment": "x" * 1001}, "comment"),
    ({"comment": 5}, "comment"),
    ({"reason": "x"}, "reason"),
])
def test_snz005_bad_requests_name_the_field(changes, field):
    with pytest.raises(SnoozeRequestError) as err:
        check_request(good(**changes), NOW)
    assert err.value.field == field and err.value.message
