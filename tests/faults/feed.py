"""The input of a fault test: records produced to ``raw-trades``, each kept with where the broker put it.

``Publisher`` produces raw records (valid trades or deliberately bad bytes) and records every
acknowledged one as a ``Sent`` (partition, offset, what it is): that list is what the checker
holds the system to.  ``TradeFeed`` publishes a seeded market at a steady pace from a thread; a
trade's event time is ``BASE`` plus ``speed`` times the wall time since the feed started, so event
time follows the clock the way a live feed does (a pause of the feed is a real lull: the trades
after it are later by at least as much) while staying history (end-of-stream markers an hour later
are still in the past).  A trade's content (symbol, price, size, side, id) depends only on the seed.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Optional

import msgspec
from confluent_kafka import Producer

from pipeline import kafka_io
from pipeline.events import Trade, iso, parse_iso
from pipeline.settings import Settings
from pipeline.simulator import MarketSimulator

logger = logging.getLogger(__name__)

BASE = 1709287200.0  # 2024-03-01T10:00:00Z
SYMBOLS = ("AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "BTC-USD", "ETH-USD", "EUR-USD", "GBP-USD", "JPY-USD")
MARKER_DELAY = 3600.0  # event time of the end-of-stream markers after the last trade: closes every window
CONTENT_STEP = 0.01    # simulator clock per trade: prices depend on the seed only, not on the pacing
SURGE_STEP = 0.001     # event time between trades sent at once


@dataclass(frozen=True)
class Sent:
    """A record the broker acknowledged. ``trade`` is None for a record that must be dead-lettered."""

    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    trade: Optional[Trade]
    case: str = ""  # what a bad record is, e.g. "tombstone"


def on_the_wire(trade: Trade) -> Trade:
    """The trade as a consumer decodes it (event time at the wire's microsecond precision)."""
    return msgspec.structs.replace(trade, ts=parse_iso(iso(trade.ts)))


class Publisher:
    """Produces to the trades topic and keeps every acknowledged record, in acknowledgement order."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # Large records are allowed out (the broker takes them compressed): the gate must see them.
        self.producer = Producer(kafka_io.producer_config(settings, **{"message.max.bytes": 8_000_000}))
        self.sent: list[Sent] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def send(self, key: Optional[bytes], value: Optional[bytes], trade: Optional[Trade] = None,
             case: str = "") -> None:
        def delivered(err, msg):
            with self._lock:
                if err is not None:
                    self.errors.append(f"{case or (trade and trade.trade_id)}: {err}")
                else:
                    self.sent.append(Sent(msg.partition(), msg.offset(), key, value, trade, case))

        while True:
            try:
                self.producer.produce(self.settings.topic_trades, value, key, on_delivery=delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def send_trade(self, trade: Trade) -> Trade:
        trade = on_the_wire(trade)
        self.send(trade.symbol.encode(), trade.encode(), trade)
        return trade

    def flush(self, timeout: float = 180.0) -> None:
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} records not acknowledged by the broker within {timeout:.0f}s"
        assert not self.errors, f"records the broker refused: {self.errors[:5]}"

    def close(self) -> None:
        self.producer.flush(10)
        self.producer.close()

    def records(self) -> list[Sent]:
        with self._lock:
            return list(self.sent)

    def trades_sent(self) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.trade is not None)


class TradeFeed:
    """A seeded market published at ``rate`` trades a second from a background thread."""

    def __init__(self, publisher: Publisher, seed: int, rate: float = 200.0, speed: float = 10.0,
                 symbols=SYMBOLS, event_rate: float = 0.004):
        self.publisher = publisher
        self.seed = seed
        self.rate = rate
        self.speed = speed
        self.sim = MarketSimulator(symbols, seed=seed, event_rate=event_rate)
        self.symbols = tuple(symbols)
        self.count = 0
        self.last_ts = BASE
        self.horizon = float("-inf")  # candles ending after this are not compared (see Expected.horizon)
        self._stop = threading.Event()
        self._surge = 0
        self._surged = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = 0.0

    def next_trade(self, ts: float) -> Trade:
        trade, _ = self.sim.next_trade(BASE + self.count * CONTENT_STEP)
        self.count += 1
        trade = msgspec.structs.replace(trade, ts=ts)
        self.last_ts = self.publisher.send_trade(trade).ts
        return trade

    # --- paced, in the background ------------------------------------------------------------
    def start(self) -> "TradeFeed":
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"feed-{self.seed}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        paced = 0
        while not self._stop.is_set():
            if self._surge:
                n, self._surge = self._surge, 0
                for _ in range(n):
                    self.next_trade(self.last_ts + SURGE_STEP)
                self._surged.set()
                continue
            delay = self._started + paced / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(min(delay, 0.05)):
                break
            if delay > 0.05:
                continue
            paced += 1
            now = BASE + self.speed * (time.monotonic() - self._started)
            self.next_trade(max(now, self.last_ts + SURGE_STEP))

    def surge(self, n: int) -> None:
        """Have the feed thread send ``n`` trades at once (event time running ahead), then go on paced."""
        self._surged.clear()
        self._surge = n
        assert self._surged.wait(300), "the surge was not sent"

    def wait_before_boundary(self, window: float = 60.0, lead: float = 8.0, timeout: float = 60.0) -> float:
        """Wait until the feed's event time is ``lead`` seconds before a window boundary; returns it.

        A stall injected then makes the old wall-clock idleness close the window that the trades
        produced during the stall belong to, whatever the stall's length beyond ``lead + grace``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ts = self.last_ts
            boundary = ts - ts % window + window
            if boundary - lead - 1.0 <= ts <= boundary - lead:
                return boundary
            time.sleep(0.005)
        raise AssertionError(f"the feed never came {lead}s before a {window}s boundary")

    def stop(self) -> None:
        """Stop producing and wait until the broker acknowledged everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "the feed thread did not stop"
        self.publisher.flush()

    def produced_event_time(self) -> float:
        """Event time of the newest trade handed to the producer."""
        return self.last_ts

    # --- all at once -------------------------------------------------------------------------
    def burst(self, n: int, step: float) -> None:
        """``n`` trades as fast as possible, ``step`` seconds of event time apart, after the last one."""
        start = self.last_ts
        for i in range(n):
            self.next_trade(start + (i + 1) * step)
        self.publisher.flush()

    def close_windows(self) -> None:
        """One trade per symbol an hour of event time after the last: every earlier window closes by event
        time. Their own windows stay open (or close by the wall clock later) and are not compared."""
        ts = self.last_ts + MARKER_DELAY
        for sym in self.symbols:
            price = self.sim.prices[sym]
            self.publisher.send_trade(Trade(f"end-{sym}-{self.seed}", sym, price, 1.0, "BUY", "END", ts))
        self.horizon = ts
        self.publisher.flush()
