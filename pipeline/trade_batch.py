"""A batch of raw-trades records decoded at once into columns — exactly ``Trade.decode`` per record.

``decode_batch(values, now, ...)`` returns the valid trades as :class:`TradeColumns` (lists of text,
NumPy arrays of numbers), the position of each in ``values``, and ``(position, InvalidRecord)`` for
every record refused — the same trades and the same reasons as ``Trade.decode`` record by record.

The fast path decodes the whole batch in one msgspec call: the records are joined into one JSON
array of ``[tag, record]`` pairs, where ``tag`` is a per-process secret number plus the record's
position, and the typed decode applies every field rule of ``Trade.decode``.  Whether each decoded
pair came from exactly its own record is proven by the tags (a record cannot know the secret, so it
cannot make its neighbours shift); the pre-checks (size, UTF-8, nesting, control characters) hold
for the whole batch when it is ASCII, has no escapes and no bracket beyond each record's own ``{``.
Timestamps in the canonical form ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` are converted with NumPy to the
same float ``datetime.timestamp()`` gives (whole microseconds / 1e6, one rounding).  Anything else —
a batch that does not pass, a timestamp in another form or out of bounds — is decided by
``Trade.decode`` itself, for the batch or for that record.
"""
from __future__ import annotations

import logging
import re
import secrets
import typing
from operator import attrgetter
from typing import Iterable, Optional, Sequence

import msgspec
import numpy as np

from pipeline.events import (DEFAULT_MAX_FUTURE, DEFAULT_MAX_RECORD_BYTES, MIN_TIMESTAMP, InvalidRecord,
                             Trade, _TradeWire)

logger = logging.getLogger(__name__)

_TAG_BASE = secrets.randbits(48)  # secret: a record cannot forge its neighbours' tags


def _unconstrained(wire: type) -> type:
    """The wire struct with the same fields and types, without the value constraints (checked per column)."""
    types = typing.get_type_hints(wire)
    return msgspec.defstruct(f"{wire.__name__}Types", [
        (f.name, types[f.name]) if f.required else (f.name, types[f.name], f.default)
        for f in msgspec.structs.fields(wire)], gc=False)


class _Tagged(msgspec.Struct, array_like=True, gc=False):
    """``[tag, record]`` as joined by the fast path."""

    tag: int
    record: _unconstrained(_TradeWire)


def _constraints(wire: type) -> list[tuple[str, msgspec.Meta]]:
    """(field, Meta) of every constrained field of ``wire`` (also inside Optional)."""
    out = []
    for f in msgspec.structs.fields(wire):
        for t in (f.type, *typing.get_args(f.type)):
            if typing.get_origin(t) is typing.Annotated:
                out += [(f.name, m) for m in t.__metadata__ if isinstance(m, msgspec.Meta)]
    return out


_pair_decoder = msgspec.json.Decoder(list[_Tagged])
_tags_of = attrgetter("tag")
_records_of = attrgetter("record")
_CONSTRAINTS = _constraints(_TradeWire)
_WIRE_FIELDS = ("trade_id", "symbol", "price", "quantity", "side", "exchange", "timestamp", "trader_id",
                "sequence", "source")
_wire_fields = attrgetter(*_WIRE_FIELDS)
_prefixes: list[bytes] = []
_CANONICAL_LEN = 27  # 2025-05-31T12:00:00.250000Z
_DIGIT_COLUMNS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25]
_SEPARATORS = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 26: "Z"}
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


