"""Trade.decode, the gate of every raw trade: a storable trade or InvalidRecord with a kind, nothing else."""
import json
import math
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from pipeline.events import (DEFAULT_MAX_RECORD_BYTES, EXCHANGE_MAX, INVALID_KINDS, MAX_NESTING,
                             MAX_SEQUENCE, MAX_VALUE, MIN_TIMESTAMP, MIN_VALUE, TRADE_ID_MAX, TRADER_ID_MAX,
                             InvalidRecord, Trade, iso)

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
GOOD = {"trade_id": "t-1", "symbol": "AAPL", "price": 189.5, "quantity": 100, "side": "BUY",
        "exchange": "NASDAQ", "timestamp": "2025-05-31T12:00:00.250000Z"}
GOOD_BYTES = json.dumps(GOOD).encode()


def raw(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


def with_literal(field: str, literal: bytes) -> bytes:
    """A good record whose ``field`` holds ``literal`` verbatim (big ints, bad UTF-8, NaN...)."""
    return raw(**{field: "@@"}).replace(b'"@@"', literal)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (case, raw bytes or None, expected kind, words the reason must contain)
REFUSED = [
    ("tombstone", None, "tombstone", "tombstone"),
    ("over_64k", raw(note="x" * DEFAULT_MAX_RECORD_BYTES), "too_large", "65"),
    ("two_megabyte_trader_id", raw(trader_id="T" * 2_000_000), "too_large", "too large"),
    ("nested_1000_in_extra_field", with_literal("extra", nested(1000)), "bad_json", "nested"),
    ("nested_30000_whole_record", nested(30000), "bad_json", "nested"),
    ("nested_one_level_too_deep", with_literal("extra", nested(MAX_NESTING)), "bad_json", "nested"),
    ("invalid_utf8_in_trader_id", with_literal("trader_id", b'"ab\xff\xfecd"'), "bad_json", "UTF-8"),
    ("invalid_utf8_in_unknown_field", with_literal("note", b'"\xed\xa0\x80"'), "bad_json", "UTF-8"),
    ("overlong_utf8_nul", with_literal("trader_id", b'"a\xc0\x80"'), "bad_json", "UTF-8"),
    ("lone_surrogate_escape", with_literal("trader_id", b'"\\ud800"'), "bad_json", "bad JSON"),
    ("nul_in_trader_id", raw(trader_id="ab\x00cd"), "invalid_field", "trader_id"),
    ("newline_after_symbol", raw(symbol="AAPL\n"), "invalid_field", "symbol"),
    ("tab_in_exchange", raw(exchange="NAS\tDAQ"), "invalid_field", "exchange"),
    ("escape_in_trade_id", raw(trade_id="t\x1b[31m"), "invalid_field", "trade_id"),
    ("c1_control_raw_utf8", with_literal("trade_id", '"t\u0085"'.encode()), "invalid_field", "trade_id"),
    ("trade_id_too_long", raw(trade_id="t" * (TRADE_ID_MAX + 1)), "invalid_field", "trade_id"),
    ("exchange_too_long", raw(exchange="X" * (EXCHANGE_MAX + 1)), "invalid_field", "exchange"),
    ("trader_id_too_long", raw(trader_id="T" * (TRADER_ID_MAX + 1)), "invalid_field", "trader_id"),
    ("trader_id_not_text", raw(trader_id=42), "invalid_field", "trader_id"),
    ("sequence_2_64_plus_5", with_literal("sequence", str(2**64 + 5).encode()), "invalid_field", "sequence"),
    ("sequence_2_63", with_literal("sequence", str(2**63).encode()), "invalid_field", "sequence"),
    ("sequence_negative", raw(sequence=-1), "invalid_field", "sequence"),
    ("sequence_400_digits", with_literal("sequence", b"9" * 400), "invalid_field", "sequence"),
    ("quantity_1e308", raw(quantity=1e308), "invalid_field", "quantity"),
    ("price_1e308", raw(price=1e308), "invalid_field", "price"),
    ("price_above_bound", raw(price=MAX_VALUE * 1.001), "invalid_field", "price"),
    ("quantity_below_bound", raw(quantity=MIN_VALUE / 2), "invalid_field", "quantity"),
    ("subnormal_price", raw(price=5e-324), "invalid_field", "price"),
    ("price_huge_int", with_literal("price", b"1" + b"0" * 400), "invalid_field", "price"),
    ("quantity_nan", with_literal("quantity", b"NaN"), "bad_json", "bad JSON"),
    ("quantity_minus_infinity", with_literal("quantity", b"-Infinity"), "bad_json", "bad JSON"),
    ("timestamp_too_long", raw(timestamp="2025-05-31T12:00:00" + "0" * 60), "invalid_field", "timestamp"),
    ("timestamp_301_s_ahead", raw(timestamp=iso(NOW + 301)), "bad_timestamp", "future"),
    ("timestamp_year_9999", raw(timestamp="9999-12-31T23:59:59Z"), "bad_timestamp", "future"),
    ("timestamp_1969", raw(timestamp="1969-12-31T23:59:59Z"), "bad_timestamp", "before 1970"),
    ("timestamp_garbage", raw(timestamp="2025-05-31T12:00:00ZZ"), "bad_timestamp", "unparseable"),
    ("byte_order_mark", b"\xef\xbb\xbf" + GOOD_BYTES, "bad_json", "bad JSON"),
    ("text_not_bytes", GOOD_BYTES.decode(), "bad_json", "bytes"),
    ("two_documents", GOOD_BYTES + GOOD_BYTES, "bad_json", "bad JSON"),
]


@pytest.mark.parametrize("value, kind, words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_gate001_refuses_with_a_kind_and_a_one_line_reason(value, kind, words):
    with pytest.raises(InvalidRecord) as info:
        Trade.decode(value, NOW)
    assert (info.value.kind, words in info.value.reason) == (kind, True), info.value.reason
    assert "\n" not in info.value.reason and len(info.value.reason) < 400


ACCEPTED = [
    ("black_monday_1987", raw(timestamp="1987-10-19T14:30:00Z")),
    ("epoch", raw(timestamp="1970-01-01T00:00:00Z")),
    ("exactly_300_s_ahead", raw(timestamp=iso(NOW + 300))),
    ("largest_values", raw(price=MAX_VALUE, quantity=MAX_VALUE)),
    ("smallest_values", raw(price=MIN_VALUE, quantity=MIN_VALUE)),
    ("largest_sequence", with_literal("sequence", str(MAX_SEQUENCE).encode())),
    ("longest_strings", raw(trade_id="t" * TRADE_ID_MAX, exchange="X" * EXCHANGE_MAX,
                            trader_id="T" * TRADER_ID_MAX)),
    ("deepest_extra_field", with_literal("extra", nested(MAX_NESTING - 1))),
    ("brackets_inside_strings", raw(note="[{" * 5000, trader_id="[[[")),
    ("unicode_trader_id", raw(trader_id="Zoë 🚀 交易员")),
    ("escaped_unicode", with_literal("trader_id", b'"\\u00e9\\ud83d\\ude00"')),
    ("bytearray_value", bytearray(GOOD_BYTES)),
    ("memoryview_value", memoryview(GOOD_BYTES)),
]


@pytest.mark.parametrize("value", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_gate002_accepts_old_boundary_and_odd_but_valid_records(value):
    assert_storable(Trade.decode(value, NOW))


def test_gate003_size_limit_is_a_keyword_with_a_default():
    record = raw(note="x" * 500)
    assert Trade.decode(record, NOW, 300.0).trade_id == "t-1"
    with pytest.raises(InvalidRecord) as info:
        Trade.decode(record, NOW, 300.0, max_bytes=500)
    assert info.value.kind == "too_large" and str(len(record)) in info.value.reason


def assert_storable(t: Trade, now: float = NOW, max_future: float = 300.0) -> None:
    """What PostgreSQL's COPY text format and the rolling arithmetic need of an accepted trade."""
    for text in (t.trade_id, t.symbol, t.side, t.exchange, t.trader_id or ""):
        assert isinstance(text, str)
        text.encode("utf-8")  # no lone surrogates
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text), repr(text)
    assert 1 <= len(t.trade_id) <= TRADE_ID_MAX and len(t.exchange) <= EXCHANGE_MAX
    assert t.trader_id is None or len(t.trader_id) <= TRADER_ID_MAX
    assert t.sequence is None or (isinstance(t.sequence, int) and 0 <= t.sequence <= MAX_SEQUENCE)
    assert MIN_VALUE <= t.price <= MAX_VALUE and MIN_VALUE <= t.quantity <= MAX_VALUE
    assert math.isfinite(t.price * t.quantity * 1e9), "a billion such trades must still sum to a finite value"
    assert MIN_TIMESTAMP <= t.ts <= now + max_future
    assert Trade.decode(t.encode(), now, max_future) == t


def decode_or_reason(value):
    """The gate's contract: a Trade, or InvalidRecord with a known kind; anything else fails the test."""
    try:
        t = Trade.decode(value, NOW)
    except InvalidRecord as exc:
        assert exc.kind in INVALID_KINDS and exc.reason and "\n" not in exc.reason and len(exc.reason) < 400
        event(exc.kind)
        return exc
    assert_storable(t)
    event("accepted")
    return t


# Arbitrary JSON: huge integers, every float (NaN and infinities become non-JSON literals), any
# unicode (lone surrogates included), nesting up to thousands of levels.
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**200, max_value=2**200)
           | st.floats() | st.text() | st.text(st.characters(min_codepoint=0, max_codepoint=0x3000)))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def to_json(value, ensure_ascii: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8 on purpose


def deepen(inner: bytes, depth: int, shape: str) -> bytes:
    """``inner`` wrapped ``depth`` times in arrays or objects (as text: json.dumps would recurse)."""
    opening, closing = (b"[", b"]") if shape == "list" else (b'{"k":', b"}")
    return opening * depth + inner + closing * depth


plausible_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20)
in_bounds = st.floats(MIN_VALUE, MAX_VALUE)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2048))
def test_gate004_arbitrary_bytes(data):
    decode_or_reason(data)


