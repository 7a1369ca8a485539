"""The alert engine's side of PostgreSQL: routing and delivery status of each alert, on its own pool."""
from __future__ import annotations

from typing import Optional

from pipeline.history import Pool


class AlertStatusStore(Pool):
    """Writes ``status``, ``delivery_status``, attempts and the last error of alerts."""

    def __init__(self, url: str, maxconn: int = 4):
        super().__init__(url, maxconn, "stockit-alert-engine")

    def set_alert_status(self, alert_id: str, status: str, delivery_status: Optional[str] = None,
                         attempts: int = 0, error: Optional[str] = None) -> None:
        with self.cursor() as cur:
            cur.execute("""UPDATE alerts SET status = %s, delivery_status = COALESCE(%s, delivery_status),
                                  delivery_attempts = delivery_attempts + %s, last_error = %s,
                                  delivered_at = CASE WHEN %s = 'delivered' THEN now() ELSE delivered_at END
                           WHERE alert_id = %s""",
                        (status, delivery_status, attempts, error, delivery_status, alert_id))
