"""Accounts for real: token lifecycle, sessions ending, cookie flags, rate-limited sign-in across processes,
the `stockit users` / `stockit tokens` commands and the first admin of a new database."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import requests

from app import create_app
from app.account_commands import first_admin
from app.accounts import AccountStore
from pipeline.history import Pool
from pipeline.migrations import migrate
from pipeline.settings import Settings
from tests import sign_in
from tests.integration.helpers import wait_until
from tests.sign_in import Account
from tests.web_server import ROOT, running_web

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(servers):
    server = create_app(servers)
    auth = server.extensions["stockit.auth"]
    auth.users.seconds = auth.tokens.seconds = 0.5  # users and tokens cached 0.5 s here, not 5
    return server


@pytest.fixture
def store(servers):
    s = AccountStore(Pool(servers.database_url, 2, "stockit-tests"))
    yield s
    s.db.close()


def bearer(app, token: str):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_accs001_token_lifecycle_create_use_expire_revoke(app, store):
    row, token = store.create_token("lifecycle", "viewer", created_by="tests")
    assert token.startswith("stk_") and row["prefix"] == token[:10] and row["last_used_at"] is None
    assert bearer(app, token).get("/api/v1/prices").status_code == 200
    listed = next(t for t in store.tokens() if t["token_id"] == row["token_id"])
    assert listed["last_used_at"] is not None and token not in str(listed)
    with psycopg2.connect(store.db.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT token_hash FROM api_tokens WHERE token_id = %s", (row["token_id"],))
        assert token not in cur.fetchone()[0]  # only the digest is stored

    _, soon = store.create_token("short-lived", "viewer", expires_at=time.time() + 3)
    assert bearer(app, soon).get("/api/v1/openapi.json").status_code == 200
    wait_until(lambda: bearer(app, soon).get("/api/v1/openapi.json").status_code == 401, 15, "expiry")

    assert store.revoke_token(row["token_id"]) and not store.revoke_token(row["token_id"])
    wait_until(lambda: bearer(app, token).get("/api/v1/openapi.json").status_code == 401, 15,
               "the revoked token to stop working (once its cache entry expires)")


def test_accs002_new_password_or_removal_ends_sessions(app, store):
    account = Account(f"temp-{uuid.uuid4().hex[:6]}", "first-password", "viewer")
    store.add_user(account.username, account.password, account.role)
    client = sign_in.flask_client(app.test_client(), account)
    assert client.get("/alerts").status_code == 200
    store.set_password(account.username, "second-password")
    wait_until(lambda: client.get("/alerts").status_code == 302, 15, "the old session to end")
    renewed = sign_in.flask_client(app.test_client(), Account(account.username, "second-password", "viewer"))
    assert renewed.get("/alerts").status_code == 200
    store.remove_user(account.username)
    wait_until(lambda: renewed.get("/api/v1/openapi.json").status_code == 401, 15, "the session to end")


def test_accs003_sign_out(app, accounts):
    client = sign_in.flask_client(app.test_client(), accounts["viewer"])
    r = client.post("/logout", headers={"Origin": "http://localhost"})
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert client.get("/alerts").status_code == 302


@pytest.mark.parametrize("mode, base_url, secure", [
    ("auto", "http://localhost", False), ("auto", "https://localhost", True),
    ("true", "http://localhost", True), ("false", "https://localhost", False),
])
def test_accs004_session_cookie_flags(servers, accounts, mode, base_url, secure):
    client = create_app(servers.replace(cookie_secure=mode)).test_client()
    r = client.post("/login", data=sign_in.form(accounts["viewer"]), base_url=base_url,
                    headers={"Origin": base_url})
    assert r.status_code == 303
    cookie = next(c for c in r.headers.getlist("Set-Cookie") if c.startswith("stockit_session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "expires"} <= flags and "samesite=lax" in cookie.lower()
    assert ("secure" in flags) is secure


def test_accs005_sign_in_redirects_only_within_the_site(app, accounts):
    for target, expected in (("/alerts?severity=HIGH", "/alerts?severity=HIGH"), ("//evil.example/", "/"),
                             ("https://evil.example/", "/")):
        r = app.test_client().post("/login", data=sign_in.form(accounts["viewer"], target))
        assert r.status_code == 303 and r.headers["Location"] == expected


def test_accs006_failed_sign_ins_are_limited_across_processes(servers, clean_stores, accounts, tmp_path):
    """Three failures from one address through the in-process app close sign-in on a separate server
    process too (the count lives in Redis); a success costs nothing; the user name is limited on its own."""
    limited = servers.replace(login_rate_limit="3 per minute")
    app = create_app(limited)
    viewer, operator = accounts["viewer"], accounts["operator"]
    for _ in range(4):  # successes are not counted
        assert app.test_client().post("/login", data=sign_in.form(viewer)).status_code == 303
    wrong = {**sign_in.form(viewer), "password": "not-the-password"}
    for _ in range(3):
        r = app.test_client().post("/login", data=wrong)
        assert r.status_code == 401 and b"Wrong user name or password." in r.data
    r = app.test_client().post("/login", data=sign_in.form(viewer))
    assert r.status_code == 429 and b"Too many failed sign-ins" in r.data
    with running_web(limited, tmp_path, STOCKIT_LOGIN_RATE_LIMIT="3 per minute") as web:
        other_process = requests.post(web.url + "/login", data=sign_in.form(viewer), allow_redirects=False,
                                      timeout=10)
        assert other_process.status_code == 429
    # Another address: the address is fresh, but the user name has had its three failures.
    elsewhere = {"REMOTE_ADDR": "10.1.2.3"}
    post = lambda account: app.test_client().post("/login", data=sign_in.form(account),  # noqa: E731
                                                  environ_base=elsewhere).status_code
    assert post(viewer) == 429 and post(operator) == 303


# --- the command line ------------------------------------------------------------------------------------
def stockit(servers, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STOCKIT_")}
    environ.update(DATABASE_URL=servers.database_url, PYTHONPATH=str(ROOT), STOCKIT_HOME=servers.home, **env)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], input=stdin, capture_output=True,
                          text=True, env=environ, cwd=ROOT, timeout=60)


def test_accs007_users_commands(servers, app):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    added = stockit(servers, "users", "add", name, "--role", "operator", "--password-stdin",
                    stdin="pass-word-1\n")
    assert added.returncode == 0 and added.stdout == "", added.stderr
    listed = stockit(servers, "users", "list")
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(name))
    assert row[1] == "operator" and "pass-word-1" not in listed.stdout
    assert sign_in.flask_client(app.test_client(), Account(name, "pass-word-1", "operator"))
    again = stockit(servers, "users", "add", name, "--password-stdin", stdin="pass-word-1\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = stockit(servers, "users", "add", name + "x", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "8 to 1024 characters" in short.stderr
    assert stockit(servers, "users", "add", name + "y", "--role", "root").returncode == 2  # argparse refuses
    no_tty = stockit(servers, "users", "add", name + "z")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    changed = stockit(servers, "users", "passwd", name, STOCKIT_PASSWORD="pass-word-2")
    assert changed.returncode == 0, changed.stderr
    old = sign_in.form(Account(name, "pass-word-1", "operator"))
    assert app.test_client().post("/login", data=old).status_code == 401
    assert sign_in.flask_client(app.test_client(), Account(name, "pass-word-2", "operator"))
    assert stockit(servers, "users", "remove", name).returncode == 0
    assert stockit(servers, "users", "remove", name).returncode == 1
    assert name not in stockit(servers, "users", "list").stdout


def test_accs008_tokens_commands(servers, app):
    created = stockit(servers, "tokens", "create", "ci", "--role", "operator", "--expires", "1h")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n" and token.startswith("stk_") and "not shown again" in created.stderr
    token_id = created.stderr.split()[1]
    assert bearer(app, token).get("/api/v1/openapi.json").status_code == 200
    listed = stockit(servers, "tokens", "list")
    assert token not in listed.stdout and token[:10] in listed.stdout
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith(token_id + " "))
    assert row[3] == "operator"
    assert stockit(servers, "tokens", "create", "x", "--expires", "yesterday").returncode == 2
    assert stockit(servers, "tokens", "revoke", token_id).returncode == 0
    assert stockit(servers, "tokens", "revoke", token_id).returncode == 1
    wait_until(lambda: bearer(app, token).get("/api/v1/openapi.json").status_code == 401, 15, "revocation")


# --- first run -------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_database(servers):
    """An empty, migrated database on the session's PostgreSQL server."""
    name = f"first_run_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(servers.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    url = urlunsplit(urlsplit(servers.database_url)._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def test_accs009_first_start_makes_one_admin_with_a_password_shown_once(servers, fresh_database):
    migrate(fresh_database)
    s = servers.replace(database_url=fresh_database)
    assert first_admin(s, generate=False) is None  # no configured password: nothing unless asked to generate
    user, password = first_admin(s, generate=True)
    assert user == "admin" and len(password) >= 20
    assert first_admin(s, generate=True) is None  # users exist now: never again
    client = create_app(s).test_client()
    assert client.post("/login", data=sign_in.form(Account("admin", password, "admin"))).status_code == 303
    assert client.get("/api/v1/health").get_json()["status"] in ("ok", "degraded")


