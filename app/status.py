"""Is the pipeline producing? One pure verdict for the banner, the health endpoint and the API."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Optional

OK, STALE, STOPPED, DOWN = "ok", "stale", "stopped", "down"


@dataclass(frozen=True)
class PipelineStatus:
    state: str          # ok | stale | stopped | down
    level: str          # success | warning | danger (banner colour)
    message: str        # one sentence for people
    redis: bool
    database: Optional[bool]
    last_trade_age: Optional[float] = None
    database_unavailable_since: Optional[str] = None  # ISO time, from the processor's heartbeat

    def to_dict(self) -> dict:
        return asdict(self)


def assess(*, now: float, redis_ok: bool, database_ok: Optional[bool], processor_heartbeat: Optional[dict],
           newest_trade_ts: Optional[float], stale_after: float) -> PipelineStatus:
    """The state of the data the app shows. ``database_ok`` None means not checked."""
    age = None if newest_trade_ts is None else max(0.0, now - newest_trade_ts)
    down_since = (processor_heartbeat or {}).get("database_unavailable_since")
    if redis_ok and down_since and now - float(processor_heartbeat.get("ts", 0.0)) <= stale_after:
        return _database_unavailable(now, float(down_since), database_ok, age)
    if not redis_ok:
        return PipelineStatus(DOWN, "danger", "The speed layer (Redis) is unreachable: no live data can be shown.",
                              False, database_ok, age)
    db_note = "" if database_ok is not False else " The history database is unreachable: history and alerts " \
                                                  "are unavailable."
    if processor_heartbeat is None:
        msg = "The pipeline is not running (no processor heartbeat): prices below are the last known values."
        if newest_trade_ts is None:
            msg = "The pipeline is not running and there is no data yet. Start it with `stockit up`."
        return PipelineStatus(STOPPED, "danger", msg + db_note, True, database_ok, age)
    beat_age = now - float(processor_heartbeat.get("ts", 0.0))
    if beat_age > stale_after:
        return PipelineStatus(STOPPED, "danger", f"The stream processor has been silent for {beat_age:.0f} s: "
                              f"data is stale.{db_note}", True, database_ok, age)
    if age is None:
        return PipelineStatus(STALE, "warning", "The pipeline is running but no trade has arrived yet." + db_note,
                              True, database_ok, age)
    if age > stale_after:
        return PipelineStatus(STALE, "warning", f"No new trades for {_age(age)}: prices are stale." + db_note,
                              True, database_ok, age)
    if database_ok is False:
        return PipelineStatus(OK, "warning", db_note.strip(), True, False, age)
    return PipelineStatus(OK, "success", "Live", True, database_ok, age)


def _database_unavailable(now: float, since: float, database_ok: Optional[bool], age: Optional[float]
                          ) -> PipelineStatus:
    """The processor cannot checkpoint: it has paused consumption and retries by itself."""
    at = datetime.fromtimestamp(since, timezone.utc)
    msg = (f"Database unavailable since {at:%H:%M:%S} UTC ({_age(max(0.0, now - since))}): the stream processor "
           "has paused and resumes by itself when it is back; nothing is lost.")
    return PipelineStatus(STALE, "danger", msg, True, database_ok, age,
                          at.isoformat(timespec="seconds").replace("+00:00", "Z"))


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
