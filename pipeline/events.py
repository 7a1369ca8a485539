"""The three records that flow through Stock-IT — trade, candle, alert — and their wire forms.

Records are small immutable ``msgspec`` structs.  Times are float seconds since the epoch (UTC)
inside the program and ISO-8601 strings on the wire.  ``Trade.decode`` is the validating entry
point for untrusted bytes: it returns a trade that PostgreSQL can store and whose sums stay finite,
or raises :class:`InvalidRecord` with a one-line reason and a ``kind`` label — nothing else.
"""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

import msgspec

# The alert vocabulary lives in pipeline.alert_types; re-exported here for existing importers.
from pipeline.alert_types import SEVERITY_BY_TYPE, SEVERITY_RANK  # noqa: F401

UTC = timezone.utc
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._/\-]{0,23}$"
# A source of trades (the live feed, each replay) keeps its own event-time clock (partition_state).
DEFAULT_SOURCE = "live"  # the source of a trade whose record names none (and of rows stored before 006)
SOURCE_MAX = 40  # characters
SOURCE_PATTERN = r"^[a-z0-9][a-z0-9._\-]{0,%d}$" % (SOURCE_MAX - 1)
MIN_TIMESTAMP = 0.0  # 1970-01-01: anything earlier is absurd
DEFAULT_MAX_FUTURE = 300.0  # seconds a trade may be stamped ahead of the wall clock (clock skew)
DEFAULT_MAX_RECORD_BYTES = 65536
MAX_NESTING = 32  # JSON nesting deeper than this is refused before parsing (a trade is 1 level deep)
# Prices and quantities lie in [MIN_VALUE, MAX_VALUE]: a notional (price x quantity) is at most 1e24
# and a window's sums stay far from float overflow (1.8e308) for any realistic trade count, while
# the smallest crypto lots (1e-8) and the largest nominal prices (BTC in VND, ~2.5e9) fit easily.
MIN_VALUE = 1e-12
MAX_VALUE = 1e12
MAX_SEQUENCE = 2**63 - 1  # PostgreSQL bigint
TRADE_ID_MAX, EXCHANGE_MAX, TRADER_ID_MAX, TIMESTAMP_MAX = 128, 32, 64, 64  # characters
_SOURCE = re.compile(SOURCE_PATTERN)
# C0/C1 control characters (NUL included) and lone surrogates: not storable text, or not safe to show.
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# InvalidRecord.kind: why a record was refused, as a machine-readable label (dead-letter metrics).
TOMBSTONE, TOO_LARGE, BAD_JSON, INVALID_FIELD, BAD_TIMESTAMP = (
    "tombstone", "too_large", "bad_json", "invalid_field", "bad_timestamp")
INVALID_KINDS = (TOMBSTONE, TOO_LARGE, BAD_JSON, INVALID_FIELD, BAD_TIMESTAMP)


class InvalidRecord(ValueError):
    """A record that cannot become a trade; ``reason`` says why in one line, ``kind`` is its label."""

    def __init__(self, reason: str, kind: str = INVALID_FIELD):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def check_source(name: str) -> str:
    """``name`` if it can name a source of trades; else ValueError saying what a source name is."""
    if not isinstance(name, str) or not _SOURCE.match(name) or name.endswith("\n"):
        raise ValueError(f"{str(name)[:60]!r} is not a source name: 1 to {SOURCE_MAX} lower-case letters, "
                         "digits and . _ -, starting with a letter or digit")
    return name


def iso(ts: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with microseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO-8601 -> epoch seconds; a naive time is taken as UTC. Raises ValueError."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_Value = Annotated[float, msgspec.Meta(ge=MIN_VALUE, le=MAX_VALUE)]


class _TradeWire(msgspec.Struct, forbid_unknown_fields=False):
    trade_id: Annotated[str, msgspec.Meta(min_length=1, max_length=TRADE_ID_MAX)]
    symbol: Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
    price: _Value
    quantity: _Value
    side: Literal["BUY", "SELL"]
    timestamp: Annotated[str, msgspec.Meta(max_length=TIMESTAMP_MAX)]
    exchange: Annotated[str, msgspec.Meta(max_length=EXCHANGE_MAX)] = ""
    trader_id: Optional[Annotated[str, msgspec.Meta(max_length=TRADER_ID_MAX)]] = None
    sequence: Optional[Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQUENCE)]] = None
    source: Annotated[str, msgspec.Meta(pattern=SOURCE_PATTERN)] = DEFAULT_SOURCE


