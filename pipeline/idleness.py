"""When may the wall clock move a partition's event time on? Only while it is truly caught up — pure logic.

A partition is caught up when the broker itself said that the processor's position equals the
partition's end offset.  Each broker answer carries the wall time at which it was *asked* (the
answer describes the log at some moment after that).  The idle time handed to
``PartitionState.tick`` is the span between the first and the latest of an unbroken run of such
confirmations: a consumed record, an answer showing more to read, a broker that did not answer, or a
gap between answers longer than ``max_gap`` (this process was slow or frozen) each end the run, so a
stalled broker, database or process never counts as idle time.
"""
from __future__ import annotations

import logging
from typing import Optional

logger = logging.getLogger(__name__)


class CatchUp:
    """The unbroken run of "caught up" confirmations of one partition."""

    __slots__ = ("since", "confirmed", "max_gap")

    def __init__(self, max_gap: float):
        self.since: Optional[float] = None      # wall time asked, first confirmation of the run
        self.confirmed: Optional[float] = None  # wall time asked, latest confirmation
        self.max_gap = max_gap

    def consumed(self) -> None:
        """A record arrived: the partition was not idle."""
        self.since = self.confirmed = None

    def answer(self, asked_at: float, position: Optional[int], end: Optional[int]) -> None:
        """The broker's end offset (None: no answer) for a question asked at ``asked_at`` while our next
        offset was ``position`` (None: unknown) and no record arrived since."""
        if end is None or position is None or position < end:
            self.since = self.confirmed = None
            return
        if self.since is None or self.confirmed is None or asked_at - self.confirmed > self.max_gap:
            self.since = asked_at
        self.confirmed = asked_at

    @property
    def idle_seconds(self) -> float:
        """Wall time this partition has been confirmed to have nothing to read (0 when not caught up)."""
        if self.since is None or self.confirmed is None:
            return 0.0
        return self.confirmed - self.since
