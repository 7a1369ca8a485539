"""Pure parts of the checkpoint protocol: error classes, checkpoint versions, slots."""
import msgspec
import psycopg2
import psycopg2.errors
import pytest

from pipeline.checkpoint import PartitionSlot
from pipeline.events import DEFAULT_SOURCE, Trade
from pipeline.history.errors import DATA, FATAL, TRANSIENT, classify
from pipeline.idleness import CatchUp
from pipeline.partition_state import CheckpointVersionError, PartitionState
from pipeline.rules import RuleConfig
from pipeline.rulesets.config import rulebook_from


@pytest.mark.parametrize("exc, kind", [
    (psycopg2.errors.NumericValueOutOfRange("bigint out of range"), DATA),
    (psycopg2.errors.CheckViolation("check"), DATA),
    (psycopg2.errors.CharacterNotInRepertoire("0x00"), DATA),
    (psycopg2.errors.UniqueViolation("dup"), DATA),
    (psycopg2.OperationalError("server closed the connection unexpectedly"), TRANSIENT),
    (psycopg2.InterfaceError("connection already closed"), TRANSIENT),
    (psycopg2.errors.QueryCanceled("statement timeout"), TRANSIENT),
    (psycopg2.errors.AdminShutdown("terminating connection"), TRANSIENT),
    (psycopg2.errors.SerializationFailure("retry"), TRANSIENT),
    (psycopg2.errors.UndefinedTable("no such table"), FATAL),
    (psycopg2.errors.SyntaxError("bad SQL"), FATAL),
    (KeyError("bug"), FATAL),
])
def test_cklg001_errors_are_classified(exc, kind):
    assert classify(exc) == kind


def rules():
    return rulebook_from(RuleConfig(min_history=3, rolling_window=10))


def test_cklg003_a_version_1_checkpoint_is_refused_with_a_clear_message():
    positional = {"AAPL": [{"closed": [0.0], "open": [[]]}, [[], [], 0, 0, 0], [0.0] * 9, 0.0]}
    old = msgspec.msgpack.encode({"v": 1, "sizes": [60], "grace": 2.0, "partition_time": 0.0,
                                  "idle_time": 0.0, "counters": {}, "symbols": positional})
    with pytest.raises(CheckpointVersionError, match="version 1.*typed snapshots.*processor_checkpoints"):
        PartitionState.from_bytes(old, {}, (60,), 2.0, rules())


def test_cklg004_a_slot_hands_over_its_buffers_once():
    st = PartitionState((60,), 2.0, rules())
    slot = PartitionSlot(3, 7, st, None, CatchUp(3.0))
    t = Trade("t1", "AAPL", 10.0, 1.0, "BUY", "X", 1_700_000_000.0)
    st.apply(t)
    slot.rows.append((t, False))
    slot.next_offset, slot.dirty = 42, True
    work = slot.take()
    assert (work.partition, work.epoch, work.next_offset, work.rows.pairs()) == (3, 7, 42, [(t, False)])
    assert set(work.sources) == {DEFAULT_SOURCE}
    assert PartitionState.from_bytes(work.state, work.sources, (60,), 2.0, rules()).counters["trades"] == 1
    assert (slot.rows.pairs(), slot.dirty) == ([], False)
    slot.next_offset, slot.dirty = 43, True  # a record that was no trade: the source's state is not rewritten
    assert slot.take().sources == {}


def as_version_2(st: PartitionState) -> bytes:
    """What Stock-IT wrote before sources: one clock per partition, the seed's rolling statistics."""
    src = st.sources[DEFAULT_SOURCE]
    counters = {**src.counters, "invalid": st.invalid}
    symbols = {}
    for name, sym in src.symbols.items():
        prices = sym.rules.states["price_deviation"].values
        quantities = sym.rules.states["volume_multiple"].values
        symbols[name] = {"windows": msgspec.to_builtins(sym.windows.to_state()),
                         "rolling": {"prices": prices, "quantities": quantities, "price_sum": sum(prices),
                                     "qty_sum": sum(quantities), "since_exact": 0},
                         "ticker": msgspec.to_builtins(sym.ticker.to_state()), "last_time": sym.last_time}
    return msgspec.msgpack.encode({"v": 2, "sizes": list(st.sizes), "grace": st.grace,
                                   "partition_time": src.time, "idle_time": src.idle_time,
                                   "counters": counters, "symbols": symbols})


def test_cklg005_a_version_2_checkpoint_continues_as_the_default_source():
    def trade(i):  # a jump at #61, a whale at #70
        price = 100.0 + (i % 7) * 0.25 + (12.0 if i == 61 else 0.0)
        quantity = 1.0 + i % 3 + (40.0 if i == 70 else 0.0)
        return Trade(f"t{i}", ("AAPL", "MSFT")[i % 2], price, quantity, "BUY", "X", 1_700_000_000.0 + i * 7.0)

    trades = [trade(i) for i in range(90)]
    straight = PartitionState((60, 300), 2.0, rules())
    for t in trades:
        straight.apply(t)
    before = PartitionState((60, 300), 2.0, rules())
    for t in trades[:50]:
        before.apply(t)
    before.count_invalid()
    before.drain()
    upgraded = PartitionState.from_bytes(as_version_2(before), {}, (60, 300), 2.0, rules())
    assert upgraded.counters == before.counters
    assert set(upgraded.checkpoint()[1]) == {DEFAULT_SOURCE}  # written in the new version at the next flush
    for t in trades[50:]:
        upgraded.apply(t)
    straight_candles, straight_alerts = straight.drain()
    candles, alerts = upgraded.drain()
    assert alerts and [a.alert_type for a in alerts] == ["CIRCUIT_BREAKER", "VOLUME_SPIKE"]
    assert alerts == [a for a in straight_alerts if a.trade_id in {t.trade_id for t in trades[50:]}]
    assert candles == straight_candles[-len(candles):]
    assert upgraded.counters["trades"] == straight.counters["trades"]
