"""The ``stockit`` command line: run the whole system, one worker, a replay, or admin tasks."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from app import account_commands
from pipeline.settings import Settings, SettingsError

logger = logging.getLogger("stockit")


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _require(s: Settings, *names: str) -> None:
    missing = [n for n in names if not getattr(s, n)]
    if missing:
        env = {"kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS", "redis_url": "REDIS_URL",
               "database_url": "DATABASE_URL"}
        raise SettingsError(f"set {', '.join(env[n] for n in missing)} (or use `stockit up`, which starts local "
                            f"servers)")


def cmd_up(s: Settings, args) -> int:
    from pipeline.alert_engine import check_settings
    from pipeline.rulesets.config import rulebook_from_settings
    from pipeline.stack.supervisor import WORKERS, up

    check_settings(s)  # a webhook setup the alert engine would refuse: refused before anything starts
    rulebook_from_settings(s)  # so is a rules configuration the processor would refuse
    workers = tuple(w for w in WORKERS if not (args.no_web and w == "web"))
    if args.rate is not None:
        s = s.replace(trade_rate=args.rate)
    return up(s, workers)


def cmd_servers(s: Settings, args) -> int:
    from pipeline.kafka_io import ensure_topics
    from pipeline.migrations import migrate
    from pipeline.stack.supervisor import start_servers

    stop = _stop_event()
    s, servers = start_servers(s)
    try:
        migrate(s.database_url)
        ensure_topics(s)
        print(f"KAFKA_BOOTSTRAP_SERVERS={s.kafka_bootstrap_servers}\nREDIS_URL={s.redis_url}\n"
              f"DATABASE_URL={s.database_url}\nservers ready; Ctrl-C stops them", flush=True)
        stop.wait()
    finally:
        for server in reversed(servers):
            server.stop()
    return 0


def cmd_producer(s: Settings, args) -> int:
    from pipeline import producer

    _require(s, "kafka_bootstrap_servers")
    if args.rate is not None:
        s = s.replace(trade_rate=args.rate)
    producer.run(s, _stop_event(), limit=args.count)
    return 0


def cmd_processor(s: Settings, args) -> int:
    from pipeline import processor

    _require(s, "kafka_bootstrap_servers", "redis_url", "database_url")
    processor.rulebook(s)  # a bad rules configuration stops it here, with the key named
    processor.run(s, _stop_event())
    return 0


def cmd_alert_engine(s: Settings, args) -> int:
    from pipeline import alert_engine

    alert_engine.check_settings(s)
    _require(s, "kafka_bootstrap_servers", "redis_url", "database_url")
    alert_engine.run(s, _stop_event())
    return 0


def cmd_webhook_secret(s: Settings, args) -> int:
    from pipeline.webhooks import new_secret

    print(new_secret())
    return 0


def cmd_web(s: Settings, args) -> int:
    from app.web import run

    if args.port:
        s = s.replace(web_port=args.port)
    if args.host:
        s = s.replace(web_host=args.host)
    if args.workers is not None:
        s = s.replace(web_workers=args.workers)
    run(s)
    return 0


def cmd_replay(s: Settings, args) -> int:
    from pipeline.replay import ReplayError, parse_speed, replay, source_for

    _require(s, "kafka_bootstrap_servers")
    try:
        speed = parse_speed(args.speed)
        path = Path(args.file)
        if not path.is_file():
            raise ReplayError(f"no such file: {path}")
        source = source_for(path, args.source)
        if source == s.live_source:
            print(f"stockit replay: source {source!r} is the live source: its trades share the live feed's "
                  "event-time clock (any older than it are late)", file=sys.stderr)
        result = replay(path, s, speed, _stop_event(), source=source)
    except ReplayError as exc:
        print(f"stockit replay: {exc}", file=sys.stderr)
        return 2
    rate = result.sent / result.seconds if result.seconds else 0.0
    print(f"replayed {result.sent} trades of source {source!r} in {result.seconds:.2f}s ({rate:,.0f}/s) to "
          f"{s.topic_trades}; {result.bad} bad rows sent to {s.topic_deadletter}")
    return 1 if result.bad and not result.sent else 0


def cmd_db(s: Settings, args) -> int:
    from pipeline.migrations import apply_retention, migrate

    _require(s, "database_url")
    if args.action == "migrate":
        from app.account_commands import first_admin

        applied = migrate(s.database_url)
        print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
        if first_admin(s, generate=False):
            print(f"created the first admin user {s.admin_user!r} (password from STOCKIT_ADMIN_PASSWORD)")
    else:
        dropped = apply_retention(s.database_url, s.retention_days)
        print(f"retention {s.retention_days} days: dropped {dropped} trade partitions, old candles and alerts")
    return 0


def cmd_topics(s: Settings, args) -> int:
    from pipeline.kafka_io import ensure_topics

    _require(s, "kafka_bootstrap_servers")
    created = ensure_topics(s)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


def cmd_config(s: Settings, args) -> int:
    rows = s.describe()
    width = max(len(r[0]) for r in rows)
    for env, value, doc in rows:
        print(f"{env:<{width}}  {value or '(unset)':<40}  # {doc}")
    return 0


def cmd_rules(s: Settings, args) -> int:
    """Validate the rules configuration and show the rule set of each symbol."""
    from pipeline.rulesets.config import RulesConfigError, rulebook_from_settings

    try:
        book = rulebook_from_settings(s)
    except RulesConfigError as exc:
        print(f"stockit: {exc}", file=sys.stderr)
        return 2
    for symbol, ruleset, rules in book.describe(args.symbols or s.symbol_list):
        print(f"{symbol:<10} {ruleset:<16} {rules}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stockit", description="Stock-IT real-time trade monitoring")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run everything: local Kafka/Redis/PostgreSQL (unless configured) + all workers")
    up.add_argument("--no-web", action="store_true", help="do not run the web app")
    up.add_argument("--rate", type=float, help="simulated trades per second")
    up.set_defaults(func=cmd_up)

    sv = sub.add_parser("servers", help="start only the local Kafka, Redis and PostgreSQL")
    sv.set_defaults(func=cmd_servers)

    pr = sub.add_parser("producer", help="publish simulated trades")
    pr.add_argument("--rate", type=float, help="trades per second (0 = as fast as possible)")
    pr.add_argument("--count", type=int, help="stop after this many trades")
    pr.set_defaults(func=cmd_producer)

    sub.add_parser("processor", help="run the stream processor").set_defaults(func=cmd_processor)
    sub.add_parser("alert-engine", help="run the alert engine").set_defaults(func=cmd_alert_engine)
    sub.add_parser("webhook-secret", help="print a new STOCKIT_WEBHOOK_SECRET (whsec_...)").set_defaults(
        func=cmd_webhook_secret)

    web = sub.add_parser("web", help="serve the web app, REST API and streams")
    web.add_argument("--host")
    web.add_argument("--port", type=int)
    web.add_argument("--workers", type=int, help="server processes (default: STOCKIT_WEB_WORKERS)")
    web.set_defaults(func=cmd_web)

    rp = sub.add_parser("replay", help="publish trades from a CSV file")
    rp.add_argument("file", help="CSV with timestamp,symbol,price,quantity[,side,exchange,trade_id]")
    rp.add_argument("--speed", default="max", help="N times real time, or 'max' (default)")
    rp.add_argument("--source", help="name of the source stamped on the trades (an event-time clock of its "
                                     "own; default: the file's name, e.g. spx-daily for 'SPX daily.csv')")
    rp.set_defaults(func=cmd_replay)

    db = sub.add_parser("db", help="database tasks")
    db.add_argument("action", choices=("migrate", "retention"))
    db.set_defaults(func=cmd_db)

    sub.add_parser("topics", help="create the Kafka topics").set_defaults(func=cmd_topics)
    account_commands.add_parsers(sub)
    sub.add_parser("config", help="show the effective configuration (secrets masked)").set_defaults(func=cmd_config)
    ru = sub.add_parser("rules", help="validate STOCKIT_RULES and show the rule set of each symbol")
    ru.add_argument("symbols", nargs="*", help="symbols to show (default: STOCKIT_SYMBOLS)")
    ru.set_defaults(func=cmd_rules)
    from pipeline import backtest_cli

    backtest_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from pipeline import logs

    from pipeline.rulesets.config import RulesConfigError

    args = build_parser().parse_args(argv)
    try:
        s = Settings.from_env()
        logs.setup(s.log_level, s.log_format, args.command)
        return args.func(s, args) or 0
    except (SettingsError, RulesConfigError) as exc:
        print(f"stockit: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