class TradeColumns:
    """Trades as columns: text (and optional) fields as sequences, numbers as float64 arrays."""

    __slots__ = ("trade_id", "symbol", "price", "quantity", "side", "exchange", "ts", "trader_id", "sequence",
                 "source", "_buy", "_ts_list")

    def __init__(self, trade_id: Sequence[str], symbol: Sequence[str], price: np.ndarray,
                 quantity: np.ndarray, side: Sequence[str], exchange: Sequence[str], ts: np.ndarray,
                 trader_id: Sequence[Optional[str]], sequence: Sequence[Optional[int]],
                 source: Sequence[str]):
        self.trade_id, self.symbol, self.price, self.quantity = trade_id, symbol, price, quantity
        self.side, self.exchange, self.ts, self.trader_id = side, exchange, ts, trader_id
        self.sequence, self.source = sequence, source
        self._buy: Optional[np.ndarray] = None
        self._ts_list: Optional[list] = None

    def __len__(self) -> int:
        return len(self.trade_id)

    @property
    def buy(self) -> np.ndarray:
        """True where the side is BUY."""
        if self._buy is None:
            self._buy = np.fromiter(map("BUY".__eq__, self.side), bool, len(self.side))
        return self._buy

    @property
    def ts_list(self) -> list:
        """Event times as Python floats (fast to index one by one)."""
        if self._ts_list is None:
            self._ts_list = self.ts.tolist()
        return self._ts_list

    def trade(self, i: int) -> Trade:
        return Trade(self.trade_id[i], self.symbol[i], float(self.price[i]), float(self.quantity[i]),
                     self.side[i], self.exchange[i], float(self.ts[i]), self.trader_id[i], self.sequence[i],
                     self.source[i])

    def take(self, rows: Sequence[int]) -> "TradeColumns":
        """The trades at ``rows``, in that order."""
        idx = np.asarray(rows, dtype=np.intp)
        pick = list(idx.tolist())

        def texts(column):
            return [column[i] for i in pick]

        return TradeColumns(texts(self.trade_id), texts(self.symbol), self.price[idx], self.quantity[idx],
                            texts(self.side), texts(self.exchange), self.ts[idx], texts(self.trader_id),
                            texts(self.sequence), texts(self.source))

    @classmethod
    def from_trades(cls, trades: Iterable[Trade]) -> "TradeColumns":
        trades = list(trades)
        if not trades:
            return cls.empty()
        tid, sym, price, qty, side, exch, ts, trader, seq, src = zip(*(
            (t.trade_id, t.symbol, t.price, t.quantity, t.side, t.exchange, t.ts, t.trader_id, t.sequence,
             t.source) for t in trades))
        return cls(tid, sym, np.array(price, float), np.array(qty, float), side, exch, np.array(ts, float),
                   trader, seq, src)

    @classmethod
    def concat(cls, parts: Sequence["TradeColumns"]) -> "TradeColumns":
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()

        def texts(name):
            out: list = []
            for p in parts:
                out.extend(getattr(p, name))
            return out

        return cls(texts("trade_id"), texts("symbol"), np.concatenate([p.price for p in parts]),
                   np.concatenate([p.quantity for p in parts]), texts("side"), texts("exchange"),
                   np.concatenate([p.ts for p in parts]), texts("trader_id"), texts("sequence"),
                   texts("source"))

    @classmethod
    def empty(cls) -> "TradeColumns":
        none = np.empty(0)
        return cls((), (), none, none, (), (), none, (), (), ())


def decode_batch(values: Sequence, now: float, max_future: float = DEFAULT_MAX_FUTURE, *,
                 max_bytes: int = DEFAULT_MAX_RECORD_BYTES
                 ) -> tuple[TradeColumns, list[int], list[tuple[int, InvalidRecord]]]:
    """(valid trades as columns, their positions in ``values``, (position, reason) of each refused record)."""
    fast = _decode_joined(values, now, max_future, max_bytes)
    return fast if fast is not None else _decode_each(values, now, max_future, max_bytes)


def _decode_each(values: Sequence, now: float, max_future: float, max_bytes: int):
    trades, positions, invalid = [], [], []
    for i, raw in enumerate(values):
        try:
            trades.append(Trade.decode(raw, now, max_future, max_bytes=max_bytes))
            positions.append(i)
        except InvalidRecord as exc:
            invalid.append((i, exc))
    return TradeColumns.from_trades(trades), positions, invalid


def _tag_prefixes(n: int) -> list[bytes]:
    while len(_prefixes) < n:
        _prefixes.append(b"[%d," % (_TAG_BASE + len(_prefixes)))
    return _prefixes[:n]


