"""Everything the processor knows about one Kafka partition — pure logic, no I/O.

Each *source* of trades on the partition (the live feed, each replay: ``Trade.source``) keeps its
own event-time clock, so history replayed beside live data is never late because of it and never
makes live data late.  Per (source, symbol): open candle windows, the symbol's rule-set state
(``rulesets.book.SymbolRules``) and a ticker (last price, day open/high/low/volume).  Per source:
its newest event time (the watermark of its quiet symbols), the wall clock's push in a lull, and
running counters; per partition only the count of invalid records.  ``apply`` takes one trade;
finalized candles and alerts collect in ``candles`` and ``alerts`` until the caller drains them.

Watermark of a symbol = max(its own newest event time, its source's newest event time - grace, the
source's lull time): a symbol closes its own windows, and a quiet one follows its source one grace
period behind.  In a lull, ``tick(source, idle_seconds)`` lets the wall clock move that source on.
The same watermark raises what timed rules have due (LULD's trading pause of a symbol that stopped
trading in a limit state).

Checkpoint: ``checkpoint()`` gives the partition's own snapshot (:class:`PartitionSnapshot`, version
``CHECKPOINT_VERSION``, MessagePack) and the snapshot of every source changed since the last call
(:class:`SourceSnapshot`), so an old replay's state is not rewritten on every flush;
``from_bytes`` rebuilds the state from the partition snapshot and every source snapshot.  A version
2 checkpoint (before sources) is read as one of the default source (``checkpoint_v2``).
"""
from __future__ import annotations

import logging
import math
from typing import Iterable, Mapping, Optional, Union

import msgspec
import numpy as np

from pipeline.events import Alert, Candle, Trade
from pipeline.fold import fold_source
from pipeline.rulesets.book import RuleBook, RuleSet, SymbolRules
from pipeline.trade_batch import TradeColumns
from pipeline.windows import SymbolWindows, WindowsSnapshot, check_sizes, running_sums

logger = logging.getLogger(__name__)
_DAY = 86400.0
_NEG_INF = float("-inf")
_INF = math.inf
CHECKPOINT_VERSION = 3  # 1: positional lists; 2: typed, one clock per partition; 3: a clock per source
SOURCE_COUNTERS = ("trades", "volume", "notional", "alerts", "late", "candles")


class TickerSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`Ticker`."""

    price: float
    prev_price: float
    day: float
    day_open: float
    high: float
    low: float
    volume: float
    count: int
    ts: float


class SymbolSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of one symbol's windows, rule states and ticker within its source."""

    windows: WindowsSnapshot
    rules: SymbolRules
    ticker: TickerSnapshot
    last_time: float


class SourceSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`SourceState`: one source's clock, counters and symbols."""

    version: int = msgspec.field(name="v")
    source: str
    time: float
    idle_time: float
    counters: dict[str, Union[int, float]]
    symbols: dict[str, SymbolSnapshot]


class PartitionSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`PartitionState` without its sources (each has its own snapshot)."""

    version: int = msgspec.field(name="v")
    sizes: list[int]
    grace: float
    invalid: int
    sources: list[str]


class _Version(msgspec.Struct):
    version: int = msgspec.field(name="v", default=0)


class CheckpointVersionError(ValueError):
    """A checkpoint written by another version of Stock-IT."""


class Ticker:
    """Latest price and day statistics of one symbol (by event time, UTC day)."""

    __slots__ = ("price", "prev_price", "day", "day_open", "high", "low", "volume", "count", "ts")

    def __init__(self):
        self.price = self.prev_price = self.day_open = self.high = self.low = self.volume = 0.0
        self.day = -1.0
        self.count = 0
        self.ts = 0.0

    def add(self, ts: float, price: float, quantity: float) -> None:
        day = ts - ts % _DAY
        if day > self.day:
            self.day, self.day_open, self.high, self.low, self.volume = day, price, price, price, 0.0
        if ts >= self.ts:
            self.prev_price = self.price or price
            self.price = price
            self.ts = ts
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += quantity
        self.count += 1

    def add_many(self, ts: np.ndarray, price: np.ndarray, quantity: np.ndarray) -> None:
        """``add`` of each trade in this (arrival) order, at once."""
        day = ts - ts % _DAY
        before = np.maximum.accumulate(np.concatenate(((self.day,), day)))[:-1]  # newest day before each
        resets = np.flatnonzero(day > before)
        if resets.size:  # a new day: its first trade opens it, the day's figures restart there
            r = int(resets[-1])
            self.day, self.day_open = float(day[r]), float(price[r])
            self.high, self.low = float(price[r:].max()), float(price[r:].min())
            volume = np.concatenate(((0.0,), quantity[r:]))
        else:
            self.high, self.low = max(self.high, float(price.max())), min(self.low, float(price.min()))
            volume = np.concatenate(((self.volume,), quantity))
        self.volume = float(running_sums(volume[None, :])[0])
        newest = np.maximum.accumulate(np.concatenate(((self.ts,), ts)))[:-1]
        taken = np.flatnonzero(ts >= newest)  # the trades that became the last price, in order
        if taken.size:
            last = int(taken[-1])
            before_last = float(price[taken[-2]]) if taken.size > 1 else self.price
            self.prev_price = before_last or float(price[last])
            self.price, self.ts = float(price[last]), float(ts[last])
        self.count += len(ts)

    def snapshot(self, symbol: str) -> dict:
        change = self.price - self.day_open
        return {
            "symbol": symbol, "price": self.price, "prev_price": self.prev_price, "open": self.day_open,
            "high": self.high, "low": self.low, "volume": self.volume, "trade_count": self.count,
            "change": change, "change_pct": change / self.day_open * 100.0 if self.day_open else 0.0,
            "ts": self.ts,
        }

    def to_state(self) -> TickerSnapshot:
        return TickerSnapshot(price=self.price, prev_price=self.prev_price, day=self.day, day_open=self.day_open,
                              high=self.high, low=self.low, volume=self.volume, count=self.count, ts=self.ts)

    @classmethod
    def from_state(cls, s: TickerSnapshot) -> "Ticker":
        t = cls()
        t.price, t.prev_price, t.day, t.day_open, t.high, t.low = s.price, s.prev_price, s.day, s.day_open, s.high, s.low
        t.volume, t.count, t.ts = s.volume, s.count, s.ts
        return t


class SymbolState:
    """One symbol of one source: windows, rule set and its state, ticker; when it next has work."""

    __slots__ = ("windows", "ruleset", "rules", "ticker", "last_time", "next_close", "due")

    def __init__(self, windows: SymbolWindows, ruleset: RuleSet, rules: SymbolRules, ticker: Ticker,
                 last_time: float):
        self.windows = windows
        self.ruleset = ruleset
        self.rules = rules
        self.ticker = ticker
        self.last_time = last_time
        self.next_close = _next_close(windows)
        self.due = ruleset.due(rules) if ruleset.timed else _INF  # when a timed rule has an alert due


def _next_close(w: SymbolWindows) -> float:
    """The watermark at which this symbol next has a window to finalize."""
    return min(w.closed_through[s] + s for s in w.sizes) + w.grace if any(w.open.values()) else _INF


class SourceState:
    """One source's event-time clock within a partition, its symbols and its counters.

    ``dirty`` says that it changed since its last snapshot was taken (``PartitionState.checkpoint``)."""

    def __init__(self, name: str, partition: "PartitionState"):
        self.name = name
        self.partition = partition  # where finalized candles and alerts collect
        self.symbols: dict[str, SymbolState] = {}
        self.time = _NEG_INF       # newest event time of the source's trades
        self.idle_time = _NEG_INF  # event time pushed on by the wall clock in a lull
        self.counters: dict[str, Union[int, float]] = dict.fromkeys(SOURCE_COUNTERS, 0)
        self.dirty = True
        self._min_next_close = _INF
        self._min_due = _INF

    # --- the hot path ----------------------------------------------------------------------
    def apply(self, trade: Trade) -> bool:
        """Fold one trade in. Returns False when it is late (stored, counted, not folded in)."""
        self.dirty = True
        ts = trade.ts
        sym = self.symbols.get(trade.symbol)
        if sym is None:
            sym = self._new_symbol(trade.symbol, ts)
        if ts > sym.last_time:
            sym.last_time = ts
        if ts > self.time:
            self.time = ts
            quiet = ts - self.partition.grace
            if quiet >= self._min_next_close:
                self._finalize_quiet(quiet)
            if quiet >= self._min_due:
                self._advance_due(quiet)
        wm = sym.last_time
        if wm >= sym.next_close:
            self._finalize(sym, wm)
        windows = sym.windows
        c = self.counters
        if windows.is_late(ts):
            c["late"] += 1
            return False
        ruleset, rules = sym.ruleset, sym.rules
        alerts = ruleset.evaluate(trade, rules)
        if alerts:
            self.partition.alerts.extend(alerts)
            c["alerts"] += len(alerts)
        ruleset.update(trade, rules)
        if ruleset.timed:
            sym.due = due = ruleset.due(rules)
            if due < self._min_due:
                self._min_due = due
        is_new_window = sym.next_close == _INF
        windows.add(ts, trade.price, trade.quantity, trade.side == "BUY")
        if is_new_window:
            sym.next_close = _next_close(windows)
            if sym.next_close < self._min_next_close:
                self._min_next_close = sym.next_close
        sym.ticker.add(ts, trade.price, trade.quantity)
        c["trades"] += 1
        c["volume"] += trade.quantity
        c["notional"] += trade.price * trade.quantity
        return True

    def tick(self, idle_seconds: float) -> None:
        """A lull of this source: nothing of it for ``idle_seconds`` of wall time while the processor was
        caught up. Let time move on so its candles close and what its timed rules have due is raised."""
        if self.time == _NEG_INF or idle_seconds <= self.partition.grace:
            return
        t = self.time + idle_seconds
        if t <= self.idle_time:
            return
        self.idle_time = t  # not a change worth a checkpoint by itself: a restart only redoes what is done
        if t >= self._min_next_close:
            self._finalize_quiet(t)
            self.dirty = True
        if t >= self._min_due:
            self._advance_due(t)
            self.dirty = True

    # --- internals ---------------------------------------------------------------------------
    def _new_symbol(self, symbol: str, ts: float) -> SymbolState:
        p = self.partition
        windows = SymbolWindows(symbol, p.sizes, p.grace, self.name)
        if self.time != _NEG_INF:
            # A symbol first seen now still follows its source: windows the source has left behind are
            # final for it too, so a first trade that old is late like any other.
            windows.finalize(self.time - p.grace)
        ruleset = p.rules.for_symbol(symbol)
        sym = SymbolState(windows, ruleset, ruleset.new_state(), Ticker(), ts)
        self.symbols[symbol] = sym
        return sym

    def _finalize(self, sym: SymbolState, watermark: float) -> None:
        done = sym.windows.finalize(watermark)
        if done:
            self.partition.candles.extend(done)
            self.counters["candles"] += len(done)
        sym.next_close = _next_close(sym.windows)

    def _finalize_quiet(self, watermark: float) -> None:
        for sym in self.symbols.values():
            if watermark >= sym.next_close:
                self._finalize(sym, watermark)
        self._min_next_close = min((s.next_close for s in self.symbols.values()), default=_INF)

    def _advance_due(self, watermark: float) -> None:
        """Raise what timed rules have due by ``watermark`` for symbols that did not trade."""
        for name, sym in self.symbols.items():
            if watermark >= sym.due:
                alerts = sym.ruleset.advance(name, self.name, watermark, sym.rules)
                if alerts:
                    self.partition.alerts.extend(alerts)
                    self.counters["alerts"] += len(alerts)
                sym.due = sym.ruleset.due(sym.rules)
        self._min_due = min((s.due for s in self.symbols.values()), default=_INF)

    def _rescan(self) -> None:
        self._min_next_close = min((s.next_close for s in self.symbols.values()), default=_INF)
        self._min_due = min((s.due for s in self.symbols.values()), default=_INF)

    # --- checkpoint --------------------------------------------------------------------------
    def to_state(self) -> SourceSnapshot:
        return SourceSnapshot(
            version=CHECKPOINT_VERSION, source=self.name, time=self.time, idle_time=self.idle_time,
            counters=self.counters,
            symbols={name: SymbolSnapshot(windows=s.windows.to_state(), rules=s.rules,
                                          ticker=s.ticker.to_state(), last_time=s.last_time)
                     for name, s in self.symbols.items()})

    @classmethod
    def from_state(cls, snap: SourceSnapshot, partition: "PartitionState") -> "SourceState":
        src = cls(snap.source, partition)
        src.time, src.idle_time = snap.time, snap.idle_time
        src.counters.update(snap.counters)
        for name, sym in snap.symbols.items():
            ruleset = partition.rules.for_symbol(name)
            windows = SymbolWindows.from_state(name, partition.sizes, partition.grace, sym.windows, src.name)
            src.symbols[name] = SymbolState(windows, ruleset, ruleset.resume(sym.rules),
                                            Ticker.from_state(sym.ticker), sym.last_time)
        src._rescan()
        src.dirty = False
        return src


class BatchResult:
    """What ``apply_batch`` did: the late rows, and each (source, symbol)'s rows folded in (arrival order)."""

    __slots__ = ("late", "kept")

    def __init__(self):
        self.late: list[int] = []
        self.kept: dict[tuple[str, str], list[int]] = {}


