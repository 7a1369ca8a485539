"""When may the wall clock move a source's event time on? Only while the processor is truly caught up with
it — pure logic.

Per partition, the processor asks the broker for the partition's end offset about twice a second.
Each answer carries the wall time at which it was *asked* (the answer describes the log at some
moment after that).  Answers form a *run* as long as the broker answers and no two consecutive
questions are more than ``max_gap`` apart: a broker that did not answer, or a gap (this process was
slow or frozen), breaks the run, so a stalled broker, database or process never counts as idle time.
An answer is *confirmed* once the processor's position has reached its end offset: every record
appended before it has been read.

A source (``Trade.source``) is idle from the first answer of the run asked after the source's last
record was read, whose end lies past that record: when a later answer of the run is confirmed and
nothing more of the source was read, the source appended nothing in between — whatever other
sources appended meanwhile.  The idle
time handed to ``SourceState.tick`` is the span between those two answers' questions.  So a replay
that ended closes its last windows by the wall clock while live trades keep flowing on the same
partition, and neither is ever closed while its records are merely waiting to be read.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Optional

logger = logging.getLogger(__name__)


class _SourceRun:
    __slots__ = ("records", "position", "read_at", "since")

    def __init__(self, records: int, position: Optional[int], read_at: float):
        self.records = records    # records of the source read so far
        self.position = position  # our next offset after the last of them (None: unknown)
        self.read_at = read_at    # wall time when the last of them had been read
        self.since: Optional[float] = None  # asked_at of the run's first answer after it, ending past it


class CatchUp:
    """One partition's run of broker answers and, per source, since when the run shows it idle."""

    __slots__ = ("max_gap", "_pending", "_last_asked", "_confirmed", "_sources")

    def __init__(self, max_gap: float):
        self.max_gap = max_gap
        self._pending: deque[tuple[float, int]] = deque()  # (asked_at, end) of the run, not confirmed yet
        self._last_asked: Optional[float] = None  # the run's newest answer (None: no run)
        self._confirmed: Optional[float] = None   # the run's newest confirmed answer
        self._sources: dict[str, _SourceRun] = {}

    def consumed(self, source: str, records: int, position: Optional[int], now: float) -> None:
        """At wall time ``now``, ``records`` records of ``source`` have been read so far, the last of them
        before ``position`` (our next offset); a count that grew means it was not idle."""
        run = self._sources.get(source)
        if run is None:
            self._sources[source] = _SourceRun(records, position, now)
        elif records != run.records:
            run.records, run.position, run.read_at, run.since = records, position, now, None

    def answer(self, asked_at: float, end: Optional[int]) -> None:
        """The broker's end offset (None: no answer) for a question asked at ``asked_at``."""
        if end is None or (self._last_asked is not None and asked_at - self._last_asked > self.max_gap):
            self._break()
            if end is None:
                return
        self._last_asked = asked_at
        self._pending.append((asked_at, end))
        for run in self._sources.values():
            if run.since is None and run.position is not None and end >= run.position \
                    and asked_at >= run.read_at:  # asked after the record was read: it was on the log by then
                run.since = asked_at

    def read_to(self, position: Optional[int]) -> None:
        """Our next offset is ``position``: the answers whose end it has reached are confirmed."""
        pending = self._pending
        while pending and position is not None and pending[0][1] <= position:
            self._confirmed = pending.popleft()[0]

    def idle_seconds(self, source: str) -> float:
        """Wall time the source is confirmed to have had nothing to read (0 when not)."""
        run = self._sources.get(source)
        if run is None or run.since is None or self._confirmed is None:
            return 0.0
        return max(0.0, self._confirmed - run.since)

    def _break(self) -> None:
        self._pending.clear()
        self._last_asked = self._confirmed = None
        for run in self._sources.values():
            run.since = None
