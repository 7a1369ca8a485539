"""One Redis pub/sub subscription per web process, fanned out to every WebSocket and SSE client.

The hub keeps the latest ticker of every symbol (primed from Redis, merged from each processor
batch published on ``stockit:live:prices``, refreshed from Redis once a second) and a short
numbered backlog of alerts and finalized candles.  Stream handlers block on :meth:`wait_prices` or
:meth:`wait_events` and are woken the moment something arrives.
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
_hubs: "weakref.WeakSet[LiveHub]" = weakref.WeakSet()


def stop_all() -> None:
    """Wake and end every stream of this process (the web server is shutting down)."""
    for hub in list(_hubs):
        hub.stop()


class LiveHub:
    def __init__(self, client: redis.Redis, reader: SpeedLayerReader):
        self.client = client
        self.reader = reader
        self.cond = threading.Condition()
        self.prices: dict[str, dict] = {}
        self.price_version = 0
        self.events: deque[tuple[int, str, dict]] = deque(maxlen=BACKLOG)
        self.seq = 0
        self.connected = False
        self.stopping = threading.Event()
        self.ready = threading.Event()  # first snapshot loaded (or first attempt failed)
        self._thread: Optional[threading.Thread] = None
        self._start_lock = threading.Lock()
        _hubs.add(self)

    def start(self, wait: float = 3.0) -> "LiveHub":
        """Start the subscription once; wait up to ``wait`` seconds for the first snapshot."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
                self._thread.start()
        self.ready.wait(wait)
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()

    # --- readers (stream handlers) --------------------------------------------------------------
    def wait_prices(self, seen_version: int, timeout: float) -> tuple[int, dict[str, dict]]:
        """Block until the prices are newer than ``seen_version`` or ``timeout``; returns (version, prices)."""
        with self.cond:
            if self.price_version == seen_version and not self.stopping.is_set():
                self.cond.wait(timeout)
            return self.price_version, self.prices

    def wait_events(self, kind: str, after_seq: int, timeout: float) -> tuple[int, list[dict]]:
        """Events of ``kind`` numbered above ``after_seq`` (waiting up to ``timeout`` for the first)."""
        with self.cond:
            if self.seq <= after_seq and not self.stopping.is_set():
                self.cond.wait(timeout)
            return self.seq, [e for s, k, e in self.events if s > after_seq and k == kind]

    def current_seq(self) -> int:
        with self.cond:
            return self.seq

    # --- the subscription thread -----------------------------------------------------------------
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
                with self.cond:
                    self.cond.notify_all()
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
        with self.cond:
            if prices != self.prices:
                self.prices = prices
                self.price_version += 1
                self.cond.notify_all()

    def _handle(self, channel: bytes, data: bytes) -> None:
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a message that is not JSON on %s", channel)
            return
        with self.cond:
            if channel == CHANNEL_PRICES.encode():
                merged = dict(self.prices)
                merged.update(payload)
                self.prices = merged
                self.price_version += 1
            else:
                self.seq += 1
                self.events.append((self.seq, CHANNEL_KIND[channel], payload))
            self.cond.notify_all()
