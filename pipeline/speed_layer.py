"""The Redis speed layer: what the processor writes per batch and what the web app reads.

Keys (all under ``stockit:``):

===============================  =====================================================================
``prices``                       hash symbol -> JSON ticker: price, prev_price, open, high, low, volume,
                                 trade_count, change, change_pct, ts (event time, epoch s)
``trades:{SYM}``                 list, newest first, of the symbol's last 100 trades (wire JSON)
``series:{SYM}``                 list, newest first, of ``[ts, price]`` points, at most one a second, 1,000 kept
``candle:{SYM}:{SECONDS}``       JSON of the open (not yet final) candle of that window size (wire form)
``alerts:recent``                list, newest first, of the last 200 alerts (wire JSON)
``summary``                      hash of per-partition running totals ``p{N}:{counter}``, summed on read
``breakers``                     hash symbol -> JSON breaker state (written by the alert engine)
``breakers:{SOURCE}``            the same for the alerts of another source than the default one
``dedup:{TYPE}:{SYM}``           alert id owning the dedup window, with the window's TTL (alert engine)
``dedup:{SOURCE}:{TYPE}:{SYM}``  the same for the alerts of another source than the default one
``heartbeat:{WORKER}``           JSON {ts, ...} with a 30 s TTL: absent or old means the worker stopped
===============================  =====================================================================

Everything but ``breakers`` and ``dedup`` shows the live source only (``STOCKIT_SOURCE``): a replay is
not shown in the speed layer.  The alert engine keeps breakers and dedup windows per (source,
symbol), so a replay never trips a live breaker nor suppresses a live alert; the keys of the
default source (``events.DEFAULT_SOURCE``) keep the names they had before sources existed.

Live push: the processor publishes each batch's tickers on channel ``stockit:live:prices``, each
alert on ``stockit:live:alerts`` and each finalized candle on ``stockit:live:aggregates``.
"""
from __future__ import annotations

import logging
import time
from typing import Iterable, Optional

import orjson
import redis

from pipeline.events import DEFAULT_SOURCE

logger = logging.getLogger(__name__)

PREFIX = "stockit:"
PRICES = PREFIX + "prices"
ALERTS_RECENT = PREFIX + "alerts:recent"
SUMMARY = PREFIX + "summary"
BREAKERS = PREFIX + "breakers"
CHANNEL_PRICES = PREFIX + "live:prices"
CHANNEL_ALERTS = PREFIX + "live:alerts"
CHANNEL_AGGREGATES = PREFIX + "live:aggregates"
TRADES_KEPT = 100
SERIES_KEPT = 1000
ALERTS_KEPT = 200
HEARTBEAT_TTL = 30


def trades_key(symbol: str) -> str:
    return f"{PREFIX}trades:{symbol}"


def series_key(symbol: str) -> str:
    return f"{PREFIX}series:{symbol}"


def candle_key(symbol: str, seconds: int) -> str:
    return f"{PREFIX}candle:{symbol}:{seconds}"


def dedup_key(alert_type: str, symbol: str, source: str = DEFAULT_SOURCE) -> str:
    if source == DEFAULT_SOURCE:
        return f"{PREFIX}dedup:{alert_type}:{symbol}"
    return f"{PREFIX}dedup:{source}:{alert_type}:{symbol}"


def breakers_key(source: str = DEFAULT_SOURCE) -> str:
    """The hash of the breakers of one source's symbols."""
    return BREAKERS if source == DEFAULT_SOURCE else f"{BREAKERS}:{source}"


def heartbeat_key(worker: str) -> str:
    return f"{PREFIX}heartbeat:{worker}"


def connect(url: str) -> redis.Redis:
    """A client with a connection pool; raw bytes (callers decode JSON)."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30)


class SpeedLayerWriter:
    """Batches one processor batch's writes into a single pipelined round trip."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def write_batch(self, *, tickers: dict[str, dict], trades: dict[str, list[bytes]],
                    series: dict[str, list[list[float]]], open_candles: dict[tuple[str, int], bytes],
                    alerts: list[bytes], candles: list[bytes], summary: dict[str, float],
                    heartbeat: dict) -> None:
        """Apply one batch's effects. ``trades``/``series`` are oldest first."""
        p = self.client.pipeline(transaction=False)
        if tickers:
            encoded = {sym: orjson.dumps(t) for sym, t in tickers.items()}
            p.hset(PRICES, mapping=encoded)
            p.publish(CHANNEL_PRICES, orjson.dumps(tickers))
        for sym, items in trades.items():
            key = trades_key(sym)
            p.lpush(key, *items[-TRADES_KEPT:])
            p.ltrim(key, 0, TRADES_KEPT - 1)
        for sym, points in series.items():
            key = series_key(sym)
            p.lpush(key, *(orjson.dumps(pt) for pt in points))
            p.ltrim(key, 0, SERIES_KEPT - 1)
        for (sym, seconds), value in open_candles.items():
            p.set(candle_key(sym, seconds), value)
        if alerts:
            p.lpush(ALERTS_RECENT, *alerts)
            p.ltrim(ALERTS_RECENT, 0, ALERTS_KEPT - 1)
            for a in alerts:
                p.publish(CHANNEL_ALERTS, a)
        for c in candles:
            p.publish(CHANNEL_AGGREGATES, c)
        if summary:
            p.hset(SUMMARY, mapping=summary)
        p.set(heartbeat_key("processor"), orjson.dumps(heartbeat), ex=HEARTBEAT_TTL)
        p.execute()