@FUZZ
@given(value=json_values, ascii_only=st.booleans())
def test_gate005_arbitrary_json_documents(value, ascii_only):
    decode_or_reason(to_json(value, ascii_only))


@FUZZ
@given(field=st.sampled_from(sorted(GOOD) + ["trader_id", "sequence", "extra"]), value=json_values,
       depth=st.integers(0, 3000) | st.integers(0, 40), shape=st.sampled_from(["list", "dict"]),
       ascii_only=st.booleans())
def test_gate006_any_json_in_any_field_of_a_good_record(field, value, depth, shape, ascii_only):
    record = to_json({**GOOD, field: "@@"}, ascii_only)
    decode_or_reason(record.replace(b'"@@"', deepen(to_json(value, ascii_only), depth, shape)))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD_BYTES)), st.integers(0, 3), st.binary(max_size=4)),
                      min_size=1, max_size=6))
def test_gate007_mutated_good_records(edits):
    data = bytearray(GOOD_BYTES)
    for pos, cut, insert in edits:
        data[pos:pos + cut] = insert
    decode_or_reason(bytes(data))


@FUZZ
@given(trade_id=st.text(min_size=1, max_size=200) | plausible_text.filter(bool),
       exchange=st.text(max_size=40) | plausible_text,
       trader_id=st.none() | st.text(max_size=80) | plausible_text,
       sequence=st.none() | st.integers(-2**70, 2**70) | st.integers(0, MAX_SEQUENCE),
       price=st.floats() | in_bounds, quantity=st.floats() | in_bounds,
       seconds=st.floats(-1e12, 1e12) | st.floats(0, NOW + 600))
def test_gate008_field_values_from_the_whole_domain(trade_id, exchange, trader_id, sequence, price, quantity,
                                                    seconds):
    record = {**GOOD, "trade_id": trade_id, "exchange": exchange, "trader_id": trader_id,
              "sequence": sequence, "price": price, "quantity": quantity}
    try:
        record["timestamp"] = datetime.fromtimestamp(seconds, timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):
        record["timestamp"] = str(seconds)
    decode_or_reason(to_json(record, ensure_ascii=False))
