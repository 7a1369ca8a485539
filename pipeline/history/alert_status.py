"""The alert engine's side of PostgreSQL, on its own pool: each alert's routing decision, and the durable
queue of its webhook deliveries (``webhook_deliveries``, migration 005).

A delivery row is created with the decision, in the same transaction, before the Kafka offset is
committed; a worker claims it (``sending``) before each try, so a crash or a redelivered record never
sends an alert twice to one endpoint.  The alert's ``delivery_status``, attempts and ``last_error``
are filled in once every endpoint has finished.  Nothing here ever holds a URL: endpoints are a hash
(``endpoint``) and ``scheme://host`` (``origin``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Optional

from pipeline.history import Pool

logger = logging.getLogger(__name__)
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"


@dataclass(frozen=True)
class Claim:
    """One try of one delivery, claimed by a worker: ``attempt`` counts this try."""

    alert_id: str
    endpoint: str
    origin: str
    body: bytes
    attempt: int
    last_error: Optional[str] = None


_AGGREGATE = """
UPDATE alerts a
   SET delivery_status = CASE WHEN s.failed THEN 'failed' ELSE 'delivered' END,
       delivery_attempts = s.attempts, last_error = s.errors,
       delivered_at = CASE WHEN s.failed THEN a.delivered_at ELSE now() END
  FROM (SELECT alert_id, bool_or(state = 'failed') AS failed, sum(attempts)::int AS attempts,
               string_agg(origin || ': ' || last_error, '; ' ORDER BY origin)
                   FILTER (WHERE state = 'failed') AS errors,
               count(*) FILTER (WHERE state IN ('pending', 'sending')) AS open
          FROM webhook_deliveries WHERE alert_id = %(alert_id)s GROUP BY alert_id) s
 WHERE a.alert_id = s.alert_id AND s.open = 0
"""
_RETURNING = "RETURNING alert_id, endpoint, origin, body, attempts, last_error"


def _claim(row: dict) -> Claim:
    return Claim(row["alert_id"], row["endpoint"], row["origin"], bytes(row["body"]), row["attempts"],
                 row["last_error"])


class AlertStatusStore(Pool):
    """Routing status of alerts and their webhook deliveries."""

    def __init__(self, url: str, maxconn: int = 4):
        # Every connection is kept: the delivery workers poll, and a pool below its minimum would
        # open and close a connection for each of their looks.
        super().__init__(url, maxconn, "stockit-alert-engine", minconn=maxconn)

    def record(self, alert_id: str, status: str, delivery_status: Optional[str] = None,
               endpoints: Iterable[tuple[str, str]] = (), body: bytes = b"",
               snooze_id: Optional[int] = None) -> str:
        """Store the decision on an alert and queue its deliveries; returns the status that stands.

        The first decision stands: a record seen again (a restart, a rebalance) changes nothing, and
        queues nothing new — the primary key makes a second delivery row for an endpoint impossible.
        ``endpoints`` are (endpoint key, origin) pairs; ``snooze_id`` names the snooze of a ``snoozed`` alert.
        """
        with self.cursor() as cur:
            cur.execute("""UPDATE alerts SET status = %s, delivery_status = %s, snooze_id = %s
                            WHERE alert_id = %s AND status = 'new'""",
                        (status, delivery_status, snooze_id, alert_id))
            if cur.rowcount == 0:
                cur.execute("SELECT status FROM alerts WHERE alert_id = %s", (alert_id,))
                row = cur.fetchone()
                if row is None:
                    logger.warning("alert %s is not in the alerts table; routing it anyway", alert_id)
                else:
                    status = row["status"]
            if status == "routed":
                for endpoint, origin in endpoints:
                    cur.execute("""INSERT INTO webhook_deliveries (alert_id, endpoint, origin, body)
                                   VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                                (alert_id, endpoint, origin, body))
        return status

    def claim(self, endpoint: str) -> Optional[Claim]:
        """The endpoint's next due delivery, now ``sending`` with one more attempt; None if none is due."""
        with self.cursor() as cur:
            cur.execute(f"""UPDATE webhook_deliveries SET state = 'sending', attempts = attempts + 1,
                                   claimed_at = now()
                             WHERE (alert_id, endpoint) = (
                                   SELECT alert_id, endpoint FROM webhook_deliveries
                                    WHERE endpoint = %s AND state = 'pending' AND next_at <= now()
                                    ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                            {_RETURNING}""", (endpoint,))
            row = cur.fetchone()
        return _claim(row) if row else None

    def seconds_to_next(self, endpoint: str) -> Optional[float]:
        """Seconds until the endpoint's next pending delivery is due (None: nothing pending)."""
        with self.cursor() as cur:
            cur.execute("""SELECT GREATEST(0, EXTRACT(EPOCH FROM min(next_at) - now()))::float8 AS wait
                             FROM webhook_deliveries WHERE endpoint = %s AND state = 'pending'""",
                        (endpoint,))
            return cur.fetchone()["wait"]

    def delivered(self, claim: Claim, status: int) -> None:
        self._finish(claim, DELIVERED, status, None)

    def failed(self, claim: Claim, status: Optional[int], error: str) -> None:
        self._finish(claim, FAILED, status, error)

    def retry_later(self, claim: Claim, delay: float, status: Optional[int], error: str) -> None:
        with self.cursor() as cur:
            cur.execute("""UPDATE webhook_deliveries SET state = 'pending', claimed_at = NULL,
                                  last_status = %s, last_error = %s,
                                  next_at = now() + make_interval(secs => %s)
                            WHERE alert_id = %s AND endpoint = %s AND state = 'sending'""",
                        (status, error, delay, claim.alert_id, claim.endpoint))

    def _finish(self, claim: Claim, state: str, status: Optional[int], error: Optional[str]) -> None:
        with self.cursor() as cur:
            cur.execute("""UPDATE webhook_deliveries SET state = %s, finished_at = now(), last_status = %s,
                                  last_error = %s
                            WHERE alert_id = %s AND endpoint = %s AND state = 'sending'""",
                        (state, status, error, claim.alert_id, claim.endpoint))
            cur.execute(_AGGREGATE, {"alert_id": claim.alert_id})

    def abandon_stale(self, endpoint: str, older_than: float, reason: str) -> list[Claim]:
        """Tries claimed more than ``older_than`` seconds ago and never finished (their engine stopped
        during the request): marked failed with ``reason``, not sent again — the request may have
        arrived.  Returned so they can be dead-lettered."""
        with self.cursor() as cur:
            cur.execute(f"""UPDATE webhook_deliveries SET state = 'failed', finished_at = now(),
                                   last_error = %s
                             WHERE endpoint = %s AND state = 'sending'
                               AND claimed_at < now() - make_interval(secs => %s)
                            {_RETURNING}""", (reason, endpoint, older_than))
            rows = cur.fetchall()
            for row in rows:
                cur.execute(_AGGREGATE, {"alert_id": row["alert_id"]})
        return [_claim(r) for r in rows]

    def backlog(self) -> dict[str, int]:
        """Deliveries pending or in flight, per origin."""
        with self.cursor() as cur:
            cur.execute("""SELECT origin, count(*) AS n FROM webhook_deliveries
                            WHERE state IN ('pending', 'sending') GROUP BY origin""")
            return {r["origin"]: r["n"] for r in cur.fetchall()}
