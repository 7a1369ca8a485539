"""Ticker view, movers and effective circuit-breaker states."""
from pipeline.breaker import BreakerPolicy

from app.market import breaker_view, movers, ticker_view


def test_mkt001_ticker_view_adds_symbol_and_iso_time():
    v = ticker_view("AAPL", {"price": 1.0, "ts": 60.5})
    assert v == {"price": 1.0, "ts": 60.5, "symbol": "AAPL", "timestamp": "1970-01-01T00:01:00.500000Z"}
    assert ticker_view("X", {"price": 1.0, "ts": 0})["timestamp"] is None


def test_mkt002_movers_split_gainers_losers_and_activity():
    prices = {s: {"price": 1.0, "change_pct": c, "volume": v, "trade_count": n}
              for s, c, v, n in (("A", 2.0, 10, 5), ("B", -3.0, 20, 50), ("C", 0.0, 5, 7), ("D", 5.0, 1, 1),
                                 ("E", -1.0, 1, 9))}
    m = movers(prices, limit=2)
    assert [r["symbol"] for r in m["gainers"]] == ["D", "A"]
    assert [r["symbol"] for r in m["losers"]] == ["B", "E"]
    assert [r["symbol"] for r in m["most_active"]] == ["B", "E"]
    assert movers({}) == {"gainers": [], "losers": [], "most_active": []}


def test_mkt003_breakers_default_closed_and_timed_transitions_applied():
    policy = BreakerPolicy(open_seconds=300, probation_seconds=60)
    raw = {"TSLA": {"symbol": "TSLA", "state": "OPEN", "since": 1000.0, "last_event": 1000.0, "trips": 1,
                    "last_alert_id": "x"},
           "AAPL": {"symbol": "AAPL", "state": "OPEN", "since": 1000.0, "last_event": 1000.0, "trips": 2}}
    rows = breaker_view(raw, ["MSFT", "TSLA"], now=1100.0, policy=policy)
    assert [(r["symbol"], r["state"], r["trips"]) for r in rows] == [
        ("AAPL", "OPEN", 2), ("MSFT", "CLOSED", 0), ("TSLA", "OPEN", 1)]
    later = {r["symbol"]: r["state"] for r in breaker_view(raw, [], now=1310.0, policy=policy)}
    assert later == {"AAPL": "HALF_OPEN", "TSLA": "HALF_OPEN"}
    # a replay's breakers: as its alerts left them, whatever the wall clock says
    as_left = {r["symbol"]: r["state"] for r in breaker_view(raw, [], now=None, policy=policy)}
    assert as_left == {"AAPL": "OPEN", "TSLA": "OPEN"}
    assert breaker_view({"X": {"state": "WEIRD", "since": "?"}}, [], 0.0)[0]["state"] == "WEIRD"
