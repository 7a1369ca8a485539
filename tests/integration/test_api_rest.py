"""REST API against the real Redis and PostgreSQL: values, validation, errors, OpenAPI conformance."""
from __future__ import annotations

import jsonschema
import msgspec
import psycopg2
import pytest
import redis

from app import create_app
from app.market import pressure
from app.openapi import openapi_document
from pipeline import speed_layer
from pipeline.events import iso
from tests import market_data, sign_in

pytestmark = pytest.mark.integration


def _jsonschema(node):
    """OpenAPI 3.0 schema -> JSON Schema (nullable -> anyOf null)."""
    if isinstance(node, dict):
        out = {k: _jsonschema(v) for k, v in node.items() if k != "nullable"}
        if node.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [_jsonschema(v) for v in node]
    return node


COMPONENTS = _jsonschema(openapi_document()["components"])


def conforms(body, schema: str):
    jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema}", "components": COMPONENTS}) \
        .validate(body)
    return body


@pytest.fixture(scope="module")
def client(servers, accounts):
    """A test client signed in as an operator (who may also acknowledge)."""
    return sign_in.flask_client(create_app(servers.replace(stale_after_seconds=60)).test_client(),
                                accounts["operator"])


@pytest.fixture
def market(clean_stores):
    m = market_data.build()
    market_data.write(clean_stores, m)
    return m


def ok(client, path, schema, status=200):
    r = client.get(path)
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    return conforms(r.get_json(), schema)


def error(client, path, status, parameter=None, method="get", **kw):
    r = getattr(client, method)(path, **kw)
    assert r.status_code == status, r.get_data(as_text=True)
    body = conforms(r.get_json(), "Error")
    assert body["error"]["status"] == status and body["error"]["message"]
    if parameter:
        assert body["error"]["parameter"] == parameter
    return body


def candle_fields(c) -> dict:
    keys = ("open", "high", "low", "close", "volume", "vwap", "trade_count", "buy_volume", "sell_volume")
    return {k: pytest.approx(getattr(c, k) if not isinstance(c, dict) else c[k]) for k in keys}


def test_api001_prices_are_the_tickers(client, market):
    body = ok(client, "/api/v1/prices", "Prices")
    assert body["count"] == len(market.tickers) == len(body["prices"])
    assert [p["symbol"] for p in body["prices"]] == sorted(market.tickers)
    for p in body["prices"]:
        t = market.tickers[p["symbol"]]
        assert p["price"] == t["price"] and p["change_pct"] == pytest.approx(t["change_pct"])
        assert p["timestamp"] == iso(t["ts"])


def test_api002_price_of_one_symbol(client, market):
    body = ok(client, "/api/v1/prices/btc-usd", "Ticker")
    assert body["symbol"] == "BTC-USD" and body["price"] == market.tickers["BTC-USD"]["price"]
    assert body["volume"] == pytest.approx(sum(t.quantity for t in market.trades["BTC-USD"]))
    error(client, "/api/v1/prices/NOPE", 404)
    error(client, "/api/v1/prices/A$B", 400, "symbol")


def test_api003_ohlcv_equals_the_candles_built_from_the_trades(client, market):
    body = ok(client, "/api/v1/ohlcv/AAPL?limit=1000", "Ohlcv")
    expected = market.candles_of("AAPL", 60)
    assert body["window_seconds"] == 60 and body["count"] == len(expected) >= 15
    assert [c["window_start"] for c in body["candles"]] == [iso(c.window_start) for c in expected]
    for got, want in zip(body["candles"], expected):
        assert got == {**got, **candle_fields(want)}
    # ... and each candle is what its trades say, computed here from the raw trades.
    first = body["candles"][0]
    start = expected[0].window_start
    trades = [t for t in market.trades["AAPL"] if start <= t.ts < start + 60]
    assert first["open"] == trades[0].price and first["close"] == trades[-1].price
    assert first["high"] == max(t.price for t in trades) and first["low"] == min(t.price for t in trades)
    assert first["volume"] == pytest.approx(sum(t.quantity for t in trades))
    assert first["vwap"] == pytest.approx(sum(t.price * t.quantity for t in trades) / sum(t.quantity for t in trades))
    assert first["trade_count"] == len(trades)
    live = market.open_candles[("AAPL", 60)]
    assert body["open_candle"]["window_start"] == iso(live.window_start)
    assert body["open_candle"]["close"] == live.close


