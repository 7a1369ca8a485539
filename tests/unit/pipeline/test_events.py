"""Trade/Candle/Alert records: validation of untrusted trades and wire round trips."""
import json
import math
import time
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from pipeline.events import (DEFAULT_SOURCE, SOURCE_MAX, Alert, Candle, InvalidRecord, Trade, alert_id_for,
                             check_source, iso, parse_iso)

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
GOOD = {"trade_id": "t-1", "symbol": "AAPL", "price": 189.5, "quantity": 100, "side": "BUY",
        "exchange": "NASDAQ", "timestamp": "2025-05-31T12:00:00.250000Z"}


def raw(**changes):
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()


def raw_price(literal):
    """A record whose price is the given JSON literal, verbatim (NaN and Infinity are not JSON)."""
    return raw(price=123456.5).replace(b"123456.5", literal)


# (code, raw bytes, words the reason must contain)
INVALID = [
    ("bad_json", b'{"trade_id": "t-1", ', "bad JSON"),
    ("not_json", b"hello", "bad JSON"),
    ("empty", b"", "bad JSON"),
    ("array", b"[1, 2]", "invalid field"),
    ("missing_price", raw(price=...), "price"),
    ("missing_symbol", raw(symbol=...), "symbol"),
    ("missing_timestamp", raw(timestamp=...), "timestamp"),
    ("missing_side", raw(side=...), "side"),
    ("negative_price", raw(price=-1.0), "price"),
    ("zero_price", raw(price=0), "price"),
    ("negative_quantity", raw(quantity=-5), "quantity"),
    ("zero_quantity", raw(quantity=0.0), "quantity"),
    ("nan_price", raw_price(b"NaN"), "bad JSON"),
    ("infinity_price", raw_price(b"Infinity"), "bad JSON"),
    ("overflow_price", raw_price(b"1e999"), "price"),
    ("string_price", raw(price="189.5"), "price"),
    ("bool_quantity", raw(quantity=True), "quantity"),
    ("null_price", raw(price=None), "price"),
    ("lowercase_side", raw(side="buy"), "side"),
    ("unknown_side", raw(side="SHORT"), "side"),
    ("lowercase_symbol", raw(symbol="aapl"), "symbol"),
    ("empty_trade_id", raw(trade_id=""), "trade_id"),
    ("numeric_timestamp", raw(timestamp=1717000000), "timestamp"),
    ("word_timestamp", raw(timestamp="yesterday"), "unparseable timestamp"),
    ("empty_timestamp", raw(timestamp=""), "unparseable timestamp"),
    ("month_13", raw(timestamp="2025-13-01T00:00:00Z"), "unparseable timestamp"),
    ("before_1970", raw(timestamp="1969-12-31T23:59:59Z"), "before 1970"),
    ("year_1", raw(timestamp="0001-01-01T00:00:00+01:00"), "before 1970"),
    ("year_9999", raw(timestamp="9999-12-31T23:59:59Z"), "future"),
    ("two_days_ahead", raw(timestamp="2025-06-03T00:00:00Z"), "future"),
    ("a_day_ahead", raw(timestamp="2025-06-01T23:00:00Z"), "future"),
    ("six_minutes_ahead", raw(timestamp="2025-06-01T00:06:00Z"), "future"),
]