def _decode_joined(values: Sequence, now: float, max_future: float, max_bytes: int):
    """The whole batch in one decode, or None when a record needs ``Trade.decode`` to judge the batch."""
    n = len(values)
    if n == 0:
        return TradeColumns.empty(), [], []
    if set(map(type, values)) != {bytes} or max(map(len, values)) > max_bytes:
        return None  # tombstones, other types, records over the size limit
    parts: list = [b"],"] * (3 * n)
    parts[0::3] = _tag_prefixes(n)
    parts[1::3] = values
    parts[-1] = b"]]"
    blob = b"[" + b"".join(parts)
    # ASCII: valid UTF-8, no C1 controls; no backslash: no escaped control character; one "{" and no "["
    # per record (proven per record by the tags below): nothing nested.
    if not blob.isascii() or b"\\" in blob or blob.count(b"{") != n or blob.count(b"[") != n + 1:
        return None
    try:
        pairs = _pair_decoder.decode(blob)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    if len(pairs) != n:
        return None
    if list(map(_tags_of, pairs)) != list(range(_TAG_BASE, _TAG_BASE + n)):
        return None
    columns = dict(zip(_WIRE_FIELDS, zip(*map(_wire_fields, map(_records_of, pairs)))))
    if not all(_holds(meta, columns[name]) for name, meta in _CONSTRAINTS):
        return None
    tid, sym, price, qty, side, exch, stamps, trader, seq, src = columns.values()
    ts, canonical = canonical_timestamps(stamps)
    limit = now + max_future
    doubtful = np.flatnonzero(~canonical | (ts < MIN_TIMESTAMP) | (ts > limit))
    refused: list[tuple[int, InvalidRecord]] = []
    for i in doubtful.tolist():  # another timestamp form or out of bounds: the record's own decode decides
        try:
            ts[i] = Trade.decode(values[i], now, max_future, max_bytes=max_bytes).ts
        except InvalidRecord as exc:
            refused.append((i, exc))
    cols = TradeColumns(tid, sym, np.array(price, float), np.array(qty, float), side, exch, ts, trader, seq,
                        src)
    if not refused:
        return cols, list(range(n)), []
    bad = {i for i, _ in refused}
    keep = [i for i in range(n) if i not in bad]
    return cols.take(keep), keep, refused


def _holds(meta: msgspec.Meta, values: tuple) -> bool:
    """True when every value (None: absent, not checked) meets ``meta`` as the typed decode checks it."""
    present = [v for v in values if v is not None] if None in values else values
    if not present:
        return True
    if meta.ge is not None or meta.le is not None:
        try:
            numbers = np.array(present, dtype=np.int64 if isinstance(present[0], int) else float)
        except OverflowError:  # an integer beyond 64 bits: beyond every bound we have
            return False
        if (meta.ge is not None and not (numbers >= meta.ge).all()) or \
                (meta.le is not None and not (numbers <= meta.le).all()):
            return False
    if meta.min_length is not None or meta.max_length is not None:
        lengths = set(map(len, present))
        if (meta.min_length is not None and min(lengths) < meta.min_length) or \
                (meta.max_length is not None and max(lengths) > meta.max_length):
            return False
    if meta.pattern is not None:
        search = re.compile(meta.pattern).search
        if not all(search(v) for v in set(present)):
            return False
    return True


