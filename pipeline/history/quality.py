"""Data-quality queries over PostgreSQL for the /quality page, its API and the web app's metrics: late trades
per source and symbol, dead-lettered records by reason, and gaps in ``sequence``
per exchange (window functions over the stored trades).

Windows are of event time (``ts``) for trades, of failure time for dead letters.  The newest
``SETTLE_SECONDS`` of trades are left out of the gap count: trades of one exchange arrive on several
partitions, whose checkpoints land a few seconds apart, so the newest sequence numbers are not all
stored yet.  A sequence number seen twice counts as ``repeated`` (a producer restarted, or a replay).
"""
from __future__ import annotations

import logging
from typing import Optional

from pipeline.history import iso

logger = logging.getLogger(__name__)
SETTLE_SECONDS = 15
WINDOWS_MINUTES = (15, 60, 240, 1440)


class QualityReport:
    """``db`` is a ``pipeline.history.Pool`` (the web app's reader)."""

    def __init__(self, db):
        self.db = db

    def late_trades(self, minutes: int, symbol: Optional[str] = None) -> list[dict]:
        """Per source and symbol: trades, late trades, late share."""
        with self.db.cursor() as cur:
            cur.execute("""SELECT source, symbol, count(*)::int AS trades,
                                   count(*) FILTER (WHERE late)::int AS late
                              FROM trades WHERE ts >= now() - make_interval(mins => %s)
                               AND (%s::text IS NULL OR symbol = %s)
                             GROUP BY 1, 2 ORDER BY 1, 2""", (minutes, symbol, symbol))
            rows = cur.fetchall()
        for r in rows:
            r["late_pct"] = round(100.0 * r["late"] / r["trades"], 3) if r["trades"] else 0.0
        return rows

    def late_series(self, minutes: int, symbol: Optional[str] = None) -> list[dict]:
        """Late trades per minute of event time (for a small chart)."""
        with self.db.cursor() as cur:
            cur.execute("""SELECT date_trunc('minute', ts) AS minute,
                                  count(*) FILTER (WHERE late)::int AS late, count(*)::int AS trades
                             FROM trades WHERE ts >= now() - make_interval(mins => %s)
                              AND (%s::text IS NULL OR symbol = %s)
                            GROUP BY 1 ORDER BY 1""", (minutes, symbol, symbol))
            return [{**r, "minute": iso(r["minute"])} for r in cur.fetchall()]

    def dead_letters(self, minutes: int, limit: int = 50) -> dict:
        """Totals by kind, a per-minute series by kind, and the newest records with their reasons."""
        with self.db.cursor() as cur:
            cur.execute("""SELECT kind, count(*)::int AS count FROM dead_letters
                            WHERE failed_at >= now() - make_interval(mins => %s)
                            GROUP BY kind ORDER BY kind""",
                        (minutes,))
            totals = cur.fetchall()
            cur.execute("""SELECT date_trunc('minute', failed_at) AS minute, kind, count(*)::int AS count
                             FROM dead_letters WHERE failed_at >= now() - make_interval(mins => %s)
                            GROUP BY 1, 2 ORDER BY 1, 2""", (minutes,))
            series = [{**r, "minute": iso(r["minute"])} for r in cur.fetchall()]
            cur.execute("""SELECT id, failed_at, kind, reason, topic, partition, "offset", symbol, source,
                                  left(value, 300) AS value
                             FROM dead_letters WHERE failed_at >= now() - make_interval(mins => %s)
                            ORDER BY failed_at DESC, id DESC LIMIT %s""", (minutes, limit))
            recent = [{**r, "failed_at": iso(r["failed_at"])} for r in cur.fetchall()]
        return {"totals": totals, "series": series, "recent": recent}

    def sequence_gaps(self, minutes: int, limit: int = 20) -> dict:
        """Per exchange: trades with a sequence, gaps, missing numbers, repeats; and the largest gaps."""
        with self.db.cursor() as cur:
            cur.execute(f"""
                WITH seq AS (
                    SELECT exchange, symbol, ts, sequence,
                           sequence - lag(sequence) OVER (PARTITION BY exchange ORDER BY sequence, ts) AS step
                      FROM trades
                     WHERE sequence IS NOT NULL AND ts >= now() - make_interval(mins => %(m)s)
                       AND ts < now() - make_interval(secs => {SETTLE_SECONDS}))
                SELECT exchange, count(*)::int AS trades, min(sequence) AS first, max(sequence) AS last,
                       count(*) FILTER (WHERE step > 1)::int AS gaps,
                       coalesce(sum(step - 1) FILTER (WHERE step > 1), 0)::bigint AS missing,
                       count(*) FILTER (WHERE step = 0)::int AS repeated
                  FROM seq GROUP BY exchange ORDER BY exchange""", {"m": minutes})
            exchanges = cur.fetchall()
            cur.execute(f"""
                SELECT exchange, symbol, ts, sequence, step - 1 AS missing FROM (
                    SELECT exchange, symbol, ts, sequence,
                           sequence - lag(sequence) OVER (PARTITION BY exchange ORDER BY sequence, ts) AS step
                      FROM trades
                     WHERE sequence IS NOT NULL AND ts >= now() - make_interval(mins => %(m)s)
                       AND ts < now() - make_interval(secs => {SETTLE_SECONDS})) s
                 WHERE step > 1 ORDER BY step DESC, ts DESC LIMIT %(limit)s""",
                        {"m": minutes, "limit": limit})
            largest = [{**r, "ts": iso(r["ts"])} for r in cur.fetchall()]
        for r in exchanges:
            expected = r["last"] - r["first"] + 1 if r["trades"] else 0
            r["missing_pct"] = round(100.0 * r["missing"] / expected, 3) if expected else 0.0
        return {"exchanges": exchanges, "largest": largest}
