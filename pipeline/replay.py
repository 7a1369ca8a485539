"""Replay trades from a CSV file into ``raw-trades`` (``stockit replay FILE.csv --speed N|max``).

Columns: ``timestamp,symbol,price,quantity`` and optionally ``side,exchange,trade_id``.  A missing
trade id is derived from the row's content and how many identical rows came before it, so the
same file replayed twice yields the same ids and the history stays free of duplicates.  A missing
side is inferred by the tick rule (up-tick BUY, down-tick SELL).  Rows that cannot become a trade
go to the dead-letter topic with their line number and reason; nothing is dropped silently.

``--speed N`` keeps the file's own pacing N times faster; ``max`` sends as fast as possible.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, TextIO, Union

import orjson

from pipeline.events import SYMBOL_PATTERN, Trade, parse_iso
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
REQUIRED = ("timestamp", "symbol", "price", "quantity")
_SYMBOL = re.compile(SYMBOL_PATTERN)


class ReplayError(ValueError):
    """The file cannot be replayed at all (missing columns, unreadable)."""


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str
    raw: dict


def parse_timestamp(text: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return parse_iso(text)
    return value / 1000.0 if value > 1e11 else value  # epoch milliseconds or seconds


def parse_speed(text: str) -> Optional[float]:
    """'max' -> None (no pacing); a positive number -> that multiple of real time."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ReplayError(f"--speed must be a positive number or 'max', not {text!r}") from None
    if not math.isfinite(speed) or speed <= 0:
        raise ReplayError(f"--speed must be a positive number or 'max', not {text!r}")
    return speed


def read_trades(stream: TextIO) -> Iterator[Union[Trade, BadRow]]:
    """Trades (or BadRows) in file order."""
    reader = csv.DictReader(stream)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ReplayError(f"CSV lacks required column(s) {', '.join(missing)}; has {', '.join(header) or 'none'}")
    reader.fieldnames = header
    seen: dict[tuple, int] = {}
    last: dict[str, tuple[float, str]] = {}
    for row in reader:
        line = reader.line_num
        try:
            yield _to_trade(row, seen, last)
        except (ValueError, TypeError, OverflowError) as exc:
            yield BadRow(line, str(exc), {k: v for k, v in row.items() if k is not None})


def _to_trade(row: dict, seen: dict, last: dict) -> Trade:
    def field(name: str) -> str:
        value = (row.get(name) or "").strip()
        if not value and name in REQUIRED:
            raise ValueError(f"missing {name}")
        return value

    symbol = field("symbol").upper()
    if not _SYMBOL.match(symbol):
        raise ValueError(f"invalid symbol {symbol!r}")
    try:
        ts = parse_timestamp(field("timestamp"))
    except ValueError:
        raise ValueError(f"unparseable timestamp {field('timestamp')!r}") from None
    price, quantity = float(field("price")), float(field("quantity"))
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be a positive number, not {field('price')!r}")
    if not (math.isfinite(quantity) and quantity > 0):
        raise ValueError(f"quantity must be a positive number, not {field('quantity')!r}")
    if ts < 0:
        raise ValueError("timestamp before 1970")
    side = field("side").upper()
    if side and side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, not {side!r}")
    if not side:  # tick rule; a zero tick keeps the previous side
        prev_price, prev_side = last.get(symbol, (price, "BUY"))
        side = "BUY" if price > prev_price else "SELL" if price < prev_price else prev_side
    last[symbol] = (price, side)
    exchange = field("exchange")
    trade_id = field("trade_id")
    if not trade_id:
        content = (ts, symbol, price, quantity, side, exchange)
        n = seen.get(content, 0)
        seen[content] = n + 1
        digest = hashlib.sha1(repr((*content, n)).encode()).hexdigest()[:20]
        trade_id = f"csv-{digest}"
    return Trade(trade_id, symbol, price, quantity, side, exchange, ts)


@dataclass
class ReplayResult:
    sent: int = 0
    bad: int = 0
    seconds: float = 0.0


def replay(path: Path, settings: Settings, speed: Optional[float], stop: Optional[threading.Event] = None,
           out=print) -> ReplayResult:
    """Publish the file's trades; bad rows go to the dead-letter topic."""
    from pipeline import kafka_io
    from pipeline.producer import TradePublisher
    from pipeline.metrics import ProducerMetrics

    stop = stop or threading.Event()
    producer = kafka_io.Publisher(settings)
    pub = TradePublisher(producer, settings.topic_trades, ProducerMetrics())
    result = ReplayResult()
    started = time.monotonic()
    first_ts: Optional[float] = None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for item in read_trades(f):
                if stop.is_set():
                    break
                if isinstance(item, BadRow):
                    result.bad += 1
                    if result.bad <= 20:
                        out(f"{path}:{item.line}: {item.reason} (sent to {settings.topic_deadletter})")
                    record = {"reason": f"replay: {item.reason}", "source": str(path), "line": item.line,
                              "value": item.raw}
                    producer.produce(settings.topic_deadletter, orjson.dumps(record))
                    continue
                if speed is not None:
                    if first_ts is None:
                        first_ts = item.ts
                    due = started + (item.ts - first_ts) / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        producer.poll(0)
                        if stop.wait(delay):
                            break
                pub.publish(item.symbol.encode(), item.encode(), item.symbol, item.side)
                result.sent += 1
                if result.sent % 100000 == 0:
                    producer.poll(0)
                    out(f"{result.sent} trades sent")
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path} is not UTF-8 text: {exc}") from None
    finally:
        left = producer.flush(60)
        if left:
            raise ReplayError(f"{left} trades were not acknowledged by the broker")
    result.seconds = time.monotonic() - started
    return result


def write_csv(trades: Iterable[Trade], path: Path, with_ids: bool = True) -> None:
    """Write trades in the replay format (used by tests and benchmarks)."""
    from pipeline.events import iso

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "symbol", "price", "quantity", "side", "exchange"] + (["trade_id"] if with_ids else []))
        for t in trades:
            w.writerow([iso(t.ts), t.symbol, repr(t.price), repr(t.quantity), t.side, t.exchange]
                       + ([t.trade_id] if with_ids else []))