@pytest.mark.parametrize("raw_bytes, words", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_evt001_decode_rejects_invalid_records_with_a_reason(raw_bytes, words):
    with pytest.raises(InvalidRecord) as info:
        Trade.decode(raw_bytes, NOW)
    assert words in info.value.reason
    assert str(info.value) == info.value.reason
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("timestamp, expected", [
    ("1987-10-19T14:30:00Z", datetime(1987, 10, 19, 14, 30, tzinfo=timezone.utc).timestamp()),
    ("1970-01-01T00:00:00Z", 0.0),
    ("2025-05-31T12:00:00", datetime(2025, 5, 31, 12, tzinfo=timezone.utc).timestamp()),  # naive = UTC
    ("2025-05-31T14:00:00+02:00", datetime(2025, 5, 31, 12, tzinfo=timezone.utc).timestamp()),
    ("2025-05-31T12:00:00.250000Z", datetime(2025, 5, 31, 12, tzinfo=timezone.utc).timestamp() + 0.25),
    ("2025-06-01T00:05:00Z", NOW + 300.0),  # exactly the allowed future limit (5 minutes by default)
], ids=["black_monday_1987", "epoch", "naive_is_utc", "offset", "fraction", "future_limit"])
def test_evt002_decode_accepts_old_naive_and_offset_timestamps(timestamp, expected):
    t = Trade.decode(raw(timestamp=timestamp), NOW)
    assert t.ts == expected


def test_evt003_decode_keeps_every_field_and_ignores_unknown_ones():
    data = {**GOOD, "trader_id": "T0042", "sequence": 7, "venue_extra": {"x": 1}}
    t = Trade.decode(json.dumps(data).encode(), NOW)
    assert (t.trade_id, t.symbol, t.price, t.quantity, t.side, t.exchange, t.trader_id, t.sequence) == \
        ("t-1", "AAPL", 189.5, 100.0, "BUY", "NASDAQ", "T0042", 7)
    assert isinstance(t.quantity, float)
    no_exchange = Trade.decode(raw(exchange=...), NOW)
    assert no_exchange.exchange == "" and no_exchange.trader_id is None and no_exchange.sequence is None


def test_evt004_max_future_is_configurable():
    one_hour_ahead = raw(timestamp=iso(NOW + 3600))
    assert Trade.decode(one_hour_ahead, NOW, 3600.0).ts == NOW + 3600
    with pytest.raises(InvalidRecord, match="future"):
        Trade.decode(one_hour_ahead, NOW)
    with pytest.raises(InvalidRecord, match="future"):
        Trade.decode(one_hour_ahead, NOW, max_future=60.0)


micros = st.integers(min_value=0, max_value=4_102_444_800 * 10**6)  # 1970 .. 2100, whole microseconds
positive = st.floats(min_value=1e-8, max_value=1e12, allow_nan=False, allow_infinity=False)
symbols = st.from_regex(r"\A[A-Z0-9][A-Z0-9._/\-]{0,23}\Z")
safe_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)


@settings(max_examples=150)
@given(us=micros)
def test_evt005_iso_round_trips_whole_microseconds_exactly(us):
    ts = us / 1e6
    text = iso(ts)
    assert text.endswith("Z")
    assert parse_iso(text) == ts


@settings(max_examples=150)
@given(trade_id=safe_text.filter(bool), symbol=symbols, price=positive, qty=positive,
       side=st.sampled_from(["BUY", "SELL"]), us=micros, trader=st.none() | safe_text,
       seq=st.none() | st.integers(0, 2**62))
def test_evt006_trade_wire_round_trip(trade_id, symbol, price, qty, side, us, trader, seq):
    t = Trade(trade_id, symbol, price, qty, side, "NYSE", us / 1e6, trader, seq)
    assert Trade.decode(t.encode(), now=us / 1e6) == t


def _candle(**changes):
    c = dict(symbol="BTC-USD", window_seconds=300, window_start=1_717_000_200.0, window_end=1_717_000_500.0,
             open=67000.5, high=67250.0, low=66900.25, close=67100.0, volume=12.5, vwap=67080.125,
             trade_count=42, buy_volume=7.25, sell_volume=5.25)
    c.update(changes)
    return Candle(**c)


def test_evt007_candle_wire_round_trip_and_field_names():
    c = _candle()
    wire = json.loads(c.encode())
    assert set(wire) == {"symbol", "window_seconds", "window_start", "window_end", "open", "high", "low",
                         "close", "volume", "vwap", "trade_count", "buy_volume", "sell_volume", "source"}
    assert wire["window_start"] == "2024-05-29T16:30:00.000000Z" and wire["source"] == DEFAULT_SOURCE
    assert Candle.from_wire(wire) == c
    del wire["source"]  # a candle published before sources existed
    assert Candle.from_wire(wire) == c
    replayed = _candle(source="spx-daily")
    assert Candle.from_wire(json.loads(replayed.encode())) == replayed
    assert c.key() == ("BTC-USD", 300, 1_717_000_200.0)
    old = _candle(window_start=561_600_000.0, window_end=561_600_300.0)  # 1987
    assert Candle.from_wire(json.loads(old.encode())) == old


@settings(max_examples=100)
@given(us=micros, price=positive, ref=positive, dev=st.floats(-1e6, 1e6), qty=positive,
       atype=st.sampled_from(["CIRCUIT_BREAKER", "PRICE_SPIKE", "VOLUME_SPIKE"]),
       message=st.text(max_size=60))