def heartbeat(client: redis.Redis, worker: str, **fields) -> None:
    client.set(heartbeat_key(worker), orjson.dumps({"ts": time.time(), **fields}), ex=HEARTBEAT_TTL)


class SpeedLayerReader:
    """Read side for the web app and the API. Every method returns plain JSON-able values."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def prices(self) -> dict[str, dict]:
        return {k.decode(): orjson.loads(v) for k, v in self.client.hgetall(PRICES).items()}

    def price(self, symbol: str) -> Optional[dict]:
        raw = self.client.hget(PRICES, symbol)
        return orjson.loads(raw) if raw else None

    def trades(self, symbol: str, limit: int = TRADES_KEPT) -> list[dict]:
        return [orjson.loads(x) for x in self.client.lrange(trades_key(symbol), 0, limit - 1)]

    def series(self, symbol: str, limit: int = SERIES_KEPT) -> list[list[float]]:
        """``[ts, price]`` points, oldest first."""
        return [orjson.loads(x) for x in reversed(self.client.lrange(series_key(symbol), 0, limit - 1))]

    def open_candle(self, symbol: str, seconds: int) -> Optional[dict]:
        raw = self.client.get(candle_key(symbol, seconds))
        return orjson.loads(raw) if raw else None

    def recent_alerts(self, limit: int = 50) -> list[dict]:
        return [orjson.loads(x) for x in self.client.lrange(ALERTS_RECENT, 0, limit - 1)]

    def summary(self) -> dict[str, float]:
        """Totals over partitions: trades, volume, notional, alerts, late, invalid, candles."""
        out: dict[str, float] = {}
        for k, v in self.client.hgetall(SUMMARY).items():
            name = k.decode().split(":", 1)[-1]
            out[name] = out.get(name, 0) + float(v)
        return out

    def breakers(self, source: str = DEFAULT_SOURCE) -> dict[str, dict]:
        return {k.decode(): orjson.loads(v) for k, v in self.client.hgetall(breakers_key(source)).items()}

    def heartbeat(self, worker: str) -> Optional[dict]:
        raw = self.client.get(heartbeat_key(worker))
        return orjson.loads(raw) if raw else None

    def symbols(self) -> list[str]:
        return sorted(k.decode() for k in self.client.hkeys(PRICES))

    def scan(self, symbols: Iterable[str], trades_limit: int = TRADES_KEPT, series_limit: int = SERIES_KEPT,
             candle_seconds: int = 300) -> dict[str, dict]:
        """In one round trip, per symbol: ``ticker`` (or None), ``trades`` (newest first), ``series``
        (``[ts, price]``, oldest first) and the open ``candle`` of ``candle_seconds`` (or None)."""
        symbols = list(symbols)
        p = self.client.pipeline(transaction=False)
        for sym in symbols:
            p.hget(PRICES, sym)
            p.lrange(trades_key(sym), 0, trades_limit - 1)
            p.lrange(series_key(sym), 0, series_limit - 1)
            p.get(candle_key(sym, candle_seconds))
        replies = p.execute()
        out = {}
        for i, sym in enumerate(symbols):
            ticker, trades, series, candle = replies[4 * i:4 * i + 4]
            out[sym] = {"ticker": orjson.loads(ticker) if ticker else None, "trades": decode_many(trades),
                        "series": [orjson.loads(x) for x in reversed(series)],
                        "candle": orjson.loads(candle) if candle else None}
        return out


def summary_fields(partition: int, counters: dict) -> dict[str, float]:
    """Per-partition absolute totals: idempotent when a batch is replayed after a crash."""
    return {f"p{partition}:{name}": value for name, value in counters.items()}


def decode_many(values: Iterable[bytes]) -> list[dict]:
    return [orjson.loads(v) for v in values]