def test_api004_ohlcv_windows_limits_and_ranges(client, market):
    five = ok(client, "/api/v1/ohlcv/MSFT?window_seconds=300", "Ohlcv")
    assert [c["window_start"] for c in five["candles"]] == [iso(c.window_start) for c in market.candles_of("MSFT", 300)]
    two = ok(client, "/api/v1/ohlcv/MSFT?limit=2&include_open=false", "Ohlcv")
    assert two["count"] == 2 and two["open_candle"] is None
    assert [c["window_start"] for c in two["candles"]] == [
        iso(c.window_start) for c in market.candles_of("MSFT", 60)[-2:]]
    cs = market.candles_of("MSFT", 60)
    ranged = ok(client, f"/api/v1/ohlcv/MSFT?start={iso(cs[2].window_start)}&end={cs[5].window_start}", "Ohlcv")
    assert [c["window_start"] for c in ranged["candles"]] == [iso(c.window_start) for c in cs[2:5]]
    assert ok(client, "/api/v1/ohlcv/UNSEEN", "Ohlcv")["candles"] == []
    for query, name in (("window_seconds=120", "window_seconds"), ("window_seconds=abc", "window_seconds"),
                        ("limit=0", "limit"), ("start=yesterday", "start"), ("include_open=perhaps", "include_open"),
                        (f"start={cs[5].window_start}&end={cs[2].window_start}", "end"), ("windw=60", "windw")):
        error(client, f"/api/v1/ohlcv/MSFT?{query}", 400, name)


def test_api005_recent_trades_newest_first(client, market):
    body = ok(client, "/api/v1/trades/TSLA?limit=7", "Trades")
    assert [t["trade_id"] for t in body["trades"]] == [t.trade_id for t in reversed(market.trades["TSLA"][-7:])]
    assert body["trades"][0] == market.trades["TSLA"][-1].to_wire()
    assert ok(client, "/api/v1/trades/TSLA", "Trades")["count"] == 50
    for bad in ("0", "101", "x"):
        error(client, f"/api/v1/trades/TSLA?limit={bad}", 400, "limit")


def test_api006_trade_history_is_not_a_symbol_called_history(client, market):
    body = ok(client, "/api/v1/trades/history?limit=5", "TradeHistory")
    assert body["count"] == 5 and body["symbol"] is None
    # Newest first: by time as PostgreSQL keeps it (microseconds), then by id (its byte order, as Python's).
    newest = max((t for ts in market.trades.values() for t in ts), key=lambda t: (round(t.ts, 6), t.trade_id))
    assert body["trades"][0]["trade_id"] == newest.trade_id
    eur = market.trades["EUR-USD"]
    assert eur[20].ts - eur[19].ts > 0.001  # (the seeded market) so the bound below lies clearly between them
    # The exclusive end between trades 19 and 20: how PostgreSQL and Python round a time to microseconds
    # may differ by one, which must not decide whether trade 20 is in range.
    start, end = eur[10].ts, (eur[19].ts + eur[20].ts) / 2
    ranged = ok(client, f"/api/v1/trades/history?symbol=eur-usd&start={start}&end={iso(end)}&limit=100",
                "TradeHistory")
    assert [t["trade_id"] for t in ranged["trades"]] == [t.trade_id for t in reversed(eur[10:20])]
    assert ranged["trades"][0]["price"] == eur[19].price and ranged["trades"][0]["late"] is False
    error(client, "/api/v1/trades/history?limit=10001", 400, "limit")
    error(client, "/api/v1/trades/history?symbol=!!", 400, "symbol")
    error(client, f"/api/v1/trades/history?start={end}&end={start}", 400, "end")


