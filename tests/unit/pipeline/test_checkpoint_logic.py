"""Pure parts of the checkpoint protocol: error classes, checkpoint versions, slots."""
import msgspec
import psycopg2
import psycopg2.errors
import pytest

from pipeline.checkpoint import PartitionSlot
from pipeline.events import Trade
from pipeline.history.errors import DATA, FATAL, TRANSIENT, classify
from pipeline.idleness import CatchUp
from pipeline.partition_state import CheckpointVersionError, PartitionState
from pipeline.rules import RuleBook, RuleConfig


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
    return RuleBook(RuleConfig(min_history=3, rolling_window=10))


def test_cklg003_a_version_1_checkpoint_is_refused_with_a_clear_message():
    positional = {"AAPL": [{"closed": [0.0], "open": [[]]}, [[], [], 0, 0, 0], [0.0] * 9, 0.0]}
    old = msgspec.msgpack.encode({"v": 1, "sizes": [60], "grace": 2.0, "partition_time": 0.0,
                                  "idle_time": 0.0, "counters": {}, "symbols": positional})
    with pytest.raises(CheckpointVersionError, match="version 1.*typed snapshots.*processor_checkpoints"):
        PartitionState.from_bytes(old, (60,), 2.0, rules())


def test_cklg004_a_slot_hands_over_its_buffers_once():
    st = PartitionState((60,), 2.0, rules())
    slot = PartitionSlot(3, 7, st, None, CatchUp(3.0))
    t = Trade("t1", "AAPL", 10.0, 1.0, "BUY", "X", 1_700_000_000.0)
    st.apply(t)
    slot.rows.append((t, False))
    slot.next_offset, slot.dirty = 42, True
    work = slot.take()
    assert (work.partition, work.epoch, work.next_offset, work.rows) == (3, 7, 42, [(t, False)])
    assert PartitionState.from_bytes(work.state, (60,), 2.0, rules()).counters["trades"] == 1
    assert (slot.rows, slot.dirty) == ([], False)