def test_evt008_alert_wire_round_trip(us, price, ref, dev, qty, atype, message):
    a = Alert(alert_id=alert_id_for("t-9", atype), alert_type=atype, severity="HIGH", symbol="MSFT",
              price=price, reference=ref, deviation=dev, trade_id="t-9", ts=us / 1e6, message=message,
              side="SELL", quantity=qty)
    wire = json.loads(a.encode())
    assert "ts" not in wire and wire["timestamp"] == iso(us / 1e6)
    assert {"alert_id", "alert_type", "severity", "symbol", "price", "reference", "deviation", "trade_id",
            "timestamp", "message"} <= set(wire)
    assert Alert.decode(a.encode()) == a
    assert Alert.from_wire(wire) == a


@pytest.mark.parametrize("a, b, same", [
    (("t-1", "PRICE_SPIKE"), ("t-1", "PRICE_SPIKE"), True),
    (("t-1", "PRICE_SPIKE"), ("t-1", "VOLUME_SPIKE"), False),
    (("t-1", "PRICE_SPIKE"), ("t-2", "PRICE_SPIKE"), False),
])
def test_evt009_alert_id_is_deterministic_per_trade_and_type(a, b, same):
    assert (alert_id_for(*a) == alert_id_for(*b)) is same
    assert len(alert_id_for(*a)) == 24 and all(ch in "0123456789abcdef" for ch in alert_id_for(*a))


def test_evt010_records_are_immutable():
    t = Trade.decode(raw(), NOW)
    with pytest.raises(AttributeError):
        t.price = 1.0  # type: ignore[misc]
    assert math.isfinite(t.ts)


@pytest.fixture
def new_york_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_evt011_naive_timestamp_is_utc_whatever_the_machine_zone(new_york_local_time):
    assert time.timezone != 0
    t = Trade.decode(raw(timestamp="2025-05-31T12:00:00"), NOW)
    assert t.ts == datetime(2025, 5, 31, 12, tzinfo=timezone.utc).timestamp()
    assert iso(t.ts) == "2025-05-31T12:00:00.000000Z"


# --- the source of a trade ------------------------------------------------------------------------
@pytest.mark.parametrize("source, kept", [
    (..., DEFAULT_SOURCE),                       # absent: the default source
    ("spx-daily", "spx-daily"), ("replay.2015_q1", "replay.2015_q1"), ("0", "0"),
    ("a" * SOURCE_MAX, "a" * SOURCE_MAX),
])
def test_evt020_a_trade_names_its_source_or_has_the_default_one(source, kept):
    t = Trade.decode(raw(source=source), NOW)
    assert t.source == kept
    assert Trade.decode(t.encode(), NOW) == t
    assert ("source" in json.loads(t.encode())) is (kept != DEFAULT_SOURCE)  # the default stays off the wire


@pytest.mark.parametrize("source", ["", "SPX", "spx daily", "-spx", "a" * (SOURCE_MAX + 1), "live\n",
                                    "spx\u0000", "spx/daily", "é", 7, None])
def test_evt021_a_source_that_is_no_source_name_is_refused(source):
    with pytest.raises(InvalidRecord, match="source") as caught:
        Trade.decode(raw(source=source), NOW)
    assert caught.value.kind == "invalid_field"


def test_evt022_a_source_name_says_what_one_is():
    assert check_source("spx-daily") == "spx-daily"
    for bad in ("", "SPX", "x" * 41, "live\n", "a b"):
        with pytest.raises(ValueError, match="lower-case letters, digits"):
            check_source(bad)


def test_evt023_an_alert_carries_its_source_on_the_wire():
    a = Alert(alert_id=alert_id_for("t-9", "PRICE_SPIKE"), alert_type="PRICE_SPIKE", severity="HIGH",
              symbol="SPX", price=1.0, reference=1.0, deviation=7.0, trade_id="t-9", ts=NOW, message="m",
              source="spx-daily")
    wire = json.loads(a.encode())
    assert wire["source"] == "spx-daily" and Alert.decode(a.encode()) == a
    del wire["source"]  # an alert published before sources existed
    assert Alert.decode(json.dumps(wire).encode()).source == DEFAULT_SOURCE
    with pytest.raises(InvalidRecord, match="source"):
        Alert.decode(json.dumps({**wire, "source": "Not A Source"}).encode())
