"""The OpenAPI 3 document of ``/api/v1`` — written by hand, checked against real responses in tests.

``openapi_document()`` describes an app with the default settings; ``openapi_for(windows)`` one whose
candle sizes (``STOCKIT_WINDOWS``) are ``windows`` — the document ``/api/v1/openapi.json`` serves.
"""
from __future__ import annotations

import copy
import functools

from app.market import SIGNALS
from app.status import DOWN, OK, STALE, STOPPED
from pipeline.alert_types import ALERT_SEVERITIES, ALERT_TYPES
from pipeline.breaker import STATES
from pipeline.events import SOURCE_MAX, SOURCE_PATTERN
from pipeline.settings import Settings

NUM, INT, STR, BOOL = {"type": "number"}, {"type": "integer"}, {"type": "string"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
SOURCE_NAME = {"type": "string", "pattern": SOURCE_PATTERN,
               "description": "a source of trades: the live feed (default name live) or a replay"}
DEFAULT_WINDOWS = Settings().window_list  # STOCKIT_WINDOWS unset
PIPELINE_STATES = {"type": "string", "enum": [OK, STALE, STOPPED, DOWN]}


def _window(windows: tuple[int, ...], default: bool = False) -> dict:
    """The schema of a candle size: one of ``windows``; as a parameter, the smallest by default."""
    return {"type": "integer", "enum": list(windows), **({"default": min(windows)} if default else {})}


def _n(schema: dict) -> dict:
    return {**schema, "nullable": True}


def _obj(required: dict, optional: dict | None = None, additional: bool = False) -> dict:
    return {"type": "object", "required": sorted(required), "properties": {**required, **(optional or {})},
            "additionalProperties": additional}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict:
    return {"type": "array", "items": _ref(name)}


SCHEMAS = {
    "Error": _obj({"error": _obj({"status": INT, "code": STR, "message": STR},
                                 {"parameter": STR, "service": STR})}),
    "Ticker": _obj({"symbol": STR, "price": NUM, "prev_price": NUM, "open": NUM, "high": NUM, "low": NUM,
                    "volume": NUM, "trade_count": INT, "change": NUM, "change_pct": NUM, "ts": NUM,
                    "timestamp": _n(TIME)}),
    "Prices": _obj({"count": INT, "prices": _list("Ticker")}),
    "Candle": _obj({"symbol": STR, "window_seconds": INT, "window_start": TIME, "window_end": TIME, "open": NUM,
                    "high": NUM, "low": NUM, "close": NUM, "volume": NUM, "vwap": NUM, "trade_count": INT,
                    "buy_volume": NUM, "sell_volume": NUM}, {"source": SOURCE_NAME}),
    "Ohlcv": _obj({"symbol": STR, "window_seconds": _window(DEFAULT_WINDOWS),
                   "source": SOURCE_NAME, "count": INT, "candles": _list("Candle"),
                   "open_candle": {**_ref("Candle"), "nullable": True}}),
    "Trade": _obj({"trade_id": STR, "symbol": STR, "price": NUM, "quantity": NUM,
                   "side": {"type": "string", "enum": ["BUY", "SELL"]}, "exchange": STR, "timestamp": TIME},
                  {"trader_id": _n(STR), "sequence": _n(INT), "source": SOURCE_NAME}),
    "Trades": _obj({"symbol": STR, "count": INT, "trades": _list("Trade")}),
    "HistoryTrade": _obj({"trade_id": STR, "symbol": STR, "price": NUM, "quantity": NUM,
                          "side": {"type": "string", "enum": ["BUY", "SELL"]}, "exchange": STR,
                          "trader_id": _n(STR), "sequence": _n(INT), "timestamp": TIME, "late": BOOL,
                          "source": SOURCE_NAME}),
    "TradeHistory": _obj({"symbol": _n(STR), "source": _n(SOURCE_NAME), "count": INT,
                          "trades": _list("HistoryTrade")}),
    "Alert": _obj({"alert_id": STR, "alert_type": STR, "severity": STR, "symbol": STR, "price": NUM,
                   "reference": NUM, "deviation": NUM, "trade_id": STR, "timestamp": TIME, "message": STR,
                   "side": STR, "quantity": NUM, "status": STR, "delivery_status": _n(STR),
                   "delivery_attempts": INT, "delivered_at": _n(TIME), "last_error": _n(STR), "acknowledged": BOOL,
                   "acknowledged_at": _n(TIME), "acknowledged_by": _n(STR), "source": SOURCE_NAME,
                   "snooze_id": _n(INT), "notes": INT}),
    "Sources": _obj({"live": SOURCE_NAME, "sources": {"type": "array", "items": SOURCE_NAME}}),
    "Alerts": _obj({"count": INT, "alerts": _list("Alert")}),
    "Mover": _obj({"symbol": STR, "price": NUM, "change_pct": NUM, "volume": NUM, "trade_count": INT}),
    "Movers": _obj({"gainers": _list("Mover"), "losers": _list("Mover"), "most_active": _list("Mover")}),
    "BookLevel": _obj({"price": NUM, "size": NUM, "total": NUM}),
    "OrderBook": _obj({"symbol": STR, "simulated": {"type": "boolean", "enum": [True]}, "last_price": NUM,
                       "tick_size": NUM, "mid": NUM, "spread": NUM, "bids": _list("BookLevel"),
                       "asks": _list("BookLevel")}),
    "Pressure": _obj({"symbol": STR, "trade_count": INT, "buy_volume": NUM, "sell_volume": NUM,
                      "buy_pct": _n(NUM), "pressure": _n(NUM),
                      "dominant_side": {"type": "string", "enum": list(SIGNALS)}}),
    "Summary": _obj({"pipeline": {"type": "object", "additionalProperties": NUM,
                                  "description": "running totals: trades, volume, notional, alerts, late, "
                                                 "invalid, candles"},
                     "symbols": {"type": "array", "items": STR}, "symbol_count": INT,
                     "history": {"type": "object", "nullable": True, "additionalProperties": INT,
                                 "description": "row counts in PostgreSQL (null when it is unreachable)"},
                     "status": PIPELINE_STATES, "message": STR}),
    "Breaker": _obj({"symbol": STR, "state": {"type": "string", "enum": list(STATES)},
                     "since": _n(NUM), "trips": INT},
                    {"since_iso": _n(TIME), "last_alert_id": _n(STR)}),
    "Breakers": _obj({"source": SOURCE_NAME, "count": INT, "open": INT, "breakers": _list("Breaker")}),
    "Health": {**_obj({"status": {"type": "string", "enum": ["ok", "degraded", "down"]}},
                      {"pipeline": PIPELINE_STATES,
                       "message": STR, "redis": BOOL, "database": BOOL, "last_trade_age_seconds": _n(NUM),
                       "workers": {"type": "object",
                                   "additionalProperties": _obj({"alive": BOOL, "age_seconds": _n(NUM)})},
                       "database_unavailable_since": _n(TIME)}),
               "description": "anonymous callers get the status only; signed-in callers every field"},
}


def _param(name: str, where: str, schema: dict, description: str, required: bool = False) -> dict:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


SYMBOL = _param("symbol", "path", {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._/\\-]{0,23}$"},
                "instrument symbol, e.g. AAPL or BTC-USD (case-insensitive)")
START = _param("start", "query", STR, "inclusive lower bound: ISO-8601 (UTC if no offset) or epoch seconds")
ANY_SOURCE = _param("source", "query", {"type": "string", "maxLength": SOURCE_MAX},
                    "only this source of trades (case-insensitive; default: every source)")
LIVE_SOURCE = _param("source", "query", {"type": "string", "maxLength": SOURCE_MAX},
                     "the source of trades (case-insensitive; default: the live source, STOCKIT_SOURCE)")
END = _param("end", "query", STR, "exclusive upper bound: ISO-8601 or epoch seconds; later than start")


def _limit(default: int, hi: int, what: str) -> dict:
    return _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": hi, "default": default},
                  f"at most this many {what}")


