"""Trade rows in PostgreSQL's binary COPY format, built column by column — pure, no I/O.

``COPY trades (COPY_COLUMNS) FROM STDIN WITH (FORMAT binary)`` reads what :func:`binary_copy` returns.
Numbers go as PostgreSQL's own binary forms (no text to parse on either side); the event time as a
``timestamptz`` (microseconds since 2000-01-01 UTC, rounded half to even — exactly what
``to_timestamp(ts)`` stores).  Each row's fixed-size fields are one NumPy record; the texts of
repeated values (symbol, side, exchange, trader, source) are encoded once per batch; the rows are
joined in one ``bytes.join``.
"""
from __future__ import annotations

import logging

import numpy as np

from pipeline.trade_batch import TradeColumns

logger = logging.getLogger(__name__)
COPY_COLUMNS = ("price", "quantity", "ts", "late", "sequence", "trade_id", "symbol", "side", "exchange",
                "trader_id", "source")
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
TRAILER = b"\xff\xff"
POSTGRES_EPOCH = 946684800.0  # 2000-01-01T00:00:00Z in Unix seconds
NULL = b"\xff\xff\xff\xff"
_LEADING = [("fields", ">i2"), ("price_len", ">i4"), ("price", ">f8"), ("quantity_len", ">i4"),
            ("quantity", ">f8"), ("ts_len", ">i4"), ("ts", ">i8"), ("late_len", ">i4"), ("late", "u1")]
_WITH_SEQUENCE = np.dtype(_LEADING + [("sequence_len", ">i4"), ("sequence", ">i8"), ("trade_id_len", ">i4")])
_NULL_SEQUENCE = np.dtype(_LEADING + [("sequence_len", ">i4"), ("trade_id_len", ">i4")])


def postgres_micros(ts: np.ndarray) -> np.ndarray:
    """Unix seconds -> timestamptz microseconds, as PostgreSQL's float8 -> timestamptz conversion."""
    return np.rint((ts - POSTGRES_EPOCH) * 1e6).astype(np.int64)


def _text_piece(value) -> bytes:
    """Length and UTF-8 bytes of a text field (NULL for None)."""
    if value is None:
        return NULL
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _pieces(values) -> list[bytes]:
    """The field of each row, for a column of few distinct values (encoded once each)."""
    encoded = {v: _text_piece(v) for v in set(values)}
    return list(map(encoded.__getitem__, values))


def _leading(cols: TradeColumns, late: np.ndarray, rows: np.ndarray, trade_ids: list[bytes],
             dtype: np.dtype) -> list[bytes]:
    """Each row's fixed-size fields, through the length of its trade id (one bytes object per row)."""
    rec = np.zeros(len(rows), dtype)
    rec["fields"] = len(COPY_COLUMNS)
    rec["price_len"] = rec["quantity_len"] = rec["ts_len"] = 8
    rec["price"], rec["quantity"] = cols.price[rows], cols.quantity[rows]
    rec["ts"] = postgres_micros(cols.ts[rows])
    rec["late_len"], rec["late"] = 1, late[rows]
    every = len(rows) == len(cols)
    if "sequence" in dtype.names:
        rec["sequence_len"] = 8
        rec["sequence"] = cols.sequence if every else [cols.sequence[i] for i in rows.tolist()]
    else:
        rec["sequence_len"] = -1
    ids = trade_ids if every else [trade_ids[i] for i in rows.tolist()]
    lengths = np.fromiter(map(len, ids), np.int64, len(rows))
    rec["trade_id_len"] = lengths
    raw = rec.tobytes()
    out = rec.view(f"S{dtype.itemsize}").tolist()  # bytes objects; NumPy drops trailing NULs ...
    width = dtype.itemsize
    for i in np.flatnonzero(lengths % 256 == 0).tolist():  # ... so rows whose last byte is 0 are cut again
        out[i] = raw[i * width:(i + 1) * width]
    return out


def binary_copy(cols: TradeColumns, late: np.ndarray) -> bytes:
    """The COPY data of every trade of ``cols`` (``late[i]``: whether trade i was late)."""
    n = len(cols)
    trade_ids = list(map(str.encode, cols.trade_id))
    has_sequence = np.fromiter((s is not None for s in cols.sequence), bool, n)
    leading: list = [None] * n
    for dtype, where in ((_WITH_SEQUENCE, has_sequence), (_NULL_SEQUENCE, ~has_sequence)):
        rows = np.flatnonzero(where)
        if rows.size == n:
            leading = _leading(cols, late, rows, trade_ids, dtype)
        elif rows.size:
            block = np.empty(n, object)
            block[:] = leading
            block[rows] = _leading(cols, late, rows, trade_ids, dtype)
            leading = block.tolist()
    parts: list = [b""] * (7 * n)
    parts[0::7] = leading
    parts[1::7] = trade_ids
    parts[2::7] = _pieces(cols.symbol)
    parts[3::7] = _pieces(cols.side)
    parts[4::7] = _pieces(cols.exchange)
    parts[5::7] = _pieces(cols.trader_id)
    parts[6::7] = _pieces(cols.source)
    return HEADER + b"".join(parts) + TRAILER