def _first(item: tuple) -> tuple:
    return item[0]


class PartitionState:
    """The sources of one partition, and the partition's count of invalid records."""

    def __init__(self, sizes: Iterable[int], grace: float, rules: RuleBook):
        self.sizes = check_sizes(sizes)
        self.grace = grace
        self.rules = rules
        self.sources: dict[str, SourceState] = {}
        self.invalid = 0
        self.candles: list[Candle] = []
        self.alerts: list[Alert] = []

    def apply(self, trade: Trade) -> bool:
        """Fold one trade into its source. Returns False when it is late (stored, counted, not folded in)."""
        return self._source(trade.source).apply(trade)

    def _source(self, name: str) -> SourceState:
        src = self.sources.get(name)
        if src is None:
            src = self.sources[name] = SourceState(name, self)
        return src

    def apply_batch(self, cols: TradeColumns, rows: list[int]) -> BatchResult:
        """Fold the trades at ``rows`` of ``cols`` (arrival order), exactly as ``apply`` of each in turn:
        per source at once (``pipeline.fold``), or trade by trade when timed rules make order matter."""
        result = BatchResult()
        source_of, symbol_of = cols.source, cols.symbol
        if self.rules.timed:
            for r in rows:
                if self.apply(cols.trade(r)):
                    result.kept.setdefault((source_of[r], symbol_of[r]), []).append(r)
                else:
                    result.late.append(r)
            return result
        names = set(map(source_of.__getitem__, rows))
        by_source: dict[str, list[int]] = {}
        if len(names) == 1:
            by_source[names.pop()] = rows
        else:
            for r in rows:
                by_source.setdefault(source_of[r], []).append(r)
        candles, alerts = [], []
        for name, source_rows in by_source.items():
            done = fold_source(self._source(name), cols, source_rows)
            candles += done.candles
            alerts += done.alerts
            result.late += done.late
            for sym, run in done.runs.items():
                if run.rows:
                    result.kept[(name, sym)] = run.rows
        alerts.sort(key=_first)  # in the order trade-by-trade folding raises them
        if len(by_source) > 1:  # interleave the sources' candles and late rows the same way
            candles.sort(key=_first)
            result.late.sort()
        self.candles += [c for _, c in candles]
        self.alerts += [a for _, a in alerts]
        return result

    def count_invalid(self) -> None:
        """A record of this partition that is not a valid trade."""
        self.invalid += 1

    def tick(self, source: str, idle_seconds: float) -> None:
        """A lull of ``source`` (see ``SourceState.tick``); an unknown source has nothing to close."""
        src = self.sources.get(source)
        if src is not None:
            src.tick(idle_seconds)

    def source(self, name: str) -> Optional[SourceState]:
        return self.sources.get(name)

    @property
    def counters(self) -> dict[str, Union[int, float]]:
        """Running totals over every source, and the invalid records."""
        out: dict[str, Union[int, float]] = dict.fromkeys(SOURCE_COUNTERS, 0)
        for src in self.sources.values():
            for name, value in src.counters.items():
                out[name] += value
        out["invalid"] = self.invalid
        return out

    def drain(self) -> tuple[list[Candle], list[Alert]]:
        candles, alerts = self.candles, self.alerts
        self.candles, self.alerts = [], []
        return candles, alerts

    # --- checkpoint --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The partition's own snapshot (its sources are snapshotted apart: ``checkpoint``)."""
        return msgspec.msgpack.encode(PartitionSnapshot(version=CHECKPOINT_VERSION, sizes=list(self.sizes),
                                                        grace=self.grace, invalid=self.invalid,
                                                        sources=list(self.sources)))

    def checkpoint(self) -> tuple[bytes, dict[str, bytes]]:
        """The partition's snapshot and those of the sources changed since the last call (now clean)."""
        changed = {}
        for name, src in self.sources.items():
            if src.dirty:
                changed[name] = msgspec.msgpack.encode(src.to_state())
                src.dirty = False
        return self.to_bytes(), changed

    @classmethod
    def from_bytes(cls, data: bytes, sources: Mapping[str, bytes], sizes: Iterable[int], grace: float,
                   rules: RuleBook) -> "PartitionState":
        """The state of a partition snapshot and its sources' snapshots (source name -> bytes)."""
        version = msgspec.msgpack.decode(data, type=_Version).version
        if version == 2:
            from pipeline.checkpoint_v2 import upgrade

            data, sources = upgrade(data, rules)
        elif version != CHECKPOINT_VERSION:
            hint = (" (written before typed snapshots): finish its work with the Stock-IT version that wrote it, "
                    "or delete the group's rows from processor_checkpoints to reprocess the topic from its "
                    "committed offsets") if version < CHECKPOINT_VERSION else ": written by a newer Stock-IT"
            raise CheckpointVersionError(f"unknown checkpoint version {version} (this version reads "
                                         f"{CHECKPOINT_VERSION}, and 2 by upgrading it){hint}")
        d = msgspec.msgpack.decode(data, type=PartitionSnapshot)
        st = cls(sizes, grace, rules)
        if tuple(d.sizes) != st.sizes:
            raise ValueError(f"checkpoint has window sizes {d.sizes}, configuration has {list(st.sizes)}")
        st.invalid = d.invalid
        missing = [name for name in d.sources if name not in sources]
        if missing:
            raise ValueError(f"checkpoint names sources {missing} whose snapshots are missing")
        for name in d.sources:
            snap = msgspec.msgpack.decode(sources[name], type=SourceSnapshot)
            if snap.version != CHECKPOINT_VERSION or snap.source != name:
                raise CheckpointVersionError(f"the snapshot of source {name!r} is of version {snap.version} "
                                             f"and source {snap.source!r}")
            st.sources[name] = SourceState.from_state(snap, st)
        if version == 2:  # upgraded: the next checkpoint writes it in this version
            for src in st.sources.values():
                src.dirty = True
        return st
