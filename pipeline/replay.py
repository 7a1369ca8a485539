"""Replay trades from a CSV file into ``raw-trades`` (``stockit replay FILE.csv [--source S] [--speed N]``).

Columns: ``timestamp,symbol,price,quantity`` and optionally ``side,exchange,trade_id``.  Every trade
is stamped with the replay's *source* (``--source NAME``, by default the file's name: ``SPX daily.csv``
-> ``spx-daily``), which gives it an event-time clock of its own in the processor: years-old history
replayed beside live trades is neither late because of them nor makes them late, and its candles and
alerts carry the source's name.  A missing trade id is derived from the row's content, the source
and how many identical rows came before it, so the same file replayed twice under the same source
yields the same ids and the history stays free of duplicates.  A missing
side is inferred by the tick rule (up-tick BUY, down-tick SELL).  Every row passes the same gate as
a record on ``raw-trades`` (``Trade.decode``: bounds, text, future timestamps); rows that cannot
become a trade — unreadable CSV, invalid UTF-8, NUL bytes, absurd values included — go to the
dead-letter topic with their line number and reason and are counted; nothing is dropped silently,
and no row stops the replay.

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
from collections import Counter
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, TextIO, Union

import orjson

from pipeline.events import (BAD_TIMESTAMP, DEFAULT_MAX_FUTURE, DEFAULT_MAX_RECORD_BYTES, DEFAULT_SOURCE,
                             INVALID_FIELD, SOURCE_MAX, SYMBOL_PATTERN, InvalidRecord, Trade, check_source,
                             check_text, iso, parse_iso)
from pipeline.settings import Settings

logger = logging.getLogger(__name__)
REQUIRED = ("timestamp", "symbol", "price", "quantity")
UNREADABLE = "unreadable_row"  # BadRow.kind of a row the CSV reader itself refused
_SYMBOL = re.compile(SYMBOL_PATTERN)
_SHOWN_CHARS = 1000  # of each value of a bad row kept in its dead-letter record


class ReplayError(ValueError):
    """The file cannot be replayed at all (missing columns, unreadable)."""


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str
    raw: dict
    kind: str = INVALID_FIELD  # an InvalidRecord kind, or UNREADABLE


def printable(text: str, limit: int = _SHOWN_CHARS) -> str:
    """Text safe to print and to encode as JSON: undecodable bytes become U+FFFD, cut to ``limit``."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + "…"


