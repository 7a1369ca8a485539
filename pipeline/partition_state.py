"""Everything the processor knows about one Kafka partition — pure logic, no I/O.

Per symbol: open candle windows, rolling statistics for the anomaly rules, and a ticker (last
price, day open/high/low/volume).  Per partition: the newest event time (the watermark source for
quiet symbols) and running counters.  ``apply`` takes one trade; finalized candles and alerts
collect in ``candles`` and ``alerts`` until the caller drains them.  ``to_bytes``/``from_bytes``
make the checkpoint that lets a restarted processor continue exactly where the last one stopped: a
typed :class:`PartitionSnapshot` (version ``CHECKPOINT_VERSION``) encoded as MessagePack.

Watermark of a symbol = max(its own newest event time, partition newest event time - grace): a
symbol closes its own windows, and a quiet one follows its partition one grace period behind.
In a lull with no trades, ``tick(idle_seconds)`` lets the wall clock move the partition on.
"""
from __future__ import annotations

from typing import Iterable, Union

import msgspec

from pipeline.events import Alert, Candle, Trade
from pipeline.rolling import RollingSnapshot, RollingStats
from pipeline.rules import RuleBook, evaluate
from pipeline.windows import SymbolWindows, WindowsSnapshot, check_sizes

_DAY = 86400.0
_NEG_INF = float("-inf")
CHECKPOINT_VERSION = 2  # 1: positional lists (before typed snapshots)


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
    """Checkpoint form of one symbol's windows, rolling statistics and ticker."""

    windows: WindowsSnapshot
    rolling: RollingSnapshot
    ticker: TickerSnapshot
    last_time: float


class PartitionSnapshot(msgspec.Struct, frozen=True):
    """Checkpoint form of :class:`PartitionState`; ``idle_time`` is the wall clock's push in a lull."""

    version: int = msgspec.field(name="v")
    sizes: list[int]
    grace: float
    partition_time: float
    idle_time: float
    counters: dict[str, Union[int, float]]
    symbols: dict[str, SymbolSnapshot]


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
    __slots__ = ("windows", "rolling", "ticker", "last_time", "next_close")

    def __init__(self, windows: SymbolWindows, rolling: RollingStats, ticker: Ticker, last_time: float):
        self.windows = windows
        self.rolling = rolling
        self.ticker = ticker
        self.last_time = last_time
        self.next_close = _next_close(windows)


def _next_close(w: SymbolWindows) -> float:
    """The watermark at which this symbol next has a window to finalize."""
    return min(w.closed_through[s] + s for s in w.sizes) + w.grace if any(w.open.values()) else float("inf")


