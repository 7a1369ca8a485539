"""One Redis pub/sub subscription per web process, fanned out to every WebSocket and SSE client.

The hub keeps the latest ticker of every symbol (primed from Redis, merged from each processor
batch published on ``stockit:live:prices``, refreshed from Redis once a second) and a short
numbered backlog of alerts and finalized candles.  Prices go out as numbered *frames*: one when
prices changed and ``price_interval`` has passed since the last, and one at least every
``PRICE_PERIOD`` (also while Redis is away: then they say ``live: false``).  A frame is encoded
once per symbol filter, and every client of that filter gets the same bytes.  Stream handlers block
on :meth:`LiveHub.wait_price_frame` or :meth:`LiveHub.wait_events` and are woken the moment
something arrives.
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import Optional

import orjson
import redis

from pipeline.speed_layer import CHANNEL_AGGREGATES, CHANNEL_ALERTS, CHANNEL_PRICES, SpeedLayerReader

logger = logging.getLogger(__name__)
ALERTS, AGGREGATES = "alerts", "aggregates"
CHANNEL_KIND = {CHANNEL_ALERTS.encode(): ALERTS, CHANNEL_AGGREGATES.encode(): AGGREGATES}
BACKLOG = 1000
REFRESH_SECONDS = 1.0
PRICE_PERIOD = 1.0  # a price frame at least this often, changed or not
_hubs: "weakref.WeakSet[LiveHub]" = weakref.WeakSet()


def stop_all() -> None:
    """Wake and end every stream of this process (the web server is shutting down)."""
    for hub in list(_hubs):
        hub.stop()


def frame_due(now: float, last_frame_at: float, changed: bool, interval: float) -> bool:
    """Is a new price frame due: changed prices after ``interval``, or anything after ``PRICE_PERIOD``."""
    return now - last_frame_at >= (min(interval, PRICE_PERIOD) if changed else PRICE_PERIOD)


def next_frame_at(last_frame_at: float, changed: bool, interval: float) -> float:
    """When the next price frame falls due if nothing else changes."""
    return last_frame_at + (min(interval, PRICE_PERIOD) if changed else PRICE_PERIOD)


class LiveHub:
    def __init__(self, client: redis.Redis, reader: SpeedLayerReader, price_interval: float = 0.25):
        self.client = client
        self.reader = reader
        self.price_interval = price_interval
        self.prices_lock = threading.Lock()  # prices and frames
        self.events_cond = threading.Condition()  # alerts and candles
        self.prices: dict[str, dict] = {}
        self.prices_changed = False  # since the last frame
        self.price_frame = 0
        self._frame_made = threading.Event()  # set (and replaced) when the next frame is made
        self._prices_arrived = threading.Event()  # wakes the frame clock early
        self.frame_at, self._frame_ts = 0.0, time.time()  # when the last frame was made: monotonic, epoch
        self._frame_messages: dict[Optional[frozenset], bytes] = {}
        self.events: deque[tuple[int, str, dict]] = deque(maxlen=BACKLOG)
        self.seq = 0
        self.connected = False
        self.stopping = threading.Event()
        self.ready = threading.Event()  # first snapshot loaded (or first attempt failed)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        _hubs.add(self)

    def start(self, wait: float = 3.0) -> "LiveHub":
        """Start the subscription and the frame clock once; wait up to ``wait`` s for the first snapshot."""
        with self._start_lock:
            if not self._threads:
                self._threads = [threading.Thread(target=self._run, name="live-hub", daemon=True),
                                 threading.Thread(target=self._clock, name="live-hub-clock", daemon=True)]
                for t in self._threads:
                    t.start()
        self.ready.wait(wait)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._prices_arrived.set()
        with self.prices_lock:
            self._frame_made.set()
        with self.events_cond:
            self.events_cond.notify_all()

    # --- readers (stream handlers) --------------------------------------------------------------
    def wait_price_frame(self, seen_frame: int) -> int:
        """Block until a frame newer than ``seen_frame`` (the clock makes one at least every PRICE_PERIOD,
        Redis or not) or the hub stops; returns the newest frame number."""
        with self.prices_lock:
            if self.price_frame != seen_frame or self.stopping.is_set():
                return self.price_frame
            made = self._frame_made
        made.wait()
        return self.price_frame

    def price_message(self, symbols: Optional[frozenset] = None) -> tuple[int, bytes]:
        """(number, JSON message) of the newest frame for clients of ``symbols`` (None: all), encoded once."""
        with self.prices_lock:
            message = self._frame_messages.get(symbols)
            if message is None:
                prices = self.prices
                if symbols is not None:
                    prices = {s: t for s, t in prices.items() if s in symbols}
                message = orjson.dumps({"type": "prices", "server_ts": self._frame_ts, "live": self.connected,
                                        "prices": prices})
                self._frame_messages[symbols] = message
            return self.price_frame, message

    def wait_events(self, kind: str, after_seq: int, timeout: float) -> tuple[int, list[dict]]:
        """Events of ``kind`` numbered above ``after_seq`` (waiting up to ``timeout`` for the first)."""
        with self.events_cond:
            if self.seq <= after_seq and not self.stopping.is_set():
                self.events_cond.wait(timeout)
            return self.seq, [e for s, k, e in self.events if s > after_seq and k == kind]

    def current_seq(self) -> int:
        with self.events_cond:
            return self.seq

    # --- the frame clock and the subscription thread ----------------------------------------------
    def _clock(self) -> None:
        """Make the price frames: when prices changed and ``price_interval`` has passed, else every
        PRICE_PERIOD.  One waiting thread for the whole process, not one timer per client."""
        while not self.stopping.is_set():
            with self.prices_lock:
                due = next_frame_at(self.frame_at, self.prices_changed, self.price_interval)
            if due > time.monotonic():
                self._prices_arrived.wait(due - time.monotonic())
                self._prices_arrived.clear()
            with self.prices_lock:
                if frame_due(time.monotonic(), self.frame_at, self.prices_changed, self.price_interval):
                    self._new_frame()

    def _new_frame(self) -> None:
        """Publish the current prices as the next frame (call holding ``prices_lock``)."""
        self.price_frame += 1
        self.frame_at, self._frame_ts = time.monotonic(), time.time()
        self._frame_messages = {}
        self.prices_changed = False
        made, self._frame_made = self._frame_made, threading.Event()
        made.set()

    def _run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL_PRICES, CHANNEL_ALERTS, CHANNEL_AGGREGATES)
                self._refresh()
                self.connected, backoff = True, 0.5
                self.ready.set()
                next_refresh = time.monotonic() + REFRESH_SECONDS
                while not self.stopping.is_set():
                    msg = pubsub.get_message(timeout=max(0.0, next_refresh - time.monotonic()))
                    if msg is not None and msg.get("type") == "message":
                        self._handle(msg["channel"], msg["data"])
                    if time.monotonic() >= next_refresh:
                        self._refresh()
                        next_refresh = time.monotonic() + REFRESH_SECONDS
            except (redis.exceptions.RedisError, OSError) as exc:
                if self.connected:
                    logger.warning("live hub lost Redis: %s", exc)
                self.connected = False
                self.ready.set()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass

    def _refresh(self) -> None:
        prices = self.reader.prices()
        with self.prices_lock:
            if prices != self.prices:
                self.prices = prices
                self._changed()

    def _changed(self) -> None:
        """Prices changed (call holding ``prices_lock``): the clock may owe a frame sooner."""
        if not self.prices_changed:
            self.prices_changed = True
            self._prices_arrived.set()

    def _handle(self, channel: bytes, data: bytes) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a message that is not JSON on %s", channel)
            return
        if channel == CHANNEL_PRICES.encode():
            with self.prices_lock:
                merged = dict(self.prices)
                merged.update(payload)
                self.prices = merged
                self._changed()
            return
        with self.events_cond:
            self.seq += 1
            self.events.append((self.seq, CHANNEL_KIND[channel], payload))
            self.events_cond.notify_all()