_wire_decoder = msgspec.json.Decoder(_TradeWire)
_encoder = msgspec.json.Encoder()


def _too_deep(raw: bytes) -> bool:
    """True when JSON brackets (outside strings) nest deeper than MAX_NESTING; linear, exits early."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _check_bytes(raw, max_bytes: int) -> bytes:
    """The checks made before parsing: presence, size, UTF-8 and nesting depth."""
    if raw is None:
        raise InvalidRecord("tombstone: the record has no value", TOMBSTONE)
    if not isinstance(raw, bytes):
        if not isinstance(raw, (bytearray, memoryview)):
            raise InvalidRecord(f"bad JSON: expected bytes, got {type(raw).__name__}", BAD_JSON)
        raw = bytes(raw)
    if len(raw) > max_bytes:
        raise InvalidRecord(f"too large: {len(raw)} bytes, the limit is {max_bytes}", TOO_LARGE)
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(f"bad JSON: invalid UTF-8 at byte {exc.start}", BAD_JSON) from None
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING and _too_deep(raw):
        raise InvalidRecord(f"bad JSON: nested deeper than {MAX_NESTING} levels", BAD_JSON)
    return raw


def check_text(name: str, value: Optional[str]) -> None:
    """Refuse text that PostgreSQL cannot store or a screen would misshow (InvalidRecord)."""
    if value is not None:
        found = _UNSAFE_TEXT.search(value)
        if found:
            raise InvalidRecord(f"invalid field: {name} contains the control character or lone surrogate "
                                f"U+{ord(found.group()):04X} at index {found.start()}", INVALID_FIELD)


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One executed trade. ``ts`` is event time in epoch seconds; ``source`` names the feed it came from
    (``DEFAULT_SOURCE`` when its record names none)."""

    trade_id: str
    symbol: str
    price: float
    quantity: float
    side: str
    exchange: str
    ts: float
    trader_id: Optional[str] = None
    sequence: Optional[int] = None
    source: str = DEFAULT_SOURCE

    @classmethod
    def decode(cls, raw: Optional[bytes], now: float, max_future: float = DEFAULT_MAX_FUTURE, *,
               max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> "Trade":
        """Validate and decode a ``raw-trades`` message value (None for a tombstone).

        Returns a trade that PostgreSQL can store and whose arithmetic stays finite, or raises
        :class:`InvalidRecord` — and nothing else, whatever the input.
        """
        raw = _check_bytes(raw, max_bytes)
        try:
            w = _wire_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidRecord(f"invalid field: {exc}", INVALID_FIELD) from None
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError) as exc:
            raise InvalidRecord(f"bad JSON: {exc}", BAD_JSON) from None
        if b"\\" in raw or not raw.isascii():  # only escapes and non-ASCII can carry control characters
            for name in ("trade_id", "symbol", "exchange", "trader_id", "source"):
                check_text(name, getattr(w, name))
        try:
            ts = parse_iso(w.timestamp)
        except (ValueError, OverflowError):
            raise InvalidRecord(f"unparseable timestamp: {w.timestamp!r}", BAD_TIMESTAMP) from None
        if ts < MIN_TIMESTAMP:
            raise InvalidRecord(f"absurd timestamp before 1970: {w.timestamp}", BAD_TIMESTAMP)
        if ts > now + max_future:
            raise InvalidRecord(f"absurd timestamp in the future: {w.timestamp} is more than {max_future:g} "
                                "s ahead of the clock", BAD_TIMESTAMP)
        return cls(w.trade_id, w.symbol, w.price, w.quantity, w.side, w.exchange, ts, w.trader_id, w.sequence,
                   w.source)

    def to_wire(self) -> dict:
        d = {
            "trade_id": self.trade_id, "symbol": self.symbol, "price": self.price,
            "quantity": self.quantity, "side": self.side, "exchange": self.exchange,
            "timestamp": iso(self.ts),
        }
        if self.trader_id is not None:
            d["trader_id"] = self.trader_id
        if self.sequence is not None:
            d["sequence"] = self.sequence
        if self.source != DEFAULT_SOURCE:  # absent on the wire means the default source
            d["source"] = self.source
        return d

    def encode(self) -> bytes:
        return _encoder.encode(self.to_wire())


