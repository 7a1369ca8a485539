"""The three records that flow through Stock-IT — trade, candle, alert — and their wire forms.

Records are small immutable ``msgspec`` structs.  Times are float seconds since the epoch (UTC)
inside the program and ISO-8601 strings on the wire.  ``Trade.decode`` is the validating entry
point for untrusted bytes: it returns a trade or raises :class:`InvalidRecord` with a reason.
"""
from __future__ import annotations

import hashlib
import math
from datetime import datetime, timezone
from typing import Annotated, Literal, Optional

import msgspec

# The alert vocabulary lives in pipeline.alert_types; re-exported here for existing importers.
from pipeline.alert_types import SEVERITY_BY_TYPE, SEVERITY_RANK  # noqa: F401

UTC = timezone.utc
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._/\-]{0,23}$"
MIN_TIMESTAMP = 0.0  # 1970-01-01: anything earlier is absurd


class InvalidRecord(ValueError):
    """A record that cannot become a trade; ``reason`` says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def iso(ts: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with microseconds and a Z."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO-8601 -> epoch seconds; a naive time is taken as UTC. Raises ValueError."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class _TradeWire(msgspec.Struct, forbid_unknown_fields=False):
    trade_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    symbol: Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN)]
    price: Annotated[float, msgspec.Meta(gt=0)]
    quantity: Annotated[float, msgspec.Meta(gt=0)]
    side: Literal["BUY", "SELL"]
    timestamp: str
    exchange: Annotated[str, msgspec.Meta(max_length=32)] = ""
    trader_id: Optional[str] = None
    sequence: Optional[int] = None


_wire_decoder = msgspec.json.Decoder(_TradeWire)
_encoder = msgspec.json.Encoder()


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One executed trade. ``ts`` is event time in epoch seconds."""

    trade_id: str
    symbol: str
    price: float
    quantity: float
    side: str
    exchange: str
    ts: float
    trader_id: Optional[str] = None
    sequence: Optional[int] = None

    @classmethod
    def decode(cls, raw: bytes, now: float, max_future: float = 86400.0) -> "Trade":
        """Validate and decode a ``raw-trades`` message value. Raises InvalidRecord."""
        try:
            w = _wire_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise InvalidRecord(f"invalid field: {exc}") from None
        except msgspec.DecodeError as exc:
            raise InvalidRecord(f"bad JSON: {exc}") from None
        if not (math.isfinite(w.price) and math.isfinite(w.quantity)):
            raise InvalidRecord("invalid field: price and quantity must be finite")
        try:
            ts = parse_iso(w.timestamp)
        except (ValueError, OverflowError):
            raise InvalidRecord(f"unparseable timestamp: {w.timestamp[:64]!r}") from None
        if ts < MIN_TIMESTAMP:
            raise InvalidRecord(f"absurd timestamp before 1970: {w.timestamp[:64]}")
        if ts > now + max_future:
            raise InvalidRecord(f"absurd timestamp in the future: {w.timestamp[:64]}")
        return cls(w.trade_id, w.symbol, w.price, w.quantity, w.side, w.exchange, ts, w.trader_id, w.sequence)

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
        return d

    def encode(self) -> bytes:
        return _encoder.encode(self.to_wire())


class Candle(msgspec.Struct, frozen=True, gc=False):
    """An OHLCV window of one symbol. ``window_start`` is aligned to the epoch."""

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

    def key(self) -> tuple[str, int, float]:
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
    def decode(cls, raw: bytes) -> "Alert":
        return cls.from_wire(msgspec.json.decode(raw))