def test_accs010_db_migrate_makes_the_configured_admin(servers, fresh_database):
    done = stockit(servers.replace(database_url=fresh_database), "db", "migrate",
                   STOCKIT_ADMIN_USER="boss", STOCKIT_ADMIN_PASSWORD="a-configured-password")
    assert done.returncode == 0 and "created the first admin user 'boss'" in done.stdout, done.stderr
    assert "a-configured-password" not in done.stdout + done.stderr
    store = AccountStore(Pool(fresh_database, 1, "stockit-tests"))
    try:
        assert [(u["username"], u["role"]) for u in store.users()] == [("boss", "admin")]
    finally:
        store.db.close()
    again = stockit(servers.replace(database_url=fresh_database), "db", "migrate",
                    STOCKIT_ADMIN_PASSWORD="another-password")
    assert again.returncode == 0 and "created" not in again.stdout


def test_accs011_stockit_up_prints_a_generated_password_once():
    from pipeline.stack.supervisor import Worker, _print_summary

    lines: list[str] = []
    web = Worker("web", [], {}, "")
    s = Settings.from_env({}, web_port=8088)
    _print_summary(s, [], [web], lines.append, ("admin", "generated-secret"))
    text = "\n".join(lines)
    assert text.count("generated-secret") == 1 and "stockit users passwd admin" in text
    lines.clear()
    _print_summary(s, [], [web], lines.append, None)  # a later start: users exist, nothing to show
    assert "Sign in" not in "\n".join(lines)