def parse_timestamp(text: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return parse_iso(text)
    return value / 1000.0 if value > 1e11 else value  # epoch milliseconds or seconds


def source_for(path: Path, name: Optional[str] = None) -> str:
    """The source a replay stamps on its trades: ``name`` (lower-cased), else the file's name made into
    one (``SPX daily (2015).csv`` -> ``spx-daily-2015``).  ReplayError when neither is a source name."""
    if name is not None:
        try:
            return check_source(name.strip().lower())
        except ValueError as exc:
            raise ReplayError(f"--source: {exc}") from None
    derived = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-._")[:SOURCE_MAX].rstrip("-._")
    try:
        return check_source(derived)
    except ValueError:
        raise ReplayError(f"cannot name a source after the file {printable(path.name, 80)!r}: "
                          "give one with --source NAME") from None


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


def read_trades(stream: TextIO, now: Callable[[], float] = time.time, max_future: float = DEFAULT_MAX_FUTURE,
                max_bytes: int = DEFAULT_MAX_RECORD_BYTES, source: str = DEFAULT_SOURCE
                ) -> Iterator[Union[Trade, BadRow]]:
    """Trades of ``source`` (or BadRows) in file order; only a file without the required columns raises."""
    reader = csv.DictReader(stream)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise ReplayError(f"unreadable CSV header: {exc}") from None
    header = [printable(h.strip().lower(), 64) for h in (fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ReplayError(f"CSV lacks required column(s) {', '.join(missing)}; has {', '.join(header) or 'none'}")
    reader.fieldnames = header
    seen: dict[tuple, int] = {}
    last: dict[str, tuple[float, str]] = {}
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            # line_num counts the lines read before the one the reader stopped in
            yield BadRow(reader.line_num + 1, f"unreadable CSV row: {exc}", {}, UNREADABLE)
            continue
        line = reader.line_num
        try:
            yield _to_trade(row, seen, last, now(), max_future, max_bytes, source)
        except InvalidRecord as exc:
            yield BadRow(line, printable(exc.reason, 300), _shown(row), exc.kind)
        except (ValueError, TypeError, OverflowError, OSError) as exc:
            yield BadRow(line, printable(str(exc), 300), _shown(row),
                         BAD_TIMESTAMP if "timestamp" in str(exc) else INVALID_FIELD)


def open_csv(path: Path) -> TextIO:
    """The file as text; undecodable bytes become lone surrogates, which the gate refuses row by row."""
    return open(path, newline="", encoding="utf-8-sig", errors="surrogateescape")


def _shown(row: dict) -> dict:
    return {k: printable(v) if isinstance(v, str) else v for k, v in row.items() if k is not None}


def _to_trade(row: dict, seen: dict, last: dict, now: float, max_future: float, max_bytes: int,
              source: str) -> Trade:
    def field(name: str) -> str:
        value = (row.get(name) or "").strip()
        if not value and name in REQUIRED:
            raise ValueError(f"missing {name}")
        return value

    symbol = field("symbol").upper()
    if not _SYMBOL.match(symbol):
        raise ValueError(f"invalid symbol {printable(symbol, 40)!r}")
    try:
        ts = parse_timestamp(field("timestamp"))
    except ValueError:
        raise ValueError(f"unparseable timestamp {printable(field('timestamp'), 64)!r}") from None
    if not math.isfinite(ts):
        raise ValueError(f"unparseable timestamp {printable(field('timestamp'), 64)!r}")
    try:
        price, quantity = float(field("price")), float(field("quantity"))
    except ValueError:
        raise ValueError(f"price and quantity must be numbers, not {printable(field('price'), 40)!r} and "
                         f"{printable(field('quantity'), 40)!r}") from None
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be a positive number, not {printable(field('price'), 40)!r}")
    if not (math.isfinite(quantity) and quantity > 0):
        raise ValueError(f"quantity must be a positive number, not {printable(field('quantity'), 40)!r}")
    if ts < 0:
        raise ValueError("timestamp before 1970")
    side = field("side").upper()
    if side and side not in ("BUY", "SELL"):
        raise ValueError(f"side must be BUY or SELL, not {printable(side, 40)!r}")
    if not side:  # tick rule; a zero tick keeps the previous side
        prev_price, prev_side = last.get(symbol, (price, "BUY"))
        side = "BUY" if price > prev_price else "SELL" if price < prev_price else prev_side
    exchange = field("exchange")
    trade_id = field("trade_id")
    if not trade_id:
        # The default source keeps the ids replays derived before sources existed.
        content = (ts, symbol, price, quantity, side, exchange)
        if source != DEFAULT_SOURCE:
            content += (source,)
        n = seen.get(content, 0)
        seen[content] = n + 1
        digest = hashlib.sha1(repr((*content, n)).encode("utf-8", "surrogateescape")).hexdigest()[:20]
        trade_id = f"csv-{digest}"
    # The same gate as every record on raw-trades: what it refuses here, the processor would refuse.
    try:
        iso(ts)
    except (ValueError, OverflowError, OSError):  # no calendar date for it
        shown = printable(field("timestamp"), 64)
        raise InvalidRecord(f"absurd timestamp {shown!r}", BAD_TIMESTAMP) from None
    check_text("trade_id", trade_id)
    check_text("exchange", exchange)
    wire = Trade(trade_id, symbol, price, quantity, side, exchange, ts, source=source).encode()
    trade = Trade.decode(wire, now, max_future, max_bytes=max_bytes)
    last[symbol] = (price, side)
    return trade


@dataclass
class ReplayResult:
    sent: int = 0
    bad: int = 0
    seconds: float = 0.0
    bad_by_kind: Counter = dataclass_field(default_factory=Counter)


def replay(path: Path, settings: Settings, speed: Optional[float], stop: Optional[threading.Event] = None,
           out=print, source: str = DEFAULT_SOURCE) -> ReplayResult:
    """Publish the file's trades as ``source``; bad rows go to the dead-letter topic, counted by kind."""
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
        with open_csv(path) as f:
            for item in read_trades(f, max_future=settings.max_future_seconds,
                                    max_bytes=settings.max_record_bytes, source=source):
                if stop.is_set():
                    break
                if isinstance(item, BadRow):
                    result.bad += 1
                    result.bad_by_kind[item.kind] += 1
                    if result.bad <= 20:
                        out(f"{printable(str(path), 200)}:{item.line}: {item.reason} "
                            f"(sent to {settings.topic_deadletter})")
                    record = {"reason": f"replay: {item.reason}", "kind": item.kind,
                              "file": printable(str(path), 200), "source": source, "line": item.line,
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
    finally:
        left = producer.flush(60)
        if left:
            raise ReplayError(f"{left} trades were not acknowledged by the broker")
    if result.bad:
        out("bad rows by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(result.bad_by_kind.items())))
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
