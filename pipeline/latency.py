"""Recent latencies of one pipeline stage: the samples of the last ``seconds`` and their percentiles — pure
logic, the clock passed in.  The processor keeps one per stage and shows them in its heartbeat, which the
data-quality page reads from Redis."""
from __future__ import annotations

import logging
from collections import deque
from typing import Iterable, Optional

logger = logging.getLogger(__name__)


def percentile(sorted_values: list[float], q: float) -> Optional[float]:
    """The ``q`` quantile (0..1) of sorted values by the nearest-rank method; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1000) * len(sorted_values) // 1000))  # ceil(q * n), at least 1
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LatencyWindow:
    """Samples (seconds) of the last ``seconds`` of the clock, at most ``cap`` of them."""

    def __init__(self, seconds: float = 60.0, cap: int = 5000, refresh: float = 0.0):
        """``refresh``: a summary is reused for this long (sorting ``cap`` samples at every call of a hot
        loop is what it saves)."""
        self.seconds = seconds
        self.refresh = refresh
        self.samples: deque[tuple[float, float]] = deque(maxlen=cap)
        self._summary: Optional[tuple[float, dict]] = None  # (when, summary)

    def add(self, value: float, now: float) -> None:
        self.samples.append((now, value))

    def summary(self, now: float) -> dict:
        """{"n", "p50", "p95", "max"} over the samples of the last ``seconds`` (values rounded to 0.1 ms),
        as of at most ``refresh`` seconds ago."""
        if self._summary is not None and now - self._summary[0] < self.refresh:
            return self._summary[1]
        while self.samples and self.samples[0][0] < now - self.seconds:
            self.samples.popleft()
        self._summary = (now, summarise([v for _, v in self.samples]))
        return self._summary[1]


def summarise(values: Iterable[float]) -> dict:
    """{"n", "p50", "p95", "max"} of latency samples in seconds (rounded to 0.1 ms; None if none)."""
    ordered = sorted(values)

    def r(v: Optional[float]) -> Optional[float]:
        return None if v is None else round(v, 4)

    return {"n": len(ordered), "p50": r(percentile(ordered, 0.5)), "p95": r(percentile(ordered, 0.95)),
            "max": r(ordered[-1] if ordered else None)}
