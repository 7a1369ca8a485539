"""What the trade gate accepts, PostgreSQL stores through the processor's COPY path and gives back equal."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.events import (EXCHANGE_MAX, MAX_SEQUENCE, MAX_VALUE, MIN_VALUE, TRADE_ID_MAX, TRADER_ID_MAX,
                             Trade)
from pipeline.history.writer import HistoryWriter
from tests.integration.helpers import sql

pytestmark = pytest.mark.integration
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
# Text a COPY line must escape or PostgreSQL may choke on: backslashes, quotes, escapes as text,
# line and paragraph separators, combining marks, astral planes, right-to-left text.
AWKWARD = st.text(st.sampled_from(list("\\\"'N.\u2028\u2029\u0301\u200b\U0001F680\u05d0\ufeffé\\t\\n")) |
                  st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
TIMES = st.sampled_from(["1970-01-01T00:00:00Z", "1987-10-19T14:30:00.123456Z", "2024-02-29T23:59:59.999999Z",
                         "2025-06-01T00:04:59Z"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.fixed_dictionaries({
    "trade_id": AWKWARD.filter(bool).map(lambda s: s[:TRADE_ID_MAX - 12]),
    "symbol": st.from_regex(r"\A[A-Z0-9][A-Z0-9._/\-]{0,23}\Z"),
    "price": st.floats(MIN_VALUE, MAX_VALUE), "quantity": st.floats(MIN_VALUE, MAX_VALUE),
    "side": st.sampled_from(["BUY", "SELL"]), "timestamp": TIMES,
    "exchange": AWKWARD.map(lambda s: s[:EXCHANGE_MAX]),
    "trader_id": st.none() | AWKWARD.map(lambda s: s[:TRADER_ID_MAX]),
    "sequence": st.none() | st.integers(0, MAX_SEQUENCE) | st.just(MAX_SEQUENCE)}), min_size=1, max_size=25))
def test_gst001_accepted_trades_are_stored_and_read_back_equal(servers, records):
    tag = uuid.uuid4().hex[:10]
    accepted: dict[str, Trade] = {}
    for i, record in enumerate(records):
        record = {**record, "trade_id": f"{tag}{i:02d}{record['trade_id']}"}
        t = Trade.decode(json.dumps(record, ensure_ascii=bool(i % 2)).encode(), NOW)  # valid: never refused
        accepted[t.trade_id] = t
    writer = HistoryWriter(servers.database_url)
    try:
        writer.flush(trades=[(t, False) for t in accepted.values()], candles=[], alerts=[], outbox=[],
                     checkpoints=[])
    finally:
        writer.close()
    rows = sql(servers, """SELECT trade_id, symbol, price, quantity, side, exchange, trader_id, sequence,
                                  extract(epoch FROM ts)::float8 FROM trades WHERE trade_id LIKE %s""",
               (tag + "%",))
    sql(servers, "DELETE FROM trades WHERE trade_id LIKE %s RETURNING 1", (tag + "%",))
    stored = {r[0]: r for r in rows}
    assert set(stored) == set(accepted)
    for trade_id, t in accepted.items():
        r = stored[trade_id]
        assert r[1:8] == (t.symbol, t.price, t.quantity, t.side, t.exchange, t.trader_id, t.sequence)
        assert r[8] == pytest.approx(t.ts, abs=1e-6)
