"""The API over data the real processor made from trades this test sent through Kafka."""
from __future__ import annotations

import pytest

from app import create_app
from pipeline.events import Trade, iso
from pipeline.processor import Processor
from tests import sign_in
from tests.integration.helpers import produce_trades, wait_until

pytestmark = pytest.mark.integration
BASE = 1709290800.0  # 2024-03-01T11:00:00Z


def trades() -> list[Trade]:
    """NVDA: 90 trades over three minutes, then one at +10 min so those windows close by event time."""
    out = [Trade(f"N-{i}", "NVDA", 800.0 + (i % 9) * 0.5 - (i // 30) * 2, 1.0 + i % 4, "BUY" if i % 3 else "SELL",
                 "TEST", BASE + i * 2) for i in range(90)]
    out.append(Trade("N-end", "NVDA", 799.0, 2.0, "BUY", "TEST", BASE + 600))
    return out


def test_apip001_ohlcv_trades_prices_from_the_running_processor(fast, run_worker, accounts):
    sent = trades()
    worker = run_worker(Processor(fast).run, "processor")
    produce_trades(fast, sent)
    client = sign_in.flask_client(create_app(fast).test_client(), accounts["viewer"])

    def candles():
        body = client.get("/api/v1/ohlcv/NVDA?window_seconds=60").get_json()
        return body if body.get("count") == 3 else None

    body = wait_until(candles, 60, "three finalized 1-minute NVDA candles")
    for k, candle in enumerate(body["candles"]):
        start = BASE + 60 * k
        window = [t for t in sent if start <= t.ts < start + 60]
        vol = sum(t.quantity for t in window)
        assert candle["window_start"] == iso(start) and candle["trade_count"] == len(window) == 30
        assert (candle["open"], candle["close"]) == (window[0].price, window[-1].price)
        assert (candle["high"], candle["low"]) == (max(t.price for t in window), min(t.price for t in window))
        assert candle["volume"] == pytest.approx(vol)
        assert candle["vwap"] == pytest.approx(sum(t.price * t.quantity for t in window) / vol)
        assert candle["buy_volume"] == pytest.approx(sum(t.quantity for t in window if t.side == "BUY"))
    assert body["open_candle"]["window_start"] == iso(BASE + 600) and body["open_candle"]["trade_count"] == 1

    price = client.get("/api/v1/prices/NVDA").get_json()
    assert price["price"] == 799.0 and price["timestamp"] == iso(BASE + 600)
    recent = client.get("/api/v1/trades/NVDA?limit=3").get_json()["trades"]
    assert [t["trade_id"] for t in recent] == ["N-end", "N-89", "N-88"]
    stored = wait_until(lambda: client.get("/api/v1/trades/history?symbol=NVDA&limit=1000").get_json()["count"] == 91
                        and client.get("/api/v1/trades/history?symbol=NVDA&limit=1000").get_json(), 30,
                        "all 91 trades in PostgreSQL")
    assert {t["trade_id"] for t in stored["trades"]} == {t.trade_id for t in sent}
    assert client.get("/api/v1/health").get_json()["workers"]["processor"]["alive"] is True
    worker.stop()