def canonical_timestamps(stamps: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, True where the text is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of a real time from 1970 on).

    Seconds are whole microseconds divided by 1e6 in one rounding, as ``datetime.timestamp()`` computes
    them (times after 2255 are not taken: their microseconds do not fit a float exactly); where the mask
    is False the seconds are meaningless."""
    n = len(stamps)
    ts = np.zeros(n)
    if n == 0:
        return ts, np.zeros(0, bool)
    if set(map(len, stamps)) == {_CANONICAL_LEN}:
        text = "".join(stamps)
        if text.isascii():
            chars = np.frombuffer(text.encode("ascii"), np.uint8).reshape(n, _CANONICAL_LEN)
            return ts, _parse_canonical(chars, ts)
    return ts, _canonical_where_sized(stamps, ts)


def _canonical_where_sized(stamps: Sequence[str], ts: np.ndarray) -> np.ndarray:
    """Mixed lengths: parse the rows of canonical length, the others stay False."""
    rows = [i for i, s in enumerate(stamps) if len(s) == _CANONICAL_LEN and s.isascii()]
    ok = np.zeros(len(stamps), bool)
    if rows:
        sub = np.zeros(len(rows))
        text = "".join(stamps[i] for i in rows).encode("ascii")
        sub_ok = _parse_canonical(np.frombuffer(text, np.uint8).reshape(len(rows), _CANONICAL_LEN), sub)
        ts[rows] = sub
        ok[rows] = sub_ok
    return ok


def _parse_canonical(chars: np.ndarray, ts: np.ndarray) -> np.ndarray:
    separators = np.frombuffer("".join(_SEPARATORS.values()).encode(), np.uint8)
    ok = (chars[:, list(_SEPARATORS)] == separators).all(axis=1)
    d = chars[:, _DIGIT_COLUMNS].astype(np.int64) - 48
    ok &= ((d >= 0) & (d <= 9)).all(axis=1)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month, day = d[:, 4] * 10 + d[:, 5], d[:, 6] * 10 + d[:, 7]
    hour, minute, second = d[:, 8] * 10 + d[:, 9], d[:, 10] * 10 + d[:, 11], d[:, 12] * 10 + d[:, 13]
    micros = d[:, 14:20] @ np.array([100000, 10000, 1000, 100, 10, 1])
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    days_in_month = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + ((month == 2) & leap)
    ok &= (year >= 1970) & month_ok & (day >= 1) & (day <= days_in_month) & (hour <= 23) & (minute <= 59) \
        & (second <= 59)
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    whole_micros = ((days * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000 + micros)
    ok &= whole_micros < 2 ** 53  # exact as a float (to 2255): one rounding, in the division
    ts[ok] = whole_micros[ok] / 1e6
    return ok


class TradeRows:
    """Trades buffered for the next checkpoint, each with whether it was late: batches of columns and the
    rows of each taken (arrival order), so that no trade object is built to store them."""

    __slots__ = ("chunks", "count")

    def __init__(self):
        self.chunks: list[tuple[TradeColumns, list[int], list[int]]] = []
        self.count = 0

    def add(self, cols: TradeColumns, rows: list[int], late: Sequence[int] = ()) -> None:
        """The trades at ``rows`` of ``cols``; ``late``: those of them that were late."""
        if rows:
            self.chunks.append((cols, rows, list(late)))
            self.count += len(rows)

    def append(self, row: tuple[Trade, bool]) -> None:
        """One (trade, late) row."""
        trade, late = row
        self.add(TradeColumns.from_trades([trade]), [0], [0] if late else [])

    def __len__(self) -> int:
        return self.count

    def columns(self) -> tuple[TradeColumns, np.ndarray]:
        """Every trade as one set of columns, and True where it was late."""
        parts, lates = [], []
        for cols, rows, late in self.chunks:
            parts.append(cols if len(rows) == len(cols) and rows[-1] == len(cols) - 1 else cols.take(rows))
            mask = np.zeros(len(rows), bool)
            if late:
                mask[np.searchsorted(rows, late)] = True
            lates.append(mask)
        return TradeColumns.concat(parts), np.concatenate(lates) if lates else np.zeros(0, bool)

    def pairs(self) -> list[tuple[Trade, bool]]:
        """(trade, late) of every row (to isolate rows one by one)."""
        cols, late = self.columns()
        return [(cols.trade(i), bool(late[i])) for i in range(len(cols))]

    @classmethod
    def of(cls, rows: "Sequence[tuple[Trade, bool]] | TradeRows") -> "TradeRows":
        if isinstance(rows, TradeRows):
            return rows
        out = cls()
        if rows:
            out.add(TradeColumns.from_trades(t for t, _ in rows), list(range(len(rows))),
                    [i for i, (_, late) in enumerate(rows) if late])
        return out

    @classmethod
    def concat(cls, many: Iterable["TradeRows"]) -> "TradeRows":
        out = cls()
        for rows in many:
            out.chunks += rows.chunks
            out.count += rows.count
        return out
