"""Alert deduplication policy — pure logic; the Redis adapter stores what it decides.

One alert per (alert_type, symbol) within a TTL window (defaults per type in
``pipeline.alert_types``: CIRCUIT_BREAKER 300 s, PRICE_SPIKE 60 s, VOLUME_SPIKE 30 s, ...).
The window's key holds the id of the alert that opened it, so an
alert seen again after a restart is recognised as itself, not suppressed as its own duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from pipeline.alert_types import DEDUP_SECONDS

DEFAULT_TTLS = dict(DEDUP_SECONDS)
FALLBACK_TTL = 60.0


@dataclass(frozen=True)
class DedupPolicy:
    ttls: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TTLS))

    def ttl(self, alert_type: str) -> float:
        return self.ttls.get(alert_type, FALLBACK_TTL)

    @staticmethod
    def key(alert_type: str, symbol: str) -> str:
        return f"{alert_type}:{symbol}"

    @staticmethod
    def is_duplicate(holder: Optional[str], alert_id: str) -> bool:
        """``holder`` is the alert id that owns the open window (None: no window open)."""
        return holder is not None and holder != alert_id

