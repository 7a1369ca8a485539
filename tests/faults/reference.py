"""What an uninterrupted run makes of the records that were sent: the checker's reference.

The processor's own pure logic (``PartitionState`` with the run's rules, window sizes and grace)
folds each partition's acknowledged records in offset order, exactly as one processor that is
never stopped, frozen or rebalanced reads them, and with no wall-clock lull (event time alone
closes windows).  Test flt000 proves that a real processor on real servers, left alone, produces
exactly this; every other test then reports what its fault changed.  Candles whose window ends
after the end-of-stream markers (``horizon``) are closed by the wall clock at a time that depends on
the run, so neither side compares them.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Optional

import orjson

from pipeline.events import Alert, Candle, Trade
from pipeline.partition_state import PartitionState
from pipeline.processor import rulebook
from pipeline.settings import Settings
from tests.faults.feed import Sent

logger = logging.getLogger(__name__)


@dataclass
class Expected:
    trades: dict[str, tuple[Trade, bool]] = field(default_factory=dict)   # trade id -> (trade, late)
    candles: dict[tuple, Candle] = field(default_factory=dict)            # (symbol, seconds, start) -> candle
    alerts: dict[str, Alert] = field(default_factory=dict)                # alert id -> alert
    deadletters: dict[tuple[int, int], str] = field(default_factory=dict)  # (partition, offset) -> case
    # (partition, trade id) -> (partition, offset) of bad records that carry a trade id: a row the database
    # refuses is dead-lettered with the trade, not the offset
    deadletter_ids: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    end_offsets: dict[int, int] = field(default_factory=dict)             # partition -> end offset
    acknowledged: int = 0                                                 # records the broker acknowledged
    not_on_topic: list[str] = field(default_factory=list)                 # ...that the input topic lacks
    horizon: float = float("-inf")

    def compared(self, key: tuple) -> bool:
        """Whether the candle ``key`` (symbol, seconds, start) is closed by event time within the input."""
        return key[2] + key[1] <= self.horizon


def as_on_topic(sent: list[Sent], messages: list[tuple[int, int, bytes, bytes]]
                ) -> tuple[list[Sent], list[Sent]]:
    """The acknowledged records with the offsets the input topic gives them, in its order, and the
    acknowledged records the topic does not hold (the checker reports those as lost input).

    A delivery report does not always carry the offset (an idempotent producer's retried batch
    reports none), so the topic itself, read back, says where each record is."""
    waiting: dict[tuple, deque] = defaultdict(deque)
    acknowledged: set[tuple[int, int]] = set()
    for s in sent:
        if s.offset is not None:
            if (s.partition, s.offset) in acknowledged:
                logger.warning("record at partition %d offset %d acknowledged twice", s.partition, s.offset)
                continue
            acknowledged.add((s.partition, s.offset))
        waiting[(s.partition, s.key, s.value)].append(s)
    out = []
    for partition, offset, key, value in messages:
        copies = waiting.get((partition, key, value))
        assert copies, f"a record nobody sent is on the input topic: partition {partition} offset {offset}"
        out.append(dataclasses.replace(copies.popleft(), offset=offset))
    missing = [s for q in waiting.values() for s in q]
    if missing:
        logger.warning("%d acknowledged records are not on the input topic", len(missing))
    return out, missing


def uninterrupted(sent: list[Sent], settings: Settings, horizon: float,
                  not_on_topic: Optional[list[Sent]] = None) -> Expected:
    """The reference of ``sent`` (with offsets, see ``as_on_topic``) under ``settings``; candles ending
    after ``horizon`` are left out."""
    not_on_topic = not_on_topic or []
    out = Expected(horizon=horizon, acknowledged=len(sent) + len(not_on_topic),
                   not_on_topic=[f"partition {s.partition}: {s.trade.trade_id if s.trade else s.case}"
                                 for s in not_on_topic])
    by_partition: dict[int, list[Sent]] = defaultdict(list)
    for s in sent:
        by_partition[s.partition].append(s)
    rules = rulebook(settings)
    for partition, records in by_partition.items():
        records.sort(key=lambda s: s.offset)
        out.end_offsets[partition] = records[-1].offset + 1
        state = PartitionState(settings.window_list, settings.grace_seconds, rules)
        for s in records:
            if s.trade is None:
                out.deadletters[(s.partition, s.offset)] = s.case
                trade_id = _trade_id(s.value)
                if trade_id:
                    out.deadletter_ids[(s.partition, trade_id)] = (s.partition, s.offset)
                continue
            fresh = state.apply(s.trade)
            out.trades[s.trade.trade_id] = (s.trade, not fresh)
            candles, alerts = state.drain()
            out.candles.update((c.key(), c) for c in candles if out.compared(c.key()))
            out.alerts.update((a.alert_id, a) for a in alerts)
    return out


def _trade_id(value: Optional[bytes]) -> Optional[str]:
    try:
        trade_id = orjson.loads(value)["trade_id"]
    except Exception:  # noqa: BLE001 - not JSON, not an object, no id: identified by offset only
        return None
    return trade_id if isinstance(trade_id, str) else None
