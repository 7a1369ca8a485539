"""Reading a CSV for replay: every row becomes a trade or a BadRow with a reason; no row stops it."""
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.events import DEFAULT_SOURCE, iso
from pipeline.replay import UNREADABLE, BadRow, ReplayError, open_csv, read_trades, source_for

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc).timestamp()
HEADER = b"timestamp,symbol,price,quantity,side,exchange,trade_id\n"
GOOD = b"2025-05-31T12:00:00Z,AAPL,189.5,100,BUY,NASDAQ,r-1\n"


def read(tmp_path, body: bytes, header: bytes = HEADER) -> list:
    path = tmp_path / "trades.csv"
    path.write_bytes(header + body)
    with open_csv(path) as f:
        return list(read_trades(f, now=lambda: NOW))


# (case, row bytes, kind, words the reason must contain)
BAD_ROWS = [
    ("nul_in_symbol", b"2025-05-31T12:00:00Z,AA\x00PL,1,1,BUY,X,r-2\n", "invalid_field", "symbol"),
    ("nul_in_trade_id", b"2025-05-31T12:00:00Z,AAPL,1,1,BUY,X,r\x00-2\n", "invalid_field", "trade_id"),
    ("invalid_utf8_exchange", b"2025-05-31T12:00:00Z,AAPL,1,1,BUY,\xff\xfeX,r-2\n", "invalid_field",
     "exchange"),
    ("invalid_utf8_price", b"2025-05-31T12:00:00Z,AAPL,1\xff,1,BUY,X,r-2\n", "invalid_field", "price"),
    ("field_over_csv_limit", b"2025-05-31T12:00:00Z,AAPL,1,1,BUY,X," + b"9" * 200_000 + b"\n",
     UNREADABLE, "field larger"),
    ("trade_id_too_long", b"2025-05-31T12:00:00Z,AAPL,1,1,BUY,X," + b"t" * 500 + b"\n", "invalid_field",
     "trade_id"),
    ("quantity_1e308", b"2025-05-31T12:00:00Z,AAPL,1,1e308,BUY,X,r-2\n", "invalid_field", "quantity"),
    ("quantity_inf", b"2025-05-31T12:00:00Z,AAPL,1,inf,BUY,X,r-2\n", "invalid_field", "quantity"),
    ("price_nan", b"2025-05-31T12:00:00Z,AAPL,nan,1,BUY,X,r-2\n", "invalid_field", "price"),
    ("timestamp_nan", b"nan,AAPL,1,1,BUY,X,r-2\n", "bad_timestamp", "timestamp"),
    ("timestamp_1e400", b"1e400,AAPL,1,1,BUY,X,r-2\n", "bad_timestamp", "timestamp"),
    ("timestamp_year_3000000", b"1e17,AAPL,1,1,BUY,X,r-2\n", "bad_timestamp", "timestamp"),
    ("timestamp_an_hour_ahead", iso(NOW + 3600).encode() + b",AAPL,1,1,BUY,X,r-2\n", "bad_timestamp",
     "future"),
    ("timestamp_1969", b"1969-12-31T23:00:00Z,AAPL,1,1,BUY,X,r-2\n", "bad_timestamp", "1970"),
    ("tab_in_exchange", b"2025-05-31T12:00:00Z,AAPL,1,1,BUY,NAS\tDAQ,r-2\n", "invalid_field", "exchange"),
    ("missing_quantity", b"2025-05-31T12:00:00Z,AAPL,1\n", "invalid_field", "quantity"),
    ("bad_side", b"2025-05-31T12:00:00Z,AAPL,1,1,HOLD,X,r-2\n", "invalid_field", "side"),
]


