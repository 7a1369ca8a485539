"""The processor's exactly-once checkpoint: one fenced PostgreSQL transaction per flush.

Each assigned partition is a :class:`PartitionSlot`: the epoch this process claimed it with, its next
offset, its state, and what it buffered since its last checkpoint.  A flush writes, in ONE
transaction, every dirty slot's trades, candles, alerts, outbox messages (dead letters, candles,
alerts — keyed by the source partition), the dead letters again as rows (``dead_letters``, for the
data-quality page) and checkpoint (next offset + the partition's state, and the state of each of its
trade sources that changed since the slot's previous checkpoint, in rows of their own: an idle source
is not rewritten).  The transaction first
locks the partitions' checkpoint rows; a partition whose epoch is no longer the slot's was claimed
by another processor: nothing of it is written and the caller drops it.  Checkpoints never move
backwards.

Errors are classified (``pipeline.history.errors``): rows PostgreSQL rejects for their data are
isolated by splitting the batch under savepoints and dead-lettered with the database's message; a
server that is away is retried with capped exponential backoff (``pipeline.outage``: one log line per
change, "unavailable since" for the heartbeat and metrics); anything else propagates and stops the
processor.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import orjson

from pipeline.events import Alert, Candle, Trade, iso
from pipeline.history.errors import DATA, TRANSIENT, classify, first_line
from pipeline.history.writer import HistoryWriter
from pipeline.idleness import CatchUp
from pipeline.outage import POSTGRES, Availability, Stopped, retry_delay
from pipeline.partition_state import PartitionState
from pipeline.settings import Settings
from pipeline.trade_batch import TradeRows

logger = logging.getLogger(__name__)
MAX_BACKOFF = 30.0  # seconds between tries while the database is unavailable


@dataclass(eq=False)
class PartitionSlot:
    """One partition this process owns: where it stands and what it buffered since its checkpoint."""

    partition: int
    epoch: int
    state: PartitionState
    next_offset: Optional[int]  # None: no checkpoint and nothing consumed yet
    catch_up: CatchUp
    dirty: bool = False
    rows: TradeRows = field(default_factory=TradeRows)  # trades and whether each was late
    candles: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    deadletters: list = field(default_factory=list)  # (key, value) for the dead-letter topic

    def take(self) -> "PartitionWork":
        """What the next checkpoint makes durable; the buffers start empty again."""
        state, sources = self.state.checkpoint()
        work = PartitionWork(self.partition, self.epoch, self.next_offset, state, sources, self.rows,
                             self.candles, self.alerts, self.deadletters)
        self.rows, self.candles, self.alerts, self.deadletters = TradeRows(), [], [], []
        self.dirty = False
        return work


@dataclass
class PartitionWork:
    partition: int
    epoch: int
    next_offset: Optional[int]
    state: bytes
    sources: dict[str, bytes]  # trade source -> its state, for the sources changed since the last checkpoint
    rows: TradeRows
    candles: list
    alerts: list
    deadletters: list


@dataclass
class FlushResult:
    saved: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (epoch, next offset)
    refused: dict[int, int] = field(default_factory=dict)            # partition -> the epoch refused
    rows: int = 0
    candles: int = 0
    alerts: int = 0
    rejected: int = 0  # rows PostgreSQL refused for their data, dead-lettered


class CheckpointWriter:
    """Runs flushes on the flusher thread: retries while the database is away, isolates bad rows."""

    def __init__(self, settings: Settings, availability: Availability, stop: threading.Event,
                 writer: Optional[HistoryWriter] = None):
        self.s = settings
        self.writer = writer or HistoryWriter(settings.database_url, settings.db_timeout)
        self.availability = availability
        self.stop = stop

    def write(self, works: Sequence[PartitionWork]) -> FlushResult:
        attempt, isolate = 0, False
        while True:
            try:
                result = self._transaction(works, isolate)
                self.availability.answered([POSTGRES])
                return result
            except Exception as exc:  # noqa: BLE001 - classified below; FATAL re-raised
                kind = classify(exc)
                if kind == DATA and not isolate:
                    logger.warning("the database rejected a checkpoint's data (%s); isolating the rows",
                                   first_line(exc))
                    isolate = True
                    continue
                if kind != TRANSIENT:
                    raise
                self.availability.failed(POSTGRES, exc)
                if self.stop.wait(retry_delay(attempt, MAX_BACKOFF)):
                    raise Stopped() from exc
                attempt += 1

    def _transaction(self, works: Sequence[PartitionWork], isolate: bool) -> FlushResult:
        s, w = self.s, self.writer
        result = FlushResult()
        with w.transaction() as cur:
            epochs = w.lock_epochs(cur, s.processor_group, s.topic_trades, [x.partition for x in works])
            mine = []
            for x in works:
                if epochs.get(x.partition) == x.epoch and x.next_offset is not None:
                    mine.append(x)
                else:
                    result.refused[x.partition] = x.epoch
            outbox: list[tuple] = []
            if isolate:
                for x in mine:
                    bad = (_isolate(cur, lambda c, rows: w.insert_trades(c, rows, again=True), x.rows.pairs())
                           + _isolate(cur, w.insert_candles, x.candles)
                           + _isolate(cur, w.insert_alerts, x.alerts))
                    result.rejected += len(bad)
                    x.deadletters = x.deadletters + [self._rejected(x.partition, item, why)
                                                     for item, why in bad]
                    dropped = {id(item) for item, _ in bad}
                    x.candles = [c for c in x.candles if id(c) not in dropped]
                    x.alerts = [a for a in x.alerts if id(a) not in dropped]
            else:
                rows = TradeRows.concat(x.rows for x in mine)
                if rows:
                    w.insert_trades(cur, rows)
                candles = [c for x in mine for c in x.candles]
                if candles:
                    w.insert_candles(cur, candles)
                alerts = [a for x in mine for a in x.alerts]
                if alerts:
                    w.insert_alerts(cur, alerts)
            for x in mine:
                outbox += [(x.partition, s.topic_deadletter, k, v) for k, v in x.deadletters]
                outbox += [(x.partition, s.topic_aggregates, c.symbol.encode(), c.encode())
                           for c in x.candles]
                outbox += [(x.partition, s.topic_alerts, a.symbol.encode(), a.encode()) for a in x.alerts]
                result.rows += len(x.rows)
                result.candles += len(x.candles)
                result.alerts += len(x.alerts)
            if outbox:
                w.insert_outbox(cur, s.processor_group, s.topic_trades, outbox)
                w.insert_dead_letters(cur, [v for x in mine for _, v in x.deadletters])
            for x in mine:
                if not w.save_checkpoint(cur, s.processor_group, s.topic_trades, x.partition, x.epoch,
                                         x.next_offset, x.state):
                    raise RuntimeError(f"checkpoint of partition {x.partition} would move backwards to "
                                       f"offset {x.next_offset}: refusing to write it")
                if x.sources:
                    w.save_source_checkpoints(cur, s.processor_group, s.topic_trades, x.partition, x.sources)
                result.saved[x.partition] = (x.epoch, x.next_offset)
        return result

    def _rejected(self, partition: int, item, reason: str) -> tuple[Optional[bytes], bytes]:
        """The dead-letter message of a row the database refused."""
        source = {Trade: self.s.topic_trades, Candle: self.s.topic_aggregates, Alert: self.s.topic_alerts}
        record = item[0] if isinstance(item, tuple) else item
        kind = type(record).__name__.lower()
        logger.warning("database rejected a %s of %s: %s", kind, record.symbol, reason)
        return record.symbol.encode(), orjson.dumps({
            "reason": f"database rejected: {reason}", "kind": "database_rejected",
            "topic": source.get(type(record), ""),
            "partition": partition, "key": record.symbol, "value": record.encode().decode("utf-8", "replace"),
            "failed_at": iso(time.time())})


def _isolate(cur, insert: Callable, items: list) -> list[tuple[object, str]]:
    """Insert ``items``, splitting around rows the database refuses for their data: returns (item, reason)."""
    bad: list[tuple[object, str]] = []
    counter = [0]

    def attempt(chunk: list) -> None:
        counter[0] += 1
        name = f"isolate_{counter[0]}"
        cur.execute(f"SAVEPOINT {name}")
        try:
            insert(cur, chunk)
            cur.execute(f"RELEASE SAVEPOINT {name}")
        except Exception as exc:  # noqa: BLE001 - only data errors are isolated
            if classify(exc) != DATA:
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
            cur.execute(f"RELEASE SAVEPOINT {name}")
            if len(chunk) == 1:
                bad.append((chunk[0], first_line(exc)))
                return
            mid = len(chunk) // 2
            attempt(chunk[:mid])
            attempt(chunk[mid:])

    if items:
        attempt(list(items))
    return bad
