"""decode_batch, the gate of a whole batch: per record exactly what Trade.decode gives — the same trades,
the same reasons — whatever the mix of records, and no record can shift its neighbours."""
import json
import random
from datetime import datetime, timezone

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.events import InvalidRecord, Trade, iso
from pipeline.trade_batch import TradeColumns, TradeRows, canonical_timestamps, decode_batch
from tests.unit.pipeline.test_trade_gate import GOOD, NOW, REFUSED, raw

ACCEPTED = [raw(trade_id=f"g{i}", timestamp=iso(NOW - 1000 + i * 0.25), sequence=i) for i in range(40)] + [
    raw(timestamp="2025-05-31T12:00:00+02:00"), raw(timestamp="2025-05-31 12:00:00"), raw(source="replay-1"),
    raw(trader_id=None), raw(timestamp="1970-01-01T00:00:00.000000Z"), raw(price=1, quantity=2),
    json.dumps({**GOOD, "extra": {"a": [1, 2]}}).encode(), b"  " + raw() + b"\n", raw(trade_id="caf\u00e9"),
    raw(trade_id="a\\\\b"), raw(timestamp="2025-02-29T00:00:00.000000Z"), raw(timestamp="2024-02-29T23:59:59.999999Z")]


def per_record(values):
    """The reference: Trade.decode of each record on its own."""
    out = []
    for v in values:
        try:
            out.append(Trade.decode(v, NOW))
        except InvalidRecord as exc:
            out.append((exc.kind, exc.reason))
    return out


def batch(values):
    cols, positions, invalid = decode_batch(values, NOW)
    out = [None] * len(values)
    for row, pos in enumerate(positions):
        out[pos] = cols.trade(row)
    for pos, exc in invalid:
        out[pos] = (exc.kind, exc.reason)
    return out


def test_tbat001_every_refused_and_accepted_case_alone_and_mixed():
    cases = [c[1] for c in REFUSED] + ACCEPTED
    for value in cases:
        assert batch([value]) == per_record([value])
    rng = random.Random(5)
    for _ in range(30):
        mix = rng.sample(cases, k=len(cases)) + ACCEPTED[:40]
        assert batch(mix) == per_record(mix)


def test_tbat002_a_batch_of_good_records_takes_the_fast_path_with_the_same_trades():
    values = ACCEPTED[:40]
    cols, positions, invalid = decode_batch(values, NOW)
    assert (positions, invalid) == (list(range(40)), [])
    assert [cols.trade(i) for i in range(40)] == per_record(values)


def test_tbat003_records_that_would_merge_or_split_in_a_joined_array_are_decoded_one_by_one():
    # Two records that together form one object, and one that holds two: joined naively, the count matches.
    head = raw()[:-1] + b', "note": [1'
    tail = b'2], "x": 1}'
    double = raw(trade_id="a") + b"], [0, " + raw(trade_id="b")
    values = [head, tail, double, raw(trade_id="c")]
    assert batch(values) == per_record(values)
    assert sum(isinstance(x, Trade) for x in batch(values)) == 1


text = st.text(max_size=12)
fields = st.fixed_dictionaries({}, optional={
    "trade_id": st.one_of(text, st.integers()), "symbol": st.sampled_from(["AAPL", "aapl", "BTC-USD", "", "A\n"]),
    "price": st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**13), st.text(max_size=3)),
    "quantity": st.one_of(st.floats(1e-13, 1e13), st.integers(0, 5)), "side": st.sampled_from(["BUY", "SELL", "buy"]),
    "timestamp": st.one_of(st.just(GOOD["timestamp"]), st.integers(0, 4_000_000_000).map(lambda s: iso(s / 7)),
                           text), "exchange": text, "trader_id": st.one_of(st.none(), text, st.integers()),
    "sequence": st.one_of(st.none(), st.integers(-2, 2**64)), "source": st.sampled_from(["live", "Live", "r.1"])})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.one_of(fields.map(lambda d: json.dumps({**GOOD, **d}).encode()),
                                  st.binary(max_size=40), st.just(None), fields.map(lambda d: json.dumps(d).encode())),
                        max_size=25))
def test_tbat004_arbitrary_batches_decode_as_record_by_record(records):
    assert batch(records) == per_record(records)


@settings(max_examples=500, deadline=None)
@given(micros=st.lists(st.integers(0, 253402300799 * 10**6), min_size=1, max_size=20))
def test_tbat005_canonical_timestamps_are_datetime_timestamp_exactly(micros):
    stamps = [datetime.fromtimestamp(us // 10**6, timezone.utc).replace(microsecond=us % 10**6)
              .isoformat(timespec="microseconds").replace("+00:00", "Z") for us in micros]
    ts, ok = canonical_timestamps(stamps)
    assert ok.tolist() == [us < 2**53 for us in micros]  # later than 2255: left to datetime
    assert ts[ok].tolist() == [datetime.fromisoformat(s).timestamp() for s, good in zip(stamps, ok) if good]


def test_tbat006_non_canonical_or_impossible_dates_are_not_taken_as_canonical():
    stamps = ["2025-02-30T00:00:00.000000Z", "2025-13-01T00:00:00.000000Z", "2025-01-01T24:00:00.000000Z",
              "2025-01-01t00:00:00.000000Z", "1969-12-31T23:59:59.000000Z", "2025-01-01T00:00:60.000000Z",
              "2025-01-01T00:00:00.00000ZZ"]
    assert not canonical_timestamps(stamps)[1].any()


def test_tbat007_trade_rows_give_back_columns_pairs_and_late_flags():
    trades = per_record(ACCEPTED[:6])
    rows = TradeRows()
    rows.add(TradeColumns.from_trades(trades), [1, 3, 4], [3])
    rows.append((trades[0], True))
    cols, late = rows.columns()
    assert [cols.trade(i) for i in range(len(cols))] == [trades[1], trades[3], trades[4], trades[0]]
    assert late.tolist() == [False, True, False, True] and len(rows) == 4
    assert rows.pairs() == [(trades[1], False), (trades[3], True), (trades[4], False), (trades[0], True)]
    assert np.array_equal(TradeRows.of(rows.pairs()).columns()[1], late)