def _ok(schema: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


ERR = {"content": {"application/json": {"schema": _ref("Error")}}}
E400 = {"400": {"description": "a parameter is invalid; error.parameter names it", **ERR}}
E404 = {"404": {"description": "unknown symbol or id", **ERR}}
E503 = {"503": {"description": "Redis or PostgreSQL is unreachable", **ERR}}
E401 = {"401": {"description": "not signed in: send the session cookie or Authorization: Bearer <API token>",
                **ERR}}
E403 = {"403": {"description": "the role may not do this (acknowledging needs operator or admin), or the "
                               "request came from another site (Origin not allowed)", **ERR}}
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "an API token from `stockit tokens create NAME --role ROLE` (shown once)"},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "stockit_session",
                   "description": "the session cookie set by signing in at /login"},
}
SIGNED_IN = [{"bearerAuth": []}, {"cookieAuth": []}]


def _op(summary: str, schema: str, params: list, errors: dict, tag: str, description: str = "",
        method: str = "get") -> dict:
    op = {"summary": summary, "tags": [tag], "parameters": params,
          "responses": {"200": _ok(schema, summary), **E400, **E401, **errors, **E503}}
    if description:
        op["description"] = description
    return {method: op}


PATHS = {
    "/prices": _op("Latest price of every symbol", "Prices", [], {}, "prices"),
    "/prices/{symbol}": _op("Latest price of one symbol", "Ticker", [SYMBOL], E404, "prices"),
    "/ohlcv/{symbol}": _op(
        "OHLCV candles of one symbol", "Ohlcv",
        [SYMBOL, _param("window_seconds", "query", _window(DEFAULT_WINDOWS, default=True),
                        "candle size in seconds (STOCKIT_WINDOWS; default the smallest)"),
         _limit(120, 5000, "finalized candles (the newest in range)"),
         START, END, _param("include_open", "query", {"type": "boolean", "default": True},
                            "also return the open (not yet final) candle from the speed layer (live source "
                            "only)"), LIVE_SOURCE],
        {}, "candles", "Finalized candles of one source from PostgreSQL, oldest first, and the live source's "
                       "open candle from Redis (null for another source)."),
    "/trades/history": _op("Stored trades, newest first", "TradeHistory",
                           [_param("symbol", "query", STR, "only this symbol"), START, END,
                            _limit(100, 10000, "trades"), ANY_SOURCE], {}, "trades"),
    "/sources": _op("Sources of trades: the live one and those with stored candles or alerts", "Sources",
                    [], {}, "candles",
                    "Each source (the live feed, each replay) has its own event-time clock; candles and "
                    "alerts carry it. Replay one with `stockit replay FILE.csv --source NAME`."),
    "/trades/{symbol}": _op("Recent trades of one symbol (speed layer), newest first", "Trades",
                            [SYMBOL, _limit(50, 100, "trades")], {}, "trades"),
    "/trades/{symbol}/pressure": _op(
        "Buy/sell pressure over recent trades", "Pressure", [SYMBOL, _limit(100, 100, "recent trades")], E404,
        "trades", "pressure = (buy volume − sell volume) / total volume, in [−1, 1]; dominant_side is BUY at a "
                  "buy share of 55 % or more, SELL at 45 % or less."),
    "/orderbook/{symbol}": _op(
        "Simulated order book around the last price", "OrderBook",
        [SYMBOL, _param("depth", "query", {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                        "levels per side")], E404, "market",
        "Stock-IT sees trades, not quotes: this book is simulated around the last traded price "
        "(simulated: true)."),
    "/alerts": _op("Alert history, newest first", "Alerts",
                   [_param("unacked_only", "query", {"type": "boolean", "default": False},
                           "only alerts nobody has acknowledged"),
                    _param("severity", "query", STR,
                           f"comma-separated: {', '.join(ALERT_SEVERITIES)} (case-insensitive)"),
                    _param("type", "query", STR, f"comma-separated: {', '.join(ALERT_TYPES)}"),
                    _param("symbol", "query", STR, "only this symbol"),
                    _param("since", "query", STR, "only alerts at or after this time"),
                    _limit(100, 1000, "alerts"), ANY_SOURCE], {}, "alerts"),
    "/alerts/{alert_id}/ack": {"post": {
        "summary": "Acknowledge an alert (idempotent: the first acknowledgement is kept)", "tags": ["alerts"],
        "description": "Needs the operator or admin role. acknowledged_by records the signed-in user (or "
                       "token:<name> for an API token); there is no request body.",
        "parameters": [_param("alert_id", "path", STR, "the alert's id")],
        "responses": {"200": _ok("Alert", "the acknowledged alert"),
                      **E400, **E401, **E403, **E404, **E503}}},
    "/stats/movers": _op("Top gainers, losers and most active symbols", "Movers",
                         [_limit(5, 50, "symbols per list")], {}, "stats"),
    "/stats/summary": _op("Pipeline totals and status", "Summary", [], {}, "stats"),
    "/breakers": _op("Circuit-breaker state of every symbol of one source", "Breakers", [LIVE_SOURCE], {},
                     "market",
                     "The live source's breakers as of now; another source's (a replay's) as its alerts left "
                     "them."),
    "/health": _op("Health of the web app, its stores and the pipeline workers", "Health", [], {}, "ops",
                   "200 when Redis and PostgreSQL answer (status ok or degraded), 503 when either does not."),
    "/stream/prices": {"get": {
        "summary": "Server-Sent Events: every symbol's ticker when prices change (at most every "
                   "STOCKIT_STREAM_PRICE_INTERVAL) and at least once a second",
        "tags": ["prices"],
        "parameters": [_param("symbols", "query", STR, "comma-separated symbols to keep (default all)")],
        "responses": {"200": {"description": "an endless text/event-stream of `event: prices` messages whose "
                                             "data is {type, server_ts, live, prices: {symbol: ticker}}",
                              "content": {"text/event-stream": {"schema": STR}}}, **E401}}},
}
PATHS["/health"]["get"]["responses"]["503"] = _ok("Health", "Redis or PostgreSQL is unreachable")
PATHS["/health"]["get"]["responses"].pop("401")
PATHS["/health"]["get"]["security"] = [{}, *SIGNED_IN]  # open; details only for signed-in callers
PATHS["/stream/prices"]["get"]["responses"]["503"] = _ok(
    "Error", "this server process holds all the streams it may (Retry-After says when to try again)")


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict:
    from app import openapi_analysis

    return {
        "openapi": "3.0.3",
        "info": {"title": "Stock-IT API", "version": "1.0.0",
                 "description": "Real-time prices, candles, trades, alerts and market state from the Stock-IT "
                                "pipeline. Live streams (not described here): WebSocket /ws/prices, /ws/alerts, "
                                "/ws/aggregates and Server-Sent Events /api/v1/stream/prices. Every endpoint "
                                "but /health needs a signed-in session or an API token; POST requests and "
                                "WebSocket upgrades from another site's pages are refused (403)."},
        "servers": [{"url": "/api/v1"}],
        "security": SIGNED_IN,
        "paths": {**PATHS, **openapi_analysis.PATHS},
        "components": {"schemas": {**SCHEMAS, **openapi_analysis.SCHEMAS},
                       "securitySchemes": SECURITY_SCHEMES},
    }


@functools.lru_cache(maxsize=4)
def openapi_for(windows: tuple[int, ...]) -> dict:
    """The document of an app whose candle sizes (``STOCKIT_WINDOWS``) are ``windows``."""
    doc = copy.deepcopy(openapi_document())
    doc["components"]["schemas"]["Ohlcv"]["properties"]["window_seconds"] = _window(windows)
    for param in doc["paths"]["/ohlcv/{symbol}"]["get"]["parameters"]:
        if param["name"] == "window_seconds":
            param["schema"] = _window(windows, default=True)
    return doc