@pytest.mark.parametrize("row, kind, words", [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_rpl001_a_bad_row_is_reported_and_the_next_one_still_read(tmp_path, row, kind, words):
    items = read(tmp_path, GOOD + row + GOOD.replace(b"r-1", b"r-3"))
    bad = [i for i in items if isinstance(i, BadRow)]
    assert [getattr(i, "trade_id", None) for i in items if not isinstance(i, BadRow)] == ["r-1", "r-3"]
    assert len(bad) == 1 and bad[0].kind == kind and words in bad[0].reason, bad[0]
    assert bad[0].line >= 3
    json.dumps({"reason": bad[0].reason, "value": bad[0].raw})  # a dead-letter record can be made of it
    assert len(json.dumps(bad[0].raw)) < 3000, "dead-letter values are cut"


def test_rpl002_a_byte_order_mark_and_old_history_are_fine(tmp_path):
    items = read(tmp_path, b"1987-10-19T14:30:00Z,IBM,110.5,100,SELL,NYSE,bm-1\n",
                 header=b"\xef\xbb\xbf" + HEADER)
    assert [(t.trade_id, t.ts) for t in items] == [("bm-1", 561652200.0)]


def test_rpl003_an_unterminated_quote_swallows_the_rest_as_one_bad_row(tmp_path):
    items = read(tmp_path, GOOD + b'2025-05-31T12:00:01Z,"AAPL,1,1,BUY,X,r-2\n' + GOOD)
    assert [type(i).__name__ for i in items] == ["Trade", "BadRow"]


def test_rpl004_missing_columns_still_refuse_the_whole_file(tmp_path):
    with pytest.raises(ReplayError, match="timestamp"):
        read(tmp_path, b"1,2\n", header=b"when,what\n")


# --- the replay's source ---------------------------------------------------------------------------
@pytest.mark.parametrize("file_name, given, source", [
    ("history.csv", None, "history"),
    ("SPX daily (2015-2020).csv", None, "spx-daily-2015-2020"),
    ("__weird__.name.CSV", None, "weird__.name"),
    ("x" * 60 + ".csv", None, "x" * 40),
    ("history.csv", "Index-Backfill", "index-backfill"),
    ("history.csv", "live", "live"),
])
def test_rep020_the_source_is_given_or_named_after_the_file(file_name, given, source):
    assert source_for(Path(file_name), given) == source


@pytest.mark.parametrize("file_name, given, message", [
    ("ü.csv", None, "give one with --source"),
    ("---.csv", None, "give one with --source"),
    ("history.csv", "spx daily", "--source: 'spx daily' is not a source name"),
    ("history.csv", "", "--source"),
])
def test_rep021_no_source_name_is_refused_with_a_way_out(file_name, given, message):
    with pytest.raises(ReplayError, match=message):
        source_for(Path(file_name), given)


def read_as(tmp_path, body: bytes, source: str) -> list:
    path = tmp_path / "trades.csv"
    path.write_bytes(b"timestamp,symbol,price,quantity\n" + body)
    with open_csv(path) as f:
        return list(read_trades(f, now=lambda: NOW, source=source))


def test_rep022_trades_carry_the_source_and_derived_ids_depend_on_it(tmp_path):
    body = b"2015-01-02T21:00:00Z,SPX,2058.2,1\n2015-01-05T21:00:00Z,SPX,2020.58,1\n"
    first, again = read_as(tmp_path, body, "spx-daily"), read_as(tmp_path, body, "spx-daily")
    other, default = read_as(tmp_path, body, "backfill"), read_as(tmp_path, body, DEFAULT_SOURCE)
    assert {t.source for t in first} == {"spx-daily"} and {t.source for t in other} == {"backfill"}
    assert [t.trade_id for t in first] == [t.trade_id for t in again]  # a replay twice adds nothing
    assert not {t.trade_id for t in first} & {t.trade_id for t in other}  # another source is other trades
    assert not {t.trade_id for t in first} & {t.trade_id for t in default}
    # the default source keeps the ids replays derived before sources existed
    digest = hashlib.sha1(repr((first[0].ts, "SPX", 2058.2, 1.0, "BUY", "", 0)).encode()).hexdigest()[:20]
    assert default[0].trade_id == f"csv-{digest}"