class Candle(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV window of one symbol from one source. ``window_start`` is aligned to the epoch."""

    symbol: str
    window_seconds: int
    window_start: float
    window_end: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float
    trade_count: int
    buy_volume: float
    sell_volume: float
    source: str = DEFAULT_SOURCE

    def key(self) -> tuple[str, int, float]:
        """The candle's identity within its source."""
        return (self.symbol, self.window_seconds, self.window_start)

    def to_wire(self) -> dict:
        d = msgspec.structs.asdict(self)
        d["window_start"] = iso(self.window_start)
        d["window_end"] = iso(self.window_end)
        return d

    def encode(self) -> bytes:
        return _encoder.encode(self.to_wire())

    @classmethod
    def from_wire(cls, d: dict) -> "Candle":
        d = dict(d)
        d["window_start"] = parse_iso(d["window_start"])
        d["window_end"] = parse_iso(d["window_end"])
        return cls(**d)


def alert_id_for(trade_id: str, alert_type: str) -> str:
    """Deterministic alert id: the same trade and type always give the same id."""
    return hashlib.sha1(f"{alert_type}|{trade_id}".encode()).hexdigest()[:24]


class Alert(msgspec.Struct, frozen=True, gc=False):
    """An anomaly found on one trade.

    ``deviation`` is measured in the unit its type declares (``alert_types.AlertKind.deviation_unit``):
    percent from ``reference`` for price alerts, a multiple of a typical size for VOLUME_SPIKE, a
    z-score for RETURN_OUTLIER; ``reference`` is the value it is measured against.
    """

    alert_id: str
    alert_type: str
    severity: str
    symbol: str
    price: float
    reference: float
    deviation: float
    trade_id: str
    ts: float
    message: str
    side: str = ""        # side of the trade that raised it (whale cards show it)
    quantity: float = 0.0  # its size
    source: str = DEFAULT_SOURCE  # the source of that trade

    def to_wire(self) -> dict:
        d = msgspec.structs.asdict(self)
        d["timestamp"] = iso(d.pop("ts"))
        return d

    def encode(self) -> bytes:
        return _encoder.encode(self.to_wire())

    @classmethod
    def from_wire(cls, d: dict) -> "Alert":
        d = dict(d)
        d["ts"] = parse_iso(d.pop("timestamp"))
        return cls(**d)

    @classmethod
    def decode(cls, raw: Optional[bytes]) -> "Alert":
        """A ``trade-alerts`` message value -> Alert, or InvalidRecord (never another exception)."""
        if raw is None:
            raise InvalidRecord("tombstone: the record has no value", TOMBSTONE)
        try:
            w = _alert_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidRecord(f"invalid field: {exc}", INVALID_FIELD) from None
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, TypeError) as exc:
            raise InvalidRecord(f"bad JSON: {exc}", BAD_JSON) from None
        try:
            ts = parse_iso(w.timestamp)
        except (ValueError, OverflowError):
            raise InvalidRecord(f"unparseable timestamp: {w.timestamp!r}", BAD_TIMESTAMP) from None
        fields = msgspec.structs.asdict(w)
        del fields["timestamp"]
        return cls(**fields, ts=ts)


_Finite = Annotated[float, msgspec.Meta(ge=-1.7e308, le=1.7e308)]


class _AlertWire(msgspec.Struct, forbid_unknown_fields=False):
    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=TRADE_ID_MAX)]
    alert_type: Annotated[str, msgspec.Meta(pattern=r"^[A-Z][A-Z0-9_]{0,39}$")]
    severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    symbol: Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
    price: _Finite
    reference: _Finite
    deviation: _Finite
    trade_id: Annotated[str, msgspec.Meta(min_length=1, max_length=TRADE_ID_MAX)]
    timestamp: Annotated[str, msgspec.Meta(max_length=TIMESTAMP_MAX)]
    message: str = ""
    side: str = ""
    quantity: _Finite = 0.0
    source: Annotated[str, msgspec.Meta(pattern=SOURCE_PATTERN)] = DEFAULT_SOURCE


_alert_decoder = msgspec.json.Decoder(_AlertWire)