def test_api007_alerts_filtered(client, market):
    body = ok(client, "/api/v1/alerts", "Alerts")
    assert body["count"] == 4
    assert [a["timestamp"] for a in body["alerts"]] == sorted((a["timestamp"] for a in body["alerts"]), reverse=True)
    crit = ok(client, "/api/v1/alerts?severity=critical", "Alerts")["alerts"]
    assert [(a["symbol"], a["alert_type"]) for a in crit] == [("TSLA", "CIRCUIT_BREAKER")]
    assert ok(client, "/api/v1/alerts?severity=HIGH,medium", "Alerts")["count"] == 3
    volume = ok(client, "/api/v1/alerts?type=VOLUME_SPIKE", "Alerts")["alerts"]
    assert {a["symbol"] for a in volume} == {"BTC-USD", "MSFT"}
    assert ok(client, "/api/v1/alerts?symbol=msft", "Alerts")["alerts"][0]["deviation"] == 4.2
    assert ok(client, "/api/v1/alerts?limit=1", "Alerts")["count"] == 1
    error(client, "/api/v1/alerts?severity=URGENT", 400, "severity")
    error(client, "/api/v1/alerts?severity=LOW", 400, "severity")  # a rank alerts never have
    error(client, "/api/v1/alerts?type=FOO", 400, "type")
    error(client, "/api/v1/alerts?unacked_only=sometimes", 400, "unacked_only")
    error(client, "/api/v1/alerts?limit=5000", 400, "limit")