class PartitionState:
    """Windows, rolling statistics, tickers and counters of one partition."""

    def __init__(self, sizes: Iterable[int], grace: float, rules: RuleBook):
        self.sizes = check_sizes(sizes)
        self.grace = grace
        self.rules = rules
        self.symbols: dict[str, SymbolState] = {}
        self.partition_time = _NEG_INF
        self.idle_time = _NEG_INF  # partition time pushed on by the wall clock in a lull
        self.counters = {"trades": 0, "volume": 0.0, "notional": 0.0, "alerts": 0, "late": 0, "invalid": 0,
                         "candles": 0}
        self.candles: list[Candle] = []
        self.alerts: list[Alert] = []
        self._min_next_close = float("inf")

    # --- the hot path ----------------------------------------------------------------------
    def apply(self, trade: Trade) -> bool:
        """Fold one trade in. Returns False when it is late (stored, counted, not folded in)."""
        ts = trade.ts
        sym = self.symbols.get(trade.symbol)
        if sym is None:
            sym = self._new_symbol(trade.symbol, ts)
        if ts > sym.last_time:
            sym.last_time = ts
        if ts > self.partition_time:
            self.partition_time = ts
            if ts - self.grace >= self._min_next_close:
                self._finalize_quiet(ts - self.grace)
        wm = sym.last_time
        if wm >= sym.next_close:
            self._finalize(sym, wm)
        windows = sym.windows
        if windows.is_late(ts):
            self.counters["late"] += 1
            return False
        cfg = self.rules.for_symbol(trade.symbol)
        alerts = evaluate(trade, sym.rolling, cfg)
        if alerts:
            self.alerts.extend(alerts)
            self.counters["alerts"] += len(alerts)
        sym.rolling.add(trade.price, trade.quantity)
        is_new_window = sym.next_close == float("inf")
        windows.add(ts, trade.price, trade.quantity, trade.side == "BUY")
        if is_new_window:
            sym.next_close = _next_close(windows)
            if sym.next_close < self._min_next_close:
                self._min_next_close = sym.next_close
        sym.ticker.add(ts, trade.price, trade.quantity)
        c = self.counters
        c["trades"] += 1
        c["volume"] += trade.quantity
        c["notional"] += trade.price * trade.quantity
        return True

    def tick(self, idle_seconds: float) -> None:
        """A lull: no trade for ``idle_seconds`` of wall time. Let time move on so candles close."""
        if self.partition_time == _NEG_INF or idle_seconds <= self.grace:
            return
        t = self.partition_time + idle_seconds
        if t > self.idle_time:
            self.idle_time = t
            for sym in self.symbols.values():
                if t >= sym.next_close:
                    self._finalize(sym, t)
            self._min_next_close = min((s.next_close for s in self.symbols.values()), default=float("inf"))

    def drain(self) -> tuple[list[Candle], list[Alert]]:
        candles, alerts = self.candles, self.alerts
        self.candles, self.alerts = [], []
        return candles, alerts

    # --- internals ---------------------------------------------------------------------------
    def _new_symbol(self, symbol: str, ts: float) -> SymbolState:
        cfg = self.rules.for_symbol(symbol)
        windows = SymbolWindows(symbol, self.sizes, self.grace)
        if self.partition_time != _NEG_INF:
            # A symbol first seen now still follows its partition: windows the partition has left
            # behind are final for it too, so a first trade that old is late like any other.
            windows.finalize(self.partition_time - self.grace)
        sym = SymbolState(windows, RollingStats(cfg.rolling_window), Ticker(), ts)
        self.symbols[symbol] = sym
        return sym

    def _finalize(self, sym: SymbolState, watermark: float) -> None:
        done = sym.windows.finalize(watermark)
        if done:
            self.candles.extend(done)
            self.counters["candles"] += len(done)
        sym.next_close = _next_close(sym.windows)

    def _finalize_quiet(self, watermark: float) -> None:
        for sym in self.symbols.values():
            if watermark >= sym.next_close:
                self._finalize(sym, watermark)
        self._min_next_close = min((s.next_close for s in self.symbols.values()), default=float("inf"))

    # --- checkpoint --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(PartitionSnapshot(
            version=CHECKPOINT_VERSION, sizes=list(self.sizes), grace=self.grace,
            partition_time=self.partition_time, idle_time=self.idle_time, counters=self.counters,
            symbols={name: SymbolSnapshot(windows=s.windows.to_state(), rolling=s.rolling.to_state(),
                                          ticker=s.ticker.to_state(), last_time=s.last_time)
                     for name, s in self.symbols.items()}))

    @classmethod
    def from_bytes(cls, data: bytes, sizes: Iterable[int], grace: float, rules: RuleBook) -> "PartitionState":
        version = msgspec.msgpack.decode(data, type=_Version).version
        if version != CHECKPOINT_VERSION:
            hint = (" (written before typed snapshots): finish its work with the Stock-IT version that wrote it, "
                    "or delete the group's rows from processor_checkpoints to reprocess the topic from its "
                    "committed offsets") if version < CHECKPOINT_VERSION else ": written by a newer Stock-IT"
            raise CheckpointVersionError(f"unknown checkpoint version {version} (this version reads "
                                         f"{CHECKPOINT_VERSION}){hint}")
        d = msgspec.msgpack.decode(data, type=PartitionSnapshot)
        st = cls(sizes, grace, rules)
        if tuple(d.sizes) != st.sizes:
            raise ValueError(f"checkpoint has window sizes {d.sizes}, configuration has {list(st.sizes)}")
        st.partition_time, st.idle_time = d.partition_time, d.idle_time
        st.counters.update(d.counters)
        for name, sym in d.symbols.items():
            cfg = rules.for_symbol(name)
            st.symbols[name] = SymbolState(SymbolWindows.from_state(name, st.sizes, grace, sym.windows),
                                           RollingStats.from_state(cfg.rolling_window, sym.rolling),
                                           Ticker.from_state(sym.ticker), sym.last_time)
        st._min_next_close = min((s.next_close for s in st.symbols.values()), default=float("inf"))
        return st
