"""``stockit users add|list|remove|passwd`` and ``stockit tokens create|list|revoke``.

Passwords come from ``--password-stdin`` (one line), from STOCKIT_PASSWORD (scripts), or from a
prompt asked twice.  A new API token is printed once on stdout, alone, so ``TOKEN=$(stockit tokens
create ci)`` captures it; everything else goes to stderr.  Without DATABASE_URL the commands use the
PostgreSQL of a local ``stockit up``.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import re
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Optional, TextIO

from pipeline.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
ROLE_CHOICES = ("viewer", "operator", "admin")
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(text: Optional[str], now: float) -> Optional[float]:
    """``30d``, ``12h``, ``90m``, ``2w`` from ``now``, or an ISO-8601 time (UTC if no offset); None: never."""
    if not text:
        return None
    m = _DURATION.match(text.strip().lower())
    if m:
        return now + int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(f"--expires {text!r}: use a duration (30d, 12h, 90m) or an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.timestamp() <= now:
        raise SettingsError(f"--expires {text!r} is in the past")
    return moment.timestamp()


def read_password(s: Settings, from_stdin: bool, stdin: TextIO = sys.stdin,
                  prompt: Callable[[str], str] = getpass.getpass) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    if s.cli_password:
        return s.cli_password
    if not stdin.isatty():
        raise SettingsError("no password: pass --password-stdin, set STOCKIT_PASSWORD, or run in a terminal")
    first = prompt("Password: ")
    if prompt("Password again: ") != first:
        raise SettingsError("the two passwords differ")
    return first


def first_admin(s: Settings, generate: bool) -> Optional[tuple[str, str]]:
    """On a database without users, create the admin STOCKIT_ADMIN_USER with STOCKIT_ADMIN_PASSWORD or (when
    ``generate``) a random password.  Returns (user, password) when created now with a generated password,
    (user, "") when created with the configured one, None when users existed (or nothing to do)."""
    from app.access import generate_password

    if not s.admin_password and not generate:
        return None
    password = s.admin_password or generate_password()
    store = _store(s)
    try:
        created = store.first_admin(s.admin_user, password)
    finally:
        store.db.close()
    if not created:
        return None
    logger.info("created the first admin user %r", s.admin_user)
    return s.admin_user, "" if s.admin_password else password


def _store(s: Settings):
    from app.accounts import AccountStore
    from pipeline.history import Pool
    from pipeline.stack.servers import PostgresServer

    url = s.database_url or f"postgresql://postgres@127.0.0.1:{s.postgres_port}/{PostgresServer.database}"
    try:
        return AccountStore(Pool(url, 1, "stockit-cli"))
    except Exception as exc:  # noqa: BLE001 - any connection failure: say where we looked
        raise SettingsError(f"cannot reach PostgreSQL ({exc.__class__.__name__}); set DATABASE_URL or start "
                            "`stockit up`") from None


def _table(rows: list[dict], columns: tuple[str, ...], out: TextIO) -> None:
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    for row in [list(columns)] + cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip(), file=out)


def _with_store(s: Settings, command: str, action: Callable, err: TextIO) -> int:
    """Run ``action(store)``; a refused name, password or role is exit code 2 with the reason."""
    from app.access import CredentialError

    store = _store(s)
    try:
        return action(store)
    except CredentialError as exc:
        print(f"stockit {command}: {exc}", file=err)
        return 2
    finally:
        store.db.close()


def _outcome(done: bool, said: str, missing: str, err: TextIO) -> int:
    print(said if done else f"stockit: {missing}", file=err)
    return 0 if done else 1


def cmd_users(s: Settings, args, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    def act(store) -> int:
        if args.action == "add":
            row = store.add_user(args.name, read_password(s, args.password_stdin), args.role)
            return _outcome(True, f"added {row['username']} ({row['role']})", "", err)
        if args.action == "list":
            _table(store.users(), ("username", "role", "created_at", "last_login_at"), out)
            return 0
        if args.action == "remove":
            return _outcome(store.remove_user(args.name), f"removed {args.name}; their sessions end within "
                            "seconds", f"no user {args.name!r}", err)
        return _outcome(store.set_password(args.name, read_password(s, args.password_stdin)),
                        f"new password for {args.name}; their other sessions are signed out",
                        f"no user {args.name!r}", err)

    return _with_store(s, "users", act, err)


def cmd_tokens(s: Settings, args, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    def act(store) -> int:
        if args.action == "create":
            expires = parse_expiry(args.expires, time.time())
            row, plain = store.create_token(args.name, args.role, created_by="cli", expires_at=expires)
            print(plain, file=out)
            return _outcome(True, f"token {row['token_id']} {row['name']!r} ({row['role']}, expires "
                            f"{row['expires_at'] or 'never'}): copy it now, it is not shown again", "", err)
        if args.action == "list":
            _table(store.tokens(), ("token_id", "name", "prefix", "role", "created_at", "expires_at",
                                    "last_used_at", "revoked_at"), out)
            return 0
        return _outcome(store.revoke_token(args.token_id), f"revoked token {args.token_id}; it stops working "
                        "within seconds", f"no active token {args.token_id}", err)

    return _with_store(s, "tokens", act, err)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="manage who may sign in (viewer, operator, admin)")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLE_CHOICES, default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    actions.add_parser("list", help="list users")
    actions.add_parser("remove", help="remove a user (their sessions end)").add_argument("name")
    passwd = actions.add_parser("passwd", help="set a user's password (their sessions end)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    users.set_defaults(func=cmd_users)

    tokens = sub.add_parser("tokens", help="manage API tokens (Authorization: Bearer ...)")
    actions = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token; it is printed once")
    create.add_argument("name", help="what the token is for, e.g. grafana or ci")
    create.add_argument("--role", choices=ROLE_CHOICES, default="viewer")
    create.add_argument("--expires", help="30d, 12h, 90m, 2w or an ISO date (default: never)")
    actions.add_parser("list", help="list tokens (never the tokens themselves)")
    actions.add_parser("revoke", help="revoke a token").add_argument("token_id", type=int)
    tokens.set_defaults(func=cmd_tokens)