def test_api008_acknowledge_persists_and_is_idempotent(client, market, servers, accounts):
    operator = accounts["operator"].username
    target = next(a for a in market.alerts if a.alert_type == "PRICE_SPIKE")
    r = client.post(f"/api/v1/alerts/{target.alert_id}/ack")
    assert r.status_code == 200
    body = conforms(r.get_json(), "Alert")
    assert body["acknowledged"] is True and body["acknowledged_by"] == operator and body["acknowledged_at"]
    again = client.post(f"/api/v1/alerts/{target.alert_id}/ack", json={}).get_json()
    assert again["acknowledged_by"] == operator and again["acknowledged_at"] == body["acknowledged_at"]
    unacked = ok(client, "/api/v1/alerts?unacked_only=true", "Alerts")["alerts"]
    assert target.alert_id not in {a["alert_id"] for a in unacked} and len(unacked) == 3
    conn = psycopg2.connect(servers.database_url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT acknowledged, acknowledged_by FROM alerts WHERE alert_id = %s", (target.alert_id,))
        assert cur.fetchone() == (True, operator)
    conn.close()
    error(client, "/api/v1/alerts/nope/ack", 404, method="post")
    error(client, f"/api/v1/alerts/{target.alert_id}/ack", 400, "body", method="post", data="[1]",
          content_type="application/json")
    # No free-text author: the acknowledgement is always the signed-in user's.
    other = market.alerts[0].alert_id
    error(client, f"/api/v1/alerts/{other}/ack", 400, "by", method="post", json={"by": "ann"})
    error(client, f"/api/v1/alerts/{target.alert_id}/ack", 405)


def test_api009_movers(client, market):
    body = ok(client, "/api/v1/stats/movers?limit=3", "Movers")
    ranked = sorted(market.tickers.values(), key=lambda t: -t["change_pct"])
    assert [m["symbol"] for m in body["gainers"]] == [t["symbol"] for t in ranked if t["change_pct"] > 0][:3]
    assert [m["symbol"] for m in body["losers"]] == [t["symbol"] for t in reversed(ranked) if t["change_pct"] < 0][:3]
    assert body["most_active"][0]["trade_count"] == max(t["trade_count"] for t in market.tickers.values())
    error(client, "/api/v1/stats/movers?limit=51", 400, "limit")


def test_api010_orderbook_simulated_around_last_price(client, market):
    body = ok(client, "/api/v1/orderbook/AAPL?depth=5", "OrderBook")
    last = market.tickers["AAPL"]["price"]
    assert body["simulated"] is True and body["last_price"] == last
    assert len(body["bids"]) == len(body["asks"]) == 5
    assert body["bids"][0]["price"] <= last <= body["asks"][0]["price"]
    assert ok(client, "/api/v1/orderbook/AAPL", "OrderBook")["bids"][0] == body["bids"][0]  # stable per last trade
    error(client, "/api/v1/orderbook/AAPL?depth=0", 400, "depth")
    error(client, "/api/v1/orderbook/NOPE", 404)


def test_api011_pressure_over_recent_trades(client, market):
    body = ok(client, "/api/v1/trades/GOOGL/pressure", "Pressure")
    recent = [t.to_wire() for t in market.trades["GOOGL"][-100:]]
    expected = pressure(recent)
    assert body["trade_count"] == 100
    assert body["buy_volume"] == pytest.approx(expected["buy_volume"])
    assert body["pressure"] == pytest.approx(expected["pressure"])
    assert body["dominant_side"] == expected["dominant_side"]
    assert ok(client, "/api/v1/trades/GOOGL/pressure?limit=10", "Pressure")["trade_count"] == 10
    error(client, "/api/v1/trades/NOPE/pressure", 404)


def test_api012_summary(client, market):
    body = ok(client, "/api/v1/stats/summary", "Summary")
    assert body["pipeline"]["trades"] == sum(len(t) for t in market.trades.values())
    assert body["history"]["alerts"] == 4 and body["history"]["unacked"] == 4
    assert body["history"]["candles"] == len(market.candles)
    assert body["symbols"] == sorted(market.tickers) and body["status"] == "ok"


def test_api013_breakers(client, market):
    body = ok(client, "/api/v1/breakers", "Breakers")
    states = {b["symbol"]: b["state"] for b in body["breakers"]}
    assert states.pop("TSLA") == "OPEN" and set(states.values()) == {"CLOSED"}
    assert body["open"] == 1 and body["count"] == len(market.tickers)


def test_api014_health_follows_the_pipeline(client, market, servers):
    body = ok(client, "/api/v1/health", "Health")
    assert (body["status"], body["pipeline"], body["redis"], body["database"]) == ("ok", "ok", True, True)
    assert body["workers"]["processor"]["alive"] is True
    redis.Redis.from_url(servers.redis_url).delete(speed_layer.heartbeat_key("processor"))
    body = ok(client, "/api/v1/health", "Health")
    assert (body["status"], body["pipeline"]) == ("degraded", "stopped") and "not running" in body["message"]


def test_api015_unknown_things_get_json_errors(client, market):
    error(client, "/api/v1/prices?foo=1", 400, "foo")
    assert error(client, "/api/v1/nothing/here", 404)["error"]["code"] == "not_found"
    error(client, "/api/v1/prices", 405, method="delete")
    assert client.get("/api/v1/openapi.json").get_json()["openapi"].startswith("3.")


def test_api016_stores_down_give_503_json_and_pages_still_render(servers, client):
    down = create_app(servers.replace(redis_url="redis://127.0.0.1:9/0",
                                      database_url="postgresql://nobody@127.0.0.1:9/none")).test_client()
    # Nobody can sign in without the database, but a session signed in before the outage still works.
    down.set_cookie("stockit_session", client.get_cookie("stockit_session").value)
    for path in ("/api/v1/prices", "/api/v1/prices/AAPL", "/api/v1/trades/AAPL", "/api/v1/breakers"):
        assert error(down, path, 503)["error"]["service"] == "redis"
    for path in ("/api/v1/alerts", "/api/v1/trades/history", "/api/v1/ohlcv/AAPL"):
        assert error(down, path, 503)["error"]["service"] == "database"
    assert error(down, "/api/v1/alerts/x/ack", 503, method="post")["error"]["code"] == "database_unavailable"
    health = down.get("/api/v1/health")
    assert health.status_code == 503 and conforms(health.get_json(), "Health")["status"] == "down"
    for page in ("/", "/scanner", "/whales", "/alerts", "/docs"):
        assert down.get(page).status_code == 200
    assert down.get("/_dash-layout").status_code == 200


def test_api017_request_metrics(client, market):
    client.get("/api/v1/prices")
    client.get("/api/v1/prices/NOPE")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'web_requests_total{endpoint="/api/v1/prices",method="GET",status="200"}' in text
    assert 'web_requests_total{endpoint="/api/v1/prices/<symbol>",method="GET",status="404"}' in text
    assert 'web_request_duration_seconds_bucket{endpoint="/api/v1/prices",le="0.005"}' in text
    assert 'web_websocket_clients{stream="prices"}' in text


def test_api018_pipeline_down_data_empty(client, clean_stores):
    assert ok(client, "/api/v1/prices", "Prices") == {"count": 0, "prices": []}
    assert ok(client, "/api/v1/alerts", "Alerts") == {"count": 0, "alerts": []}
    assert ok(client, "/api/v1/stats/movers", "Movers") == {"gainers": [], "losers": [], "most_active": []}
    body = ok(client, "/api/v1/stats/summary", "Summary")
    assert body["pipeline"] == {} and body["status"] == "stopped"
    assert ok(client, "/api/v1/trades/AAPL", "Trades")["trades"] == []


def test_api020_history_by_source(client, market, servers):
    """A replay's candles, trades and alerts beside the live ones: candles of one source (live by default),
    trades and alerts of every source unless one is asked for, each naming its own."""
    from pipeline.history.writer import HistoryWriter

    replay = "aapl-2015"
    live = market.candles_of("AAPL", 60)
    back = 3000 * 86400.0
    old = [msgspec.structs.replace(c, source=replay, window_start=c.window_start - back,
                                   window_end=c.window_end - back, close=c.close * 2) for c in live[:3]]
    trades = [msgspec.structs.replace(t, trade_id=f"old-{i}", ts=t.ts - 3000 * 86400.0, source=replay)
              for i, t in enumerate(market.trades["AAPL"][:4])]
    alert = msgspec.structs.replace(market.alerts[0], alert_id="old-alert", source=replay, ts=trades[0].ts)
    HistoryWriter(servers.database_url).flush(trades=[(t, False) for t in trades], candles=old,
                                              alerts=[alert])

    default = ok(client, "/api/v1/ohlcv/AAPL?limit=1000", "Ohlcv")
    assert default["source"] == "live" and default["count"] == len(live)
    assert {c["source"] for c in default["candles"]} == {"live"}
    body = ok(client, f"/api/v1/ohlcv/aapl?source={replay.upper()}&limit=1000", "Ohlcv")
    assert body["source"] == replay and body["open_candle"] is None  # the speed layer is the live source's
    assert [(c["window_start"], c["close"], c["source"]) for c in body["candles"]] == \
        [(iso(c.window_start), c.close, replay) for c in old]
    assert ok(client, "/api/v1/ohlcv/AAPL?source=nobody", "Ohlcv")["candles"] == []

    every = ok(client, "/api/v1/trades/history?symbol=AAPL&limit=10000", "TradeHistory")["trades"]
    assert {t["source"] for t in every} == {"live", replay}
    only = ok(client, f"/api/v1/trades/history?source={replay}", "TradeHistory")
    assert only["source"] == replay
    assert sorted(t["trade_id"] for t in only["trades"]) == [t.trade_id for t in trades]

    assert ok(client, "/api/v1/alerts", "Alerts")["count"] == len(market.alerts) + 1
    replayed = ok(client, f"/api/v1/alerts?source={replay}", "Alerts")["alerts"]
    assert [(a["alert_id"], a["source"]) for a in replayed] == [("old-alert", replay)]
    assert {a["source"] for a in ok(client, "/api/v1/alerts?source=live", "Alerts")["alerts"]} == {"live"}

    assert ok(client, "/api/v1/sources", "Sources") == {"live": "live", "sources": sorted(["live", replay])}
    assert ok(client, f"/api/v1/breakers?source={replay}", "Breakers") == \
        {"source": replay, "count": 0, "open": 0, "breakers": []}
    for path in ("/api/v1/ohlcv/AAPL?source=a%20b", "/api/v1/trades/history?source=-x",
                 "/api/v1/alerts?source=" + "x" * 41, "/api/v1/breakers?source=a/b"):
        error(client, path, 400, "source")
