"""Every configuration value of Stock-IT, read from the environment in one place.

Each field names its environment variable and says in one line what it is for.  Code asks
``get_settings()`` and never reads ``os.environ`` itself.  ``stockit config`` prints
``Settings.describe()``, with secrets masked.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipeline.events import check_source


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _env(name: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Typed, immutable configuration. Field order is the order ``stockit config`` shows."""

    # --- servers (unset: `stockit up` starts local ones under STOCKIT_HOME) ---------------------
    kafka_bootstrap_servers: str = _env("KAFKA_BOOTSTRAP_SERVERS", "", "Kafka bootstrap servers (host:port,...)")
    redis_url: str = _env("REDIS_URL", "", "Redis URL for the speed layer", secret=True)
    database_url: str = _env("DATABASE_URL", "", "PostgreSQL URL for history", secret=True)
    home: str = _env("STOCKIT_HOME", str(Path.home() / ".stockit"), "data, logs and jars of the local stack")
    kafka_port: int = _env("STOCKIT_KAFKA_PORT", 9092, "port of the local Kafka broker")
    redis_port: int = _env("STOCKIT_REDIS_PORT", 6379, "port of the local Redis server")
    postgres_port: int = _env("STOCKIT_POSTGRES_PORT", 5432, "port of the local PostgreSQL server")

    # --- topics ------------------------------------------------------------------------------
    topic_trades: str = _env("STOCKIT_TOPIC_TRADES", "raw-trades", "topic of raw trade events")
    topic_aggregates: str = _env("STOCKIT_TOPIC_AGGREGATES", "trade-aggregates", "topic of finalized candles")
    topic_alerts: str = _env("STOCKIT_TOPIC_ALERTS", "trade-alerts", "topic of alerts")
    topic_deadletter: str = _env("STOCKIT_TOPIC_DEADLETTER", "raw-trades-dlq", "topic of invalid records")
    topic_webhook_deadletter: str = _env("STOCKIT_TOPIC_WEBHOOK_DEADLETTER", "alert-webhooks-dlq",
                                         "topic of webhook deliveries that failed every try")
    topic_outbox_progress: str = _env("STOCKIT_TOPIC_OUTBOX_PROGRESS", "processor-outbox-progress",
                                      "compacted topic of the processor's outbox markers (one partition per "
                                      "raw-trades partition)")
    trade_partitions: int = _env("STOCKIT_TRADE_PARTITIONS", 6, "partitions of the raw-trades topic")
    processor_group: str = _env("STOCKIT_PROCESSOR_GROUP", "stockit-processor", "consumer group of the processor")
    alert_group: str = _env("STOCKIT_ALERT_GROUP", "stockit-alert-engine", "consumer group of the alert engine")

    # --- producer ----------------------------------------------------------------------------
    symbols: str = _env("STOCKIT_SYMBOLS", "AAPL,GOOGL,MSFT,AMZN,TSLA,BTC-USD,ETH-USD,EUR-USD,GBP-USD,JPY-USD",
                        "symbols the simulator trades")
    trade_rate: float = _env("STOCKIT_TRADE_RATE", 50.0, "simulated trades per second (0 = as fast as possible)")
    event_rate: float = _env("STOCKIT_EVENT_RATE", 0.002, "probability per trade of an injected market event")
    seed: int = _env("STOCKIT_SEED", 0, "random seed of the simulator (0 = from the clock)")
    source: str = _env("STOCKIT_SOURCE", "live", "the live source: the name the simulator stamps on its "
                       "trades; the Redis speed layer, breaker metrics and the pages' defaults follow it")

    # --- processor ---------------------------------------------------------------------------
    grace_seconds: float = _env("STOCKIT_GRACE_SECONDS", 2.0, "lateness allowed before a window is finalized")
    window_sizes: str = _env("STOCKIT_WINDOWS", "60,300,900", "candle window sizes in seconds")
    batch_size: int = _env("STOCKIT_BATCH_SIZE", 5000, "records taken from Kafka per poll")
    flush_interval: float = _env("STOCKIT_FLUSH_INTERVAL", 5.0, "seconds between database flushes")
    flush_rows: int = _env("STOCKIT_FLUSH_ROWS", 50000, "buffered trades that force a database flush")
    db_timeout: float = _env("STOCKIT_DB_TIMEOUT", 15.0,
                             "seconds a database call may take before the server counts as unavailable")
    max_future_seconds: float = _env("STOCKIT_MAX_FUTURE_SECONDS", 300.0,
                                     "trades stamped further ahead of the wall clock are invalid")
    max_record_bytes: int = _env("STOCKIT_MAX_RECORD_BYTES", 65536,
                                 "raw-trades records larger than this are invalid")
    consumer_queue_kbytes: int = _env("STOCKIT_CONSUMER_QUEUE_KBYTES", 8192,
                                      "kilobytes of records a consumer fetches ahead (bounds its memory, "
                                      "whatever the backlog; one fetch is at most a quarter of it)")

    # --- anomaly rules -----------------------------------------------------------------------
    spike_pct: float = _env("STOCKIT_SPIKE_PCT", 5.0, "PRICE_SPIKE: % deviation from the rolling average")
    breaker_pct: float = _env("STOCKIT_BREAKER_PCT", 10.0, "CIRCUIT_BREAKER: % deviation from the rolling average")
    volume_multiple: float = _env("STOCKIT_VOLUME_MULTIPLE", 3.0, "VOLUME_SPIKE: quantity over rolling average")
    rolling_window: int = _env("STOCKIT_ROLLING_WINDOW", 100, "trades in the rolling statistics")
    min_history: int = _env("STOCKIT_MIN_HISTORY", 20, "trades seen before any alert")
    rule_overrides: str = _env("STOCKIT_RULE_OVERRIDES", "",
                               'JSON: {"crypto": {"spike_pct": 8}, "TSLA": {"volume_multiple": 4}}')
    rules_config: str = _env("STOCKIT_RULES", "", "rule sets per asset class/symbol: a JSON or YAML file, or "
                             "inline JSON (empty = the seed's three rules; see pipeline/rulesets/config.py)")

    # --- analysis: backtests and alert snoozes ------------------------------------------------
    backtest_workers: int = _env("STOCKIT_BACKTEST_WORKERS", 1, "backtests run at once (each one process)")
    backtest_queue: int = _env("STOCKIT_BACKTEST_QUEUE", 4, "backtests queued or running at most; more are "
                               "refused until one finishes")
    snooze_refresh_seconds: float = _env("STOCKIT_SNOOZE_REFRESH_SECONDS", 2.0,
                                         "the alert engine re-reads the snoozes this often")

    # --- alert engine ------------------------------------------------------------------------
    dedup_ttls: str = _env("STOCKIT_DEDUP_TTLS", "CIRCUIT_BREAKER=300,PRICE_SPIKE=60,VOLUME_SPIKE=30",
                           "deduplication window per alert type, seconds")
    breaker_open_seconds: float = _env("STOCKIT_BREAKER_OPEN_SECONDS", 300.0, "OPEN -> HALF_OPEN after")
    breaker_probation_seconds: float = _env("STOCKIT_BREAKER_PROBATION_SECONDS", 60.0,
                                            "HALF_OPEN -> CLOSED after this long without a price alert")
    webhook_urls: str = _env("STOCKIT_WEBHOOK_URLS", "", "comma-separated URLs for CRITICAL and HIGH alerts",
                             secret=True)
    webhook_secret: str = _env("STOCKIT_WEBHOOK_SECRET", "",
                               "Standard Webhooks signing key: whsec_ + base64 of 24-64 random bytes "
                               "(`stockit webhook-secret` makes one)", secret=True)
    webhook_sources: str = _env("STOCKIT_WEBHOOK_SOURCES", "live", "sources whose CRITICAL and HIGH alerts "
                                "go to the webhooks (comma-separated; * = every source)")
    webhook_attempts: int = _env("STOCKIT_WEBHOOK_ATTEMPTS", 4, "tries per webhook delivery")
    webhook_backoff: float = _env("STOCKIT_WEBHOOK_BACKOFF", 0.5, "first retry delay, doubled each try")
    webhook_timeout: float = _env("STOCKIT_WEBHOOK_TIMEOUT", 5.0,
                                  "total deadline of one webhook request (connect to last byte), seconds")
    webhook_workers: int = _env("STOCKIT_WEBHOOK_WORKERS", 2, "concurrent deliveries per webhook URL")
    outage_retry_max: float = _env("STOCKIT_OUTAGE_RETRY_MAX", 5.0,
                                   "longest wait between retries while Redis or PostgreSQL is unavailable")

    # --- storage -----------------------------------------------------------------------------
    retention_days: int = _env("STOCKIT_RETENTION_DAYS", 30, "history kept by the retention job (0 = forever)")

    # --- web and metrics ---------------------------------------------------------------------
    web_host: str = _env("STOCKIT_WEB_HOST", "127.0.0.1", "address the web server binds")
    web_port: int = _env("STOCKIT_WEB_PORT", 8088, "port of the web app, REST API and streams")
    web_workers: int = _env("STOCKIT_WEB_WORKERS", 2, "web server processes (gevent workers), ~1 per core")
    web_connections: int = _env("STOCKIT_WEB_CONNECTIONS", 2000,
                                "open connections per web process; streams may hold 90% of them")
    stream_price_interval: float = _env("STOCKIT_STREAM_PRICE_INTERVAL", 0.25,
                                        "least time between two price-stream snapshots (s)")
    stream_ping_interval: float = _env("STOCKIT_STREAM_PING_INTERVAL", 25.0,
                                       "WebSocket ping period (s); no pong by the next ping: dropped")
    stream_send_timeout: float = _env("STOCKIT_STREAM_SEND_TIMEOUT", 10.0,
                                      "a stream client whose socket takes no data this long (s) is dropped")
    stream_send_buffer: int = _env("STOCKIT_STREAM_SEND_BUFFER", 65536,
                                   "bytes a stream socket may hold unsent: its bounded send queue")
    stream_max_message_bytes: int = _env("STOCKIT_STREAM_MAX_MESSAGE_BYTES", 4096,
                                         "largest message a WebSocket client may send; larger ones close it")
    metrics_host: str = _env("STOCKIT_METRICS_HOST", "127.0.0.1", "address the workers' metrics ports bind")
    producer_metrics_port: int = _env("STOCKIT_PRODUCER_METRICS_PORT", 8001, "producer /metrics port")
    processor_metrics_port: int = _env("STOCKIT_PROCESSOR_METRICS_PORT", 8002, "processor /metrics port")
    alert_metrics_port: int = _env("STOCKIT_ALERT_METRICS_PORT", 8003, "alert engine /metrics port")
    stale_after_seconds: float = _env("STOCKIT_STALE_AFTER_SECONDS", 10.0, "data older than this is shown stale")
    log_level: str = _env("STOCKIT_LOG_LEVEL", "INFO", "log level of every worker")
    log_format: str = _env("STOCKIT_LOG_FORMAT", "text", "text or json")

    # --- sign-in and web security ------------------------------------------------------------
    secret_key: str = _env("STOCKIT_SECRET_KEY", "", "signs session cookies (empty: generated once into "
                           "STOCKIT_HOME/secret_key)", secret=True)
    admin_user: str = _env("STOCKIT_ADMIN_USER", "admin", "name of the first admin, made on first start")
    admin_password: str = _env("STOCKIT_ADMIN_PASSWORD", "", "the first admin's password (empty: `stockit "
                               "up` generates one and prints it once)", secret=True)
    cli_password: str = _env("STOCKIT_PASSWORD", "", "password for `stockit users add|passwd` in scripts "
                             "(empty: stdin or a prompt)", secret=True)
    allowed_origins: str = _env("STOCKIT_ALLOWED_ORIGINS", "", "other origins (scheme://host:port, comma-"
                                "separated) allowed to post and open WebSockets")
    cookie_secure: str = _env("STOCKIT_COOKIE_SECURE", "auto", "Secure session cookie: auto (when served "
                              "over https), true or false")
    session_hours: float = _env("STOCKIT_SESSION_HOURS", 12.0, "a session ends this long after signing in "
                                "(hours)")
    login_rate_limit: str = _env("STOCKIT_LOGIN_RATE_LIMIT", "10 per minute", "failed sign-ins allowed per "
                                 "client address and per user name")
    metrics_token: str = _env("STOCKIT_METRICS_TOKEN", "", "bearer token Prometheus may present to the web "
                              "app's /metrics (and nothing else)", secret=True)

    # --- derived values ----------------------------------------------------------------------
    @property
    def symbol_list(self) -> list[str]:
        return [s.strip().upper() for s in self.symbols.split(",") if s.strip()]

    @property
    def window_list(self) -> tuple[int, ...]:
        try:
            sizes = tuple(sorted(int(w) for w in self.window_sizes.split(",") if w.strip()))
        except ValueError:
            sizes = ()
        if not sizes or sizes[0] <= 0:
            raise SettingsError(f"STOCKIT_WINDOWS={self.window_sizes!r} is not a list of positive whole "
                                "seconds")
        return sizes

    @property
    def dedup_ttl_map(self) -> dict[str, float]:
        out = {}
        for part in self.dedup_ttls.split(","):
            if part.strip():
                name, _, value = part.partition("=")
                try:
                    out[name.strip().upper()] = float(value)
                except ValueError:
                    raise SettingsError(f"STOCKIT_DEDUP_TTLS: {part.strip()!r} is not TYPE=seconds") from None
        return out

    @property
    def rule_override_map(self) -> dict[str, dict[str, float]]:
        if not self.rule_overrides.strip():
            return {}
        try:
            data = json.loads(self.rule_overrides)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"STOCKIT_RULE_OVERRIDES is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError("STOCKIT_RULE_OVERRIDES must be a JSON object")
        return data

    @property
    def live_source(self) -> str:
        try:
            return check_source(self.source)
        except ValueError as exc:
            raise SettingsError(f"STOCKIT_SOURCE: {exc}") from None

    @property
    def webhook_source_list(self) -> tuple[str, ...]:
        """The sources whose alerts are sent to webhooks; ("*",) means every source."""
        names = tuple(dict.fromkeys(n.strip() for n in self.webhook_sources.split(",") if n.strip()))
        if names == ("*",):
            return names
        try:
            return tuple(check_source(n) for n in names)
        except ValueError as exc:
            raise SettingsError(f"STOCKIT_WEBHOOK_SOURCES: {exc} (or * for every source)") from None

    @property
    def webhook_url_list(self) -> list[str]:
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]

    @property
    def cookie_secure_mode(self) -> str:
        mode = self.cookie_secure.strip().lower()
        if mode not in ("auto", "true", "false"):
            raise SettingsError(f"STOCKIT_COOKIE_SECURE={self.cookie_secure!r}: use auto, true or false")
        return mode

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from ``environ`` (default ``os.environ``); ``overrides`` win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or f.name in overrides:
                continue
            values[f.name] = _convert(f, raw)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """Environment variables that reproduce these settings in a child process."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def describe(self) -> list[tuple[str, str, str]]:
        """(variable, effective value with secrets masked, comment) for every setting."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = _mask(str(value)) if f.metadata["secret"] else str(value)
            rows.append((f.metadata["env"], shown, f.metadata["doc"]))
        return rows


def _convert(f: dataclasses.Field, raw: str) -> Any:
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "str": str}.get(str(f.type), str)
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{f.metadata['env']}={raw!r} is not a valid {kind.__name__}") from None


def _mask(value: str) -> str:
    """Hide passwords in URLs and whole secrets; keep enough to recognise the value."""
    if not value:
        return ""
    if "://" in value:
        from urllib.parse import urlsplit, urlunsplit

        parts = []
        for item in value.split(","):
            u = urlsplit(item.strip())
            netloc = u.netloc
            if u.password:
                netloc = netloc.replace(f":{u.password}@", ":****@")
            query = "****" if u.query else ""
            # A web URL's path can be the credential itself (Slack/Discord webhook tokens).
            path = "/****" if u.scheme in ("http", "https") and u.path.strip("/") else u.path
            parts.append(urlunsplit((u.scheme, netloc, path, query, "")))
        return ",".join(parts)
    return "****"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()
