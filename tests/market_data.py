"""A small, known market written into the real Redis and PostgreSQL for the web app's tests.

Trades are generated deterministically, folded into candles and tickers by the pipeline's own
pure logic (``pipeline.windows``, ``pipeline.partition_state.Ticker``) and written through the
processor's writers (``SpeedLayerWriter.write_batch``, ``HistoryWriter.flush``), so the web app reads
exactly what the pipeline would have written.  Tests compare API answers with these values.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Optional

import orjson
import redis

from pipeline import speed_layer
from pipeline.events import Alert, Candle, Trade, alert_id_for
from pipeline.history.writer import HistoryWriter
from pipeline.partition_state import Ticker
from pipeline.settings import Settings
from pipeline.windows import SymbolWindows

BASES = {"AAPL": 190.0, "GOOGL": 175.0, "MSFT": 410.0, "AMZN": 185.0, "TSLA": 240.0, "BTC-USD": 64000.0,
         "ETH-USD": 3400.0, "EUR-USD": 1.08, "GBP-USD": 1.27, "JPY-USD": 0.0067}
WINDOWS = Settings().window_list  # the candle sizes of an app with default settings


@dataclass
class Market:
    now: float
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    candles: list[Candle] = field(default_factory=list)      # finalized
    open_candles: dict[tuple[str, int], Candle] = field(default_factory=dict)
    tickers: dict[str, dict] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)

    def candles_of(self, symbol: str, seconds: int) -> list[Candle]:
        return [c for c in self.candles if c.symbol == symbol and c.window_seconds == seconds]


def make_trades(symbol: str, base: float, start: float, seconds: float, per_second: float, seed: int) -> list[Trade]:
    """A seeded random walk of trades from ``start``, the last one exactly at ``start + seconds``.

    Ending on a trade at a fixed time makes the market the same whatever the wall clock says: however
    soon after a window boundary ``now`` falls, every symbol has traded in each window still open, so
    each has an open candle of every size (the processor always leaves one in Redis).
    """
    rng = random.Random(seed)
    end = start + seconds
    price, out, ts, i = base, [], start, 0
    while True:
        ts = min(ts, end)
        price *= math.exp(rng.gauss(0, 0.0006))
        side = "BUY" if rng.random() < 0.55 else "SELL"
        qty = round(rng.uniform(1, 20), 2)
        out.append(Trade(f"{symbol}-{seed}-{i}", symbol, round(price, 6), qty, side, "TEST", ts, sequence=i))
        if ts == end:
            return out
        i += 1
        ts += rng.expovariate(per_second)


def _alert(t: Trade, kind: str, severity: str, reference: float, deviation: float, message: str) -> Alert:
    return Alert(alert_id=alert_id_for(t.trade_id, kind), alert_type=kind, severity=severity, symbol=t.symbol,
                 price=t.price, reference=reference, deviation=deviation, trade_id=t.trade_id, ts=t.ts,
                 message=message, side=t.side, quantity=t.quantity)


def build(now: Optional[float] = None, minutes: float = 20, symbols=tuple(BASES), seed: int = 7,
          windows: tuple[int, ...] = WINDOWS) -> Market:
    now = time.time() if now is None else now
    m = Market(now=now)
    for k, sym in enumerate(symbols):
        # every symbol's last trade falls in the final second, a hundredth of a second apart (one is the newest)
        trades = make_trades(sym, BASES[sym], now - minutes * 60, minutes * 60 - 0.5 - 0.01 * k, 1.0, seed + k)
        m.trades[sym] = trades
        windows_of, ticker = SymbolWindows(sym, windows, 2.0), Ticker()
        for t in trades:
            windows_of.add(t.ts, t.price, t.quantity, t.side == "BUY")
            ticker.add(t.ts, t.price, t.quantity)
        m.candles.extend(windows_of.finalize(now))
        for c in windows_of.current():
            m.open_candles[(sym, c.window_seconds)] = c
        m.tickers[sym] = ticker.snapshot(sym)
    tsla, btc, aapl, msft = (m.trades.get(s, [None])[-5] for s in ("TSLA", "BTC-USD", "AAPL", "MSFT"))
    if tsla:
        m.alerts.append(_alert(tsla, "CIRCUIT_BREAKER", "CRITICAL", tsla.price / 1.12, 12.0, "TSLA moved 12.0%"))
    if aapl:
        m.alerts.append(_alert(aapl, "PRICE_SPIKE", "HIGH", aapl.price / 1.06, 6.0, "AAPL moved 6.0%"))
    if btc:
        m.alerts.append(_alert(btc, "VOLUME_SPIKE", "MEDIUM", btc.quantity / 7.5, 7.5, "BTC-USD size 7.5x avg"))
    if msft:
        m.alerts.append(_alert(msft, "VOLUME_SPIKE", "MEDIUM", msft.quantity / 4.2, 4.2, "MSFT size 4.2x avg"))
    return m


def write(settings: Settings, m: Market, *, history: bool = True, heartbeat: bool = True) -> None:
    """Write ``m`` as one processor batch (Redis) and one flush (PostgreSQL)."""
    client = redis.Redis.from_url(settings.redis_url)
    series = {}
    for sym, trades in m.trades.items():
        points, last_second = [], None
        for t in trades:
            if int(t.ts) != last_second:
                points.append([t.ts, t.price])
                last_second = int(t.ts)
        series[sym] = points
    speed_layer.SpeedLayerWriter(client).write_batch(
        tickers=m.tickers, trades={s: [t.encode() for t in ts] for s, ts in m.trades.items()}, series=series,
        open_candles={k: c.encode() for k, c in m.open_candles.items()},
        alerts=[a.encode() for a in sorted(m.alerts, key=lambda a: a.ts)], candles=[],
        summary={"p0:trades": sum(len(t) for t in m.trades.values()), "p0:alerts": len(m.alerts)},
        heartbeat={"ts": time.time() if heartbeat else 0.0})
    if not heartbeat:
        client.delete(speed_layer.heartbeat_key("processor"))
    if any(a.alert_type == "CIRCUIT_BREAKER" for a in m.alerts):
        a = next(a for a in m.alerts if a.alert_type == "CIRCUIT_BREAKER")
        client.hset(speed_layer.BREAKERS, a.symbol, orjson.dumps({
            "symbol": a.symbol, "state": "OPEN", "since": time.time() - 30, "last_event": time.time() - 30,
            "trips": 1, "last_alert_id": a.alert_id}))
    client.close()
    if history:
        w = HistoryWriter(settings.database_url)
        try:
            w.flush(trades=[(t, False) for ts in m.trades.values() for t in ts], candles=m.candles, alerts=m.alerts,
                    outbox=[], checkpoints=[])
        finally:
            w.close()


def tick(settings: Settings, symbol: str, price: float, quantity: float = 1.0, side: str = "BUY",
         ts: Optional[float] = None) -> dict:
    """Publish one new price for ``symbol`` the way the processor does (hash + live channel)."""
    client = redis.Redis.from_url(settings.redis_url)
    reader = speed_layer.SpeedLayerReader(client)
    old = reader.price(symbol) or {"open": price, "high": price, "low": price, "volume": 0.0, "trade_count": 0,
                                   "price": price}
    ts = time.time() if ts is None else ts
    ticker = {"symbol": symbol, "price": price, "prev_price": old["price"], "open": old["open"],
              "high": max(old["high"], price), "low": min(old["low"], price), "volume": old["volume"] + quantity,
              "trade_count": old["trade_count"] + 1, "change": price - old["open"],
              "change_pct": (price - old["open"]) / old["open"] * 100.0, "ts": ts}
    trade = Trade(f"tick-{symbol}-{ts}", symbol, price, quantity, side, "TEST", ts)
    speed_layer.SpeedLayerWriter(client).write_batch(
        tickers={symbol: ticker}, trades={symbol: [trade.encode()]}, series={symbol: [[ts, price]]},
        open_candles={}, alerts=[], candles=[], summary={}, heartbeat={"ts": time.time()})
    client.close()
    return ticker


def publish_alert(settings: Settings, alert: Alert, history: bool = True) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    speed_layer.SpeedLayerWriter(client).write_batch(
        tickers={}, trades={}, series={}, open_candles={}, alerts=[alert.encode()], candles=[], summary={},
        heartbeat={"ts": time.time()})
    client.close()
    if history:
        w = HistoryWriter(settings.database_url)
        try:
            w.flush(trades=[], candles=[], alerts=[alert], outbox=[], checkpoints=[])
        finally:
            w.close()
